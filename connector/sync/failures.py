"""What a failure means for a document: transient (retried with backoff) or permanent (parked for a person).

The classification is a table, read top to bottom: the first error class an error is an instance of decides. A
transient item is retried at ``backoff × factor^(attempts−1)`` (capped) and becomes permanent once it has
failed ``max_attempts`` times, so nothing retries forever and nothing is forgotten.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Literal

from connector.config import SyncSettings, parse_duration
from connector.errors import (
    ConfigError,
    ConnectorError,
    FatalRemoteError,
    InputError,
    LedgerError,
    RetriableRemoteError,
    StoreError,
)
from connector.logs import mask_text

__all__ = ["CLASSIFICATION", "ErrorKind", "WaitingError", "classify", "excerpt", "next_attempt_at"]

ErrorKind = Literal["transient", "permanent"]
_EXCERPT_CHARS = 600


class WaitingError(ConnectorError):
    """A document cannot go yet, but will: e.g. a return whose original sale is not journaled or written."""


CLASSIFICATION: tuple[tuple[type[BaseException], ErrorKind], ...] = (
    (WaitingError, "transient"),
    (RetriableRemoteError, "transient"),  # connection errors, timeouts, 429, 5xx the HTTP policy gave up on
    (StoreError, "transient"),  # the state database was locked or unreachable for a moment
    (FatalRemoteError, "permanent"),  # 400/401/403/404, or 1C stored something else than was sent
    (LedgerError, "permanent"),  # an idempotency conflict: the same key with another payload
    (ConfigError, "permanent"),
    (InputError, "permanent"),  # MappingError included: the payload must be fixed at the source
    (Exception, "permanent"),  # a bug: parked with its message rather than retried blindly
)


def classify(error: BaseException) -> ErrorKind:
    """Transient or permanent, by :data:`CLASSIFICATION`.

    Example:
        >>> classify(WaitingError("original sale not journaled yet"))
        'transient'
    """
    for error_class, kind in CLASSIFICATION:
        if isinstance(error, error_class):
            return kind
    return "permanent"


def next_attempt_at(settings: SyncSettings, attempts: int, now: datetime) -> datetime | None:
    """When a transient item that has failed ``attempts`` times is due again; None once it must be parked."""
    if attempts >= settings.max_attempts:
        return None
    base = parse_duration(settings.backoff).total_seconds()
    cap = parse_duration(settings.max_backoff).total_seconds()
    return now + timedelta(seconds=min(cap, base * settings.backoff_factor ** max(0, attempts - 1)))


def excerpt(payload: Any) -> str:
    """The first characters of a payload as JSON, phones and tokens masked, for a failed item."""
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, default=str)
    return mask_text(text[: _EXCERPT_CHARS * 2])[:_EXCERPT_CHARS]
