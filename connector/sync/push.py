"""The outbox → the target: record every write before its first attempt, look the keys up, write the rest.

For one partition of one route:

1. the writes are recorded in the outbox (a key recorded before keeps its entry; another payload under it is an
   :class:`~connector.errors.IdempotencyConflict`, parked); for ``postings`` they are then appended to our
   ledger, so a crash between the two re-plans the same postings;
2. the keys not yet confirmed are looked up in the target in **one batched call** (``find_postings`` /
   ``find_documents``); a key found there is confirmed, not written again — this is also how a write whose
   outcome was unknown (left ``sent`` by a timeout or a crash) is resolved;
3. the rest are written one by one; each success confirms its outbox entry (and, for documents, records the
   cross-reference source ↔ created document). A failure parks the source document and the batch goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby
from typing import Any

from sqlalchemy import select

from adapters.http import outcome_unknown
from connector.config import Route
from connector.model import DocRef, Posting, parse_document
from connector.store.tables import OutboxRow
from connector.sync.context import SyncContext, failure_for, route_name
from connector.sync.failures import WaitingError
from connector.sync.plan import PlannedWrite

__all__ = ["outbox_states", "push_writes", "record_writes"]

_IN_CHUNK = 500
_BONUS_KIND = "Document_НачислениеИСписаниеБонусныхБаллов"


def outbox_states(ctx: SyncContext, keys: Iterable[str]) -> dict[str, str]:
    """The outbox state of each recorded key (absent keys are not in the answer); one query per 500 keys."""
    wanted, states = list(dict.fromkeys(keys)), {}
    with ctx.store.session() as session:
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            rows = session.execute(select(OutboxRow.key, OutboxRow.state).where(OutboxRow.key.in_(chunk)))
            states.update({str(row[0]): str(row[1]) for row in rows})
    return states


def record_writes(ctx: SyncContext, route: Route, writes: Sequence[PlannedWrite]) -> None:
    """Record the writes not in the outbox yet, then append new postings to the ledger (raises on conflict)."""
    states = outbox_states(ctx, (write.key for write in writes))
    with ctx.writing():
        for write in writes:
            if write.key not in states:
                ctx.store.outbox.record(write.key, route.to, write.operation, write.payload)
        postings = [write.posting for write in writes if write.posting is not None]
        if postings and route.write == "postings":
            ctx.store.ledger.append_many(postings)


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
    for _, group in groupby(todo, key=lambda write: write.source):
        _push_document(ctx, route, target, list(group), found, states)


def _lookup(target: Any, route: Route, keys: list[str]) -> dict[str, str]:
    if route.write == "documents":
        return dict(target.find_documents(keys))
    return dict(target.find_postings(keys))


def _push_document(
    ctx: SyncContext, route: Route, target: Any, writes: list[PlannedWrite], found: dict[str, str],
    states: dict[str, str],
) -> None:  # fmt: skip
    try:
        for write in writes:
            _push_one(ctx, route, target, write, found, states)
    except Exception as exc:  # an error on one document never stops the batch
        _park(ctx, route, writes[0], exc)
        return
    ctx.resolve(writes[0].source, route_name(route))


def _push_one(
    ctx: SyncContext, route: Route, target: Any, write: PlannedWrite, found: dict[str, str],
    states: dict[str, str],
) -> None:  # fmt: skip
    if write.after is not None and not _confirmed(ctx, write.after, found, states):
        raise WaitingError("the original sale is not written to the target yet; retried after it is",
                           system=route.to, document=write.source.id, original=write.after)  # fmt: skip
    if write.key in found and route.write != "documents":
        # Already there (an earlier run, or a write whose answer was lost): confirm it, never write it again.
        with ctx.writing():
            ctx.store.outbox.mark_confirmed(write.key, found[write.key])
        ctx.count(route.to, write.store, "skipped")
        return
    with ctx.writing():
        ctx.store.outbox.mark_sent(write.key)
    try:
        result = _write(target, route, write)
    except Exception as exc:
        if not outcome_unknown(exc):
            with ctx.writing():
                ctx.store.outbox.mark_failed(write.key, f"{type(exc).__name__}: {exc}"[:1000])
        raise  # an unknown outcome stays `sent`: the next attempt's lookup resolves it
    with ctx.writing():
        ctx.store.outbox.mark_confirmed(write.key, result.remote_id)
    states[write.key] = "confirmed"
    ctx.count(route.to, write.store, "written" if result.created else "skipped")
    _link(ctx, route, target, write, result.remote_id)


def _confirmed(ctx: SyncContext, key: str, found: dict[str, str], states: dict[str, str]) -> bool:
    if states.get(key) == "confirmed" or key in found:
        return True
    entry = ctx.store.outbox.get(key)
    return entry is not None and entry.state == "confirmed"


def _write(target: Any, route: Route, write: PlannedWrite) -> Any:
    if route.write == "documents":
        return target.write_document(parse_document(write.payload), write.key)
    return target.write_posting(Posting.model_validate(write.payload), write.key)


def _link(ctx: SyncContext, route: Route, target: Any, write: PlannedWrite, remote_id: str) -> None:
    """Cross-reference the source document and the document created for it in 1C."""
    if route.write == "postings":
        return
    if route.write == "documents":
        spec = getattr(target, "spec", None)
        is_return = write.key.endswith(":return")
        kind = str(getattr(spec, "return_set" if is_return else "sale_set", "receipt"))
    else:
        kind = _BONUS_KIND
    with ctx.writing():
        ctx.journal.link(write.source, DocRef(system=route.to, kind=kind, id=remote_id), "created")


def _park(ctx: SyncContext, route: Route, write: PlannedWrite, error: BaseException) -> None:
    ctx.fail(
        failure_for(write.source.system, route_name(route), error, document=write.source, store=write.store,
                    business_date=write.business_date, payload=write.payload),
        error,
    )  # fmt: skip
