"""Leaving the process while threads still run: the executor that does not wait, the exit that waits a moment."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fluxlit_supervisor.process_exit import AbandoningExecutor, ExitDeadline, describe_threads, running_threads


@pytest.fixture
def blocked_thread() -> Iterator[threading.Thread]:
    """A non-daemon thread waiting in `hold` until the test ends."""
    release = threading.Event()

    def hold() -> None:
        release.wait(20)

    thread = threading.Thread(target=hold, name="blocked handler")
    thread.start()
    yield thread
    release.set()
    thread.join(5)


def test_abandoning_executor_shutdown_returns_while_its_work_still_runs() -> None:
    release = threading.Event()
    executor = AbandoningExecutor(max_workers=1)
    future = executor.submit(release.wait, 20)
    started = time.monotonic()
    executor.shutdown(wait=True)  # what the event loop's shutdown_default_executor() asks
    assert time.monotonic() - started < 1.0
    assert not future.done()
    release.set()
    assert future.result(timeout=5) is True


def test_abandoning_executor_is_a_thread_pool_the_loop_accepts() -> None:
    # asyncio.set_default_executor() insists on a ThreadPoolExecutor.
    assert issubclass(AbandoningExecutor, ThreadPoolExecutor)


def test_running_threads_are_the_live_non_daemon_ones_but_the_main_thread(
    blocked_thread: threading.Thread,
) -> None:
    daemon = threading.Thread(target=time.sleep, args=(5,), daemon=True)
    daemon.start()
    finished = threading.Thread(target=lambda: None)
    finished.start()
    finished.join()
    found = running_threads()
    assert blocked_thread in found
    assert daemon not in found
    assert finished not in found
    assert threading.main_thread() not in found


def test_describe_threads_says_where_each_one_is(blocked_thread: threading.Thread) -> None:
    [description] = describe_threads([blocked_thread])
    assert description.startswith("blocked handler (")
    assert "threading.py" in description or "in hold" in description  # waiting inside Event.wait, called by hold
    idle = threading.Thread(target=lambda: None, name="never started")
    assert describe_threads([idle]) == ["never started"]


def test_expired_exit_deadline_names_the_threads_still_running_and_exits_with_the_code(
    blocked_thread: threading.Thread, caplog: pytest.LogCaptureFixture
) -> None:
    exits: list[int] = []
    exited = threading.Event()

    def hard_exit(code: int) -> None:
        exits.append(code)
        exited.set()

    caplog.set_level(logging.WARNING, logger="supervisor")
    started = time.monotonic()
    ExitDeadline(7, 0.05, hard_exit=hard_exit).start()
    assert exited.wait(5)
    assert time.monotonic() - started >= 0.05
    assert exits == [7]
    [record] = [r for r in caplog.records if "still running" in r.getMessage()]
    assert "blocked handler (" in record.getMessage()


def test_disarmed_exit_deadline_does_nothing(blocked_thread: threading.Thread) -> None:
    exits: list[int] = []
    deadline = ExitDeadline(7, 0.05, hard_exit=exits.append)
    deadline.start()
    deadline.disarm()
    time.sleep(0.2)
    assert exits == []


def run_script(body: str, *, within: float = 30.0, send_sigterm_after: float | None = None) -> tuple[int, str, str]:
    script = "import logging, threading, time\nlogging.basicConfig()\n" + textwrap.dedent(body)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if send_sigterm_after is not None:
            time.sleep(send_sigterm_after)
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=within)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    return proc.returncode, out, err


STUCK_THREAD = """
def handler():
    time.sleep(30)

threading.Thread(target=handler, name="def route").start()
"""


@pytest.mark.slow
def test_exit_process_leaves_a_thread_that_still_runs_and_keeps_the_exit_code() -> None:
    started = time.monotonic()
    code, _, err = run_script(STUCK_THREAD + "from fluxlit_supervisor import exit_process\nexit_process(3)\n")
    assert code == 3
    assert time.monotonic() - started < 10  # not the thread's 30 s
    assert "exiting without waiting for 1 thread(s) still running: def route (" in err
    assert "in handler)" in err


@pytest.mark.slow
def test_exit_process_with_no_thread_left_is_a_normal_exit() -> None:
    code, out, err = run_script(
        """
        import atexit
        atexit.register(lambda: print("atexit ran", flush=True))
        threading.Thread(target=time.sleep, args=(0.05,), name="short job").start()
        from fluxlit_supervisor import exit_process
        exit_process(4)
        """
    )
    assert code == 4
    assert "atexit ran" in out  # the short job was waited for, and the exit went on as usual
    assert "still running" not in err


@pytest.mark.slow
def test_sigterm_while_exit_process_waits_for_threads_exits_at_once_with_the_code() -> None:
    started = time.monotonic()
    code, _, _ = run_script(
        STUCK_THREAD
        + "print('exiting', flush=True)\nfrom fluxlit_supervisor import exit_process\nexit_process(5, within=60)\n",
        send_sigterm_after=1.0,
    )
    assert code == 5
    assert time.monotonic() - started < 10
