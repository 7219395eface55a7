"""Browser WebSockets through a real `fluxlit serve`: keepalive pings, a dead browser dropped, prompt stops after
sessions, idle tabs surviving an idle-cutting proxy, and the memory of unfinished messages bounded and returned."""

from __future__ import annotations

import select
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Event, Ping, Request

from tests._edge import Nginx
from tests._live import LiveServer

pytestmark = pytest.mark.slow
MIB = 1024 * 1024


class Browser:
    """A raw client of /_stcore/stream that does only what the test says: answering pings included."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.eof = False
        request = Request(host=f"127.0.0.1:{port}", target="/_stcore/stream", subprotocols=["streamlit"])
        self.sock.sendall(self.ws.send(request))
        answer = self.next_event(10)
        assert isinstance(answer, AcceptConnection), answer

    def next_event(self, within: float) -> Event | None:
        """The next event, None at end of input; AssertionError after `within` seconds of silence."""
        deadline = time.monotonic() + within
        while True:
            for event in self.ws.events():
                return event
            if self.eof:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.sock], [], [], remaining)[0]:
                raise AssertionError(f"nothing from the gateway within {within} s")
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            self.eof = not data
            if data:
                self.ws.receive_data(data)

    def answer(self, ping: Ping) -> None:
        self.sock.sendall(self.ws.send(ping.response()))

    def close_politely(self) -> None:
        self.sock.sendall(self.ws.send(CloseConnection(code=1000)))
        while (event := self.next_event(10)) is not None and not isinstance(event, CloseConnection):
            pass
        self.sock.close()


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


Serve = Callable[..., LiveServer]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """`serve(*flags, env=...)`: a ready `fluxlit serve` of the smoke app, stopped after the test."""
    servers: list[LiveServer] = []

    def start(*args: str, env: dict[str, str] | None = None) -> LiveServer:
        live = LiveServer(tmp_path, *args, env=env).start()
        servers.append(live)
        live.wait_ready()
        return live

    yield start
    for live in servers:
        live.stop()


def test_an_idle_websocket_gets_a_ping_within_the_interval_and_keeps_getting_them(serve: Serve) -> None:
    interval = 2.0
    live = serve("--ws-ping-interval", str(interval))
    browser = Browser(live.port)
    opened = time.monotonic()
    arrivals = []
    for _ in range(3):
        event = browser.next_event(interval + 1)
        assert isinstance(event, Ping), event
        arrivals.append(time.monotonic() - opened)
        browser.answer(event)
    browser.close_politely()
    gaps = [later - earlier for earlier, later in zip([0.0, *arrivals], arrivals, strict=False)]
    assert all(gap <= interval + 1 for gap in gaps), gaps


def test_a_browser_that_never_answers_pings_is_closed_with_1011_in_interval_plus_timeout(serve: Serve) -> None:
    live = serve("--ws-ping-interval", "1", "--ws-ping-timeout", "1")
    browser = Browser(live.port)
    opened = time.monotonic()
    events = []
    while (event := browser.next_event(5)) is not None:
        events.append(event)
    closed_after = time.monotonic() - opened
    assert isinstance(events[0], Ping)
    assert isinstance(events[-1], CloseConnection)
    assert events[-1].code == 1011
    assert closed_after < 1 + 1 + 1
    assert '"upstream went away"' not in live.log()  # the gateway closed the Streamlit leg itself


def test_sigterm_after_three_browser_sessions_exits_in_under_two_seconds(serve: Serve) -> None:
    live = serve()  # the default 20 s ping interval: longer than the whole test
    for _ in range(3):
        Browser(live.port).close_politely()
    time.sleep(0.5)
    started = time.monotonic()
    live.signal(signal.SIGTERM)
    assert live.wait_exit(timeout=30) == 0
    assert time.monotonic() - started < 2.0


@pytest.mark.external("nginx")
def test_a_websocket_idle_for_three_intervals_behind_nginx_is_not_cut(serve: Serve, tmp_path: Path) -> None:
    interval = 2
    live = serve("--ws-ping-interval", str(interval))
    edge = Nginx(
        tmp_path,
        "fluxlit-root.conf",
        live.port,
        params_replacements={"proxy_read_timeout 3600s;": f"proxy_read_timeout {interval + 1}s;"},
    ).start()
    try:
        browser = Browser(edge.port)
        deadline = time.monotonic() + 3 * interval + 0.5
        pings = 0
        while time.monotonic() < deadline:
            event = browser.next_event(interval + 1)
            assert isinstance(event, Ping), f"nginx cut the idle WebSocket: {event}"
            pings += 1
            browser.answer(event)
        browser.close_politely()
    finally:
        edge.stop()
    assert pings >= 3


def masked_header(length: int) -> bytes:
    """A client binary frame header (not final) announcing `length` bytes, zero mask (RFC 6455 5.2)."""
    return bytes([0x02, 0x80 | 127]) + struct.pack("!Q", length) + bytes(4)


def test_four_browsers_holding_unfinished_200_mib_messages_give_the_memory_back(serve: Serve) -> None:
    """Issue 15: from 323 to 863 MiB, and it stayed there after they closed."""
    live = serve(env={"FLUXLIT_MAX_WS_CLIENT_MESSAGE_BYTES": str(256 * MIB)})
    assert live.proc is not None
    time.sleep(1.0)
    before = rss_mib(live.proc.pid)
    browsers = [Browser(live.port) for _ in range(4)]
    chunk = BytesMessage(data=bytes(MIB), message_finished=False)
    for _ in range(200):  # all four grow together: none sits idle long enough to be pinged out or stalled
        for browser in browsers:
            browser.sock.sendall(browser.ws.send(chunk))
    time.sleep(1.0)
    holding = rss_mib(live.proc.pid)
    for browser in browsers:
        browser.sock.close()
    time.sleep(2.0)
    after = rss_mib(live.proc.pid)
    assert holding - before > 400, (before, holding)  # they really were held
    assert after - before < 50, (before, holding, after)


def test_by_default_an_oversized_browser_message_is_refused_at_its_header_and_memory_stays_flat(serve: Serve) -> None:
    live = serve()
    assert live.proc is not None
    time.sleep(1.0)
    before = rss_mib(live.proc.pid)
    codes = []
    for _ in range(4):
        browser = Browser(live.port)
        browser.sock.sendall(masked_header(200 * MIB) + bytes(MIB))
        while (event := browser.next_event(5)) is not None and not isinstance(event, CloseConnection):
            pass
        codes.append(event.code if isinstance(event, CloseConnection) else None)
        browser.sock.close()
    assert codes == [1009] * 4
    assert rss_mib(live.proc.pid) - before < 50
