"""Console accounts: users and roles, password hashes, signed session cookies, CSRF tokens, login throttling, API tokens.

Roles are ranked: a ``viewer`` reads, an ``operator`` also retries, skips and applies fixes, an ``admin`` also
manages users. Passwords are stored as argon2id hashes; an unknown user is checked against a dummy hash so that
a wrong password and an unknown name take the same time and get the same answer.

Sessions are stateless cookies ``<user id>.<expiry>.<nonce>.<signature>``: the HMAC covers the user's current
password hash, so a password change ends every session of that user. The CSRF token of a page is an HMAC of the
session cookie (or of a pre-login nonce on the login page), checked on every state-changing request.

API tokens (``loyalty-connector users token NAME``) are credentials of their own: a row in ``users`` named
``api:<NAME>`` with the owner's role, whose ``password_hash`` is ``sha256$<hex>`` of the token. The token
``lct_<row id>_<secret>`` is shown once; only its hash is kept, and reissuing replaces it. Such rows cannot log
in with a password.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from threading import Lock
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from connector.errors import InputError
from connector.store import Store
from connector.store.tables import USER_ROLES, User

__all__ = [
    "API_PREFIX",
    "ROLE_RANK",
    "LoginLimiter",
    "SessionSigner",
    "UserInfo",
    "allowed",
    "authenticate",
    "create_user",
    "hash_password",
    "issue_token",
    "list_users",
    "set_locale",
    "set_role",
    "token_user",
    "verify_password",
]

ROLE_RANK: Final = {"viewer": 0, "operator": 1, "admin": 2}
API_PREFIX: Final = "api:"
_TOKEN_PREFIX: Final = "lct_"  # noqa: S105 - the public prefix of every token, not a secret
_SHA_PREFIX: Final = "sha256$"
_MIN_PASSWORD: Final = 8
_HASHER: Final = PasswordHasher()
# Verified against when the name is unknown: the same work as a real check, so timing says nothing.
_DUMMY_HASH: Final = _HASHER.hash("not-a-password-" + secrets.token_hex(8))


@dataclass(frozen=True)
class UserInfo:
    """A signed-in user as the console sees it (never the hash)."""

    id: int
    name: str
    role: str
    locale: str

    @property
    def is_token(self) -> bool:
        """Whether this identity is an API token rather than a person."""
        return self.name.startswith(API_PREFIX)


def _info(row: User) -> UserInfo:
    return UserInfo(row.id, row.name, row.role, row.locale)


def allowed(role: str, needed: str) -> bool:
    """Whether ``role`` may do what ``needed`` may (``allowed("admin", "operator")`` is True)."""
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]


def hash_password(password: str) -> str:
    """The argon2id hash string of a password."""
    return _HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches the stored argon2 hash (False for any other kind of hash)."""
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _check_new_user(name: str, role: str, password: str) -> None:
    if role not in USER_ROLES:
        raise InputError(f"role must be one of {', '.join(USER_ROLES)}", field="role")
    if not name or len(name) > 64 or name.startswith(API_PREFIX) or not name.isprintable():
        raise InputError(
            "a user name is 1-64 printable characters and does not start with 'api:'", field="name"
        )
    if len(password) < _MIN_PASSWORD:
        raise InputError(f"a password has at least {_MIN_PASSWORD} characters", field="password")


def create_user(store: Store, name: str, role: str, password: str, locale: str = "ru") -> UserInfo:
    """Add a console user.

    Raises:
        InputError: bad role, name or a too short password, or the name is taken.
    """
    _check_new_user(name, role, password)
    with store.transaction() as session:
        if session.scalar(select(User.id).where(User.name == name)) is not None:
            raise InputError(f"user {name!r} exists", field="name")
        row = User(name=name, role=role, password_hash=hash_password(password), locale=locale)
        session.add(row)
        session.flush()
        return _info(row)


def list_users(store: Store) -> list[UserInfo]:
    """Every user and API token, by name."""
    with store.session() as session:
        return [_info(row) for row in session.scalars(select(User).order_by(User.name))]


def _update(store: Store, name: str, **values: str) -> UserInfo:
    with store.transaction() as session:
        row = session.scalar(select(User).where(User.name == name))
        if row is None:
            raise InputError(f"no user {name!r}", field="name")
        for key, value in values.items():
            setattr(row, key, value)
        return _info(row)


def set_role(store: Store, name: str, role: str) -> UserInfo:
    """Change a user's role.

    Raises:
        InputError: unknown user or role.
    """
    if role not in USER_ROLES:
        raise InputError(f"role must be one of {', '.join(USER_ROLES)}", field="role")
    return _update(store, name, role=role)


def set_locale(store: Store, name: str, locale: str) -> UserInfo:
    """Change a user's console language (``ru`` or ``en``)."""
    if locale not in ("ru", "en"):
        raise InputError("locale must be ru or en", field="locale")
    return _update(store, name, locale=locale)


