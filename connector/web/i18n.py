"""The console's one message catalogue and the Russian (default) and English formats of dates, money and points.

Messages are gettext catalogues in ``connector/web/locale/<lang>/LC_MESSAGES/messages.po``, shipped as package
data and read at run time with Babel (no compile step, so a non-editable install works as it is). Message ids
are English; the English catalogue may leave a message untranslated and the id is shown.

Example:
    >>> t = translator("ru")
    >>> t.gettext("Failures")
    'Сбои'
    >>> t.money(Decimal("1234.5"))
    '1\\xa0234,50\\xa0₽'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Final
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

__all__ = ["DEFAULT_LOCALE", "LOCALES", "Translator", "catalogue", "translator"]

LOCALES: Final = ("ru", "en")
DEFAULT_LOCALE: Final = "ru"
_DATE_PATTERNS: Final = {"ru": "dd.MM.yyyy", "en": "d MMM yyyy"}
_DATETIME_PATTERNS: Final = {"ru": "dd.MM.yyyy HH:mm", "en": "d MMM yyyy HH:mm"}
_NBSP: Final = "\xa0"


@cache
def catalogue(locale: str) -> dict[str, str]:
    """The translated messages of ``locale`` (msgid → msgstr, untranslated entries left out).

    Raises:
        ValueError: ``locale`` is not one of :data:`LOCALES`.
    """
    if locale not in LOCALES:
        raise ValueError(f"unknown locale {locale!r}; known: {', '.join(LOCALES)}")
    path = resources.files("connector.web").joinpath("locale", locale, "LC_MESSAGES", "messages.po")
    with path.open("rb") as handle:
        parsed = read_po(handle, locale=locale)
    return {str(m.id): str(m.string) for m in parsed if m.id and isinstance(m.string, str) and m.string}


@dataclass(frozen=True)
class Translator:
    """Messages and formats of one locale; templates receive it as ``t`` and its ``gettext`` as ``_``.

    Attributes:
        locale: ``ru`` or ``en``.
        timezone: IANA zone in which times are shown (the connector's ``timezone``).
    """

    locale: str
    timezone: str = "Europe/Moscow"

    def gettext(self, message: str, **values: object) -> str:
        """The message in this locale, with ``{name}`` placeholders filled from ``values``."""
        text = catalogue(self.locale).get(message, message)
        return text.format(**values) if values else text

    def date(self, value: date | None) -> str:
        """``19.11.2026`` (ru) or ``19 Nov 2026`` (en); empty for None."""
        if value is None:
            return ""
        if isinstance(value, datetime):
            value = value.astimezone(_zone(self.timezone)).date()
        return format_date(value, _DATE_PATTERNS[self.locale], locale=self.locale)

    def datetime(self, value: datetime | None) -> str:
        """``19.11.2026 13:05`` in the connector's zone; empty for None."""
        if value is None:
            return ""
        return format_datetime(
            value, _DATETIME_PATTERNS[self.locale], tzinfo=_zone(self.timezone), locale=self.locale
        )

    def number(self, value: Decimal | None, places: int = 2) -> str:
        """A decimal with grouping: ``1 234,50`` (ru) or ``1,234.50`` (en); empty for None."""
        if value is None:
            return ""
        pattern = "#,##0" + ("." + "0" * places if places else "")
        return format_decimal(value, format=pattern, locale=self.locale, decimal_quantization=True)

    def money(self, value: Decimal | None) -> str:
        """Roubles: ``1 234,50 ₽``; empty for None."""
        return "" if value is None else f"{self.number(value)}{_NBSP}₽"

    def points(self, value: Decimal | None) -> str:
        """Points, signed when negative: ``-150,00``; empty for None."""
        return self.number(value)


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def translator(locale: str | None, timezone: str = "Europe/Moscow") -> Translator:
    """The translator of ``locale``, falling back to Russian for an unknown or missing one."""
    return Translator(locale if locale in LOCALES else DEFAULT_LOCALE, timezone)
