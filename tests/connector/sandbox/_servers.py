"""Test helpers: run an ASGI app under a real uvicorn on a free port, and build small worlds by hand."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import uvicorn

from connector.sandbox.world import CrmOperation, Product, Receipt, ReceiptLine, SandboxCustomer, Store, World

__all__ = ["MSK", "make_receipt", "make_world", "serve"]

MSK = ZoneInfo("Europe/Moscow")


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a port the OS picks) in a thread; yield its base URL, stop on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="critical", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _store(n: int) -> Store:
    return Store(
        id=f"20230110-0000-40BB-80CC-00000000000{n}",
        code=f"S0{n}",
        name=f"Магазин {n}",
        timezone="Europe/Moscow",
        evotor_device_id=f"20230110-1B2C-40D3-80E4-00000000000{n}",
        onec_store_ref=f"00000000-0000-0000-0000-00000000010{n}",
        onec_register_ref=f"00000000-0000-0000-0000-00000000020{n}",
    )


PRODUCTS = [
    Product(
        "101",
        "Латте 0.3",
        "coffee",
        Decimal("250.00"),
        "c0ffee00-0001-4000-8000-000000000001",
        "p1",
        "4600001",
    ),
    Product(
        "205",
        "Круассан",
        "bakery",
        Decimal("150.00"),
        "c0ffee00-0002-4000-8000-000000000002",
        "p2",
        "4600002",
    ),
    Product(
        "900", "Вино", "alcohol", Decimal("990.00"), "c0ffee00-0003-4000-8000-000000000003", "p3", "4600003"
    ),
]

CUSTOMERS = [
    SandboxCustomer("+79161234567", "2000000123456", "Анна", None, "pa", "ca", 11, 159),
    SandboxCustomer("+79267654321", "2000000654321", "Борис", None, "pb", "cb", 12, 160),
]


def make_receipt(
    n: int,
    *,
    store: Store,
    at: datetime,
    kind: str = "sale",
    phone: str | None = "+79161234567",
    original_id: str | None = None,
    bonus: Decimal = Decimal("0.00"),
) -> Receipt:
    """A two-line receipt: 2 lattes with 76.92 off, 1 croissant with 23.08 off; ``bonus`` paid with points."""
    lines = (
        ReceiptLine(
            1, "101", Decimal("2.000"), Decimal("250.00"), Decimal("423.08"), Decimal("76.92"), bonus
        ),
        ReceiptLine(2, "205", Decimal("1.000"), Decimal("150.00"), Decimal("126.92"), Decimal("23.08")),
    )
    total = sum((line.amount for line in lines), Decimal(0))
    payments: tuple[tuple[str, Decimal], ...] = (("card", total - bonus),)
    if bonus:
        payments += (("bonus", bonus),)
    return Receipt(
        id=f"5d1c2f0a-8b4e-4c1a-9f3e-{n:012d}",
        kind=kind,  # type: ignore[arg-type]
        store_id=store.id,
        number=n,
        session_number=1 + n // 100,
        occurred_at=at,
        customer_phone=phone,
        lines=lines,
        payments=payments,
        fiscal=("7281440500000000", str(3000 + n), f"{1234567890 + n}"),
        original_id=original_id,
    )


def make_world(
    receipts_per_store: int = 10, stores: int = 1, *, operations: list[CrmOperation] | None = None
) -> World:
    """A world of ``stores`` shops with ``receipts_per_store`` sales each, one every 7 minutes from 2026-11-01."""
    world = World(
        seed=7,
        start=date(2026, 11, 1),
        days=1,
        clean=False,
        program_yaml="program: {name: test}\n",
        onec_program_ref="00000000-0000-0000-0000-000000000999",
        stores=[_store(n) for n in range(1, stores + 1)],
        products=list(PRODUCTS),
        customers=list(CUSTOMERS),
        crm_operations=list(operations or []),
    )
    start = datetime(2026, 11, 1, 9, 0, tzinfo=MSK)
    for store in world.stores:
        base = len(world.receipts)
        for i in range(receipts_per_store):
            phone = None if i % 5 == 4 else CUSTOMERS[i % 2].phone
            at = start + timedelta(minutes=7 * i, milliseconds=i)
            world.receipts.append(make_receipt(base + i + 1, store=store, at=at, phone=phone))
    return world
