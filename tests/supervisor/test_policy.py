"""RestartPolicy as a specification: backoff, jitter bounds, uptime reset, crash budget."""

from __future__ import annotations

import random
from typing import Any

import pytest
from fluxlit_supervisor import FailureLedger, GiveUp, Restart, RestartPolicy


class FixedJitter:
    """A UniformSource that always picks the same point of the interval: 0 = low end, 1 = high end."""

    def __init__(self, position: float) -> None:
        self.position = position

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.position


NO_JITTER = RestartPolicy(backoff_initial=0.5, backoff_max=30.0, backoff_factor=2.0, jitter=0.0)


@pytest.mark.parametrize(
    ("consecutive", "expected"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (6, 16.0), (7, 30.0), (50, 30.0), (10_000, 30.0)],
)
def test_backoff_doubles_up_to_the_cap(consecutive: int, expected: float) -> None:
    assert NO_JITTER.next_delay(consecutive, FixedJitter(0.5)) == pytest.approx(expected)


@pytest.mark.parametrize(("position", "expected"), [(0.0, 1.8), (0.5, 2.0), (1.0, 2.2)])
def test_jitter_spreads_the_delay_by_the_fraction(position: float, expected: float) -> None:
    policy = RestartPolicy(backoff_initial=0.5, jitter=0.1)
    assert policy.next_delay(3, FixedJitter(position)) == pytest.approx(expected)


def test_jittered_delays_stay_within_bounds() -> None:
    policy = RestartPolicy(backoff_initial=1.0, backoff_max=8.0, jitter=0.25)
    rng = random.Random(1234)
    for consecutive in range(1, 8):
        base = policy.base_delay(consecutive)
        for _ in range(200):
            assert base * 0.75 <= policy.next_delay(consecutive, rng) <= base * 1.25


def test_short_runs_grow_the_streak_and_charge_the_budget() -> None:
    policy = RestartPolicy(min_uptime=10.0, max_failures=5, failure_window=60.0)
    ledger = FailureLedger()
    for now in (100.0, 101.0, 102.0):
        ledger = policy.record_exit(ledger, now=now, uptime=1.0)
    assert ledger == FailureLedger(failure_times=(100.0, 101.0, 102.0), consecutive=3)


def test_a_long_run_resets_the_backoff_and_is_not_charged() -> None:
    policy = RestartPolicy(min_uptime=10.0)
    ledger = FailureLedger(failure_times=(100.0, 101.0), consecutive=4)
    ledger, decision = policy.decide(ledger, now=130.0, uptime=25.0, rng=FixedJitter(0.5))
    assert ledger == FailureLedger(failure_times=(100.0, 101.0), consecutive=1)
    assert decision == Restart(delay=policy.backoff_initial, consecutive_failures=1)


def test_failures_older_than_the_window_are_forgotten() -> None:
    policy = RestartPolicy(failure_window=60.0)
    ledger = FailureLedger(failure_times=(10.0, 50.0, 90.0), consecutive=3)
    assert policy.record_exit(ledger, now=115.0, uptime=0.0).failure_times == (90.0, 115.0)


@pytest.mark.parametrize(
    ("exits", "expected"),
    [
        # (now, uptime) of each exit → the last decision
        ([(0, 0)], Restart(0.5, 1)),
        ([(0, 0), (1, 0), (2, 0), (3, 0)], Restart(4.0, 4)),
        ([(0, 0), (1, 0), (2, 0), (3, 0), (4, 0)], GiveUp(5, 60.0)),
        # the same five failures spread over more than the window never exhaust the budget
        ([(0, 0), (20, 0), (40, 0), (60, 0), (80, 0)], Restart(8.0, 5)),
        # long runs in between do not count
        ([(0, 0), (30, 20), (31, 0), (60, 20), (61, 0)], Restart(1.0, 2)),
    ],
)
def test_decide_table(exits: list[tuple[float, float]], expected: Any) -> None:
    policy = RestartPolicy(jitter=0.0, min_uptime=10.0, max_failures=5, failure_window=60.0)
    ledger = FailureLedger()
    decision: Any = None
    for now, uptime in exits:
        ledger, decision = policy.decide(ledger, now=now, uptime=uptime, rng=FixedJitter(0.5))
    assert decision == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("backoff_initial", -1.0),
        ("backoff_max", 0.1),
        ("backoff_factor", 0.5),
        ("jitter", 1.0),
        ("jitter", -0.1),
        ("max_failures", 0),
        ("failure_window", 0.0),
        ("min_uptime", float("nan")),
        ("on_exit", "ignore"),
    ],
)
def test_invalid_policy_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        RestartPolicy(**{field: value})
