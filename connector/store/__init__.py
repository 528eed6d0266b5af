"""State of the connector: one database (SQLite by default, PostgreSQL by URL), schema by Alembic only.

Public surface::

    store = open_store("sqlite:///connector.db")   # creates / upgrades the schema on first use
    store.ledger.append(posting)                   # idempotent by key; IdempotencyConflict on a changed payload
    store.ledger.balance(account, as_of)           # Balance(available, pending, expired)
    store.outbox.record(key, target, operation, payload)
    with store.transaction() as session: ...       # the tables in connector.store.tables

See DESIGN.md §4 for the rules the ledger and the outbox keep.
"""

from connector.store.engine import (
    DEFAULT_STATE_URL,
    Store,
    current_revision,
    head_revision,
    make_engine,
    masked_url,
    open_store,
    upgrade,
)
from connector.store.ledger import Balance, Ledger, canonical_posting_json, posting_hash
from connector.store.outbox import Outbox, OutboxEntry

__all__ = [
    "DEFAULT_STATE_URL",
    "Balance",
    "Ledger",
    "Outbox",
    "OutboxEntry",
    "Store",
    "canonical_posting_json",
    "current_revision",
    "head_revision",
    "make_engine",
    "masked_url",
    "open_store",
    "posting_hash",
    "upgrade",
]
