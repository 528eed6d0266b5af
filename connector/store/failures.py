"""Failed items: a document or write that failed, kept with its evidence until it succeeds or a person acts.

An item is identified by its document and route: a second failure of the same document on the same route
updates the open item (``attempts`` + 1) instead of adding another. States::

    open ──retry (person, or automatically when a transient item is due)──▶ retried ──success──▶ resolved
      │                                                                        └──failure──▶ open
      └──skip (person, with a reason)──▶ skipped        (open ──success──▶ resolved)

``error_kind`` is ``transient`` (retried automatically at ``next_attempt_at`` until ``max_attempts``) or
``permanent`` (parked until a person retries or skips it). Nothing is deleted (DESIGN.md §4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session, sessionmaker

from connector.errors import InputError
from connector.logs import mask_phones, mask_text
from connector.model import DocRef
from connector.store.tables import FailedItem, utc_now

__all__ = ["FailedItems", "FailedRecord", "Failure"]

_LIVE = ("open", "retried")


@dataclass(frozen=True)
class Failure:
    """What to park: where it failed, what, and why."""

    system: str
    route: str
    error_kind: str
    error: str
    document: DocRef | None = None
    store: str | None = None
    business_date: date | None = None
    payload_excerpt: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class FailedRecord:
    """One failed item as stored (the JSON listing is :meth:`as_json`)."""

    id: int
    run_id: int | None
    system: str
    route: str | None
    store: str | None
    business_date: date | None
    document: DocRef | None
    error_kind: str
    error: str
    payload_excerpt: str | None
    attempts: int
    state: str
    next_attempt_at: datetime | None
    skipped_by: str | None
    skip_reason: str | None
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The stable JSON form: dates ISO 8601, the document as ``{system, kind, id}`` or null."""
        data = asdict(self)
        data["document"] = self.document.model_dump() if self.document is not None else None
        for name in ("business_date", "next_attempt_at", "created_at", "updated_at"):
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        return data


def _record(row: FailedItem) -> FailedRecord:
    document = None
    if row.document_system and row.document_kind and row.document_id:
        document = DocRef(system=row.document_system, kind=row.document_kind, id=row.document_id)
    return FailedRecord(
        row.id, row.run_id, row.system, row.route, row.store, row.business_date, document, row.error_kind,
        row.error, row.payload_excerpt, row.attempts, row.state, row.next_attempt_at, row.skipped_by,
        row.skip_reason, row.created_at, row.updated_at,
    )  # fmt: skip


