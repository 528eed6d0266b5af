"""Posting logic: which ``AccumulationRegister_БонусныеБаллы`` movements a document writes when it is posted.

Modelled on the configurations' own code (reference/onec.md §2.4):

* УТ 11 ``ЧекККМ`` (``Documents/ЧекККМ/Ext/ManagerModule.bsl``): for each ``БонусныеБаллы`` row an accrual
  ``Receipt`` at ``ДатаНачисления`` (``Начислено``) and, when ``ДатаСписания`` is set, the expiry schedule
  ``Receipt`` at that date (``КСписанию``); redemption — the sum of ``Товары.СуммаБонусныхБалловКСписанию`` when
  ``ИспользоватьОплатуБонуснымиБаллами`` — an ``Expense`` at the start of the receipt's day with
  ``Начислено = КСписанию``; nothing for an anonymous, deferred or archived cheque.
* ``НачислениеИСписаниеБонусныхБаллов`` (its ManagerModule): ``Начисление`` rows a ``Receipt`` at the start of
  ``Date`` + the deferral (``ПериодОтсрочкиНачалаДействия`` × count), plus the expiry schedule at
  ``ДатаОкончанияСрокаДействия`` (or activation + ``ПериодДействия`` × count); ``Списание`` rows an ``Expense`` at
  the start of ``Date``; grouped by dimensions, period and kind.
* Розница 2 ``ЧекККМ``: redemption is an ``Оплата`` row of a payment kind of type ``Бонусы``
  (``КоличествоБонусов``), accruals come from ``БонусныеБаллыКНачислению``; the holder is ``ДисконтнаяКарта``.
* Returns (УТ ``ЧекККМВозврат``, Розница ``ВидОперации`` = ``Возврат``) mirror the sale [U — the sandbox's
  reading]: refunded points come back as a ``Receipt`` with ``Начислено = КСписанию``, cancelled accruals leave
  as ``Expense`` rows.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from connector.sandbox.onec.wire import EMPTY_DATE, EMPTY_GUID, Int64

if TYPE_CHECKING:
    from connector.sandbox.onec.base import OneCInfobase

__all__ = ["add_period", "movements"]

_ZERO = Decimal(0)
_PROGRAMS = "Catalog_БонусныеПрограммыЛояльности"


class _Move(NamedTuple):
    kind: str  # Receipt | Expense
    period: datetime
    holder: str  # Партнер (УТ) or ДисконтнаяКарта (Розница)
    program: str
    accrued: Decimal
    to_write_off: Decimal


def movements(base: OneCInfobase, entity_set: str, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The register records posting ``row`` writes, numbered and typed as ``_RecordType`` rows."""
    handler = _HANDLERS.get((base.flavour, entity_set))
    if handler is None:
        return []
    return _records(base, entity_set, row["Ref_Key"], handler(base, row))


def add_period(moment: datetime, periodicity: str, count: int) -> datetime:
    """Add ``count`` periods of a 1C ``Периодичность`` (``День``, ``Неделя``, …, ``Год``) like ДОБАВИТЬКДАТЕ."""
    days = {"День": 1, "Неделя": 7, "Декада": 10}.get(periodicity)
    if days is not None:
        return moment + timedelta(days=days * count)
    months = {"Месяц": 1, "Квартал": 3, "Полугодие": 6, "Год": 12}.get(periodicity)
    if months is None:
        return moment
    index = moment.month - 1 + months * count
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0)


def _default_program(base: OneCInfobase) -> str:
    for program in base.find(_PROGRAMS, DeletionMark=False):
        return str(program["Ref_Key"])
    return EMPTY_GUID


def _accruals(
    base: OneCInfobase, row: dict[str, Any], section: str, holder: str, cancel: bool
) -> list[_Move]:
    moves = []
    for line in row[section]:
        points = line["СуммаБонусныхБаллов"]
        if not points:
            continue
        program = _program(base, line["БонуснаяПрограммаЛояльности_Key"])
        accrued_at = line["ДатаНачисления"] if line["ДатаНачисления"] != EMPTY_DATE else row["Date"]
        if cancel:
            moves.append(_Move("Expense", _day(row["Date"]), holder, program, points, _ZERO))
        else:
            moves.append(_Move("Receipt", accrued_at, holder, program, points, _ZERO))
        if line["ДатаСписания"] != EMPTY_DATE:
            kind = "Expense" if cancel else "Receipt"
            moves.append(_Move(kind, line["ДатаСписания"], holder, program, _ZERO, points))
    return moves


def _program(base: OneCInfobase, program: str) -> str:
    return program if program != EMPTY_GUID else _default_program(base)


def _is_anonymous_partner(base: OneCInfobase, partner: str) -> bool:
    if partner == EMPTY_GUID:
        return True
    found = base.lookup("Catalog_Партнеры", partner)
    return found is not None and found["PredefinedDataName"] == "РозничныйПокупатель"


def _ut_receipt(base: OneCInfobase, row: dict[str, Any]) -> list[_Move]:
    partner = row["Партнер_Key"]
    if _is_anonymous_partner(base, partner) or row["Архивный"]:
        return []
    if row["Статус"] in ("Отложен", "ТоварЗарезервирован"):
        return []
    moves = []
    spent = sum((line["СуммаБонусныхБалловКСписанию"] for line in row["Товары"]), _ZERO)
    if row["ИспользоватьОплатуБонуснымиБаллами"] and spent > 0:
        bonus_rows = row["БонусныеБаллы"]
        program = _program(
            base, bonus_rows[0]["БонуснаяПрограммаЛояльности_Key"] if bonus_rows else EMPTY_GUID
        )
        moves.append(_Move("Expense", _day(row["Date"]), partner, program, spent, spent))
    return moves + _accruals(base, row, "БонусныеБаллы", partner, cancel=False)


