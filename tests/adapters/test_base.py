"""RawRecord: a payload read as text is decoded only when something reads it, and a record never changes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.base import RawRecord
from adapters.jsonwire import JSONObject

TEXT = '{"id": "d-1", "type": "SELL", "store_id": "s-1", "body": {"positions": [{"sum": 239.90}]}}'


def test_a_record_read_as_text_keeps_the_text_and_decodes_the_payload_on_first_use() -> None:
    document = JSONObject(TEXT)
    record = RawRecord("evotor", "SELL", "d-1", None, "s-1", document)
    assert record.text == TEXT
    assert record.project(["store_id"], tested=["body"]) == {"store_id": "s-1", "body": True}
    assert record.payload["body"]["positions"][0]["sum"] == Decimal("239.90")
    assert record.payload is record.payload  # decoded once


def test_a_record_of_a_decoded_payload_projects_it_too() -> None:
    payload = {"id": "d-1", "store_id": "s-1", "body": {}}
    record = RawRecord("evotor", "SELL", "d-1", None, "s-1", payload)
    assert record.text is None
    assert record.payload is payload
    assert record.project(["store_id", "missing"], tested=["body"]) == {"store_id": "s-1", "body": False}


def test_records_compare_by_everything_but_the_text() -> None:
    as_text = RawRecord("evotor", "SELL", "d-1", None, "s-1", JSONObject(TEXT))
    as_value = RawRecord("evotor", "SELL", "d-1", None, "s-1", JSONObject(TEXT).decode())
    assert as_text == as_value
    assert as_text != RawRecord("evotor", "SELL", "d-1", "v2", "s-1", JSONObject(TEXT))
    assert "239" not in repr(as_text)  # a payload (personal data) is never in a repr


def test_a_record_is_immutable() -> None:
    record = RawRecord("evotor", "SELL", "d-1", None, "s-1", {"id": "d-1"})
    with pytest.raises(AttributeError, match="immutable"):
        record.id = "d-2"  # type: ignore[misc]
