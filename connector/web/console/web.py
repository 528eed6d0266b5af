"""The console's request plumbing: its state on the app, who is signed in, CSRF checks, and page rendering.

Every page depends on :func:`page_user`: without a valid session cookie the request is answered with a
redirect to the login page, never with data. Every state-changing request goes through :func:`checked_form`,
which refuses (403) a form whose CSRF token is not the one bound to the session.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.responses import Response

from connector.config import ConnectorConfig
from connector.logs import mask_phone, mask_text
from connector.store import Store
from connector.store.tables import User

from ..auth import LoginLimiter, SessionSigner, UserInfo, allowed
from ..i18n import Translator, translator

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LANG_COOKIE",
    "PRE_LOGIN_COOKIE",
    "SESSION_COOKIE",
    "ConsoleState",
    "LoginRequired",
    "checked_form",
    "console_state",
    "page_user",
    "render",
    "require",
    "session_user",
]

SESSION_COOKIE = "lc_session"
LANG_COOKIE = "lc_lang"
PRE_LOGIN_COOKIE = "lc_prelogin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


@dataclass
class ConsoleState:
    """What every request of the console and the API shares.

    Attributes:
        config: the connector configuration.
        store: the open state database.
        signer: session and CSRF signing.
        limiter: the login throttle.
        clock: the current time (tests pin it).
        probe_systems: whether the health page calls the systems (off in tests without a network).
    """

    config: ConnectorConfig
    store: Store
    signer: SessionSigner = field(default_factory=SessionSigner)
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    probe_systems: bool = True
    templates: Jinja2Templates = field(default_factory=lambda: Jinja2Templates(directory=str(TEMPLATES_DIR)))


class LoginRequired(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by :func:`page_user` when no valid session comes with a page request."""


def console_state(request: Request) -> ConsoleState:
    """The console state of the app serving this request."""
    state: ConsoleState = request.app.state.console
    return state


def session_user(request: Request) -> UserInfo | None:
    """The user of a valid session cookie, else None."""
    state, cookie = console_state(request), request.cookies.get(SESSION_COOKIE, "")
    user_id = state.signer.claimed_user(cookie)
    if user_id is None:
        return None
    with state.store.session() as session:
        row = session.get(User, user_id)
    if row is None or not state.signer.valid(cookie, row.password_hash):
        return None
    return UserInfo(row.id, row.name, row.role, row.locale)


def page_user(request: Request) -> UserInfo:
    """FastAPI dependency: the signed-in user, or a redirect to the login page."""
    user = session_user(request)
    if user is None:
        raise LoginRequired()
    return user


def require(user: UserInfo, role: str) -> None:
    """Refuse (403) a user whose role is below ``role``."""
    if not allowed(user.role, role):
        raise HTTPException(status_code=403, detail="forbidden")


async def checked_form(request: Request) -> FormData:
    """The submitted form, once its CSRF token proves it came from a page of this console (else 403)."""
    form = await request.form()
    token = form.get(CSRF_FIELD)
    sent = token if isinstance(token, str) else request.headers.get(CSRF_HEADER)
    signer = console_state(request).signer
    bindings = (request.cookies.get(SESSION_COOKIE), request.cookies.get(PRE_LOGIN_COOKIE))
    if not any(signer.csrf_ok(binding, sent) for binding in bindings):
        raise HTTPException(status_code=403, detail="csrf")
    return form


def _phone_shower(user: UserInfo | None) -> Callable[[str | None], str]:
    def show(value: str | None) -> str:
        if not value:
            return ""
        if user is not None and user.role != "viewer":
            return value
        return mask_phone(value) if value.startswith("+") else mask_text(value)

    return show


def _text_shower(user: UserInfo | None) -> Callable[[str | None], str]:
    def show(value: str | None) -> str:
        if not value:
            return ""
        return value if user is not None and user.role != "viewer" else mask_text(value)

    return show


_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")


def _value_shower(t: Translator) -> Callable[[Any, str], str]:
    """Show a discrepancy's expected/actual value: amounts the Russian way, other values as they are."""

    def show(value: Any, unit: str = "points") -> str:
        if value is None:
            return "—"
        if isinstance(value, str | int | Decimal) and _DECIMAL.match(str(value)):
            return t.money(Decimal(str(value))) if unit == "money" else t.points(Decimal(str(value)))
        if isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False, sort_keys=True)
        return str(value)

    return show


def _iso_date(t: Translator) -> Callable[[Any], str]:
    def show(value: Any) -> str:
        try:
            return t.date(date.fromisoformat(str(value))) if value else ""
        except ValueError:
            return str(value)

    return show


def _translator(request: Request, user: UserInfo | None) -> Translator:
    locale = user.locale if user else request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    return translator(locale, console_state(request).config.timezone)


def render(
    request: Request, template: str, user: UserInfo | None, status_code: int = 200, **context: Any
) -> Response:
    """Render a page with the translator, the user, the CSRF token and the phone masking of the user's role."""
    state = console_state(request)
    t = _translator(request, user)
    binding = request.cookies.get(SESSION_COOKIE) if user else context.pop("prelogin", None)
    values = {
        "t": t,
        "_": t.gettext,
        "user": user,
        "can_operate": user is not None and allowed(user.role, "operator"),
        "is_admin": user is not None and allowed(user.role, "admin"),
        "csrf_token": state.signer.csrf(binding) if binding else "",
        "phone": _phone_shower(user),
        "private": _text_shower(user),
        "value": _value_shower(t),
        "isodate": _iso_date(t),
        "path": request.url.path,
        "quote": quote,
        "root": str(request.scope.get("root_path", "")),
        **context,
    }
    return state.templates.TemplateResponse(request, template, values, status_code=status_code)
