"""The 1C view of a sandbox :class:`~connector.sandbox.world.World`: master data, receipts and bonus documents.

УТ 11 flavour: ``Catalog_Склады`` + ``Catalog_КассыККМ`` per store, ``Catalog_Номенклатура`` (``Артикул`` = sku,
category in ``ТоварнаяКатегория_Key`` → ``Catalog_ТоварныеКатегории.Description``), ``Catalog_Партнеры`` with
``КонтактнаяИнформация`` phone rows, ``Catalog_КартыЛояльности`` (``Штрихкод`` = card number), the bonus program,
``Document_ЧекККМ``/``Document_ЧекККМВозврат``. Розница 2 flavour: ``Catalog_Магазины``, ``Catalog_ФизическиеЛица``,
``Catalog_ИнформационныеКарты`` (``КодКарты``), ``Catalog_ВидыОплатЧекаККМ``, returns as ``Document_ЧекККМ`` with
``ВидОперации`` = ``Возврат``, redemption as an ``Оплата`` row of the ``Бонусы`` payment kind.

Receipts are marked posted without register movements: the world's convention is that the register mirrors the
CRM ledger through ``НачислениеИСписаниеБонусныхБаллов`` documents only, and those are posted by the real posting
logic. Dates are the store's (receipts) or the program's (bonus documents) local time, without a zone.
"""

from __future__ import annotations

import gc
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from connector.program import Program
from connector.sandbox.onec.base import OneCInfobase
from connector.sandbox.onec.schema import Flavour
from connector.sandbox.onec.wire import EMPTY_DATE, EMPTY_GUID
from connector.sandbox.world import OneCBonusDocument, OneCReceipt, ReceiptLine, SandboxCustomer, World

__all__ = ["program_timezone", "render_world"]

_CENT = Decimal("0.01")


@dataclass
class _Context:
    world: World
    base: OneCInfobase
    program: Program
    stores: dict[str, Any] = field(default_factory=dict)
    products: dict[str, Any] = field(default_factory=dict)
    customers: dict[str, SandboxCustomer] = field(default_factory=dict)
    partners: dict[str, SandboxCustomer] = field(default_factory=dict)
    evotor: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    @property
    def ut(self) -> bool:
        return self.base.flavour == "ut"

    def ref(self, what: str) -> str:
        """A stable GUID for an auxiliary object the world does not name (organization, currency, …)."""
        found = self.refs.get(what)
        if found is None:
            found = self.refs[what] = str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"loyalty-sandbox:{self.world.seed}:{what}")
            )
        return found


def _program(world: World) -> Program:
    try:
        data = yaml.safe_load(world.program_yaml) or {}
        return Program.model_validate(data.get("program", data))
    except (yaml.YAMLError, ValueError, AttributeError):
        # a world without a readable program still renders, with the catalog's neutral defaults
        return Program(name="Бонусная программа")


def program_timezone(world: World) -> str:
    """The IANA zone of the world's loyalty program: the local time of bonus documents and of 1C's "now"."""
    return _program(world).timezone


def render_world(world: World, flavour: Flavour) -> OneCInfobase:
    """Build an infobase of ``flavour`` holding the 1C view of ``world``."""
    # hundreds of thousands of new containers would trigger full collections over an ever larger heap again
    # and again (a large world rendered three times slower); nothing built here is cyclic garbage
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _render(world, flavour)
    finally:
        if enabled:
            gc.enable()


def _render(world: World, flavour: Flavour) -> OneCInfobase:
    ctx = _Context(world, OneCInfobase(flavour), _program(world))
    ctx.stores = {store.id: store for store in world.stores}
    ctx.products = {product.sku: product for product in world.products}
    ctx.customers = {customer.phone: customer for customer in world.customers}
    ctx.partners = {customer.onec_partner_ref: customer for customer in world.customers}
    ctx.evotor = {receipt.id: receipt for receipt in world.receipts}
    _render_program(ctx)
    _render_stores(ctx)
    _render_products(ctx)
    for customer in world.customers:
        _render_customer(ctx, customer)
    for receipt in world.onec_receipts:
        _render_receipt(ctx, receipt)
    for document in world.onec_bonus_documents:
        _render_bonus_document(ctx, document)
    return ctx.base