class FailedItems:
    """Failed items over the state database.

    Args:
        sessions: the store's session factory.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def park(self, failure: Failure, run_id: int | None) -> FailedRecord:
        """Record a failure: a new item, or one more attempt of the live item of this document and route."""
        now = utc_now()
        with self._sessions.begin() as session:
            row = self._live(session, failure.document, failure.route, failure.system, failure.store)
            if row is None:
                row = FailedItem(attempts=1, created_at=now, state="open")
                session.add(row)
            else:
                row.attempts += 1
            ref = failure.document
            row.run_id, row.system, row.route, row.store = (
                run_id,
                failure.system,
                failure.route,
                failure.store,
            )
            row.business_date = failure.business_date
            row.document_system, row.document_kind, row.document_id = (
                (ref.system, ref.kind, ref.id) if ref else (None, None, None)
            )
            row.error_kind, row.error, row.payload_excerpt = (  # an error may quote a value: a database's
                failure.error_kind,  # DETAIL quotes the row it refused, a mapping the phone it could not read
                mask_phones(failure.error)[:4000],
                mask_text(failure.payload_excerpt) if failure.payload_excerpt is not None else None,
            )
            row.state, row.next_attempt_at, row.updated_at = "open", failure.next_attempt_at, now
            session.flush()
            return _record(row)

    def _live(
        self, session: Session, ref: DocRef | None, route: str, system: str, store: str | None = None
    ) -> FailedItem | None:
        query = select(FailedItem).where(FailedItem.route == route, FailedItem.state.in_(_LIVE))
        if ref is None:
            if not route.startswith("pull:"):
                return (
                    None  # failures without a document elsewhere (a webhook payload) are each their own item
                )
            # a stream that could not be read (a store of a till, a ledger) is one item until it is read
            return session.scalars(
                query.where(
                    FailedItem.document_id.is_(None), _same_store(store), FailedItem.system == system
                ).with_for_update()
            ).first()
        query = query.where(FailedItem.document_system == ref.system, FailedItem.document_id == ref.id)
        if not route.startswith("pull:"):
            # A pull's item is the source document whatever kind it was journaled under: its entity (``SELL``)
            # when it was mapped as read, its receipt kind when it was landed first.
            query = query.where(FailedItem.document_kind == ref.kind)
        return session.scalars(query.with_for_update()).first()

    def attempts(self, ref: DocRef, route: str) -> int:
        """Attempts made so far on the live item of this document and route (0 when there is none)."""
        with self._sessions() as session:
            row = self._live(session, ref, route, ref.system)
            return row.attempts if row else 0

    def resolve(self, ref: DocRef, route: str) -> None:
        """The document went through on this route: its live item (if any) is resolved."""
        with self._sessions.begin() as session:
            row = self._live(session, ref, route, ref.system)
            if row is not None:
                row.state, row.updated_at, row.next_attempt_at = "resolved", utc_now(), None

    def held(self, route: str, now: datetime, *, parked: bool = True) -> set[str]:
        """Document ids this route must not touch now: skipped, and (``parked``) permanent or not yet due.

        An explicit re-run (``sync --rerun-failed``, ``--document``, ``--from/--to``) passes ``parked=False``:
        only what a person skipped stays untouched.
        """
        with self._sessions() as session:
            rows = session.execute(
                select(FailedItem.document_id, FailedItem.state, FailedItem.error_kind,
                       FailedItem.next_attempt_at)
                .where(FailedItem.route == route, FailedItem.state.in_(("open", "skipped")))
            ).all()  # fmt: skip
        held = set()
        for document_id, state, kind, due in rows:
            waiting = kind == "transient" and due is not None and due > now
            if document_id and (state == "skipped" or (parked and (kind == "permanent" or waiting))):
                held.add(document_id)
        return held

    def live_streams(self) -> set[tuple[str, str]]:
        """``(route, store)`` of every open or retried item of a stream that could not be read (``pull:…``,
        no document; store ``""`` for a ledger): what a good read of that stream resolves."""
        with self._sessions() as session:
            rows = session.execute(
                select(FailedItem.route, FailedItem.store).where(
                    FailedItem.state.in_(_LIVE),
                    FailedItem.document_id.is_(None),
                    FailedItem.route.startswith("pull:"),
                )
            ).all()
        return {(str(route), store or "") for route, store in rows}

    def resolve_stream(self, route: str, store: str | None) -> None:
        """The stream was read completely: its live item (if any) is resolved."""
        with self._sessions.begin() as session:
            query = select(FailedItem).where(
                FailedItem.route == route,
                FailedItem.state.in_(_LIVE),
                FailedItem.document_id.is_(None),
                _same_store(store),
            )
            for row in session.scalars(query.with_for_update()):
                row.state, row.updated_at, row.next_attempt_at = "resolved", utc_now(), None

    def live_documents(self) -> set[tuple[str, str]]:
        """``(route, document id)`` of every open or retried item: what a success may have to resolve."""
        with self._sessions() as session:
            rows = session.execute(
                select(FailedItem.route, FailedItem.document_id).where(FailedItem.state.in_(_LIVE))
            ).all()
        return {(str(route), str(document)) for route, document in rows if route and document}

    def due(self, now: datetime) -> list[FailedRecord]:
        """Items to work on in this run: retried by a person, or transient and due."""
        query = select(FailedItem).where(
            or_(
                FailedItem.state == "retried",
                (FailedItem.state == "open")
                & (FailedItem.error_kind == "transient")
                & (or_(FailedItem.next_attempt_at.is_(None), FailedItem.next_attempt_at <= now)),
            )
        )
        with self._sessions() as session:
            return [_record(row) for row in session.scalars(query.order_by(FailedItem.id))]

    def list(
        self,
        *,
        system: str | None = None,
        route: str | None = None,
        store: str | None = None,
        states: Sequence[str] | None = ("open",),
        limit: int = 1000,
    ) -> list[FailedRecord]:
        """Items filtered by system, route, store and states (None: every state), oldest first."""
        query = select(FailedItem)
        for column, value in ((FailedItem.system, system), (FailedItem.route, route),
                              (FailedItem.store, store)):  # fmt: skip
            if value is not None:
                query = query.where(column == value)
        if states is not None:
            query = query.where(FailedItem.state.in_(list(states)))
        with self._sessions() as session:
            return [_record(row) for row in session.scalars(query.order_by(FailedItem.id).limit(limit))]

    def count_open(self) -> int:
        """How many items are open (what ``sync`` reports when it exits 1)."""
        return len(self.list(states=("open",), limit=1_000_000))

    def get(self, item_id: int) -> FailedRecord:
        """One item by id.

        Raises:
            InputError: there is no such item.
        """
        with self._sessions() as session:
            row = session.get(FailedItem, item_id)
            if row is None:
                raise InputError(
                    f"no failed item {item_id}; see `loyalty-connector failures list`", field="id"
                )
            return _record(row)

    def retry(self, item_id: int) -> FailedRecord:
        """Queue an open item for the next sync (``retried``), whatever its kind."""
        return self._move(item_id, ("open",), state="retried", next_attempt_at=None)

    def skip(self, item_id: int, *, by: str, reason: str) -> FailedRecord:
        """Give up on an item on purpose, recording who and why; its document is left alone from now on."""
        if not reason.strip():
            raise InputError("a skip needs a reason", field="reason")
        return self._move(item_id, _LIVE, state="skipped", skipped_by=by, skip_reason=reason)

    def _move(self, item_id: int, allowed: tuple[str, ...], **values: Any) -> FailedRecord:
        with self._sessions.begin() as session:
            row = session.get(FailedItem, item_id, with_for_update=True)
            if row is None:
                raise InputError(
                    f"no failed item {item_id}; see `loyalty-connector failures list`", field="id"
                )
            if row.state not in allowed:
                raise InputError(f"failed item {item_id} is {row.state}; only {'/'.join(allowed)} items can "
                                 f"move to {values['state']}", field="id")  # fmt: skip
            for name, value in {**values, "updated_at": utc_now()}.items():
                setattr(row, name, value)
            session.flush()
            return _record(row)


def _same_store(store: str | None) -> ColumnElement[bool]:
    """The item's store is ``store`` (a ledger's stream has none: ``None`` or ``""``)."""
    if not store:
        return or_(FailedItem.store.is_(None), FailedItem.store == "")
    return FailedItem.store == store
