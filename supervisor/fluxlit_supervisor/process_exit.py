"""Leaving the process on time while threads still run work that the stop has already given up on.

A thread cannot be stopped from outside, and Python waits for two kinds of them on the way out: the default
executor's, joined by ``loop.shutdown_default_executor()`` when the event loop closes (``asyncio.to_thread``),
and every non-daemon thread, joined by ``threading._shutdown()`` before the interpreter exits (anyio's worker
threads, which run FastAPI's ``def`` routes, are such threads). A ``def`` route sleeping 25 s held a stopped
server 25 s after its request had been cancelled and its child reaped. Here the loop closes without waiting
for its executor, and the exit waits for threads only a moment before it leaves without them.

What this module must never do: cut short anything but that wait for threads. A normal exit (no thread left
behind) is a plain ``sys.exit``, atexit handlers and all.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import NoReturn

logger = logging.getLogger("supervisor")

# Idle worker threads (anyio's get their stop sentinel when the loop's root task ends) leave within
# milliseconds; a thread still busy after this long runs a handler that the stop has already cancelled.
THREAD_EXIT_WAIT = 0.2


class AbandoningExecutor(ThreadPoolExecutor):
    """A default executor whose shutdown never waits for running work (queued work still runs, as before)."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        # The loop's shutdown_default_executor() asks to wait; a call still running there is one whose
        # awaiting task was cancelled at the drain deadline, so nobody is left to want its result.
        super().shutdown(wait=False, cancel_futures=cancel_futures)


class ExitDeadline:
    """Ends the process with `code` when the interpreter still joins threads `within` seconds after it began.

    Armed, its clock starts with the interpreter's join of threads and stops at the first atexit callback,
    which runs once every thread has been joined: atexit handlers (coverage, logging, the app's own) run in
    full whatever they take, and nothing happens at all while the process goes on.
    """

    def __init__(self, code: int, within: float, *, hard_exit: Callable[[int], object] = os._exit) -> None:
        self.code = code
        self.within = within
        self._hard_exit = hard_exit
        self._disarmed = threading.Event()

    def arm(self) -> None:
        atexit.register(self.disarm)  # registered last, so it runs first: right after the threads are joined
        # CPython calls these as threading._shutdown() begins, before it joins (concurrent.futures uses it
        # too, to join its workers); without it the clock starts now, which is only earlier.
        register_at_thread_shutdown = getattr(threading, "_register_atexit", None)
        if register_at_thread_shutdown is None:  # pragma: no cover - CPython 3.9+ has it
            self.start()
        else:
            register_at_thread_shutdown(self.start)

    def start(self) -> None:
        threading.Thread(target=self._expire, name="supervisor exit deadline", daemon=True).start()

    def disarm(self) -> None:
        self._disarmed.set()

    def _expire(self) -> None:
        if self._disarmed.wait(self.within):
            return
        left = describe_threads(running_threads())
        logger.warning(
            "exiting without waiting for %d thread(s) still running: %s",
            len(left),
            "; ".join(left),
            extra={"threads": left, "exit_code": self.code},
        )
        logging.shutdown()  # flush every handler: os._exit skips the atexit that would
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing more can be said there
                stream.flush()
        self._hard_exit(self.code)


def running_threads() -> list[threading.Thread]:
    """The threads an interpreter exit would wait for (non-daemon, alive, not the caller's)."""
    current = threading.current_thread()
    return [
        thread
        for thread in threading.enumerate()
        if thread.is_alive() and not thread.daemon and thread is not current and thread is not threading.main_thread()
    ]


def describe_threads(threads: list[threading.Thread]) -> list[str]:
    """'name (file:line in function)' for each thread: where the work that held the exit is."""
    frames = sys._current_frames()
    described = []
    for thread in threads:
        frame = frames.get(thread.ident) if thread.ident is not None else None
        where = f" ({frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name})" if frame else ""
        described.append(f"{thread.name}{where}")
    return described


def exit_process(code: int, *, within: float = THREAD_EXIT_WAIT) -> NoReturn:
    """End the process as `sys.exit(code)` does, except that threads still running hold it `within` s at most.

    Call it only to end the process (an entry point's last word): what it arms stays armed. A SIGINT or
    SIGTERM arriving meanwhile exits at once with the same code: the stop it would ask for is done.
    """
    ExitDeadline(code, within).arm()
    if threading.current_thread() is threading.main_thread():

        def exit_now(signum: int, frame: FrameType | None) -> None:
            os._exit(code)

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, exit_now)
    sys.exit(code)