def _render_program(ctx: _Context) -> None:
    ctx.base.create(
        "Catalog_БонусныеПрограммыЛояльности",
        {
            "Ref_Key": ctx.world.onec_program_ref,
            "Description": ctx.program.name,
            "КурсКонвертацииБонусовВВалюту": ctx.program.point_value,
            "МаксимальныйПроцентОплатыБонусами": ctx.program.redemption.max_share_percent,
            "ВалютаКонвертацииБонусов_Key": ctx.ref("currency:RUB"),
        },
    )
    if ctx.ut:
        kind = {"Ref_Key": ctx.ref("card-kind"), "Description": "Бонусная карта", "Статус": "Действует"}
        ctx.base.create(
            "Catalog_ВидыКартЛояльности",
            kind | {"БонуснаяПрограммаЛояльности_Key": ctx.world.onec_program_ref},
        )
        anonymous = {"Description": "Розничный покупатель", "Predefined": True, "ЮрФизЛицо": "ЧастноеЛицо"}
        anonymous |= {"Ref_Key": ctx.ref("partner:retail"), "PredefinedDataName": "РозничныйПокупатель"}
        ctx.base.create("Catalog_Партнеры", anonymous)
        return
    for code, name, payment in (
        ("cash", "Наличные", "Наличные"),
        ("card", "Платежная карта", "ПлатежнаяКарта"),
    ):
        fields = {"Ref_Key": ctx.ref(f"pay:{code}"), "Description": name, "ТипОплаты": payment}
        ctx.base.create("Catalog_ВидыОплатЧекаККМ", fields)
    ctx.base.create(
        "Catalog_ВидыОплатЧекаККМ",
        {
            "Ref_Key": ctx.ref("pay:bonus"),
            "Description": "Бонусы",
            "ТипОплаты": "Бонусы",
            "БонуснаяПрограммаЛояльности_Key": ctx.world.onec_program_ref,
        },
    )


def _render_stores(ctx: _Context) -> None:
    for store in ctx.world.stores:
        common = {"Ref_Key": store.onec_store_ref, "Code": store.code, "Description": store.name}
        register = {
            "Ref_Key": store.onec_register_ref,
            "Code": store.code,
            "Description": f"Касса {store.name}",
        }
        register["ТипКассы"] = "ФискальныйРегистратор"
        if ctx.ut:
            ctx.base.create("Catalog_Склады", common | {"ТипСклада": "РозничныйМагазин"})
            register |= {"Склад_Key": store.onec_store_ref, "Организация_Key": ctx.ref("organization")}
        else:
            ctx.base.create("Catalog_Магазины", common)
            register |= {"Магазин_Key": store.onec_store_ref}
        ctx.base.create("Catalog_КассыККМ", register)


def _render_products(ctx: _Context) -> None:
    for category in sorted({product.category for product in ctx.world.products}):
        ctx.base.create(
            "Catalog_ТоварныеКатегории", {"Ref_Key": ctx.ref(f"category:{category}"), "Description": category}
        )
    for product in ctx.world.products:
        ctx.base.create(
            "Catalog_Номенклатура",
            {
                "Ref_Key": product.onec_ref,
                "Description": product.name,
                "НаименованиеПолное": product.name,
                "Артикул": product.sku,
                "ТоварнаяКатегория_Key": ctx.ref(f"category:{product.category}"),
                "ЕдиницаИзмерения_Key": ctx.ref("unit:шт"),
            },
        )


def _phone_row(ctx: _Context, phone: str) -> dict[str, Any]:
    digits = phone.lstrip("+")
    shown = (
        f"+{digits[0]} ({digits[1:4]}) {digits[4:7]}-{digits[7:9]}-{digits[9:]}"
        if len(digits) == 11
        else phone
    )
    return {
        "LineNumber": 1,
        "Тип": "Телефон",
        "Вид_Key": ctx.ref("contact-kind:phone"),
        "Представление": shown,
        "НомерТелефона": phone,
    }


