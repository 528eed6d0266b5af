"""Render the sandbox :class:`~connector.sandbox.world.World` as Evotor cloud REST v2 objects (snake_case).

Every field of a SELL / PAYBACK document in ``reference/evotor.md`` §3 is written, and the forms real traffic
shows in the wild appear deterministically, chosen by a hash of the document id, so a mapping meets all of them:

* items (``positions``, ``payments``, ``doc_discounts``) as a flat array, or each wrapped (``{"position": …}``);
* ``customer_phone`` as a JSON number (``79161234567``) or a string (``"79161234567"``);
* discounts as a receipt-level ``doc_discounts`` entry spread over lines as ``doc_distributed_discount``, or as
  per-line ``position_discount``.

Points paid for a purchase are a payment of the loyalty app: ``type`` ``ADVANCE`` with
``app_payment.app_id`` = :data:`BONUS_APP_ID`; the app also keeps ``{"card", "phone", "bonus_redeemed"}`` in the
document's ``extras`` under its app id (app-private JSON, as Evotor loyalty apps do with ``SetExtra``). Card
payments carry the acquiring app's :data:`BANK_APP_ID`, so a bonus payment must be recognised by app id, not by
the presence of ``app_payment``.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from connector.sandbox.world import Product, Receipt, ReceiptLine, SandboxCustomer, Store, World

__all__ = [
    "BANK_APP_ID",
    "BONUS_APP_ID",
    "BONUS_APP_NAME",
    "SandboxIndex",
    "close_date",
    "render_device",
    "render_document",
    "render_store",
    "variant",
]

BONUS_APP_ID = "6f1d3c2a-5b7e-4a90-8c3d-b0b0c0de0001"
BONUS_APP_NAME = "Бонусы"
BANK_APP_ID = "6f1d3c2a-5b7e-4a90-8c3d-ba4c0de00002"
_CENT = Decimal("0.01")
_PERCENT = Decimal("0.00001")
_ZERO = Decimal("0.00")
_PAYMENT_TYPES = {"cash": "CASH", "card": "ELECTRON", "bonus": "ADVANCE", "certificate": "ADVANCE"}


def _uid(*parts: object) -> str:
    """A stable uuid-shaped id derived from ``parts`` (hex of a hash; cheaper than uuid5 for 100k documents)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=16).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-a{digest[17:20]}-{digest[20:]}"


@functools.lru_cache(maxsize=65536)
def _shared_uid(*parts: object) -> str:
    """:func:`_uid` for ids many documents share (a store's session, cashier, print group)."""
    return _uid(*parts)


def variant(document_id: str, aspect: str) -> bool:
    """A stable coin flip per document and aspect (``wrapped``, ``phone_number``, ``doc_discount``)."""
    return zlib.crc32(f"{aspect}:{document_id}".encode()) % 2 == 1


def close_date(moment: datetime) -> str:
    """Evotor's ``close_date`` form: UTC with milliseconds and a colon-less offset, ``2024-05-17T09:41:12.318+0000``."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}+0000"


def _offset_ms(moment: datetime) -> int:
    offset = moment.utcoffset()
    return int(offset.total_seconds() * 1000) if offset is not None else 0


def _quantity(value: Decimal) -> Decimal:
    # Evotor prints 2, not 2.000; normalize() alone would print 1E+1 for ten.
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def _percent(part: Decimal, whole: Decimal) -> Decimal:
    return (part * 100 / whole).quantize(_PERCENT) if whole else Decimal(0)


@dataclass
class SandboxIndex:
    """Lookups a renderer needs, built once per world."""

    world: World
    stores: dict[str, Store] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    customers: dict[str, SandboxCustomer] = field(default_factory=dict)
    receipts: dict[str, Receipt] = field(default_factory=dict)

    @classmethod
    def of(cls, world: World) -> SandboxIndex:
        """Index the world's stores, products (by sku), customers (by phone) and receipts (by id)."""
        return cls(
            world,
            {store.id: store for store in world.stores},
            {product.sku: product for product in world.products},
            {customer.phone: customer for customer in world.customers},
            {receipt.id: receipt for receipt in world.receipts},
        )

    @property
    def user_id(self) -> str:
        """The Evotor account (``NN-NNNNNNNNNNNNNNN``) every store belongs to."""
        return f"01-{self.world.seed % 10**15:015d}"


def _created(index: SandboxIndex) -> datetime:
    return datetime(
        index.world.start.year, index.world.start.month, index.world.start.day, tzinfo=UTC
    ) - timedelta(days=400)


