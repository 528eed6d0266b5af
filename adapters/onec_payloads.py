"""Canonical objects in 1C's wire form, and the field-by-field check of what 1C stored.

* a :class:`~connector.model.Posting` → ``Document_НачислениеИСписаниеБонусныхБаллов``: a positive amount
  (accrual, refund, welcome, birthday, referral, a positive adjustment) is a ``Начисление`` row, a negative
  one (redemption, reversal, expiry, a negative adjustment) a ``Списание`` row of its absolute value; an
  accrual's ``available_at`` becomes the deferral ``ПериодОтсрочкиНачалаДействия`` = ``День`` ×
  ``КоличествоПериодовОтсрочкиНачалаДействия`` (days after the document date) and its ``expires_at``
  ``ДатаОкончанияСрокаДействия`` — ``ПериодДействия`` is a periodicity enum in 1C, not a date;
* a :class:`~connector.model.Sale` / :class:`~connector.model.Return` → ``Document_ЧекККМ`` /
  ``Document_ЧекККМВозврат`` (УТ) or ``Document_ЧекККМ`` with ``ВидОперации`` (Розница), with
  ``ИспользоватьОплатуБонуснымиБаллами`` false and no ``БонусныеБаллы`` rows: the register mirrors the CRM
  ledger through bonus documents only (``connector/sandbox/world.py``), so the points paid stay on the lines
  (``СуммаБонусныхБалловКСписанию`` / ``СуммаСкидкиОплатыБонусом``) for the record and move nothing.

1C saves a body it does not fully understand without a word (unknown fields dropped, strings truncated,
dangling references accepted — reference/onec.md §1.6), so :func:`differences` compares what was sent with
what came back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.odata import EMPTY_DATE, EMPTY_GUID
from adapters.onec_catalogs import FlavourSpec, OneCCatalogs
from connector.errors import RemoteNotFoundError
from connector.logs import mask_phone
from connector.model import Customer, Posting, Return, Sale

__all__ = [
    "BONUS_DOCUMENT",
    "ReceiptContext",
    "bonus_document",
    "differences",
    "local_naive",
    "masked_account",
    "receipt_document",
]

BONUS_DOCUMENT = "Document_НачислениеИСписаниеБонусныхБаллов"
_DAY = "День"


def local_naive(moment: datetime, tz: tzinfo) -> str:
    """An aware moment as 1C's zone-less local time string (``2026-11-01T09:00:00``)."""
    return moment.astimezone(tz).replace(tzinfo=None, microsecond=0).isoformat()


def _midnight(day: date) -> str:
    return datetime(day.year, day.month, day.day).isoformat()


def bonus_document(
    posting: Posting, *, holder: str, spec: FlavourSpec, program: str, tz: tzinfo, key_field: str, key: str
) -> dict[str, Any]:
    """The body of a ``НачислениеИСписаниеБонусныхБаллов`` for one posting.

    Args:
        posting: the canonical posting; its amount must not be zero.
        holder: the partner (УТ) or card (Розница) ``Ref_Key`` the points belong to.
        spec: the configuration family (names the holder column).
        program: the bonus program's ``Ref_Key``.
        tz: the base's zone.
        key_field: where the idempotency key is kept (``Комментарий``).
        key: the idempotency key.
    """
    if posting.amount == 0:
        raise ValueError(f"posting {posting.key} has a zero amount: nothing to write")
    row = {"LineNumber": 1, spec.holder: holder, "Баллы": abs(posting.amount)}
    accrual = posting.amount > 0
    body: dict[str, Any] = {
        "Date": local_naive(posting.occurred_at, tz),
        "БонуснаяПрограммаЛояльности_Key": program,
        key_field: key,
        "Начисление": [row] if accrual else [],
        "Списание": [] if accrual else [row],
    }
    if accrual and posting.available_at is not None:
        delay = (posting.available_at.astimezone(tz).date() - posting.occurred_at.astimezone(tz).date()).days
        if delay > 0:
            body |= {"ПериодОтсрочкиНачалаДействия": _DAY, "КоличествоПериодовОтсрочкиНачалаДействия": delay}
    if accrual and posting.expires_at is not None:
        body["ДатаОкончанияСрокаДействия"] = _midnight(posting.expires_at.astimezone(tz).date())
    return body


