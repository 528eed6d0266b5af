"""What an earlier connector run left in 1C and the CRM, the discrepancies injected, and the answer key.

The definitions of every injected kind, and of the ids the answer key lists for it, are in the docstring of
:mod:`connector.sandbox.generator`; this module implements them. :func:`canonical_documents` and
:func:`load_world_program` (from :mod:`connector.sandbox._expected`) give a world's receipts and program to the
rules engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from connector.discrepancies import DISCREPANCY_KINDS  # re-exported: the sandbox injects every kind
from connector.sandbox._expected import (
    ExpectedPosting,
    canonical_documents,
    expected_by_receipt,
    load_world_program,
)
from connector.sandbox._till import new_uuid, seeded_rng
from connector.sandbox.world import (
    AnswerKeyEntry,
    CrmOperation,
    OneCBonusDocument,
    OneCReceipt,
    Receipt,
    ReceiptLine,
    World,
)

__all__ = [
    "DISCREPANCY_KINDS",
    "canonical_documents",
    "load_world_program",
    "posting_key",
    "record_earlier_run",
]

MOSCOW = timezone(timedelta(hours=3))  # 1C's and the CRM's clock: Europe/Moscow has no daylight saving
_CREDIT_KINDS = {"accrual", "redemption_refund", "adjustment"}
_OPENING_COMMENT = "Перенос остатка бонусов из прежней программы"
_MANUAL_1C_COMMENT = "Ручная корректировка бонусов по акту сверки"
_CENT = Decimal("0.01")


def posting_key(receipt_id: str, kind: str) -> str:
    """The posting key of an Evotor document's posting: ``evotor:<receipt id>:<kind>``."""
    return f"evotor:{receipt_id}:{kind}"


@dataclass
class _Op:
    """A CRM operation (or a manual 1C document) before its id is known: ids follow creation time."""

    account: int
    credit: bool
    amount: Decimal
    created_at: datetime
    comment: str
    activation: date | None = None
    expire: date | None = None
    id: int = 0
    mirror: OneCBonusDocument | None = None


@dataclass
class _Pending:
    """An answer-key entry whose CRM and 1C ids are filled in once every id is assigned."""

    kind: str
    receipt: Receipt | None
    refs: dict[str, str]
    op: _Op | None = None  # its id goes into refs["crm"]
    mirror_of: _Op | None = None  # the Ref_Key of its 1C document goes into refs["onec"]
    onec_of: str | None = None  # the Ref_Key of this Evotor receipt's 1C receipt goes into refs["onec"]
    note: str = ""
    store: str = ""
    business_date: date | None = None


