"""Fixtures for the emulated 1C: a small hand-made world and a real uvicorn server on a free port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from connector.sandbox.onec import OneCApp, OneCInfobase, build_onec_app
from connector.sandbox.world import (
    OneCBonusDocument,
    OneCReceipt,
    Product,
    Receipt,
    ReceiptLine,
    SandboxCustomer,
    Store,
    World,
)

MSK = timezone(timedelta(hours=3))
PROGRAM_REF = "a7b8c9d0-8888-11ee-8a3c-00155d0a1f01"
PARTNER_1 = "c3d4e5f6-4444-11ee-8a3c-00155d0a1f01"
PARTNER_2 = "c3d4e5f6-4445-11ee-8a3c-00155d0a1f01"
CARD_1 = "d4e5f6a7-5555-11ee-8a3c-00155d0a1f01"
CARD_2 = "d4e5f6a7-5556-11ee-8a3c-00155d0a1f01"
SALE_REF = "5f0c2a1e-e2b7-11ee-8a3c-00155d0a1f01"
RETURN_REF = "5f0c2a1e-e2b7-11ee-8a3c-00155d0a1f02"
ANON_REF = "5f0c2a1e-e2b7-11ee-8a3c-00155d0a1f03"
BONUS_REF = "6a0c2a1e-e2b7-11ee-8a3c-00155d0a1f01"

PROGRAM_YAML = """
program:
  name: Бонусы
  timezone: Europe/Moscow
  point_value: "1.00"
  accrual: {percent: "5"}
  activation_delay_days: 14
  expiry_days: 365
  redemption: {max_share_percent: "30"}
"""


def _line(no: int, sku: str, qty: str, price: str, amount: str, bonus: str = "0.00") -> ReceiptLine:
    return ReceiptLine(no, sku, Decimal(qty), Decimal(price), Decimal(amount), bonus_redeemed=Decimal(bonus))


def make_world() -> World:
    """Two stores, three products, two customers; a sale, its partial return, an anonymous sale, a bonus document."""
    world = World(
        seed=7,
        start=date(2026, 11, 19),
        days=1,
        clean=False,
        program_yaml=PROGRAM_YAML,
        onec_program_ref=PROGRAM_REF,
    )
    world.stores = [
        Store(
            "st-1",
            "S01",
            "Тверская",
            "Europe/Moscow",
            "dev-1",
            "7a1b2c3d-0002-11ee-8a3c-00155d0a1f01",
            "0d1f3c44-9a11-11ee-8a3c-00155d0a1f01",
        ),
        Store(
            "st-2",
            "S02",
            "Екатеринбург",
            "Asia/Yekaterinburg",
            "dev-2",
            "7a1b2c3d-0003-11ee-8a3c-00155d0a1f01",
            "0d1f3c44-9a12-11ee-8a3c-00155d0a1f01",
        ),
    ]
    world.products = [
        Product(
            "MILK-1",
            "Молоко 3,2%",
            "dairy",
            Decimal("89.90"),
            "ev-p1",
            "e5f6a7b8-6666-11ee-8a3c-00155d0a1f01",
            "4601234567893",
        ),
        Product(
            "CIG-1",
            "Сигареты",
            "tobacco",
            Decimal("250.00"),
            "ev-p2",
            "e5f6a7b8-6667-11ee-8a3c-00155d0a1f01",
            "4601234567894",
        ),
        Product(
            "BREAD-1",
            "Хлеб O'Brien",
            "bakery",
            Decimal("45.00"),
            "ev-p3",
            "e5f6a7b8-6668-11ee-8a3c-00155d0a1f01",
            "4601234567895",
        ),
    ]
    world.customers = [
        SandboxCustomer(
            "+79161234567", "2000000000017", "Иванов Иван", date(1990, 5, 1), PARTNER_1, CARD_1, 1, 11
        ),
        SandboxCustomer("+79161234568", "2000000000024", "Петрова Анна", None, PARTNER_2, CARD_2, 2, 12),
    ]
    sale_at = datetime(2026, 11, 19, 14, 32, 7, tzinfo=MSK)
    world.receipts = [
        Receipt(
            "ev-sale",
            "sale",
            "st-1",
            15,
            3,
            sale_at,
            "+79161234567",
            (_line(1, "MILK-1", "2", "89.90", "179.80", "50.00"), _line(2, "BREAD-1", "1", "45.00", "45.00")),
            (("cash", Decimal("174.80")), ("bonus", Decimal("50.00"))),
            ("fn", "fd", "fp"),
        ),
    ]
    world.onec_receipts = [
        OneCReceipt(
            SALE_REF,
            "ev-sale",
            "sale",
            "ТДМ-0001234",
            "onec:evotor:ev-sale:sale",
            "st-1",
            sale_at,
            "+79161234567",
            (_line(1, "MILK-1", "2", "89.90", "179.80", "50.00"), _line(2, "BREAD-1", "1", "45.00", "45.00")),
        ),
        OneCReceipt(
            RETURN_REF,
            "ev-ret",
            "return",
            "ТДМ-0001240",
            "onec:evotor:ev-ret:return",
            "st-1",
            sale_at + timedelta(hours=2),
            "+79161234567",
            (_line(1, "MILK-1", "1", "89.90", "89.90"),),
            original_ref_key=SALE_REF,
        ),
        OneCReceipt(
            ANON_REF,
            "ev-anon",
            "sale",
            "ЕКБ-0000001",
            "onec:evotor:ev-anon:sale",
            "st-2",
            datetime(2026, 11, 19, 9, 0, 0, tzinfo=UTC),
            None,
            (_line(1, "CIG-1", "1", "250.00", "250.00"),),
            posted=False,
            deletion_mark=True,
        ),
    ]
    world.onec_bonus_documents = [
        OneCBonusDocument(
            BONUS_REF,
            "БН-000001",
            sale_at,
            "onec:evotor:ev-sale:accrual",
            PARTNER_1,
            accrual=Decimal("8"),
            write_off=Decimal("0"),
            active_from=date(2026, 12, 3),
            expires_on=date(2027, 12, 3),
        ),
    ]
    return world


@pytest.fixture
def world() -> World:
    return make_world()


class Served:
    """A running server: its base URL (the 1C base root, e.g. http://127.0.0.1:PORT/1c/ut) and the app."""

    def __init__(self, url: str, app: OneCApp) -> None:
        self.url = url
        self.odata = f"{url}/odata/standard.odata"
        self.app = app

    @property
    def infobase(self) -> OneCInfobase:
        return self.app.state.infobase


def start_server(app: Starlette) -> tuple[uvicorn.Server, threading.Thread, int]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, port


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """Start build_onec_app(world, flavour) mounted at /1c/<flavour> like the sandbox server does."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(world: World, flavour: str = "ut", **kwargs: object) -> Served:
        app = build_onec_app(world, flavour=flavour, **kwargs)  # type: ignore[arg-type]
        mount = "/1c/ut" if flavour == "ut" else "/1c/retail"
        server, thread, port = start_server(Starlette(routes=[Mount(mount, app=app)]))
        running.append((server, thread))
        return Served(f"http://127.0.0.1:{port}{mount}", app)

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=5)


@pytest.fixture
def ut(serve: Callable[..., Served], world: World) -> Served:
    return serve(world, "ut")


@pytest.fixture
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.auth = ("exchange", "exchange")
    yield session
    session.close()
