"""A realistic state database for the console tests: what a sync and a nightly reconciliation leave behind.

Anna (+79161234567) bought for 1 234,50 ₽ at the Evotor till of store ``msk-1``; the receipt reached 1C, but the
accrual push to the CRM failed (a 503 after the retries) and was parked as an open failed item, and the nightly
reconciliation found the accrual missing in the CRM. Boris (+79035550101) bought and was accrued normally.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from argon2 import PasswordHasher

from connector.config import ConnectorConfig
from connector.discrepancies import Discrepancy, FixAction, ReconcileResult
from connector.model import Customer, DocRef, Line, Payment, Posting, Sale, dump_document, dump_posting
from connector.reconcile.persist import save_result
from connector.store import Store
from connector.store.tables import (
    CrossRef,
    FailedItem,
    JournalDocument,
    Lease,
    Run,
    SyncCursor,
)
from connector.web import auth

__all__ = ["ANNA", "BORIS", "NOW", "Seeded", "cheap_hashes", "console_config", "seed"]

ANNA = "+79161234567"
BORIS = "+79035550101"
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
_PROGRAM = {
    "name": "Бонусы",
    "timezone": "Europe/Moscow",
    "point_value": "1.00",
    "accrual": {"percent": "5", "min_purchase": "100", "rounding": "floor"},
    "activation_delay_days": 14,
    "expiry_days": 365,
}


@contextmanager
def cheap_hashes() -> Iterator[None]:
    """Hash the test users' passwords with argon2id at its lowest cost: verifying reads the cost from the hash,
    so every sign-in of a test takes milliseconds instead of a second, through the same code."""
    saved = auth._HASHER
    auth._HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)  # type: ignore[misc]
    try:
        yield
    finally:
        auth._HASHER = saved  # type: ignore[misc]


@dataclass(frozen=True)
class Seeded:
    """Ids of what :func:`seed` wrote."""

    anna_failure: int
    boris_failure: int
    sync_run: int
    reconcile_run: int
    anna_sale: str


def console_config(state: str) -> ConnectorConfig:
    """Three systems on addresses nothing listens on, the design's routes, and a 5 % program."""
    return ConnectorConfig.model_validate(
        {
            "state": state,
            "program": _PROGRAM,
            "systems": {
                "evotor": {"adapter": "evotor", "base_url": "http://127.0.0.1:9/evotor"},
                "onec": {"adapter": "onec", "base_url": "http://127.0.0.1:9/onec"},
                "crm": {"adapter": "crm", "base_url": "http://127.0.0.1:9/crm", "preset": "retailcrm"},
            },
            "routes": [
                {"from": "evotor", "documents": ["sale", "return"], "to": "crm", "write": "postings"},
                {"from": "evotor", "documents": ["sale", "return"], "to": "onec", "write": "documents"},
            ],
        }
    )


def _sale(receipt_id: str, number: str, phone: str, amount: str, at: datetime) -> Sale:
    value = Decimal(amount)
    return Sale(
        ref=DocRef(system="evotor", kind="receipt", id=receipt_id),
        number=number,
        store="msk-1",
        register="till-2",
        occurred_at=at,
        business_date=at.date(),
        customer=Customer(phone=phone),
        lines=(
            Line(
                line_no=1,
                sku="4601234000017",
                name="Кофе зерновой",
                quantity=Decimal("1.000"),
                price=value,
                amount=value,
            ),
        ),
        payments=(Payment(method="card", amount=value),),
        total=value,
    )


def _journal(sale: Sale) -> JournalDocument:
    return JournalDocument(
        system=sale.ref.system, kind=sale.ref.kind, source_id=sale.ref.id, store=sale.store,
        business_date=sale.business_date, occurred_at=sale.occurred_at, number=sale.number, total=sale.total,
        account=sale.account, version="1", status="posted", canonical=dump_document(sale), raw={"id": sale.ref.id},
    )  # fmt: skip


def _onec_copy(sale: Sale, guid: str) -> tuple[JournalDocument, CrossRef]:
    row = JournalDocument(
        system="onec", kind="cheque", source_id=guid, store=sale.store, business_date=sale.business_date,
        occurred_at=sale.occurred_at, number=f"0000-{sale.number}", total=sale.total, account=sale.account,
        version="AAAAAAAB", status="posted", canonical=None, raw={"Ref_Key": guid},
    )  # fmt: skip
    return row, CrossRef.between(sale.ref, DocRef(system="onec", kind="cheque", id=guid), "external_id")


def _accrual(sale: Sale, points: str, ref_id: str | None) -> Posting:
    available = datetime(2026, 12, 2, 21, 0, tzinfo=UTC)
    return Posting(
        key=f"evotor:{sale.ref.id}:accrual", account=sale.account or "", kind="accrual", amount=Decimal(points),
        document=sale.ref, occurred_at=sale.occurred_at, available_at=available,
        expires_at=available + timedelta(days=365), status="pending",
        ref=DocRef(system="crm", kind="bonus_operation", id=ref_id) if ref_id else None,
    )  # fmt: skip


