"""Sync and reconciliation runs: when, with which arguments, and the counts per system and store.

``counts`` is ``{"<system>": {"<store>": {"fetched", "mapped", "written", "skipped", "failed"}}}`` (store
``""`` for a system-wide stream); see :mod:`connector.sync` for what each count means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connector.errors import InputError
from connector.logs import mask_phones
from connector.store.tables import Run, utc_now

__all__ = ["RunRecord", "Runs"]


@dataclass(frozen=True)
class RunRecord:
    """One run as stored."""

    id: int
    kind: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    counts: dict[str, Any]
    args: dict[str, Any]
    error: str | None

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish; None while running."""
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)


def _record(row: Run) -> RunRecord:
    return RunRecord(row.id, row.kind, row.started_at, row.finished_at, row.status, dict(row.counts or {}),
                     dict(row.args or {}), row.error)  # fmt: skip


class Runs:
    """Runs over the state database.

    Args:
        sessions: the store's session factory.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def start(self, kind: str, args: dict[str, Any]) -> int:
        """Record a run that starts now; returns its id."""
        with self._sessions.begin() as session:
            row = Run(kind=kind, started_at=utc_now(), status="running", counts={}, args=args)
            session.add(row)
            session.flush()
            return row.id

    def finish(self, run_id: int, status: str, counts: dict[str, Any], error: str | None = None) -> None:
        """Record the end of a run: ``ok``, ``failed_items`` or ``error``, with its counts.

        (A run whose process died is recorded ``interrupted`` by a later one: :meth:`interrupt`.)
        """
        with self._sessions.begin() as session:
            row = session.get(Run, run_id)
            if row is None:
                raise InputError(f"no run {run_id}", field="run")
            masked = mask_phones(error) if error is not None else None  # phones in a quoted row or value
            row.finished_at, row.status, row.counts, row.error = utc_now(), status, counts, masked

    def running(self, kind: str) -> list[int]:
        """The ids of the runs of ``kind`` recorded as ``running``, oldest first."""
        query = select(Run.id).where(Run.kind == kind, Run.status == "running").order_by(Run.id)
        with self._sessions() as session:
            return list(session.scalars(query))

    def interrupt(self, run_ids: list[int], found_by: int | None = None) -> None:
        """Record runs whose process died before finishing as ``interrupted`` (their end time stays unknown)."""
        if not run_ids:
            return
        note = "the process ended without finishing the run (killed, crashed or the machine stopped)"
        if found_by is not None:
            note += f"; found by run {found_by}"
        with self._sessions.begin() as session:
            for row in session.scalars(select(Run).where(Run.id.in_(run_ids), Run.status == "running")):
                row.status, row.error = "interrupted", note

    def get(self, run_id: int) -> RunRecord:
        """One run by id.

        Raises:
            InputError: there is no such run.
        """
        with self._sessions() as session:
            row = session.get(Run, run_id)
            if row is None:
                raise InputError(f"no run {run_id}; see `loyalty-connector runs list`", field="run")
            return _record(row)

    def recent(self, limit: int = 20, kind: str | None = None) -> list[RunRecord]:
        """The latest runs, newest first."""
        query = select(Run).order_by(Run.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(Run.kind == kind)
        with self._sessions() as session:
            return [_record(row) for row in session.scalars(query)]
