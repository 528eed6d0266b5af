"""From a ``schedule:`` entry of ``connector.yaml`` to an APScheduler trigger, with its misfire grace.

``every: 5m`` becomes an interval trigger, ``cron: "30 2 * * *"`` a cron trigger, both in the schedule's zone
(``timezone:`` of ``connector.yaml``). Crontab numbers weekdays from Sunday = 0; APScheduler 3 from Monday = 0
(its issue #286), so weekday numbers are translated to names before APScheduler sees them.
"""

from __future__ import annotations

import re
from datetime import tzinfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector.config import ScheduleJob, parse_duration

__all__ = ["CRON_MISFIRE_GRACE_S", "build_trigger", "crontab_weekdays", "describe", "misfire_grace"]

CRON_MISFIRE_GRACE_S = 6 * 3600
"""A cron run missed by up to this long still runs: a nightly reconcile that was due while the host rebooted
should run late rather than skip a day; beyond this it waits for the next night."""

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A weekday number, not a step (``*/2``) and not part of a longer number.
_WEEKDAY_NUMBER = re.compile(r"(?<![/\d])\d+")


def crontab_weekdays(field: str) -> str:
    """The crontab day-of-week field with numbers as names (``1-5`` → ``mon-fri``, ``0`` and ``7`` → ``sun``).

    Raises:
        ValueError: a weekday number above 7.
    """

    def name(match: re.Match[str]) -> str:
        number = int(match.group(0))
        if number > 7:
            raise ValueError(f"weekday {number} is not 0-7 in cron day-of-week {field!r}")
        return _WEEKDAYS[number]

    return _WEEKDAY_NUMBER.sub(name, field)


def build_trigger(spec: ScheduleJob, zone: tzinfo) -> BaseTrigger:
    """The APScheduler trigger of ``spec`` in ``zone``."""
    if spec.every is not None:
        return IntervalTrigger(seconds=int(parse_duration(spec.every).total_seconds()), timezone=zone)
    assert spec.cron is not None  # ScheduleJob guarantees exactly one of every / cron
    minute, hour, day, month, weekday = spec.cron.split()
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=crontab_weekdays(weekday),
        timezone=zone,
    )


def describe(spec: ScheduleJob) -> str:
    """``every 5m`` or ``cron 30 2 * * *``: the trigger as ``connector.yaml`` spells it."""
    return f"every {spec.every}" if spec.every is not None else f"cron {spec.cron}"


def misfire_grace(spec: ScheduleJob) -> int:
    """Seconds a run may start late and still run (a later one is skipped; coalescing merges the backlog).

    An interval job may be late by one interval — later than that, the next run is as good. A cron job gets
    :data:`CRON_MISFIRE_GRACE_S`.
    """
    if spec.every is not None:
        return max(1, int(parse_duration(spec.every).total_seconds()))
    return CRON_MISFIRE_GRACE_S
