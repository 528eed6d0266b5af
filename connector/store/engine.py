"""Opening the state database: engines, sessions and the Alembic upgrade that runs on first use.

The schema exists only through the migrations in ``connector/store/migrations``. :func:`open_store` upgrades a
database that is empty or behind before handing it out; ``loyalty-connector db upgrade`` does the same
explicitly. Two processes opening a fresh database at once are serialised by a lock (a PostgreSQL advisory
lock, SQLite's write lock), so the migrations run exactly once.

SQLite (the default, ``sqlite:///connector.db``) runs in WAL mode with a busy timeout so that readers never
block the writer and concurrent writers wait instead of failing; a file's WAL is checkpointed by a thread woken
by the commits (:mod:`connector.store.checkpoint`), not inside them. PostgreSQL is given by URL
(``postgresql+psycopg://user@host/db``; a plain ``postgresql://`` means psycopg 3 too). A PostgreSQL schema
can be chosen in the URL: ``…?options=-csearch_path%3Dconnector``.

Example:
    >>> store = open_store("sqlite:///connector.db")        # doctest: +SKIP
    >>> store.ledger.append(posting)                         # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from connector.errors import StoreError
from connector.store.checkpoint import WalCheckpointer
from connector.store.ledger import Ledger
from connector.store.outbox import Outbox
from connector.store.types import json_deserializer, json_serializer

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "DEFAULT_STATE_URL",
    "MIGRATIONS_DIR",
    "SCHEMA_REVISION",
    "Store",
    "alembic_config",
    "current_revision",
    "dispose_engine",
    "head_revision",
    "make_engine",
    "masked_url",
    "open_store",
    "upgrade",
    "wal_checkpointer",
]

DEFAULT_STATE_URL = "sqlite:///connector.db"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SCHEMA_REVISION = "0004"
"""The revision this code is written against: the migrations' head (a test keeps the two equal). Knowing it
without loading Alembic keeps every command's start fast; Alembic is imported only to migrate."""
_VERSION_TABLE = "alembic_version"

_SQLITE_BUSY_TIMEOUT_S = 30.0
# Any constant unique to this application: the key of the PostgreSQL advisory lock taken while migrating.
_MIGRATION_LOCK_KEY = 0x4C43_0001


def masked_url(url: str | URL) -> str:
    """The URL as it may be shown to a person: the password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {exc}", state=masked_url(url)) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError("the state database must be SQLite or PostgreSQL", state=masked_url(parsed))
    return parsed


_SQLITE_CACHE_KIB = 16_000
_SQLITE_CHECKPOINT_PAGES = 10_000


def _set_wal(cursor: Any) -> None:
    """Switch to WAL, retrying while another connection holds the file.

    Changing the journal mode needs the file to itself, and SQLite answers "database is locked" at once instead
    of waiting the busy timeout (seen when several processes open a new state database together).
    """
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets the console read while sync writes; NORMAL is durable across application crashes in WAL.
        _set_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # A journal row holds a raw receipt (a few KB): with SQLite's 2 MB default page cache, a pull of 100k
        # receipts re-reads its index pages from the OS at every page, and the default checkpoint every 1000
        # WAL pages writes the same index pages again and again. 16 MB per connection and a checkpoint every
        # 10,000 pages (about 40 MB of WAL) halve the cost of landing a receipt (benchmarks/README.md).
        cursor.execute(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA wal_autocheckpoint={_SQLITE_CHECKPOINT_PAGES}")
    finally:
        cursor.close()


def _sqlite_engine(url: URL) -> Engine:
    connect_args: dict[str, Any] = {"timeout": _SQLITE_BUSY_TIMEOUT_S}
    options: dict[str, Any] = {}
    if url.database in (None, "", ":memory:"):
        # One shared connection, or every checkout would see its own empty in-memory database.
        connect_args["check_same_thread"] = False
        options["poolclass"] = StaticPool
    else:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Each connection has its own page cache, and SQLite empties it when another connection has written
        # since. Writes take turns (one writer), so handing out the connection returned last keeps the writer's
        # cache warm instead of rotating every write through a cold one.
        options["pool_use_lifo"] = True
    engine = create_engine(
        url,
        connect_args=connect_args,
        json_serializer=json_serializer,
        json_deserializer=json_deserializer,
        hide_parameters=True,  # a database error's text would show raw payloads (phones) and secrets
        **options,
    )
    event.listen(engine, "connect", _on_sqlite_connect)
    if "poolclass" not in options:  # a file: its WAL is checkpointed by a thread, not by the commits
        checkpointer = _CHECKPOINTERS[engine] = WalCheckpointer(
            str(Path(url.database or "").expanduser().resolve())
        )
        event.listen(engine, "commit", lambda _connection: checkpointer.notify())
    return engine


_CHECKPOINTERS: WeakKeyDictionary[Engine, WalCheckpointer] = WeakKeyDictionary()


def wal_checkpointer(engine: Engine) -> WalCheckpointer | None:
    """The background WAL checkpointer of a SQLite file engine (None for memory and PostgreSQL)."""
    return _CHECKPOINTERS.get(engine)


def dispose_engine(engine: Engine) -> None:
    """Close an engine's pooled connections, its WAL checkpointer's first: the last connection to close then
    checkpoints what is left and removes the WAL, so the database file alone is whole."""
    checkpointer = _CHECKPOINTERS.get(engine)
    if checkpointer is not None:
        checkpointer.stop()
    engine.dispose()


@atexit.register
def _stop_checkpointers() -> None:
    """At exit, end the checkpoint threads of engines nobody disposed, so that their connections close."""
    for checkpointer in list(_CHECKPOINTERS.values()):
        checkpointer.stop()


def make_engine(url: str) -> Engine:
    """Create the SQLAlchemy engine for a state URL, with the connection settings this project relies on.

    Args:
        url: ``sqlite:///path`` or ``postgresql+psycopg://…``.

    Raises:
        StoreError: the URL is malformed or names another database.
    """
    parsed = _parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_engine(
        parsed,
        pool_recycle=1800,  # server-side idle timeouts; a dropped connection fails one transaction, retried
        json_serializer=json_serializer,
        json_deserializer=json_deserializer,
        hide_parameters=True,  # a database error's text would show raw payloads (phones) and secrets
    )


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations, independent of the current directory.

    Args:
        connection: when given, the migrations run on it (its transaction is left for the caller to commit).
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the packaged migrations define."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships its initial migration
        raise StoreError("no migrations found", path=str(MIGRATIONS_DIR))
    return head


def _revision_of(connection: Connection) -> str | None:
    # Alembic's own version table, read directly: no Alembic import on the common path.
    if not inspect(connection).has_table(_VERSION_TABLE):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never migrated.

    Raises:
        StoreError: the database cannot be reached.
    """
    try:
        with engine.connect() as connection:
            return _revision_of(connection)
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot open the state database: {_first_line(exc)}", state=masked_url(engine.url)
        ) from exc