@dataclass(frozen=True)
class ReceiptContext:
    """What a receipt body needs besides the document: the base's references, resolved by the adapter.

    Attributes:
        spec: the configuration family.
        catalogs: the base's master data.
        tz: the base's zone.
        key_field: where the idempotency key is kept.
        key: the idempotency key.
        partner: the customer's partner (УТ) / person (Розница) ``Ref_Key``, or the empty GUID.
        card: the customer's card ``Ref_Key``, or the empty GUID.
        original: the ``Ref_Key`` of the sale a return returns, or the empty GUID.
        point_value: money per point of the bonus program.
    """

    spec: FlavourSpec
    catalogs: OneCCatalogs
    tz: tzinfo
    key_field: str
    key: str
    partner: str = EMPTY_GUID
    card: str = EMPTY_GUID
    original: str = EMPTY_GUID
    point_value: Decimal = Decimal("1")


def receipt_document(document: Sale | Return, ctx: ReceiptContext) -> tuple[str, dict[str, Any]]:
    """The entity set and body of a receipt in 1C.

    Raises:
        RemoteNotFoundError: the store, a cash register or a line's sku is not in 1C.
    """
    store = ctx.catalogs.store_ref(document.store)
    if store is None:
        raise RemoteNotFoundError(
            f"no {ctx.spec.stores} in 1C for store {document.store!r}: set options.store_ids",
            document=document.ref.id,
            field="store",
        )
    register = _register(document, store, ctx)
    is_return = isinstance(document, Return)
    body: dict[str, Any] = {
        "Date": local_naive(document.occurred_at, ctx.tz),
        ctx.spec.store_field: store,
        "КассаККМ_Key": register,
        "СуммаДокумента": document.total,
        ctx.key_field: ctx.key,
    }
    if ctx.spec.name == "ut":
        body |= _ut_receipt(document, ctx, is_return)
    else:
        body |= _retail_receipt(document, ctx, is_return)
    return (ctx.spec.return_set if is_return else ctx.spec.sale_set), body


def _register(document: Sale | Return, store: str, ctx: ReceiptContext) -> str:
    named = (document.register_ or "").lower()
    if named in ctx.catalogs.registers:
        return named
    register = ctx.catalogs.register_for_store(store)
    if register is None:
        raise RemoteNotFoundError(
            f"no Catalog_КассыККМ in 1C for store {document.store!r}",
            document=document.ref.id,
            field="register",
        )
    return register


def _cash(document: Sale | Return) -> Decimal:
    return sum((p.amount for p in document.payments if p.method == "cash"), Decimal("0"))


def _card(document: Sale | Return) -> Decimal:
    return sum((p.amount for p in document.payments if p.method == "card"), Decimal("0"))


def _product(document: Sale | Return, sku: str | None, line_no: int, ctx: ReceiptContext) -> str:
    product = ctx.catalogs.product_for_sku(sku) if sku else None
    if product is None:
        raise RemoteNotFoundError(
            f"no Catalog_Номенклатура in 1C with sku {sku!r}",
            document=document.ref.id,
            field=f"lines[{line_no}].sku",
        )
    return product


def _ut_receipt(document: Sale | Return, ctx: ReceiptContext, is_return: bool) -> dict[str, Any]:
    lines = []
    for number, line in enumerate(document.lines, start=1):
        lines.append(
            {
                "LineNumber": number,
                "Номенклатура_Key": _product(document, line.sku, line.line_no, ctx),
                "Количество": line.quantity,
                "КоличествоУпаковок": line.quantity,
                "Цена": line.price,
                "Сумма": line.amount,
                "СуммаРучнойСкидки": line.discount,
                "СуммаБонусныхБалловКСписанию": _points(line.bonus_redeemed, ctx),
                "СуммаБонусныхБалловКСписаниюВВалюте": line.bonus_redeemed,
            }
        )
    card = _card(document)
    body: dict[str, Any] = {
        "Статус": "Пробит",
        "Партнер_Key": ctx.partner,
        "КартаЛояльности_Key": ctx.card,
        "ИспользоватьОплатуБонуснымиБаллами": False,
        "Товары": lines,
        "ОплатаПлатежнымиКартами": [{"LineNumber": 1, "Сумма": card}] if card else [],
    }
    if is_return:
        refund = _points(document.bonus_redeemed, ctx)
        return body | {
            "ЧекККМ_Key": ctx.original,
            "ВыданоНаличными": _cash(document),
            "СуммаБонусныхБалловКВозврату": refund,
        }
    return body | {"ПолученоНаличными": _cash(document)}