def _ut_return(base: OneCInfobase, row: dict[str, Any]) -> list[_Move]:
    partner = row["Партнер_Key"]
    if _is_anonymous_partner(base, partner) or row["Архивный"]:
        return []
    moves = []
    refund = row["СуммаБонусныхБалловКВозврату"]
    if refund > 0:
        moves.append(_Move("Receipt", _day(row["Date"]), partner, _default_program(base), refund, refund))
    return moves + _accruals(base, row, "БонусныеБаллы", partner, cancel=True)


def _bonus_payments(base: OneCInfobase, row: dict[str, Any]) -> list[tuple[str, Decimal]]:
    kinds = {kind["Ref_Key"]: kind for kind in base.find("Catalog_ВидыОплатЧекаККМ", ТипОплаты="Бонусы")}
    payments = []
    for line in row["Оплата"]:
        kind = kinds.get(line["ВидОплаты_Key"])
        if kind is None:
            continue
        points = line["КоличествоБонусов"] or line["Сумма"]
        program = line["БонуснаяПрограммаЛояльности_Key"]
        if program == EMPTY_GUID:
            program = _program(base, kind["БонуснаяПрограммаЛояльности_Key"])
        if points > 0:
            payments.append((program, points))
    return payments


def _retail_receipt(base: OneCInfobase, row: dict[str, Any]) -> list[_Move]:
    card = row["ДисконтнаяКарта_Key"]
    if card == EMPTY_GUID or row["СтатусЧекаККМ"] in ("Отложенный", "Аннулированный", "Архивный"):
        return []
    is_return = row["ВидОперации"] == "Возврат"
    day = _day(row["Date"])
    moves = [
        _Move("Receipt" if is_return else "Expense", day, card, program, points, points)
        for program, points in _bonus_payments(base, row)
    ]
    return moves + _accruals(base, row, "БонусныеБаллыКНачислению", card, cancel=is_return)


def _manual(base: OneCInfobase, row: dict[str, Any]) -> list[_Move]:
    holder_field = "Партнер_Key" if base.flavour == "ut" else "ДисконтнаяКарта_Key"
    program = row["БонуснаяПрограммаЛояльности_Key"]
    activation = _day(
        add_period(
            row["Date"], row["ПериодОтсрочкиНачалаДействия"], row["КоличествоПериодовОтсрочкиНачалаДействия"]
        )
    )
    expiry: datetime | None = None
    if row["ДатаОкончанияСрокаДействия"] != EMPTY_DATE:
        expiry = _day(row["ДатаОкончанияСрокаДействия"])
    elif row["КоличествоПериодовДействия"] > 0:
        expiry = _day(add_period(activation, row["ПериодДействия"], row["КоличествоПериодовДействия"]))
    moves = []
    for line in row["Начисление"]:
        moves.append(_Move("Receipt", activation, line[holder_field], program, line["Баллы"], _ZERO))
        if expiry is not None:
            moves.append(_Move("Receipt", expiry, line[holder_field], program, _ZERO, line["Баллы"]))
    for line in row["Списание"]:
        moves.append(
            _Move("Expense", _day(row["Date"]), line[holder_field], program, line["Баллы"], line["Баллы"])
        )
    return _grouped(moves)


def _grouped(moves: list[_Move]) -> list[_Move]:
    sums: dict[tuple[str, datetime, str, str], list[Decimal]] = {}
    for move in moves:
        key = (move.kind, move.period, move.holder, move.program)
        total = sums.setdefault(key, [_ZERO, _ZERO])
        total[0] += move.accrued
        total[1] += move.to_write_off
    return [_Move(*key, accrued, to_write_off) for key, (accrued, to_write_off) in sums.items()]


def _records(base: OneCInfobase, entity_set: str, recorder: str, moves: list[_Move]) -> list[dict[str, Any]]:
    records = []
    for number, move in enumerate(moves, start=1):
        record: dict[str, Any] = {
            "Recorder": recorder,
            "Recorder_Type": f"StandardODATA.{entity_set}",
            "LineNumber": Int64(number),
            "Period": move.period,
            "Active": True,
            "RecordType": move.kind,
        }
        if base.flavour == "ut":
            record |= {"БонуснаяПрограммаЛояльности_Key": move.program, "Партнер_Key": move.holder}
        else:
            record |= {"ДисконтнаяКарта_Key": move.holder, "БонуснаяПрограммаЛояльности_Key": move.program}
        record |= {"Начислено": move.accrued, "КСписанию": move.to_write_off}
        if base.flavour == "ut":
            record["Сторно"] = False
        else:
            first = move.period if move.kind == "Receipt" and move.accrued else EMPTY_DATE
            record["ДатаПервоначальногоНачисления"] = first
        records.append(record)
    return records


_HANDLERS = {
    ("ut", "Document_ЧекККМ"): _ut_receipt,
    ("ut", "Document_ЧекККМВозврат"): _ut_return,
    ("ut", "Document_НачислениеИСписаниеБонусныхБаллов"): _manual,
    ("retail", "Document_ЧекККМ"): _retail_receipt,
    ("retail", "Document_НачислениеИСписаниеБонусныхБаллов"): _manual,
}
