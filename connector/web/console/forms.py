"""The console's state-changing requests: sign in and out, language, retry/skip failures, apply fixes, users.

Each POST handler first requires a session (else the login page), then a valid CSRF token (else 403), then the
role the action needs (else 403). Every action is written to the audit log by :mod:`.actions` or here.
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from connector.errors import InputError
from connector.store.tables import USER_ROLES, User

from ..auth import UserInfo, authenticate, create_user, list_users, set_locale, set_role
from ..i18n import LOCALES
from . import queries as q
from .actions import ActionRefusedError, apply_fixes, audit, retry_failure, retry_failures, skip_failure
from .routes import parse_date
from .web import (
    LANG_COOKIE,
    PRE_LOGIN_COOKIE,
    SESSION_COOKIE,
    checked_form,
    console_state,
    page_user,
    render,
    require,
)

__all__ = ["router"]

router = APIRouter()
Viewer = Annotated[UserInfo, Depends(page_user)]
Form = Annotated[FormData, Depends(checked_form)]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _back(request: Request, form: FormData, fallback: str, msg: str) -> RedirectResponse:
    """Redirect after a POST to the page named by the form (only pages of this console), with a message key."""
    target = _text(form, "next")
    root = request.scope.get("root_path", "")
    if not target.startswith(f"{root}/") or target.startswith("//"):
        target = fallback
    joiner = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{joiner}msg={msg}", status_code=303)


def _login_page(request: Request, error: str | None = None, status_code: int = 200) -> Response:
    nonce = request.cookies.get(PRE_LOGIN_COOKIE) or secrets.token_urlsafe(16)
    next_page = request.query_params.get("next", "")
    response = render(
        request, "login.html", None, status_code, prelogin=nonce, error=error, next_page=next_page
    )
    response.set_cookie(PRE_LOGIN_COOKIE, nonce, httponly=True, samesite="strict", path="/")
    if request.query_params.get("lang") in LOCALES:
        # Before sign-in the language is the browser's choice; afterwards the user's own setting wins.
        response.set_cookie(LANG_COOKIE, request.query_params["lang"], samesite="strict", path="/")
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    """The sign-in page."""
    return _login_page(request)


@router.post("/login")
def login(request: Request, form: Form) -> Response:
    """Check name and password (throttled per address and name); on success start a session."""
    state = console_state(request)
    name, password = _text(form, "name"), str(form.get("password") or "")
    address = request.client.host if request.client else "?"
    keys = (f"addr:{address}", f"name:{name}")
    if any(state.limiter.blocked(key) for key in keys):
        audit(state.store, name or "?", "login", None, "refused: throttled", address=address)
        return _login_page(request, "Too many attempts. Try again in a few minutes.", 429)
    user = authenticate(state.store, name, password)
    if user is None:
        for key in keys:
            state.limiter.failed(key)
        audit(state.store, name or "?", "login", None, "refused: wrong name or password", address=address)
        return _login_page(request, "Wrong name or password.", 401)
    for key in keys:
        state.limiter.succeeded(key)
    audit(state.store, user.name, "login", None, "ok", address=address)
    return _start_session(request, user, _text(form, "next"))


def _start_session(request: Request, user: UserInfo, next_page: str) -> Response:
    state = console_state(request)
    root = request.scope.get("root_path", "")
    target = next_page if next_page.startswith(f"{root}/") and not next_page.startswith("//") else f"{root}/"
    response = RedirectResponse(target, status_code=303)
    with state.store.session() as session:
        row = session.get(User, user.id)
        password_hash = row.password_hash if row else ""
    secure = request.url.scheme == "https"
    cookie = state.signer.issue(user.id, password_hash)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=state.signer.lifetime, httponly=True, samesite="strict",
                        secure=secure, path="/")  # fmt: skip
    response.delete_cookie(PRE_LOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, user: Viewer, form: Form) -> Response:
    """End the session."""
    audit(console_state(request).store, user.name, "logout", None, "ok")
    response = RedirectResponse(f"{request.scope.get('root_path', '')}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/locale")
def change_locale(request: Request, user: Viewer, form: Form) -> Response:
    """Switch the signed-in user's console language."""
    store = console_state(request).store
    locale = _text(form, "locale")
    try:
        set_locale(store, user.name, locale)
    except InputError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    audit(store, user.name, "user.locale", user.name, "ok", locale=locale)
    return _back(request, form, f"{request.scope.get('root_path', '')}/", "saved")


