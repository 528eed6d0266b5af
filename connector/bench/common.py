"""What every benchmark shares: peak memory, the machine's load, and targets printed with PASS or MISS."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from connector.reconcile.reader import own_peak_rss_mb

__all__ = ["Target", "load_average", "peak_rss_mb", "timed", "verdict_lines"]

T = TypeVar("T")


def peak_rss_mb() -> float:
    """This process's own peak resident set size in MB.

    ``VmHWM`` where ``/proc`` has it: Linux keeps ``ru_maxrss`` across ``exec``, so a benchmark child started by
    ``subprocess`` would report its parent's peak. Elsewhere ``ru_maxrss`` (kilobytes on Linux).
    """
    own = own_peak_rss_mb()
    return own if own is not None else round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: the machine is shared, so every result says how busy it was."""
    return [round(value, 2) for value in os.getloadavg()]


def timed(action: Callable[[], T]) -> tuple[T, float]:
    """Run ``action``; return its result and the wall seconds it took."""
    started = time.perf_counter()
    result = action()
    return result, round(time.perf_counter() - started, 3)


@dataclass(frozen=True)
class Target:
    """One target of an issue: ``value`` must be at most (or, with ``at_least``, at least) ``limit``.

    Attributes:
        name: what is measured.
        value: the measured value.
        limit: the target.
        at_least: the value must reach the limit rather than stay under it.
    """

    name: str
    value: float
    limit: float
    at_least: bool = False

    @property
    def ok(self) -> bool:
        """Whether the measure meets its target."""
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def line(self) -> str:
        """``name  value  (target ≤ limit)  PASS|MISS``."""
        sign = "≥" if self.at_least else "≤"
        status = "PASS" if self.ok else "MISS"
        return f"  {self.name:<44} {self.value:>10.3f}   target {sign} {self.limit:<8g} {status}"


def verdict_lines(targets: list[Target]) -> list[str]:
    """The target lines, then a summary line."""
    missed = [target.name for target in targets if not target.ok]
    summary = "all targets met" if not missed else f"MISSED: {', '.join(missed)}"
    return ["targets:", *(target.line() for target in targets), summary]
