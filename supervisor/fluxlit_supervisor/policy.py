"""Restart policy: backoff with jitter, uptime reset and crash budget, as pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

# factor ** exponent overflows a float long before the exponent matters: the delay is capped anyway.
_MAX_EXPONENT = 64


class UniformSource(Protocol):
    """Anything with `random.Random.uniform`'s signature; tests pass a seeded Random or a stub."""

    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True)
class Restart:
    """Start the next generation after `delay` seconds."""

    delay: float
    consecutive_failures: int


@dataclass(frozen=True)
class GiveUp:
    """The crash budget is spent: `failures` failures happened within `window` seconds."""

    failures: int
    window: float


Decision: TypeAlias = Restart | GiveUp


@dataclass(frozen=True)
class FailureLedger:
    """What the policy remembers between runs: recent failure times and the current backoff streak."""

    failure_times: tuple[float, ...] = ()
    consecutive: int = 0


@dataclass(frozen=True)
class RestartPolicy:
    """When and how fast a child is restarted, and when the supervisor gives up."""

    on_exit: Literal["restart", "exit"] = "restart"
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_factor: float = 2.0
    jitter: float = 0.1
    min_uptime: float = 10.0
    max_failures: int = 5
    failure_window: float = 60.0

    def __post_init__(self) -> None:
        if self.on_exit not in ("restart", "exit"):
            raise ValueError(f"on_exit={self.on_exit!r} is not one of 'restart', 'exit'")
        _require(self.backoff_initial >= 0, "backoff_initial", self.backoff_initial, "must be >= 0")
        _require(
            self.backoff_max >= self.backoff_initial,
            "backoff_max",
            self.backoff_max,
            f"must be >= backoff_initial ({self.backoff_initial})",
        )
        _require(self.backoff_factor >= 1, "backoff_factor", self.backoff_factor, "must be >= 1")
        _require(0 <= self.jitter < 1, "jitter", self.jitter, "must be a fraction in [0, 1)")
        _require(self.min_uptime >= 0, "min_uptime", self.min_uptime, "must be >= 0")
        _require(self.max_failures >= 1, "max_failures", self.max_failures, "must be >= 1")
        _require(self.failure_window > 0, "failure_window", self.failure_window, "must be > 0")

    def base_delay(self, consecutive_failures: int) -> float:
        """The backoff before jitter for the n-th consecutive failure (n >= 1)."""
        exponent = min(max(consecutive_failures - 1, 0), _MAX_EXPONENT)
        return min(self.backoff_max, self.backoff_initial * self.backoff_factor**exponent)

    def next_delay(self, consecutive_failures: int, rng: UniformSource) -> float:
        """The backoff for the n-th consecutive failure, with +-jitter applied."""
        base = self.base_delay(consecutive_failures)
        spread = base * self.jitter
        return max(0.0, base + rng.uniform(-spread, spread))

    def record_exit(self, ledger: FailureLedger, *, now: float, uptime: float) -> FailureLedger:
        """Fold one ended run into the ledger; `now` is a monotonic clock, `uptime` how long it was ready."""
        recent = tuple(t for t in ledger.failure_times if now - t < self.failure_window)
        if uptime >= self.min_uptime:
            # A long healthy run proves the child works: the streak restarts and the budget is not charged.
            return FailureLedger(failure_times=recent, consecutive=1)
        return FailureLedger(failure_times=(*recent, now), consecutive=ledger.consecutive + 1)

    def decide(
        self, ledger: FailureLedger, *, now: float, uptime: float, rng: UniformSource
    ) -> tuple[FailureLedger, Decision]:
        """Record an ended run and say whether to restart (after how long) or give up."""
        updated = self.record_exit(ledger, now=now, uptime=uptime)
        if len(updated.failure_times) >= self.max_failures:
            return updated, GiveUp(failures=len(updated.failure_times), window=self.failure_window)
        delay = self.next_delay(updated.consecutive, rng)
        return updated, Restart(delay=delay, consecutive_failures=updated.consecutive)


def _require(ok: bool, name: str, value: float, rule: str) -> None:
    if not ok or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(f"RestartPolicy.{name}={value!r} {rule}")
