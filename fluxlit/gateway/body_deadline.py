"""The request body deadline: every wait for body data is bounded, and the body as a whole must keep a pace."""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from fluxlit.asgi_types import Message, Receive, Send, send_text


@dataclass(frozen=True)
class BodyRate:
    """A minimum average pace for a request body, as Apache's mod_reqtimeout MinRate: `bytes_per_s` on average,
    falling behind by at most `window_s` seconds' worth (FLUXLIT_GATEWAY_BODY_MIN_RATE_*).

    The lag allowance is a bucket of seconds: it starts full (`window_s`), drains while the gateway waits for
    body data, refills by 1/`bytes_per_s` s for each byte that arrives, and never holds more than `window_s`.
    Empty means the body is too slow. A body trickling 1 byte every 4 s empties it after ~`window_s` seconds
    whatever its per-read deadline; a burst followed by a stall buys at most `window_s` seconds, not an hour.
    Only time spent waiting on the client counts: while the app does not read (backpressure), nothing drains.
    """

    bytes_per_s: float
    window_s: float

    def allowance_after(self, allowance: float, waited: float, received: int) -> float:
        """Seconds of lag left after waiting `waited` seconds for a part of `received` bytes."""
        return min(self.window_s, allowance - waited + received / self.bytes_per_s)


class BodyDeadline:
    """Bounds each wait for request body data by FLUXLIT_GATEWAY_BODY_READ_TIMEOUT_S and, with a `rate`, the body's
    average pace (see BodyRate).

    When a wait runs out before a response started, the client gets 408 with ``Connection: close`` (the server
    then closes the connection); after a response started, that response is cut off instead, which closes the
    connection mid-response. Either way the app's receive() answers ``http.disconnect`` from then on and
    whatever the app still sends is dropped. Once the body is complete receive() is not timed again, so a
    long download or an app waiting for the disconnect is never cut.
    """

    __slots__ = ("_allowance", "_complete", "_expired", "_receive", "_send", "_started", "rate", "timeout")

    def __init__(self, receive: Receive, timeout: float, rate: BodyRate | None = None) -> None:
        self._receive = receive
        self.timeout = timeout
        self.rate = rate
        self._allowance = rate.window_s if rate is not None else 0.0
        self._send: Send | None = None
        self._complete = self._expired = self._started = False

    async def receive(self) -> Message:
        if self._complete:
            return await self._receive()
        if self._expired:
            return {"type": "http.disconnect"}
        rate = self.rate
        if rate is None:
            with anyio.move_on_after(self.timeout):
                message = await self._receive()
                self._complete = message["type"] != "http.request" or not message.get("more_body", False)
                return message
            return await self._expire(self._stalled_text())
        limit = min(self.timeout, self._allowance)
        started = anyio.current_time()
        with anyio.move_on_after(limit):
            message = await self._receive()
            waited = anyio.current_time() - started
            self._allowance = rate.allowance_after(self._allowance, waited, len(message.get("body", b"")))
            self._complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message
        too_slow = limit < self.timeout
        return await self._expire(self._too_slow_text(rate) if too_slow else self._stalled_text())

    def guard(self, send: Send) -> Send:
        """`send` as the app should use it: noting when the response starts, silent once the deadline passed."""
        self._send = send

        async def guarded(message: Message) -> None:
            if self._expired:
                return
            if message["type"] == "http.response.start":
                self._started = True
            await send(message)

        return guarded

    def _stalled_text(self) -> str:
        return f"The request body stalled: no data for {self.timeout:g} s.\n"

    @staticmethod
    def _too_slow_text(rate: BodyRate) -> str:
        return (
            f"The request body arrived too slowly: under {rate.bytes_per_s:g} bytes/s on average "
            f"for longer than {rate.window_s:g} s.\n"
        )

    async def _expire(self, text: str) -> Message:
        self._expired = True
        if not self._started and self._send is not None:
            await send_text(self._send, 408, text, [(b"connection", b"close")])
        return {"type": "http.disconnect"}