def authenticate(store: Store, name: str, password: str) -> UserInfo | None:
    """The user when name and password match, else None — in the same time for unknown names."""
    with store.session() as session:
        row = session.scalar(select(User).where(User.name == name))
    if row is None or row.name.startswith(API_PREFIX):
        verify_password(_DUMMY_HASH, password)
        return None
    return _info(row) if verify_password(row.password_hash, password) else None


def _sha(token: str) -> str:
    return _SHA_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def issue_token(store: Store, owner: str) -> str:
    """Issue (or reissue, revoking the old one) the API token of user ``owner``, with the owner's role.

    Returns:
        The token, to be shown once: ``lct_<id>_<secret>``.

    Raises:
        InputError: no such user.
    """
    secret = secrets.token_urlsafe(32)
    with store.transaction() as session:
        person = session.scalar(select(User).where(User.name == owner))
        if person is None or person.name.startswith(API_PREFIX):
            raise InputError(f"no user {owner!r}", field="name")
        name = API_PREFIX + owner
        row = session.scalar(select(User).where(User.name == name))
        if row is None:
            row = User(name=name, role=person.role, password_hash="", locale=person.locale)
            session.add(row)
            session.flush()
        token = f"{_TOKEN_PREFIX}{row.id}_{secret}"
        row.role, row.password_hash = person.role, _sha(token)
    return token


def token_user(store: Store, token: str) -> UserInfo | None:
    """The identity an API token stands for, or None when it is unknown or revoked."""
    parts = token.removeprefix(_TOKEN_PREFIX).split("_", 1)
    if not token.startswith(_TOKEN_PREFIX) or len(parts) != 2 or not parts[0].isdigit():
        return None
    with store.session() as session:
        row = session.get(User, int(parts[0]))
    if row is None or not row.name.startswith(API_PREFIX):
        return None
    return _info(row) if hmac.compare_digest(row.password_hash, _sha(token)) else None


@dataclass
class SessionSigner:
    """Signs session cookies and derives CSRF tokens.

    Args:
        secret: the HMAC key; ``LC_CONSOLE_SECRET`` when set, else random per process (sessions end on restart).
        lifetime: seconds a session lasts.
    """

    secret: bytes = field(default_factory=lambda: os.environ.get("LC_CONSOLE_SECRET", "").encode()
                          or secrets.token_bytes(32))  # fmt: skip
    lifetime: int = 12 * 3600

    def _mac(self, *parts: str) -> str:
        return hmac.new(self.secret, "|".join(parts).encode(), hashlib.sha256).hexdigest()

    def issue(self, user_id: int, password_hash: str) -> str:
        """A cookie value for a fresh session of ``user_id``."""
        expiry, nonce = str(int(time.time()) + self.lifetime), secrets.token_hex(8)
        return f"{user_id}.{expiry}.{nonce}.{self._mac(str(user_id), expiry, nonce, password_hash)}"

    @staticmethod
    def claimed_user(cookie: str) -> int | None:
        """The user id a cookie claims (not yet verified: see :meth:`valid`)."""
        head = cookie.split(".", 1)[0]
        return int(head) if head.isdigit() and cookie.count(".") == 3 else None

    def valid(self, cookie: str, password_hash: str) -> bool:
        """Whether the cookie is well signed for the user's current password hash and not expired."""
        user_id, expiry, nonce, mac = cookie.split(".")
        if not expiry.isdigit() or int(expiry) < time.time():
            return False
        return hmac.compare_digest(self._mac(user_id, expiry, nonce, password_hash), mac)

    def csrf(self, binding: str) -> str:
        """The CSRF token bound to a session cookie (or a pre-login nonce)."""
        return self._mac("csrf", binding)

    def csrf_ok(self, binding: str | None, token: str | None) -> bool:
        """Whether ``token`` is the CSRF token of ``binding``."""
        return bool(binding and token) and hmac.compare_digest(self.csrf(binding or ""), token or "")


@dataclass
class LoginLimiter:
    """At most ``attempts`` failed logins per key (client address and name) within ``window`` seconds."""

    attempts: int = 5
    window: float = 300.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: Lock = field(default_factory=Lock)

    def blocked(self, key: str) -> bool:
        """Whether this key has used up its attempts."""
        with self._lock:
            return len(self._recent(key)) >= self.attempts

    def failed(self, key: str) -> None:
        """Count one failed attempt."""
        with self._lock:
            self._recent(key).append(time.monotonic())

    def succeeded(self, key: str) -> None:
        """Forget the failures of a key after a good login."""
        with self._lock:
            self._failures.pop(key, None)

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] < time.monotonic() - self.window:
            times.popleft()
        return times
