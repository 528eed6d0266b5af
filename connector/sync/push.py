"""The outbox → the target: record every write before its first attempt, look the keys up, write the rest.

For one partition of one route:

1. the writes are recorded in the outbox, a partition in one statement (:mod:`connector.sync.batch`; a key
   recorded before keeps its entry; another payload under it is an :class:`~connector.errors.IdempotencyConflict`,
   parked); for ``postings`` they are then appended to our ledger, so a crash between the two re-plans the same
   postings;
2. the keys not yet confirmed are looked up in the target in **one batched call** (``find_postings`` /
   ``find_documents``); a key found there is confirmed, not written again — this is also how a write whose
   outcome was unknown (left ``sent`` by a timeout or a crash) is resolved;
3. the rest are marked ``sent`` (one statement) and written one by one; the successes are confirmed together
   when the partition ends (and, for documents, the cross-references source ↔ created document recorded). A
   crash in between leaves them ``sent``, which step 2 of the next run resolves. A failure parks the source
   document and the batch goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from adapters.http import outcome_unknown
from connector.config import Route
from connector.errors import IdempotencyConflict
from connector.logs import get_logger
from connector.model import DocRef, Posting, parse_document
from connector.sync.batch import confirm_many, fail_many, link_many, mark_sent_many, outbox_rows, record_many
from connector.sync.context import SyncContext, failure_for, route_name
from connector.sync.failures import WaitingError
from connector.sync.plan import PlannedWrite

__all__ = ["outbox_states", "push_writes", "record_writes"]

_log = get_logger("connector.sync.push")

_IN_CHUNK = 500
_BONUS_KIND = "Document_НачислениеИСписаниеБонусныхБаллов"


def outbox_states(ctx: SyncContext, keys: Iterable[str]) -> dict[str, str]:
    """The outbox state of each recorded key (absent keys are not in the answer); one query per 500 keys."""
    return {key: row.state for key, row in outbox_rows(ctx.store, keys).items()}


def record_writes(ctx: SyncContext, route: Route, writes: Sequence[PlannedWrite]) -> set[DocRef]:
    """Record a partition's writes (one statement), then append new postings to the ledger.

    Returns:
        The source documents whose writes conflict with what is recorded (parked here; push nothing for them).
    """
    with ctx.writing():
        conflicts = record_many(ctx.store, [(w.key, route.to, w.operation, w.payload) for w in writes])
    if route.write == "bonus_documents":
        writes = _without_source_duplicates(ctx, route, writes, conflicts)
    refused = {w.source for w in writes if w.key in conflicts}
    for write in writes:
        if write.key in conflicts:
            _park(ctx, route, write, conflicts[write.key])
    postings = [w.posting for w in writes if w.posting is not None and w.source not in refused]
    if postings and route.write == "postings":
        _append(ctx, route, [w for w in writes if w.posting is not None and w.source not in refused])
    return refused


def _operation_id(payload: Any) -> str | None:
    ref = payload.get("ref") if isinstance(payload, dict) else None
    return str(ref.get("id")) if isinstance(ref, dict) and ref.get("id") is not None else None


def _without_source_duplicates(
    ctx: SyncContext, route: Route, writes: Sequence[PlannedWrite], conflicts: dict[str, IdempotencyConflict]
) -> list[PlannedWrite]:
    """Mirror the first ledger operation of a posting key; a second one with that key is a duplicate in the source.

    Two CRM operations carrying one posting key are a ``duplicate_posting`` the reconciliation reports (its fix, a
    compensating posting, is mirrored in turn); mirroring both under one key is impossible and parking them would
    fail every run. A changed payload of the *same* operation stays a conflict and is parked.
    """
    first_of = {
        key: _operation_id(json.loads(str(conflict.context["existing"])).get("payload"))
        for key, conflict in conflicts.items()
    }
    kept: list[PlannedWrite] = []
    for write in writes:
        first, mine = first_of.get(write.key), _operation_id(write.payload)
        if write.key not in first_of or first is None or mine is None or first == mine:
            kept.append(write)
            continue
        ctx.count(route.to, write.store, "skipped")
        _log.info(
            "sync.source_duplicate", route=route_name(route), key=write.key, first=first, duplicate=mine
        )
    for key, first in first_of.items():
        # The key is recorded for exactly the operation that remains: no conflict left to park.
        if first is not None and all(_operation_id(w.payload) == first for w in kept if w.key == key):
            del conflicts[key]
    return kept


def _append(ctx: SyncContext, route: Route, writes: list[PlannedWrite]) -> None:
    try:
        with ctx.writing():
            ctx.store.ledger.append_many([w.posting for w in writes if w.posting is not None])
    except IdempotencyConflict:
        # One document's postings differ from the booked ones: find it, the others go in.
        for _, group in groupby(writes, key=lambda w: w.source):
            batch = list(group)
            try:
                with ctx.writing():
                    ctx.store.ledger.append_many([w.posting for w in batch if w.posting is not None])
            except IdempotencyConflict as exc:
                _park(ctx, route, batch[0], exc)


@dataclass
class _Outcome:
    """A partition's results, stored together when it ends."""

    confirmed: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    links: list[tuple[DocRef, DocRef]] = field(default_factory=list)


