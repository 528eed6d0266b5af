"""What a 1C configuration looks like to the connector, and its master data read once per run.

Two configurations share the mechanics and differ in objects (reference/onec.md §2): УТ 11 / КА 2 / ERP
(``ut``: partners, loyalty cards, ``ЧекККМВозврат``, the register by ``Партнер``) and Розница 2 (``retail``:
persons, information cards, returns as ``ЧекККМ`` with ``ВидОперации`` = ``Возврат``, the register by
``ДисконтнаяКарта``). :data:`FLAVOURS` names every set and field that differs, so the adapter has no
``if flavour`` chains.

:func:`read_catalogs` reads the catalogs once (one paged query per set) into :class:`OneCCatalogs`, which
gives the lookups the shipped 1C mappings expect (``partners``, ``cards``, ``stores``, ``products``,
``payment_kinds``; see :mod:`connector.mapping`) and the reverse lookups writes need (phone/card → partner,
sku → product, canonical store → ``Склад``/``Магазин``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from adapters.odata import ODataClient
from connector.errors import ConfigError
from connector.logs import get_logger
from connector.model import normalize_phone

__all__ = ["FLAVOURS", "Flavour", "FlavourSpec", "OneCCatalogs", "flavour_of", "read_catalogs"]

Flavour = Literal["ut", "retail"]
_log = get_logger("adapters.onec")

_RECEIPT_COMMON = (
    "Ref_Key",
    "DataVersion",
    "DeletionMark",
    "Number",
    "Date",
    "Posted",
    "КассаККМ_Key",
    "СуммаДокумента",
    "Комментарий",
    "Товары",
)


@dataclass(frozen=True)
class FlavourSpec:
    """The sets and fields of one configuration family.

    Attributes:
        name: ``ut`` or ``retail``.
        partners: the customer catalog (its rows carry ``КонтактнаяИнформация``).
        cards: the loyalty card catalog.
        card_number: the card number field of ``cards``.
        card_owner: the field of ``cards`` naming the customer.
        stores: the store catalog.
        store_field: the receipt's reference to a store.
        holder: the dimension of the bonus register and the column of bonus-document rows (a partner or a
        card).
        sale_set: the set of sales.
        return_set: the set of returns.
        original_field: a return's reference to its sale.
        sale_select: the receipt properties read (``$select``); the mappings need no others.
        return_select: the return properties read.
    """

    name: Flavour
    partners: str
    cards: str
    card_number: str
    card_owner: str
    stores: str
    store_field: str
    holder: str
    sale_set: str
    return_set: str
    original_field: str
    sale_select: tuple[str, ...]
    return_select: tuple[str, ...]

    @property
    def return_kind(self) -> Mapping[str, object]:
        """Fields that mark a document of :attr:`return_set` as a return (Розница: ``ВидОперации``)."""
        return {"ВидОперации": "Возврат"} if self.name == "retail" else {}

    @property
    def sale_kind(self) -> Mapping[str, object]:
        """Fields that mark a document of :attr:`sale_set` as a sale."""
        return {"ВидОперации": "Продажа"} if self.name == "retail" else {}


_UT_HEADER = (
    "Склад_Key",
    "Партнер_Key",
    "КартаЛояльности_Key",
    "Статус",
    "ОплатаПлатежнымиКартами",
    "БонусныеБаллы",
)
_RETAIL_RECEIPT = (
    *_RECEIPT_COMMON,
    "ВидОперации",
    "СтатусЧекаККМ",
    "Магазин_Key",
    "ДисконтнаяКарта_Key",
    "ЧекККМПродажа_Key",
    "Телефон",
    "АдресЭП",
    "Оплата",
    "БонусныеБаллыКНачислению",
)

FLAVOURS: Mapping[Flavour, FlavourSpec] = {
    "ut": FlavourSpec(
        name="ut",
        partners="Catalog_Партнеры",
        cards="Catalog_КартыЛояльности",
        card_number="Штрихкод",
        card_owner="Партнер_Key",
        stores="Catalog_Склады",
        store_field="Склад_Key",
        holder="Партнер_Key",
        sale_set="Document_ЧекККМ",
        return_set="Document_ЧекККМВозврат",
        original_field="ЧекККМ_Key",
        sale_select=(*_RECEIPT_COMMON, *_UT_HEADER, "ПолученоНаличными"),
        return_select=(
            *_RECEIPT_COMMON,
            *_UT_HEADER,
            "ЧекККМ_Key",
            "СуммаБонусныхБалловКВозврату",
            "ВыданоНаличными",
        ),
    ),
    "retail": FlavourSpec(
        name="retail",
        partners="Catalog_ФизическиеЛица",
        cards="Catalog_ИнформационныеКарты",
        card_number="КодКарты",
        card_owner="ВладелецКарты",
        stores="Catalog_Магазины",
        store_field="Магазин_Key",
        holder="ДисконтнаяКарта_Key",
        sale_set="Document_ЧекККМ",
        return_set="Document_ЧекККМ",
        original_field="ЧекККМПродажа_Key",
        sale_select=_RETAIL_RECEIPT,
        return_select=_RETAIL_RECEIPT,
    ),
}
"""The two configuration families the adapter speaks (``options.flavour`` or the mapping name picks one)."""

_FLAVOUR_NAMES: Mapping[str, Flavour] = {
    "ut": "ut",
    "ut11": "ut",
    "ka2": "ut",
    "erp": "ut",
    "retail": "retail",
    "retail2": "retail",
}


def flavour_of(named: object, mapping: str | None) -> Flavour:
    """The configuration family: ``options.flavour`` when given, else ``retail`` for a Розница mapping.

    Example:
        >>> flavour_of(None, "onec/retail2"), flavour_of("ERP", None)
        ('retail', 'ut')
    """
    if named is not None:
        if str(named).lower() not in _FLAVOUR_NAMES:
            raise ConfigError(f"options.flavour: {named!r} is not one of {', '.join(_FLAVOUR_NAMES)}")
        return _FLAVOUR_NAMES[str(named).lower()]
    # a shipped or custom mapping under onec/retail2 is Розница; anything else speaks the УТ 11 object model
    return "retail" if "retail" in str(mapping or "").lower() else "ut"


@dataclass
class OneCCatalogs:
    """Master data of one base, keyed by ``Ref_Key`` (lower-case GUIDs).

    Attributes:
        partners: customer → ``{phone, card, name}`` (УТ ``Партнеры``, Розница ``ФизическиеЛица``).
        cards: card → ``{number, phone, partner}``.
        products: item → ``{sku, name, category}``.
        stores: ``Склад``/``Магазин`` → canonical store id (the configured id, else the 1C key itself).
        registers: ``КассаККМ`` → its store's ``Ref_Key``.
        programs: bonus program → ``{name, point_value}``.
        payment_kinds: Розница payment kind → ``{type}`` (``Наличные``, ``ПлатежнаяКарта``, ``Бонусы``).
    """

    partners: dict[str, dict[str, Any]] = field(default_factory=dict)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    stores: dict[str, str] = field(default_factory=dict)
    registers: dict[str, str] = field(default_factory=dict)
    programs: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_kinds: dict[str, dict[str, Any]] = field(default_factory=dict)
    _by_phone: dict[str, str] = field(default_factory=dict, repr=False)
    _by_card: dict[str, str] = field(default_factory=dict, repr=False)
    _card_of: dict[str, str] = field(default_factory=dict, repr=False)
    _by_sku: dict[str, str] = field(default_factory=dict, repr=False)

    def for_mapping(self) -> dict[str, dict[str, Any]]:
        """The ``catalogs=`` argument of the mapping engine (see :mod:`connector.mapping`)."""
        return {
            "partners": self.partners,
            "cards": self.cards,
            "products": self.products,
            "stores": self.stores,
            "registers": self.registers,
            "programs": self.programs,
            "payment_kinds": self.payment_kinds,
        }

    def index(self) -> None:
        """Build the reverse lookups (phone, card number, sku → key) once the catalogs are read."""
        self._by_phone = {}
        for ref, entry in self.partners.items():
            if entry["phone"]:
                self._by_phone.setdefault(entry["phone"], ref)
        self._by_card = {}
        self._card_of = {}
        for ref, entry in self.cards.items():
            if entry["number"]:
                self._by_card.setdefault(entry["number"], ref)
            if entry["partner"]:
                self._card_of.setdefault(entry["partner"], ref)
        self._by_sku = {entry["sku"]: ref for ref, entry in reversed(self.products.items()) if entry["sku"]}

    def partner_for_phone(self, phone: str) -> str | None:
        """The customer whose contact phone is ``phone`` (any national form), or None."""
        wanted = _e164(phone)
        return self._by_phone.get(wanted) if wanted else None

    def partner_for_card(self, card: str) -> str | None:
        """The customer owning the loyalty card numbered ``card``, or None."""
        found = self.card_for_number(card)
        return self.cards[found]["partner"] if found else None

    def card_for_number(self, card: str) -> str | None:
        """The ``Ref_Key`` of the card numbered ``card``, or None."""
        return self._by_card.get(card)

    def card_for_partner(self, partner: str) -> str | None:
        """The first card of ``partner``, or None."""
        return self._card_of.get(partner)

    def product_for_sku(self, sku: str) -> str | None:
        """The item whose sku (``Артикул``) is ``sku``, or None."""
        return self._by_sku.get(sku)

    def store_ref(self, store: str) -> str | None:
        """The ``Склад``/``Магазин`` of a canonical store id (or of its own ``Ref_Key``), or None."""
        if store.lower() in self.stores:
            return store.lower()
        return next((ref for ref, canonical in self.stores.items() if canonical == store), None)

    def register_for_store(self, store_ref: str) -> str | None:
        """The first cash register (``КассаККМ``) of a store, or None."""
        return next((ref for ref, owner in self.registers.items() if owner == store_ref), None)

    def payment_kind(self, kind_type: str) -> str | None:
        """The Розница payment kind of type ``kind_type`` (``Наличные``, ``ПлатежнаяКарта``), or None."""
        return next((ref for ref, entry in self.payment_kinds.items() if entry["type"] == kind_type), None)

    def default_program(self) -> str | None:
        """The bonus program when the base has exactly one — or the first of several."""
        return next(iter(self.programs), None)


def _e164(raw: Any) -> str | None:
    if not raw:
        return None
    try:
        return normalize_phone(str(raw))
    except ValueError:
        return None  # a contact row with a note instead of a number is not a phone


def _phone(row: Mapping[str, Any]) -> str | None:
    for contact in row.get("КонтактнаяИнформация") or ():
        if contact.get("Тип") == "Телефон":
            phone = _e164(contact.get("НомерТелефона") or contact.get("Представление"))
            if phone:
                return phone
    return None


def _rows(client: ODataClient, entity_set: str, select: tuple[str, ...]) -> list[dict[str, Any]]:
    return list(client.query(entity_set, select=select))


def _key(value: Any) -> str | None:
    return str(value).lower() if value else None


def read_catalogs(
    client: ODataClient, spec: FlavourSpec, *, store_ids: Mapping[str, str], sku_field: str = "Артикул"
) -> OneCCatalogs:
    """Read the catalogs of one base once: one paged query per set.

    Args:
        client: the base's OData client.
        spec: the configuration family.
        store_ids: canonical store id → the 1C store's ``Ref_Key`` or ``Code`` (``options.store_ids``).
        sku_field: the item attribute holding the sku.

    Raises:
        ConfigError: a configured store is not in the base.
    """
    catalogs = OneCCatalogs()
    _read_partners(client, spec, catalogs)
    _read_products(client, catalogs, sku_field)
    _read_stores(client, spec, catalogs, store_ids)
    for row in _rows(
        client,
        "Catalog_БонусныеПрограммыЛояльности",
        ("Description", "DeletionMark", "КурсКонвертацииБонусовВВалюту"),
    ):
        if not row.get("DeletionMark"):
            rate = row.get("КурсКонвертацииБонусовВВалюту")
            value = Decimal(rate) if rate else Decimal("1")
            catalogs.programs[row["Ref_Key"]] = {"name": row.get("Description"), "point_value": value}
    if spec.name == "retail":
        for row in _rows(client, "Catalog_ВидыОплатЧекаККМ", ("Description", "ТипОплаты")):
            catalogs.payment_kinds[row["Ref_Key"]] = {
                "type": row.get("ТипОплаты"),
                "name": row.get("Description"),
            }
    catalogs.index()
    _log.info(
        "onec.catalogs",
        system=client.http.system,
        partners=len(catalogs.partners),
        cards=len(catalogs.cards),
        products=len(catalogs.products),
        stores=len(catalogs.stores),
    )
    return catalogs


def _read_partners(client: ODataClient, spec: FlavourSpec, catalogs: OneCCatalogs) -> None:
    for row in _rows(client, spec.partners, ("Description", "DeletionMark", "КонтактнаяИнформация")):
        if row.get("DeletionMark"):
            continue  # a marked customer's old receipts map through their card instead
        catalogs.partners[row["Ref_Key"]] = {
            "phone": _phone(row),
            "card": None,
            "name": row.get("Description"),
        }
    card_fields = (spec.card_number, spec.card_owner, "DeletionMark")
    for row in _rows(client, spec.cards, card_fields):
        partner = _key(row.get(spec.card_owner))
        owner = catalogs.partners.get(partner or "")
        number = row.get(spec.card_number) or None
        catalogs.cards[row["Ref_Key"]] = {
            "number": number,
            "partner": partner,
            "phone": owner["phone"] if owner else None,
        }
        if owner is not None and owner["card"] is None and not row.get("DeletionMark"):
            owner["card"] = number


def _read_products(client: ODataClient, catalogs: OneCCatalogs, sku_field: str) -> None:
    categories = {
        row["Ref_Key"]: row.get("Description")
        for row in _rows(client, "Catalog_ТоварныеКатегории", ("Description",))
    }
    for row in _rows(client, "Catalog_Номенклатура", ("Description", sku_field, "ТоварнаяКатегория_Key")):
        catalogs.products[row["Ref_Key"]] = {
            "sku": row.get(sku_field) or None,
            "name": row.get("Description"),
            "category": categories.get(row.get("ТоварнаяКатегория_Key") or ""),
        }


def _read_stores(
    client: ODataClient, spec: FlavourSpec, catalogs: OneCCatalogs, store_ids: Mapping[str, str]
) -> None:
    by_code: dict[str, str] = {}
    for row in _rows(client, spec.stores, ("Code", "Description")):
        catalogs.stores[row["Ref_Key"]] = row["Ref_Key"]
        by_code[str(row.get("Code") or "").strip()] = row["Ref_Key"]
    for canonical, named in store_ids.items():
        ref = named.lower() if named.lower() in catalogs.stores else by_code.get(named.strip())
        if ref is None:
            raise ConfigError(
                f"options.store_ids.{canonical}: no {spec.stores} with Ref_Key or Code {named!r} in 1C",
                system=client.http.system,
            )
        catalogs.stores[ref] = canonical
    for row in _rows(client, "Catalog_КассыККМ", (spec.store_field,)):
        owner = _key(row.get(spec.store_field))
        if owner:
            catalogs.registers[row["Ref_Key"]] = owner
