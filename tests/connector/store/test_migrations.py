"""The schema is what the migrations make, and the migrations make exactly what the models describe."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from connector.errors import StoreError
from connector.store import Store, current_revision, head_revision, make_engine, open_store, upgrade
from connector.store.engine import MIGRATIONS_DIR, SCHEMA_REVISION, alembic_config
from connector.store.tables import Base

EXPECTED_TABLES = {
    "audit_log",
    "cross_refs",
    "discrepancies",
    "documents",
    "failed_items",
    "fixes",
    "leases",
    "outbox",
    "postings",
    "runs",
    "sync_cursors",
    "users",
}


def test_the_migrated_schema_equals_the_models(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_every_table_of_the_design_exists(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert tables == EXPECTED_TABLES | {"alembic_version"}
    assert set(Base.metadata.tables) == EXPECTED_TABLES


def test_the_indexes_the_queries_need_exist(store: Store) -> None:
    inspector = inspect(store.engine)
    indexed = {
        (table, tuple(index["column_names"]))
        for table in EXPECTED_TABLES
        for index in inspector.get_indexes(table)
    }
    assert ("documents", ("store", "business_date")) in indexed
    assert ("documents", ("account",)) in indexed
    unique = {
        tuple(constraint["column_names"]) for constraint in inspector.get_unique_constraints("documents")
    }
    assert unique == {("system", "source_id", "kind")}  # serves lookups with and without the kind
    if store.dialect == "sqlite":  # the partial account index serves the queries by account
        with store.engine.connect() as connection:
            plan = connection.execute(
                text("EXPLAIN QUERY PLAN SELECT id FROM documents WHERE account = '+79161234567'")
            ).all()
        assert "INDEX ix_documents_account (account=?)" in str(plan)
    assert ("postings", ("account", "occurred_at")) in indexed
    assert ("failed_items", ("state", "system")) in indexed


def test_downgrade_to_nothing_and_back(state_url: str) -> None:
    with open_store(state_url) as store:
        with store.engine.connect() as connection:
            command.downgrade(alembic_config(connection), "base")
            connection.commit()
        assert set(inspect(store.engine).get_table_names()) == {"alembic_version"}
        assert current_revision(store.engine) is None
        assert upgrade(store.engine) == SCHEMA_REVISION
        assert "postings" in inspect(store.engine).get_table_names()


def test_a_0001_database_upgrades_with_its_journal_and_looks_up_by_source_id_through_an_index(
    state_url: str,
) -> None:
    engine = make_engine(state_url)
    try:
        with engine.connect() as connection:
            command.upgrade(alembic_config(connection), "0001")
            connection.execute(
                text(
                    "INSERT INTO documents (system, kind, source_id, status, version, raw, first_seen_at,"
                    " last_seen_at) VALUES ('evotor', 'receipt', 'r-1', 'posted', 'v1', '{}',"
                    " '2026-11-01 10:00:00', '2026-11-01 10:00:00')"
                )
            )
            connection.commit()
        assert current_revision(engine) == "0001"
        assert upgrade(engine) == SCHEMA_REVISION
        with engine.connect() as connection:
            assert connection.execute(text("SELECT source_id FROM documents")).scalars().all() == ["r-1"]
            if engine.dialect.name == "sqlite":
                plan = connection.execute(
                    text(
                        "EXPLAIN QUERY PLAN SELECT id FROM documents WHERE system = 'evotor' AND source_id = 'r-1'"
                    )
                ).all()
                assert "SEARCH documents USING COVERING INDEX" in str(
                    plan
                )  # the unique (system, source_id, kind)
                assert "(system=? AND source_id=?)" in str(plan)
    finally:
        engine.dispose()


def test_a_0002_database_upgrades_with_unmapped_payloads_turned_to_sql_null(state_url: str) -> None:
    engine = make_engine(state_url)
    try:
        with engine.connect() as connection:
            command.upgrade(alembic_config(connection), "0002")
            for source_id, canonical in (("unmapped", "null"), ("mapped", '{"type": "sale"}')):
                connection.execute(
                    text(
                        "INSERT INTO documents (system, kind, source_id, status, version, raw, canonical,"
                        " business_date, first_seen_at, last_seen_at) VALUES ('evotor', 'receipt', :id, 'posted',"
                        " 'v1', '{}', :canonical, '2026-11-01', '2026-11-01 10:00:00', '2026-11-01 10:00:00')"
                    ),
                    {"id": source_id, "canonical": canonical},
                )
            connection.commit()
        assert upgrade(engine) == SCHEMA_REVISION
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT source_id FROM documents WHERE canonical IS NOT NULL")
            ).scalars()
            assert list(found) == ["mapped"]
    finally:
        engine.dispose()


def test_a_0003_database_upgrades_to_one_source_id_index_keeping_rows_check_and_uniqueness(
    state_url: str,
) -> None:
    engine = make_engine(state_url)
    insert = text(
        "INSERT INTO documents (system, kind, source_id, status, version, raw, account, store, business_date,"
        " first_seen_at, last_seen_at) VALUES ('evotor', :kind, :id, :status, 'v1', '{}', :account, 's-1',"
        " '2026-11-01', '2026-11-01 10:00:00', '2026-11-01 10:00:00')"
    )
    try:
        with engine.connect() as connection:
            command.upgrade(alembic_config(connection), "0003")
            connection.execute(
                insert, {"kind": "receipt", "id": "r-1", "status": "posted", "account": "+7916"}
            )
            connection.execute(insert, {"kind": "SELL", "id": "r-2", "status": "draft", "account": None})
            connection.commit()
        assert upgrade(engine) == SCHEMA_REVISION
        inspector = inspect(engine)
        indexes = {  # PostgreSQL lists the unique constraint's own index too
            index["name"]: tuple(index["column_names"])
            for index in inspector.get_indexes("documents")
            if not index.get("duplicates_constraint")
        }
        assert indexes == {
            "ix_documents_account": ("account",),
            "ix_documents_store_business_date": ("store", "business_date"),
        }
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT source_id, kind, status, account FROM documents ORDER BY id")
            ).all()
            assert [tuple(row) for row in rows] == [
                ("r-1", "receipt", "posted", "+7916"),
                ("r-2", "SELL", "draft", None),
            ]
            # The same source id under another kind is another row; under the same kind it is refused.
            connection.execute(insert, {"kind": "receipt", "id": "r-2", "status": "posted", "account": None})
            with pytest.raises(IntegrityError):
                connection.execute(
                    insert, {"kind": "receipt", "id": "r-1", "status": "posted", "account": None}
                )
            connection.rollback()
            with pytest.raises(IntegrityError):  # the status CHECK survived SQLite's rebuild
                connection.execute(
                    insert, {"kind": "receipt", "id": "r-3", "status": "lost", "account": None}
                )
            connection.rollback()
        with engine.connect() as connection:  # and back: the indexes of 0003
            command.downgrade(alembic_config(connection), "0003")
            connection.commit()
        indexes = {index["name"] for index in inspect(engine).get_indexes("documents")}
        assert {"ix_documents_system_source_id", "ix_documents_account"} <= indexes
    finally:
        engine.dispose()


def test_the_revision_the_code_expects_is_the_migrations_head() -> None:
    assert head_revision() == SCHEMA_REVISION


def test_migrations_run_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    try:
        assert upgrade(engine) == SCHEMA_REVISION
    finally:
        engine.dispose()
    assert (MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()


@pytest.mark.postgres
def test_on_postgresql_everything_lands_in_the_isolated_schema(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            schema = connection.execute(text("SELECT current_schema()")).scalar_one()
            rows = connection.execute(
                text(
                    "SELECT table_schema FROM information_schema.tables WHERE table_name = 'alembic_version'"
                )
            ).scalars()
            assert schema.startswith("lc_")
            assert schema in set(rows)
            owned = connection.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :schema"),
                {"schema": schema},
            ).scalar_one()
            assert owned == len(EXPECTED_TABLES) + 1
    finally:
        engine.dispose()


def test_a_database_from_a_newer_connector_is_refused_with_a_reason(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    open_store(url).close()
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
        with pytest.raises(StoreError, match=r"cannot migrate the state database: CommandError: .*'0099'"):
            open_store(url)
    finally:
        engine.dispose()