def render_store(index: SandboxIndex, store: Store) -> dict[str, Any]:
    """An Evotor v2 store object."""
    created = close_date(_created(index))
    return {
        "id": store.id,
        "name": store.name,
        "address": f"{store.name}, торговая точка {store.code}",
        "user_id": index.user_id,
        "created_at": created,
        "updated_at": created,
    }


def render_device(index: SandboxIndex, store: Store) -> dict[str, Any]:
    """The Evotor v2 device (smart terminal) of a store; its ``timezone_offset`` is in milliseconds."""
    created = close_date(_created(index))
    local_noon = datetime.combine(index.world.start, datetime.min.time()).replace(hour=12)
    offset = _offset_ms(local_noon.replace(tzinfo=ZoneInfo(store.timezone)))
    serial = zlib.crc32(store.id.encode()) % 10**8
    return {
        "id": store.evotor_device_id,
        "name": f"Касса {store.code}",
        "store_id": store.id,
        "timezone_offset": offset,
        "imei": f"35{serial:08d}00000",
        "firmware_version": "4.9.9",
        "location": {"lng": Decimal("37.617635"), "lat": Decimal("55.755814")},
        "user_id": index.user_id,
        "serial_number": f"00307{serial:08d}",
        "device_model": "ST2F",
        "created_at": created,
        "updated_at": created,
    }


def _line_discount(sum_: Decimal, line: ReceiptLine, doc_level: bool) -> dict[str, Any]:
    discount = sum_ - line.amount
    if discount == 0:
        return {}
    if doc_level:
        return {
            "doc_distributed_discount": {
                "discount_type": "SUM",
                "discount_sum": discount,
                "discount_percent": _percent(discount, sum_),
            }
        }
    return {
        "position_discount": {
            "discount_type": "SUM",
            "discount_sum": discount,
            "discount_percent": _percent(discount, sum_),
            "discount_price": (discount / line.quantity).quantize(_CENT) if line.quantity else discount,
        }
    }


def _position(index: SandboxIndex, receipt: Receipt, line: ReceiptLine, doc_level: bool) -> dict[str, Any]:
    product = index.products.get(line.sku)
    sum_ = (line.price * line.quantity).quantize(_CENT)
    result_price = (line.amount / line.quantity).quantize(_CENT) if line.quantity else line.amount
    position: dict[str, Any] = {"id": line.line_no, "uuid": _uid(receipt.id, "position", line.line_no)}
    if product is not None:  # a "free price" position has no product_id
        position["product_id"] = product.evotor_id
    position.update(
        code=line.sku,
        bar_code=product.barcode if product else None,
        product_name=product.name if product else f"Товар {line.sku}",
        product_type="ALCOHOL_NOT_MARKED" if product and product.category == "alcohol" else "NORMAL",
        measure_name="шт",
        quantity=_quantity(line.quantity),
        initial_quantity=Decimal(zlib.crc32(line.sku.encode()) % 200),
        price=line.price,
        cost_price=(line.price * Decimal("0.6")).quantize(_CENT),
        sum=sum_,
        result_price=result_price,
        result_sum=line.amount,
        tax={"type": "NO_VAT", "sum": Decimal(0), "result_sum": Decimal(0)},
        extra_keys=[],
    )
    if position["bar_code"] is None:
        del position["bar_code"]
    position.update(_line_discount(sum_, line, doc_level))
    return position


def _payment(receipt: Receipt, number: int, method: str, amount: Decimal, print_group: str) -> dict[str, Any]:
    payment: dict[str, Any] = {
        "id": _uid(receipt.id, "payment", number),
        "type": _PAYMENT_TYPES.get(method, "UNKNOWN"),
        "sum": amount,
    }
    if method == "bonus":
        payment["app_payment"] = {"app_id": BONUS_APP_ID, "name": BONUS_APP_NAME}
    elif method == "card":
        payment["app_payment"] = {"app_id": BANK_APP_ID, "name": "Эквайринг"}
    payment["parts"] = [{"print_group_id": print_group, "part_sum": amount, "change": Decimal(0)}]
    return payment


def _doc_discounts(receipt: Receipt, total_sum: Decimal, doc_level: bool) -> list[dict[str, Any]]:
    discount = total_sum - receipt.total
    if not doc_level or discount == 0:
        return []
    return [
        {"discount_type": "SUM", "discount_sum": discount, "discount_percent": _percent(discount, total_sum)}
    ]


