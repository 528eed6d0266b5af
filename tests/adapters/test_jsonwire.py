"""JSON on the wire: a page's items kept as sent and decoded only as far as asked, numbers exact."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.jsonwire import JSONObject, json_truth, split_items

PAGE = (
    b'{"items": [{"id": "a", "type": "SELL", "sum": 1.10, "body": {"positions": [{"price": 239.90}]}},'
    b' {"id":"b","type":"PAYBACK","sum":2,"body":{}}], "paging": {"next_cursor": "c2"}}'
)


def test_a_page_is_split_into_its_items_texts_as_sent_and_the_rest_of_the_body() -> None:
    body, items = split_items(PAGE, "items")
    assert body == {"paging": {"next_cursor": "c2"}}
    assert [item.text for item in items] == [
        '{"id": "a", "type": "SELL", "sum": 1.10, "body": {"positions": [{"price": 239.90}]}}',
        '{"id":"b","type":"PAYBACK","sum":2,"body":{}}',
    ]
    assert items[0].decode() == {
        "id": "a", "type": "SELL", "sum": Decimal("1.10"), "body": {"positions": [{"price": Decimal("239.90")}]},
    }  # fmt: skip


@pytest.mark.parametrize("content", [b'{"paging": {}}', b'{"items": null}'])
def test_a_page_without_items_has_none(content: bytes) -> None:
    assert split_items(content, "items")[1] == []


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b'{"items": {"id": "a"}}', b'{"items": [1,'])
def test_a_page_that_is_not_an_object_with_a_list_is_refused(content: bytes) -> None:
    with pytest.raises(ValueError, match="not a JSON object with a list 'items'"):
        split_items(content, "items")


def test_a_projection_decodes_only_the_named_members_exactly() -> None:
    document = JSONObject('{"id": "a", "sum": 1.10, "body": {"positions": [1]}, "extras": {}, "none": null}')
    assert document.project(["sum", "none", "missing"]) == {"sum": Decimal("1.10"), "none": None}
    assert document.get("id") == "a"
    assert document.get("missing") is None


def test_tested_members_stand_in_as_their_truth_decoded_or_not() -> None:
    text = '{"type": "SELL", "body": {"positions": [1]}, "extras": { }, "tags": [], "note": "", "zero": 0}'
    names = ["body", "extras", "tags", "note", "zero", "absent"]
    expected = {"type": "SELL", "body": True, "extras": False, "tags": False, "note": False, "zero": True}
    assert JSONObject(text).project(["type"], tested=names) == expected
    decoded = JSONObject(text)
    decoded.decode()  # the same answer from the decoded value
    assert decoded.project(["type"], tested=names) == expected


@pytest.mark.parametrize(
    ("value", "truth"),
    [(None, False), (False, False), ("", False), ([], False), ({}, False), (0, True), (Decimal(0), True),
     ("x", True), ([0], True), ({"a": None}, True), (True, True)],
)  # fmt: skip
def test_json_truth_is_jmespaths(value: object, truth: bool) -> None:
    assert json_truth(value) is truth


def test_text_that_is_not_an_object_is_a_value_error_when_decoded() -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        JSONObject("[1, 2]").decode()
    with pytest.raises(ValueError, match="not a JSON object"):
        JSONObject("[1, 2]").project(["id"])


def test_objects_are_equal_by_their_text() -> None:
    assert JSONObject('{"a": 1}') == JSONObject('{"a": 1}')
    assert JSONObject('{"a": 1}') != JSONObject('{"a":1}')  # the same value, sent differently
    assert len({JSONObject('{"a": 1}'), JSONObject('{"a": 1}')}) == 1


def test_a_repr_never_shows_the_payload() -> None:
    document = JSONObject('{"customer_phone": "79161234567"}')
    assert "7916" not in repr(document)
    assert repr(document) == "JSONObject(<33 bytes>)"


def test_a_page_s_items_are_kept_as_the_bytes_sent_and_decoded_to_text_only_when_asked() -> None:
    page = '{"items": [{"id": "a", "name": "Молоко 3,2%"}]}'.encode()
    [item] = split_items(page, "items")[1]
    assert item.data == '{"id": "a", "name": "Молоко 3,2%"}'.encode()  # byte for byte, not re-encoded
    assert item.project(["name"]) == {"name": "Молоко 3,2%"}
    assert item.text == '{"id": "a", "name": "Молоко 3,2%"}'
    assert item == JSONObject(item.text)  # from text or from its UTF-8, the same object


def test_a_page_whose_items_are_not_utf8_is_refused_not_kept() -> None:
    with pytest.raises(ValueError, match="not a JSON object with a list 'items'"):
        split_items(b'{"items": [{"id": "a", "name": "\xff\xfe"}]}', "items")
