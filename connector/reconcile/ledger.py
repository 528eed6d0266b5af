"""Expected postings against a bonus ledger, and a ledger against its mirror (pure; no I/O).

**Postings.** The program's expected postings (:func:`connector.rules.evaluate` over the documents in the order
they happened) are joined with the ledger's operations on the posting key (``evotor:<receipt id>:<kind>``), which
every connector write carries. Per expected posting of a document in the window:

* no operation → ``missing_accrual`` (an accrual or a redemption the sale should have made) or
  ``missing_reversal`` (an accrual reversal or a redemption refund of a return);
* the first operation, plus the corrections applied to it (``<key>:correction:adjustment``), differs by more
  than the tolerance → ``accrual_mismatch``;
* each further operation under the same key that no compensation (``<key>:compensation:<op id>:adjustment``)
  cancels → ``duplicate_posting``.

An operation whose key names a document of the window that expects no such posting is an ``orphan_posting``.
Sales whose redemption breaks the program's limits are ``redemption_over_limit``; returns whose sale is unknown
are ``return_without_sale``.

**Balances.** A ledger and each system that mirrors it (a route ``from: <ledger>`` writing ``bonus_documents``)
must hold the same points per customer: Σ of every operation's signed amount, pending and expired ones included
on both sides, so activation and expiry dates (which each system applies on its own clock) cannot make two
correct ledgers disagree. Operations are paired by key to name the ones with no counterpart; 1C is never
matched by recorder (reference/onec.md §2.4: closing a shift re-homes movements).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from connector.discrepancies import Discrepancy, FixAction
from connector.model import Posting, Return, Sale, dump_posting
from connector.program import Program
from connector.reconcile.balances import available_by_buckets, available_by_register
from connector.reconcile.model import LedgerEntry, LedgerSide
from connector.rules import Evaluation, evaluate, redemption_violations

__all__ = [
    "CORRECTION",
    "compare_balances",
    "compare_postings",
    "compare_system_balances",
    "compensation_key",
    "correction_key",
    "evaluate_by_account",
]

CORRECTION = "correction"
_COMPENSATION = "compensation"
_MISSING_KIND = {
    "accrual": "missing_accrual",
    "redemption": "missing_accrual",
    "accrual_reversal": "missing_reversal",
    "redemption_refund": "missing_reversal",
}


def correction_key(key: str) -> str:
    """The posting key of the adjustment that corrects the amount posted under ``key``."""
    return f"{key}:{CORRECTION}:adjustment"


def compensation_key(key: str, operation_id: str) -> str:
    """The posting key of the posting that cancels operation ``operation_id``, a duplicate under ``key``."""
    return f"{key}:{_COMPENSATION}:{operation_id}:adjustment"


def _base_of(key: str) -> tuple[str, str | None] | None:
    """For a correction or compensation key: (the key it corrects, the compensated operation id or None)."""
    if key.endswith(f":{CORRECTION}:adjustment"):
        return key.removesuffix(f":{CORRECTION}:adjustment"), None
    parts = key.rsplit(":", 3)
    if len(parts) == 4 and parts[1] == _COMPENSATION and parts[3] == "adjustment":
        return parts[0], parts[2]
    return None


def _order(entry: LedgerEntry) -> tuple[Any, ...]:
    return (entry.occurred_at, len(entry.id), entry.id)  # numeric ids: shorter is smaller


@dataclass
class _Index:
    """A ledger's operations by key, with corrections and compensations set apart."""

    by_key: dict[str, list[LedgerEntry]]
    corrections: dict[str, Decimal]
    compensated: set[str]

    @classmethod
    def of(cls, entries: Sequence[LedgerEntry]) -> _Index:
        by_key: dict[str, list[LedgerEntry]] = {}
        corrections: dict[str, Decimal] = {}
        compensated: set[str] = set()
        for entry in entries:
            base = _base_of(entry.key)
            if base is None:
                by_key.setdefault(entry.key, []).append(entry)
            elif base[1] is None:
                corrections[base[0]] = corrections.get(base[0], Decimal(0)) + entry.amount
            else:
                compensated.add(base[1])
        for group in by_key.values():
            group.sort(key=_order)
        return cls(by_key, corrections, compensated)


