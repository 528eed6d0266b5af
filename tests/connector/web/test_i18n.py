"""One message catalogue for every string of the console; dates and money the Russian way."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import get_args

import pytest

from connector.discrepancies import DISCREPANCY_KINDS
from connector.model import Posting
from connector.store.tables import DISCREPANCY_STATES, ERROR_KINDS, FAILED_ITEM_STATES, USER_ROLES
from connector.web.i18n import LOCALES, catalogue, translator

WEB = Path(__file__).resolve().parents[3] / "connector" / "web"
_LITERAL = re.compile(r"""_\("((?:[^"\\]|\\.)+)"\)""")
# Message ids the Python code passes to templates (login errors, flash messages).
_FROM_CODE = re.compile(r"""_login_page\(request, "([^"]+)\"""")
_FLASH = re.compile(r"""[?&]msg=(\w+)|_back\(request, form, .*, "(\w+)"\)$""", re.MULTILINE)


def _template_ids() -> set[str]:
    found: set[str] = set()
    for path in (WEB / "templates").glob("*.html"):
        found |= set(_LITERAL.findall(path.read_text(encoding="utf-8")))
    return found


def _code_ids() -> set[str]:
    found: set[str] = set()
    for path in (WEB / "console").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found |= set(_FROM_CODE.findall(text))
        found |= {f"msg:{a or b}" for a, b in _FLASH.findall(text)}
    return found


def test_money_dates_and_points_are_formatted_the_russian_way() -> None:
    t = translator("ru")
    assert t.money(Decimal("1234.5")) == "1\xa0234,50\xa0₽"
    assert t.money(Decimal("-61")) == "-61,00\xa0₽"
    assert t.points(Decimal("1000000.25")) == "1\xa0000\xa0000,25"
    assert t.date(date(2026, 11, 19)) == "19.11.2026"
    # 23:30 UTC is already the next day in Moscow.
    assert t.date(datetime(2026, 11, 18, 23, 30, tzinfo=UTC)) == "19.11.2026"
    assert t.datetime(datetime(2026, 11, 19, 10, 5, tzinfo=UTC)) == "19.11.2026 13:05"


def test_english_formats_and_fallback() -> None:
    t = translator("en")
    assert t.money(Decimal("1234.5")) == "1,234.50\xa0₽"
    assert t.date(date(2026, 11, 19)) == "19 Nov 2026"
    assert t.gettext("Failures") == "Failures"
    assert translator("de").locale == "ru", "an unknown language falls back to Russian"
    assert translator(None).gettext("Failures") == "Сбои"


def test_every_template_and_code_message_is_translated_to_russian() -> None:
    ru = catalogue("ru")
    wanted = _template_ids() | _code_ids()
    assert len(wanted) > 100
    assert sorted(wanted - set(ru)) == []


def test_every_kind_state_and_role_shown_is_translated() -> None:
    ru = catalogue("ru")
    kinds = get_args(Posting.model_fields["kind"].annotation)
    wanted = (
        {f"kind:{k}" for k in DISCREPANCY_KINDS}
        | {f"posting:{k}" for k in kinds}
        | set(FAILED_ITEM_STATES + ERROR_KINDS + USER_ROLES + DISCREPANCY_STATES)
    )
    assert sorted(wanted - set(ru)) == []


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogues_load_from_package_data(locale: str) -> None:
    messages = catalogue(locale)
    assert messages["msg:retried"]
    assert translator(locale).gettext("msg:retried") == messages["msg:retried"]
