"""Body deadline: waits for body data are bounded, a minimum pace is kept; bodiless requests, WebSockets never."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from fluxlit.config.settings import Settings
from fluxlit.gateway.body_deadline import BodyDeadline, BodyRate
from fluxlit.gateway.router import Gateway, GatewayRoutes, build_gateway
from fluxlit.observability.access import AccessObserver

pytestmark = pytest.mark.anyio
TIMEOUT = 0.2
Message = dict[str, Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Exchange:
    """What one request through the gateway produced: messages sent to the client, what the app received."""

    sent: list[Message] = field(default_factory=list)
    app_received: list[Message] = field(default_factory=list)
    app_receive: Any = None

    @property
    def status(self) -> int | None:
        return next((m["status"] for m in self.sent if m["type"] == "http.response.start"), None)

    @property
    def headers(self) -> dict[bytes, bytes]:
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        return dict(start["headers"])


def http_scope(method: str = "POST", headers: list[tuple[bytes, bytes]] | None = None, **extra: Any) -> Message:
    return {
        "type": "http",
        "method": method,
        "path": "/api/upload",
        "raw_path": b"/api/upload",
        "query_string": b"",
        "root_path": "",
        "http_version": "1.1",
        "headers": headers if headers is not None else [(b"content-length", b"10")],
        "client": ("127.0.0.1", 5000),
        **extra,
    }


def client_sending(*steps: tuple[float, Message | None]) -> Callable[[], Awaitable[Message]]:
    """A server's receive(): after each (delay, message) step the message arrives; None means it never does."""
    queue = list(steps)

    async def receive() -> Message:
        if not queue:
            await anyio.sleep_forever()
        delay, message = queue.pop(0)
        await anyio.sleep(delay)
        if message is None:
            await anyio.sleep_forever()
        assert message is not None
        return message

    return receive


def body(data: bytes, more: bool) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


async def reading_app(scope: Any, receive: Any, send: Any, exchange: Exchange) -> None:
    """Reads the whole body (or until disconnect), then answers 200 with what it read."""
    exchange.app_receive = receive
    received = b""
    while True:
        message = await receive()
        exchange.app_received.append(message)
        if message["type"] == "http.disconnect":
            break
        received += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": received})


async def run(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    app: Callable[..., Awaitable[None]] = reading_app,
    *,
    to_proxy: bool = False,
    observer: AccessObserver | None = None,
) -> Exchange:
    exchange = Exchange()

    async def slot(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send, exchange)

    async def send(message: Any) -> None:
        exchange.sent.append(message)

    gateway = Gateway(
        slot, GatewayRoutes(), proxy=slot if to_proxy else None, observer=observer, body_read_timeout_s=TIMEOUT
    )
    if to_proxy:
        scope = {**scope, "path": "/upload", "raw_path": b"/upload"}
    with anyio.fail_after(5):
        await gateway(scope, receive, send)
    return exchange


@pytest.mark.parametrize("to_proxy", [False, True], ids=["api", "proxy"])
@pytest.mark.parametrize(
    "headers", [[(b"content-length", b"10")], [(b"transfer-encoding", b"chunked")]], ids=["length", "chunked"]
)
async def test_a_stalled_body_gets_408_with_connection_close_and_the_app_sees_a_disconnect(
    to_proxy: bool, headers: list[tuple[bytes, bytes]]
) -> None:
    exchange = await run(
        http_scope(headers=headers), client_sending((0, body(b"abc", True)), (0, None)), to_proxy=to_proxy
    )
    assert exchange.status == 408
    assert exchange.headers[b"connection"] == b"close"
    assert b"x-request-id" in exchange.headers
    assert b"no data for 0.2 s" in exchange.sent[-1]["body"]
    # The app's own 200 after the disconnect is dropped: one response only.
    assert [m["type"] for m in exchange.sent] == ["http.response.start", "http.response.body"]
    assert exchange.app_received[-1] == {"type": "http.disconnect"}


async def test_after_the_deadline_every_receive_answers_disconnect() -> None:
    async def reads_twice(scope: Any, receive: Any, send: Any, exchange: Exchange) -> None:
        exchange.app_received += [await receive(), await receive()]

    exchange = await run(http_scope(), client_sending((0, None)), reads_twice)
    assert exchange.app_received == [{"type": "http.disconnect"}] * 2
    assert exchange.status == 408


async def test_a_slow_but_steady_body_is_not_cut() -> None:
    steps = [(TIMEOUT * 0.6, body(b"x", True)) for _ in range(5)] + [(TIMEOUT * 0.6, body(b"y", False))]
    started = anyio.current_time()
    exchange = await run(http_scope(), client_sending(*steps))
    assert anyio.current_time() - started > 3 * TIMEOUT  # longer in total than the deadline, yet served
    assert exchange.status == 200
    assert exchange.sent[-1]["body"] == b"xxxxxy"


