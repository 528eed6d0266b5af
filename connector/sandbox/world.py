"""The sandbox world: one neutral, deterministic description of a retailer that every emulator renders.

The generator (:mod:`connector.sandbox.generator`) builds a :class:`World` from a seed; each emulated system
loads its own view from it and renders it in that system's wire format:

* Evotor holds every till receipt (:attr:`World.receipts`) — the till is the truth of what was sold;
* 1C holds master data (stores, products, partners, loyalty cards, the bonus program) and, unless the world is
  *clean*, the receipts and bonus documents an earlier connector run wrote (:attr:`World.onec_receipts`,
  :attr:`World.onec_bonus_documents`);
* the CRM holds customers' loyalty accounts and, unless clean, the ledger operations an earlier run wrote
  (:attr:`World.crm_operations`).

Injected discrepancies are differences between those views, listed in :attr:`World.answer_key`.

Cross-system conventions the connector and the sandbox share (DESIGN.md §4):

* posting key ``{source system}:{source doc id}:{kind}``, e.g. ``evotor:<receipt id>:accrual``;
* a write's idempotency key is ``{target}:`` + that key; the CRM keeps it in an operation's ``comment``,
  1C in the document's ``Комментарий`` (receipts: ``onec:evotor:<receipt id>:sale|return``);
* the CRM is the ledger master; 1C mirrors it with one ``НачислениеИСписаниеБонусныхБаллов`` per posting;
  receipts written into 1C carry no ``БонусныеБаллы`` rows, so their posting moves no points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import date as _Date  # noqa: N812 - OneCBonusDocument has a field named `date`
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "AnswerKeyEntry",
    "CrmOperation",
    "OneCBonusDocument",
    "OneCReceipt",
    "Product",
    "Receipt",
    "ReceiptLine",
    "SandboxCustomer",
    "Store",
    "World",
]


@dataclass(frozen=True)
class Store:
    """A shop: its Evotor store and device, and its 1C warehouse (Склад/Магазин) and cash register (КассаККМ)."""

    id: str  # Evotor store uuid; also the canonical store id
    code: str  # short human code, "S01"
    name: str
    timezone: str  # IANA zone, e.g. "Europe/Moscow"
    evotor_device_id: str
    onec_store_ref: str  # guid of Catalog_Склады / Catalog_Магазины
    onec_register_ref: str  # guid of Catalog_КассыККМ


@dataclass(frozen=True)
class Product:
    """A catalog item known to both the tills and 1C."""

    sku: str  # article, the cross-system product key
    name: str
    category: str  # e.g. "dairy", "tobacco", "alcohol", "promo"
    price: Decimal
    evotor_id: str  # Evotor commodity uuid
    onec_ref: str  # guid of Catalog_Номенклатура
    barcode: str


@dataclass(frozen=True)
class SandboxCustomer:
    """A loyalty customer known in all three systems."""

    phone: str  # E.164
    card: str  # loyalty card number (barcode)
    name: str
    birthday: date | None
    onec_partner_ref: str  # guid of Catalog_Партнеры (Розница: Catalog_ФизическиеЛица)
    onec_card_ref: str  # guid of Catalog_КартыЛояльности (Розница: Catalog_ИнформационныеКарты)
    crm_customer_id: int
    crm_account_id: int  # RetailCRM loyalty account id


@dataclass(frozen=True)
class ReceiptLine:
    """One till line; ``amount`` is after discounts and includes ``bonus_redeemed`` (money paid with points)."""

    line_no: int
    sku: str
    quantity: Decimal
    price: Decimal
    amount: Decimal
    discount: Decimal = Decimal("0.00")
    bonus_redeemed: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class Receipt:
    """A till receipt as Evotor holds it (SELL or PAYBACK)."""

    id: str  # Evotor document uuid
    kind: Literal["sale", "return"]
    store_id: str
    number: int  # receipt number within the shift
    session_number: int
    occurred_at: datetime  # aware, in the store's local offset
    customer_phone: str | None  # E.164; None for anonymous receipts
    lines: tuple[ReceiptLine, ...]
    payments: tuple[tuple[str, Decimal], ...]  # (method, amount); methods as in the canonical Payment
    fiscal: tuple[str, str, str]  # (fn, fd, fp)
    original_id: str | None = None  # the sale a return returns; None for sales and returns without a basis

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))

    @property
    def bonus_redeemed(self) -> Decimal:
        return sum((line.bonus_redeemed for line in self.lines), Decimal(0))

    @property
    def business_date(self) -> date:
        return self.occurred_at.date()


@dataclass(frozen=True)
class OneCReceipt:
    """A receipt as 1C holds it (ЧекККМ / ЧекККМВозврат), usually written by an earlier connector run.

    ``lines``, ``customer_phone`` and ``posted`` may differ from the till receipt when a discrepancy is injected.
    """

    ref_key: str
    source_id: str  # the Evotor receipt id it was written from
    kind: Literal["sale", "return"]
    number: str  # 1C document number, "ТДМ-0001234"
    comment: str  # Комментарий: the connector's idempotency key
    store_id: str
    occurred_at: datetime
    customer_phone: str | None
    lines: tuple[ReceiptLine, ...]
    posted: bool = True
    deletion_mark: bool = False
    original_ref_key: str | None = None  # ЧекККМ_Key of a return


@dataclass(frozen=True)
class CrmOperation:
    """One bonus operation in the CRM ledger (RetailCRM ``bonus/credit`` or ``bonus/charge``)."""

    id: int
    account_id: int
    type: Literal["credit", "charge"]
    amount: Decimal  # positive points
    created_at: datetime
    comment: str  # the connector's idempotency key (crm:<posting key>), or free text for manual operations
    activation_date: date | None = None
    expire_date: date | None = None


@dataclass(frozen=True)
class OneCBonusDocument:
    """A ``НачислениеИСписаниеБонусныхБаллов`` mirroring one CRM posting in 1C."""

    ref_key: str
    number: str
    date: datetime
    comment: str  # onec:<posting key>
    partner_ref: str
    accrual: Decimal  # TS Начисление.Баллы (0 when none)
    write_off: Decimal  # TS Списание.Баллы (0 when none)
    active_from: _Date | None = None  # ПериодДействия / activation
    expires_on: _Date | None = None  # ДатаОкончанияСрокаДействия
    posted: bool = True


@dataclass(frozen=True)
class AnswerKeyEntry:
    """One injected discrepancy: its DESIGN §7 kind, where, and the ids involved in each system."""

    kind: str
    store: str
    business_date: date
    refs: dict[str, str]  # {"evotor": receipt id, "onec": Ref_Key, "crm": operation id or account id}
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "store": self.store,
            "business_date": self.business_date.isoformat(),
            "refs": dict(self.refs),
            "note": self.note,
        }


@dataclass
class World:
    """Everything the sandbox serves, generated from ``seed``."""

    seed: int
    start: date
    days: int
    clean: bool
    program_yaml: str  # the loyalty program the data was generated under (DESIGN §3 YAML, top-level program:)
    onec_program_ref: str  # guid of the bonus program in Catalog_БонусныеПрограммыЛояльности
    stores: list[Store] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)
    customers: list[SandboxCustomer] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    onec_receipts: list[OneCReceipt] = field(default_factory=list)
    onec_bonus_documents: list[OneCBonusDocument] = field(default_factory=list)
    crm_operations: list[CrmOperation] = field(default_factory=list)
    answer_key: list[AnswerKeyEntry] = field(default_factory=list)
