"""Opening the store: auto-upgrade, SQLite settings, and column types that keep money and time exact."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

from connector.errors import StoreError
from connector.store import Store, current_revision, head_revision, open_store
from connector.store.tables import JournalDocument, Run

MSK = timezone(timedelta(hours=3))


def _document(**overrides: object) -> JournalDocument:
    values: dict[str, object] = {"system": "evotor", "kind": "receipt", "source_id": "d-1", "store": "s-1"}
    values.update(overrides)
    return JournalDocument(**values)


def _insert(store: Store, document: JournalDocument) -> None:
    with store.transaction() as session:
        session.add(document)


def test_open_store_creates_the_schema_at_the_newest_revision(state_url: str) -> None:
    with open_store(state_url) as store:
        assert current_revision(store.engine) == head_revision() == "0004"
        with store.session() as session:
            assert session.scalars(select(Run)).all() == []


def test_opening_again_keeps_the_data(state_url: str) -> None:
    with open_store(state_url) as store, store.transaction() as session:
        session.add(_document())
    with open_store(state_url) as store, store.session() as session:
        assert session.scalars(select(JournalDocument.source_id)).all() == ["d-1"]


def test_a_database_behind_is_refused_when_migration_is_not_allowed(state_url: str) -> None:
    with pytest.raises(StoreError, match=r"revision none, not 0004: run `loyalty-connector db upgrade`"):
        open_store(state_url, migrate=False)


def test_concurrent_first_opens_migrate_exactly_once(state_url: str) -> None:
    errors: list[BaseException] = []
    stores: list[Store] = []

    def open_one() -> None:
        try:
            stores.append(open_store(state_url))
        except BaseException as exc:  # collected and asserted below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == []
    assert len(stores) == 4


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    with (
        open_store(f"sqlite:///{tmp_path / 'nested' / 'state.db'}") as store,
        store.engine.connect() as connection,
    ):
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        # Sized for journal rows of a few KB (a raw receipt each): 16 MB of pages, a checkpoint per ~40 MB.
        assert connection.exec_driver_sql("PRAGMA cache_size").scalar() == -16_000
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 10_000


def test_a_bad_url_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError, match="must be SQLite or PostgreSQL") as caught:
        open_store("mysql://user:s3cret@localhost/db")
    assert "s3cret" not in str(caught.value)


def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError, match="cannot open the state database") as caught:
        open_store("postgresql://user:s3cret@127.0.0.1:1/db?connect_timeout=1")
    assert "s3cret" not in str(caught.value)
    assert "***" in str(caught.value)


def test_amounts_round_trip_exactly_as_decimal(store: Store) -> None:
    amounts = [Decimal("0.01"), Decimal("-150.5"), Decimal("99999999999.99"), Decimal(7)]
    with store.transaction() as session:
        for index, amount in enumerate(amounts):
            session.add(_document(source_id=f"d-{index}", total=amount))
    with store.session() as session:
        stored = session.scalars(select(JournalDocument.total).order_by(JournalDocument.id)).all()
    assert stored == amounts
    assert [str(value) for value in stored] == ["0.01", "-150.50", "99999999999.99", "7.00"]


@pytest.mark.parametrize(
    ("amount", "reason"),
    [(Decimal("1.005"), "at most 2 decimals"), (1.5, "not float"), (Decimal("NaN"), "must be finite")],
)
def test_amounts_that_would_lose_precision_are_refused(store: Store, amount: object, reason: str) -> None:
    with pytest.raises(StatementError, match=reason):
        _insert(store, _document(total=amount))


def test_datetimes_come_back_aware_in_utc(store: Store) -> None:
    moment = datetime(2026, 11, 20, 10, 15, 30, 123456, tzinfo=MSK)
    with store.transaction() as session:
        session.add(_document(occurred_at=moment, business_date=date(2026, 11, 20)))
    with store.session() as session:
        stored = session.scalars(select(JournalDocument.occurred_at)).one()
    assert stored == moment
    assert stored.tzinfo is UTC
    assert stored.hour == 7


def test_a_naive_datetime_is_refused(store: Store) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        _insert(store, _document(occurred_at=datetime(2026, 11, 20, 10, 0)))


def test_json_keeps_money_as_strings_and_never_as_float(store: Store) -> None:
    canonical = {"total": "423.08", "lines": [{"amount": Decimal("1.10")}], "qty": 2}
    with store.transaction() as session:
        session.add(_document(canonical=canonical))
    with store.session() as session:
        stored = session.scalars(select(JournalDocument.canonical)).one()
    assert stored == {"total": "423.08", "lines": [{"amount": "1.10"}], "qty": 2}


def test_floats_in_raw_json_are_read_back_as_decimal(store: Store) -> None:
    with store.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO documents (system, kind, source_id, status, raw, first_seen_at, last_seen_at) "
                "VALUES ('evotor', 'receipt', 'd-9', 'posted', :raw, :at, :at)"
            ).bindparams(at=datetime.now(UTC).replace(tzinfo=None)),
            {"raw": '{"sum": 0.1}'},
        )
    with store.session() as session:
        assert session.scalars(select(JournalDocument.raw)).one() == {"sum": Decimal("0.1")}


def test_the_journal_keeps_one_row_per_system_kind_and_id(store: Store) -> None:
    with store.transaction() as session:
        session.add(_document())
    with pytest.raises(IntegrityError):
        _insert(store, _document(store="other"))


def test_states_outside_the_known_ones_are_refused(store: Store) -> None:
    with pytest.raises(IntegrityError, match="ck_documents_status"):
        _insert(store, _document(status="archived"))
