"""The CRM loyalty ledger: idempotent credits and charges, the operations feed, accounts and balances.

:class:`CrmAdapter` is the :class:`~adapters.base.LedgerTarget` / :class:`~adapters.base.LedgerSource` the sync
engine and the reconciliation use. What is the same for every CRM lives here — which postings are credits and
which are charges, the index of keys already written, lookup before write, resolving a write whose outcome is
unknown — and what differs is a :class:`CrmBackend` picked by ``preset``:

* ``retailcrm`` (default): RetailCRM (Simla) API v5 loyalty (``reference/loyalty-platforms.md`` §2, §6, §8), in
  :mod:`adapters.crm_retailcrm`;
* ``generic``: any JSON REST CRM described entirely in ``options`` (endpoints, auth scheme, paginator, field
  paths), in :mod:`adapters.crm_generic`.

Idempotency (DESIGN §4): the caller's key (``crm:<posting key>``) travels in the operation's ``comment`` (or the
field the generic definition names). Lookups are batched: the first :meth:`CrmAdapter.find_postings` reads the
whole operations feed once and indexes it by key; the adapter adds what it writes to the index and re-reads only
the tail of the feed when the index is older than ``options.index_max_age`` seconds (default 300). So writing N
postings costs N requests plus a few pages, not 2N. A write whose outcome is unknown (timeout or 5xx after the
body was sent, see :func:`~adapters.http.outcome_unknown`) is looked up in the account's recent history before
it is sent again — a lost answer never becomes a second credit.

Example::

    crm = CrmAdapter("crm", config.systems["crm"])
    existing = crm.find_postings(key for key, _ in batch)          # one pass over the feed
    for key, posting in batch:
        result = crm.write_posting(posting, key)                  # WriteResult(key, remote_id, created)
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

import requests
from pydantic import ValidationError

from adapters.base import RawRecord, WriteResult
from adapters.http import HttpClient, HttpPolicy, RateBudget, Sleep, SystemHttpConfig, outcome_unknown
from connector.config import SystemConfig
from connector.errors import ConfigError, FatalRemoteError, InputError, RemoteError
from connector.logs import get_logger, mask_phone
from connector.model import Posting, normalize_phone

__all__ = [
    "CHARGE_KINDS",
    "CREDIT_KINDS",
    "PRESETS",
    "CrmAccount",
    "CrmAdapter",
    "CrmBackend",
    "CrmWrite",
    "Direction",
    "direction_of",
    "http_config",
    "points_text",
]

Direction = Literal["credit", "charge"]
CREDIT_KINDS = frozenset({"accrual", "redemption_refund", "welcome", "birthday", "referral"})
"""Posting kinds that add points; an ``adjustment`` adds when its amount is positive."""
CHARGE_KINDS = frozenset({"redemption", "accrual_reversal", "expiry"})
"""Posting kinds that take points away; an ``adjustment`` takes when its amount is negative."""

PRESETS: Mapping[str, str] = {
    "retailcrm": "adapters.crm_retailcrm:RetailCrmBackend",
    "generic": "adapters.crm_generic:GenericCrmBackend",
}
"""``preset`` → ``module:Class`` of its backend; each takes ``(name, SystemConfig, HttpClient factory)``."""

_CENTS = Decimal("0.01")
_log = get_logger("adapters.crm")


def direction_of(posting: Posting) -> Direction:
    """Whether ``posting`` is a credit or a charge in the CRM.

    Raises:
        InputError: a zero amount (a CRM refuses it, and it moves nothing).
    """
    if posting.amount == 0:
        raise InputError("a posting of 0 points cannot be written", document=posting.key, field="amount")
    if posting.kind in CREDIT_KINDS:
        return "credit"
    if posting.kind in CHARGE_KINDS:
        return "charge"
    return "credit" if posting.amount > 0 else "charge"


def points_text(amount: Decimal) -> str:
    """Points as the CRM wants them: absolute, two decimals, no exponent (``Decimal("-50")`` → ``"50.00"``)."""
    return f"{abs(amount).quantize(_CENTS, rounding=ROUND_HALF_UP):f}"


def http_config(name: str, config: SystemConfig, **policy: Any) -> SystemHttpConfig:
    """The system's HTTP settings: timeouts and budget from the config, ``policy`` defaults, then ``options.http``.

    Raises:
        ConfigError: ``options.http`` is not a mapping of :class:`~adapters.http.HttpPolicy` fields.
    """
    overrides = config.options.get("http") or {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"systems.{name}.options.http: must be a mapping of HTTP policy settings")
    rate = RateBudget(**config.rate_limit.model_dump()) if config.rate_limit else None
    settings = {"connect_timeout": config.timeouts.connect, "read_timeout": config.timeouts.read, "rate": rate,
                **policy, **overrides}  # fmt: skip
    try:
        return SystemHttpConfig(system=name, base_url=config.base_url, policy=HttpPolicy(**settings))
    except ValidationError as exc:
        raise ConfigError(f"systems.{name}.options.http: {exc.errors()[0]['msg']}") from None


@dataclass(frozen=True)
class CrmAccount:
    """A loyalty account: the CRM's id, its phone (E.164) and card, and the balance when the CRM gave it."""

    id: str
    phone: str | None
    card: str | None
    balance: Decimal | None = None