class _PostingCheck:
    """One comparison of expected postings with a ledger (and the mirror that names 1C documents in refs)."""

    def __init__(
        self,
        program: Program,
        documents: Sequence[Sale | Return],
        window: tuple[date, date],
        ledger: LedgerSide,
        mirror: LedgerSide | None,
        tolerance: Decimal,
    ) -> None:
        self.program, self.window, self.ledger, self.tolerance = program, window, ledger, tolerance
        self.in_window = {d.ref.id: d for d in documents if window[0] <= d.business_date <= window[1]}
        self.system = documents[0].ref.system if documents else ""
        self.index = _Index.of(ledger.entries)
        self.mirror = _Index.of(mirror.entries).by_key if mirror else {}
        self.mirror_system = mirror.system if mirror else None
        self.found: list[Discrepancy] = []

    def _refs(self, document: Sale | Return, key: str, account: str | None, **more: str) -> dict[str, str]:
        refs = {self.system: document.ref.id, "key": key}
        holder = self.ledger.holders.get(account or "")
        if holder is not None:
            refs[f"{self.ledger.system}_{self.ledger.holder_label}"] = holder
        return refs | more

    def _add(self, kind: str, doc: Sale | Return, refs: dict[str, str], *values: Any) -> None:
        expected, actual, delta, fix = values
        self.found.append(Discrepancy(kind, doc.store, doc.business_date, refs, expected, actual, delta, fix))

    def expected(self, posting: Posting) -> None:
        if posting.document is None or posting.document.id not in self.in_window:
            return
        doc = self.in_window[posting.document.id]
        operations = self.index.by_key.get(posting.key, [])
        if not operations:
            self._missing(posting, doc)
            return
        first = operations[0]
        actual = first.amount + self.index.corrections.get(posting.key, Decimal(0))
        if abs(actual - posting.amount) > self.tolerance:
            self._mismatch(posting, doc, first, actual)
        for position, extra in enumerate(operations[1:], start=1):
            if extra.id not in self.index.compensated:
                self._duplicate(posting, doc, operations, position)

    def _missing(self, posting: Posting, doc: Sale | Return) -> None:
        fix = _post(
            self.ledger.system, posting, f"post the missing {posting.kind} of {posting.amount:.2f} points"
        )
        refs = self._refs(doc, posting.key, posting.account)
        self._add(_MISSING_KIND[posting.kind], doc, refs, posting.amount, None, -posting.amount, fix)

    def _mismatch(self, posting: Posting, doc: Sale | Return, first: LedgerEntry, actual: Decimal) -> None:
        difference = posting.amount - actual
        adjustment = _adjustment(posting, correction_key(posting.key), difference)
        fix = _post(self.ledger.system, adjustment, f"post an adjustment of {difference:+.2f} points")
        refs = self._refs(doc, posting.key, posting.account, **{self.ledger.system: first.id})
        self._add("accrual_mismatch", doc, refs, posting.amount, actual, actual - posting.amount, fix)

    def _duplicate(
        self, posting: Posting, doc: Sale | Return, operations: list[LedgerEntry], position: int
    ) -> None:
        extra = operations[position]
        cancel = _adjustment(posting, compensation_key(posting.key, extra.id), -extra.amount)
        fix = FixAction(
            "compensate_posting",
            self.ledger.system,
            f"{self.ledger.system}:{cancel.key}",
            dump_posting(cancel),
            f"cancel operation {extra.id}, a second {posting.kind} of {extra.amount:.2f} points",
        )
        refs = self._refs(doc, posting.key, posting.account, **{self.ledger.system: extra.id})
        refs |= self._mirror_ref(posting.key, position)
        total = sum((op.amount for op in operations), Decimal(0))
        self._add("duplicate_posting", doc, refs, posting.amount, total, extra.amount, fix)

    def _mirror_ref(self, key: str, position: int) -> dict[str, str]:
        mirrored = self.mirror.get(key, [])
        if self.mirror_system is None or position >= len(mirrored):
            return {}
        return {self.mirror_system: mirrored[position].id}

    def orphans(self, expected_keys: set[str]) -> None:
        prefix = f"{self.system}:"
        for key, operations in self.index.by_key.items():
            if key in expected_keys or not key.startswith(prefix):
                continue
            doc = self.in_window.get(key.removeprefix(prefix).rpartition(":")[0])
            if doc is None:
                continue
            for position, op in enumerate(operations):
                refs = {self.system: doc.ref.id, "key": key, self.ledger.system: op.id}
                if op.holder is not None:
                    refs[f"{self.ledger.system}_{self.ledger.holder_label}"] = op.holder
                refs |= self._mirror_ref(key, position)
                fix = FixAction(
                    "manual",
                    None,
                    None,
                    None,
                    f"the document expects no {op.kind}: cancel operation {op.id} if it is wrong",
                )
                self._add("orphan_posting", doc, refs, None, op.amount, op.amount, fix)

    def redemptions(self) -> None:
        for doc in self.in_window.values():
            if not isinstance(doc, Sale) or doc.status != "posted":
                continue
            problems = redemption_violations(self.program, doc)
            if not problems:
                continue
            refs = {self.system: doc.ref.id}
            if doc.account:
                key = f"{self.system}:{doc.ref.id}:redemption"
                operations = self.index.by_key.get(key, [])
                refs = self._refs(
                    doc, key, doc.account, **({self.ledger.system: operations[0].id} if operations else {})
                )
            fix = FixAction("manual", None, None, None, "; ".join(problems))
            self._add("redemption_over_limit", doc, refs, problems, doc.bonus_redeemed, None, fix)


