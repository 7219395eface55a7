"""scripts/soak_mixed.py against a live `fluxlit serve`: no errors, memory and descriptors flat after warm-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests._live import LiveServer, free_port

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "soak_mixed.py"


def run_soak(timeout: float = 900, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT)],
        env={**os.environ, "OUTPUT_FORMAT": "json", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_ten_thousand_mixed_requests_leave_no_error_and_flat_memory_and_descriptors(live: LiveServer) -> None:
    done = run_soak(BASE_URL=live.base, COUNT="10000", CONCURRENCY="8", WARMUP="1500")
    report: dict[str, Any] = json.loads(done.stdout)
    print(f"\n[soak] {done.stdout.strip()}")
    assert report["errors"] == 0, report["error_samples"]
    assert all(report["ok"][kind] > 0 for kind in ("api_small", "api_large", "static", "websocket"))
    assert report["rss_growth_pct"] < 5.0
    assert report["fd_growth"] <= 10
    assert done.returncode == 0


@pytest.mark.slow
def test_uploads_after_idle_pauses_longer_than_streamlits_keep_alive_all_succeed(live: LiveServer) -> None:
    """Every worker stops, the gateway's connections to Streamlit idle (one pause past 5 s with this seed), then
    all upload at once: each upload meets an idle pooled connection (they got 502 before issue 15's fix)."""
    done = run_soak(
        BASE_URL=live.base, COUNT="600", CONCURRENCY="4", WARMUP="100", IDLE_PAUSES="3", IDLE_MAX_S="7", SEED="1"
    )
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["errors"] == 0, report["error_samples"]
    assert report["ok"]["upload"] == 3 * 4
    assert report["idle_pauses"]["over_streamlit_keep_alive"] >= 1, report["idle_pauses"]
    assert done.returncode == 0


@pytest.mark.slow
def test_soak_reads_the_gateway_process_from_proc_when_given_its_pid(live: LiveServer) -> None:
    assert live.proc is not None
    done = run_soak(BASE_URL=live.base, COUNT="200", WARMUP="50", GATEWAY_PID=str(live.proc.pid))
    report = json.loads(done.stdout)
    assert report["errors"] == 0
    assert report["rss_bytes"]["warm"] > 10 * 2**20


def test_soak_against_nothing_counts_every_request_as_an_error() -> None:
    done = run_soak(
        timeout=120,
        BASE_URL=f"http://127.0.0.1:{free_port()}",
        COUNT="20",
        WARMUP="5",
        STATIC_PATH="x.css",
        TIMEOUT_S="2",
        GATEWAY_PID=str(os.getpid()),
    )
    report = json.loads(done.stdout)
    assert report["errors"] == 20
    assert done.returncode == 1


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"COUNT": "0"}, "COUNT='0'"),
        ({"COUNT": "10", "WARMUP": "10"}, "WARMUP=10 must be below COUNT=10"),
        ({"MIX": "api_small=1,bogus=2"}, "MIX item 'bogus=2'"),
        ({"BASE_URL": "localhost:8000"}, "BASE_URL='localhost:8000'"),
        ({"OUTPUT_FORMAT": "xml"}, "OUTPUT_FORMAT='xml'"),
        ({"COUNT": "100", "WARMUP": "10", "IDLE_PAUSES": "12"}, "IDLE_PAUSES=12 x CONCURRENCY=8 uploads leave"),
        ({"IDLE_MAX_S": "0"}, "IDLE_MAX_S='0' must be more than 0"),
    ],
)
def test_soak_usage_errors_exit_2_naming_the_variable(env: dict[str, str], complaint: str) -> None:
    done = run_soak(timeout=60, **env)
    assert done.returncode == 2
    assert complaint in done.stderr