class _EarlierRun:
    """Builds the 1C and CRM state an earlier run left, with injected discrepancies and their key."""

    def __init__(
        self,
        world: World,
        opening: dict[str, Decimal],
        made: list[tuple[str, str, str]],
        opening_in_clean: bool,
    ) -> None:
        self.world, self.opening, self.made, self.opening_in_clean = world, opening, made, opening_in_clean
        self.rng = seeded_rng(world.seed, "earlier-run")
        self.count = max(3, len(world.receipts) // 400)
        self.customers = {customer.phone: customer for customer in world.customers}
        self.stores = {store.id: store for store in world.stores}
        self.used = {receipt_id for _, receipt_id, _ in made}
        self.pending: list[_Pending] = []
        self.ops: list[_Op] = []
        self.manual: list[_Op] = []  # 1C documents with no CRM counterpart
        self.by_key: dict[str, _Op] = {}
        self.skip_onec: set[str] = set()
        self.onec_lines: dict[str, tuple[ReceiptLine, ...]] = {}
        self.onec_customer: dict[str, str | None] = {}
        self.onec_extra: list[OneCReceipt] = []
        self.onec_refs: dict[str, str] = {}
        self.plain: list[Receipt] = []
        self.by_id: dict[str, Receipt] = {}

    def run(self) -> None:
        """Fill ``world``'s 1C receipts, CRM operations, 1C bonus documents and answer key."""
        if self.world.clean:
            till = [_Pending(kind, self._receipt(rid), {"evotor": rid}) for kind, rid, _ in self.made]
            self.pending.extend(till)
            self.world.answer_key = self._resolve()
            if self.opening_in_clean:
                self._opening_balances()
                self._assign_ids()
                self.world.crm_operations = [self._crm(op) for op in self.ops]
            return
        postings = expected_by_receipt(self.world, load_world_program(self.world))
        self._opening_balances()
        self._ledger(postings)
        self._documents()
        self._till_side()
        self._balance_mismatches()
        self._assign_ids()
        self.world.onec_receipts = self._onec_receipts()
        self.world.onec_bonus_documents = self._bonus_documents()
        self.world.crm_operations = [self._crm(op) for op in self.ops]
        self.world.answer_key = self._resolve()

    def _receipt(self, receipt_id: str) -> Receipt:
        if not self.by_id:
            self.by_id = {receipt.id: receipt for receipt in self.world.receipts}
        return self.by_id[receipt_id]

    def _pick(self, pool: Iterable[Receipt]) -> list[Receipt]:
        """Up to ``count`` unused receipts of ``pool``, one per (store, day) as far as they go."""
        candidates = [receipt for receipt in pool if receipt.id not in self.used]
        # A random sample a few times larger than needed spreads as well as the whole pool, at scale for less.
        candidates = self.rng.sample(candidates, min(len(candidates), 8 * self.count))
        slots: set[tuple[str, date]] = set()
        first: list[Receipt] = []
        rest: list[Receipt] = []
        for receipt in candidates:
            slot = (receipt.store_id, receipt.business_date)
            (rest if slot in slots else first).append(receipt)
            slots.add(slot)
        picked = (first + rest)[: self.count]
        self.used.update(receipt.id for receipt in picked)
        return picked

    def _plain_sales(self) -> list[Receipt]:
        returned = {receipt.original_id for receipt in self.world.receipts if receipt.original_id}
        return [
            r
            for r in self.world.receipts
            if r.kind == "sale" and r.id not in returned and r.id not in self.used
        ]

    def _opening_balances(self) -> None:
        day = self.world.start - timedelta(days=30)
        moment = datetime.combine(day, time(10), tzinfo=MOSCOW)
        for index, customer in enumerate(self.world.customers):
            amount = self.opening.get(customer.phone, Decimal(0))
            if amount:
                when = moment + timedelta(seconds=7 * index)
                expire = day + timedelta(days=365)
                self.ops.append(
                    _Op(customer.crm_account_id, True, amount, when, _OPENING_COMMENT, day, expire)
                )

    def _ledger(self, postings: dict[str, list[ExpectedPosting]]) -> None:
        plain = self._plain_sales()
        accrued = [r for r in plain if any(p.kind == "accrual" for p in postings.get(r.id, ()))]
        missing = {r.id for r in self._pick(accrued)}
        mismatch = {r.id for r in self._pick(accrued)}
        duplicate = {r.id for r in self._pick(accrued)}
        reversed_ = [
            r
            for r in self.world.receipts
            if any(p.kind == "accrual_reversal" for p in postings.get(r.id, ()))
        ]
        missing |= {r.id for r in self._pick(reversed_)}
        for receipt in self.world.receipts:
            delay = timedelta(seconds=self.rng.randint(20, 290))
            for step, posting in enumerate(postings.get(receipt.id, ())):
                account = self.customers[posting.account].crm_account_id
                refs = {"evotor": receipt.id, "crm_account": str(account), "key": posting.key}
                if receipt.id in missing and posting.kind in {"accrual", "accrual_reversal"}:
                    kind = "missing_accrual" if posting.kind == "accrual" else "missing_reversal"
                    self.pending.append(
                        _Pending(kind, receipt, refs, note=f"expected {posting.amount} points")
                    )
                    continue
                op = self._posted(posting, account, delay + timedelta(seconds=step))
                if receipt.id in mismatch and posting.kind == "accrual":
                    self._mismatch(op, receipt, refs)
                if receipt.id in duplicate and posting.kind == "accrual":
                    again = replace(
                        op, created_at=op.created_at + timedelta(seconds=self.rng.randint(30, 120))
                    )
                    self.ops.append(again)
                    self.pending.append(
                        _Pending("duplicate_posting", receipt, refs, op=again, mirror_of=again)
                    )
        for receipt in self._pick(r for r in self._plain_sales() if r.customer_phone is None):
            self._orphan(receipt)

    def _posted(self, posting: ExpectedPosting, account: int, delay: timedelta) -> _Op:
        op = _Op(
            account=account,
            credit=posting.cents > 0,
            amount=abs(posting.amount),
            created_at=posting.receipt.occurred_at.astimezone(MOSCOW) + delay,
            comment=f"crm:{posting.key}",
            activation=posting.available,
            expire=posting.expires,
        )
        self.ops.append(op)
        self.by_key[posting.key] = op
        return op

    def _mismatch(self, op: _Op, receipt: Receipt, refs: dict[str, str]) -> None:
        delta = Decimal(self.rng.randint(1, 20))
        if op.amount > 20 and self.rng.random() < 0.5:
            delta = -delta
        note = f"CRM accrual {op.amount + delta:.2f} points, expected {op.amount:.2f}"
        op.amount += delta
        self.pending.append(_Pending("accrual_mismatch", receipt, refs, op=op, note=note))

    def _orphan(self, receipt: Receipt) -> None:
        customer = self.rng.choice(self.world.customers)
        key = posting_key(receipt.id, "accrual")
        available = receipt.business_date + timedelta(days=14)
        moment = receipt.occurred_at.astimezone(MOSCOW) + timedelta(seconds=self.rng.randint(20, 290))
        amount = Decimal(self.rng.randint(5, 60)).quantize(_CENT)
        op = _Op(
            customer.crm_account_id,
            True,
            amount,
            moment,
            f"crm:{key}",
            available,
            available + timedelta(days=365),
        )
        self.ops.append(op)
        refs = {"evotor": receipt.id, "crm_account": str(customer.crm_account_id), "key": key}
        self.pending.append(_Pending("orphan_posting", receipt, refs, op=op, mirror_of=op))

    def _documents(self) -> None:
        plain = self._plain_sales()
        for receipt in self._pick(plain):
            self.skip_onec.add(receipt.id)
            self.pending.append(_Pending("missing_in_right", receipt, {"evotor": receipt.id}))
        for receipt in self._pick(plain):
            last = receipt.lines[-1]
            delta = Decimal(self.rng.randint(100, 9999)) / 100
            self.onec_lines[receipt.id] = (*receipt.lines[:-1], replace(last, amount=last.amount + delta))
            note = f"1C total {receipt.total + delta}, Evotor {receipt.total}"
            self._document_entry("amount_mismatch", receipt, note)
        for receipt in self._pick(plain):
            self.onec_lines[receipt.id] = self._other_product(receipt)
            self._document_entry("line_mismatch", receipt, "a 1C line names another product")
        for receipt in self._pick(r for r in plain if r.customer_phone):
            other = self.rng.choice([c for c in self.world.customers if c.phone != receipt.customer_phone])
            self.onec_customer[receipt.id] = other.phone
            self._document_entry("customer_mismatch", receipt, "1C names another customer")
        for _ in range(self.count):
            self._missing_in_left()

    def _document_entry(self, kind: str, receipt: Receipt, note: str) -> None:
        self.pending.append(_Pending(kind, receipt, {"evotor": receipt.id}, onec_of=receipt.id, note=note))

    def _other_product(self, receipt: Receipt) -> tuple[ReceiptLine, ...]:
        index = self.rng.randrange(len(receipt.lines))
        present = {line.sku for line in receipt.lines}
        sku = self.rng.choice([p.sku for p in self.world.products if p.sku not in present])
        lines = list(receipt.lines)
        lines[index] = replace(lines[index], sku=sku)
        return tuple(lines)

    def _missing_in_left(self) -> None:
        store = self.rng.choice(self.world.stores)
        local = self.world.start + timedelta(days=self.rng.randrange(self.world.days))
        moment = datetime.combine(local, time(12), tzinfo=self._offset(store.timezone, local))
        moment += timedelta(seconds=self.rng.randrange(8 * 3600))
        products = self.rng.sample(self.world.products, self.rng.randint(1, 3))
        lines = tuple(
            ReceiptLine(i, p.sku, Decimal(1), p.price, p.price) for i, p in enumerate(products, start=1)
        )
        source = new_uuid(self.rng)
        ref = new_uuid(self.rng)
        comment = f"onec:evotor:{source}:sale"
        self.onec_extra.append(
            OneCReceipt(ref, source, "sale", "", comment, store.id, moment.astimezone(MOSCOW), None, lines)
        )
        entry = _Pending("missing_in_left", None, {"onec": ref}, store=store.id, business_date=local)
        entry.note = "a 1C receipt whose Evotor receipt does not exist"
        self.pending.append(entry)

    @staticmethod
    def _offset(zone: str, day: date) -> timezone:
        offset = ZoneInfo(zone).utcoffset(datetime.combine(day, time(12)))
        assert offset is not None
        return timezone(offset)

    def _till_side(self) -> None:
        for kind, receipt_id, variant in self.made:
            receipt = self._receipt(receipt_id)
            if kind == "return_without_sale":
                self.pending.append(
                    _Pending(kind, receipt, {"evotor": receipt_id}, onec_of=receipt_id, note=variant)
                )
                continue
            key = posting_key(receipt_id, "redemption")
            op = self.by_key[key]
            refs = {"evotor": receipt_id, "crm_account": str(op.account), "key": key}
            self.pending.append(_Pending(kind, receipt, refs, op=op, note=f"over the limit: {variant}"))

    def _balance_mismatches(self) -> None:
        for customer in self.rng.sample(self.world.customers, min(self.count, len(self.world.customers))):
            day = self.world.start + timedelta(days=self.rng.randrange(self.world.days))
            moment = datetime.combine(day, time(11), tzinfo=MOSCOW) + timedelta(
                minutes=self.rng.randrange(360)
            )
            amount = Decimal(self.rng.randint(5, 50) * 10).quantize(_CENT)
            doc = _Op(customer.crm_account_id, True, amount, moment, _MANUAL_1C_COMMENT)
            self.manual.append(doc)
            refs = {"onec_partner": customer.onec_partner_ref, "crm_account": str(customer.crm_account_id)}
            note = f"1C holds {amount} points more than the CRM"
            self.pending.append(
                _Pending("balance_mismatch", None, refs, mirror_of=doc, note=note, business_date=day)
            )

    def _assign_ids(self) -> None:
        self.ops.sort(key=lambda op: op.created_at)  # stable: creation order breaks ties
        for number, op in enumerate(self.ops, start=10001):
            op.id = number

    def _crm(self, op: _Op) -> CrmOperation:
        return CrmOperation(
            id=op.id,
            account_id=op.account,
            type="credit" if op.credit else "charge",
            amount=op.amount,
            created_at=op.created_at,
            comment=op.comment,
            activation_date=op.activation,
            expire_date=op.expire,
        )

    def _onec_receipts(self) -> list[OneCReceipt]:
        kept = [receipt for receipt in self.world.receipts if receipt.id not in self.skip_onec]
        moments = [(r.occurred_at.timestamp(), r.store_id, r.kind, r.id) for r in kept]
        moments += [(r.occurred_at.timestamp(), r.store_id, r.kind, r.ref_key) for r in self.onec_extra]
        numbers: dict[str, str] = {}
        serials: dict[tuple[str, str], int] = {}
        for _, store_id, kind, ident in sorted(moments):  # 1C numbers follow the date, per store and kind
            code = self.stores[store_id].code[1:]
            serial = serials[code, kind] = serials.get((code, kind), 0) + 1
            numbers[ident] = f"{'ЧК' if kind == 'sale' else 'ВЧ'}{code}-{serial:06d}"
        rows = [replace(extra, number=numbers[extra.ref_key]) for extra in self.onec_extra]
        for receipt in kept:
            ref = self.onec_refs[receipt.id] = new_uuid(self.rng)
            rows.append(
                OneCReceipt(
                    ref_key=ref,
                    source_id=receipt.id,
                    kind=receipt.kind,
                    number=numbers[receipt.id],
                    comment=f"onec:evotor:{receipt.id}:{receipt.kind}",
                    store_id=receipt.store_id,
                    occurred_at=receipt.occurred_at.astimezone(MOSCOW),
                    customer_phone=self.onec_customer.get(receipt.id, receipt.customer_phone),
                    lines=self.onec_lines.get(receipt.id, receipt.lines),
                    original_ref_key=self.onec_refs.get(receipt.original_id or ""),
                )
            )
        rows.sort(key=lambda row: row.occurred_at.timestamp())
        return rows

    def _bonus_documents(self) -> list[OneCBonusDocument]:
        dated = [(op.created_at + timedelta(seconds=60 + op.id % 540), op) for op in self.ops]
        dated += [(doc.created_at, doc) for doc in self.manual]
        dated.sort(key=lambda pair: pair[0])
        partners = {customer.crm_account_id: customer.onec_partner_ref for customer in self.world.customers}
        documents = []
        for number, (when, op) in enumerate(dated, start=1):
            op.mirror = OneCBonusDocument(
                ref_key=new_uuid(self.rng),
                number=f"БН00-{number:06d}",
                date=when,
                comment=self._mirror_comment(op),
                partner_ref=partners[op.account],
                accrual=op.amount if op.credit else Decimal("0.00"),
                write_off=Decimal("0.00") if op.credit else op.amount,
                active_from=op.activation,
                expires_on=op.expire,
            )
            documents.append(op.mirror)
        return documents

    def _mirror_comment(self, op: _Op) -> str:
        if op.comment.startswith("crm:"):
            return "onec:" + op.comment.removeprefix("crm:")
        return f"onec:crm:{op.id}:adjustment" if op.id else op.comment

    def _resolve(self) -> list[AnswerKeyEntry]:
        entries = []
        for pending in self.pending:
            refs = dict(pending.refs)
            if pending.op is not None:
                refs["crm"] = str(pending.op.id)
            if pending.mirror_of is not None and pending.mirror_of.mirror is not None:
                refs["onec"] = pending.mirror_of.mirror.ref_key
            if pending.onec_of is not None:
                refs["onec"] = self.onec_refs[pending.onec_of]
            receipt = pending.receipt
            store = receipt.store_id if receipt else pending.store
            day = receipt.business_date if receipt else pending.business_date
            assert day is not None
            entries.append(AnswerKeyEntry(pending.kind, store, day, refs, pending.note))
        entries.sort(
            key=lambda e: (DISCREPANCY_KINDS.index(e.kind), e.business_date, e.store, sorted(e.refs.items()))
        )
        return entries


def record_earlier_run(
    world: World,
    opening: dict[str, Decimal],
    made: list[tuple[str, str, str]],
    *,
    opening_in_clean: bool = False,
) -> None:
    """Fill in what an earlier run left in 1C and the CRM, inject discrepancies, write the answer key.

    Args:
        world: a world whose master data and Evotor receipts are generated.
        opening: each customer's opening balance (phone -> points), migrated into the CRM before the window.
        made: the till-side injections already in the receipts: (kind, receipt id, variant).
        opening_in_clean: in a clean world, still put the opening balances into the CRM.
    """
    _EarlierRun(world, opening, made, opening_in_clean).run()
