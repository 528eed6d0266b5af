"""The one error tree of loyalty-connector.

Grouped by what the caller should do with the error::

    ConnectorError                  anything the connector raises on purpose; the CLI prints it in one line, exit 2
    ├── ConfigError                 connector.yaml, a program or a mapping file is wrong: a person must edit it
    ├── InputError                  a file or document given to a command is unreadable or invalid
    │   └── MappingError            a raw payload from a system cannot become a canonical document (parked)
    ├── RemoteError                 a call to another system failed; carries system, method, path, status
    │   ├── RetriableRemoteError    worth retrying: connection reset, timeout, 408, 5xx
    │   │   └── RateLimitedError    429 / budget exceeded, with the wait the system asked for
    │   └── FatalRemoteError        retrying will not help
    │       ├── RemoteConfigError   401/403/400: credentials, URL or request shape must be fixed
    │       └── RemoteNotFoundError 404 / 1C code 9: the object is not there
    ├── LedgerError                 the postings ledger refused an operation
    │   └── IdempotencyConflict     same idempotency key, different payload: never replayed silently
    └── StoreError                  the state database cannot be reached, migrated or locked

Every error carries its evidence as keyword context (``system``, ``document``, ``field``, ``request`` …) so that
the one-line message says where to look. Secrets never go into an error: callers pass paths, not URLs with
credentials, and the HTTP policy masks tokens before building a ``RemoteError``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "ConnectorError",
    "FatalRemoteError",
    "IdempotencyConflict",
    "InputError",
    "LedgerError",
    "MappingError",
    "RateLimitedError",
    "RemoteConfigError",
    "RemoteError",
    "RemoteNotFoundError",
    "RetriableRemoteError",
    "StoreError",
]


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose.

    Args:
        message: what went wrong, in words an operator understands.
        **context: the evidence (system, document, field, request, file, …); rendered after the message.

    Example:
        >>> str(MappingError("not a decimal", system="evotor", document="d-1", field="items[0].sum"))
        'not a decimal (system=evotor, document=d-1, field=items[0].sum)'
    """

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = {key: value for key, value in context.items() if value is not None}

    def __str__(self) -> str:
        if not self.context:
            return self.message
        evidence = ", ".join(f"{key}={value}" for key, value in self.context.items())
        return f"{self.message} ({evidence})"


class ConfigError(ConnectorError):
    """A configuration, program or mapping file is invalid; names the file and the key path."""


class InputError(ConnectorError):
    """A file or document handed to a command is unreadable or does not validate; names the field path."""


class MappingError(InputError):
    """A raw payload cannot be mapped to a canonical document; names system, document and field path."""


class RemoteError(ConnectorError):
    """A request to another system failed.

    Context always includes ``system``, ``method`` and ``path``; ``status`` and a masked ``body`` excerpt when a
    response arrived.
    """

    @property
    def status(self) -> int | None:
        status = self.context.get("status")
        return int(status) if status is not None else None


class RetriableRemoteError(RemoteError):
    """A failure that a later attempt may not repeat (connection error, timeout, 408, 5xx)."""


class RateLimitedError(RetriableRemoteError):
    """The system refused for rate; ``retry_after`` is the wait it asked for, in seconds, if it said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **context: Any) -> None:
        super().__init__(message, retry_after=retry_after, **context)
        self.retry_after = retry_after


class FatalRemoteError(RemoteError):
    """A failure that retrying cannot fix."""


class RemoteConfigError(FatalRemoteError):
    """Credentials, URL or request shape are wrong (400, 401, 403): a person must fix the configuration."""


class RemoteNotFoundError(FatalRemoteError):
    """The object asked for does not exist in the remote system (404, 1C code 9)."""


class LedgerError(ConnectorError):
    """The postings ledger refused an operation."""


class IdempotencyConflict(LedgerError):  # noqa: N818 - the name the design and the issue use
    """The same idempotency key was used with a different payload; both payloads are in the context."""


class StoreError(ConnectorError):
    """The state database cannot be reached, migrated or locked."""