def evaluate_by_account(
    program: Program, documents: Sequence[Sale | Return], spend_before: Mapping[str, Decimal]
) -> Evaluation:
    """:func:`connector.rules.evaluate` per customer, each from their own spend before the documents.

    A return is evaluated with its sale's customer (its postings go to that account), so a return whose sale is
    among the documents always finds it.
    """
    if not spend_before:
        return evaluate(program, documents)
    owner = {d.ref: d.account for d in documents if isinstance(d, Sale)}
    groups: dict[str | None, list[Sale | Return]] = {}
    for document in documents:
        account = document.account
        if isinstance(document, Return) and document.original in owner:
            account = owner[document.original]
        groups.setdefault(account, []).append(document)
    postings: list[Posting] = []
    orphans: list[Return] = []
    for account, group in groups.items():
        spent = spend_before.get(account, Decimal(0)) if account else Decimal(0)
        result = evaluate(program, group, cumulative_spend_before=spent)
        postings += result.postings
        orphans += result.returns_without_sale
    return Evaluation(tuple(postings), tuple(orphans))


def _adjustment(posting: Posting, key: str, amount: Decimal) -> Posting:
    return posting.model_copy(
        update={
            "key": key,
            "kind": "adjustment",
            "amount": amount,
            "status": "active",
            "available_at": None,
            "expires_at": None,
        }
    )


def _post(target: str, posting: Posting, description: str) -> FixAction:
    return FixAction("post_posting", target, f"{target}:{posting.key}", dump_posting(posting), description)


def compare_postings(
    program: Program,
    documents: Sequence[Sale | Return],
    *,
    window: tuple[date, date],
    ledger: LedgerSide,
    mirror: LedgerSide | None = None,
    tolerance: Decimal = Decimal("0.01"),
    counterpart: tuple[str, Mapping[str, str]] | None = None,
    spend_before: Mapping[str, Decimal] | None = None,
) -> list[Discrepancy]:
    """Expected postings of the window's documents against ``ledger``.

    Args:
        program: the loyalty program.
        documents: the documents system's documents in the order they happened, with enough history before the
            window that a return finds its sale.
        window: first and last business date (inclusive).
        ledger: the ledger the postings go to (the CRM).
        mirror: a system that mirrors the ledger (1C), whose document ids refs name for duplicates and orphans.
        tolerance: points differences up to this agree.
        counterpart: (system, {document id: its id there}) of the documents' counterparts elsewhere, named in
            ``return_without_sale``.
        spend_before: each customer's spend before the first document (it picks the tier); 0 when absent.
    """
    check = _PostingCheck(program, documents, window, ledger, mirror, tolerance)
    evaluation = evaluate_by_account(program, documents, spend_before or {})
    expected_keys: set[str] = set()
    for posting in evaluation.postings:
        expected_keys.add(posting.key)
        check.expected(posting)
    check.orphans(expected_keys)
    check.redemptions()
    for ret in evaluation.returns_without_sale:
        if ret.ref.id in check.in_window:
            refs = {check.system: ret.ref.id}
            if counterpart and ret.ref.id in counterpart[1]:
                refs[counterpart[0]] = counterpart[1][ret.ref.id]
            fix = FixAction("manual", None, None, None, "find the sale this return refunds and link it")
            check.found.append(
                Discrepancy(
                    "return_without_sale", ret.store, ret.business_date, refs, None, ret.total, None, fix
                )
            )
    return check.found