@router.post("/failures/{item_id}/retry")
def retry(request: Request, item_id: int, user: Viewer, form: Form) -> Response:
    """Queue one failed item for the next sync (operators)."""
    require(user, "operator")
    fallback = f"{request.scope.get('root_path', '')}/failures/{item_id}"
    try:
        retry_failure(console_state(request).store, item_id, user.name)
    except ActionRefusedError:
        return _back(request, form, fallback, "refused")
    return _back(request, form, fallback, "retried")


@router.post("/failures/{item_id}/skip")
def skip(request: Request, item_id: int, user: Viewer, form: Form) -> Response:
    """Skip one failed item with a reason (operators)."""
    require(user, "operator")
    fallback = f"{request.scope.get('root_path', '')}/failures/{item_id}"
    try:
        skip_failure(console_state(request).store, item_id, user.name, _text(form, "reason"))
    except ActionRefusedError:
        return _back(request, form, fallback, "refused")
    return _back(request, form, fallback, "skipped")


@router.post("/failures/retry")
def retry_filtered(request: Request, user: Viewer, form: Form) -> Response:
    """Retry every open item of the filtered set, after the confirmation box is ticked (operators)."""
    require(user, "operator")
    where = q.FailureFilter(
        system=_text(form, "system") or None,
        route=_text(form, "route") or None,
        store=_text(form, "store") or None,
        since=parse_date(_text(form, "since")),
        until=parse_date(_text(form, "until")),
        error_kind=_text(form, "error_kind") or None,
    )
    target = f"{request.scope.get('root_path', '')}/failures?{urlencode(where.as_params())}"
    if _text(form, "confirm") != "yes":
        return RedirectResponse(f"{target}&msg=confirm", status_code=303)
    retry_failures(console_state(request).store, where, user.name)
    return RedirectResponse(f"{target}&msg=bulk_retried", status_code=303)


@router.get("/reconciliations/{run_id}/fix")
def fix_plan(request: Request, run_id: int, user: Viewer) -> Response:
    """The fix plan of a reconciliation: what would be written where, to be confirmed before applying."""
    store = console_state(request).store
    rows = [d for d in q.discrepancies(store, run_id) if d.state == "open"]
    automatic = [d for d in rows if (d.fix or {}).get("action", "manual") != "manual"]
    manual = [d for d in rows if d not in automatic]
    return render(request, "fix_plan.html", user, run_id=run_id, automatic=automatic, manual=manual)


@router.post("/reconciliations/{run_id}/fix")
def fix_apply(request: Request, run_id: int, user: Viewer, form: Form) -> Response:
    """Apply the automatic fixes of the plan once the operator confirmed (operators)."""
    require(user, "operator")
    base = f"{request.scope.get('root_path', '')}/reconciliations/{run_id}"
    if _text(form, "confirm") != "yes":
        return RedirectResponse(f"{base}/fix?msg=confirm", status_code=303)
    state = console_state(request)
    try:
        outcome = apply_fixes(state.store, state.config, run_id, user.name)
    except ActionRefusedError:
        return RedirectResponse(f"{base}?msg=refused", status_code=303)
    return RedirectResponse(
        f"{base}?msg={'fixes_failed' if outcome.failed else 'fixes_applied'}", status_code=303
    )


@router.get("/users")
def users_page(request: Request, user: Viewer) -> Response:
    """Users and their roles (admins)."""
    require(user, "admin")
    found = list_users(console_state(request).store)
    msg = request.query_params.get("msg")
    return render(request, "users.html", user, users=found, roles=USER_ROLES, msg=msg)


@router.post("/users")
def users_add(request: Request, user: Viewer, form: Form) -> Response:
    """Add a user (admins)."""
    require(user, "admin")
    store, name, role = console_state(request).store, _text(form, "name"), _text(form, "role")
    fallback = f"{request.scope.get('root_path', '')}/users"
    try:
        create_user(store, name, role, str(form.get("password") or ""))
    except InputError as exc:
        audit(store, user.name, "user.add", name, f"refused: {exc}", role=role)
        return _back(request, form, fallback, "refused")
    audit(store, user.name, "user.add", name, "ok", role=role)
    return _back(request, form, fallback, "user_added")


@router.post("/users/{name}/role")
def users_role(request: Request, name: str, user: Viewer, form: Form) -> Response:
    """Change a user's role (admins)."""
    require(user, "admin")
    store, role = console_state(request).store, _text(form, "role")
    fallback = f"{request.scope.get('root_path', '')}/users"
    try:
        set_role(store, name, role)
    except InputError as exc:
        audit(store, user.name, "user.role", name, f"refused: {exc}", role=role)
        return _back(request, form, fallback, "refused")
    audit(store, user.name, "user.role", name, "ok", role=role)
    return _back(request, form, fallback, "role_changed")
