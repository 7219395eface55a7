"""`fluxlit workbench` run in this process: `serve` with the IDE proxy trusted, and the URLs to open printed; and
(slow) as a user runs it inside an IDE, a real process stopped by SIGTERM."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from fluxlit.cli.main import main
from tests._inprocess import SigtermOnceHealthy
from tests._live import LiveServer, free_port


@pytest.mark.usefixtures("restored_process_state")
def test_workbench_serves_and_prints_where_to_open_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ide_api.py").write_text("from fastapi import FastAPI\n\napi = FastAPI()\n")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    monkeypatch.chdir(tmp_path)  # where its pidfile goes
    port = free_port()
    args = ["workbench", f"{tmp_path / 'ide_api.py'}:api", "--port", str(port), "--log-format", "json"]
    with SigtermOnceHealthy(f"http://127.0.0.1:{port}/api/healthz"):
        result = CliRunner().invoke(main, [*args, "--state-file", str(tmp_path / "state.json")])
    assert result.exit_code == 0, result.output
    assert f"Local:   http://127.0.0.1:{port}/" in result.output
    assert f"Proxied: /user/ada/proxy/{port}/" in result.output
    assert os.environ["FLUXLIT_TRUST_PROXY"] == "1"  # what pages are told: links follow the IDE proxy's headers
    assert not (tmp_path / ".fluxlit-dev.pid").exists()  # written for 'fluxlit shutdown', removed on the stop


def test_workbench_refuses_to_start_while_the_pidfiles_owner_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ide_api.py").write_text("from fastapi import FastAPI\n\napi = FastAPI()\n")
    (tmp_path / "ide.pid").write_text(f"{os.getppid()}\n")  # pytest's parent: alive, and older than the file
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main, ["workbench", "ide_api.py:api", "--port", str(free_port()), "--pidfile", "ide.pid"]
    )
    assert result.exit_code == 2
    assert f"belongs to process {os.getppid()}" in result.output


@pytest.mark.slow
def test_workbench_run_as_in_an_ide_prints_both_urls_serves_and_stops_0_on_sigterm(tmp_path: Path) -> None:
    env = {"RS_SERVER_URL": "https://workbench.example/", "RS_SESSION_URL": "/s/abc123/"}
    live = LiveServer(tmp_path, env=env)
    live.argv[live.argv.index("serve")] = "workbench"
    live.start()
    try:
        live.wait_ready()
        assert live.get("/api/smoke").json()["marker"] == "fluxlit_smoke_ok"
    finally:
        code = live.stop()
    assert code == 0, live.log()[-4000:]
    log = live.log()
    assert f"Local:   http://127.0.0.1:{live.port}/" in log
    assert f"Proxied: https://workbench.example/s/abc123/p/<token for port {live.port}>/" in log
