"""The support console in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

The state database is seeded with what a sync and a nightly reconciliation leave behind (see
``tests/connector/web/seed.py``): Anna's accrual push to the CRM failed and is parked as an open failed item.
An operator finds her by phone, sees the missing accrual, retries the item; the next sync's success is applied
through the failed-items repository (what the sync engine calls when the write goes through), and the page shows
the item resolved. Screenshots of the main pages at 1280 and 390 px go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from connector.model import DocRef
from connector.store import Store, open_store
from connector.store.failures import FailedItems
from connector.store.tables import FailedItem
from connector.web.auth import create_user
from connector.web.console import install_console
from tests.connector.web.seed import ANNA, NOW, Seeded, cheap_hashes, console_config, seed

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not found: `apt-get install chromium` (make test does)"
)

_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--lang=ru-RU",
]  # fmt: skip
_PASSWORD = "correct horse battery"
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
WIDTHS = {"desktop": 1280, "phone": 390}


@dataclass
class Live:
    """The console served by uvicorn on a free port, over a seeded database."""

    url: str
    store: Store
    seeded: Seeded


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path = tmp_path_factory.mktemp("console") / "state.db"
    store = open_store(f"sqlite:///{path}")
    with cheap_hashes():
        for name, role in (("vera", "viewer"), ("oleg", "operator")):
            create_user(store, name, role, _PASSWORD)
    seeded = seed(store)
    app = FastAPI()
    install_console(app, console_config(f"sqlite:///{path}"), store, clock=lambda: NOW, probe_systems=False)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Live(f"http://127.0.0.1:{port}", store, seeded)
    server.should_exit = True
    thread.join(timeout=5)
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=_FLAGS)
        yield launched
        launched.close()


def _page(browser: Any, width: int = 1280) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="ru-RU")
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def _login(page: Any, live: Live, name: str) -> None:
    page.goto(f"{live.url}/console/")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", _PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.url}/console/")


def _state(live: Live, item_id: int) -> str:
    with live.store.session() as session:
        row = session.get(FailedItem, item_id)
        assert row is not None
        return row.state


def test_operator_finds_the_customer_without_accrual_and_retries(browser: Any, live: Live) -> None:
    page = _page(browser)
    _login(page, live, "oleg")
    page.click("text=Клиенты")
    page.fill("#q", "8 (916) 123-45-67")
    page.click("button:has-text('Найти')")
    assert page.inner_text("#account") == ANNA
    expected = page.locator("tr.bad", has_text="начисление")
    assert "61,00" in expected.inner_text(), "the accrual the rules expect is shown as missing"
    row = page.locator(f"#failure-{live.seeded.anna_failure}")
    assert "503" in row.inner_text()
    row.locator("button.retry").click()
    page.wait_for_selector("p.flash.good")
    assert row.locator(".state").inner_text() == "повтор запрошен"
    assert _state(live, live.seeded.anna_failure) == "retried"

    # The next sync writes the accrual and resolves the item (connector.sync calls exactly this on success).
    ref = DocRef(system="evotor", kind="receipt", id=live.seeded.anna_sale)
    FailedItems(live.store.sessions).resolve(ref, "evotor->crm:postings")
    page.reload()
    assert page.locator(f"#failure-{live.seeded.anna_failure} .state").inner_text() == "решён"
    assert page.locator(f"#failure-{live.seeded.anna_failure} button.retry").count() == 0
    page.context.close()


def test_viewer_sees_no_retry_button_and_a_forged_post_is_refused(browser: Any, live: Live) -> None:
    page = _page(browser)
    _login(page, live, "vera")
    page.goto(f"{live.url}/console/failures/{live.seeded.boris_failure}")
    assert page.locator("#item-state").inner_text() == "открыт"
    assert page.locator("#retry").count() == 0
    token = page.get_attribute("form[action$='/logout'] input[name=csrf_token]", "value")
    answer = page.request.post(
        f"{live.url}/console/failures/{live.seeded.boris_failure}/retry", form={"csrf_token": token}
    )
    assert answer.status == 403
    page.goto(f"{live.url}/console/customers/+79035550101")
    assert page.inner_text("#account") == "+7********01", "phones are masked for viewers"
    assert _state(live, live.seeded.boris_failure) == "open"
    page.context.close()


def test_a_post_without_the_csrf_token_is_refused(browser: Any, live: Live) -> None:
    page = _page(browser)
    _login(page, live, "oleg")
    answer = page.request.post(f"{live.url}/console/failures/{live.seeded.boris_failure}/retry", form={})
    assert answer.status == 403
    assert _state(live, live.seeded.boris_failure) == "open"
    page.context.close()


_PAGES = {
    "dashboard": "/console/",
    "failures": "/console/failures",
    "failure": "/console/failures/{boris_failure}",
    "customer": "/console/customers/+79035550101",
    "reconciliation": "/console/reconciliations/{reconcile_run}",
    "fix-plan": "/console/reconciliations/{reconcile_run}/fix",
    "runs": "/console/runs",
    "health": "/console/health",
    "audit": "/console/audit",
}


@pytest.mark.parametrize("device", list(WIDTHS))
def test_pages_render_at_desktop_and_phone_width(browser: Any, live: Live, device: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = _page(browser, WIDTHS[device])
    page.goto(f"{live.url}/console/login")
    page.screenshot(path=str(SHOTS / f"login-{device}.png"), full_page=True)
    _login(page, live, "oleg")
    ids = {"boris_failure": live.seeded.boris_failure, "reconcile_run": live.seeded.reconcile_run}
    for name, path in _PAGES.items():
        answer = page.goto(live.url + path.format(**ids))
        assert answer is not None
        assert answer.status == 200, path
        # Nothing but the wide tables (which scroll inside their own box) may widen the page.
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than a {WIDTHS[device]}px screen"
        page.screenshot(path=str(SHOTS / f"{name}-{device}.png"), full_page=True)
    page.context.close()
