"""Restart reasons as metric labels, the metrics endpoint outside HTTP, and /proc reads of vanished processes."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from fluxlit.observability.bridges import restart_reason
from fluxlit.observability.metrics import GatewayMetrics, _open_fds, read_proc_stat


@pytest.mark.parametrize(
    ("detail", "label"),
    [
        ("restart requested (SIGHUP)", "requested"),
        ("restart requested by the operator", "requested"),
        ("killed by signal 9", "signal"),
        ("health check failed 3 times", "unhealthy"),
        ("exited with code 1", "exit"),
    ],
)
def test_restart_details_map_to_a_small_label_set(detail: str, label: str) -> None:
    assert restart_reason(detail) == label


def test_the_metrics_endpoint_ignores_non_http_scopes() -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(GatewayMetrics().endpoint(), {"type": "lifespan"}, receive, send)
    assert sent == []


def impossible_pid() -> int:
    """A pid above the kernel's pid_max: no process can ever have it."""
    with open("/proc/sys/kernel/pid_max") as handle:
        return int(handle.read()) + 1


def test_a_process_that_is_gone_has_no_stat_and_no_fds() -> None:
    pid = impossible_pid()
    assert read_proc_stat(pid) is None
    assert _open_fds(pid) is None