def _crm_operation(posting: Posting) -> JournalDocument:
    """A CRM ledger operation as the sync journals it: its canonical form is the posting read back."""
    assert posting.ref is not None
    return JournalDocument(
        system="crm", kind=posting.ref.kind, source_id=posting.ref.id, account=posting.account,
        occurred_at=posting.occurred_at, total=posting.amount, status="posted",
        canonical=posting.model_copy(update={"document": None}).model_dump(mode="json"),
        raw={"id": int(posting.ref.id), "amount": str(posting.amount)},
    )  # fmt: skip


def _findings(anna: Sale) -> list[Discrepancy]:
    """What the nightly reconciliation found: Anna's accrual missing in the CRM, and Boris's balance off by 1."""
    posting = _accrual(anna, "61.00", None)
    fix = FixAction("post_posting", "crm", f"crm:{posting.key}", dump_posting(posting),
                    "post the missing accrual of 61.00 points to crm")  # fmt: skip
    manual = FixAction("manual", None, None, None, "check the balance in crm by hand")
    return [
        Discrepancy("missing_accrual", "msk-1", anna.business_date, {"evotor": anna.ref.id, "account": ANNA},
                    Decimal("61.00"), None, Decimal("-61.00"), fix),
        Discrepancy("balance_mismatch", None, anna.business_date, {"account": BORIS, "crm": "acc-77"},
                    Decimal("40.00"), Decimal("41.00"), Decimal("1.00"), manual),
    ]  # fmt: skip


def _runs(store: Store) -> tuple[int, int]:
    with store.transaction() as tx:
        sync = Run(kind="sync", started_at=NOW - timedelta(hours=7), finished_at=NOW - timedelta(hours=7) + timedelta(minutes=2),
                   status="failed_items", counts={"evotor": {"msk-1": {"fetched": 2, "mapped": 2, "written": 1, "failed": 1}}},
                   args={"routes": ["evotor->crm:postings", "evotor->onec:documents"]})  # fmt: skip
        nightly = Run(kind="reconcile", started_at=NOW - timedelta(hours=6), finished_at=NOW - timedelta(hours=6, minutes=-1),
                      status="discrepancies", counts={"missing_accrual": 1, "balance_mismatch": 1},
                      args={"from": "2026-11-19", "to": "2026-11-19"})  # fmt: skip
        tx.add_all([sync, nightly])
        tx.flush()
        return sync.id, nightly.id


def seed(store: Store) -> Seeded:
    """Write the scene described in the module docstring; returns the ids the tests act on."""
    anna = _sale(
        "7c1e4f0a-5b7d-4c1e-9f3a-0d2b8e6a1c11",
        "1042",
        ANNA,
        "1234.50",
        datetime(2026, 11, 19, 11, 5, tzinfo=UTC),
    )
    boris = _sale(
        "0b9d2c7e-3f41-4a8b-b6d5-2e7f9a1c3d22",
        "1043",
        BORIS,
        "800.00",
        datetime(2026, 11, 19, 12, 30, tzinfo=UTC),
    )
    sync_id, nightly_id = _runs(store)
    with store.transaction() as tx:
        for sale, guid in (
            (anna, "9a0f1c2e-0001-11ef-8a4b-005056b1c2d3"),
            (boris, "9a0f1c2e-0002-11ef-8a4b-005056b1c2d3"),
        ):
            onec, link = _onec_copy(sale, guid)
            tx.add_all([_journal(sale), onec, link])
        item = FailedItem(
            run_id=sync_id, system="crm", route="evotor->crm:postings", store="msk-1", business_date=anna.business_date,
            document_system="evotor", document_kind="receipt", document_id=anna.ref.id, error_kind="permanent",
            error="crm: POST /api/v5/loyalty/account/bonus/credit answered 503 Service Unavailable after 5 attempts",
            payload_excerpt='{"account": "+79161234567", "amount": "61.00", "kind": "accrual"}', attempts=5,
            state="open", created_at=NOW - timedelta(hours=7), updated_at=NOW - timedelta(hours=7),
        )  # fmt: skip
        boris_to_onec = FailedItem(
            run_id=sync_id, system="onec", route="evotor->onec:documents", store="msk-1",
            business_date=boris.business_date, document_system="evotor", document_kind="receipt",
            document_id=boris.ref.id, error_kind="transient", error="onec: POST /Document_ЧекККМ timed out after 60 s",
            payload_excerpt='{"number": "1043", "total": "800.00"}', attempts=2, state="open",
            next_attempt_at=NOW + timedelta(minutes=4), created_at=NOW - timedelta(hours=7), updated_at=NOW,
        )  # fmt: skip
        tx.add_all([item, boris_to_onec])
        tx.add_all([
            Lease(name="scheduler:sync", holder="connector-01:4242", expires_at=NOW + timedelta(minutes=5)),
            SyncCursor(system="evotor", stream="receipts", store="msk-1", watermark="2026-11-19T12:30:00Z",
                       updated_at=NOW - timedelta(hours=7)),
        ])  # fmt: skip
        tx.flush()
        item_id, boris_id = item.id, boris_to_onec.id
    save_result(
        store, nightly_id, ReconcileResult(anna.business_date, anna.business_date, ["msk-1"], _findings(anna))
    )
    store.ledger.append(_accrual(boris, "40.00", None))
    with store.transaction() as tx:
        tx.add(_crm_operation(_accrual(boris, "40.00", "5511")))
    return Seeded(item_id, boris_id, sync_id, nightly_id, anna.ref.id)