def push_writes(ctx: SyncContext, route: Route, writes: Sequence[PlannedWrite]) -> None:
    """Push a partition's recorded writes to the route's target; failures park their source document."""
    states = outbox_states(ctx, (write.key for write in writes))
    todo = [write for write in writes if states.get(write.key) != "confirmed"]
    if not todo:
        return
    target = ctx.adapter(route.to)
    try:
        found = _lookup(target, route, [write.key for write in todo])
    except Exception as exc:  # the lookup failing parks every document of the partition
        for _source, group in groupby(todo, key=lambda write: write.source):
            _park(ctx, route, next(iter(group)), exc)
        return
    outcome = _Outcome()
    with ctx.writing():
        mark_sent_many(ctx.store, [w.key for w in todo if w.key not in found or route.write == "documents"])
    try:
        for _, group in groupby(todo, key=lambda write: write.source):
            _push_document(ctx, route, target, list(group), found, states, outcome)
    finally:
        with ctx.writing():
            confirm_many(ctx.store, outcome.confirmed)
            fail_many(ctx.store, outcome.failed)
            link_many(ctx.store, outcome.links, "created")


def _lookup(target: Any, route: Route, keys: list[str]) -> dict[str, str]:
    if route.write == "documents":
        return dict(target.find_documents(keys))
    return dict(target.find_postings(keys))


def _push_document(
    ctx: SyncContext, route: Route, target: Any, writes: list[PlannedWrite], found: dict[str, str],
    states: dict[str, str], outcome: _Outcome,
) -> None:  # fmt: skip
    try:
        for write in writes:
            _push_one(ctx, route, target, write, found, states, outcome)
    except Exception as exc:  # an error on one document never stops the batch
        _park(ctx, route, writes[0], exc)
        return
    ctx.resolve(writes[0].source, route_name(route))


def _push_one(
    ctx: SyncContext, route: Route, target: Any, write: PlannedWrite, found: dict[str, str],
    states: dict[str, str], outcome: _Outcome,
) -> None:  # fmt: skip
    if write.after is not None and not _confirmed(ctx, write.after, found, states):
        raise WaitingError("the original sale is not written to the target yet; retried after it is",
                           system=route.to, document=write.source.id, original=write.after)  # fmt: skip
    if write.key in found and route.write != "documents":
        # Already there (an earlier run, or a write whose answer was lost): confirm it, never write it again.
        outcome.confirmed.append((write.key, found[write.key]))
        states[write.key] = "confirmed"
        ctx.count(route.to, write.store, "skipped")
        return
    try:
        result = _write(target, route, write)
    except Exception as exc:
        if not outcome_unknown(exc):
            outcome.failed.append((write.key, f"{type(exc).__name__}: {exc}"))
        raise  # an unknown outcome stays `sent`: the next attempt's lookup resolves it
    outcome.confirmed.append((write.key, result.remote_id))
    states[write.key] = "confirmed"
    ctx.count(route.to, write.store, "written" if result.created else "skipped")
    if route.write != "postings":
        outcome.links.append((write.source, DocRef(system=route.to, kind=_created_kind(target, route, write),
                                                   id=result.remote_id)))  # fmt: skip


def _confirmed(ctx: SyncContext, key: str, found: dict[str, str], states: dict[str, str]) -> bool:
    if states.get(key) == "confirmed" or key in found:
        return True
    return outbox_states(ctx, [key]).get(key) == "confirmed"


def _write(target: Any, route: Route, write: PlannedWrite) -> Any:
    if route.write == "documents":
        document = write.document if write.document is not None else parse_document(write.payload)
        return target.write_document(document, write.key)
    return target.write_posting(Posting.model_validate(write.payload), write.key)


def _created_kind(target: Any, route: Route, write: PlannedWrite) -> str:
    """The 1C entity set of the document created for a write (the cross-reference's kind)."""
    if route.write == "bonus_documents":
        return _BONUS_KIND
    spec = getattr(target, "spec", None)
    return str(getattr(spec, "return_set" if write.key.endswith(":return") else "sale_set", "receipt"))


def _park(ctx: SyncContext, route: Route, write: PlannedWrite, error: BaseException) -> None:
    ctx.fail(
        failure_for(write.source.system, route_name(route), error, document=write.source, store=write.store,
                    business_date=write.business_date, payload=write.payload),
        error,
    )  # fmt: skip
