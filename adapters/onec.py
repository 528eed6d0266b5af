"""1C:Enterprise: receipts, the bonus register and catalogs read over OData; bonus documents and receipts
written idempotently (DESIGN §4, §5; reference/onec.md).

Configuration (``systems.<name>`` in ``connector.yaml``)::

    onec:
      adapter: onec
      base_url: http://1c/ut/odata/standard.odata     # or the base root: /odata/standard.odata is added
      user: exchange
      password: ${ONEC_PASSWORD}
      timezone: Europe/Moscow                         # 1C dates carry no offset: they are this zone's
      mapping: onec/ut11                              # onec/retail2 selects Розница 2 (or options.flavour)
      protocol: odata                                 # soap: bonus balance and operations via the web service
      options:
        store_ids: {"<canonical store id>": "<Склад/Магазин Ref_Key or Code>"}
        store_timezones: {"<canonical store id>": Asia/Yekaterinburg}   # receipts dated in another zone
        external_id_field: Комментарий                # where the connector's key is kept
        verify: response                              # or reread: GET each document again after posting
        bonus_program: "<Ref_Key>"                    # default: the base's first bonus program

**Reading.** :meth:`OneCAdapter.documents` reads a store's receipts day by day (``Date`` window as zone-less
``datetime'…'`` literals, the store by ``Склад_Key``/``Магазин_Key``, ``$select`` of what the mappings use,
paged by the OData client). Documents marked for deletion are *skipped* there and reported by
:meth:`OneCAdapter.deleted_documents` instead — whole, so their mapping yields status ``deleted`` and the
journal can retire them; unposted ones are returned (the mapping makes them ``draft``). Catalogs are read once
per run and cached (:meth:`OneCAdapter.catalogs`, :meth:`OneCAdapter.refresh_catalogs`).

**Writing** (:mod:`adapters.onec_writer`). Every create is idempotent: the caller's key is stored in
``Комментарий`` (or ``options.external_id_field``) and looked up before creating — in batches by
:meth:`OneCAdapter.find_postings` / :meth:`OneCAdapter.find_documents`, whose answer is remembered so that a
following write of an absent key costs exactly create + ``Post``. What 1C stored is compared with what was
sent before posting. Bodies are built in :mod:`adapters.onec_payloads`.

**SOAP** (``protocol: soap``, :mod:`adapters.onec_soap`): the bonus balance and bonus operations only;
receipts, the register and catalogs raise a :class:`~connector.errors.ConfigError` that says so (see
:meth:`check_route`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import requests

from adapters.base import RawRecord, WriteResult
from adapters.http import HttpClient, HttpPolicy, RateBudget, SystemHttpConfig
from adapters.odata import (
    EMPTY_GUID,
    Filter,
    ODataClient,
    and_,
    datetime_literal,
    eq,
    ge,
    guid,
    lt,
)
from adapters.onec_catalogs import FLAVOURS, FlavourSpec, OneCCatalogs, flavour_of, read_catalogs
from adapters.onec_payloads import (
    BONUS_DOCUMENT,
    ReceiptContext,
    bonus_document,
    masked_account,
    receipt_document,
)
from adapters.onec_soap import OneCSoapService, soap_unsupported
from adapters.onec_writer import OneCWriter
from adapters.rest import BasicAuth
from connector.config import SystemConfig
from connector.errors import ConfigError, RemoteNotFoundError
from connector.logs import get_logger, mask_phone
from connector.model import DocRef, Posting, Return, Sale

__all__ = ["REGISTER", "REGISTER_RECORDS", "OneCAdapter", "available_points"]

REGISTER = "AccumulationRegister_БонусныеБаллы"
REGISTER_RECORDS = f"{REGISTER}_RecordType"
_ODATA_ROOT = "/odata/standard.odata"
_log = get_logger("adapters.onec")


def available_points(accrued: Decimal, to_write_off: Decimal) -> Decimal:
    """Points a holder may spend: ``max(0, НачисленоBalance − max(0, КСписаниюBalance))`` (reference §2.4)."""
    return max(Decimal(0), accrued - max(Decimal(0), to_write_off))


def _http(name: str, config: SystemConfig, session: requests.Session | None) -> HttpClient:
    rate = config.rate_limit
    policy = HttpPolicy(
        connect_timeout=config.timeouts.connect,
        read_timeout=config.timeouts.read,
        rate=RateBudget(requests=rate.requests, per_seconds=rate.per_seconds) if rate else None,
        max_retries=int(config.options.get("max_retries", 5)),
    )
    base_url = config.base_url if config.base_url.endswith(_ODATA_ROOT) else config.base_url + _ODATA_ROOT
    auth = BasicAuth(config.user, config.password or "") if config.user else None
    return HttpClient(SystemHttpConfig(system=name, base_url=base_url, policy=policy), session, auth=auth)


def _day_windows(since: datetime, until: datetime, days: int) -> Iterator[tuple[datetime, datetime]]:
    # Keyset windows on Date keep $skip small: 1C re-scans skipped rows on every page (reference §6.1).
    start = since
    while start < until:
        end = min(start + timedelta(days=days), until)
        yield start, end
        start = end


class OneCAdapter:
    """One 1C base (УТ 11 / КА 2 / ERP or Розница 2): document source and target, ledger source and target.

    Args:
        name: the configured system name.
        config: the system's configuration.
        session: the ``requests.Session`` to send with (tests pass ``responses`` or the sandbox's).
        http: a ready HTTP client instead (tests inject one with a recording ``sleep``).

    Example:
        >>> onec = OneCAdapter("onec", config.systems["onec"])                     # doctest: +SKIP
        >>> for record in onec.documents(store_id, since, until): ...              # doctest: +SKIP
        >>> onec.write_posting(posting, key=f"onec:{posting.key}")                 # doctest: +SKIP
    """

    def __init__(
        self,
        name: str,
        config: SystemConfig,
        *,
        session: requests.Session | None = None,
        http: HttpClient | None = None,
    ) -> None:
        self.system = name
        self.config = config
        self.options = dict(config.options)
        self.tz = ZoneInfo(config.timezone)
        self.spec: FlavourSpec = FLAVOURS[flavour_of(config.options.get("flavour"), config.mapping)]
        self.key_field = str(self.options.get("external_id_field", "Комментарий"))
        self.http = http or _http(name, config, session)
        self.odata = ODataClient(
            self.http, timezone=self.tz, page_size=int(self.options.get("page_size", 500))
        )
        self.soap = (
            OneCSoapService(self.http, config.base_url, self.tz, self.options)
            if config.protocol == "soap"
            else None
        )
        self.writer = OneCWriter(
            self.odata, key_field=self.key_field, verify=str(self.options.get("verify", "response"))
        )
        self._catalogs: OneCCatalogs | None = None
        self._catalog_lock = threading.Lock()  # sync partitions run in threads: read the catalogs once

    # -- catalogs ----------------------------------------------------------------------------------------

    def _cats(self) -> OneCCatalogs:
        if self.soap is not None:
            raise soap_unsupported(self.system, "reading catalogs")
        with self._catalog_lock:
            if self._catalogs is None:
                self._catalogs = self._read_catalogs()
        return self._catalogs

    def _read_catalogs(self) -> OneCCatalogs:
        store_ids = {str(k): str(v) for k, v in dict(self.options.get("store_ids") or {}).items()}
        sku_field = str(self.options.get("sku_field", "Артикул"))
        return read_catalogs(self.odata, self.spec, store_ids=store_ids, sku_field=sku_field)

    def catalogs(self) -> dict[str, dict[str, Any]]:
        """The lookups the shipped 1C mappings use (``partners``, ``cards``, ``stores``, ``products`` …)."""
        return self._cats().for_mapping()

    def refresh_catalogs(self) -> None:
        """Forget the cached catalogs and looked-up keys: the next call reads them again (once per run)."""
        with self._catalog_lock:
            self._catalogs = None
        self.writer.forget()

    def partner_for_phone(self, phone: str) -> str | None:
        """The ``Ref_Key`` of the partner (Розница: person) with this phone, or None."""
        return self._cats().partner_for_phone(phone)

    def partner_for_card(self, card: str) -> str | None:
        """The ``Ref_Key`` of the partner (Розница: person) owning the card numbered ``card``, or None."""
        return self._cats().partner_for_card(card)

    def holder_for_account(self, account: str) -> str:
        """The register holder of a ledger account (``+7…`` or ``card:<n>``): УТ a partner, Розница a card.

        Raises:
            RemoteNotFoundError: no such customer or card in 1C.
        """
        cats = self._cats()
        if account.startswith("card:"):
            number = account.removeprefix("card:")
            holder = cats.partner_for_card(number) if self.spec.name == "ut" else cats.card_for_number(number)
        else:
            partner = cats.partner_for_phone(account)
            holder = partner if self.spec.name == "ut" or partner is None else cats.card_for_partner(partner)
        if holder is None:
            raise RemoteNotFoundError(
                f"no {self.spec.partners} or card in 1C for account {masked_account(account)}",
                system=self.system,
                field="account",
            )
        return holder

    def check_route(self, write: str) -> None:
        """Refuse at start-up a route this 1C cannot serve (``documents``: receipts, over SOAP).

        Args:
            write: the route's ``write`` (``documents``, ``bonus_documents``, ``postings``).

        Raises:
            ConfigError: receipts routed to a 1C published over SOAP.
        """
        if self.soap is not None and write == "documents":
            raise soap_unsupported(self.system, "writing receipts")

    # -- reading receipts --------------------------------------------------------------------------------

    def stores(self) -> list[str]:
        """Canonical ids of the base's stores (``systems.<name>.stores`` narrows them)."""
        known = list(dict.fromkeys(self._cats().stores.values()))
        return [store for store in known if not self.config.stores or store in self.config.stores]

    def documents(
        self, store: str, since: datetime, until: datetime, *, kinds: Sequence[str] = ("sale", "return")
    ) -> Iterator[RawRecord]:
        """Sales and returns of ``store`` dated in ``[since, until)``, not marked for deletion, each once.

        Args:
            store: the canonical store id (or the store's ``Ref_Key``).
            since: window start (aware; compared in the base's zone).
            until: window end, exclusive.
            kinds: ``sale`` and/or ``return`` — УТ reads ``ЧекККМ``/``ЧекККМВозврат``, Розница ``ЧекККМ``
                filtered by ``ВидОперации`` when only one kind is asked.
        """
        yield from self._receipts(store, since, until, kinds, deleted=False)

    def deleted_documents(self, store: str, since: datetime, until: datetime) -> Iterator[RawRecord]:
        """Receipts of the window marked for deletion, whole: their mapping status is ``deleted``."""
        yield from self._receipts(store, since, until, ("sale", "return"), deleted=True)

    def _receipts(
        self, store: str, since: datetime, until: datetime, kinds: Sequence[str], *, deleted: bool
    ) -> Iterator[RawRecord]:
        if self.soap is not None:
            raise soap_unsupported(self.system, "reading receipts")
        store_ref = self._cats().store_ref(store)
        if store_ref is None:
            raise ConfigError(
                f"store {store!r} is not a {self.spec.stores} of 1C: map it in options.store_ids",
                system=self.system,
            )
        canonical = self._cats().stores[store_ref]
        tz = self._store_zone(canonical)
        window_days = int(self.options.get("window_days", 1))
        narrow = bool(self.options.get("select", True))  # false where a base lacks a field the list names
        for entity_set, select, kind_filter in self._receipt_sets(kinds):
            for start, end in _day_windows(since, until, window_days):
                parts = [
                    ge("Date", datetime_literal(start, tz)),
                    lt("Date", datetime_literal(end, tz)),
                    eq(self.spec.store_field, guid(store_ref)),
                    eq("DeletionMark", deleted),
                ]
                flt = and_(*parts, *([kind_filter] if kind_filter else []))
                chosen = select if narrow else None
                for row in self.odata.query(
                    entity_set, filter=flt, select=chosen, orderby=("Date",), decode=False
                ):
                    yield RawRecord(
                        self.system, entity_set, str(row["Ref_Key"]), row.get("DataVersion"), canonical, row
                    )

    def _store_zone(self, store: str) -> ZoneInfo:
        # A base serving stores in several zones keeps each receipt in its store's local time (reference §6.4).
        zones = dict(self.options.get("store_timezones") or {})
        return ZoneInfo(str(zones[store])) if store in zones else self.tz

    def _receipt_sets(self, kinds: Sequence[str]) -> list[tuple[str, tuple[str, ...], Filter | None]]:
        spec = self.spec
        if spec.sale_set == spec.return_set and {"sale", "return"} <= set(kinds):
            return [(spec.sale_set, spec.sale_select, None)]
        sets: list[tuple[str, tuple[str, ...], Filter | None]] = []
        for kind, entity_set, select, marker in (
            ("sale", spec.sale_set, spec.sale_select, spec.sale_kind),
            ("return", spec.return_set, spec.return_select, spec.return_kind),
        ):
            if kind in kinds:
                sets.append(
                    (entity_set, select, and_(*(eq(k, v) for k, v in marker.items())) if marker else None)
                )
        return sets

    # -- the bonus register ------------------------------------------------------------------------------

    def operations(self, since: datetime, until: datetime) -> Iterator[RawRecord]:
        """Bonus register movements with a ``Period`` in ``[since, until)`` (the ledger-source seam)."""
        yield from self.register_records(since, until)

    def register_records(
        self, since: datetime, until: datetime, *, holder: str | None = None
    ) -> Iterator[RawRecord]:
        """Bonus register rows (``…_RecordType``) with a ``Period`` in the window, of one holder if given."""
        if self.soap is not None:
            raise soap_unsupported(self.system, "reading the bonus register")
        parts = [
            ge("Period", datetime_literal(since, self.tz)),
            lt("Period", datetime_literal(until, self.tz)),
        ]
        if holder is not None:
            parts.append(eq(self.spec.holder, guid(holder)))
        rows = self.odata.query(
            REGISTER_RECORDS,
            filter=and_(*parts),
            orderby=("Period",),
            key_fields=("Recorder", "LineNumber"),
            decode=False,
        )
        for row in rows:
            yield RawRecord(
                self.system, REGISTER_RECORDS, f"{row['Recorder']}:{row['LineNumber']}", None, None, row
            )

    def balance(
        self, holder: str | None = None, *, at: datetime | None = None
    ) -> dict[tuple[str, str], Decimal]:
        """Available points per (holder, program) from ``Balance(Period=at, Condition=…)``; ``at``: now.

        Movements dated exactly at ``at`` are not counted (1C's ``Остатки`` on a moment).
        """
        if self.soap is not None:
            raise soap_unsupported(self.system, "the register's Balance table")
        params: dict[str, object] = {"Period": at or datetime.now(self.tz)}
        if holder is not None:
            params["Condition"] = eq(self.spec.holder, guid(holder))
        result: dict[tuple[str, str], Decimal] = {}
        for row in self.odata.virtual_table(REGISTER, "Balance", params):
            key = (str(row.get(self.spec.holder)), str(row.get("БонуснаяПрограммаЛояльности_Key")))
            accrued, due = (
                Decimal(str(row.get(name) or 0)) for name in ("НачисленоBalance", "КСписаниюBalance")
            )
            result[key] = result.get(key, Decimal(0)) + available_points(accrued, due)
        return result

    def points_balance(self, account: str, *, at: datetime | None = None) -> Decimal:
        """Available points of a ledger account (``+7…`` or ``card:<n>``) over all programs; OData or SOAP."""
        if self.soap is not None:
            card = account.removeprefix("card:") if account.startswith("card:") else None
            return self.soap.balance(card=card, phone=None if card else account, at=at)
        return sum(self.balance(self.holder_for_account(account), at=at).values(), Decimal(0))

    # -- writing bonus documents -------------------------------------------------------------------------

    def find_postings(self, keys: Iterable[str]) -> dict[str, str]:
        """Which keys already have a bonus document (key → ``Ref_Key``): one query per 40 keys.

        Over SOAP the service has no lookup and dedupes by operation id itself: nothing is found here.
        """
        if self.soap is not None:
            return {}
        return {key: found.ref for key, found in self.writer.lookup((BONUS_DOCUMENT,), keys).items()}

    def write_posting(self, posting: Posting, key: str) -> WriteResult:
        """Write ``posting`` as a posted bonus document unless ``key`` has one already."""
        if self.soap is not None:
            ref = self.soap.write(posting, key, program=self.options.get("bonus_program"))
            return WriteResult(key, ref, created=True)

        def build() -> tuple[str, dict[str, Any]]:
            body = bonus_document(
                posting,
                holder=self.holder_for_account(posting.account),
                spec=self.spec,
                program=self._program(),
                tz=self.tz,
                key_field=self.key_field,
                key=key,
            )
            return BONUS_DOCUMENT, body

        return self.writer.write(key, (BONUS_DOCUMENT,), build)

    def _program(self) -> str:
        program = self.options.get("bonus_program") or self._cats().default_program()
        if not program:
            raise ConfigError(
                "1C has no Catalog_БонусныеПрограммыЛояльности: set options.bonus_program", system=self.system
            )
        return str(program)

    # -- writing receipts --------------------------------------------------------------------------------

    def find_documents(self, keys: Iterable[str]) -> dict[str, str]:
        """Which keys already have a receipt in 1C (key → ``Ref_Key``): a query per entity set and 40 keys."""
        if self.soap is not None:
            raise soap_unsupported(self.system, "writing receipts")
        sets = tuple(dict.fromkeys((self.spec.sale_set, self.spec.return_set)))
        return {key: found.ref for key, found in self.writer.lookup(sets, keys).items()}

    def write_document(self, document: Sale | Return, key: str) -> WriteResult:
        """Write a canonical sale or return as a posted receipt unless ``key`` has one already."""
        if self.soap is not None:
            raise soap_unsupported(self.system, "writing receipts")
        target = self.spec.return_set if isinstance(document, Return) else self.spec.sale_set
        return self.writer.write(
            key, (target,), lambda: receipt_document(document, self._receipt_context(document, key))
        )

    def _receipt_context(self, document: Sale | Return, key: str) -> ReceiptContext:
        cats = self._cats()
        partner, card = self._customer_refs(document)
        original = EMPTY_GUID
        if isinstance(document, Return) and document.original is not None:
            original = self._original_ref(document.original, key)
        program = cats.programs.get(
            str(self.options.get("bonus_program") or cats.default_program() or ""), {}
        )
        point_value = Decimal(str(self.options.get("point_value") or program.get("point_value") or "1"))
        tz = self._store_zone(document.store)
        return ReceiptContext(self.spec, cats, tz, self.key_field, key, partner, card, original, point_value)

    def _customer_refs(self, document: Sale | Return) -> tuple[str, str]:
        customer, cats = document.customer, self._cats()
        if customer is None or not (customer.phone or customer.card):
            return EMPTY_GUID, EMPTY_GUID
        partner = (cats.partner_for_phone(customer.phone) if customer.phone else None) or (
            cats.partner_for_card(customer.card) if customer.card else None
        )
        card = (cats.card_for_number(customer.card) if customer.card else None) or (
            cats.card_for_partner(partner) if partner else None
        )
        if partner is None and card is None:
            _log.warning(
                "onec.unknown_customer",
                system=self.system,
                document=document.ref.id,
                phone=mask_phone(customer.phone) if customer.phone else None,
            )
        return partner or EMPTY_GUID, card or EMPTY_GUID

    def _original_ref(self, original: DocRef, key: str) -> str:
        if original.system == self.system:
            return original.id
        sale_key = f"{key.split(':', 1)[0]}:{original.system}:{original.id}:sale"
        found = self.writer.known(sale_key, (self.spec.sale_set,))
        return found.ref if found else EMPTY_GUID
