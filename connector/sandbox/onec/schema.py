"""The published composition of the emulated infobases: entity sets, their properties and tabular sections.

Two flavours share the mechanics and differ in objects (reference/onec.md §2): ``ut`` is УТ 11.5 (partners,
loyalty cards, ``ЧекККМВозврат``), ``retail`` is Розница 2 (persons, information cards, returns as ``ЧекККМ`` with
``ВидОперации`` = ``Возврат``, redemption as an ``Оплата`` row). Property types are EDM names without the
``Edm.`` prefix; reference attributes end in ``_Key`` and are ``Guid``. Only what the connector and a curious
integrator read is published — a real base publishes what its admin chose, so clients must read ``$metadata``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "REGISTER",
    "REGISTER_RECORDS",
    "EntitySchema",
    "Flavour",
    "Prop",
    "infobase_schema",
    "register_dimensions",
    "register_props",
]

Flavour = Literal["ut", "retail"]
Prop = tuple[str, str]

REGISTER = "AccumulationRegister_БонусныеБаллы"
REGISTER_RECORDS = f"{REGISTER}_RecordType"

_CATALOG_STD: tuple[Prop, ...] = (
    ("Ref_Key", "Guid"),
    ("DataVersion", "String"),
    ("DeletionMark", "Boolean"),
    ("Code", "String"),
    ("Description", "String"),
    ("Predefined", "Boolean"),
    ("PredefinedDataName", "String"),
)
_DOCUMENT_STD: tuple[Prop, ...] = (
    ("Ref_Key", "Guid"),
    ("DataVersion", "String"),
    ("DeletionMark", "Boolean"),
    ("Number", "String"),
    ("Date", "DateTime"),
    ("Posted", "Boolean"),
)
_ROW_STD: tuple[Prop, ...] = (("Ref_Key", "Guid"), ("LineNumber", "Int64"))


@dataclass(frozen=True)
class EntitySchema:
    """One published entity set: standard properties first, then attributes, then tabular sections."""

    name: str
    kind: Literal["catalog", "document"]
    attributes: tuple[Prop, ...]
    sections: dict[str, tuple[Prop, ...]] = field(default_factory=dict)

    @property
    def props(self) -> tuple[Prop, ...]:
        """Every scalar property in the order 1C writes them."""
        return (_CATALOG_STD if self.kind == "catalog" else _DOCUMENT_STD) + self.attributes

    @property
    def types(self) -> dict[str, str]:
        """Property name → EDM type (scalars only)."""
        return dict(self.props)

    def section_types(self, section: str) -> dict[str, str]:
        """Row property name → EDM type for one tabular section, ``Ref_Key`` and ``LineNumber`` included."""
        return dict(_ROW_STD + self.sections[section])


def _catalog(name: str, *attributes: Prop, **sections: tuple[Prop, ...]) -> EntitySchema:
    return EntitySchema(name, "catalog", attributes, dict(sections))


def _document(name: str, *attributes: Prop, **sections: tuple[Prop, ...]) -> EntitySchema:
    return EntitySchema(name, "document", attributes, dict(sections))


_CONTACTS: tuple[Prop, ...] = (
    ("Тип", "String"),
    ("Вид_Key", "Guid"),
    ("Представление", "String"),
    ("НомерТелефона", "String"),
    ("АдресЭП", "String"),
)
_PROGRAM = _catalog(
    "Catalog_БонусныеПрограммыЛояльности",
    ("КурсКонвертацииБонусовВВалюту", "Double"),
    ("МаксимальныйПроцентОплатыБонусами", "Double"),
    ("ВалютаКонвертацииБонусов_Key", "Guid"),
    ("НеНачислятьБаллыПриОплатеБонусами", "Boolean"),
)
_CATEGORIES = _catalog("Catalog_ТоварныеКатегории")
_PRODUCTS = _catalog(
    "Catalog_Номенклатура",
    ("Parent_Key", "Guid"),
    ("IsFolder", "Boolean"),
    ("Артикул", "String"),
    ("НаименованиеПолное", "String"),
    ("ТоварнаяКатегория_Key", "Guid"),
    ("ЕдиницаИзмерения_Key", "Guid"),
)
_BONUS_DOC_HEADER: tuple[Prop, ...] = (
    ("БонуснаяПрограммаЛояльности_Key", "Guid"),
    ("ПравилоНачисления_Key", "Guid"),
    ("ВидПравила", "String"),
    ("ПериодДействия", "String"),
    ("КоличествоПериодовДействия", "Int16"),
    ("ПериодОтсрочкиНачалаДействия", "String"),
    ("КоличествоПериодовОтсрочкиНачалаДействия", "Int16"),
    ("ДатаОкончанияСрокаДействия", "DateTime"),
    ("Ответственный_Key", "Guid"),
    ("Комментарий", "String"),
)
_ACCRUAL_ROWS: tuple[Prop, ...] = (
    ("БонуснаяПрограммаЛояльности_Key", "Guid"),
    ("ДатаНачисления", "DateTime"),
    ("ДатаСписания", "DateTime"),
    ("СуммаБонусныхБаллов", "Double"),
)


def _ut_receipt_lines() -> tuple[Prop, ...]:
    return (
        ("Номенклатура_Key", "Guid"),
        ("Характеристика_Key", "Guid"),
        ("КоличествоУпаковок", "Double"),
        ("Количество", "Double"),
        ("Цена", "Double"),
        ("Сумма", "Double"),
        ("СтавкаНДС_Key", "Guid"),
        ("СуммаНДС", "Double"),
        ("СуммаАвтоматическойСкидки", "Double"),
        ("СуммаРучнойСкидки", "Double"),
        ("Штрихкод", "String"),
        ("СуммаБонусныхБалловКСписанию", "Double"),
        ("СуммаБонусныхБалловКСписаниюВВалюте", "Double"),
        ("СуммаНачисленныхБонусныхБалловВВалюте", "Double"),
    )


_CARD_PAYMENTS: tuple[Prop, ...] = (
    ("ЭквайринговыйТерминал_Key", "Guid"),
    ("Сумма", "Double"),
    ("НомерПлатежнойКарты", "String"),
    ("СсылочныйНомер", "String"),
    ("КодАвторизации", "String"),
)
_UT_RECEIPT_HEADER: tuple[Prop, ...] = (
    ("КассаККМ_Key", "Guid"),
    ("Кассир_Key", "Guid"),
    ("Организация_Key", "Guid"),
    ("Склад_Key", "Guid"),
    ("Валюта_Key", "Guid"),
    ("Статус", "String"),
    ("Архивный", "Boolean"),
    ("КассоваяСмена_Key", "Guid"),
    ("КартаЛояльности_Key", "Guid"),
    ("Партнер_Key", "Guid"),
    ("ИспользоватьОплатуБонуснымиБаллами", "Boolean"),
    ("СуммаДокумента", "Double"),
    ("ФормаОплаты", "String"),
    ("ЦенаВключаетНДС", "Boolean"),
    ("ИдентификаторДокумента", "String"),
    ("Комментарий", "String"),
)


def _ut() -> list[EntitySchema]:
    return [
        _catalog(
            "Catalog_Партнеры",
            ("Parent_Key", "Guid"),
            ("IsFolder", "Boolean"),
            ("НаименованиеПолное", "String"),
            ("ЮрФизЛицо", "String"),
            ("Пол", "String"),
            ("ДатаРождения", "DateTime"),
            ("Клиент", "Boolean"),
            ("Комментарий", "String"),
            КонтактнаяИнформация=_CONTACTS,
        ),
        _catalog(
            "Catalog_ВидыКартЛояльности",
            ("БонуснаяПрограммаЛояльности_Key", "Guid"),
            ("Статус", "String"),
        ),
        _catalog(
            "Catalog_КартыЛояльности",
            ("Owner_Key", "Guid"),
            ("Штрихкод", "String"),
            ("МагнитныйКод", "String"),
            ("Статус", "String"),
            ("Партнер_Key", "Guid"),
            ("Контрагент_Key", "Guid"),
            ("Соглашение_Key", "Guid"),
        ),
        _CATEGORIES,
        _PRODUCTS,
        _PROGRAM,
        _catalog("Catalog_Склады", ("Parent_Key", "Guid"), ("IsFolder", "Boolean"), ("ТипСклада", "String")),
        _catalog(
            "Catalog_КассыККМ",
            ("Склад_Key", "Guid"),
            ("Организация_Key", "Guid"),
            ("ТипКассы", "String"),
        ),
        _document(
            "Document_ЧекККМ",
            *_UT_RECEIPT_HEADER[:12],
            ("ПолученоНаличными", "Double"),
            *_UT_RECEIPT_HEADER[12:],
            Товары=_ut_receipt_lines(),
            ОплатаПлатежнымиКартами=_CARD_PAYMENTS,
            БонусныеБаллы=_ACCRUAL_ROWS,
        ),
        _document(
            "Document_ЧекККМВозврат",
            ("ЧекККМ_Key", "Guid"),
            *_UT_RECEIPT_HEADER[:12],
            ("СуммаБонусныхБалловКВозврату", "Double"),
            ("ВыданоНаличными", "Double"),
            *_UT_RECEIPT_HEADER[12:],
            Товары=_ut_receipt_lines(),
            ОплатаПлатежнымиКартами=_CARD_PAYMENTS,
            БонусныеБаллы=_ACCRUAL_ROWS,
        ),
        _document(
            "Document_НачислениеИСписаниеБонусныхБаллов",
            *_BONUS_DOC_HEADER,
            Начисление=(("Партнер_Key", "Guid"), ("Баллы", "Double")),
            Списание=(("Партнер_Key", "Guid"), ("Баллы", "Double")),
        ),
    ]


def _retail() -> list[EntitySchema]:
    return [
        _catalog(
            "Catalog_ФизическиеЛица",
            ("Parent_Key", "Guid"),
            ("IsFolder", "Boolean"),
            ("Пол", "String"),
            ("ДатаРождения", "DateTime"),
            КонтактнаяИнформация=_CONTACTS,
        ),
        _catalog(
            "Catalog_ИнформационныеКарты",
            ("КодКарты", "String"),
            ("ВладелецКарты", "String"),
            ("ВладелецКарты_Type", "String"),
            ("ВидДисконтнойКарты_Key", "Guid"),
            ("ТипКарты", "String"),
            ("БонуснаяПрограммаЛояльности_Key", "Guid"),
            ("КартаДляНакоплений", "Boolean"),
        ),
        _CATEGORIES,
        _PRODUCTS,
        _PROGRAM,
        _catalog("Catalog_Магазины", ("Склад_Key", "Guid")),
        _catalog("Catalog_КассыККМ", ("Магазин_Key", "Guid"), ("ТипКассы", "String")),
        _catalog(
            "Catalog_ВидыОплатЧекаККМ",
            ("ТипОплаты", "String"),
            ("БонуснаяПрограммаЛояльности_Key", "Guid"),
        ),
        _document(
            "Document_ЧекККМ",
            ("ВидОперации", "String"),
            ("СтатусЧекаККМ", "String"),
            ("Магазин_Key", "Guid"),
            ("КассаККМ_Key", "Guid"),
            ("Организация_Key", "Guid"),
            ("НомерСменыККМ", "Int32"),
            ("НомерЧекаККМ", "Int32"),
            ("ДисконтнаяКарта_Key", "Guid"),
            ("ВладелецДисконтнойКарты", "String"),
            ("ВладелецДисконтнойКарты_Type", "String"),
            ("ЧекККМПродажа_Key", "Guid"),
            ("ОтчетОРозничныхПродажах_Key", "Guid"),
            ("БонусыНачислены", "Boolean"),
            ("Телефон", "String"),
            ("АдресЭП", "String"),
            ("СуммаДокумента", "Double"),
            ("ЦенаВключаетНДС", "Boolean"),
            ("Комментарий", "String"),
            Товары=(
                ("Номенклатура_Key", "Guid"),
                ("Характеристика_Key", "Guid"),
                ("Количество", "Double"),
                ("Цена", "Double"),
                ("Сумма", "Double"),
                ("СуммаРучнойСкидки", "Double"),
                ("СуммаАвтоматическойСкидки", "Double"),
                ("СуммаСкидкиОплатыБонусом", "Double"),
                ("СтавкаНДС", "String"),
                ("СуммаНДС", "Double"),
                ("Штрихкод", "String"),
            ),
            Оплата=(
                ("ВидОплаты_Key", "Guid"),
                ("Сумма", "Double"),
                ("КоличествоБонусов", "Double"),
                ("БонуснаяПрограммаЛояльности_Key", "Guid"),
                ("ЭквайринговыйТерминал_Key", "Guid"),
            ),
            БонусныеБаллыКНачислению=_ACCRUAL_ROWS,
        ),
        _document(
            "Document_НачислениеИСписаниеБонусныхБаллов",
            *_BONUS_DOC_HEADER,
            Начисление=(("ДисконтнаяКарта_Key", "Guid"), ("Баллы", "Double")),
            Списание=(("ДисконтнаяКарта_Key", "Guid"), ("Баллы", "Double")),
        ),
    ]


def register_props(flavour: Flavour) -> tuple[Prop, ...]:
    """The flat ``_RecordType`` row of the bonus register: standard columns, dimensions, resources, attributes."""
    dims: tuple[Prop, ...] = (
        (("БонуснаяПрограммаЛояльности_Key", "Guid"), ("Партнер_Key", "Guid"))
        if flavour == "ut"
        else (("ДисконтнаяКарта_Key", "Guid"), ("БонуснаяПрограммаЛояльности_Key", "Guid"))
    )
    attrs: tuple[Prop, ...] = (
        (("Сторно", "Boolean"),) if flavour == "ut" else (("ДатаПервоначальногоНачисления", "DateTime"),)
    )
    std: tuple[Prop, ...] = (
        ("Recorder", "String"),
        ("Recorder_Type", "String"),
        ("LineNumber", "Int64"),
        ("Period", "DateTime"),
        ("Active", "Boolean"),
        ("RecordType", "String"),
    )
    return std + dims + (("Начислено", "Double"), ("КСписанию", "Double")) + attrs


def register_dimensions(flavour: Flavour) -> tuple[str, ...]:
    """Dimension property names of the bonus register, in declaration order."""
    return tuple(name for name, _ in register_props(flavour)[6:8])


def infobase_schema(flavour: Flavour) -> dict[str, EntitySchema]:
    """Every object entity set of a flavour by name (the register sets are described by :func:`register_props`)."""
    return {entity.name: entity for entity in (_ut() if flavour == "ut" else _retail())}