def _first_line(exc: BaseException) -> str:
    # The driver's message without the SQL and parameters SQLAlchemy appends on later lines.
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {lines[0] if lines else ''}"


def _take_migration_lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Released at commit: a second process waits here, then finds the schema current.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    else:
        # The write lock up front (waiting up to the busy timeout), not at the first DDL statement.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade(engine: Engine) -> str:
    """Bring the database to the newest revision (a no-op when it is there already).

    Returns:
        The revision the database is at afterwards.

    Raises:
        StoreError: the database cannot be reached or a migration failed.
    """
    from alembic import command
    from alembic.util import CommandError

    head = head_revision()
    try:
        with engine.connect() as connection:
            _take_migration_lock(connection)
            if _revision_of(connection) != head:
                command.upgrade(alembic_config(connection), "head")
            connection.commit()
    except (SQLAlchemyError, CommandError) as exc:
        # CommandError: e.g. a revision this (older) version of the connector does not know.
        raise StoreError(
            f"cannot migrate the state database: {_first_line(exc)}", state=masked_url(engine.url)
        ) from exc
    return head


class Store:
    """The open state database: its engine, a session factory, and the ledger and outbox over them.

    Args:
        engine: an engine from :func:`make_engine` whose schema is current.

    Example:
        >>> with store.session() as session:                 # doctest: +SKIP
        ...     session.scalars(select(Run)).all()
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        """The database URL with any password masked, for messages."""
        return masked_url(self.engine.url)

    def session(self) -> Session:
        """A new ORM session (use it as a context manager; commit explicitly)."""
        return self.sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside a transaction: committed when the block ends, rolled back on an exception."""
        with self.sessions.begin() as session:
            yield session

    @cached_property
    def ledger(self) -> Ledger:
        """The postings ledger of this database."""
        return Ledger(self.engine)

    @cached_property
    def outbox(self) -> Outbox:
        """The outbox of writes to other systems."""
        return Outbox(self.sessions)

    def close(self) -> None:
        """Close every pooled connection, the WAL checkpointer's first (the store can be reopened by using it
        again)."""
        dispose_engine(self.engine)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_store(url: str = DEFAULT_STATE_URL, *, migrate: bool = True) -> Store:
    """Open the state database, creating or upgrading its schema by the migrations when needed.

    Args:
        url: the ``state:`` URL of ``connector.yaml``.
        migrate: when False, a database that is not at the newest revision is an error instead.

    Raises:
        StoreError: unreachable, not migratable, or (``migrate=False``) not current.
    """
    engine = make_engine(url)
    try:
        current = current_revision(engine)
    except StoreError:
        dispose_engine(engine)
        raise
    if current != SCHEMA_REVISION:
        if not migrate:
            dispose_engine(engine)
            raise StoreError(
                f"the state database is at revision {current or 'none'}, not {SCHEMA_REVISION}: "
                "run `loyalty-connector db upgrade`",
                state=masked_url(engine.url),
            )
        upgrade(engine)
    return Store(engine)