def _fiscal(receipt: Receipt, store: Store, print_group: str) -> dict[str, Any]:
    fn, fd, fp = receipt.fiscal
    local = receipt.occurred_at
    serial = zlib.crc32(store.id.encode()) % 10**8
    return {
        "print_group_id": print_group,
        "receipt_number": receipt.number,
        "document_number": int(fd) if fd.isdigit() else fd,
        "session_number": receipt.session_number,
        "check_sum": receipt.total,
        "receipt_date": f"{local:%d%m%Y}",
        "fn_serial_number": fn,
        "kkt_serial_number": f"00106{serial:010d}",
        "kkt_reg_number": f"{serial:016d}",
        "fiscal_sign_doc_number": fp,
        "fiscal_document_number": int(fd) if fd.isdigit() else fd,
    }


def _print_group(store: Store, print_group: str) -> dict[str, Any]:
    inn = f"77{zlib.crc32(store.id.encode()) % 10**10:010d}"
    return {
        "id": print_group,
        "type": "CASH_RECEIPT",
        "org_name": f"ООО «Сандбокс» ({store.name})",
        "org_inn": inn,
        "org_address": f"{store.name}, торговая точка {store.code}",
        "taxation_system": "SIMPLIFIED_INCOME",
    }


def _wrap(items: list[dict[str, Any]], key: str, wrapped: bool) -> list[dict[str, Any]]:
    return [{key: item} for item in items] if wrapped else items


def _customer(index: SandboxIndex, receipt: Receipt) -> tuple[dict[str, Any], dict[str, Any]]:
    """The body's customer fields and the document's extras."""
    if receipt.customer_phone is None:
        return {}, {}
    digits = receipt.customer_phone.lstrip("+")
    phone: int | str = int(digits) if variant(receipt.id, "phone_number") else digits
    customer = index.customers.get(receipt.customer_phone)
    app_extras: dict[str, Any] = {"phone": digits, "bonus_redeemed": receipt.bonus_redeemed}
    if customer is not None:
        app_extras["card"] = customer.card
    return {"customer_phone": phone}, {BONUS_APP_ID: app_extras}


def _body(index: SandboxIndex, receipt: Receipt, store: Store) -> tuple[dict[str, Any], dict[str, Any]]:
    wrapped = variant(receipt.id, "wrapped")
    doc_level = variant(receipt.id, "doc_discount")
    print_group = _shared_uid(store.id, "print_group")
    positions = [_position(index, receipt, line, doc_level) for line in receipt.lines]
    total_sum = sum((position["sum"] for position in positions), _ZERO)
    payments = [
        _payment(receipt, number, method, amount, print_group)
        for number, (method, amount) in enumerate(receipt.payments, start=1)
    ]
    body: dict[str, Any] = {}
    if receipt.kind == "return" and receipt.original_id is not None:
        body["base_document_id"] = receipt.original_id
        original = index.receipts.get(receipt.original_id)
        if original is not None:
            body["base_document_number"] = original.number
    body["positions"] = _wrap(positions, "position", wrapped)
    body["doc_discounts"] = _wrap(_doc_discounts(receipt, total_sum, doc_level), "doc_discount", wrapped)
    body["payments"] = _wrap(payments, "payment", wrapped)
    body["print_groups"] = [_print_group(store, print_group)]
    body["pos_print_results"] = [_fiscal(receipt, store, print_group)]
    body["sum"] = total_sum
    body["result_sum"] = receipt.total
    customer_fields, extras = _customer(index, receipt)
    body.update(customer_fields)
    return body, extras


def render_document(index: SandboxIndex, receipt: Receipt) -> dict[str, Any]:
    """One SELL or PAYBACK document exactly as ``GET /stores/{id}/documents`` lists it."""
    store = index.stores[receipt.store_id]
    body, extras = _body(index, receipt, store)
    uploaded = receipt.occurred_at + timedelta(seconds=5 + zlib.crc32(receipt.id.encode()) % 90)
    return {
        "id": receipt.id,
        "type": "SELL" if receipt.kind == "sale" else "PAYBACK",
        "version": "V2",
        "number": receipt.number,
        "close_date": close_date(receipt.occurred_at),
        "created_at": close_date(uploaded),
        "time_zone_offset": _offset_ms(receipt.occurred_at),
        "session_id": _shared_uid(store.id, "session", receipt.session_number),
        "session_number": receipt.session_number,
        "close_user_id": _shared_uid(store.id, "cashier"),
        "device_id": store.evotor_device_id,
        "store_id": store.id,
        "user_id": index.user_id,
        "extras": extras,
        "body": body,
    }
