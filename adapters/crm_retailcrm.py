"""RetailCRM (Simla) API v5 loyalty as a :class:`~adapters.crm.CrmBackend` (``preset: retailcrm``, the default).

``reference/loyalty-platforms.md`` §2, §6, §8: auth ``X-API-KEY``; POST bodies form-encoded; 503 is rate
limiting (the status table maps it to ``rate_limited``, so it is waited out and retried — a refused request was
not applied); refusals are ``{"success": false, "errorMsg": …}``. Endpoints used:

* ``GET loyalty/accounts?filter[phoneNumber]=|filter[cardNumber]=`` (page-numbered, 250 a page for a preload);
* ``POST loyalty/account/{id}/bonus/credit`` (``amount``, ``activationDate``, ``expireDate``, ``comment``) and
  ``…/bonus/charge`` (``amount``, ``comment``) — the connector's key is the ``comment``;
* ``GET loyalty/bonus/operations?limit=&cursor=`` — the global feed, ``pagination.nextCursor`` until absent;
* ``GET loyalty/account/{id}/bonus/operations?filter[createdAtFrom]=`` — an account's recent history, searched
  for a key when a write's answer was lost;
* ``GET loyalty/account/{id}`` — ``loyaltyAccount.amount``, the balance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from adapters.crm import CrmAccount, CrmWrite, http_config
from adapters.http import Action, HttpClient
from adapters.rest import CursorPaginator, HeaderTokenAuth, Page, PageNumberPaginator, PageRequest, paginate
from connector.config import SystemConfig
from connector.errors import ConfigError, FatalRemoteError, MappingError
from connector.model import normalize_phone

__all__ = ["RetailCrmBackend"]


def _ok(body: Any, system: str, path: str) -> dict[str, Any]:
    """RetailCRM answers ``{"success": false, "errorMsg": …}`` for refusals, sometimes with a 200."""
    if not isinstance(body, dict) or body.get("success") is False:
        message = body.get("errorMsg") if isinstance(body, dict) else None
        raise FatalRemoteError(
            f"{system}: {path}: {message or 'unexpected answer'}", system=system, path=path
        )
    return body


def _decimal(value: Any, system: str, field: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise MappingError("not a number", system=system, field=field) from None


class RetailCrmBackend:
    """RetailCRM (Simla) API v5 loyalty: ``X-API-KEY``, form-encoded POSTs, 503 = rate limited.

    ``base_url`` is the account's address (``https://shop.retailcrm.ru``) with or without ``/api/v5``. Options:
    ``loyalty_ids`` (feed filter ``filter[loyalties][]``), ``feed_limit`` (20/50/100/250, default 250).
    """

    entity = "bonus_operation"
    mapping: str | None = "crm/retailcrm"

    def __init__(self, name: str, config: SystemConfig, client: Callable[..., HttpClient]) -> None:
        secret = config.api_key or config.token
        if secret is None:
            raise ConfigError(f"systems.{name}.api_key: the RetailCRM API key is required")
        http = http_config(name, config, status_actions={503: Action.RATE_LIMITED})
        if not http.base_url.rstrip("/").endswith("/api/v5"):
            http = http.model_copy(update={"base_url": http.base_url.rstrip("/") + "/api/v5"})
        self.system = name
        self.zone = ZoneInfo(config.timezone)
        self.client: HttpClient = client(http, HeaderTokenAuth(secret, header="X-API-KEY"))
        self.feed_limit = int(config.options.get("feed_limit", 250))
        self.loyalty_ids = list(config.options.get("loyalty_ids") or [])
        self.max_pages = int(config.options.get("max_pages", 10_000))
        self.last_cursor: str | None = None

    def find_account(self, phone: str | None, card: str | None) -> CrmAccount | None:
        """``GET loyalty/accounts?filter[phoneNumber]=7…`` or ``filter[cardNumber]=…``; the first match."""
        params = {"filter[phoneNumber]": phone.lstrip("+")} if phone else {"filter[cardNumber]": card}
        body = _ok(self.client.get_json("loyalty/accounts", params=params), self.system, "loyalty/accounts")
        accounts = body.get("loyaltyAccounts") or []
        return self._account(accounts[0]) if accounts else None

    def all_accounts(self) -> Iterator[CrmAccount]:
        """Every account, 250 a page."""
        paginator = PageNumberPaginator(page_size=250, total_pages_path="pagination.totalPageCount",
                                        max_pages=self.max_pages)  # fmt: skip
        for raw in paginate(self.client, "loyalty/accounts", paginator, "loyaltyAccounts"):
            yield self._account(raw)

    def _account(self, raw: Mapping[str, Any]) -> CrmAccount:
        phone = raw.get("phoneNumber")
        try:
            normalized = normalize_phone(phone) if phone else None
        except ValueError:
            normalized = None  # a CRM account with a typo in its phone is still an account (by card)
        amount = raw.get("amount")
        return CrmAccount(str(raw["id"]), normalized, raw.get("cardNumber") or None,
                          _decimal(amount, self.system, "amount") if amount is not None else None)  # fmt: skip

    def send(self, write: CrmWrite) -> str | None:
        """``POST loyalty/account/{id}/bonus/credit|charge`` form-encoded; RetailCRM returns no operation id."""
        form = {"amount": write.amount, "comment": write.key}
        if write.activation is not None:
            form["activationDate"] = write.activation.isoformat()
        if write.expiry is not None:
            form["expireDate"] = write.expiry.isoformat()
        path = f"loyalty/account/{write.account.id}/bonus/{write.direction}"
        response = self.client.request("POST", path, data=urlencode(form), headers=_FORM_HEADERS)
        _ok(self.client.parse_json(response, method="POST"), self.system, path)
        return None

    def operations(self, resume: bool) -> Iterator[dict[str, Any]]:
        """``GET loyalty/bonus/operations?limit=&cursor=`` to the end; ``resume`` starts at the last page read."""
        params: dict[str, Any] = {"limit": self.feed_limit}
        if self.loyalty_ids:
            params["filter[loyalties][]"] = self.loyalty_ids
        if resume and self.last_cursor:
            params["cursor"] = self.last_cursor
        paginator = _TrackingCursor(self, "pagination.nextCursor", max_pages=self.max_pages)
        yield from paginate(
            self.client, "loyalty/bonus/operations", paginator, "bonusOperations", params=params
        )

    def find_written(self, write: CrmWrite, since: datetime) -> str | None:
        """The account's history since ``since`` (CRM time), searched for ``comment == key``."""
        stamp = f"{since.astimezone(self.zone):%Y-%m-%d %H:%M:%S}"
        paginator = PageNumberPaginator(page_size=100, total_pages_path="pagination.totalPageCount",
                                        max_pages=self.max_pages)  # fmt: skip
        path = f"loyalty/account/{write.account.id}/bonus/operations"
        for operation in paginate(self.client, path, paginator, "bonusOperations",
                                  params={"filter[createdAtFrom]": stamp}):  # fmt: skip
            if self.operation_key(operation) == write.key:
                return self.operation_id(operation)
        return None

    def operation_id(self, operation: Mapping[str, Any]) -> str:
        """``id``."""
        return str(operation.get("id"))

    def operation_key(self, operation: Mapping[str, Any]) -> str | None:
        """``comment``, where the connector keeps its key."""
        comment = operation.get("comment")
        return str(comment) if comment else None

    def operation_time(self, operation: Mapping[str, Any]) -> datetime:
        """``createdAt`` (``Y-m-d H:i:s``, the CRM's zone)."""
        raw = operation.get("createdAt")
        try:
            return datetime.strptime(str(raw), "%Y-%m-%d %H:%M:%S").replace(tzinfo=self.zone)
        except ValueError:
            raise MappingError("createdAt is not Y-m-d H:i:s", system=self.system,
                               document=self.operation_id(operation), field="createdAt") from None  # fmt: skip

    def balance(self, account_id: str) -> Decimal:
        """``GET loyalty/account/{id}`` → ``loyaltyAccount.amount``."""
        path = f"loyalty/account/{account_id}"
        account = _ok(self.client.get_json(path), self.system, path).get("loyaltyAccount") or {}
        return _decimal(account.get("amount"), self.system, "loyaltyAccount.amount")


_FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


class _TrackingCursor(CursorPaginator):
    """A cursor paginator that remembers the cursor of the last page, so a later read resumes there."""

    def __init__(self, owner: RetailCrmBackend, cursor_path: str, *, max_pages: int) -> None:
        super().__init__(cursor_path, param="cursor", max_pages=max_pages)
        self.owner = owner

    def next_request(self, page: Page) -> PageRequest:
        """The next page; its cursor is kept on the backend."""
        request = super().next_request(page)
        self.owner.last_cursor = str(request.params[self.param])
        return request
