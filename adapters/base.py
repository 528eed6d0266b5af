"""What every system adapter offers the sync engine and the reconciliation: one small seam.

Adapters read **raw** payloads (the mapping engine turns them into canonical objects, DESIGN §1) and write
canonical objects in their system's wire format. Every write carries an idempotency key made by the caller
(``{target}:{posting key}`` or ``{target}:{source system}:{source doc id}:{kind}``) that the adapter keeps in the
target (1C ``Комментарий``, CRM ``comment``) and looks up before creating, so a retried or repeated write finds
the first one instead of creating a second.

Adapters are registered explicitly in :data:`ADAPTERS` (name → ``module:Class``) and built from a configured
system by :func:`build_adapter`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import requests

from adapters.jsonwire import JSONObject, project_value
from connector.config import SystemConfig
from connector.errors import ConfigError

__all__ = [
    "ADAPTERS",
    "DocumentSource",
    "DocumentTarget",
    "LedgerSource",
    "LedgerTarget",
    "RawRecord",
    "WriteResult",
    "build_adapter",
]


class RawRecord:
    """One raw payload as a system returned it, with what the journal needs to deduplicate it.

    A payload read as text (Evotor's pages: a :class:`~adapters.jsonwire.JSONObject`) is decoded only when
    ``payload`` is first read; a pull that journals it raw reads a few members instead (:meth:`project`).
    Records are immutable and compare by everything but ``text``.

    Attributes:
        system: the configured system name (``evotor``, ``onec`` …).
        entity: what the payload is in that system (``Document_ЧекККМ``, ``SELL``, ``bonus_operation`` …); the
            mapping engine's ``entity`` argument.
        id: the source id (Evotor document uuid, 1C ``Ref_Key``, CRM operation id).
        version: the source's version (1C ``DataVersion``) or None when the system has none.
        store: the canonical store id, when the adapter knows it.
        payload: the decoded JSON (numbers as ``Decimal``).
        text: the payload's JSON text exactly as the system sent it, where the adapter reads it per document
            (Evotor's pages, one document by id); the journal keeps it as the raw form and hashes it for the
            version.
    """

    __slots__ = ("_json", "_payload", "entity", "id", "store", "system", "version")

    system: str
    entity: str
    id: str
    version: str | None
    store: str | None
    _json: JSONObject | None
    _payload: dict[str, Any] | None

    def __init__(
        self,
        system: str,
        entity: str,
        id: str,
        version: str | None,
        store: str | None,
        payload: dict[str, Any] | JSONObject,
        text: str | None = None,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "system", system)
        set_(self, "entity", entity)
        set_(self, "id", id)
        set_(self, "version", version)
        set_(self, "store", store)
        if isinstance(payload, JSONObject):
            set_(self, "_json", payload)
            set_(self, "_payload", None)
        else:
            set_(self, "_json", JSONObject(text) if text is not None else None)
            set_(self, "_payload", payload)

    @property
    def payload(self) -> dict[str, Any]:
        """The decoded payload (decoded from the text on first use)."""
        payload = self._payload
        if payload is None:
            assert self._json is not None
            payload = self._json.decode()
            object.__setattr__(self, "_payload", payload)
        return payload

    @property
    def text(self) -> str | None:
        """The payload's JSON text as sent, where the adapter kept it."""
        return self._json.text if self._json is not None else None

    @property
    def data(self) -> bytes | None:
        """The payload's JSON as the UTF-8 bytes sent, where the adapter kept it (:attr:`text`, encoded)."""
        return self._json.data if self._json is not None else None

    def project(self, names: Iterable[str], tested: Iterable[str] = ()) -> dict[str, Any]:
        """Only the named top-level members of the payload, and those in ``tested`` as their truth (see
        :meth:`JSONObject.project <adapters.jsonwire.JSONObject.project>`); the rest is not decoded when it need
        not be."""
        if self._json is not None:
            return self._json.project(names, tested)
        return project_value(self.payload, names, tested)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a RawRecord is immutable: cannot set {name}")

    def _key(self) -> tuple[Any, ...]:
        return (self.system, self.entity, self.id, self.version, self.store, self.payload)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawRecord) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # the payload is a dict, as the dataclass was

    def __repr__(self) -> str:
        return (
            f"RawRecord(system={self.system!r}, entity={self.entity!r}, id={self.id!r}, "
            f"version={self.version!r}, store={self.store!r})"
        )


@dataclass(frozen=True)
class WriteResult:
    """The outcome of an idempotent write: the target's id for it, and whether this call created it."""

    key: str
    remote_id: str
    created: bool


@runtime_checkable
class DocumentSource(Protocol):
    """A system that holds receipts: Evotor, 1C."""

    system: str

    def stores(self) -> list[str]:
        """Canonical ids of the stores the system holds."""
        ...

    def documents(self, store: str, since: datetime, until: datetime) -> Iterator[RawRecord]:
        """Raw sales and returns of ``store`` with a time in ``[since, until)``, each once."""
        ...


@runtime_checkable
class DocumentTarget(Protocol):
    """A system receipts are written into: 1C."""

    system: str

    def find_documents(self, keys: Iterable[str]) -> dict[str, str]:
        """Which of these idempotency keys already have a document (key → remote id); one batched lookup."""
        ...

    def write_document(self, document: Any, key: str) -> WriteResult:
        """Create (if the key is not there yet) and post the canonical sale or return."""
        ...


@runtime_checkable
class LedgerSource(Protocol):
    """A system that holds a bonus ledger: the CRM, 1C's ``БонусныеБаллы``."""

    system: str

    def operations(self, since: datetime, until: datetime) -> Iterator[RawRecord]:
        """Raw ledger operations with a time in ``[since, until)``."""
        ...


@runtime_checkable
class LedgerTarget(Protocol):
    """A system postings are written into: the CRM (credit/charge), 1C (bonus documents)."""

    system: str

    def find_postings(self, keys: Iterable[str]) -> dict[str, str]:
        """Which of these idempotency keys already have an operation (key → remote id); one batched lookup."""
        ...

    def write_posting(self, posting: Any, key: str) -> WriteResult:
        """Write the canonical posting unless an operation with ``key`` exists; never twice."""
        ...


# Adapter name (SystemConfig.adapter) -> "module:Class"; each class takes (name, SystemConfig, session=None).
ADAPTERS: dict[str, str] = {
    "evotor": "adapters.evotor:EvotorAdapter",
    "onec": "adapters.onec:OneCAdapter",
    "crm": "adapters.crm:CrmAdapter",
}


def build_adapter(name: str, config: SystemConfig, *, session: requests.Session | None = None) -> Any:
    """Build the adapter for the configured system ``name``.

    Example:
        >>> evotor = build_adapter("evotor", config.systems["evotor"])  # doctest: +SKIP
    """
    target = ADAPTERS.get(config.adapter)
    if target is None:
        raise ConfigError(f"systems.{name}.adapter: unknown adapter {config.adapter!r}")
    module_name, class_name = target.split(":")
    adapter_class = getattr(importlib.import_module(module_name), class_name)
    return adapter_class(name, config, session=session)