async def test_once_the_body_is_complete_receive_is_not_timed() -> None:
    """A streaming download waits for the disconnect while it sends; that wait is never cut."""

    async def streams_then_waits(scope: Any, receive: Any, send: Any, exchange: Exchange) -> None:
        assert (await receive())["more_body"] is False
        await send({"type": "http.response.start", "status": 200, "headers": []})
        exchange.app_received.append(await receive())  # the disconnect, long after the deadline
        await send({"type": "http.response.body", "body": b"done"})

    receive = client_sending((0, body(b"all", False)), (3 * TIMEOUT, {"type": "http.disconnect"}))
    exchange = await run(http_scope(), receive, streams_then_waits)
    assert exchange.status == 200
    assert exchange.app_received == [{"type": "http.disconnect"}]
    assert exchange.sent[-1]["body"] == b"done"


async def test_a_body_stalling_after_the_response_started_cuts_that_response_without_a_408() -> None:
    async def answers_early(scope: Any, receive: Any, send: Any, exchange: Exchange) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        exchange.app_received.append(await receive())
        await send({"type": "http.response.body", "body": b"rest"})  # dropped: the response stays incomplete

    exchange = await run(http_scope(), client_sending((0, None)), answers_early)
    assert [m.get("status") for m in exchange.sent] == [200, None]
    assert exchange.sent[-1] == {"type": "http.response.body", "body": b"part", "more_body": True}
    assert exchange.app_received == [{"type": "http.disconnect"}]


async def test_the_408_is_counted_by_the_access_observer() -> None:
    lines: list[dict[str, Any]] = []

    class Log:
        def info(self, event: str, **fields: Any) -> None:
            lines.append(fields)

        def log(self, level: int, event: str, **fields: Any) -> None:
            lines.append(fields)

    exchange = await run(http_scope(), client_sending((0, None)), observer=AccessObserver(None, logger=Log()))
    assert exchange.status == 408
    assert [line["status"] for line in lines] == [408]


@pytest.mark.parametrize(
    "scope",
    [
        http_scope("GET", []),
        http_scope("POST", [(b"content-length", b"0")]),
        http_scope("GET", [], http_version="2", type="websocket"),
    ],
    ids=["get-without-body", "content-length-0", "websocket"],
)
async def test_requests_without_a_body_get_the_servers_own_receive(scope: Message) -> None:
    """No wrapper, no timer: the hot path of a bodiless request is unchanged."""
    receive = client_sending((0, body(b"", False)))

    async def keeps_receive(scope: Any, receive: Any, send: Any, exchange: Exchange) -> None:
        exchange.app_receive = receive

    exchange = await run(scope, receive, keeps_receive)
    assert exchange.app_receive is receive


@pytest.mark.parametrize("version", ["2", "3"])
async def test_http2_and_3_requests_without_content_length_are_timed(version: str) -> None:
    """Those versions frame the body themselves, so any request may carry one."""
    exchange = await run(http_scope("POST", [], http_version=version), client_sending((0, None)))
    assert exchange.status == 408


async def test_an_http2_request_with_content_length_0_is_not_timed() -> None:
    receive = client_sending((0, body(b"", False)))

    async def keeps_receive(scope: Any, receive: Any, send: Any, exchange: Exchange) -> None:
        exchange.app_receive = receive

    exchange = await run(http_scope("GET", [(b"content-length", b"0")], http_version="2"), receive, keeps_receive)
    assert exchange.app_receive is receive


async def test_an_early_disconnect_passes_through_and_ends_the_timing() -> None:
    exchange = await run(http_scope(), client_sending((0, {"type": "http.disconnect"})))
    assert exchange.app_received == [{"type": "http.disconnect"}]
    assert exchange.status == 200  # the app answered; the server drops it for a gone client


async def test_a_deadline_without_a_guarded_send_still_answers_disconnect() -> None:
    deadline = BodyDeadline(client_sending((0, None)), 0.05)
    with anyio.fail_after(5):
        assert await deadline.receive() == {"type": "http.disconnect"}


def test_build_gateway_takes_the_deadline_from_settings() -> None:
    async def api(scope: Any, receive: Any, send: Any) -> None:
        pass

    assert build_gateway(api).body_read_timeout_s == 60.0
    assert build_gateway(api, Settings(body_read_timeout_s=2.5)).body_read_timeout_s == 2.5


