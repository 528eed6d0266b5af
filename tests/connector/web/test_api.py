"""The JSON API under /api/v1: token auth, roles, masking, actions, and the OpenAPI schema."""

from __future__ import annotations

import pytest

from connector.store import Store
from connector.web.auth import issue_token

from .conftest import RecordingTarget, TestClient, csrf_of, login
from .seed import ANNA, BORIS, Seeded


def _bearer(store: Store, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(store, name)}"}


def test_health_needs_no_login_and_tells_no_data(client: TestClient) -> None:
    answer = client.get("/api/v1/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"
    assert answer.json()["database"] == "ok"
    assert set(answer.json()) == {"status", "database", "version"}


@pytest.mark.parametrize(
    "path", ["/api/v1/failures", "/api/v1/runs", f"/api/v1/customers/{ANNA}", "/api/v1/audit"]
)
def test_data_needs_authentication(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    wrong = client.get(path, headers={"Authorization": "Bearer lct_1_not-the-token"})
    assert wrong.status_code == 401


def test_operator_token_reads_failures_and_retries(client: TestClient, store: Store, seeded: Seeded) -> None:
    headers = _bearer(store, "oleg")
    items = client.get("/api/v1/failures", params={"system": "crm"}, headers=headers).json()
    assert [(i["id"], i["route"], i["state"]) for i in items] == [
        (seeded.anna_failure, "evotor->crm:postings", "open")
    ]
    retried = client.post(f"/api/v1/failures/{seeded.anna_failure}/retry", headers=headers)
    assert retried.status_code == 200
    assert retried.json()["state"] == "retried"
    again = client.post(f"/api/v1/failures/{seeded.anna_failure}/retry", headers=headers)
    assert again.status_code == 409, "a retried item cannot be retried again"
    audit = client.get("/api/v1/audit", params={"who": "api:oleg"}, headers=headers).json()
    assert [(e["action"], e["outcome"][:8]) for e in audit] == [
        ("failure.retry", "refused:"),
        ("failure.retry", "ok"),
    ]


def test_viewer_token_is_refused_actions_and_sees_masked_phones(
    client: TestClient, store: Store, seeded: Seeded
) -> None:
    headers = _bearer(store, "vera")
    assert client.post(f"/api/v1/failures/{seeded.boris_failure}/retry", headers=headers).status_code == 403
    body = client.get(f"/api/v1/customers/{BORIS}", headers=headers).json()
    assert body["account"] == "+7********01"
    assert BORIS not in str(body)
    assert body["balances"]["crm"]["pending"] == "40.00"


def test_customer_json_has_expected_postings_and_what_each_system_holds(
    client: TestClient, store: Store, seeded: Seeded
) -> None:
    body = client.get(f"/api/v1/customers/{ANNA}", headers=_bearer(store, "oleg")).json()
    assert body["account"] == ANNA
    assert [(e["posting"]["kind"], e["posting"]["amount"], e["found"]) for e in body["expected"]] == [
        ("accrual", "61.00", {})
    ]
    assert [d["kind"] for d in body["discrepancies"]] == ["missing_accrual"]
    assert [sorted(row) for row in body["documents"]] == [["evotor", "onec"]]


def test_skip_needs_a_reason(client: TestClient, store: Store, seeded: Seeded) -> None:
    headers = _bearer(store, "oleg")
    empty = client.post(f"/api/v1/failures/{seeded.boris_failure}/skip", json={"reason": ""}, headers=headers)
    assert empty.status_code == 409
    done = client.post(
        f"/api/v1/failures/{seeded.boris_failure}/skip", json={"reason": "дубль"}, headers=headers
    )
    assert (done.json()["state"], done.json()["skipped_by"], done.json()["skip_reason"]) == (
        "skipped",
        "api:oleg",
        "дубль",
    )


def test_fixes_need_confirmation_and_apply_once(
    client: TestClient, store: Store, seeded: Seeded, crm: RecordingTarget
) -> None:
    headers = _bearer(store, "oleg")
    url = f"/api/v1/reconciliations/{seeded.reconcile_run}/fixes"
    assert client.post(url, json={"confirm": False}, headers=headers).status_code == 400
    first = client.post(url, json={"confirm": True}, headers=headers).json()
    assert first == {
        "written": [f"crm:evotor:{seeded.anna_sale}:accrual"],
        "already": [],
        "failed": {},
        "manual": [2],
    }
    assert client.post(url, json={"confirm": True}, headers=headers).status_code == 409
    assert len(crm.kept) == 1


def test_bulk_retry_by_filter(client: TestClient, store: Store, seeded: Seeded) -> None:
    answer = client.post(
        "/api/v1/failures/retry", json={"filter": {"system": "onec"}}, headers=_bearer(store, "oleg")
    )
    assert answer.json() == {"queued": [seeded.boris_failure]}


def test_session_cookie_writes_need_the_csrf_header(client: TestClient, seeded: Seeded) -> None:
    token = login(client, "oleg")
    url = f"/api/v1/failures/{seeded.anna_failure}/retry"
    assert client.get("/api/v1/failures").status_code == 200
    assert client.post(url).status_code == 403
    assert client.post(url, headers={"X-CSRF-Token": token}).status_code == 200
    assert csrf_of(client.get("/console/").text) == token


def test_users_are_managed_by_admins_only(client: TestClient, store: Store) -> None:
    new = {"name": "nina", "role": "viewer", "password": "long enough"}
    assert client.post("/api/v1/users", json=new, headers=_bearer(store, "oleg")).status_code == 403
    admin = _bearer(store, "alla")
    assert client.post("/api/v1/users", json=new, headers=admin).status_code == 201
    names = [u["name"] for u in client.get("/api/v1/users", headers=admin).json()]
    assert "nina" in names
    changed = client.post("/api/v1/users/nina/role", json={"role": "operator"}, headers=admin)
    assert changed.json()["role"] == "operator"
    assert client.post("/api/v1/users/nina/role", json={"role": "boss"}, headers=admin).status_code == 409


def test_openapi_schema_lists_the_api(client: TestClient) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["info"]["title"] == "loyalty-connector API"
    for path in (
        "/health",
        "/failures",
        "/failures/{item_id}/retry",
        "/reconciliations/{run_id}/fixes",
        "/customers/{query}",
    ):
        assert path in schema["paths"]
