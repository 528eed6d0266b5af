"""The support console in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

The operator's story runs end to end: a sandbox world is served, a real sync runs while the sandbox CRM answers
500 (so a customer's accrual is parked as a failed item), the service app (``create_app``, what ``serve`` runs)
serves the console over that state; the operator finds the customer by phone, sees the accrual missing in the
CRM, retries the item, the next syncs write it, and the page shows the item resolved and the accrual in the CRM.

The other tests use a seeded state database (``tests/connector/web/seed.py``): a viewer cannot retry, a POST
without the CSRF token is refused, and the main pages render at 1280 and 390 px wide, with screenshots written
to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pytest
import uvicorn
import yaml
from fastapi import FastAPI
from sqlalchemy import select

from connector.config import ConnectorConfig, load_config
from connector.sandbox.generator import SandboxOptions, generate_world
from connector.sandbox.server import SandboxServer
from connector.store import Store, open_store
from connector.store.failures import FailedItems
from connector.store.tables import FailedItem, JournalDocument
from connector.sync import run_sync
from connector.web.app import create_app
from connector.web.auth import create_user
from connector.web.console import install_console
from tests.connector.web.seed import NOW, Seeded, cheap_hashes, console_config, seed
from tests.e2e.sync_support import seed_opening_balances, write_config

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
    server, thread, url = _serve(app, lifespan="off")
    yield Live(url, store, seeded)
    server.should_exit = True
    thread.join(timeout=5)
    store.close()


@dataclass
class SandboxLive:
    """The service app over the state of a real sync against the sandbox, whose CRM failed once."""

    url: str
    store: Store
    config: ConnectorConfig
    item_id: int
    account: str


def _short_http_waits(path: Path) -> None:
    """Retries of a failing CRM cost milliseconds, not the production backoff."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    policy = {"backoff_base": 0.01, "backoff_max": 0.05, "max_retry_wait": 0.1, "max_retries": 1}
    for system in data["systems"].values():
        system.setdefault("options", {})["http"] = policy
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _serve(
    app: FastAPI, lifespan: Literal["auto", "on", "off"] = "auto"
) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Serve ``app`` on a free loopback port in a thread; return the server, the thread and its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan=lifespan)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def _parked_accrual(store: Store) -> tuple[int, str]:
    items = [
        i for i in FailedItems(store.sessions).list() if i.route == "evotor->crm:postings" and i.document
    ]
    assert items, "the sync parked no CRM write"
    document = items[0].document
    assert document is not None
    with store.session() as session:
        row = session.scalar(select(JournalDocument).where(JournalDocument.source_id == document.id))
    assert row is not None
    assert row.account is not None
    return items[0].id, row.account


@pytest.fixture(scope="module")
def sandbox_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxLive]:
    directory = tmp_path_factory.mktemp("sandbox")
    world = generate_world(SandboxOptions(seed=5, stores=1, days=1, receipts=4, customers=4, clean=True,
                                          start=date(2026, 11, 2)))  # fmt: skip
    with SandboxServer(world, rate_per_second=0) as sandbox:
        seed_opening_balances(sandbox.base_url, world)
        path = write_config(world, sandbox.base_url, directory, sync={"max_attempts": 1})
        _short_http_waits(path)
        config = load_config(path)
        sandbox.faults.update("crm:500=1")
        assert run_sync(config).exit_code == 1
        sandbox.faults.update("")
        store = open_store(config.state)
        item_id, account = _parked_accrual(store)
        with cheap_hashes():
            create_user(store, "oleg", "operator", _PASSWORD)
        server, thread, url = _serve(create_app(config, store=store, process_webhooks=False))
        yield SandboxLive(url, store, config, item_id, account)
        server.should_exit = True
        thread.join(timeout=5)
        store.close()


@pytest.fixture(scope="session")
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


def _login(page: Any, url: str, name: str) -> None:
    page.goto(f"{url}/console/")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", _PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/console/")


def _state(live: Live, item_id: int) -> str:
    with live.store.session() as session:
        row = session.get(FailedItem, item_id)
        assert row is not None
        return row.state


def _national(phone: str) -> str:
    """How a customer dictates it: ``8 (916) 123-45-67``."""
    d = phone.removeprefix("+7")
    return f"8 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}"


def test_operator_finds_the_customer_whose_accrual_is_missing_retries_and_sees_it_resolved(
    browser: Any, sandbox_live: SandboxLive
) -> None:
    live, item = sandbox_live, sandbox_live.item_id
    page = _page(browser)
    _login(page, live.url, "oleg")
    page.click("text=Клиенты")
    page.fill("#q", _national(live.account))
    page.click("button:has-text('Найти')")
    assert page.inner_text("#account") == live.account
    missing = page.locator("tr.bad", has_text="начисление")
    assert missing.count() == 1, "the accrual the rules expect is not in the CRM"
    assert "нет" in missing.inner_text()
    row = page.locator(f"#failure-{item}")
    assert "500" in row.inner_text()
    row.locator("button.retry").click()
    page.wait_for_selector("p.flash.good")
    assert row.locator(".state").inner_text() == "повтор запрошен"

    # The next scheduled syncs: the first writes the retried accrual, the second reads the CRM's ledger back.
    for _ in range(2):
        run_sync(live.config)
    page.reload()
    assert page.locator(f"#failure-{item} .state").inner_text() == "решён"
    assert page.locator(f"#failure-{item} button.retry").count() == 0
    assert page.locator("tr.bad", has_text="начисление").count() == 0, "the CRM now holds the accrual"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "customer-after-retry-desktop.png"), full_page=True)
    page.context.close()


def test_viewer_sees_no_retry_button_and_a_forged_post_is_refused(browser: Any, live: Live) -> None:
    page = _page(browser)
    _login(page, live.url, "vera")
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
    _login(page, live.url, "oleg")
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
    _login(page, live.url, "oleg")
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
