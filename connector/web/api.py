"""The JSON API under ``/api/v1``: the console's data and actions for automation, with an OpenAPI schema.

Authentication: ``Authorization: Bearer lct_…`` (a token from ``loyalty-connector users token NAME``), or the
console's session cookie — then a state-changing request must also send the page's CSRF token in
``X-CSRF-Token``. Without either the answer is 401; a role too low for an action is 403. ``GET /health`` needs
no login and tells only whether the service and its database are up. Money and points are 2-decimal strings,
dates ISO 8601; phone numbers are masked for viewers.

The schema is at ``/api/v1/openapi.json``.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase

from connector import __version__
from connector.errors import InputError
from connector.logs import mask_phone, mask_text

from .auth import UserInfo, allowed, create_user, list_users, set_role, token_user
from .console import queries as q
from .console.actions import (
    ActionRefusedError,
    apply_fixes,
    audit,
    retry_failure,
    retry_failures,
    skip_failure,
)
from .console.customer import customer_view
from .console.health import health_view
from .console.web import CSRF_HEADER, SESSION_COOKIE, ConsoleState, console_state, session_user

__all__ = ["create_api_app", "to_json"]

_MASKED_FIELDS = ("account", "payload_excerpt", "error")


def to_json(value: Any) -> Any:
    """Plain JSON for rows, dataclasses and values: Decimal as a 2-decimal string, dates ISO 8601."""
    if isinstance(value, DeclarativeBase):
        return {c.key: to_json(getattr(value, c.key)) for c in value.__mapper__.column_attrs}
    if is_dataclass(value) and not isinstance(value, type):
        return to_json(asdict(value))
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_json(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def _mask(value: Any) -> Any:
    """Mask phones in every string of a JSON value (what a viewer gets)."""
    if isinstance(value, str):
        return mask_phone(value) if value.startswith("+") and value[1:].isdigit() else mask_text(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


def api_user(request: Request) -> UserInfo:
    """The caller: a bearer token, else a session cookie (with CSRF on writes); 401 without either."""
    state = console_state(request)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        user = token_user(state.store, header[7:].strip())
    else:
        user = session_user(request)
        unsafe = request.method not in ("GET", "HEAD", "OPTIONS")
        if user is not None and unsafe:
            binding = request.cookies.get(SESSION_COOKIE)
            if not state.signer.csrf_ok(binding, request.headers.get(CSRF_HEADER)):
                raise HTTPException(status_code=403, detail="missing or wrong X-CSRF-Token")
    if user is None:
        raise HTTPException(status_code=401, detail="authentication required",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    return user


Caller = Annotated[UserInfo, Depends(api_user)]
router = APIRouter()


def _need(user: UserInfo, role: str) -> None:
    if not allowed(user.role, role):
        raise HTTPException(status_code=403, detail=f"needs the {role} role")


def _out(user: UserInfo, value: Any) -> Any:
    data = to_json(value)
    return _mask(data) if user.role == "viewer" else data


def _health(request: Request) -> JSONResponse:
    """Whether the service and its state database answer; no login, no data."""
    try:
        with console_state(request).store.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database = "ok"
    except SQLAlchemyError:
        database = "unreachable"
    body = {"status": "ok" if database == "ok" else "degraded", "database": database, "version": __version__}
    return JSONResponse(body, status_code=200 if database == "ok" else 503)


@router.get("/runs", summary="Runs, newest first")
def runs(request: Request, user: Caller, kind: str | None = None, status: str | None = None) -> Any:
    """Runs, newest first."""
    return _out(user, q.runs(console_state(request).store, q.RunFilter(kind=kind, status=status)))


@router.get("/runs/{run_id}", summary="One run with its failed items")
def run(request: Request, run_id: int, user: Caller) -> Any:
    """One run with its failed items."""
    store = console_state(request).store
    found = q.run(store, run_id)
    if found is None:
        raise HTTPException(status_code=404, detail=f"no run {run_id}")
    items = q.failures(store, q.FailureFilter(state=None), run_id=run_id)
    return _out(user, {"run": found, "failed_items": items})


@router.get("/failures", summary="Failed items, filtered")
def failures(request: Request, user: Caller, system: str | None = None, route: str | None = None,
             store: str | None = None, error_kind: str | None = None, state: str | None = "open") -> Any:  # fmt: skip
    """Failed items, filtered."""
    where = q.FailureFilter(
        system=system, route=route, store=store, error_kind=error_kind, state=state or None
    )
    return _out(user, q.failures(console_state(request).store, where))


@router.get("/failures/{item_id}", summary="One failed item with its error and payload")
def failure(request: Request, item_id: int, user: Caller) -> Any:
    """One failed item with its error and payload."""
    found = q.failure(console_state(request).store, item_id)
    if found is None:
        raise HTTPException(status_code=404, detail=f"no failed item {item_id}")
    return _out(user, found)


@router.get("/reconciliations", summary="Reconciliation runs with counts by state")
def reconciliations(request: Request, user: Caller) -> Any:
    """Reconciliation runs with counts by state."""
    found = q.reconciliations(console_state(request).store)
    return _out(user, [{"run": run, "counts": counts} for run, counts in found])


@router.get("/reconciliations/{run_id}/discrepancies", summary="A reconciliation's discrepancies, filtered")
def discrepancies(request: Request, run_id: int, user: Caller, kind: str | None = None,
                  store: str | None = None, state: str | None = None) -> Any:  # fmt: skip
    """A reconciliation's discrepancies, filtered."""
    where = q.DiscrepancyFilter(kind=kind, store=store, state=state)
    return _out(user, q.discrepancies(console_state(request).store, run_id, where))


