"""What ``schedule list`` shows: each configured job, its trigger, its next run and who holds its lease.

The next run comes from APScheduler's table when a scheduler has stored the job (the time it will really fire,
``null`` when paused), else from the trigger itself (``stored`` tells which). Reading never unpickles
APScheduler's job state and never starts a scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import inspect, text

from connector.config import ConnectorConfig
from connector.scheduler.leases import LeaseInfo, Leases
from connector.scheduler.runner import JOB_TABLE, lease_name
from connector.scheduler.triggers import build_trigger, describe, misfire_grace
from connector.store import Store

__all__ = ["JobStatus", "job_statuses"]


@dataclass(frozen=True)
class JobStatus:
    """One scheduled job as ``schedule list`` reports it.

    Attributes:
        name: the ``schedule:`` entry.
        schedule: ``every 5m`` or ``cron 30 2 * * *``.
        run: the commands it runs, in order.
        next_run: the next run time in the schedule's zone, or None (paused, or the trigger has no more).
        stored: True when ``next_run`` is the one stored by a scheduler, False when computed from the trigger.
        misfire_grace_s: seconds a run may start late and still run.
        coalesce: a backlog of missed runs runs once.
        lease: the lease row of a run in progress (or of a crashed one not yet expired/taken), else None.
    """

    name: str
    schedule: str
    run: tuple[str, ...]
    next_run: datetime | None
    stored: bool
    misfire_grace_s: int
    coalesce: bool
    lease: LeaseInfo | None

    def as_json(self, now: datetime) -> dict[str, Any]:
        """The stable JSON shape of ``schedule list --format json`` (times ISO 8601 with their offset)."""
        lease = self.lease
        return {
            "name": self.name,
            "schedule": self.schedule,
            "run": list(self.run),
            "next_run": self.next_run.isoformat() if self.next_run else None,
            "next_run_stored": self.stored,
            "misfire_grace_s": self.misfire_grace_s,
            "coalesce": self.coalesce,
            "lease": None
            if lease is None
            else {
                "holder": lease.holder,
                "acquired_at": lease.acquired_at.isoformat(),
                "heartbeat_at": lease.heartbeat_at.isoformat(),
                "heartbeat_age_s": round(lease.heartbeat_age(now), 1),
                "expires_at": lease.expires_at.isoformat(),
                "expired": lease.expired(now),
            },
        }


def _stored_next_runs(store: Store) -> dict[str, float | None]:
    with store.engine.connect() as connection:
        if not inspect(connection).has_table(JOB_TABLE):
            return {}
        rows = connection.execute(text(f"SELECT id, next_run_time FROM {JOB_TABLE}"))  # noqa: S608 - constant
        return {row[0]: row[1] for row in rows}


def job_statuses(config: ConnectorConfig, store: Store, *, now: datetime | None = None) -> list[JobStatus]:
    """The configured jobs, in config order, with next run times in ``config.timezone`` and their leases."""
    now = now or datetime.now(UTC)
    zone = ZoneInfo(config.timezone)
    stored = _stored_next_runs(store)
    leases = Leases(store)
    statuses = []
    for name, spec in config.schedule.items():
        if name in stored:
            timestamp = stored[name]
            next_run = None if timestamp is None else datetime.fromtimestamp(timestamp, zone)
        else:
            next_run = build_trigger(spec, zone).get_next_fire_time(None, now.astimezone(zone))
        statuses.append(
            JobStatus(
                name=name,
                schedule=describe(spec),
                run=spec.run,
                next_run=next_run.astimezone(zone) if next_run else None,
                stored=name in stored,
                misfire_grace_s=misfire_grace(spec),
                coalesce=True,
                lease=leases.get(lease_name(name)),
            )
        )
    return statuses
