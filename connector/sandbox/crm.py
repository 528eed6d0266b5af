"""The emulated CRM: RetailCRM (Simla) API v5 loyalty, mounted by the sandbox at ``/crm``.

Endpoints under ``/api/v5`` (``reference/loyalty-platforms.md`` §2, §6, §8):

* ``GET loyalty/accounts?filter[phoneNumber]=…|filter[cardNumber]=…|filter[customerId]=…`` and
  ``GET loyalty/account/{id}``: accounts with ``amount`` = the active balance (see
  :mod:`connector.sandbox._crm_ledger` for the rule);
* ``POST loyalty/account/{id}/bonus/credit`` (``amount``, ``activationDate``, ``expireDate``, ``comment``) and
  ``POST loyalty/account/{id}/bonus/charge`` (``amount``, ``comment``), form-encoded as RetailCRM requires; a
  charge above the active balance is refused with 400;
* ``GET loyalty/account/{id}/bonus/operations?filter[createdAtFrom]=&filter[createdAtTo]=&page=&limit=``: the
  account history, page-numbered;
* ``GET loyalty/account/{id}/bonus/{waiting_activation|burn_soon}/details``: pending and expiring buckets;
* ``GET loyalty/bonus/operations?limit=&cursor=``: the global feed ordered by operation id, with
  ``pagination.nextCursor`` (absent on the last page); ``limit`` is one of 20, 50, 100, 250.

Operations are written ``{"id", "type", "createdAt", "amount", "comment", "bonus": {"activationDate",
"expireDate"}, "loyaltyAccount": {"id"}, "loyalty": {"id"}}``: ``type`` ``credit_manual`` / ``charge_manual``,
``amount`` always positive, ``createdAt`` ``Y-m-d H:i:s`` in the CRM's zone, and ``comment`` exactly as written
(the connector keeps its idempotency key there). Every body has ``"success": true|false``; errors carry
``errorMsg`` and, for bad parameters, ``errors``. The key is read from ``X-API-KEY`` or the ``apiKey`` query
parameter (missing: 401, wrong: 403). Past the per-key budget the answer is 503, as RetailCRM rate-limits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.sandbox._crm_ledger import Balance, InsufficientBonuses, Ledger, LedgerOperation, phone_digits
from connector.sandbox._wire import RateBudget, decode_cursor, dumps, encode_cursor
from connector.sandbox.faults import wants_dup
from connector.sandbox.world import SandboxCustomer, World

__all__ = ["DEFAULT_API_KEY", "FEED_LIMITS", "LOYALTY_ID", "build_crm_app"]

DEFAULT_API_KEY = "sandbox-crm-key"  # the sandbox's published credential, not a secret
LOYALTY_ID = 1
FEED_LIMITS = (20, 50, 100, 250)
_JSON = "application/json; charset=utf-8"
_INPUT_ERROR = "Errors in the input parameters"


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type=_JSON)


def _fail(status: int, message: str, errors: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"success": False, "errorMsg": message}
    if errors:
        body["errors"] = errors
    return _json(body, status)


class _Crm:
    """The handlers, over one ledger and one clock."""

    def __init__(self, world: World, clock: Callable[[], datetime], timezone: str) -> None:
        self.ledger = Ledger(world, timezone)
        self.clock = clock

    def _stamp(self, moment: datetime) -> str:
        return f"{moment.astimezone(self.ledger.zone):%Y-%m-%d %H:%M:%S}"

    def operation(self, op: LedgerOperation) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": op.id,
            "type": op.type,
            "createdAt": self._stamp(op.created_at),
            "amount": op.amount,
            "comment": op.comment,
        }
        if op.type.startswith("credit"):
            activation = op.activation_date or self.ledger.day(op.created_at)
            bonus: dict[str, Any] = {"activationDate": activation.isoformat()}
            if op.expire_date is not None:
                bonus["expireDate"] = op.expire_date.isoformat()
            body["bonus"] = bonus
        body["loyaltyAccount"] = {"id": op.account_id}
        body["loyalty"] = {"id": LOYALTY_ID}
        return body

    def account(self, customer: SandboxCustomer) -> dict[str, Any]:
        history = self.ledger.per_account.get(customer.crm_account_id, [])
        opened = min((op.created_at for op in history), default=datetime(2025, 1, 1, tzinfo=UTC))
        balance = self.ledger.balance(customer.crm_account_id, self.clock())
        return {
            "id": customer.crm_account_id,
            "active": True,
            "status": "activated",
            "phoneNumber": customer.phone,
            "cardNumber": customer.card,
            "amount": balance.active,
            "ordersSum": Decimal("0.00"),
            "level": {"id": 1, "name": "Базовый", "type": "bonus_percent"},
            "createdAt": self._stamp(opened),
            "activatedAt": self._stamp(opened),
            "customer": {"id": customer.crm_customer_id, "firstName": customer.name},
            "loyalty": {"id": LOYALTY_ID},
            "customFields": {},
        }

    def customer(self, request: Request) -> SandboxCustomer | Response:
        try:
            account_id = int(request.path_params["id"])
        except ValueError:
            account_id = -1
        customer = self.ledger.accounts.get(account_id)
        return customer if customer is not None else _fail(404, "Loyalty account not found")

    async def accounts(self, request: Request) -> Response:
        params = request.query_params
        found = list(self.ledger.accounts.values())
        if phone := params.get("filter[phoneNumber]"):
            found = [c for c in found if phone_digits(c.phone) == phone_digits(phone)]
        if card := params.get("filter[cardNumber]"):
            found = [c for c in found if c.card == card.replace(" ", "")]
        if customer_id := params.get("filter[customerId]"):
            found = [c for c in found if str(c.crm_customer_id) == customer_id]
        return _page(params, found, "loyaltyAccounts", self.account)

    async def account_get(self, request: Request) -> Response:
        customer = self.customer(request)
        if isinstance(customer, Response):
            return customer
        return _json({"success": True, "loyaltyAccount": self.account(customer)})

    async def credit(self, request: Request) -> Response:
        customer = self.customer(request)
        if isinstance(customer, Response):
            return customer
        form = await request.form()
        errors: dict[str, str] = {}
        amount = _amount(form.get("amount"), errors)
        activation = _date(form.get("activationDate"), "activationDate", errors)
        expire = _date(form.get("expireDate"), "expireDate", errors)
        now = self.clock()
        if expire is not None and expire <= (activation or self.ledger.day(now)):
            errors["expireDate"] = "The expiration date must be later than the activation date."
        if errors or amount is None:
            return _fail(400, _INPUT_ERROR, errors)
        comment = str(form.get("comment") or "")
        op = self.ledger.credit(customer.crm_account_id, amount, comment, now, activation, expire)
        bonus: dict[str, Any] = {
            "amount": op.amount,
            "activationDate": (activation or self.ledger.day(now)).isoformat(),
        }
        if expire is not None:
            bonus["expireDate"] = expire.isoformat()
        return _json({"success": True, "loyaltyBonus": bonus})

    async def charge(self, request: Request) -> Response:
        customer = self.customer(request)
        if isinstance(customer, Response):
            return customer
        form = await request.form()
        errors: dict[str, str] = {}
        amount = _amount(form.get("amount"), errors)
        if errors or amount is None:
            return _fail(400, _INPUT_ERROR, errors)
        try:
            self.ledger.charge(customer.crm_account_id, amount, str(form.get("comment") or ""), self.clock())
        except InsufficientBonuses as exc:
            return _fail(400, f"Not enough bonuses on the account: {exc.available} available")
        return _json({"success": True})

    async def history(self, request: Request) -> Response:
        customer = self.customer(request)
        if isinstance(customer, Response):
            return customer
        params = request.query_params
        errors: dict[str, str] = {}
        since = _stamp_param(params.get("filter[createdAtFrom]"), "createdAtFrom", errors, self.ledger)
        until = _stamp_param(params.get("filter[createdAtTo]"), "createdAtTo", errors, self.ledger)
        if errors:
            return _fail(400, _INPUT_ERROR, errors)
        ops = sorted(
            self.ledger.per_account.get(customer.crm_account_id, []), key=lambda o: (o.created_at, o.id)
        )
        ops = [
            o
            for o in ops
            if (since is None or o.created_at >= since) and (until is None or o.created_at <= until)
        ]
        return _page(params, ops, "bonusOperations", self.operation)

    async def details(self, request: Request) -> Response:
        customer = self.customer(request)
        if isinstance(customer, Response):
            return customer
        status = request.path_params["status"]
        if status not in ("waiting_activation", "burn_soon"):
            return _fail(400, _INPUT_ERROR, {"status": "Unknown bonus status."})
        balance: Balance = self.ledger.balance(customer.crm_account_id, self.clock())
        buckets = balance.waiting if status == "waiting_activation" else balance.burning
        limit, page = _paging(request.query_params.get("limit"), request.query_params.get("page"))
        rows = [{"date": day.isoformat(), "amount": amount} for day, amount in sorted(buckets.items())]
        return _json(
            {
                "success": True,
                "pagination": _pagination(limit, page, len(rows)),
                "statistic": {"totalAmount": sum(buckets.values(), Decimal("0.00"))},
                "bonuses": rows[(page - 1) * limit : page * limit],
            }
        )

    async def feed(self, request: Request) -> Response:
        params = request.query_params
        limit_raw = params.get("limit", "20")
        if not limit_raw.isdigit() or int(limit_raw) not in FEED_LIMITS:
            return _fail(400, _INPUT_ERROR, {"limit": "The value you selected is not a valid choice."})
        cursor = params.get("cursor")
        last_id: int | None = None
        if cursor:
            state = decode_cursor(cursor)
            if state is None or not isinstance(state.get("after"), int):
                return _fail(400, _INPUT_ERROR, {"cursor": "Invalid cursor."})
            last_id = state["after"]
        limit = int(limit_raw)
        ops = self.ledger.page_after(last_id, limit, repeat_last=bool(cursor) and wants_dup(request.scope))
        pagination: dict[str, Any] = {"limit": limit}
        if ops and ops[-1].id != self.ledger.ids[-1]:
            pagination["nextCursor"] = encode_cursor({"after": ops[-1].id})
        return _json(
            {"success": True, "bonusOperations": [self.operation(o) for o in ops], "pagination": pagination}
        )


def _paging(limit_raw: str | None, page_raw: str | None) -> tuple[int, int]:
    limit = int(limit_raw) if limit_raw and limit_raw.isdigit() and int(limit_raw) in FEED_LIMITS else 20
    page = int(page_raw) if page_raw and page_raw.isdigit() and int(page_raw) > 0 else 1
    return limit, page


def _page(params: Any, items: Sequence[Any], name: str, render: Callable[[Any], Any]) -> Response:
    """One page of ``items`` (``limit`` / ``page`` query), as RetailCRM answers a paged list."""
    limit, page = _paging(params.get("limit"), params.get("page"))
    chosen = items[(page - 1) * limit : page * limit]
    return _json(
        {
            "success": True,
            "pagination": _pagination(limit, page, len(items)),
            name: [render(i) for i in chosen],
        }
    )


def _pagination(limit: int, page: int, total: int) -> dict[str, int]:
    return {
        "limit": limit,
        "totalCount": total,
        "currentPage": page,
        "totalPageCount": math.ceil(total / limit),
    }


def _amount(raw: Any, errors: dict[str, str]) -> Decimal | None:
    if raw is None or str(raw).strip() == "":
        errors["amount"] = "This value should not be blank."
        return None
    try:
        amount = Decimal(str(raw).strip())
    except InvalidOperation:
        errors["amount"] = "This value should be a valid number."
        return None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        errors["amount"] = "This value should be greater than 0 with at most 2 decimals."
        return None
    return amount.quantize(Decimal("0.01"))


def _date(raw: Any, name: str, errors: dict[str, str]) -> date | None:
    if raw is None or str(raw).strip() == "":
        return None
    try:
        return date.fromisoformat(str(raw).strip()[:10])
    except ValueError:
        errors[name] = "This value is not a valid date (Y-m-d)."
        return None


def _stamp_param(raw: str | None, name: str, errors: dict[str, str], ledger: Ledger) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=ledger.zone)
    except ValueError:
        errors[name] = "This value is not a valid datetime (Y-m-d H:i:s)."
        return None


async def _not_found(request: Request, exc: Exception) -> Response:
    return _fail(404, "API method not found")


class _Gate:
    """The API key (header or query) and the per-key budget; over budget is 503, as RetailCRM answers."""

    def __init__(self, app: Any, api_key: str, budget: RateBudget) -> None:
        self.app = app
        self.api_key = api_key
        self.budget = budget

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        presented = request.headers.get("x-api-key") or request.query_params.get("apiKey")
        if not presented:
            response = _fail(401, '"apiKey" is missing.')
        elif presented != self.api_key:
            response = _fail(403, 'Wrong "apiKey" value.')
        elif not self.budget.take(presented).allowed:
            response = _fail(503, "Service temporarily unavailable: too many requests")
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


def build_crm_app(
    world: World,
    *,
    api_key: str = DEFAULT_API_KEY,
    rate_per_second: float = 100.0,
    burst: int | None = None,
    clock: Callable[[], datetime] | None = None,
    timezone: str = "Europe/Moscow",
) -> Starlette:
    """Build the emulated CRM for ``world`` (mount it at ``/crm``); its ledger lives as long as the app.

    Args:
        world: customers give the loyalty accounts, ``crm_operations`` the existing ledger.
        api_key: the key clients must send as ``X-API-KEY`` (or ``?apiKey=``).
        rate_per_second: the per-key budget (token bucket), 503 past it; ``0`` disables the limit.
        burst: the bucket size; one second's worth of requests by default.
        clock: "now" for new operations and balances (wall clock by default; tests pin it).
        timezone: the CRM's zone for ``createdAt`` and for counting activation and expiry days.

    Example:
        >>> app = build_crm_app(world)  # doctest: +SKIP
        >>> # POST /api/v5/loyalty/account/159/bonus/credit  amount=50&activationDate=2026-11-15&comment=crm:…
    """
    crm = _Crm(world, clock or (lambda: datetime.now(UTC)), timezone)
    prefix = "/api/v5/loyalty"
    app = Starlette(
        routes=[
            Route(f"{prefix}/accounts", crm.accounts),
            Route(f"{prefix}/account/{{id}}", crm.account_get),
            Route(f"{prefix}/account/{{id}}/bonus/credit", crm.credit, methods=["POST"]),
            Route(f"{prefix}/account/{{id}}/bonus/charge", crm.charge, methods=["POST"]),
            Route(f"{prefix}/account/{{id}}/bonus/operations", crm.history),
            Route(f"{prefix}/account/{{id}}/bonus/{{status}}/details", crm.details),
            Route(f"{prefix}/bonus/operations", crm.feed),
        ],
        exception_handlers={404: _not_found, 405: _not_found},
    )
    app.add_middleware(_Gate, api_key=api_key, budget=RateBudget(rate_per_second, burst))
    return app