@router.get("/customers/{query}", summary="A customer by phone or card: documents, postings, balances")
def customer(request: Request, query: str, user: Caller) -> Any:
    """A customer by phone or card: documents, postings, balances."""
    state = console_state(request)
    view = customer_view(state.store, state.config, query, state.clock())
    body = {
        "account": view.account,
        "documents": [dict(row) for row in view.documents],
        "postings": view.postings,
        "balances": {s: {**asdict(b), "available": b.available} for s, b in view.balances.items()},
        "expected": [{"posting": e.posting, "found": e.found} for e in view.expected],
        "discrepancies": view.discrepancies,
        "failed_items": view.failures,
    }
    return _out(user, body)


@router.get("/health/details", summary="Systems reachable, last pulls, leases")
def health_details(request: Request, user: Caller) -> Any:
    """Systems reachable, last pulls, leases."""
    state = console_state(request)
    return _out(
        user, health_view(state.store, state.config, state.clock(), check_systems=state.probe_systems)
    )


@router.get("/audit", summary="The audit log, newest first")
def audit_log(request: Request, user: Caller, who: str | None = None) -> Any:
    """The audit log, newest first."""
    return _out(user, q.audit_entries(console_state(request).store, who))


def _refused(exc: InputError) -> HTTPException:
    return HTTPException(status_code=409, detail=str(exc))


@router.post("/failures/{item_id}/retry", summary="Queue a failed item for the next sync (operator)")
def retry(request: Request, item_id: int, user: Caller) -> Any:
    """Queue a failed item for the next sync (operator)."""
    _need(user, "operator")
    try:
        return to_json(retry_failure(console_state(request).store, item_id, user.name))
    except ActionRefusedError as exc:
        raise _refused(exc) from exc


@router.post("/failures/{item_id}/skip", summary="Skip a failed item with a reason (operator)")
def skip(request: Request, item_id: int, user: Caller, reason: Annotated[str, Body(embed=True)]) -> Any:
    """Skip a failed item with a reason (operator)."""
    _need(user, "operator")
    try:
        return to_json(skip_failure(console_state(request).store, item_id, user.name, reason))
    except ActionRefusedError as exc:
        raise _refused(exc) from exc


@router.post("/failures/retry", summary="Retry every open item matching the filter (operator)")
def retry_many(request: Request, user: Caller, filter: Annotated[dict[str, str], Body(embed=True)]) -> Any:
    """Retry every open item matching the filter (operator)."""
    _need(user, "operator")
    where = q.FailureFilter(
        system=filter.get("system") or None,
        route=filter.get("route") or None,
        store=filter.get("store") or None,
        error_kind=filter.get("error_kind") or None,
    )
    return {"queued": retry_failures(console_state(request).store, where, user.name)}


@router.post("/reconciliations/{run_id}/fixes", summary="Apply the automatic fixes of a run (operator)")
def fixes(request: Request, run_id: int, user: Caller, confirm: Annotated[bool, Body(embed=True)],
          ids: Annotated[list[int] | None, Body(embed=True)] = None) -> Any:  # fmt: skip
    """Apply the automatic fixes of a run (operator)."""
    _need(user, "operator")
    if not confirm:
        raise HTTPException(status_code=400, detail="send confirm: true to apply the plan")
    state = console_state(request)
    try:
        return to_json(apply_fixes(state.store, state.config, run_id, user.name, ids))
    except ActionRefusedError as exc:
        raise _refused(exc) from exc


@router.get("/users", summary="Users and tokens (admin)")
def users(request: Request, user: Caller) -> Any:
    """Users and tokens (admin)."""
    _need(user, "admin")
    return to_json(list_users(console_state(request).store))


@router.post("/users", summary="Add a user (admin)", status_code=201)
def add_user(request: Request, user: Caller, name: Annotated[str, Body()], role: Annotated[str, Body()],
             password: Annotated[str, Body()]) -> Any:  # fmt: skip
    """Add a user (admin)."""
    _need(user, "admin")
    store = console_state(request).store
    try:
        created = create_user(store, name, role, password)
    except InputError as exc:
        audit(store, user.name, "user.add", name, f"refused: {exc}", role=role)
        raise _refused(exc) from exc
    audit(store, user.name, "user.add", name, "ok", role=role)
    return to_json(created)


@router.post("/users/{name}/role", summary="Change a user's role (admin)")
def change_role(request: Request, name: str, user: Caller, role: Annotated[str, Body(embed=True)]) -> Any:
    """Change a user's role (admin)."""
    _need(user, "admin")
    store = console_state(request).store
    try:
        changed = set_role(store, name, role)
    except InputError as exc:
        audit(store, user.name, "user.role", name, f"refused: {exc}", role=role)
        raise _refused(exc) from exc
    audit(store, user.name, "user.role", name, "ok", role=role)
    return to_json(changed)


def create_api_app(state: ConsoleState) -> FastAPI:
    """The JSON API as an app of its own, to be mounted at ``/api/v1`` (schema at ``/openapi.json`` there).

    Interactive docs are off: they would load scripts from a CDN, and the console must work offline.
    """
    app = FastAPI(title="loyalty-connector API", version="1", docs_url=None, redoc_url=None)
    app.state.console = state
    app.add_api_route("/health", _health, methods=["GET"], summary="Service and database up (no login)")
    app.include_router(router)
    return app
