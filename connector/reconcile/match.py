"""Documents across two systems: pair them, then compare each pair (pure; no I/O).

Pairs are found in four passes, each over hash indexes of what is still unmatched (DESIGN.md §7):

1. **cross-reference** — pairs the journal already knows (``cross_refs``);
2. **external id** — the connector's key kept on the right document (1C ``Комментарий``
   ``onec:evotor:<id>:sale|return``) names the left document;
3. **fiscal identifiers** — the same fiscal drive and document number;
4. **store + business date + number + amount**.

A right document whose external id names a left document that does not exist is not offered to passes 3–4: it was
written from a receipt the left system no longer has, which is exactly what ``missing_in_left`` reports.

Each pair is then compared: totals (``amount_mismatch`` beyond the tolerance), else the lines (``line_mismatch``),
and the customer (``customer_mismatch``). Unpaired posted documents of the window are ``missing_in_right`` /
``missing_in_left``. Which documents fall in the window is decided by the left document's business date, and for
an unpaired right document by its own date in the store's zone (learnt from the left system's receipts of that
store, since 1C dates carry the infobase's clock rather than the store's).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from connector.discrepancies import Discrepancy, FixAction
from connector.logs import mask_phone
from connector.reconcile.model import DocRecord

__all__ = [
    "DocumentMatch",
    "StoreDayPass",
    "external_source_id",
    "final_pass",
    "match_documents",
    "match_grouped",
    "store_day_pass",
]

PayloadOf = Callable[[str], dict[str, Any] | None]
Payloads = Callable[[list[str]], Mapping[str, dict[str, Any]]]
_ZERO = Decimal("0.00")


@dataclass
class DocumentMatch:
    """The outcome of matching two systems' documents.

    Attributes:
        pairs: left id → right id of every pair found.
        methods: how each pair was found, by pass (``cross_ref``, ``external_id``, ``fiscal``, ``number``).
        discrepancies: what the comparison found.
    """

    pairs: dict[str, str] = field(default_factory=dict)
    methods: dict[str, int] = field(default_factory=dict)
    discrepancies: list[Discrepancy] = field(default_factory=list)


def external_source_id(key: str | None, source_system: str) -> str | None:
    """The source document id in a connector key ``{target}:{source}:{id}:{kind}``, if it names ``source_system``.

    Example:
        >>> external_source_id("onec:evotor:3f2a-…:sale", "evotor")
        '3f2a-…'
    """
    if not key:
        return None
    parts = key.split(":")
    if len(parts) < 4 or parts[1] != source_system:
        return None
    return ":".join(parts[2:-1])


class _Matcher:
    """State of one matching run: the pairs so far and what is still open on each side.

    Open documents are held in dicts that shrink as pairs are found, so each pass only walks what is left.
    """

    def __init__(self, left: list[DocRecord], right: list[DocRecord]) -> None:
        self.left = {doc.id: doc for doc in left}
        self.right = {doc.id: doc for doc in right}
        self.open_left = dict(self.left)
        self.open_right = dict(self.right)
        self.result = DocumentMatch()

    def pair(self, left_id: str, right_id: str) -> None:
        self.result.pairs[left_id] = right_id
        del self.open_left[left_id], self.open_right[right_id]

    def _count(self, method: str, before: int) -> None:
        self.result.methods[method] = len(self.result.pairs) - before

    def by_cross_refs(self, cross_refs: Mapping[str, str]) -> None:
        before = len(self.result.pairs)
        if len(cross_refs) <= len(self.open_right):
            known = list(cross_refs.items())
        else:  # a store-day among many known pairs: look its own documents up
            known = [
                (right_id, cross_refs[right_id]) for right_id in self.open_right if right_id in cross_refs
            ]
        for right_id, left_id in known:
            if right_id in self.open_right and left_id in self.open_left:
                self.pair(left_id, right_id)
        self._count("cross_ref", before)

    def by_external_id(
        self,
        left_system: str,
        *,
        known: Callable[[set[str]], set[str]] | None = None,
        held: Container[str] = frozenset(),
    ) -> set[str]:
        """Pair by the key kept on the right document; return the right ids whose key names no left one.

        Args:
            left_system: the system the keys name.
            known: of the left ids named but not among this matcher's documents, those that exist all the same
                (compared in an earlier store-day); None when this matcher holds every left document.
            held: ids on either side this pass leaves alone (a cross-reference pairs them elsewhere).
        """
        before, unknown = len(self.result.pairs), {}
        open_left, pairs = self.open_left, self.result.pairs
        for doc in list(self.open_right.values()):
            source = external_source_id(doc.external_key, left_system)
            if source is None or doc.id in held:
                continue
            if source in open_left and source not in held:
                pairs[source] = doc.id
                del open_left[source], self.open_right[doc.id]
            elif source not in self.left:
                unknown[doc.id] = source
        self._count("external_id", before)
        existing = known(set(unknown.values())) if known is not None and unknown else set()
        return {right_id for right_id, source in unknown.items() if source not in existing}

    def by_index(
        self, method: str, key_of: Callable[[DocRecord], tuple[Any, ...] | None], skip: set[str]
    ) -> None:
        before = len(self.result.pairs)
        index: dict[tuple[Any, ...], list[str]] = {}
        for doc in self.open_left.values():
            key = key_of(doc)
            if key is not None:
                index.setdefault(key, []).append(doc.id)
        for doc in list(self.open_right.values()):
            key = key_of(doc) if doc.id not in skip else None
            candidates = index.get(key) if key is not None else None
            if candidates and len(candidates) == 1 and candidates[0] in self.open_left:
                self.pair(candidates[0], doc.id)  # two candidates are a guess, never a match
        self._count(method, before)


def _fiscal_key(doc: DocRecord) -> tuple[Any, ...] | None:
    return (doc.kind, *doc.fiscal) if doc.fiscal else None


def _number_key(doc: DocRecord) -> tuple[Any, ...]:
    return (doc.kind, doc.store, doc.business_date, doc.number.strip().lstrip("0"), doc.total)


def match_documents(
    left: list[DocRecord],
    right: list[DocRecord],
    *,
    window: tuple[date, date],
    tolerance: Decimal,
    cross_refs: Mapping[str, str] | None = None,
    payload_of: PayloadOf | None = None,
    systems: tuple[str, str] | None = None,
) -> DocumentMatch:
    """Pair ``left`` and ``right`` documents and report every difference of the window.

    Args:
        left: the system of record's documents (the tills).
        right: the other system's documents (accounting).
        window: first and last business date (inclusive).
        tolerance: money differences up to this agree.
        cross_refs: right id → left id pairs already known to the journal.
        payload_of: left id → canonical JSON of the document, for the fix that creates it on the right.
        systems: the (left, right) system names; taken from the documents when None (both must be non-empty).
    """
    if not left and not right:
        return DocumentMatch()
    left_system, right_system = systems or (left[0].system, right[0].system)
    compare = _Comparer(window, tolerance, payload_of or (lambda _id: None))
    matcher = _Matcher(left, right)
    _finish(matcher, compare, (left_system, right_system), cross_refs or {}, None, _Offsets(left))
    return matcher.result


def _finish(
    matcher: _Matcher,
    compare: _Comparer,
    systems: tuple[str, str],
    cross_refs: Mapping[str, str],
    known: Callable[[set[str]], set[str]] | None,
    offsets: _Offsets,
    payloads: Payloads | None = None,
) -> None:
    """Every pass over what ``matcher`` holds, then the pairs compared and the unpaired reported (with the
    payloads of the documents to create fetched at once when ``payloads`` is given)."""
    left_system, right_system = systems
    matcher.by_cross_refs(cross_refs)
    dangling = matcher.by_external_id(left_system, known=known)
    if matcher.open_left and matcher.open_right:
        matcher.by_index("fiscal", _fiscal_key, dangling)
        matcher.by_index("number", _number_key, dangling)
    out = matcher.result
    out.discrepancies += _compare_pairs(matcher, compare)
    if payloads is not None:
        wanted = [doc.id for doc in matcher.open_left.values() if compare.reported_missing(doc)]
        compare.payload_of = payloads(wanted).get if wanted else compare.payload_of
    for doc in matcher.open_left.values():
        out.discrepancies += compare.missing_right(doc, right_system)
    for doc in matcher.open_right.values():
        out.discrepancies += compare.missing_left(doc, offsets.get(doc.store))


def match_grouped(
    groups: Iterable[tuple[list[DocRecord], list[DocRecord]]],
    *,
    systems: tuple[str, str],
    window: tuple[date, date],
    tolerance: Decimal,
    known_left: Callable[[set[str]], set[str]],
    cross_refs: Mapping[str, str] | None = None,
    payloads: Payloads | None = None,
    keep_pairs: bool = True,
) -> DocumentMatch:
    """:func:`match_documents` over documents that arrive one store-day at a time, each dropped once compared.

    Each group (the left and right documents of one store and business date) is paired by cross-reference
    and by external id — exact identities — and its pairs compared at once; only what is left unpaired is
    carried on: a right document whose key names a left one of another store-day waits for that store-day
    (a 1C document dated a day before its receipt by the infobase's clock) and competes there by instant with
    that store-day's own; everything else unpaired goes to a final pass that runs every pass of
    :func:`match_documents` over the rest of the window (a document without a key, one whose till receipt is
    gone). So memory holds a store-day and the unpaired, not the window, and the outcome is the one-pass
    outcome — with one exception: a right document dated after its receipt's store-day, competing with another
    one that names the same receipt, loses to it even if its instant is earlier (two 1C documents for one
    receipt, the later-dated one created first).

    Args:
        groups: (left, right) documents per store-day, each side sorted by instant then id.
        systems: the (left, right) system names.
        window: first and last business date (inclusive).
        tolerance: money differences up to this agree.
        known_left: of some left ids, those that exist among the left documents read (the dangling test of
            the final pass: the documents of earlier store-days are gone by then).
        cross_refs: right id → left id pairs already known to the journal.
        payloads: left ids → their canonical JSON, for the fixes that create them on the right (one call for
            every document missing on the right).
        keep_pairs: whether :attr:`DocumentMatch.pairs` keeps every pair (a ledger reconciliation needs them);
            False keeps only the final pass's, so memory stays bounded.
    """
    part = store_day_pass(groups, systems=systems, window=window, tolerance=tolerance, cross_refs=cross_refs,
                          keep_pairs=keep_pairs)  # fmt: skip
    return final_pass([part], systems=systems, window=window, tolerance=tolerance, known_left=known_left,
                      cross_refs=cross_refs, payloads=payloads)  # fmt: skip


@dataclass
class StoreDayPass:
    """What the store-day pass of :func:`match_grouped` leaves for the final pass (picklable: a process can
    run the pass over some of the stores).

    Attributes:
        found: the discrepancies of the pairs found.
        pairs: the pairs found (when kept).
        paired: pairs found per method.
        rest_left: left documents left unpaired.
        rest_right: right documents left unpaired (with those waiting for a store-day that never came).
        offsets: each store's latest left instant (its UTC offset).
    """

    found: list[Discrepancy] = field(default_factory=list)
    pairs: dict[str, str] = field(default_factory=dict)
    paired: dict[str, int] = field(default_factory=dict)
    rest_left: list[DocRecord] = field(default_factory=list)
    rest_right: list[DocRecord] = field(default_factory=list)
    offsets: _Offsets = field(default_factory=lambda: _Offsets(()))


def store_day_pass(
    groups: Iterable[tuple[list[DocRecord], list[DocRecord]]],
    *,
    systems: tuple[str, str],
    window: tuple[date, date],
    tolerance: Decimal,
    cross_refs: Mapping[str, str] | None = None,
    keep_pairs: bool = True,
) -> StoreDayPass:
    """The first half of :func:`match_grouped`: each store-day paired by identity and compared, then dropped."""
    cross = cross_refs or {}
    held = {*cross, *cross.values()}
    compare = _Comparer(window, tolerance, lambda _id: None)
    out = StoreDayPass(paired={"cross_ref": 0, "external_id": 0})
    waiting: dict[str, list[DocRecord]] = {}  # left id → right documents naming it from earlier store-days
    for left, right in groups:
        out.offsets.add(left)
        early = [doc for one in left if one.id in waiting for doc in waiting.pop(one.id)]
        if early:  # they compete with this store-day's own by instant, as in one pass
            right = sorted([*early, *right], key=_instant)
        matcher = _Matcher(left, right)
        if cross:
            matcher.by_cross_refs(cross)
        matcher.by_external_id(systems[0], held=held)
        out.found += _compare_pairs(matcher, compare)
        for method in out.paired:
            out.paired[method] += matcher.result.methods.get(method, 0)
        if keep_pairs:
            out.pairs.update(matcher.result.pairs)
        out.rest_left += matcher.open_left.values()
        for doc in matcher.open_right.values():
            source = external_source_id(doc.external_key, systems[0])
            if source is not None and source not in matcher.left and doc.id not in held:
                waiting.setdefault(source, []).append(doc)
            else:
                out.rest_right.append(doc)
    out.rest_right += (doc for docs in waiting.values() for doc in docs)
    return out


def final_pass(
    parts: Sequence[StoreDayPass],
    *,
    systems: tuple[str, str],
    window: tuple[date, date],
    tolerance: Decimal,
    known_left: Callable[[set[str]], set[str]],
    cross_refs: Mapping[str, str] | None = None,
    payloads: Payloads | None = None,
) -> DocumentMatch:
    """The second half of :func:`match_grouped`: every pass over what the store-day passes left unpaired."""
    out, offsets = DocumentMatch(), _Offsets(())
    rest_left: list[DocRecord] = []
    rest_right: list[DocRecord] = []
    paired: dict[str, int] = {}
    for part in parts:
        out.discrepancies += part.found
        out.pairs.update(part.pairs)
        for method, count in part.paired.items():
            paired[method] = paired.get(method, 0) + count
        rest_left += part.rest_left
        rest_right += part.rest_right
        offsets.merge(part.offsets)
    rest_left.sort(key=_instant)
    rest_right.sort(key=_instant)
    final = _Matcher(rest_left, rest_right)
    compare = _Comparer(window, tolerance, lambda _id: None)
    _finish(final, compare, systems, cross_refs or {}, known_left, offsets, payloads)
    out.pairs.update(final.result.pairs)
    out.methods = {method: paired.get(method, 0) + count for method, count in final.result.methods.items()}
    out.discrepancies += final.result.discrepancies
    return out


def _instant(doc: DocRecord) -> tuple[datetime, str]:
    return (doc.occurred_at, doc.id)


def _compare_pairs(matcher: _Matcher, compare: _Comparer) -> list[Discrepancy]:
    first, last = compare.window
    left, right = matcher.left, matcher.right
    found: list[Discrepancy] = []
    for left_id, right_id in matcher.result.pairs.items():
        one, other = left[left_id], right[right_id]
        if not first <= one.business_date <= last:
            continue
        if one.total == other.total and one.lines == other.lines and one.account == other.account:
            continue  # the common case, decided without a call
        found += compare.pair(one, other)
    return found


class _Offsets:
    """Each store's UTC offset as the left system states it (its latest receipt's), learnt as documents pass."""

    def __init__(self, documents: Iterable[DocRecord]) -> None:
        self._latest: dict[str, tuple[datetime, timedelta]] = {}
        self.add(documents)

    def add(self, documents: Iterable[DocRecord]) -> None:
        latest = self._latest
        for doc in documents:
            known = latest.get(doc.store)
            if known is None or doc.occurred_at > known[0]:
                offset = doc.occurred_at.utcoffset()
                if offset is not None:
                    latest[doc.store] = (doc.occurred_at, offset)

    def merge(self, other: _Offsets) -> None:
        """Learn what another pass learnt (over other stores, or the same ones)."""
        for store, (instant, offset) in other._latest.items():
            known = self._latest.get(store)
            if known is None or instant > known[0]:
                self._latest[store] = (instant, offset)

    def get(self, store: str) -> timedelta | None:
        known = self._latest.get(store)
        return known[1] if known else None


def _lines_json(doc: DocRecord) -> list[dict[str, str]]:
    return [
        {"sku": sku, "quantity": f"{qty:.3f}", "amount": f"{amount:.2f}"} for sku, qty, amount in doc.lines
    ]


def _masked(account: str | None) -> str | None:
    if account is None:
        return None
    return account if account.startswith("card:") else mask_phone(account)


def _manual(description: str) -> FixAction:
    return FixAction("manual", None, None, None, description)


@dataclass
class _Comparer:
    window: tuple[date, date]
    tolerance: Decimal
    payload_of: PayloadOf

    def _in_window(self, day: date) -> bool:
        return self.window[0] <= day <= self.window[1]

    def pair(self, left: DocRecord, right: DocRecord) -> list[Discrepancy]:
        if not self._in_window(left.business_date) or "posted" not in (left.status, right.status):
            return []
        refs = {left.system: left.id, right.system: right.id}
        found: list[Discrepancy] = []
        where = (left.store, left.business_date)
        if abs(right.total - left.total) > self.tolerance:
            fix = _manual(f"correct the total of {right.system} document {right.number} to {left.total:.2f}")
            found.append(
                Discrepancy(
                    "amount_mismatch", *where, refs, left.total, right.total, right.total - left.total, fix
                )
            )
        elif not self._same_lines(left, right):
            fix = _manual(f"correct the lines of {right.system} document {right.number} after the receipt")
            found.append(
                Discrepancy("line_mismatch", *where, refs, _lines_json(left), _lines_json(right), _ZERO, fix)
            )
        if left.account != right.account:
            fix = _manual(f"set the customer of {right.system} document {right.number} as the receipt has it")
            found.append(
                Discrepancy(
                    "customer_mismatch",
                    *where,
                    refs,
                    _masked(left.account),
                    _masked(right.account),
                    None,
                    fix,
                )
            )
        return found

    def _same_lines(self, left: DocRecord, right: DocRecord) -> bool:
        if left.lines == right.lines:
            return True
        if len(left.lines) != len(right.lines):
            return False
        return all(
            a[:2] == b[:2] and abs(a[2] - b[2]) <= self.tolerance
            for a, b in zip(left.lines, right.lines, strict=True)
        )

    def reported_missing(self, doc: DocRecord) -> bool:
        """Whether an unpaired left document is reported (dated in the window, posted)."""
        return self._in_window(doc.business_date) and doc.status == "posted"

    def missing_right(self, doc: DocRecord, right_system: str) -> list[Discrepancy]:
        if not self.reported_missing(doc) or not right_system:
            return []
        key = f"{right_system}:{doc.system}:{doc.id}:{doc.kind}"
        fix = FixAction(
            "create_document",
            right_system,
            key,
            self.payload_of(doc.id),
            f"create the {doc.kind} {doc.number} of {doc.business_date} in {right_system}",
        )
        refs = {doc.system: doc.id}
        return [
            Discrepancy(
                "missing_in_right", doc.store, doc.business_date, refs, doc.total, None, -doc.total, fix
            )
        ]

    def missing_left(self, doc: DocRecord, offset: timedelta | None) -> list[Discrepancy]:
        day = doc.occurred_at.astimezone(timezone(offset)).date() if offset is not None else doc.business_date
        if not self._in_window(day) or doc.status != "posted":
            return []
        fix = _manual(f"find the till receipt of {doc.system} document {doc.number}, or cancel the document")
        return [
            Discrepancy(
                "missing_in_left", doc.store, day, {doc.system: doc.id}, None, doc.total, doc.total, fix
            )
        ]
