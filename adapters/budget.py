"""Per-system request budgets: a thread-safe token bucket shared by every client and thread of one system.

DESIGN §5 names the known limits (Bitrix24 2 req/s, amoCRM 7 req/s, MoySklad 45 per 3 s); a system config names
a preset or gives its own budget.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt

__all__ = ["BUDGET_PRESETS", "Clock", "RateBudget", "Sleep", "TokenBucket", "shared_bucket"]

Clock = Callable[[], float]
"""Monotonic seconds (``time.monotonic``); tests inject a fake."""
Sleep = Callable[[float], None]
"""How to wait (``time.sleep``); tests inject a recorder so nothing really sleeps."""


class RateBudget(BaseModel):
    """A request budget: at most ``requests`` per ``per_seconds``, with a burst of ``requests``."""

    model_config = ConfigDict(frozen=True)

    requests: PositiveInt
    per_seconds: PositiveFloat = 1.0


BUDGET_PRESETS: Mapping[str, RateBudget] = {
    "bitrix24": RateBudget(requests=2, per_seconds=1),
    "amocrm": RateBudget(requests=7, per_seconds=1),
    "moysklad": RateBudget(requests=45, per_seconds=3),
}
"""Known per-system limits (DESIGN §5); a system config names one or gives its own budget."""


class TokenBucket:
    """A thread-safe token bucket: a burst of ``budget.requests``, refilled evenly over ``per_seconds``.

    A caller that finds the bucket empty reserves the next token and sleeps outside the lock, so waiting threads
    are served in order and never busy-wait.

    Args:
        budget: the request budget.
        clock: monotonic seconds (injected in tests).
        sleep: how to wait (injected in tests).
    """

    def __init__(
        self, budget: RateBudget, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        self.budget = budget
        self._clock = clock
        self._sleep = sleep
        self._rate = budget.requests / budget.per_seconds
        self._tokens = float(budget.requests)
        self._stamp = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is available; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.budget.requests), self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self._rate
        if wait > 0:
            self._sleep(wait)
        return wait


_BUCKETS: dict[str, TokenBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def shared_bucket(system: str, budget: RateBudget) -> TokenBucket:
    """The process-wide bucket of ``system``, so every client and thread of one system shares one budget."""
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get(system)
        if bucket is None or bucket.budget != budget:
            bucket = _BUCKETS[system] = TokenBucket(budget)
        return bucket