def _retail_receipt(document: Sale | Return, ctx: ReceiptContext, is_return: bool) -> dict[str, Any]:
    lines = [
        {
            "LineNumber": number,
            "Номенклатура_Key": _product(document, line.sku, line.line_no, ctx),
            "Количество": line.quantity,
            "Цена": line.price,
            "Сумма": line.amount,
            "СуммаРучнойСкидки": line.discount,
            "СуммаСкидкиОплатыБонусом": line.bonus_redeemed,
        }
        for number, line in enumerate(document.lines, start=1)
    ]
    payments: list[dict[str, Any]] = []
    for kind_type, amount in (("Наличные", _cash(document)), ("ПлатежнаяКарта", _card(document))):
        kind = ctx.catalogs.payment_kind(kind_type)
        if amount and kind:
            payments.append({"LineNumber": len(payments) + 1, "ВидОплаты_Key": kind, "Сумма": amount})
    customer: Customer | None = document.customer
    body: dict[str, Any] = {
        "ВидОперации": "Возврат" if is_return else "Продажа",
        "СтатусЧекаККМ": "Пробитый",
        "ДисконтнаяКарта_Key": ctx.card,
        "Телефон": (customer.phone if customer else None) or "",
        "Товары": lines,
        "Оплата": payments,
    }
    if is_return:
        body["ЧекККМПродажа_Key"] = ctx.original
    return body


def _points(money: Decimal, ctx: ReceiptContext) -> Decimal:
    return (money / ctx.point_value).quantize(Decimal("0.01"))


# -- comparing what was sent with what 1C stored
# ---------------------------------------------------------------


def differences(sent: Mapping[str, Any], stored: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Field paths whose stored value differs from the sent one (``Товары[2].Цена``); empty when all agree.

    Numbers compare by value (``100`` = ``100.00``), GUIDs ignoring case, an empty GUID or date like a missing
    value, tabular sections row by row on the fields sent.
    """
    found: list[str] = []
    for name, value in sent.items():
        path = f"{prefix}{name}"
        if isinstance(value, list):
            found += _section_differences(path, value, stored.get(name))
        elif not _same(value, stored.get(name)):
            found.append(path)
    return found


def _section_differences(path: str, sent: Sequence[Any], stored: Any) -> list[str]:
    rows = stored if isinstance(stored, list) else []
    if len(rows) != len(sent):
        return [f"{path} ({len(sent)} rows sent, {len(rows)} stored)"]
    found: list[str] = []
    for index, (row, back) in enumerate(zip(sent, rows, strict=True), start=1):
        found += differences(row, back if isinstance(back, Mapping) else {}, f"{path}[{index}].")
    return found


def _same(sent: Any, stored: Any) -> bool:
    if isinstance(sent, bool) or isinstance(stored, bool):
        return sent is stored or (sent in (None, False) and stored in (None, False))
    if isinstance(sent, Decimal | int) and not isinstance(sent, bool):
        return _number(stored) == Decimal(sent)
    return _text(sent) == _text(stored)


def _number(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None and value != "" else Decimal(0)
    except InvalidOperation:
        return None


def _text(value: Any) -> str:
    if value is None or value in (EMPTY_GUID, EMPTY_DATE):
        return ""
    text = str(value)
    if isinstance(value, datetime):
        text = value.replace(tzinfo=None).isoformat()
    return text.lower() if len(text) == 36 and text.count("-") == 4 else text


def masked_account(account: str) -> str:
    """An account for an error message: a phone masked, a card shown."""
    return mask_phone(account) if account.startswith("+") else account
