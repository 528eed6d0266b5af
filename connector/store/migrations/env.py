"""Alembic environment of the state database.

Run programmatically (:func:`connector.store.engine.upgrade`): the caller hands over an open connection in
``config.attributes["connection"]``, so connect arguments such as a PostgreSQL ``search_path`` apply to the
version table too. With only ``sqlalchemy.url`` set (a developer generating a revision), an engine is made
from it. SQLite gets batch mode so that later migrations can alter tables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from connector.store.engine import dispose_engine, make_engine
from connector.store.tables import Base

__all__: list[str] = []

# Tables other libraries create in the same database (APScheduler's job store) are not ours to compare.
_FOREIGN_TABLE_PREFIXES = ("apscheduler_",)


def _include_name(name: str | None, type_: str, _parents: object) -> bool:
    return not (type_ == "table" and name is not None and name.startswith(_FOREIGN_TABLE_PREFIXES))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_name=_include_name,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=Base.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as owned:
            _run(owned)
    finally:
        dispose_engine(engine)


def _in_alembic_run() -> bool:
    # False when a tool that loads every module imports this file outside an Alembic run: nothing to do then.
    return getattr(context, "config", None) is not None


if _in_alembic_run():
    if context.is_offline_mode():
        _run_offline()
    else:
        _run_online()