def _render_customer(ctx: _Context, customer: SandboxCustomer) -> None:
    person = {
        "Ref_Key": customer.onec_partner_ref,
        "Description": customer.name,
        "ДатаРождения": customer.birthday,
        "КонтактнаяИнформация": [_phone_row(ctx, customer.phone)],
    }
    if ctx.ut:
        ctx.base.create(
            "Catalog_Партнеры",
            person | {"НаименованиеПолное": customer.name, "ЮрФизЛицо": "ЧастноеЛицо", "Клиент": True},
        )
        loyalty = {"Owner_Key": ctx.ref("card-kind"), "Штрихкод": customer.card, "Статус": "Действует"}
        loyalty |= {"Ref_Key": customer.onec_card_ref, "Description": customer.card}
        ctx.base.create("Catalog_КартыЛояльности", loyalty | {"Партнер_Key": customer.onec_partner_ref})
        return
    ctx.base.create("Catalog_ФизическиеЛица", person)
    card: dict[str, Any] = {
        "Ref_Key": customer.onec_card_ref,
        "Description": customer.card,
        "КодКарты": customer.card,
        "ВладелецКарты": customer.onec_partner_ref,
        "ВладелецКарты_Type": "StandardODATA.Catalog_ФизическиеЛица",
        "ТипКарты": "Штриховая",
        "БонуснаяПрограммаЛояльности_Key": ctx.world.onec_program_ref,
        "КартаДляНакоплений": True,
    }
    ctx.base.create("Catalog_ИнформационныеКарты", card)


def _local(moment: datetime, zone: str) -> datetime:
    local = moment.astimezone(ZoneInfo(zone)) if moment.tzinfo else moment
    return local.replace(tzinfo=None, microsecond=0)


def _midnight(day: date | None) -> datetime:
    return datetime(day.year, day.month, day.day) if day else EMPTY_DATE  # 1C dates are zone-less


def _points(ctx: _Context, money: Decimal) -> Decimal:
    return (money / ctx.program.point_value).quantize(_CENT)


def _ut_line(ctx: _Context, index: int, line: ReceiptLine) -> dict[str, Any]:
    product = ctx.products.get(line.sku)
    return {
        "LineNumber": index,
        "Номенклатура_Key": product.onec_ref if product else EMPTY_GUID,
        "Количество": line.quantity,
        "КоличествоУпаковок": line.quantity,
        "Цена": line.price,
        "Сумма": line.amount,
        "СуммаРучнойСкидки": line.discount,
        "СуммаБонусныхБалловКСписанию": _points(ctx, line.bonus_redeemed),
        "СуммаБонусныхБалловКСписаниюВВалюте": line.bonus_redeemed,
        "Штрихкод": product.barcode if product else "",
    }


def _retail_line(ctx: _Context, index: int, line: ReceiptLine) -> dict[str, Any]:
    product = ctx.products.get(line.sku)
    return {
        "LineNumber": index,
        "Номенклатура_Key": product.onec_ref if product else EMPTY_GUID,
        "Количество": line.quantity,
        "Цена": line.price,
        "Сумма": line.amount,
        "СуммаРучнойСкидки": line.discount,
        "СуммаСкидкиОплатыБонусом": line.bonus_redeemed,
        "Штрихкод": product.barcode if product else "",
    }


def _ut_receipt(
    ctx: _Context, receipt: OneCReceipt, customer: SandboxCustomer | None
) -> tuple[str, dict[str, Any]]:
    total = sum((line.amount for line in receipt.lines), Decimal(0))
    bonus = sum((line.bonus_redeemed for line in receipt.lines), Decimal(0))
    fields: dict[str, Any] = {
        "КассаККМ_Key": ctx.stores[receipt.store_id].onec_register_ref,
        "Склад_Key": ctx.stores[receipt.store_id].onec_store_ref,
        "Организация_Key": ctx.ref("organization"),
        "Валюта_Key": ctx.ref("currency:RUB"),
        "Статус": "Пробит",
        "Партнер_Key": customer.onec_partner_ref if customer else EMPTY_GUID,
        "КартаЛояльности_Key": customer.onec_card_ref if customer else EMPTY_GUID,
        "СуммаДокумента": total,
        "ФормаОплаты": "Наличная",
        "ЦенаВключаетНДС": True,
        "Товары": [_ut_line(ctx, index, line) for index, line in enumerate(receipt.lines, start=1)],
    }
    if receipt.kind == "sale":
        return "Document_ЧекККМ", fields | {"ПолученоНаличными": total - bonus}
    fields |= {"ЧекККМ_Key": receipt.original_ref_key or EMPTY_GUID, "ВыданоНаличными": total - bonus}
    return "Document_ЧекККМВозврат", fields


