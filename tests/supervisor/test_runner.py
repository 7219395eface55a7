"""The runner's stop deadlines: graceful_timeout + the child's grace + 1 s, whatever the handlers do."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import anyio
import anyio.to_thread
import fluxlit_supervisor
import httpx
import pytest
from fluxlit_supervisor import ExitCode

from tests._lifespan import answer_lifespan
from tests.supervisor.test_run_supervised import get, run_spec, running, seconds_to_stop, stuck_request

GRACEFUL_TIMEOUT = 0.3
CHILD_GRACE = 1.0
STOP_BUDGET = GRACEFUL_TIMEOUT + CHILD_GRACE + 1.0


def app_blocking_on(release: threading.Event, *, in_executor: bool = False, on_request: Any = None) -> Any:
    """An app whose every request waits for `release` in a thread: anyio's (a `def` route) or the loop's."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if on_request is not None:
            on_request()
        if in_executor:
            await asyncio.to_thread(release.wait)
        else:
            await anyio.to_thread.run_sync(release.wait)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"released"})

    return app


@pytest.fixture
def release() -> Any:
    """Set at the end of the test (or by a failsafe), so that no blocked thread outlives it."""
    event = threading.Event()
    failsafe = threading.Timer(20.0, event.set)
    failsafe.start()
    yield event
    event.set()
    failsafe.cancel()


@pytest.mark.anyio
async def test_a_request_blocked_in_a_worker_thread_is_answered_when_the_drain_deadline_passes(
    hub: Any, free_port: Any, release: threading.Event
) -> None:
    arrived = anyio.Event()
    app = app_blocking_on(release, on_request=arrived.set)
    async with running(hub, free_port(), None, graceful_timeout=GRACEFUL_TIMEOUT, app=app) as run:
        with anyio.fail_after(10):
            await run.ready.wait()
        async with anyio.create_task_group() as group:
            replies: list[httpx.Response] = []

            async def blocked_request() -> None:
                replies.append(await get(f"{run.base_url}/", read_timeout=10))

            group.start_soon(blocked_request)
            with anyio.fail_after(10):
                await arrived.wait()  # in the app (not still being parsed): its answer is the app's to give
            elapsed = await seconds_to_stop(run, hub)
    assert run.code == ExitCode.OK
    assert [reply.status_code for reply in replies] == [500]  # the cancelled request, answered by hypercorn
    assert elapsed < GRACEFUL_TIMEOUT + 1.0
    assert not release.is_set(), "the thread was released before the stop ended: the test proves nothing"


def stubborn_app(arrived: anyio.Event, *, swallows: int) -> Any:
    """An app whose requests swallow their first `swallows` cancellations, as buggy apps do."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        arrived.set()
        for _ in range(swallows):
            with contextlib.suppress(BaseException):
                await anyio.sleep(60)
        await anyio.sleep(60)

    return app


@pytest.mark.anyio
async def test_stop_budget_holds_with_a_request_ignoring_cancellation_and_a_child_ignoring_sigterm(
    hub: Any, free_port: Any, fake_child: Any
) -> None:
    child = fake_child("--ignore-sigterm", stop_grace=CHILD_GRACE)
    arrived = anyio.Event()
    # Two: the runner's cancellation at the deadline, and the next one.
    app = stubborn_app(arrived, swallows=2)
    async with running(hub, free_port(), child, graceful_timeout=GRACEFUL_TIMEOUT, app=app) as run:
        await hub.wait_for(lambda s: s.state == "ready")
        async with stuck_request(run):
            with anyio.fail_after(10):
                await arrived.wait()
            elapsed = await seconds_to_stop(run, hub)
    assert run.code == ExitCode.OK
    assert elapsed < STOP_BUDGET, f"the stop took {elapsed:.2f}s, over its budget of {STOP_BUDGET}s"


@pytest.mark.anyio
async def test_second_stop_request_during_the_wind_down_shortens_it(hub: Any, free_port: Any) -> None:
    arrived = anyio.Event()
    async with running(hub, free_port(), None, graceful_timeout=0.1, app=stubborn_app(arrived, swallows=1)) as run:
        with anyio.fail_after(10):
            await run.ready.wait()
        async with stuck_request(run):
            with anyio.fail_after(10):
                await arrived.wait()
            hub.request_stop()
            await anyio.sleep(0.15)  # past the drain deadline: winding down
            elapsed = await seconds_to_stop(run, hub)
    assert run.code == ExitCode.OK
    assert elapsed < 0.45  # the forced wind-down and the cancelled server's wait, not the full wind-down


def test_run_returns_while_a_call_in_the_default_executor_still_runs(
    hub: Any, free_port: Any, release: threading.Event
) -> None:
    port = free_port()
    replies: list[str] = []

    def request() -> None:
        try:
            replies.append(str(httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code))
        except httpx.HTTPError as exc:
            replies.append(type(exc).__name__)

    client = threading.Thread(target=request)
    app = app_blocking_on(release, in_executor=True, on_request=hub.request_stop)
    started = time.monotonic()
    code = fluxlit_supervisor.run(
        run_spec(app, port, None, hub, graceful_timeout=GRACEFUL_TIMEOUT, ready_callback=client.start)
    )
    elapsed = time.monotonic() - started
    client.join(10)
    assert code == ExitCode.OK
    assert replies == ["500"]
    assert not release.is_set(), "the executor's call was released before run() returned: the test proves nothing"
    assert elapsed < 10  # closing the loop did not wait for the executor's call (released after 20 s at the latest)
