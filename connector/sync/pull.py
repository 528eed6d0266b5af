"""Pulls: read documents from a source system into the journal, incrementally or for a window.

A stream is (system, stream, store): ``documents`` of each store of a till or 1C system, ``operations`` of a
CRM ledger (store ``""``). An incremental pull reads ``[watermark − lookback, now)`` — the lookback catches late
till uploads and back-dated 1C documents; the engine moves the watermark to ``now`` only once the run has
written every route of the window (see :func:`connector.sync.engine.run_sync`). A record's version is 1C's
``DataVersion`` or, where a system has none (Evotor), the SHA-256 of its raw payload as sent; an unchanged version
is not mapped again.

**Landing, then mapping.** A receipt whose adapter hands over its JSON text as sent (Evotor's pages) and whose
place — kind, store, business date — the mapping tells from two fields (:meth:`Mapping.receipt_place`) is
*landed*: journaled raw, exactly as received, under that place, without being mapped (:func:`land_records`).
Only the few top-level members the place needs are decoded for it (:meth:`Mapping.place_members`); the document
is decoded whole when it is mapped. On SQLite, which has one writer, the pull's threads hand their landed pages
to one :class:`PageWriter` and read on (:class:`Landing`); on PostgreSQL each thread lands its own.
A landed receipt is mapped later by :func:`map_unmapped`, one (store, business date) at a time: in a sync, by the first
partition of that store's day, on the pool where the writes wait on the network; in :func:`pull_window`, right
after the reads. So a pull costs about what downloading costs, a mapping error never costs a re-download (the
raw form is journaled before anything can fail), and a document whose mapping was fixed maps again from the
journal. Everything else — ledger operations, 1C documents (their adapter decodes OData itself), a receipt whose
place cannot be told — is mapped as it is read (:func:`journal_records`).

A record that does not map is kept raw and parked as a permanent failed item naming the system, the document and
the field; the rest of the batch goes on. 1C documents marked for deletion are journaled with status ``deleted``,
unposted ones ``draft``.

:func:`pull_window` is the fresh read the reconciliation uses: it refreshes the journal for a window of business
dates without moving any watermark and without writing to any other system.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from queue import SimpleQueue
from time import monotonic
from typing import Any

from adapters.base import RawRecord
from connector.categories import with_categories
from connector.config import ConnectorConfig, parse_duration
from connector.errors import ConnectorError, MappingError
from connector.heap import frozen_heap
from connector.logs import get_logger
from connector.mapping.functions import Members
from connector.model import DocRef, Posting, Return, Sale
from connector.store import Store, open_store
from connector.store.journal import (
    JournalEntry,
    JournalPage,
    JournalWrite,
    Upserted,
    raw_version,
    sent_version,
)
from connector.store.tables import utc_now
from connector.store.types import JSONBytes
from connector.sync.context import SyncContext, failure_for
from connector.sync.locks import partition_lock

__all__ = [
    "CHUNK",
    "LANDING_AHEAD",
    "PAGES_PER_COMMIT",
    "Landing",
    "PageWriter",
    "PullReport",
    "Window",
    "incremental_window",
    "journal_record",
    "journal_records",
    "land_records",
    "map_days",
    "map_unmapped",
    "pull_stream",
    "pull_window",
    "run_pulls",
    "source_streams",
    "window_bounds",
]

_log = get_logger("connector.sync.pull")
# Widest gap between UTC and a store's local day (UTC−12 … UTC+14): a window of business dates is read this
# much wider in instants, and the journal keeps each document under its own local business date.
_ZONE_SLACK = timedelta(hours=14)
CHUNK = 1000
"""Records mapped and journaled together (one transaction): a page of the sources' lists at most (Evotor's
pages hold 1,000 documents: one transaction each)."""


@dataclass(frozen=True)
class Window:
    """A pull window of one stream: ``[since, until)``."""

    system: str
    stream: str
    store: str
    since: datetime
    until: datetime


@dataclass
class PullReport:
    """What a pull did: counts, the windows read, and the (store, business date) pairs it touched.

    Attributes:
        fetched: records read.
        new: journaled for the first time.
        changed: a new version of a journaled document.
        unchanged: the same version as journaled.
        failed: records that did not map (parked).
        days: ``(store, business date)`` of every record read (store ``""`` for a ledger).
    """

    fetched: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    windows: list[Window] = field(default_factory=list)
    days: set[tuple[str, date]] = field(default_factory=set)

    def add(self, other: PullReport) -> None:
        """Fold another report into this one."""
        for name in ("fetched", "new", "changed", "unchanged", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.windows += other.windows
        self.days |= other.days


def source_streams(ctx: SyncContext, system: str, stores: Sequence[str] | None) -> list[tuple[str, str]]:
    """The (stream, store) pairs of a source system: each store's documents, or the ledger's operations."""
    kind = ctx.config.systems[system].adapter
    if kind == "crm":
        return [("operations", "")]
    known = ctx.adapter(system).stores()
    return [("documents", store) for store in known if stores is None or store in stores]


def _records(ctx: SyncContext, window: Window) -> Iterator[RawRecord]:
    adapter = ctx.adapter(window.system)
    if window.stream == "operations":
        yield from adapter.operations(window.since, window.until)
        return
    yield from adapter.documents(window.store, window.since, window.until)
    if ctx.config.systems[window.system].adapter == "onec":
        yield from adapter.deleted_documents(window.store, window.since, window.until)


def _chunks(records: Iterable[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


def journal_record(ctx: SyncContext, record: RawRecord, report: PullReport) -> None:
    """Map one raw record and journal it (raw beside canonical); an unmappable one is journaled raw and parked."""
    journal_records(ctx, [record], report)


@dataclass
class _Mapped:
    """A record of a chunk with its version and what mapping made of it (a document, or the error)."""

    record: RawRecord
    version: str
    document: Sale | Return | Posting | None = None
    error: MappingError | None = None
    place: str | None = None
    day: date | None = None


def journal_records(ctx: SyncContext, records: Sequence[RawRecord], report: PullReport) -> None:
    """Map a chunk of raw records and journal it in one transaction per system (raw beside canonical).

    A receipt whose version is journaled and mapped already is not mapped again: it is unchanged, as the
    upsert would find it (its days are its row's). A record that does not map is journaled raw under its entity
    and parked as a permanent failed item naming the system, the document and the field; the rest of the chunk
    goes on. The journal is written before any failed item is parked or resolved.
    """
    for system, group in _by_system(records).items():
        versions = [_version(record) for record in group]
        known = _unchanged(ctx, system, group, versions)
        chunk = [_map(ctx, record, version) for record, version in zip(group, versions, strict=True)
                 if record.id not in known]  # fmt: skip
        _place_postings(ctx, [item for item in chunk if isinstance(item.document, Posting)])
        outcomes = ctx.journal.upsert_many(system, [_write(item) for item in chunk], lock=ctx.writing)
        _account(ctx, system, chunk, outcomes, report)
        _account_unchanged(ctx, system, [record for record in group if record.id in known], known, report)


def _by_system(records: Iterable[RawRecord]) -> dict[str, list[RawRecord]]:
    by_system: dict[str, list[RawRecord]] = {}
    for record in records:
        by_system.setdefault(record.system, []).append(record)
    return by_system


def _version(record: RawRecord) -> str:
    """The source's version, else the SHA-256 of the payload's UTF-8 as sent (else of its canonical JSON)."""
    if record.version:
        return record.version
    data = record.data
    if data is not None:
        return sent_version(data)
    return raw_version(record.payload)


def _raw(record: RawRecord) -> Any:
    """What the journal keeps as the raw form: the JSON as sent where the adapter has it."""
    data = record.data
    return JSONBytes(data) if data is not None else record.payload


def land_records(
    ctx: SyncContext, records: Sequence[RawRecord], report: PullReport, landing: Landing | None = None
) -> None:
    """Journal a chunk: receipts whose place the mapping tells are landed raw, the rest mapped at once.

    A landed receipt is journaled exactly as sent under its kind, store and business date, with no canonical
    form: :func:`map_unmapped` maps it. A re-read at the same version leaves a mapped row alone and gives one that
    waits (or did not map before) its place again. One transaction per system for the landed part: at once, or
    handed to ``landing`` (a stream's :class:`Landing`), which counts it into ``report`` once it has landed.
    """
    for system, group in _by_system(records).items():
        mapping, catalogs = ctx.mapping(system), ctx.catalogs(system)
        members = mapping.place_members()
        writes: list[JournalWrite] = []
        rest: list[RawRecord] = []
        for record in group:
            place = (
                mapping.receipt_place(_place_view(record, members), system=system, catalogs=catalogs)
                if record.data is not None
                else None
            )
            # A receipt without a store would wait under no store's day, which no partition maps: map it now.
            store = (place[1] or record.store) if place is not None else None
            if place is None or not store:
                rest.append(record)
                continue
            writes.append(JournalWrite(place[0], record.id, _version(record), _raw(record), None, store=store,
                                       business_date=place[2], aliases=(record.entity,), landing=True))  # fmt: skip
        if writes:
            if landing is None:
                _account_landed(ctx, system, writes, ctx.journal.upsert_many(system, writes, lock=ctx.writing),
                                report)  # fmt: skip
            else:
                landing.submit(system, writes)
        if rest:
            if landing is not None:
                landing.finish()  # what the stream read before lands before what it reads after
            journal_records(ctx, rest, report)


def _account_landed(
    ctx: SyncContext, system: str, writes: Sequence[JournalWrite], outcomes: Sequence[str], report: PullReport
) -> None:
    counts: Counter[str] = Counter()
    for write, outcome in zip(writes, outcomes, strict=True):
        assert write.business_date is not None
        setattr(report, outcome, getattr(report, outcome) + 1)
        report.days.add((write.store or "", write.business_date))
        if outcome == "unchanged":
            counts[write.store or ""] += 1
    for store_id, by in counts.items():
        ctx.count(system, store_id, "unchanged", by)


class Landing:
    """One stream's landed pages on their way to the journal, through the pull's :class:`PageWriter`.

    SQLite has one writer: a pull thread that journaled its page itself waited for that turn, with no request
    in flight, while its next page could have been on the way. A stream's pages are made ready for the database
    by the stream's thread (:meth:`Journal.prepare <connector.store.journal.Journal.prepare>`), handed to the
    writer in the order read (a later version of a document lands after an earlier one), and the stream reads
    on; at most :data:`LANDING_AHEAD` pages wait for it, so memory stays one or two pages a stream. Each page is
    counted into the stream's report by the stream's own thread once it landed. Without a writer (PostgreSQL:
    each thread writes), a page lands at once.
    """

    def __init__(self, ctx: SyncContext, report: PullReport, writer: PageWriter | None) -> None:
        self._ctx, self._report, self._writer = ctx, report, writer
        self._waiting: deque[tuple[str, list[JournalWrite], Future[list[Upserted]]]] = deque()

    def submit(self, system: str, writes: list[JournalWrite]) -> None:
        """Land a page (see the class); raises what an earlier page's landing raised."""
        ctx = self._ctx
        page = ctx.journal.prepare(system, writes)
        if self._writer is None:
            [outcomes] = ctx.journal.land([page], lock=ctx.writing)
            _account_landed(ctx, system, writes, outcomes, self._report)
            return
        self._waiting.append((system, writes, self._writer.submit(page)))
        while len(self._waiting) > LANDING_AHEAD:
            self._settle()

    def finish(self) -> None:
        """Wait until every page handed over has landed and is counted; raises what a landing raised (the
        pages after it are still waited for, so nothing of the stream is being written once this returns)."""
        try:
            while self._waiting:
                self._settle()
        except BaseException:
            wait([future for _, _, future in self._waiting])
            self._waiting.clear()
            raise

    def _settle(self) -> None:
        system, writes, future = self._waiting.popleft()
        _account_landed(self._ctx, system, writes, future.result(), self._report)


LANDING_AHEAD = 1
"""Pages of a stream handed to the writer and not yet landed, beyond the one being read (see :class:`Landing`)."""
PAGES_PER_COMMIT = 8
"""Pages :class:`PageWriter` lands in one transaction at most (those waiting when it takes its turn)."""


class PageWriter:
    """SQLite's one writer of a pull: lands the pages the streams hand over (see :class:`Landing`).

    One thread, so the pages land in the order handed over. It takes every page waiting (up to
    :data:`PAGES_PER_COMMIT`) into one transaction under the run's writer's turn
    (:meth:`~connector.sync.context.SyncContext.writing`): one commit, and one wait for the interpreter lock
    after each SQLite call, for several pages. If that transaction fails, its pages are landed one by one, so
    only a page that fails on its own fails its stream. Close it once the streams finished.
    """

    def __init__(self, ctx: SyncContext) -> None:
        self._ctx = ctx
        self._queue: SimpleQueue[tuple[JournalPage, Future[list[Upserted]]] | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="pull-writer", daemon=True)
        self._thread.start()

    def submit(self, page: JournalPage) -> Future[list[Upserted]]:
        """Queue a page; the future holds its outcomes once it landed (or what landing it raised)."""
        future: Future[list[Upserted]] = Future()
        self._queue.put((page, future))
        return future

    def close(self) -> None:
        """Land what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            batch = [item]
            while len(batch) < PAGES_PER_COMMIT and not self._queue.empty():
                more = self._queue.get()
                if more is None:
                    self._land(batch)
                    return
                batch.append(more)
            self._land(batch)

    def _land(self, batch: list[tuple[JournalPage, Future[list[Upserted]]]]) -> None:
        ctx = self._ctx
        try:
            landed = ctx.journal.land([page for page, _ in batch], lock=ctx.writing)
        except Exception as exc:
            if len(batch) > 1:
                for one in batch:
                    self._land([one])
            else:
                batch[0][1].set_exception(exc)
            return
        for (_, future), outcomes in zip(batch, landed, strict=True):
            future.set_result(outcomes)


def _payload(record: RawRecord) -> Any:
    """The record's decoded payload; its text when that is not a JSON object (the mapping then says so)."""
    try:
        return record.payload
    except ValueError:
        return record.text


def _place_view(record: RawRecord, members: Members | None) -> Any:
    """What :meth:`Mapping.receipt_place` needs of a record: only the members it reads, decoded (the whole
    payload when the mapping may read all of it, or when the record is not a JSON object)."""
    if members is None:
        return _payload(record)
    try:
        return record.project(members.read, members.tested)
    except ValueError:
        return None  # not a JSON object: no place, so it is mapped at once and its error told there


def map_unmapped(
    ctx: SyncContext, system: str, store: str, day: date, report: PullReport | None = None
) -> int:
    """Map what waits in the journal for one store's business day; returns how many mapped.

    Each mapped document's canonical form is stored beside its raw one (at the version mapped: a newer landing
    meanwhile waits for the next pass); one that does not map stays raw and is parked as a permanent failed item
    naming the field, and one that maps now resolves its item. A run maps a store's day once: the routes'
    partitions of that day wait for the first, then go on (a document that did not map is tried again by the next
    run that reads it, as one mapped at once would be).
    """
    with ctx.map_lock(system, store, day):
        if (system, store, day) in ctx.mapped_days:
            return 0
        ctx.mapped_days.add((system, store, day))
        started = monotonic()
        try:
            return _map_entries(ctx, system, store, day, report if report is not None else PullReport())
        finally:
            ctx.timed("map", monotonic() - started)


def _map_entries(ctx: SyncContext, system: str, store: str, day: date, report: PullReport) -> int:
    entries = ctx.journal.unmapped(system, store, day)
    if not entries:
        return 0
    mapped: list[tuple[JournalEntry, Sale | Return | Posting]] = []
    for entry in entries:
        record = RawRecord(system, entry.ref.kind, entry.ref.id, entry.version, entry.store, entry.raw)
        item = _map(ctx, record, entry.version or "")
        if item.document is None:
            assert item.error is not None
            _park_unmapped(ctx, record, item.error, report, day)
        else:
            mapped.append((entry, item.document))
    with ctx.writing():
        ctx.journal.set_canonical(mapped)
    for entry, _ in mapped:
        ctx.resolve(entry.ref, f"pull:{system}")
    if mapped:
        ctx.count(system, store, "mapped", len(mapped))
    return len(mapped)


def map_days(ctx: SyncContext, system: str, report: PullReport) -> int:
    """:func:`map_unmapped` for each (store, business date) a pull touched; returns how many mapped.

    Documents that do not map are added to ``report.failed``.
    """
    wanted = sorted({(store, day) for store, day in report.days if store})  # landed receipts all have a store
    return sum(map_unmapped(ctx, system, store, day, report) for store, day in wanted)


def _unchanged(
    ctx: SyncContext, system: str, records: Sequence[RawRecord], versions: Sequence[str]
) -> dict[str, tuple[str | None, date | None]]:
    """The records of a chunk journaled and mapped at their version already (source id → row's store, day).

    Only receipts whose kind the mapping tells without mapping (see :meth:`Mapping.receipt_kind`) and whose id
    is once in the chunk; everything else is mapped and left to the upsert to judge.
    """
    mapping, repeated = ctx.mapping(system), Counter(record.id for record in records)
    writes = []
    for record, version in zip(records, versions, strict=True):
        kind = mapping.receipt_kind(_payload(record), system=system, entity=record.entity)
        if kind is not None and repeated[record.id] == 1:
            writes.append(JournalWrite(kind, record.id, version, None, None, aliases=(record.entity,)))
    known = ctx.journal.unchanged(system, writes)
    return {source_id: place for source_id, place in known.items() if place[1] is not None}


def _account_unchanged(
    ctx: SyncContext, system: str, records: Sequence[RawRecord],
    known: dict[str, tuple[str | None, date | None]], report: PullReport,
) -> None:  # fmt: skip
    counts: Counter[str] = Counter()
    for record in records:
        store, day = known[record.id]
        assert day is not None
        report.unchanged += 1
        counts[record.store or ""] += 1
        report.days.add((store or record.store or "", day))
    for store_id, by in counts.items():
        ctx.count(system, store_id, "unchanged", by)


def _map(ctx: SyncContext, record: RawRecord, version: str) -> _Mapped:
    item = _Mapped(record, version, place=record.store)
    try:
        payload = record.payload
    except ValueError as exc:  # text that is not a JSON object
        item.error = MappingError(f"the payload is {exc}", system=record.system, document=record.id)
        return item
    try:
        mapped = ctx.mapping(record.system).map(
            payload, system=record.system, entity=record.entity, catalogs=ctx.catalogs(record.system)
        )
    except MappingError as exc:
        item.error = exc
        return item
    item.document = with_categories(mapped, ctx.categories()) if isinstance(mapped, Sale | Return) else mapped
    return item


def _write(item: _Mapped) -> JournalWrite:
    record, document = item.record, item.document
    if document is None:
        return JournalWrite(record.entity, record.id, item.version, _raw(record), None, store=record.store)
    kind = document.ref.kind if document.ref is not None else record.entity
    return JournalWrite(kind, record.id, item.version, _raw(record), document, store=item.place,
                        business_date=item.day, aliases=(record.entity,))  # fmt: skip


def _account(
    ctx: SyncContext, system: str, items: Sequence[_Mapped], outcomes: Sequence[str], report: PullReport
) -> None:
    """Counts, days, failed items parked and resolved for a journaled chunk."""
    counts: Counter[tuple[str, str]] = Counter()
    for item, outcome in zip(items, outcomes, strict=True):
        record, document = item.record, item.document
        if document is None:
            assert item.error is not None
            _park_unmapped(ctx, record, item.error, report)
            continue
        setattr(report, outcome, getattr(report, outcome) + 1)
        counts[record.store or "", "unchanged" if outcome == "unchanged" else "mapped"] += 1
        day = item.day or getattr(document, "business_date", None) or document.occurred_at.date()
        report.days.add((getattr(document, "store", None) or item.place or "", day))
        if outcome != "unchanged":
            ctx.resolve(
                DocRef(system=record.system, kind=record.entity, id=record.id), f"pull:{record.system}"
            )
    for (store, name), by in counts.items():
        ctx.count(system, store, name, by)


def _park_unmapped(
    ctx: SyncContext, record: RawRecord, error: MappingError, report: PullReport, day: date | None = None
) -> None:
    ref = DocRef(system=record.system, kind=record.entity, id=record.id)
    failure = failure_for(record.system, f"pull:{record.system}", error, document=ref, store=record.store,
                          business_date=day, payload=_payload(record))  # fmt: skip
    ctx.fail(failure, error)
    report.failed += 1


def _place_postings(ctx: SyncContext, items: Sequence[_Mapped]) -> None:
    """The store and business date of the document each ledger operation was posted for, when journaled.

    A posting key is ``{source system}:{source doc id}:{kind}``: bonus documents are then partitioned like the
    receipts they come from (store, day) instead of piling into the one day the CRM wrote them. One journal
    query per source system for the whole chunk; an operation whose document is not journaled has no place.
    """
    wanted: dict[str, list[tuple[_Mapped, str]]] = {}
    for item in items:
        assert isinstance(item.document, Posting)
        system, _, rest = item.document.key.partition(":")
        source_id = rest.rpartition(":")[0]
        item.place = item.day = None
        if source_id and system in ctx.config.systems:
            wanted.setdefault(system, []).append((item, source_id))
    for system, pairs in wanted.items():
        places = ctx.journal.places(system, (source_id for _, source_id in pairs))
        for item, source_id in pairs:
            item.place, item.day = places.get(source_id, (None, None))


def pull_stream(
    ctx: SyncContext, window: Window, *, advance: bool, writer: PageWriter | None = None
) -> PullReport:
    """Read one stream's window into the journal; move its watermark to ``until`` when ``advance``.

    With ``writer``, the pages are landed there while the stream reads on (see
    :class:`Landing`); the stream returns once all of them landed. On PostgreSQL a stream another process is
    pulling right now is skipped (an empty report).
    """
    report = PullReport(windows=[window])
    with partition_lock(ctx.store, f"pull:{window.system}:{window.stream}:{window.store}") as mine:
        if not mine:
            return PullReport()
        landing = Landing(ctx, report, writer)
        try:
            for chunk in _chunks(_records(ctx, window), CHUNK):
                report.fetched += len(chunk)
                ctx.count(window.system, window.store, "fetched", len(chunk))
                land_records(ctx, chunk, report, landing)
        finally:
            landing.finish()
        if advance:
            with ctx.writing():
                ctx.cursors.advance(window.system, window.stream, window.store, window.until)
    _log.info("sync.pulled", system=window.system, store=window.store, fetched=report.fetched,
              new=report.new, changed=report.changed, failed=report.failed)  # fmt: skip
    return report


def incremental_window(ctx: SyncContext, system: str, stream: str, store: str) -> Window:
    """``[watermark − lookback, now)``, or from ``sync.start`` / ``now − initial_window`` on the first pull."""
    settings = ctx.config.sync
    watermark = ctx.cursors.get(system, stream, store)
    if watermark is not None:
        since = watermark - settings.lookback_for(system)
    elif settings.start is not None:
        since = window_bounds(settings.start, settings.start)[0]  # the start date's first hour in every zone
    else:
        since = ctx.now - parse_duration(settings.initial_window)
    # Until the moment of the pull, not of the run's start: a ledger the run itself wrote to (the CRM) is read
    # with those writes, so crm -> onec carries them in the same run.
    return Window(system, stream, store, since, utc_now())


def window_bounds(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """The instants that surely hold every business date in ``[date_from, date_to]`` of any store."""
    since = datetime.combine(date_from, time(), UTC) - _ZONE_SLACK
    until = datetime.combine(date_to + timedelta(days=1), time(), UTC) + _ZONE_SLACK
    return since, until


def run_pulls(ctx: SyncContext, windows: Iterable[Window], *, advance: bool, workers: int) -> PullReport:
    """Pull several windows on a thread pool; a stream that fails is logged and parked, the others go on."""
    total = PullReport()
    unread = ctx.failures.live_streams()  # streams a run could not read before: a good read resolves them
    # SQLite's one writer lands every stream's pages on a thread of its own (see Landing); PostgreSQL's
    # threads each write their own.
    with ExitStack() as stack:
        writer = PageWriter(ctx) if ctx.store.dialect == "sqlite" else None
        if writer is not None:
            stack.callback(writer.close)
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pull"))
        futures = [
            (window, pool.submit(pull_stream, ctx, window, advance=advance, writer=writer))
            for window in windows
        ]
        for window, future in futures:
            route = f"pull:{window.system}"
            try:
                report = future.result()
            except ConnectorError as exc:
                ctx.fail(
                    failure_for(window.system, route, exc, document=None, store=window.store or None), exc
                )
                continue
            total.add(report)
            if report.windows and (route, window.store) in unread:  # read by us, not skipped as another's
                with ctx.writing():
                    ctx.failures.resolve_stream(route, window.store or None)
    return total


def pull_window(
    config: ConnectorConfig,
    store: Store | None,
    system: str,
    date_from: date,
    date_to: date,
    stores: Sequence[str] | None = None,
    *,
    workers: int | None = None,
    map_landed: bool = True,
) -> PullReport:
    """Refresh the journal for business dates ``[date_from, date_to]`` of one system; write nowhere else.

    The reconciliation calls this for fresh reads before comparing: it moves no watermark, maps what it landed
    before returning, and a record that does not map is parked as a failed item like in a sync. Read the result with
    :meth:`connector.store.journal.Journal.documents_in_window`.

    Args:
        config: the loaded ``connector.yaml``.
        store: the open state database (opened from ``config.state`` when None, and closed after).
        system: the configured system to read (a till, 1C or the CRM).
        date_from: the first business date.
        date_to: the last business date, inclusive.
        stores: only these stores (None: every store of the system).
        workers: threads (default ``sync.workers``).
        map_landed: map what landed before returning (False: the pull alone, as a sync's pull stage; the
            receipts landed wait in the journal for a sync to map them).

    Example:
        >>> report = pull_window(config, store, "evotor", date(2026, 11, 1), date(2026, 11, 7))  # doctest: +SKIP
        >>> Journal(store.sessions).documents_in_window("evotor", None, date(2026, 11, 1), date(2026, 11, 7))
    """
    opened = store or open_store(config.state)
    try:
        ctx = SyncContext(config, opened, utc_now())
        since, until = window_bounds(date_from, date_to)
        windows = [
            Window(system, stream, s, since, until) for stream, s in source_streams(ctx, system, stores)
        ]
        with frozen_heap():
            report = run_pulls(ctx, windows, advance=False, workers=workers or config.sync.workers)
            if map_landed:
                map_days(ctx, system, report)
        return report
    finally:
        if store is None:
            opened.close()