@dataclass(frozen=True)
class CrmWrite:
    """One credit or charge as a backend sends it (dates in the CRM's zone)."""

    key: str
    direction: Direction
    account: CrmAccount
    amount: str
    activation: date | None
    expiry: date | None
    posting: Posting


class CrmBackend(Protocol):
    """What a CRM preset implements; :class:`CrmAdapter` adds caching, indexing and idempotency on top."""

    entity: str
    mapping: str | None

    def find_account(self, phone: str | None, card: str | None) -> CrmAccount | None:
        """The account with this phone (E.164) or card, or ``None``; one request."""
        ...

    def all_accounts(self) -> Iterator[CrmAccount]:
        """Every account, page by page (for a catalog or a preload)."""
        ...

    def send(self, write: CrmWrite) -> str | None:
        """POST the credit or charge; the CRM's operation id when its answer carries one."""
        ...

    def operations(self, resume: bool) -> Iterator[dict[str, Any]]:
        """The operations feed to the end; ``resume`` = only from where the last full read ended (may repeat)."""
        ...

    def find_written(self, write: CrmWrite, since: datetime) -> str | None:
        """The id of an operation carrying ``write.key`` created after ``since``, looked up narrowly."""
        ...

    def operation_id(self, operation: Mapping[str, Any]) -> str:
        """The operation's id in the CRM."""
        ...

    def operation_key(self, operation: Mapping[str, Any]) -> str | None:
        """The idempotency key the operation carries, if any."""
        ...

    def operation_time(self, operation: Mapping[str, Any]) -> datetime:
        """When the operation was created (aware)."""
        ...

    def balance(self, account_id: str) -> Decimal:
        """The account's current balance."""
        ...


def _backend(name: str, config: SystemConfig, client: Callable[..., HttpClient]) -> CrmBackend:
    preset = config.preset or "retailcrm"
    target = PRESETS.get(preset)
    if target is None:
        raise ConfigError(
            f"systems.{name}.preset: unknown CRM preset {preset!r}; known: {', '.join(PRESETS)}"
        )
    module_name, class_name = target.split(":")
    backend: CrmBackend = getattr(importlib.import_module(module_name), class_name)(name, config, client)
    return backend


def _option(name: str, config: SystemConfig, key: str, default: float) -> float:
    value = config.options.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number < 0 or isinstance(value, bool):
        raise ConfigError(f"systems.{name}.options.{key}: must be a number of 0 or more, not {value!r}")
    return number


