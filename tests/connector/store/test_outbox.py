"""The outbox: a write is recorded once under its key, a changed write is refused, states only move forward."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from connector.errors import IdempotencyConflict, LedgerError
from connector.store import Store
from connector.store.tables import OutboxRow

KEY = "crm:evotor:d-1:accrual"
PAYLOAD = {"phone": "+79161234567", "amount": "150.00", "comment": KEY}


def _count(store: Store) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(OutboxRow)) or 0


def test_record_stores_a_pending_entry_before_any_attempt(store: Store) -> None:
    entry = store.outbox.record(KEY, "crm", "posting", PAYLOAD)
    assert (entry.key, entry.target, entry.operation) == (KEY, "crm", "posting")
    assert (entry.state, entry.attempts, entry.remote_id) == ("pending", 0, None)
    assert entry.payload == PAYLOAD
    assert store.outbox.get(KEY) == entry
    assert store.outbox.get("crm:nope") is None


def test_recording_the_same_write_again_returns_the_entry_without_a_second_row(store: Store) -> None:
    first = store.outbox.record(KEY, "crm", "posting", PAYLOAD)
    store.outbox.mark_sent(KEY)
    again = store.outbox.record(KEY, "crm", "posting", dict(reversed(PAYLOAD.items())))
    assert again.created_at == first.created_at
    assert (again.state, again.attempts) == ("sent", 1)  # the stored entry, progress included
    assert _count(store) == 1


@pytest.mark.parametrize(
    ("target", "operation", "payload"),
    [
        ("crm", "posting", {**PAYLOAD, "amount": "151.00"}),
        ("onec", "posting", PAYLOAD),
        ("crm", "receipt", PAYLOAD),
    ],
)
def test_the_same_key_with_another_write_is_a_conflict_naming_both(
    store: Store, target: str, operation: str, payload: dict[str, str]
) -> None:
    store.outbox.record(KEY, "crm", "posting", PAYLOAD)
    with pytest.raises(IdempotencyConflict) as caught:
        store.outbox.record(KEY, target, operation, payload)
    existing = json.loads(caught.value.context["existing"])
    attempted = json.loads(caught.value.context["attempted"])
    assert existing == {"target": "crm", "operation": "posting", "payload": PAYLOAD}
    assert attempted == {"target": target, "operation": operation, "payload": payload}
    assert _count(store) == 1


def test_money_as_float_is_refused_and_decimal_is_kept_as_a_string(store: Store) -> None:
    with pytest.raises(TypeError, match=r"payload\.amount is a float"):
        store.outbox.record(KEY, "crm", "posting", {"amount": 150.0})
    entry = store.outbox.record(KEY, "crm", "posting", {"amount": Decimal("150.00")})
    assert store.outbox.get(KEY) == entry
    assert entry.payload == {"amount": "150.00"}


def test_a_write_goes_pending_sent_confirmed(store: Store) -> None:
    store.outbox.record(KEY, "crm", "posting", PAYLOAD)
    sent = store.outbox.mark_sent(KEY)
    assert (sent.state, sent.attempts) == ("sent", 1)
    assert sent.last_attempt_at is not None
    confirmed = store.outbox.mark_confirmed(KEY, remote_id="op-77")
    assert (confirmed.state, confirmed.remote_id, confirmed.attempts) == ("confirmed", "op-77", 1)
    assert confirmed.confirmed_at is not None
    # Confirming again (a lookup after a crash) is harmless; it keeps the remote id.
    assert store.outbox.mark_confirmed(KEY).remote_id == "op-77"
    assert store.outbox.mark_confirmed(KEY, remote_id="op-77").state == "confirmed"


def test_a_failed_write_keeps_its_error_and_can_be_retried_under_the_same_key(store: Store) -> None:
    store.outbox.record(KEY, "crm", "posting", PAYLOAD)
    store.outbox.mark_sent(KEY)
    failed = store.outbox.mark_failed(KEY, "FatalRemoteError: 400 invalid phone")
    assert (failed.state, failed.last_error, failed.attempts) == (
        "failed",
        "FatalRemoteError: 400 invalid phone",
        1,
    )
    retried = store.outbox.mark_sent(KEY)
    assert (retried.state, retried.attempts) == ("sent", 2)
    assert store.outbox.mark_confirmed(KEY, remote_id="op-78").state == "confirmed"


@pytest.mark.parametrize(
    ("transition", "message"),
    [
        (lambda store: store.outbox.mark_sent(KEY), "is confirmed; it cannot move to sent"),
        (lambda store: store.outbox.mark_failed(KEY, "late"), "is confirmed; it cannot move to failed"),
        (
            lambda store: store.outbox.mark_confirmed(KEY, "op-other"),
            "is confirmed; it cannot move to confirmed",
        ),
    ],
)
def test_a_confirmed_write_never_moves_again(store: Store, transition: object, message: str) -> None:
    store.outbox.record(KEY, "crm", "posting", PAYLOAD)
    store.outbox.mark_confirmed(KEY, remote_id="op-77")
    with pytest.raises(LedgerError, match=message):
        transition(store)  # type: ignore[operator]
    entry = store.outbox.get(KEY)
    assert entry is not None
    assert (entry.state, entry.remote_id, entry.last_error) == ("confirmed", "op-77", None)


def test_a_failed_write_cannot_fail_twice_and_an_unknown_key_is_an_error(store: Store) -> None:
    store.outbox.record(KEY, "crm", "posting", PAYLOAD)
    store.outbox.mark_failed(KEY, "first")
    with pytest.raises(LedgerError, match="is failed; it cannot move to failed"):
        store.outbox.mark_failed(KEY, "second")
    with pytest.raises(LedgerError, match="no outbox entry"):
        store.outbox.mark_sent("crm:unknown")


def test_unfinished_lists_what_a_restart_must_resolve(store: Store) -> None:
    for number in range(4):
        store.outbox.record(f"crm:evotor:d-{number}:accrual", "crm", "posting", {"n": number})
    store.outbox.record("onec:evotor:d-0:receipt", "onec", "receipt", {"n": 0})
    store.outbox.mark_sent("crm:evotor:d-1:accrual")
    store.outbox.mark_confirmed("crm:evotor:d-2:accrual")
    store.outbox.mark_failed("crm:evotor:d-3:accrual", "boom")
    assert [entry.key for entry in store.outbox.unfinished("crm")] == [
        "crm:evotor:d-0:accrual",
        "crm:evotor:d-1:accrual",
    ]
    assert len(store.outbox.unfinished()) == 3
