"""Supervisor edges: state files that cannot be written or trusted, odd binds, output callbacks that fail."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import anyio
import pytest
from fluxlit_supervisor.concurrency import first_of
from fluxlit_supervisor.output import pump_lines
from fluxlit_supervisor.process import signal_group
from fluxlit_supervisor.serve import BindError, ServeConfig, bind_sockets, build_hypercorn_config, is_listening
from fluxlit_supervisor.state import UpstreamState
from fluxlit_supervisor.state_file import _ensure_private_dir, read_upstream, write_state_file
from hypercorn.config import Config, Sockets


def impossible_pid() -> int:
    """A pid above the kernel's pid_max: no process or group can ever have it."""
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


def test_a_state_file_that_cannot_replace_its_target_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "upstream.json"
    (target / "occupied").mkdir(parents=True)  # a non-empty directory where the file should go
    with pytest.raises(IsADirectoryError):
        write_state_file(target, UpstreamState(state="ready", port=8501))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upstream.json"]


def test_a_directory_that_cannot_be_created_is_not_a_private_directory(tmp_path: Path) -> None:
    assert _ensure_private_dir(tmp_path / "missing-parent" / "supervisor-0") is False


def test_an_oversized_state_file_is_ignored_for_the_environment_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    big = tmp_path / "upstream.json"
    big.write_text("http://127.0.0.1:8501\n" + " " * (64 * 1024))
    with caplog.at_level(logging.WARNING, logger="supervisor"):
        assert read_upstream(str(big), "http://127.0.0.1:9000") == ("http://127.0.0.1:9000", "env")
    assert f"is unusable: it is larger than {64 * 1024} bytes; falling back to the environment URL" in caplog.text


def test_a_state_file_naming_pid_0_counts_as_stale(tmp_path: Path) -> None:
    state = tmp_path / "upstream.json"
    state.write_text(UpstreamState(state="ready", port=8501, pid=0).to_json())
    assert read_upstream(str(state), None) == (None, "none")


def test_signalling_a_group_that_does_not_exist_reports_false() -> None:
    assert signal_group(impossible_pid(), 0) is False


def test_quic_binds_are_refused_with_the_option_named() -> None:
    with pytest.raises(ValueError, match=r"hypercorn_options\['quic_bind'\] is not supported"):
        build_hypercorn_config(ServeConfig(hypercorn_options={"quic_bind": ["127.0.0.1:4433"]}))


def test_an_inherited_fd_that_is_not_a_stream_socket_is_a_bind_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        config = Config()
        config.bind = [f"fd://{udp.fileno()}"]
        with pytest.raises(BindError, match=rf"cannot bind fd://{udp.fileno()}: fd {udp.fileno()} is not a stream"):
            bind_sockets(config)
        assert udp.fileno() >= 0  # detached, not closed: the fd still belongs to its owner


def test_a_closed_socket_is_not_listening() -> None:
    sock = socket.socket()
    sock.close()
    assert is_listening(Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])) is False


@pytest.mark.anyio
async def test_first_of_cancelled_from_outside_lets_the_cancellation_through() -> None:
    with anyio.CancelScope() as scope:
        scope.cancel()
        await first_of(anyio.sleep_forever)
        pytest.fail("first_of returned under a cancelled scope")
    assert scope.cancelled_caught


@pytest.mark.anyio
async def test_no_reader_means_nothing_to_pump() -> None:
    lines: list[str] = []
    await pump_lines(None, "stdout", 1, 1, lambda *args: lines.append(args[1]))
    assert lines == []


@pytest.mark.anyio
async def test_a_failing_output_callback_is_logged_and_pumping_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"first\nsecond\n")
    reader.feed_eof()
    seen: list[str] = []

    def sink(stream: str, line: str, pid: int, generation: int) -> None:
        seen.append(line)
        if line == "first":
            raise RuntimeError("sink broke")

    with caplog.at_level(logging.ERROR, logger="supervisor"):
        await pump_lines(reader, "stderr", 42, 3, sink)
    assert seen == ["first", "second"]
    assert "child output callback failed" in caplog.text
