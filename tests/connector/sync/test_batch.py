"""The outbox a partition at a time: the same states and rules as the one-by-one outbox, in few statements."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connector.model import DocRef
from connector.store import Store, open_store
from connector.store.tables import CrossRef
from connector.sync.batch import (
    confirm_many,
    fail_many,
    link_many,
    mark_sent_many,
    outbox_rows,
    record_many,
)
from tests.pg import isolated_schema_url, require_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with ExitStack() as stack:
        url = f"sqlite:///{tmp_path / 's.db'}"
        if request.param == "postgresql":
            require_postgres()
            url = stack.enter_context(isolated_schema_url())
        with open_store(url) as opened:
            yield opened


def _write(key: str, amount: str = "10.00") -> tuple[str, str, str, dict[str, str]]:
    return (key, "crm", "posting", {"key": key, "amount": amount})


def test_a_partition_is_recorded_pending_and_recording_it_again_keeps_its_progress(store: Store) -> None:
    keys = [f"crm:evotor:s-{n}:accrual" for n in range(600)]  # more than one chunk of 500
    assert record_many(store, [_write(key) for key in keys]) == {}
    mark_sent_many(store, keys[:2])
    confirm_many(store, [(keys[0], "op-1")])

    assert record_many(store, [_write(key) for key in keys]) == {}  # the same writes: nothing changes
    entries = [store.outbox.get(key) for key in keys[:3]]
    assert [(e.state, e.attempts, e.remote_id) for e in entries if e] == [
        ("confirmed", 1, "op-1"),
        ("sent", 1, None),
        ("pending", 0, None),
    ]
    assert len(outbox_rows(store, keys)) == 600


def test_another_payload_under_a_recorded_key_is_a_conflict_and_is_not_stored(store: Store) -> None:
    record_many(store, [_write("crm:a"), _write("crm:b")])
    conflicts = record_many(store, [_write("crm:a", "99.00"), _write("crm:b"), _write("crm:c")])
    assert list(conflicts) == ["crm:a"]
    assert '"99.00"' in str(conflicts["crm:a"].context["attempted"])
    entry = store.outbox.get("crm:a")
    assert entry is not None
    assert entry.payload["amount"] == "10.00"
    assert store.outbox.get("crm:c") is not None  # the others of the partition are recorded


def test_states_only_move_forward(store: Store) -> None:
    record_many(store, [_write("crm:a"), _write("crm:b")])
    mark_sent_many(store, ["crm:a", "crm:b"])
    confirm_many(store, [("crm:a", "op-1")])
    fail_many(store, [("crm:a", "late error"), ("crm:b", "HTTP 400")])  # a confirmed write stays confirmed
    mark_sent_many(store, ["crm:a", "crm:b"])  # a retry of the failed one counts an attempt
    a, b = store.outbox.get("crm:a"), store.outbox.get("crm:b")
    assert a is not None
    assert (a.state, a.attempts, a.last_error) == ("confirmed", 1, None)
    assert b is not None
    assert (b.state, b.attempts, b.last_error) == ("sent", 2, "HTTP 400")


def test_cross_references_are_recorded_once(store: Store) -> None:
    sale = DocRef(system="evotor", kind="receipt", id="s-1")
    pairs = [(sale, DocRef(system="onec", kind="Document_ЧекККМ", id="guid-1"))]
    link_many(store, pairs, "created")
    link_many(store, pairs, "created")
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(CrossRef)) == 1
