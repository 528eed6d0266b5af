"""Sign-in, CSRF, roles and the actions of the console's forms, through HTTP."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from connector.store import Store
from connector.store.tables import AuditEntry, Discrepancy, FailedItem, Fix

from ..conftest import PASSWORD, RecordingTarget, TestClient, csrf_of, login
from ..seed import Seeded


def _item(store: Store, item_id: int) -> FailedItem:
    with store.session() as session:
        row = session.get(FailedItem, item_id)
        assert row is not None
        return row


def _audit(store: Store) -> list[tuple[str, str, str | None, str]]:
    with store.session() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(e.who, e.action, e.target, e.outcome) for e in rows]


def test_unauthenticated_pages_lead_to_the_login_page_never_data(client: TestClient, seeded: Seeded) -> None:
    for path in ("/console/", f"/console/failures/{seeded.anna_failure}", "/console/customers/+79161234567"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/login")
    page = client.get("/console/customers/+79161234567")
    assert "Войти" in page.text
    assert "1042" not in page.text, "no receipt of the customer leaks"
    assert "234,50" not in page.text
    assert 'name="next" value="/console/customers/+79161234567"' in page.text


def test_wrong_password_and_unknown_user_get_the_same_answer(client: TestClient) -> None:
    token = csrf_of(client.get("/console/login").text)
    wrong = client.post("/console/login", data={"name": "oleg", "password": "nope-nope", "csrf_token": token})
    unknown = client.post(
        "/console/login", data={"name": "ghost", "password": "nope-nope", "csrf_token": token}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert "Неверное имя или пароль." in wrong.text
    assert "Неверное имя или пароль." in unknown.text
    assert "lc_session" not in client.cookies


def test_session_cookie_is_httponly_and_samesite(client: TestClient) -> None:
    token = csrf_of(client.get("/console/login").text)
    answer = client.post(
        "/console/login",
        data={"name": "oleg", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    cookie = next(v for v in answer.headers.get_list("set-cookie") if v.startswith("lc_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert answer.headers["location"] == "/console/"


def test_login_attempts_are_throttled(client: TestClient) -> None:
    token = csrf_of(client.get("/console/login").text)
    codes = [
        client.post(
            "/console/login", data={"name": "oleg", "password": "bad-guess", "csrf_token": token}
        ).status_code
        for _ in range(6)
    ]
    assert codes == [401] * 5 + [429]
    right = client.post("/console/login", data={"name": "oleg", "password": PASSWORD, "csrf_token": token})
    assert right.status_code == 429, "the right password does not open a throttled name either"


def test_login_without_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/console/login")
    answer = client.post("/console/login", data={"name": "oleg", "password": PASSWORD})
    assert answer.status_code == 403


def test_operator_retries_a_failed_item_and_it_is_audited(
    client: TestClient, store: Store, seeded: Seeded
) -> None:
    token = login(client, "oleg")
    page = client.post(f"/console/failures/{seeded.anna_failure}/retry", data={"csrf_token": token})
    assert page.status_code == 200
    assert "поставлен на повтор" in page.text
    assert _item(store, seeded.anna_failure).state == "retried"
    assert ("oleg", "failure.retry", f"failed_item:{seeded.anna_failure}", "ok") in _audit(store)


def test_post_without_csrf_token_is_refused(client: TestClient, store: Store, seeded: Seeded) -> None:
    login(client, "oleg")
    answer = client.post(f"/console/failures/{seeded.anna_failure}/retry", data={})
    assert answer.status_code == 403
    forged = client.post(f"/console/failures/{seeded.anna_failure}/retry", data={"csrf_token": "0" * 64})
    assert forged.status_code == 403
    assert _item(store, seeded.anna_failure).state == "open"


def test_viewer_cannot_retry(client: TestClient, store: Store, seeded: Seeded) -> None:
    token = login(client, "vera")
    page = client.get(f"/console/failures/{seeded.anna_failure}")
    assert 'id="retry"' not in page.text
    answer = client.post(f"/console/failures/{seeded.anna_failure}/retry", data={"csrf_token": token})
    assert answer.status_code == 403
    assert _item(store, seeded.anna_failure).state == "open"


def test_skip_needs_a_reason_and_records_who_and_why(
    client: TestClient, store: Store, seeded: Seeded
) -> None:
    token = login(client, "oleg")
    empty = client.post(
        f"/console/failures/{seeded.anna_failure}/skip", data={"csrf_token": token, "reason": " "}
    )
    assert "msg=refused" in str(empty.url)
    client.post(
        f"/console/failures/{seeded.anna_failure}/skip",
        data={"csrf_token": token, "reason": "клиент вернул покупку в другой магазин"},
    )
    item = _item(store, seeded.anna_failure)
    assert (item.state, item.skipped_by, item.skip_reason) == (
        "skipped",
        "oleg",
        "клиент вернул покупку в другой магазин",
    )


def test_bulk_retry_needs_confirmation_and_queues_the_filtered_set(
    client: TestClient, store: Store, seeded: Seeded
) -> None:
    token = login(client, "oleg")
    unconfirmed = client.post("/console/failures/retry", data={"csrf_token": token, "system": "crm"})
    assert "msg=confirm" in str(unconfirmed.url)
    assert _item(store, seeded.anna_failure).state == "open"
    other = client.post(
        "/console/failures/retry", data={"csrf_token": token, "system": "onec", "confirm": "yes"}
    )
    assert other.status_code == 200
    assert _item(store, seeded.anna_failure).state == "open"
    client.post("/console/failures/retry", data={"csrf_token": token, "system": "crm", "confirm": "yes"})
    assert _item(store, seeded.anna_failure).state == "retried"


def test_fix_plan_is_applied_after_confirmation_once(
    client: TestClient, store: Store, seeded: Seeded, crm: RecordingTarget
) -> None:
    key = f"crm:evotor:{seeded.anna_sale}:accrual"
    token = login(client, "oleg")
    plan = client.get(f"/console/reconciliations/{seeded.reconcile_run}/fix")
    assert key in plan.text
    client.post(f"/console/reconciliations/{seeded.reconcile_run}/fix", data={"csrf_token": token})
    assert store.outbox.get(key) is None, "not without the confirmation"
    done = client.post(
        f"/console/reconciliations/{seeded.reconcile_run}/fix", data={"csrf_token": token, "confirm": "yes"}
    )
    assert "Исправления записаны в системы." in done.text
    again = client.post(
        f"/console/reconciliations/{seeded.reconcile_run}/fix", data={"csrf_token": token, "confirm": "yes"}
    )
    assert "msg=refused" in str(again.url), "nothing open is left to fix"
    assert list(crm.kept) == [key]
    assert crm.kept[key].amount == Decimal("61.00")
    entry = store.outbox.get(key)
    assert entry is not None
    assert entry.state == "confirmed"
    with store.session() as session:
        states = dict(session.execute(select(Discrepancy.kind, Discrepancy.state)).all())
        fixes = list(session.scalars(select(Fix)))
    assert states == {"missing_accrual": "fixed", "balance_mismatch": "open"}
    assert [(f.applied_by, f.outbox_key) for f in fixes] == [("oleg", key)]


def test_a_fix_the_target_refuses_stays_open_and_says_so(
    client: TestClient, store: Store, seeded: Seeded, crm: RecordingTarget
) -> None:
    crm.fail = True
    token = login(client, "oleg")
    page = client.post(
        f"/console/reconciliations/{seeded.reconcile_run}/fix", data={"csrf_token": token, "confirm": "yes"}
    )
    assert "Часть исправлений не записана" in page.text
    assert ("oleg", "reconcile.apply_fixes", f"run:{seeded.reconcile_run}",
            "failed: 1 write(s): 0 written, 0 already there, 1 manual") in _audit(store)  # fmt: skip


def test_admin_adds_a_user_operator_cannot(client: TestClient, store: Store) -> None:
    token = login(client, "oleg")
    assert client.get("/console/users").status_code == 403
    refused = client.post(
        "/console/users", data={"csrf_token": token, "name": "x", "role": "viewer", "password": "p" * 9}
    )
    assert refused.status_code == 403
    client.post("/console/logout", data={"csrf_token": token})
    token = login(client, "alla")
    client.post(
        "/console/users", data={"csrf_token": token, "name": "nina", "role": "operator", "password": "p" * 9}
    )
    client.post("/console/users/nina/role", data={"csrf_token": token, "role": "viewer"})
    assert "nina" in client.get("/console/users").text
    assert ("alla", "user.role", "nina", "ok") in _audit(store)
    client.post("/console/logout", data={"csrf_token": token})
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_english_is_selectable_per_user(client: TestClient) -> None:
    token = login(client, "oleg")
    page = client.post(
        "/console/locale", data={"csrf_token": token, "locale": "en", "next": "/console/failures"}
    )
    assert "Retry all" in page.text or "Failures" in page.text
    assert '<html lang="en">' in page.text
