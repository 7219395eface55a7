"""The soak scripts against a real `fluxlit serve`: every output format, and a non-zero exit on failures."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests._live import LiveServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.external("curl")]
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
SUMMARY_KEYS = {"script", "url", "count", "ok", "fail", "elapsed_s", "p50_ms", "p95_ms", "p99_ms", "codes"}


def soak(script: str, base: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / script)],
        env={**os.environ, "BASE_URL": base, "COUNT": "5", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    assert set(data) == SUMMARY_KEYS
    return data


@pytest.mark.parametrize("script", ["soak_http.sh", "soak_readyz.sh", "soak_metrics.sh"])
@pytest.mark.parametrize("output_format", ["text", "json", "markdown"])
def test_soak_passes_against_a_live_server(live: LiveServer, script: str, output_format: str) -> None:
    result = soak(script, live.base, OUTPUT_FORMAT=output_format)
    assert result.returncode == 0, result.stdout + result.stderr
    if output_format == "json":
        data = summary(result)
        assert (data["count"], data["ok"], data["fail"], data["codes"]) == (5, 5, 0, {"200": 5})
        assert 0 < data["p50_ms"] <= data["p95_ms"] <= data["p99_ms"]
        assert data["elapsed_s"] > 0
    elif output_format == "text":
        assert "ok=5 fail=0" in result.stdout
        assert "codes: 200=5" in result.stdout
    else:
        rows = result.stdout.splitlines()
        assert rows[0].startswith("| script | url | count | ok | fail |")
        assert rows[2].startswith(f"| {script.removesuffix('.sh')} |")


def test_soak_http_checks_the_body_substring(live: LiveServer) -> None:
    wanted = soak("soak_http.sh", live.base, PATH_SUFFIX="/api/smoke", REQUIRE_BODY_SUBSTRING="fluxlit_smoke_ok")
    assert wanted.returncode == 0, wanted.stdout + wanted.stderr
    missing = soak("soak_http.sh", live.base, OUTPUT_FORMAT="json", REQUIRE_BODY_SUBSTRING="not-in-the-body")
    assert missing.returncode == 1
    assert summary(missing)["fail"] == 5


def test_soak_readyz_counts_non_2xx_and_fails_only_when_required(live: LiveServer) -> None:
    strict = soak("soak_readyz.sh", live.base, PATH_SUFFIX="/api/nowhere", OUTPUT_FORMAT="json")
    assert strict.returncode == 1
    assert summary(strict)["codes"] == {"404": 5}
    lenient = soak("soak_readyz.sh", live.base, PATH_SUFFIX="/api/nowhere", REQUIRE_2XX="0")
    assert lenient.returncode == 0
    assert "codes: 404=5" in lenient.stdout


def test_soak_metrics_fails_when_the_metric_is_missing(live: LiveServer) -> None:
    result = soak("soak_metrics.sh", live.base, METRICS_PATH="/api/healthz", OUTPUT_FORMAT="json")
    assert result.returncode == 1
    assert summary(result)["ok"] == 0


def test_unreachable_server_counts_every_request_as_failed() -> None:
    result = soak("soak_http.sh", f"http://127.0.0.1:{free_port()}", OUTPUT_FORMAT="json", COUNT="2")
    assert result.returncode == 1
    assert summary(result)["codes"] == {"000": 2}


@pytest.mark.parametrize(("name", "value"), [("COUNT", "0"), ("COUNT", "ten"), ("OUTPUT_FORMAT", "yaml")])
def test_bad_settings_exit_2_with_the_reason(name: str, value: str) -> None:
    result = soak("soak_http.sh", "http://127.0.0.1:9", **{name: value})
    assert result.returncode == 2
    assert f"{name}='{value}'" in result.stderr


def test_soak_http_passes_against_python_http_server() -> None:
    """What the scheduled soak workflow's first job runs: the script proven without FluxLit in the way."""
    result = subprocess.run(
        ["bash", str(SCRIPTS / "soak_http_selftest.sh")],
        env={**os.environ, "COUNT": "10"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok=10 fail=0" in result.stdout
