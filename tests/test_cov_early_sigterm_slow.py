"""SIGTERM while `fluxlit serve` still imports the app: a prompt, clean exit, and no Streamlit child left."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil
import pytest

from tests._live import LiveServer, pid_alive

pytestmark = pytest.mark.slow

SLOW_IMPORT = """\
import pathlib, time
pathlib.Path("importing").write_text("yes")
time.sleep(60)
from fluxlit import FluxLit
app = FluxLit()
"""


def test_sigterm_during_the_app_import_exits_0_promptly(tmp_path: Path) -> None:
    (tmp_path / "slow_import_app.py").write_text(SLOW_IMPORT)
    live = LiveServer(tmp_path, target="slow_import_app.py:app")
    live.start()
    assert live.proc is not None
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "importing").exists():
            assert live.proc.poll() is None, live.log()
            assert time.monotonic() < deadline, "the app import never started"
            time.sleep(0.05)
        children = [child.pid for child in psutil.Process(live.proc.pid).children(recursive=True)]
        assert children, "serve started no Streamlit child ahead of the import"
        started = time.monotonic()
        live.signal(signal.SIGTERM)
        code = live.wait_exit(timeout=30)
        assert time.monotonic() - started < 15
    finally:
        live.kill_leftovers()
    assert code == 0, live.log()[-4000:]
    assert [pid for pid in children if pid_alive(pid)] == []  # the Streamlit child started early went too
