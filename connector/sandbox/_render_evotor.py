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
import json
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from json.encoder import encode_basestring as _escape
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
    "render_document_json",
    "render_store",
    "variant",
]

BONUS_APP_ID = "6f1d3c2a-5b7e-4a90-8c3d-b0b0c0de0001"
BONUS_APP_NAME = "Бонусы"
BANK_APP_ID = "6f1d3c2a-5b7e-4a90-8c3d-ba4c0de00002"
_CENT = Decimal("0.01")
_PERCENT = Decimal("0.00001")
_ZERO = Decimal("0.00")
_COST_SHARE = Decimal("0.6")
_PAYMENT_TYPES = {"cash": "CASH", "card": "ELECTRON", "bonus": "ADVANCE", "certificate": "ADVANCE"}
_PAYMENT_APPS = {
    "bonus": f',"app_payment":{{"app_id":"{BONUS_APP_ID}","name":"{BONUS_APP_NAME}"}}',
    "card": f',"app_payment":{{"app_id":"{BANK_APP_ID}","name":"Эквайринг"}}',
}


def _uid(*parts: object) -> str:
    """A stable uuid-shaped id derived from ``parts`` (hex of a hash; cheaper than uuid5 for 100k documents)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=16).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-a{digest[17:20]}-{digest[20:]}"


def _child_uid(base: str, kind: int, number: int) -> str:
    """An id for the ``number``-th item of a kind inside a document: one hash per document, not per item."""
    return f"{base[:-5]}{kind}{number:04x}"


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
    _lines: dict[str, tuple[str, int]] = field(default_factory=dict)  # sku -> (product JSON part, stock)

    def product_part(self, sku: str) -> tuple[str, int]:
        """A position's product fields (JSON members) and its stock before the sale, per sku."""
        part = self._lines.get(sku)
        if part is None:
            part = (_product_fields(self.products.get(sku), sku), zlib.crc32(sku.encode()) % 200)
            self._lines[sku] = part
        return part

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


def _q(text: str) -> str:
    """A JSON string literal (the C escaper json.dumps itself uses, without its per-call set-up)."""
    return _escape(text)


def _product_fields(product: Product | None, sku: str) -> str:
    """The product part of a position, the same on every line of that product."""
    if product is None:  # a "free price" position: no product_id, no barcode
        return f'"code":{_q(sku)},"product_name":{_q("Товар " + sku)},"product_type":"NORMAL","measure_name":"шт"'
    kind = "ALCOHOL_NOT_MARKED" if product.category == "alcohol" else "NORMAL"
    return (
        f'"product_id":{_q(product.evotor_id)},"code":{_q(sku)},"bar_code":{_q(product.barcode)},'
        f'"product_name":{_q(product.name)},"product_type":"{kind}","measure_name":"шт"'
    )


def _line_discount(sum_: Decimal, line: ReceiptLine, doc_level: bool) -> str:
    discount = sum_ - line.amount
    if not discount:
        return ""
    percent = _percent(discount, sum_)
    if doc_level:
        return (
            f',"doc_distributed_discount":{{"discount_type":"SUM","discount_sum":{discount:f},'
            f'"discount_percent":{percent:f}}}'
        )
    per_unit = (discount / line.quantity).quantize(_CENT) if line.quantity else discount
    return (
        f',"position_discount":{{"discount_type":"SUM","discount_sum":{discount:f},'
        f'"discount_percent":{percent:f},"discount_price":{per_unit:f}}}'
    )


def _position(index: SandboxIndex, base: str, line: ReceiptLine, doc_level: bool) -> tuple[str, Decimal]:
    """One position's JSON and its ``sum`` (price × quantity)."""
    sum_ = (line.price * line.quantity).quantize(_CENT)
    result_price = (line.amount / line.quantity).quantize(_CENT) if line.quantity else line.amount
    cost_price = (line.price * _COST_SHARE).quantize(_CENT)
    product, stock = index.product_part(line.sku)
    text = (
        f'{{"id":{line.line_no},"uuid":"{_child_uid(base, 1, line.line_no)}",'
        f"{product},"
        f'"quantity":{_quantity(line.quantity):f},"initial_quantity":{stock},"price":{line.price.quantize(_CENT):f},'
        f'"cost_price":{cost_price:f},"sum":{sum_:f},"result_price":{result_price:f},'
        f'"result_sum":{line.amount.quantize(_CENT):f},"tax":{{"type":"NO_VAT","sum":0,"result_sum":0}},"extra_keys":[]'
        f"{_line_discount(sum_, line, doc_level)}}}"
    )
    return text, sum_


def _payment(base: str, number: int, method: str, amount: Decimal, print_group: str) -> str:
    app = _PAYMENT_APPS.get(method, "")
    amount = amount.quantize(_CENT)
    return (
        f'{{"id":"{_child_uid(base, 2, number)}","type":"{_PAYMENT_TYPES.get(method, "UNKNOWN")}",'
        f'"sum":{amount:f}{app},"parts":[{{"print_group_id":"{print_group}","part_sum":{amount:f},"change":0}}]}}'
    )


def _doc_discounts(total: Decimal, total_sum: Decimal, doc_level: bool) -> list[str]:
    discount = total_sum - total
    if not doc_level or not discount:
        return []
    percent = _percent(discount, total_sum)
    return [f'{{"discount_type":"SUM","discount_sum":{discount:f},"discount_percent":{percent:f}}}']


