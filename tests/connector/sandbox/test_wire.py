"""The sandbox's wire helpers: exact-decimal JSON, cursors, the rate budget and the deflated block store."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from connector.sandbox._wire import BlockStore, RateBudget, decode_cursor, dumps, encode_cursor

money = st.decimals(min_value=Decimal("-1000000"), max_value=Decimal("1000000"), places=2)


@given(st.lists(money, max_size=20))
def test_decimals_become_json_numbers_digit_for_digit(amounts: list[Decimal]) -> None:
    text = dumps({"amounts": amounts, "name": "Латте"}).decode()
    parsed = json.loads(text, parse_float=Decimal)

    assert parsed["amounts"] == amounts
    assert all(f"{amount:f}" in text for amount in amounts)  # 250.00 stays 250.00, never 250.0
    assert parsed["name"] == "Латте"


def test_cursor_round_trip_and_garbage() -> None:
    state = {"s": "store", "i": 1000, "k": "ALL"}

    assert decode_cursor(encode_cursor(state)) == state
    assert decode_cursor("%%%") is None
    assert decode_cursor(encode_cursor({"a": 1})[:-3] + "!") is None


def test_rate_budget_refills_with_time() -> None:
    now = [0.0]
    budget = RateBudget(2, burst=2, clock=lambda: now[0])

    assert [budget.take("k").allowed for _ in range(3)] == [True, True, False]
    assert budget.take("other").allowed  # one bucket per credential
    now[0] = 0.5  # one request's worth refilled
    decision = budget.take("k")
    assert decision.allowed
    assert decision.remaining == 0
    assert decision.reset_seconds == 1


@given(
    st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=8),
    st.data(),
)
def test_block_store_returns_every_item_and_any_selection_joined(
    items: list[bytes], block_size: int, data: st.DataObject
) -> None:
    store = BlockStore(block_size=block_size, separator=b",", cached_blocks=2)
    for expected_index, item in enumerate(items):
        assert store.append(item) == expected_index
    indices = data.draw(st.lists(st.integers(min_value=0, max_value=len(items) - 1), max_size=30))

    assert len(store) == len(items)
    assert [store.get(i) for i in range(len(items))] == items
    assert store.joined(indices) == b",".join(items[i] for i in indices)
    assert store.joined(range(len(items))) == b",".join(items)
