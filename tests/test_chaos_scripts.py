"""The seed's chaos scripts run against a real `fluxlit serve` and fail loudly when their check fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.external("curl")]
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.mark.parametrize(
    ("script", "env"),
    [
        ("chaos_streamlit_kill.sh", {"MODE": "restart"}),
        ("chaos_streamlit_kill.sh", {"MODE": "exit"}),
        ("chaos_graceful_shutdown.sh", {}),
        ("chaos_slow_upstream.sh", {}),
        ("chaos_oversized_body.sh", {}),
        ("chaos_dropped_websocket.sh", {}),
    ],
)
def test_chaos_script_passes(script: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPTS / script)],
        env={**os.environ, "PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    assert "PASS:" in result.stdout
