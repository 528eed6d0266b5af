"""What the snapshot reads: which systems each reconciliation involves, and customers' spend from the journal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from connector.config import ConnectorConfig
from connector.reconcile.match import external_source_id
from connector.reconcile.snapshot import involved_systems, mirrors_of, spend_before
from connector.store import Store, open_store
from connector.store.journal import Journal
from tests.connector.reconcile.test_compare import PHONE, refund, sale


def _config() -> ConnectorConfig:
    systems = {name: {"adapter": adapter, "base_url": f"http://{name}"}
               for name, adapter in (("evotor", "evotor"), ("onec", "onec"), ("crm", "crm"))}  # fmt: skip
    return ConnectorConfig.model_validate(
        {
            "systems": systems,
            "routes": [
                {"from": "evotor", "documents": ["sale"], "to": "crm", "write": "postings"},
                {"from": "crm", "documents": ["posting"], "to": "onec", "write": "bonus_documents"},
            ],
            "reconcile": [
                {"name": "tills", "left": "evotor", "right": "onec"},
                {"name": "ledger", "documents": "evotor", "ledger": "crm"},
            ],
        }
    )


def test_a_ledger_reconciliation_reads_the_ledger_and_its_mirror() -> None:
    config = _config()
    assert mirrors_of(config, "crm") == ["onec"]
    assert mirrors_of(config, "evotor") == []
    assert involved_systems(config) == ({"evotor", "onec"}, {"evotor"}, {"crm", "onec"})


@pytest.mark.parametrize(
    ("key", "source"),
    [
        ("onec:evotor:3f2a:sale", "3f2a"),
        ("onec:evotor:a:b:return", "a:b"),
        ("onec:crm:17:adjustment", None),
        ("Ручной чек", None),
        (None, None),
    ],
)
def test_the_source_id_in_a_connector_key(key: str | None, source: str | None) -> None:
    assert external_source_id(key, "evotor") == source


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def test_spend_before_the_window_is_sales_minus_returns_of_posted_documents(store: Store) -> None:
    journal = Journal(store.sessions)
    earlier = [sale("s1", "3000.00"), sale("s2", "500.00"), refund("r1", "s1", "1000.00")]
    draft = sale("s3", "9000.00").model_copy(update={"status": "draft"})
    inside = sale("s4", "700.00").model_copy(update={"business_date": date(2026, 11, 10)})
    for document in (*earlier, draft, inside):
        journal.upsert("evotor", "receipt", document.ref.id, version="1", raw={}, document=document)
    first_day = date(2026, 11, 2) + timedelta(days=1)
    assert spend_before(store, "evotor", {PHONE, "+79990000000"}, first_day) == {PHONE: Decimal("2500.00")}