def compare_balances(
    ledger: LedgerSide, mirror: LedgerSide, *, tolerance: Decimal, today: date
) -> list[Discrepancy]:
    """Per customer, the points ``ledger`` holds against the points ``mirror`` holds (``balance_mismatch``).

    Args:
        ledger: the ledger of record (the CRM).
        mirror: the system mirroring it (1C bonus documents).
        tolerance: points differences up to this agree.
        today: the date of a mismatch no single operation explains.
    """
    totals: dict[str, list[Decimal]] = {}
    for side, entries in ((0, ledger.entries), (1, mirror.entries)):
        for entry in entries:
            totals.setdefault(entry.account, [Decimal(0), Decimal(0)])[side] += entry.amount
    unmatched = _unmatched(ledger.entries, mirror.entries)
    found = []
    for account, (held, mirrored) in sorted(totals.items()):
        if abs(mirrored - held) <= tolerance:
            continue
        extra = unmatched.get(account, [])
        refs = {
            f"{side.system}_{side.holder_label}": side.holders[account]
            for side in (ledger, mirror)
            if account in side.holders
        }
        for system in (ledger.system, mirror.system):
            ids = [entry.id for entry in extra if entry.system == system]
            if ids:
                refs[system] = ",".join(ids)
        day = extra[0].occurred_at.date() if extra else today
        fix = FixAction(
            "manual",
            None,
            None,
            None,
            f"{mirror.system} holds {mirrored - held:+.2f} points against {ledger.system}: "
            "post the missing operation where it belongs",
        )
        found.append(Discrepancy("balance_mismatch", None, day, refs, held, mirrored, mirrored - held, fix))
    return found


def _unmatched(left: Sequence[LedgerEntry], right: Sequence[LedgerEntry]) -> dict[str, list[LedgerEntry]]:
    """Operations of either side with no counterpart under the same key, by account, oldest first.

    Under one key the oldest operations pair up; what one side holds beyond the other's count is unmatched.
    """
    counts = (Counter(entry.key for entry in left), Counter(entry.key for entry in right))
    out: dict[str, list[LedgerEntry]] = {}
    for entries, theirs in ((left, counts[1]), (right, counts[0])):
        seen: Counter[str] = Counter()
        for entry in sorted(entries, key=_order):
            seen[entry.key] += 1
            if seen[entry.key] > theirs[entry.key]:
                out.setdefault(entry.account, []).append(entry)
    for group in out.values():
        group.sort(key=_order)
    return out


def compare_system_balances(side: LedgerSide, *, tolerance: Decimal) -> list[Discrepancy]:
    """Each account's balance as the system reports it against the balance its operations imply then.

    Pending accruals and expired points are accounted by the system's own rule (``side.balance_rule``), so
    only a balance the operations cannot explain — an operation missing from the feed, a balance edited by
    hand — is a ``balance_mismatch``.
    """
    if side.balances_at is None:
        return []
    at = side.balances_at
    replay = available_by_register if side.balance_rule == "register" else available_by_buckets
    by_holder: dict[str, list[LedgerEntry]] = {}
    for entry in side.entries:
        if entry.holder is not None:
            by_holder.setdefault(entry.holder, []).append(entry)
    found = []
    for holder, reported in sorted(side.balances.items()):
        implied = replay(by_holder.get(holder, []), at)
        if abs(reported - implied) <= tolerance:
            continue
        refs = {f"{side.system}_{side.holder_label}": holder}
        fix = FixAction(
            "manual",
            None,
            None,
            None,
            f"{side.system} reports {reported:.2f} points available, its operations make {implied:.2f}: "
            "find the operation the feed does not show",
        )
        found.append(
            Discrepancy("balance_mismatch", None, at.date(), refs, implied, reported, reported - implied, fix)
        )
    return found