def _retail_receipt(
    ctx: _Context, receipt: OneCReceipt, customer: SandboxCustomer | None
) -> tuple[str, dict[str, Any]]:
    total = sum((line.amount for line in receipt.lines), Decimal(0))
    bonus = sum((line.bonus_redeemed for line in receipt.lines), Decimal(0))
    payments = [{"LineNumber": 1, "ВидОплаты_Key": ctx.ref("pay:cash"), "Сумма": total - bonus}]
    if bonus:
        payments.append(
            {
                "LineNumber": 2,
                "ВидОплаты_Key": ctx.ref("pay:bonus"),
                "Сумма": bonus,
                "КоличествоБонусов": _points(ctx, bonus),
                "БонуснаяПрограммаЛояльности_Key": ctx.world.onec_program_ref,
            }
        )
    till = ctx.evotor.get(receipt.source_id)
    fields = {
        "ВидОперации": "Продажа" if receipt.kind == "sale" else "Возврат",
        "СтатусЧекаККМ": "Пробитый",
        "Магазин_Key": ctx.stores[receipt.store_id].onec_store_ref,
        "КассаККМ_Key": ctx.stores[receipt.store_id].onec_register_ref,
        "Организация_Key": ctx.ref("organization"),
        "НомерСменыККМ": till.session_number if till else 0,
        "НомерЧекаККМ": till.number if till else 0,
        "ДисконтнаяКарта_Key": customer.onec_card_ref if customer else EMPTY_GUID,
        "ВладелецДисконтнойКарты": customer.onec_partner_ref if customer else "",
        "ВладелецДисконтнойКарты_Type": "StandardODATA.Catalog_ФизическиеЛица"
        if customer
        else "StandardODATA.Undefined",
        "ЧекККМПродажа_Key": receipt.original_ref_key or EMPTY_GUID,
        "Телефон": receipt.customer_phone or "",
        "СуммаДокумента": total,
        "ЦенаВключаетНДС": True,
        "Товары": [_retail_line(ctx, index, line) for index, line in enumerate(receipt.lines, start=1)],
        "Оплата": payments,
    }
    return "Document_ЧекККМ", fields


def _render_receipt(ctx: _Context, receipt: OneCReceipt) -> None:
    customer = ctx.customers.get(receipt.customer_phone) if receipt.customer_phone else None
    entity_set, fields = (_ut_receipt if ctx.ut else _retail_receipt)(ctx, receipt, customer)
    store = ctx.stores[receipt.store_id]
    fields |= {
        "Ref_Key": receipt.ref_key,
        "Number": receipt.number,
        "Date": _local(receipt.occurred_at, store.timezone),
        "Комментарий": receipt.comment,
    }
    fields["DeletionMark"] = receipt.deletion_mark
    ctx.base.seed(entity_set, fields, posted=receipt.posted)


def _render_bonus_document(ctx: _Context, document: OneCBonusDocument) -> None:
    moment = _local(document.date, ctx.program.timezone)
    holder = "Партнер_Key"
    holder_ref = document.partner_ref
    if not ctx.ut:
        holder = "ДисконтнаяКарта_Key"
        owner = ctx.partners.get(document.partner_ref)
        holder_ref = owner.onec_card_ref if owner else EMPTY_GUID
    fields: dict[str, Any] = {
        "Ref_Key": document.ref_key,
        "Number": document.number,
        "Date": moment,
        "БонуснаяПрограммаЛояльности_Key": ctx.world.onec_program_ref,
        "Комментарий": document.comment,
        "ДатаОкончанияСрокаДействия": _midnight(document.expires_on),
        "Начисление": [{"LineNumber": 1, holder: holder_ref, "Баллы": document.accrual}]
        if document.accrual
        else [],
        "Списание": [{"LineNumber": 1, holder: holder_ref, "Баллы": document.write_off}]
        if document.write_off
        else [],
    }
    delay = (document.active_from - moment.date()).days if document.active_from else 0
    if delay > 0:
        fields |= {"ПериодОтсрочкиНачалаДействия": "День", "КоличествоПериодовОтсрочкиНачалаДействия": delay}
    ref = ctx.base.seed("Document_НачислениеИСписаниеБонусныхБаллов", fields)
    if document.posted:
        ctx.base.post("Document_НачислениеИСписаниеБонусныхБаллов", ref)
