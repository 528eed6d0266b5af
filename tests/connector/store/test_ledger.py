"""The postings ledger: idempotent appends, no second row, conflicts named, balances by hand, and races."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from connector.errors import IdempotencyConflict
from connector.model import DocRef, Posting
from connector.store import Store, canonical_posting_json, open_store, posting_hash
from connector.store.tables import PostingRow
from tests.connector.store._append_worker import run_workers

MSK = timezone(timedelta(hours=3))
PHONE = "+79161234567"
SALE = DocRef(system="evotor", kind="receipt", id="d-1")


def _at(day: str) -> datetime:
    """Midnight of a date, Moscow time."""
    return datetime.fromisoformat(day).replace(tzinfo=MSK)


def posting(key: str = "evotor:d-1:accrual", amount: str = "100", **fields: object) -> Posting:
    values: dict[str, object] = {
        "key": key,
        "account": PHONE,
        "kind": "accrual",
        "amount": amount,
        "document": SALE,
        "occurred_at": _at("2026-01-10"),
        "status": "active",
    }
    values.update(fields)
    return Posting.model_validate(values)


def _rows(store: Store) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(PostingRow)) or 0


def test_append_stores_the_posting_and_returns_it(store: Store) -> None:
    accrual = posting(available_at=_at("2026-01-24"), expires_at=_at("2027-01-24"), status="pending")
    stored = store.ledger.append(accrual)
    assert stored == accrual
    assert stored.occurred_at.tzinfo is UTC
    assert store.ledger.get(accrual.key) == accrual
    assert store.ledger.get("evotor:nope:accrual") is None


def test_the_same_key_and_payload_returns_the_existing_posting_without_a_second_row(store: Store) -> None:
    first = store.ledger.append(posting())
    # The same instant written with another offset is the same payload.
    again = store.ledger.append(posting(occurred_at=_at("2026-01-10").astimezone(UTC), amount="100.00"))
    assert again == first
    assert _rows(store) == 1


def test_the_same_key_with_another_payload_is_a_conflict_naming_both(store: Store) -> None:
    store.ledger.append(posting())
    with pytest.raises(IdempotencyConflict) as caught:
        store.ledger.append(posting(amount="120"))
    conflict = caught.value
    assert conflict.context["key"] == "evotor:d-1:accrual"
    assert json.loads(conflict.context["existing"])["amount"] == "100.00"
    assert json.loads(conflict.context["attempted"])["amount"] == "120.00"
    assert '"amount":"100.00"' in str(conflict)
    assert '"amount":"120.00"' in str(conflict)
    assert store.ledger.get("evotor:d-1:accrual") == posting()
    assert _rows(store) == 1


def test_append_many_is_all_or_nothing(store: Store) -> None:
    store.ledger.append(posting())
    batch = [posting("evotor:d-2:accrual"), posting(amount="5"), posting("evotor:d-3:accrual")]
    with pytest.raises(IdempotencyConflict):
        store.ledger.append_many(batch)
    assert _rows(store) == 1
    stored = store.ledger.append_many(
        [posting("evotor:d-3:accrual"), posting(), posting("evotor:d-2:accrual")]
    )
    assert [item.key for item in stored] == ["evotor:d-3:accrual", "evotor:d-1:accrual", "evotor:d-2:accrual"]
    assert _rows(store) == 3


def test_the_ledger_offers_no_way_to_change_or_remove_a_posting(store: Store) -> None:
    public = {name for name in dir(store.ledger) if not name.startswith("_")}
    assert public == {"append", "append_many", "balance", "get", "postings"}


@pytest.mark.parametrize(
    "statement",
    ["UPDATE postings SET amount = 99900 WHERE key = 'evotor:d-1:accrual'", "DELETE FROM postings"],
)
def test_the_database_itself_refuses_to_change_or_remove_a_posting(store: Store, statement: str) -> None:
    store.ledger.append(posting())
    with (
        pytest.raises(DBAPIError, match="postings are immutable: a correction is a new posting"),
        store.engine.begin() as connection,
    ):
        connection.execute(text(statement))
    assert store.ledger.get("evotor:d-1:accrual") == posting()


def test_postings_by_account_and_by_document_oldest_first(store: Store) -> None:
    other_sale = DocRef(system="evotor", kind="receipt", id="d-2")
    store.ledger.append(posting("evotor:d-2:accrual", document=other_sale, occurred_at=_at("2026-01-12")))
    store.ledger.append(posting("evotor:d-1:redemption", amount="-30", kind="redemption"))
    store.ledger.append(posting())
    store.ledger.append(posting("evotor:d-9:accrual", account="card:2000000012345"))
    by_account = store.ledger.postings(account=PHONE)
    assert [item.key for item in by_account] == [
        "evotor:d-1:redemption",
        "evotor:d-1:accrual",
        "evotor:d-2:accrual",
    ]
    assert [item.key for item in store.ledger.postings(document=other_sale)] == ["evotor:d-2:accrual"]
    assert len(store.ledger.postings()) == 4


def test_the_payload_hash_ignores_the_offset_but_not_the_content() -> None:
    moscow = posting()
    utc = posting(occurred_at=_at("2026-01-10").astimezone(UTC))
    assert posting_hash(moscow) == posting_hash(utc)
    assert '"occurred_at":"2026-01-09T21:00:00Z"' in canonical_posting_json(moscow)
    assert posting_hash(moscow) != posting_hash(posting(status="pending"))


# --- balances, computed by hand -------------------------------------------------------------------------------

ACCRUAL = {"available_at": _at("2026-01-24"), "expires_at": _at("2027-01-24"), "status": "pending"}


@pytest.mark.parametrize(
    ("as_of", "available", "pending", "expired"),
    [
        ("2026-01-09", "0", "0", "0"),  # before the sale: nothing
        ("2026-01-15", "0", "100", "0"),  # inside the activation delay
        ("2026-01-24", "100", "0", "0"),  # available from available_at itself
        ("2027-01-23", "100", "0", "0"),
        ("2027-01-24", "0", "0", "100"),  # expired at expires_at
    ],
)
def test_an_accrual_is_pending_then_available_then_expired(
    store: Store, as_of: str, available: str, pending: str, expired: str
) -> None:
    store.ledger.append(posting(**ACCRUAL))
    balance = store.ledger.balance(PHONE, _at(as_of))
    assert (balance.available, balance.pending, balance.expired) == (
        Decimal(available),
        Decimal(pending),
        Decimal(expired),
    )


def test_spending_uses_up_expiring_points_first(store: Store) -> None:
    store.ledger.append(
        posting(occurred_at=_at("2025-05-18"), available_at=_at("2025-06-01"), expires_at=_at("2026-01-01"))
    )
    store.ledger.append(
        posting("evotor:d-2:redemption", "-60", kind="redemption", occurred_at=_at("2025-12-10"))
    )
    store.ledger.append(
        posting("crm:welcome", "50", kind="welcome", document=None, occurred_at=_at("2025-12-15"))
    )
    before = store.ledger.balance(PHONE, _at("2025-12-31"))
    after = store.ledger.balance(PHONE, _at("2026-01-02"))
    # 31 Dec: 100 + 50 - 60 = 90 available. 2 Jan: of the 100 that expire 60 were spent, so 40 expire.
    assert (before.available, before.pending, before.expired) == (Decimal(90), Decimal(0), Decimal(0))
    assert (after.available, after.pending, after.expired) == (Decimal(50), Decimal(0), Decimal(40))


def test_a_reversal_inside_the_activation_delay_cancels_pending_points(store: Store) -> None:
    store.ledger.append(posting(**ACCRUAL))
    store.ledger.append(
        posting("crm:welcome", "200", kind="welcome", document=None, occurred_at=_at("2026-01-01"))
    )
    store.ledger.append(
        posting("evotor:r-1:accrual_reversal", "-30", kind="accrual_reversal", occurred_at=_at("2026-01-12"))
    )
    balance = store.ledger.balance(PHONE, _at("2026-01-15"))
    assert (balance.available, balance.pending) == (Decimal(200), Decimal(70))
    # A reversal larger than what is pending takes the rest from the available points.
    store.ledger.append(
        posting("evotor:r-2:accrual_reversal", "-100", kind="accrual_reversal", occurred_at=_at("2026-01-13"))
    )
    balance = store.ledger.balance(PHONE, _at("2026-01-15"))
    assert (balance.available, balance.pending) == (Decimal(170), Decimal(0))


def test_available_never_goes_below_zero_and_cancelled_or_foreign_postings_do_not_count(store: Store) -> None:
    store.ledger.append(posting(amount="50"))
    store.ledger.append(
        posting("evotor:d-2:redemption", "-80", kind="redemption", occurred_at=_at("2026-01-11"))
    )
    store.ledger.append(posting("evotor:d-3:accrual", "500", status="cancelled"))
    store.ledger.append(posting("evotor:d-4:accrual", "700", account="card:2000000012345"))
    balance = store.ledger.balance(PHONE, _at("2026-02-01"))
    assert (balance.available, balance.pending, balance.expired) == (Decimal(0), Decimal(0), Decimal(0))
    assert store.ledger.balance("card:2000000012345", _at("2026-02-01")).available == Decimal(700)


def test_a_naive_moment_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.ledger.balance(PHONE, datetime(2026, 1, 1))


# --- concurrency: several OS processes append the same postings ------------------------------------------------


def test_threads_sharing_one_store_append_each_key_once(store: Store) -> None:
    postings = _many_postings(60)
    with ThreadPoolExecutor(max_workers=6) as pool:
        stored = list(pool.map(store.ledger.append, postings * 3))
    assert stored == postings * 3
    assert _rows(store) == 60


def _many_postings(count: int) -> list[Posting]:
    return [
        posting(f"evotor:d-{number}:accrual", f"{number}.{number % 100:02d}", occurred_at=_at("2026-01-10"))
        for number in range(count)
    ]


def _assert_exactly_once(url: str, postings: list[Posting], results: list[dict[str, object]]) -> None:
    assert [result["errors"] for result in results] == [[]] * len(results)
    assert [result["conflicts"] for result in results] == [0] * len(results)
    assert [result["appended"] for result in results] == [len(postings)] * len(results)
    with open_store(url) as store:
        assert _rows(store) == len(postings)
        assert {item.key: item for item in store.ledger.postings()} == {item.key: item for item in postings}


@pytest.mark.postgres
@pytest.mark.slow
def test_eight_processes_appending_the_same_thousand_postings_leave_exactly_a_thousand_rows(
    pg_url: str, tmp_path: Path
) -> None:
    open_store(pg_url).close()  # migrated once up front; the race under test is the appends
    postings = _many_postings(1000)
    results = run_workers(pg_url, postings, processes=8, singles=100, tmp=tmp_path)
    _assert_exactly_once(pg_url, postings, results)
    # The appends themselves (after every process is up) stay well inside the time the suite can afford.
    assert max(float(str(result["seconds"])) for result in results) < 30


def test_three_processes_on_one_sqlite_file_leave_exactly_one_row_per_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(url).close()
    postings = _many_postings(150)
    results = run_workers(url, postings, processes=3, singles=30, tmp=tmp_path)
    _assert_exactly_once(url, postings, results)
