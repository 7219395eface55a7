"""PID 1 reaping: the decision table and a real sweep over our own zombies."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
from fluxlit_supervisor.reaper import ManagedPids, ReapAction, reap_decision, reap_orphans


@pytest.mark.parametrize(
    ("pid", "managed", "spawning", "action"),
    [
        (100, set(), False, ReapAction.REAP),
        (100, {200}, False, ReapAction.REAP),
        (100, {100}, False, ReapAction.LEAVE),
        (100, set(), True, ReapAction.LEAVE),
        (0, set(), False, ReapAction.LEAVE),
    ],
)
def test_reap_decision(pid: int, managed: set[int], spawning: bool, action: ReapAction) -> None:
    assert reap_decision(pid, managed, spawning) is action


def test_spawn_in_progress_is_counted_and_released() -> None:
    managed = ManagedPids()
    with managed.spawn_in_progress(), managed.spawn_in_progress():
        assert managed.spawning == 2
    assert managed.spawning == 0


@pytest.fixture
def zombie() -> Iterator[int]:
    """A direct child of this process that has exited and not been waited for."""
    pid = os.posix_spawn("/bin/true", ["true"], dict(os.environ))
    try:
        # Blocks until it exits, but WNOWAIT leaves the zombie in place.
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        yield pid
    finally:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_an_orphan_zombie_is_reaped(zombie: int) -> None:
    assert reap_orphans(ManagedPids()) == [zombie]
    with pytest.raises(ChildProcessError):
        os.waitpid(zombie, os.WNOHANG)


def test_our_own_child_is_left_for_asyncio(zombie: int) -> None:
    managed = ManagedPids()
    managed.pids.add(zombie)
    assert reap_orphans(managed) == []
    assert os.waitpid(zombie, os.WNOHANG)[0] == zombie


def test_nothing_is_reaped_while_a_spawn_is_in_flight(zombie: int) -> None:
    managed = ManagedPids()
    with managed.spawn_in_progress():
        assert reap_orphans(managed) == []
    assert reap_orphans(managed) == [zombie]
