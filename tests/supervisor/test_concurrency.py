"""first_of and Pulse: the two small concurrency tools the supervisor is built from."""

from __future__ import annotations

from typing import Any, cast

import anyio
import pytest
from fluxlit_supervisor.concurrency import Pulse, first_of


@pytest.mark.anyio
async def test_first_of_returns_the_first_finisher_and_cancels_the_rest() -> None:
    finished: list[str] = []

    async def slow() -> None:
        await anyio.sleep(5)
        finished.append("slow")

    async def fast() -> None:
        await anyio.sleep(0.01)
        finished.append("fast")

    with anyio.fail_after(2):
        assert await first_of(slow, fast) == 1
    assert finished == ["fast"]


@pytest.mark.anyio
async def test_first_of_yields_to_an_enclosing_deadline() -> None:
    with anyio.move_on_after(0.05) as scope:
        await first_of(anyio.sleep_forever, anyio.sleep_forever)
    assert scope.cancelled_caught


@pytest.mark.anyio
async def test_first_of_propagates_errors() -> None:
    async def broken() -> None:
        raise LookupError("boom")

    with pytest.raises(Exception) as caught:  # noqa: PT011 - an ExceptionGroup (builtin only from 3.11)
        await first_of(anyio.sleep_forever, broken)
    group = cast(Any, caught.value)  # BaseExceptionGroup, which Python 3.10 lacks as a name
    assert [type(e) for e in group.exceptions] == [LookupError]


@pytest.mark.anyio
async def test_pulse_fires_once_per_consume() -> None:
    pulse = Pulse()
    assert pulse.consume() is False
    pulse.fire()
    pulse.fire()
    with anyio.fail_after(1):
        await pulse.wait()
    assert pulse.consume() is True
    assert pulse.fired is False
    with anyio.move_on_after(0.05) as scope:
        await pulse.wait()
    assert scope.cancelled_caught


@pytest.mark.anyio
async def test_first_of_cancelled_from_outside_lets_the_cancellation_through() -> None:
    with anyio.CancelScope() as scope:
        scope.cancel()
        await first_of(anyio.sleep_forever)
        pytest.fail("first_of returned under a cancelled scope")
    assert scope.cancelled_caught