@functools.lru_cache(maxsize=4096)
def _store_print(store: Store) -> tuple[str, str, str]:
    """A store's print group id, its ``print_groups`` JSON, and its till's serial numbers (for fiscal data)."""
    print_group = _uid(store.id, "print_group")
    checksum = zlib.crc32(store.id.encode())
    serial = checksum % 10**8
    address = _q(f"{store.name}, торговая точка {store.code}")
    groups = (
        f'[{{"id":"{print_group}","type":"CASH_RECEIPT","org_name":{_q(f"ООО «Сандбокс» ({store.name})")},'
        f'"org_inn":"77{checksum % 10**10:010d}","org_address":{address},"taxation_system":"SIMPLIFIED_INCOME"}}]'
    )
    kkt = f'"kkt_serial_number":"00106{serial:010d}","kkt_reg_number":"{serial:016d}"'
    return print_group, groups, kkt


def _fiscal(receipt: Receipt, store: Store, total: Decimal) -> str:
    fn, fd, fp = receipt.fiscal
    print_group, _, kkt = _store_print(store)
    fd_json = fd if fd.isdigit() else _q(fd)
    return (
        f'[{{"print_group_id":"{print_group}","receipt_number":{receipt.number},"document_number":{fd_json},'
        f'"session_number":{receipt.session_number},"check_sum":{total:f},'
        f'"receipt_date":"{receipt.occurred_at:%d%m%Y}","fn_serial_number":{_q(fn)},{kkt},'
        f'"fiscal_sign_doc_number":{_q(fp)},"fiscal_document_number":{fd_json}}}]'
    )


def _array(items: list[str], key: str, wrapped: bool) -> str:
    if wrapped:
        return "[" + ",".join(f'{{"{key}":{item}}}' for item in items) + "]"
    return "[" + ",".join(items) + "]"


def _customer(index: SandboxIndex, receipt: Receipt) -> tuple[str, str]:
    """The body's ``customer_phone`` member (with its leading comma) and the document's ``extras``."""
    if receipt.customer_phone is None:
        return "", "{}"
    digits = receipt.customer_phone.lstrip("+")
    phone = digits if variant(receipt.id, "phone_number") else f'"{digits}"'
    customer = index.customers.get(receipt.customer_phone)
    card = f',"card":{_q(customer.card)}' if customer is not None else ""
    extras = f'{{"{BONUS_APP_ID}":{{"phone":"{digits}","bonus_redeemed":{receipt.bonus_redeemed.quantize(_CENT):f}{card}}}}}'
    return f',"customer_phone":{phone}', extras


def _basis(index: SandboxIndex, receipt: Receipt) -> str:
    if receipt.kind != "return" or receipt.original_id is None:
        return ""
    original = index.receipts.get(receipt.original_id)
    number = f',"base_document_number":{original.number}' if original is not None else ""
    return f'"base_document_id":{_q(receipt.original_id)}{number},'


def _body(index: SandboxIndex, receipt: Receipt, store: Store) -> tuple[str, str]:
    """The document's ``body`` and ``extras`` JSON."""
    wrapped = variant(receipt.id, "wrapped")
    doc_level = variant(receipt.id, "doc_discount")
    print_group, groups, _ = _store_print(store)
    base = _uid(receipt.id)
    positions = [_position(index, base, line, doc_level) for line in receipt.lines]
    total_sum = sum((sum_ for _, sum_ in positions), _ZERO)
    total = receipt.total.quantize(_CENT)  # money always with kopecks, whatever the world holds
    payments = [
        _payment(base, number, method, amount, print_group)
        for number, (method, amount) in enumerate(receipt.payments, start=1)
    ]
    phone, extras = _customer(index, receipt)
    body = (
        f'{{{_basis(index, receipt)}"positions":{_array([text for text, _ in positions], "position", wrapped)},'
        f'"doc_discounts":{_array(_doc_discounts(total, total_sum, doc_level), "doc_discount", wrapped)},'
        f'"payments":{_array(payments, "payment", wrapped)},"print_groups":{groups},'
        f'"pos_print_results":{_fiscal(receipt, store, total)},"sum":{total_sum:f},"result_sum":{total:f}{phone}}}'
    )
    return body, extras


def render_document_json(index: SandboxIndex, receipt: Receipt) -> str:
    """One SELL or PAYBACK document as JSON text, exactly as ``GET /stores/{id}/documents`` lists it.

    Written directly as text (every string through the JSON encoder, every amount from its ``Decimal``):
    worlds of 100,000 receipts are rendered when the app starts, and this is several times faster than
    building dictionaries and serialising them.
    """
    store = index.stores[receipt.store_id]
    body, extras = _body(index, receipt, store)
    uploaded = receipt.occurred_at + timedelta(seconds=5 + zlib.crc32(receipt.id.encode()) % 90)
    kind = "SELL" if receipt.kind == "sale" else "PAYBACK"
    return (
        f'{{"id":{_q(receipt.id)},"type":"{kind}","version":"V2","number":{receipt.number},'
        f'"close_date":"{close_date(receipt.occurred_at)}","created_at":"{close_date(uploaded)}",'
        f'"time_zone_offset":{_offset_ms(receipt.occurred_at)},'
        f'"session_id":"{_shared_uid(store.id, "session", receipt.session_number)}",'
        f'"session_number":{receipt.session_number},"close_user_id":"{_shared_uid(store.id, "cashier")}",'
        f'"device_id":{_q(store.evotor_device_id)},"store_id":{_q(store.id)},"user_id":"{index.user_id}",'
        f'"extras":{extras},"body":{body}}}'
    )


def render_document(index: SandboxIndex, receipt: Receipt) -> dict[str, Any]:
    """:func:`render_document_json`, parsed (amounts as ``Decimal``)."""
    return json.loads(render_document_json(index, receipt), parse_float=Decimal)  # type: ignore[no-any-return]
