"""The console's read pages show the values support staff look for, in Russian, masked for viewers."""

from __future__ import annotations

import csv
import io

from ..conftest import TestClient, login
from ..seed import ANNA, BORIS, Seeded


def test_dashboard_shows_open_failures_by_system_trend_and_scheduler(client: TestClient) -> None:
    login(client, "oleg")
    page = client.get("/console/").text
    assert 'href="/console/failures?system=crm"><span class="big">1</span> crm' in page
    assert 'href="/console/failures?system=onec"><span class="big">1</span> onec' in page
    assert "<title>19.11: 2</title>" in page, "both discrepancies are on 19 November in the chart"
    assert "connector-01:4242" in page


def test_runs_filter_by_kind_and_show_a_runs_items(client: TestClient, seeded: Seeded) -> None:
    login(client, "oleg")
    page = client.get("/console/runs", params={"kind": "reconcile"}).text
    assert f'href="/console/runs/{seeded.reconcile_run}"' in page
    assert f'href="/console/runs/{seeded.sync_run}"' not in page
    run = client.get(f"/console/runs/{seeded.sync_run}").text
    assert f'href="/console/failures/{seeded.anna_failure}"' in run
    assert "получено: 2" in run


def test_failures_filter_by_system_route_and_error_kind(client: TestClient, seeded: Seeded) -> None:
    login(client, "oleg")
    onec = client.get("/console/failures", params={"system": "onec"}).text
    assert f"/console/failures/{seeded.boris_failure}" in onec
    assert f'/console/failures/{seeded.anna_failure}"' not in onec
    permanent = client.get(
        "/console/failures", params={"error_kind": "permanent", "route": "evotor->crm:postings"}
    )
    assert f"/console/failures/{seeded.anna_failure}" in permanent.text
    assert f"/console/failures/{seeded.boris_failure}" not in permanent.text
    nothing = client.get("/console/failures", params={"since": "2026-11-21"}).text
    assert "Ничего не найдено." in nothing


def test_failure_page_shows_error_payload_and_actions(client: TestClient, seeded: Seeded) -> None:
    login(client, "oleg")
    page = client.get(f"/console/failures/{seeded.anna_failure}").text
    assert "503 Service Unavailable" in page
    assert "&#34;amount&#34;: &#34;61.00&#34;" in page
    assert 'id="retry"' in page
    assert 'name="reason"' in page


def test_viewer_sees_masked_phones_in_payloads_and_pages(client: TestClient, seeded: Seeded) -> None:
    login(client, "vera")
    failure = client.get(f"/console/failures/{seeded.anna_failure}").text
    assert ANNA not in failure
    assert "+7********67" in failure
    customer = client.get(f"/console/customers/{BORIS}").text
    # The phone the viewer typed is in the page's own address (kept for the language switch), nowhere else.
    assert BORIS not in customer.replace(f'value="/console/customers/{BORIS}"', "")
    assert '<span id="account">+7********01</span>' in customer


def test_reconciliation_detail_filters_and_exports_csv(client: TestClient, seeded: Seeded) -> None:
    login(client, "oleg")
    page = client.get(
        f"/console/reconciliations/{seeded.reconcile_run}", params={"kind": "missing_accrual"}
    ).text
    assert "нет начисления" in page
    assert "расходится баланс</td>" not in page
    assert "-61,00" in page
    answer = client.get(f"/console/reconciliations/{seeded.reconcile_run}/discrepancies.csv")
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.content.startswith("\ufeff".encode()), "a BOM, so that Excel reads the file as UTF-8"
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert [(r["kind"], r["delta"], r["fix"], r["state"]) for r in rows] == [
        ("balance_mismatch", "1.00", "manual", "open"),
        ("missing_accrual", "-61.00", "post_posting", "open"),
    ]


def test_customer_found_by_any_phone_spelling_shows_money_and_missing_accrual(client: TestClient) -> None:
    login(client, "oleg")
    page = client.get("/console/customers", params={"q": "8 916 123-45-67"})
    assert page.url.path == f"/console/customers/{ANNA}"
    assert "1\xa0234,50\xa0₽" in page.text
    assert "19.11.2026" in page.text
    assert '<tr class="bad">' in page.text, "the accrual the rules expect is missing everywhere"


def test_unknown_customer_and_unknown_item(client: TestClient) -> None:
    login(client, "oleg")
    assert "По этому клиенту нет документов" in client.get("/console/customers/+79990000000").text
    missing = client.get("/console/failures/999")
    assert missing.status_code == 404
    assert "Не найдено" in missing.text


def test_health_lists_pulls_and_lease_holders(client: TestClient) -> None:
    login(client, "oleg")
    page = client.get("/console/health").text
    assert "connector-01:4242" in page
    assert "receipts" in page
    assert "20.11.2026 05:00" in page, "the pull time (02:00 UTC) in Moscow time"


def test_audit_page_lists_sign_ins(client: TestClient) -> None:
    login(client, "oleg")
    page = client.get("/console/audit").text
    assert "<td>oleg</td><td>вход</td>" in page
