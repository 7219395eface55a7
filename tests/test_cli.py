"""The command line: help that reads well, `config` output, exit codes for bad input."""

from __future__ import annotations

import json
import os
import re
import runpy
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner

from fluxlit.cli import main as cli_main
from fluxlit.cli.main import main
from fluxlit.cli.support import resolve
from fluxlit.config.settings import SETTING_SPECS
from tests._live import free_port


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("FLUXLIT_")]:  # config warns of the ones it does not know
        monkeypatch.delenv(name)
    return CliRunner()


def test_top_level_help_lists_commands(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "serve" in result.output
    assert "config" in result.output
    assert "highest first: flags, FLUXLIT_* environment variables" in result.output


@pytest.mark.parametrize("command", ["serve", "config"])
def test_command_help_names_env_vars_for_flags(runner: CliRunner, command: str) -> None:
    result = runner.invoke(main, [command, "--help"])
    assert result.exit_code == 0
    for text in ("--port", "FLUXLIT_GATEWAY_PORT", "--root-path", "FLUXLIT_ROOT_PATH", "--api-prefix"):
        assert text in result.output


@pytest.mark.parametrize("command", ["serve", "run", "workbench"])
def test_every_setting_with_a_flag_is_an_option_of_its_commands_with_its_spelling_and_choices(command: str) -> None:
    own = {"run": {"workbench"}}.get(command, set())  # run's one flag that is no setting: it picks the verb
    params = {
        param.name: param
        for param in main.commands[command].params
        if isinstance(param, click.Option) and param.name not in own
    }
    flagged = {
        spec.name: (spec, spec.flag)
        for spec in SETTING_SPECS
        if spec.flag is not None and (not spec.commands or command in spec.commands)
    }
    assert set(params) == set(flagged)
    for spec, flag in flagged.values():
        param = params[spec.name]
        decls = [part.split("/") for part in (flag, *spec.aliases)]
        assert param.opts == [d[0] for d in decls], spec.name
        assert param.secondary_opts == [d[1] for d in decls if len(d) > 1], spec.name
        assert spec.env in (param.help or ""), spec.name
        if spec.choices:
            assert isinstance(param.type, click.Choice)
            assert tuple(param.type.choices) == spec.choices
        assert param.multiple == spec.repeatable


def test_a_flag_that_is_not_a_number_exits_2_naming_it(runner: CliRunner) -> None:
    result = runner.invoke(main, ["config", "--port", "eighty"])
    assert result.exit_code == 2
    assert "--port" in result.output
    assert "eighty" in result.output


def test_a_choice_outside_its_words_exits_2_listing_them(runner: CliRunner) -> None:
    result = runner.invoke(main, ["config", "--log-format", "xml"])
    assert result.exit_code == 2
    assert "auto" in result.output
    assert "console" in result.output


def test_config_json_is_valid_and_every_value_has_a_source(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "fluxlit.toml").write_text("root_path = '/apps/x'\n")
    result = runner.invoke(main, ["config", "my:app", "--port", "9123", "--json"], env={"FLUXLIT_LOG_LEVEL": "debug"})
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    rows = {row["name"]: row for row in document["settings"]}
    assert set(rows) == {spec.name for spec in SETTING_SPECS}
    assert all(row["source"] for row in rows.values())
    assert (rows["target"]["value"], rows["target"]["source"]) == ("my:app", "cli")
    assert (rows["port"]["value"], rows["port"]["source"]) == (9123, "cli")
    assert (rows["log_level"]["value"], rows["log_level"]["source"]) == ("debug", "env")
    assert rows["root_path"]["source"].startswith("file:")
    assert rows["host"]["source"] == "default"


def test_config_table_shows_values_and_sources(runner: CliRunner) -> None:
    result = runner.invoke(main, ["config", "--no-metrics"])
    assert result.exit_code == 0
    assert any(line.split()[:3] == ["metrics", "false", "cli"] for line in result.output.splitlines())


@pytest.mark.parametrize("command", ["config", "serve"])
def test_bad_setting_exits_2_with_the_fix(runner: CliRunner, command: str) -> None:
    result = runner.invoke(main, [command], env={"FLUXLIT_API_MOUNT_PATH": "api/"})
    assert result.exit_code == 2
    assert "FLUXLIT_API_MOUNT_PATH='api/' must start with '/': try '/api'" in result.output


def test_unknown_flag_is_a_usage_error(runner: CliRunner) -> None:
    assert runner.invoke(main, ["serve", "--prot", "1"]).exit_code == 2


def test_serve_with_missing_target_exits_3(runner: CliRunner) -> None:
    result = runner.invoke(main, ["serve", "nosuchmodule_xyz:app"])
    assert result.exit_code == 3
    assert "no module named 'nosuchmodule_xyz'" in result.output


APP_WITH_SETTINGS = """
from fluxlit import FluxLit, Settings

app = FluxLit(settings=Settings(api_mount_path="/v2", graceful_timeout_s=3))
"""


def test_config_shows_settings_from_the_app_code_as_app(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "coded_app.py").write_text(APP_WITH_SETTINGS)
    result = runner.invoke(main, ["config", "coded_app.py:app", "--graceful-timeout", "4", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)["settings"]}
    assert (rows["api_mount_path"]["value"], rows["api_mount_path"]["source"]) == ("/v2", "app")
    assert (rows["graceful_timeout_s"]["value"], rows["graceful_timeout_s"]["source"]) == (4.0, "cli")


def test_config_still_reports_when_the_target_cannot_be_imported(runner: CliRunner) -> None:
    result = runner.invoke(main, ["config", "missing_mod_q:app"])
    assert result.exit_code == 0
    assert "app settings not shown" in result.output


def test_doctor_and_dev_are_registered(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert "doctor" in result.output
    assert "dev" in result.output


def test_workbench_urls_name_loopback_and_the_ide_proxy() -> None:
    from fluxlit.cli.workbench import workbench_urls

    assert workbench_urls("0.0.0.0", 8123, {}) == ["Local:   http://127.0.0.1:8123/"]
    lines = workbench_urls("127.0.0.1", 8123, {"RS_SERVER_URL": "https://wb/", "RS_SESSION_URL": "/s/abc/"})
    assert lines[1].startswith("Proxied: https://wb/s/abc/p/")
    jupyter = workbench_urls("127.0.0.1", 8123, {"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"})
    assert jupyter[1] == "Proxied: /user/ada/proxy/8123/  (jupyter-server-proxy)"


def test_workbench_help_reads_well(runner: CliRunner) -> None:
    result = runner.invoke(main, ["workbench", "--help"])
    assert result.exit_code == 0
    assert "IDE's port forwarding" in result.output


def test_workbench_with_bad_target_exits_3(runner: CliRunner) -> None:
    result = runner.invoke(main, ["workbench", "nosuchmodule_wb:app"])
    assert result.exit_code == 3


def test_python_dash_m_fluxlit_is_the_fluxlit_command(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setattr(sys, "argv", ["fluxlit", "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("fluxlit", run_name="__main__")
    assert exited.value.code == 0
    assert "serve" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--ws-ping-interval", "-1"],
            {},
            "--ws-ping-interval=-1.0 is not valid: expected a number 0 or more, e.g. 20",
        ),
        (["--ws-ping-interval", "often"], {}, "'often' is not a valid float"),
        (["--ws-ping-timeout", "0"], {}, "--ws-ping-timeout=0.0 is not valid: expected a number more than 0, e.g. 20"),
        ([], {"FLUXLIT_WS_PING_INTERVAL_S": "x"}, "FLUXLIT_WS_PING_INTERVAL_S='x' is not valid"),
    ],
)
def test_a_bad_ping_setting_exits_2_naming_it(runner: CliRunner, args: list[str], env: dict[str, str], message: str):
    result = runner.invoke(main, ["serve", *args], env=env)
    assert result.exit_code == 2
    assert message in result.output


def test_the_ping_flags_show_in_config_with_their_source(runner: CliRunner) -> None:
    result = runner.invoke(main, ["config", "--ws-ping-interval", "0", "--ws-ping-timeout", "5"])
    assert result.exit_code == 0
    rows = {line.split()[0]: line.split()[1:3] for line in result.output.splitlines() if line.startswith("ws_ping")}
    assert rows == {"ws_ping_interval_s": ["0.0", "cli"], "ws_ping_timeout_s": ["5.0", "cli"]}


def test_metrics_access_flags_reach_the_settings(runner: CliRunner) -> None:
    result = runner.invoke(
        main, ["config", "--metrics-allow", "10.0.0.0/8", "--metrics-bind", "0.0.0.0:9100", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)["settings"]}
    assert (rows["metrics_allow"]["value"], rows["metrics_allow"]["source"]) == ("10.0.0.0/8", "cli")
    assert (rows["metrics_bind"]["value"], rows["metrics_bind"]["flag"]) == ("0.0.0.0:9100", "--metrics-bind")


def test_a_metrics_bind_on_the_public_port_exits_2_with_the_fix(runner: CliRunner) -> None:
    result = runner.invoke(main, ["serve", "--port", "8000", "--metrics-bind", "0.0.0.0:8000"])
    assert result.exit_code == 2
    assert "uses the public port 8000: choose another, e.g. 9100" in result.output


def test_an_unexpected_error_at_start_up_exits_70_with_one_line_and_the_traceback(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fluxlit.runtime.early_start

    def broken(resolved: Any) -> Any:
        raise RuntimeError("state directory vanished")

    monkeypatch.setattr(fluxlit.runtime.early_start, "streamlit_started_early", broken)
    result = runner.invoke(main, ["serve", "app:app"])
    assert result.exit_code == 70
    first, *rest = result.stderr.splitlines()
    assert first == "fluxlit: internal error: RuntimeError: state directory vanished (a bug: please report it)"
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "RuntimeError: state directory vanished"


# --- `fluxlit run`: serve under the reference's name, with the pidfile ---


def test_run_is_serve_under_the_references_name_with_the_pidfile_flags() -> None:
    serve_flags = {p.name for p in main.commands["serve"].params}
    run_flags = {p.name for p in main.commands["run"].params}
    assert run_flags - serve_flags == {"pidfile", "no_pidfile", "workbench"}


def test_run_help_says_it_is_serves_reference_name(runner: CliRunner) -> None:
    result = runner.invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "exactly as 'fluxlit serve' does" in text
    assert "fluxlit 0.13" in text
    for flag in ("--proxy-headers / --no-trust-proxy, --no-proxy-headers", "--pidfile PATH", "--no-pidfile"):
        assert flag in text


@pytest.mark.parametrize(("flag", "value"), [("--proxy-headers", True), ("--no-proxy-headers", False)])
def test_the_references_proxy_headers_flag_sets_trust_proxy(runner: CliRunner, flag: str, value: bool) -> None:
    result = runner.invoke(main, ["config", flag, "--json"], env={"FLUXLIT_TRUST_PROXY": str(not value)})
    rows = {row["name"]: row for row in json.loads(result.stdout)["settings"]}
    assert (rows["trust_proxy"]["value"], rows["trust_proxy"]["source"]) == (value, "cli")


class PidfileWatcher:
    """From a side thread: once `url` answers 200, note what the pidfile says, then SIGTERM this process."""

    def __init__(self, url: str, pidfile: Path) -> None:
        self.url, self.pidfile = url, pidfile
        self.seen: str | None = None
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> PidfileWatcher:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.thread.join(timeout=40)

    def _watch(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url, timeout=1).status_code == 200:
                    self.seen = self.pidfile.read_text() if self.pidfile.exists() else ""
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)  # at the deadline too: never leave the run serving


@pytest.mark.usefixtures("restored_process_state")
def test_run_serves_with_its_pidfile_and_removes_it_on_a_clean_stop(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "run_api.py").write_text("from fastapi import FastAPI\n\napi = FastAPI()\n")
    port = free_port()
    args = ["run", "run_api.py:api", "--port", str(port), "--state-file", str(tmp_path / "state.json")]
    with PidfileWatcher(f"http://127.0.0.1:{port}/api/healthz", tmp_path / ".fluxlit-dev.pid") as watcher:
        result = runner.invoke(main, [*args, "--log-format", "json"])
    assert result.exit_code == 0, result.output
    assert watcher.seen == f"{os.getpid()}\n"
    assert not (tmp_path / ".fluxlit-dev.pid").exists()


@pytest.mark.usefixtures("restored_process_state")
@pytest.mark.parametrize(("args", "env"), [(["--no-pidfile"], {}), ([], {"FLUXLIT_NO_PIDFILE": "yes"})])
def test_run_without_a_pidfile_writes_none(
    runner: CliRunner, tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    (tmp_path / "run_api.py").write_text("from fastapi import FastAPI\n\napi = FastAPI()\n")
    port = free_port()
    argv = ["run", "run_api.py:api", "--port", str(port), "--state-file", str(tmp_path / "state.json"), *args]
    with PidfileWatcher(f"http://127.0.0.1:{port}/api/healthz", tmp_path / ".fluxlit-dev.pid") as watcher:
        result = runner.invoke(main, [*argv, "--log-format", "json"], env=env)
    assert result.exit_code == 0, result.output
    assert watcher.seen == ""


def test_run_refuses_to_start_while_the_pidfiles_owner_runs(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "run_api.py").write_text("from fastapi import FastAPI\n\napi = FastAPI()\n")
    # The parent of this test (pytest's runner, or the shell) is alive and started before the file was written.
    (tmp_path / "busy.pid").write_text(f"{os.getppid()}\n")
    port = free_port()
    result = runner.invoke(main, ["run", "run_api.py:api", "--port", str(port), "--pidfile", "busy.pid"])
    assert result.exit_code == 2, result.output
    assert f"belongs to process {os.getppid()}, which is still running" in result.output
    assert (tmp_path / "busy.pid").read_text() == f"{os.getppid()}\n"


def test_a_missing_target_under_run_exits_3_and_leaves_no_pidfile(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["run", "nosuchmodule_xyz:app"])
    assert result.exit_code == 3
    assert not (tmp_path / ".fluxlit-dev.pid").exists()


def test_workbench_and_dev_take_the_pidfile_flags(runner: CliRunner) -> None:
    for command in ("workbench", "dev"):
        result = runner.invoke(main, [command, "--help"])
        assert "--pidfile PATH" in result.output, command
        assert "--no-pidfile" in result.output, command


def test_shutdown_is_registered(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert "shutdown" in result.output
    assert "run" in main.commands


# --- `fluxlit config --strict` ---


def test_config_warns_of_a_fluxlit_variable_nothing_reads_and_exits_0(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("from fluxlit import FluxLit\n\napp = FluxLit()\n")
    result = runner.invoke(main, ["config", "--json"], env={"FLUXLIT_GATEWAY_PORTT": "9000"})
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)["warnings"]
    assert (entry["level"], entry["code"]) == ("warning", "unknown_env_var")
    assert "FLUXLIT_GATEWAY_PORTT is set, but FluxLit reads no such variable" in result.stderr


def test_config_strict_exits_1_on_an_unknown_fluxlit_variable(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("from fluxlit import FluxLit\n\napp = FluxLit()\n")
    assert runner.invoke(main, ["config", "--strict"]).exit_code == 0
    result = runner.invoke(main, ["config", "--strict"], env={"FLUXLIT_STRICT_STARTUP": "1"})
    assert result.exit_code == 1
    assert "FLUXLIT_STRICT_STARTUP" in result.stderr
    assert "pidfile" in result.stdout  # the report is still printed


def test_config_strict_exits_1_when_the_app_settings_cannot_be_shown(runner: CliRunner) -> None:
    result = runner.invoke(main, ["config", "missing_mod_q:app", "--strict", "--json"])
    assert result.exit_code == 1
    assert [w["code"] for w in json.loads(result.stdout)["warnings"]] == ["app_settings_not_shown"]


def test_config_strict_exits_2_on_an_unknown_project_file_key(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.fluxlit]\ngateway_portt = 9000\n")
    result = runner.invoke(main, ["config", "--strict"])
    assert result.exit_code == 2
    assert "unknown key(s) gateway_portt" in result.output


def test_every_fluxlit_variable_the_code_names_is_known_to_config_strict() -> None:
    from fluxlit.cli.config_warnings import KNOWN_ENV

    root = Path(__file__).resolve().parent.parent
    named: set[str] = set()
    for package in (root / "fluxlit", root / "supervisor" / "fluxlit_supervisor", root / "proxy" / "fluxlit_proxy"):
        for source in package.rglob("*.py"):
            named |= set(re.findall(r"\bFLUXLIT_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_])", source.read_text()))
    assert "FLUXLIT_CHILD_LAYOUT" in named  # the scan sees the runtime's variables, not only the settings'
    assert sorted(named - KNOWN_ENV) == []


def test_doctor_takes_fluxlit_013s_check_pages_flag(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["doctor", "--check-pages", "--warnings-only", "nosuchmodule_cp:app"])
    assert result.exit_code == 0, result.output
    assert "pages" in result.output


def test_run_workbench_serves_as_the_workbench_verb(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[dict[str, Any]] = []
    monkeypatch.setattr(cli_main, "workbench_command", lambda **values: served.append(values))
    monkeypatch.setattr(cli_main, "_serve", lambda *a, **k: pytest.fail("run served without the workbench"))
    result = runner.invoke(main, ["run", "--workbench", "--no-pidfile", "shop:app", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert [(v["target"], v["port"], v["no_pidfile"]) for v in served] == [("shop:app", 8123, True)]


def test_the_reference_kubernetes_command_line_runs_unchanged(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fluxlit 0.13's examples/kubernetes/deployment.yaml, verbatim; the server itself is stood in for (no 0.0.0.0
    # bind in tests): what must hold is that every flag parses and means what it meant there.
    seen: list[Any] = []
    monkeypatch.setattr(
        cli_main, "_serve", lambda values, with_pidfile: seen.append((resolve(values).settings, with_pidfile))
    )
    result = runner.invoke(main, ["run", "app:app", "--host", "0.0.0.0", "--port", "8000", "--no-pidfile"])
    assert result.exit_code == 0, result.output
    ((settings, with_pidfile),) = seen
    assert (settings.target, settings.host, settings.port, settings.no_pidfile, with_pidfile) == (
        "app:app",
        "0.0.0.0",
        8000,
        True,
        True,
    )