# --- the minimum body rate: a trickle is cut even when every part beats the per-read deadline ---

RATE = BodyRate(bytes_per_s=1000, window_s=0.3)


@pytest.mark.parametrize(
    ("allowance", "waited", "received", "expected"),
    [
        (0.3, 0.1, 0, 0.2),  # waiting drains it
        (0.2, 0.1, 50, 0.15),  # each byte buys back 1/1000 s
        (0.3, 0.0, 10_000, 0.3),  # never more than the window: a burst buys no hour of stalling
        (0.1, 0.1, 0, 0.0),
    ],
)
def test_the_lag_allowance_drains_while_waiting_and_refills_per_byte(
    allowance: float, waited: float, received: int, expected: float
) -> None:
    assert RATE.allowance_after(allowance, waited, received) == pytest.approx(expected)


async def run_paced(steps: list[tuple[float, Message | None]], rate: BodyRate | None = RATE, **kw: Any) -> Exchange:
    exchange = Exchange()

    async def slot(scope: Any, receive: Any, send: Any) -> None:
        await kw.get("app", reading_app)(scope, receive, send, exchange)

    async def send(message: Any) -> None:
        exchange.sent.append(message)

    gateway = Gateway(slot, GatewayRoutes(), body_read_timeout_s=kw.get("timeout", 5.0), body_min_rate=rate)
    with anyio.fail_after(10):
        await gateway(http_scope(headers=[(b"content-length", b"100000")]), client_sending(*steps), send)
    return exchange


async def test_a_trickled_body_gets_408_once_it_falls_a_window_behind() -> None:
    started = anyio.current_time()
    exchange = await run_paced([(0.08, body(b"x", True)) for _ in range(50)])
    took = anyio.current_time() - started
    assert exchange.status == 408
    assert exchange.headers[b"connection"] == b"close"
    assert b"too slowly: under 1000 bytes/s on average for longer than 0.3 s" in exchange.sent[-1]["body"]
    assert exchange.app_received[-1] == {"type": "http.disconnect"}
    assert 0.25 <= took < 1.0


async def test_a_burst_then_a_stall_longer_than_the_window_gets_408() -> None:
    started = anyio.current_time()
    exchange = await run_paced([(0, body(b"x" * 50_000, True)), (0, None)])
    assert exchange.status == 408
    assert anyio.current_time() - started < 1.0  # the 5 s per-read deadline did not decide


async def test_a_body_keeping_the_rate_is_served_however_long_it_takes() -> None:
    steps = [(0.05, body(b"x" * 100, True)) for _ in range(16)] + [(0.05, body(b"end", False))]
    started = anyio.current_time()
    exchange = await run_paced(steps)
    assert anyio.current_time() - started > 2 * RATE.window_s
    assert exchange.status == 200
    assert exchange.sent[-1]["body"] == b"x" * 1600 + b"end"


async def test_time_the_app_spends_not_reading_is_not_held_against_the_client() -> None:
    """Backpressure (an upstream slow to take the body) is no slow client: only waits on receive() count."""

    async def slow_reader(scope: Any, receive: Any, send: Any, exchange: Exchange) -> None:
        received = b""
        while True:
            message = await receive()
            received += message.get("body", b"")
            if not message.get("more_body"):
                break
            await anyio.sleep(0.2)  # longer than the window between parts, three times over
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": received})

    exchange = await run_paced([(0, body(b"a", True)), (0, body(b"b", True)), (0, body(b"c", False))], app=slow_reader)
    assert exchange.status == 200
    assert exchange.sent[-1]["body"] == b"abc"


async def test_without_a_rate_only_the_per_read_deadline_cuts() -> None:
    exchange = await run_paced([(0.08, body(b"x", True)) for _ in range(10)] + [(0, body(b"", False))], rate=None)
    assert exchange.status == 200


async def test_the_per_read_deadline_still_decides_when_it_is_shorter_than_the_allowance() -> None:
    exchange = await run_paced([(0, None)], timeout=0.1)
    assert exchange.status == 408
    assert b"no data for 0.1 s" in exchange.sent[-1]["body"]


def test_build_gateway_takes_the_rate_from_settings_and_0_turns_it_off() -> None:
    async def api(scope: Any, receive: Any, send: Any) -> None:
        pass

    assert build_gateway(api).body_min_rate == BodyRate(1024, 10.0)
    custom = Settings(body_min_rate_bytes_s=4096, body_min_rate_window_s=2.5)
    assert build_gateway(api, custom).body_min_rate == BodyRate(4096, 2.5)
    assert build_gateway(api, Settings(body_min_rate_bytes_s=0)).body_min_rate is None