class CrmAdapter:
    """A CRM loyalty ledger: :class:`~adapters.base.LedgerTarget` and :class:`~adapters.base.LedgerSource`.

    Args:
        name: the configured system name.
        config: ``preset`` (``retailcrm`` | ``generic``), ``base_url``, ``api_key`` or ``token``, ``timezone`` (the
            CRM's zone), ``mapping``, and ``options``: ``http`` (policy overrides), ``index_max_age`` (seconds),
            ``unknown_outcome_lookback`` (minutes of history searched for a lost write, default 1440),
            ``preload_accounts`` (read every account once instead of one lookup per new customer), and the
            preset's own options.
        session: the HTTP session (``responses`` in tests, a plain session against the sandbox).
        sleep: how retries wait.
        clock: "now", for the index age and the unknown-outcome window.
    """

    def __init__(
        self, name: str, config: SystemConfig, *, session: requests.Session | None = None,
        sleep: Sleep | None = None, clock: Callable[[], datetime] | None = None,
    ) -> None:  # fmt: skip
        self.system = name
        self.config = config
        self.zone = ZoneInfo(config.timezone)
        self._clock = clock or (lambda: datetime.now(UTC))

        def client(http: SystemHttpConfig, auth: Any) -> HttpClient:
            return HttpClient(http, session, auth=auth, sleep=sleep or time.sleep)

        self.backend = _backend(name, config, client)
        self.index_max_age = _option(name, config, "index_max_age", 300.0)
        self.lookback = timedelta(minutes=_option(name, config, "unknown_outcome_lookback", 1440.0))
        self.retries_after_unknown = int(_option(name, config, "retries_after_unknown", 2.0))
        self.preload_accounts = bool(config.options.get("preload_accounts", False))
        self._lock = threading.RLock()
        self._index: dict[str, str] | None = None
        self._indexed_at: datetime | None = None
        self._provisional: set[str] = set()  # keys written whose operation id the CRM did not say
        self._accounts: dict[str, CrmAccount | None] = {}
        self._preloaded = False

    @property
    def mapping(self) -> str | None:
        """The mapping that reads this CRM's operations (``crm/retailcrm``, or the configured one)."""
        return self.config.mapping or self.backend.mapping

    # -- accounts ------------------------------------------------------------------------------------------

    def find_account(self, phone: str | None = None, card: str | None = None) -> CrmAccount | None:
        """The loyalty account with this phone (any Russian form) or card, cached for the adapter's life.

        Raises:
            InputError: neither given, or the phone is not a phone number.
        """
        if not phone and not card:
            raise InputError("find an account by phone or by card", system=self.system)
        cache_key = self._account_key(phone, card)
        with self._lock:
            if cache_key in self._accounts:
                return self._accounts[cache_key]
            if self.preload_accounts and not self._preloaded:
                self._preload()
                if self._accounts.get(cache_key) is not None:
                    return self._accounts[cache_key]
        found = self.backend.find_account(normalize_phone(phone) if phone else None, card)
        with self._lock:
            self._accounts[cache_key] = found
        return found

    def accounts_catalog(self) -> dict[str, dict[str, str | None]]:
        """``{account id: {"phone", "card"}}`` of every account, the ``accounts`` catalog of the mapping."""
        accounts = list(self.backend.all_accounts())
        with self._lock:
            self._remember(accounts)
        return {account.id: {"phone": account.phone, "card": account.card} for account in accounts}

    def account_balance(self, account_id: str) -> Decimal:
        """The account's current balance (points, exact)."""
        return self.backend.balance(str(account_id))

    def _account_key(self, phone: str | None, card: str | None) -> str:
        if phone:
            try:
                return normalize_phone(phone)
            except ValueError as exc:
                raise InputError(str(exc), system=self.system, field="phone") from None
        return f"card:{str(card).replace(' ', '')}"

    def _preload(self) -> None:
        self._remember(list(self.backend.all_accounts()))
        self._preloaded = True

    def _remember(self, accounts: Iterable[CrmAccount]) -> None:
        for account in accounts:
            if account.phone:
                self._accounts[account.phone] = account
            if account.card:
                self._accounts[f"card:{account.card}"] = account

    def _account_for(self, posting: Posting) -> CrmAccount:
        identity = posting.account
        card = identity.removeprefix("card:") if identity.startswith("card:") else None
        account = self.find_account(phone=None if card else identity, card=card)
        if account is None:
            shown = f"card {card}" if card else mask_phone(identity)
            raise FatalRemoteError(f"{self.system}: no loyalty account for {shown}: create it in the CRM first",
                                   system=self.system, document=posting.key)  # fmt: skip
        return account

    # -- the key index ---------------------------------------------------------------------------------------

    def find_postings(self, keys: Iterable[str]) -> dict[str, str]:
        """Which of ``keys`` already have an operation (key → operation id), from one pass over the feed."""
        index = self._current_index()
        return {key: index[key] for key in keys if key in index}

    def _current_index(self) -> dict[str, str]:
        with self._lock:
            now = self._clock()
            if self._index is None:
                self._index = {}
                self._absorb(self.backend.operations(resume=False))
                self._indexed_at = now
            elif self._indexed_at is None or (now - self._indexed_at).total_seconds() > self.index_max_age:
                self._absorb(self.backend.operations(resume=True))
                self._indexed_at = now
            return self._index

    def _absorb(self, operations: Iterable[Mapping[str, Any]]) -> None:
        assert self._index is not None
        for operation in operations:
            key = self.backend.operation_key(operation)
            if key and (key not in self._index or key in self._provisional):
                self._index[key] = self.backend.operation_id(operation)
                self._provisional.discard(key)

    def _record(self, key: str, remote_id: str, *, provisional: bool) -> None:
        with self._lock:
            if self._index is not None:
                self._index[key] = remote_id
            if provisional:
                self._provisional.add(key)

    # -- writing ---------------------------------------------------------------------------------------------

    def write_posting(self, posting: Posting, key: str) -> WriteResult:
        """Credit or charge ``posting`` under ``key`` unless an operation with ``key`` exists; never twice.

        Raises:
            InputError: a zero posting.
            FatalRemoteError: no account for the posting, or the CRM refused the write.
            RetriableRemoteError: the CRM kept failing; the outcome was looked up and the write is not there.
        """
        existing = self.find_postings([key]).get(key)
        if existing is not None:
            return WriteResult(key, existing, created=False)
        write = self._write_for(posting, key)
        for attempt in range(self.retries_after_unknown + 1):
            started = self._clock()
            try:
                sent = self.backend.send(write)
            except RemoteError as exc:
                sent = self._resolve_unknown(exc, write, started, attempt)
                if sent is None:
                    continue
            # RetailCRM answers a credit without the operation's id: the account stands in until a feed read
            remote_id = sent or f"account:{write.account.id}"
            self._record(key, remote_id, provisional=sent is None)
            _log.info(
                "crm.write", system=self.system, key=key, direction=write.direction, amount=write.amount
            )
            return WriteResult(key, remote_id, created=True)
        raise AssertionError("the last attempt returns or raises")  # pragma: no cover

    def _resolve_unknown(
        self, exc: RemoteError, write: CrmWrite, started: datetime, attempt: int
    ) -> str | None:
        """After a lost answer: the operation's id when the first write went through, ``None`` to send again."""
        if not outcome_unknown(exc):
            raise exc
        found = self.backend.find_written(write, started - self.lookback)
        _log.warning("crm.outcome_unknown", system=self.system, key=write.key, found=found is not None,
                     attempt=attempt + 1)  # fmt: skip
        if found is None and attempt >= self.retries_after_unknown:
            raise exc
        return found

    def _write_for(self, posting: Posting, key: str) -> CrmWrite:
        direction = direction_of(posting)
        credit = direction == "credit"
        return CrmWrite(
            key=key,
            direction=direction,
            account=self._account_for(posting),
            amount=points_text(posting.amount),
            activation=self._day(posting.available_at) if credit else None,
            expiry=self._day(posting.expires_at) if credit else None,
            posting=posting,
        )

    def _day(self, moment: datetime | None) -> date | None:
        return moment.astimezone(self.zone).date() if moment is not None else None

    # -- reading ---------------------------------------------------------------------------------------------

    def operations(self, since: datetime, until: datetime) -> Iterator[RawRecord]:
        """Raw operations created in ``[since, until)``, each once, read from the whole feed (fresh)."""
        seen: set[str] = set()
        batch: list[Mapping[str, Any]] = []
        for operation in self.backend.operations(resume=False):
            operation_id = self.backend.operation_id(operation)
            if operation_id in seen:
                continue
            seen.add(operation_id)
            batch.append(operation)
            if since <= self.backend.operation_time(operation) < until:
                yield RawRecord(self.system, self.backend.entity, operation_id, None, None, dict(operation))
        with self._lock:
            if self._index is not None:
                self._absorb(batch)
