"""Passwords, users, API tokens, session cookies, CSRF tokens and the login throttle."""

from __future__ import annotations

import time

import pytest

from connector.errors import InputError
from connector.store import Store
from connector.store.tables import User
from connector.web import auth
from connector.web.auth import (
    LoginLimiter,
    SessionSigner,
    authenticate,
    create_user,
    issue_token,
    set_role,
    token_user,
)

from .conftest import PASSWORD


def test_passwords_are_stored_as_argon2id_hashes(store: Store) -> None:
    with store.session() as session:
        stored = session.query(User).filter_by(name="oleg").one().password_hash
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert auth.verify_password(stored, PASSWORD)
    assert not auth.verify_password(stored, PASSWORD + "!")
    assert not auth.verify_password("sha256$abc", PASSWORD), "a token hash never verifies as a password"


def test_authenticate_checks_a_dummy_hash_for_unknown_names(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real = auth.verify_password
    monkeypatch.setattr(auth, "verify_password", lambda h, p: checked.append(h) or real(h, p))
    assert authenticate(store, "oleg", PASSWORD) == auth.UserInfo(2, "oleg", "operator", "ru")
    assert authenticate(store, "oleg", "wrong password") is None
    assert authenticate(store, "ghost", "wrong password") is None
    assert len(checked) == 3, "the unknown name cost one hash check like the others"


@pytest.mark.parametrize(
    ("name", "role", "password", "field"),
    [
        ("nina", "boss", "long enough", "role"),
        ("nina", "viewer", "short", "password"),
        ("api:nina", "viewer", "long enough", "name"),
        ("oleg", "viewer", "long enough", "name"),
    ],
)
def test_create_user_refuses_bad_input(store: Store, name: str, role: str, password: str, field: str) -> None:
    with pytest.raises(InputError) as caught:
        create_user(store, name, role, password)
    assert caught.value.context["field"] == field


def test_api_tokens_act_with_the_owners_role_and_reissuing_revokes(store: Store) -> None:
    first = issue_token(store, "oleg")
    assert first.startswith("lct_")
    user = token_user(store, first)
    assert user is not None
    assert (user.name, user.role, user.is_token) == ("api:oleg", "operator", True)
    set_role(store, "oleg", "viewer")
    second = issue_token(store, "oleg")
    assert token_user(store, first) is None
    reissued = token_user(store, second)
    assert reissued is not None
    assert reissued.role == "viewer"
    assert authenticate(store, "api:oleg", second) is None, "a token row cannot sign in with a password"
    for garbage in ("", "lct_", "lct_x_y", "lct_999_abc", second + "x"):
        assert token_user(store, garbage) is None


def test_session_cookies_are_signed_bound_to_the_password_and_expire() -> None:
    signer = SessionSigner(secret=b"k" * 32)
    cookie = signer.issue(7, "$argon2id$old")
    assert signer.claimed_user(cookie) == 7
    assert signer.valid(cookie, "$argon2id$old")
    assert not signer.valid(cookie, "$argon2id$new"), "a password change ends the session"
    assert not signer.valid(cookie.replace("7.", "8.", 1), "$argon2id$old")
    assert not SessionSigner(secret=b"other" * 8).valid(cookie, "$argon2id$old")
    expired = SessionSigner(secret=b"k" * 32, lifetime=-10).issue(7, "$argon2id$old")
    assert not signer.valid(expired, "$argon2id$old")
    assert signer.claimed_user("garbage") is None


def test_csrf_tokens_are_bound_to_their_session() -> None:
    signer = SessionSigner(secret=b"k" * 32)
    token = signer.csrf("session-a")
    assert signer.csrf_ok("session-a", token)
    assert not signer.csrf_ok("session-b", token)
    assert not signer.csrf_ok("session-a", None)
    assert not signer.csrf_ok(None, token)


def test_login_limiter_blocks_after_five_failures_for_the_window() -> None:
    limiter = LoginLimiter(attempts=5, window=0.2)
    for _ in range(4):
        limiter.failed("addr:1")
    assert not limiter.blocked("addr:1")
    limiter.failed("addr:1")
    assert limiter.blocked("addr:1")
    assert not limiter.blocked("addr:2")
    time.sleep(0.25)
    assert not limiter.blocked("addr:1"), "failures older than the window are forgotten"
    limiter.failed("addr:1")
    limiter.succeeded("addr:1")
    assert not limiter.blocked("addr:1")
