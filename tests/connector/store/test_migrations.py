"""The schema is what the migrations make, and the migrations make exactly what the models describe."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

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
    assert ("documents", ("system", "source_id")) in indexed
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


def test_a_0001_database_upgrades_with_its_journal_and_gains_the_source_id_index(state_url: str) -> None:
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
        indexes = {tuple(index["column_names"]) for index in inspect(engine).get_indexes("documents")}
        assert ("system", "source_id") in indexes
        with engine.connect() as connection:
            assert connection.execute(text("SELECT source_id FROM documents")).scalars().all() == ["r-1"]
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
        assert upgrade(engine) == "0003"
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT source_id FROM documents WHERE canonical IS NOT NULL")
            ).scalars()
            assert list(found) == ["mapped"]
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
