"""Structured logging (structlog) with personal data and secrets masked before anything is written.

Phones keep their country code and last two digits (``+7********67``); values under keys that look like secrets
(``token``, ``password``, ``api_key``, ``authorization`` …) become ``***``; ``Bearer …`` and ``apiKey=…`` inside
strings are masked too. Every log line passes :func:`mask_event`, so an adapter cannot leak by accident.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger", "mask_event", "mask_phone", "mask_phones", "mask_text"]

_SECRET_KEYS = re.compile(r"(token|password|passwd|secret|api[_-]?key|authorization|cookie|signature)", re.I)
_PHONE = re.compile(r"(?<![\w+])(\+?[78])[\s\-()]*(\d{3})[\s\-()]*(\d{3})[\s\-]*(\d{2})[\s\-]*(\d{2})(?!\d)")
_INLINE_SECRET = re.compile(
    r"((?:bearer|basic)\s+|(?:token|password|api_?key|apikey|x-api-key|key)[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;]+",
    re.I,
)


def mask_phone(phone: str) -> str:
    """Mask a phone for logs, keeping the country code and the last two digits.

    Example:
        >>> mask_phone("+79161234567")
        '+7********67'
    """
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 4:
        return "***"
    return f"+{digits[0]}{'*' * (len(digits) - 3)}{digits[-2:]}"


def mask_text(text: str) -> str:
    """Mask phone numbers and inline credentials inside free text (URLs, bodies, messages)."""
    return mask_phones(_INLINE_SECRET.sub(lambda m: m.group(1) + "***", text))


def mask_phones(text: str) -> str:
    """Mask only the phone numbers inside text: for an error's message, whose evidence (``key=fields.amount``,
    an idempotency key) must stay readable.

    Example:
        >>> mask_phones("no customer +7 916 123-45-67 (key=phone)")
        'no customer +7********67 (key=phone)'
    """
    return _PHONE.sub(lambda m: mask_phone("".join(m.groups())), text)


def _mask_value(key: str, value: Any) -> Any:
    if _SECRET_KEYS.search(key):
        return "***"
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(key, item) for item in value]
    return value


def mask_event(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secrets and phones in every field of the event."""
    for key in list(event_dict):
        event_dict[key] = _mask_value(key, event_dict[key])
    return event_dict


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is now (tests and daemons swap it), not the stream at configure time."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "WARNING", *, json_output: bool = False) -> None:
    """Route structlog to stderr at ``level``, masking every event; call once per process."""
    logging.basicConfig(stream=_CurrentStderr(), level=level.upper(), format="%(message)s", force=True)
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A structlog logger bound to ``name`` (module or system)."""
    return structlog.get_logger(name)
