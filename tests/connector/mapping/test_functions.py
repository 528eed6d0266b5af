"""Compiled JMESPath: every expression gives what JMESPath's interpreter gives, values and errors alike."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jmespath.parser import ParsedResult
from pydantic import BaseModel

from adapters.jsonwire import JSONObject, json_truth
from connector.mapping import functions as mapping_functions
from connector.mapping import load_mapping, shipped_mappings
from connector.mapping.functions import Scope, compile_expression, compiled, evaluate, interpret
from connector.mapping.transforms import Transform
from connector.sandbox._render_evotor import SandboxIndex, render_document
from connector.sandbox.generator import SandboxOptions, generate_world

RAW = Path(__file__).parent.parent.parent / "data" / "raw"
CATALOGS = {"products": {"p-1": {"sku": "A-1"}}, "partners": {"g-1": {"phone": "+79161234567"}}}


def _expressions(value: Any) -> Iterator[ParsedResult]:
    if isinstance(value, ParsedResult):
        yield value
    elif isinstance(value, Transform):
        yield from _expressions(value.args)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _expressions(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _expressions(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _expressions(item)


def _nodes(value: Any) -> Iterator[Any]:
    """The value and every object and array inside it (expressions run on documents, lines, rows …)."""
    yield value
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        if isinstance(child, dict | list):
            yield from _nodes(child)


def _outcome(run: Any, expression: ParsedResult, node: Any, scope: Scope) -> tuple[str, Any]:
    try:
        return "value", run(expression, node, scope)
    except Exception as exc:  # the same error either way, whatever it is
        return type(exc).__name__, str(exc)


def _sandbox_documents() -> list[dict[str, Any]]:
    world = generate_world(SandboxOptions(seed=3, stores=2, days=2, receipts=15, clean=False))
    index = SandboxIndex.of(world)
    return [render_document(index, receipt) for receipt in world.receipts]


@pytest.fixture(scope="module")
def payloads() -> list[Any]:
    files = [
        json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal) for path in RAW.rglob("*.json")
    ]
    return [*files, *_sandbox_documents()]


@pytest.mark.parametrize("name", shipped_mappings())
def test_every_expression_of_a_shipped_mapping_compiles_and_agrees_with_the_interpreter(
    name: str, payloads: list[Any]
) -> None:
    mapping = load_mapping(name)
    checked = 0
    for path, spec in mapping.files:
        scope = Scope(root={}, params=mapping.params(path), catalogs=CATALOGS, system="s")
        for expression in _expressions(spec):
            assert compiled(expression) is not None, expression.expression
            for payload in payloads:
                scope.root = payload
                scope.vars = {"positions": payload.get("body") if isinstance(payload, dict) else None}
                for node in _nodes(payload):
                    assert _outcome(evaluate, expression, node, scope) == _outcome(
                        interpret, expression, node, scope
                    ), expression.expression
                    checked += 1
    assert checked > 1000


@pytest.mark.parametrize(
    "text",
    [
        "a.b[0].c",
        "a[-1]",
        "a[1:3]",
        "a[].b",
        "a[*].b",
        "a[?b > `1`].b",
        "a[?b == `1` || c != 'x'].c",
        "!a",
        "!`0`",
        "a && b",
        "a || b",
        "values(m)",
        "m.*",
        "[a, b]",
        "{x: a, y: b}",
        "a[] | [0]",
        "a[][]",
        "length(a)",
        "sum(n)",
        "abs(s)",
        "contains(a, `1`)",
        "dsum(n)",
        "add(s, `1`)",
        "param('p')",
        "param('missing')",
        "var('v')",
        "field('f')",
        "root().s",
        "catalog('products', k)",
        "unwrap(w, 'position')",
        "split(t, ',')",
        "str(s)",
        "prorate(`10`, `1`, `3`)",
        "sort_by(a, &b)",
        "max_by(a, &b).b",
        "map(&add(b, param('p')[0]), a)",
        "param(k)",
        "`[1, 2]`",
        "@",
    ],
)
def test_expression_shapes_agree_with_the_interpreter_on_values_and_errors(text: str) -> None:
    expression = compile_expression(text)
    nodes: list[Any] = [
        {
            "a": [{"b": 1, "c": "x"}, {"b": 2, "c": "y"}, {"b": Decimal("3.5"), "c": None}, [{"b": 4}]],
            "b": 0,
            "m": {"x": 1, "y": None},
            "n": [1, 2, 3],
            "s": Decimal("2.50"),
            "k": "P-1",
            "w": [{"position": {"id": 1}}, {"id": 2}],
            "t": "a,b",
        },
        {"a": "text", "b": False, "n": ["x"], "s": "word", "m": [], "k": None, "w": None, "t": None},
        {},
        [],
        None,
        "x",
        Decimal(0),
        True,
    ]
    scope = Scope(root={"s": 1}, params={"p": [1]}, vars={"v": 2}, fields={"f": 3},
                  catalogs={"products": {"p-1": {"sku": "A"}}})  # fmt: skip
    for node in nodes:
        assert _outcome(evaluate, expression, node, scope) == _outcome(interpret, expression, node, scope), (
            node
        )


def test_scope_functions_with_computed_names_are_left_to_the_interpreter() -> None:
    assert compiled(compile_expression("param(a)")) is None
    assert compiled(compile_expression("map(&param('p'), a)")) is not None


def test_shipped_mappings_map_sandbox_documents_exactly_as_the_interpreter_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mapping = load_mapping("evotor/v2")
    documents = _sandbox_documents()
    fast = [mapping.map(document, system="evotor", catalogs=CATALOGS) for document in documents]
    monkeypatch.setattr(mapping_functions, "compiled", lambda expression: None)
    slow = [mapping.map(document, system="evotor", catalogs=CATALOGS) for document in documents]
    assert fast == slow
    assert {document.type for document in fast} == {"sale", "return"}


def test_receipt_kind_is_told_without_mapping_only_for_receipt_files_with_a_constant_kind() -> None:
    document = _sandbox_documents()[0]
    assert load_mapping("evotor/v2").receipt_kind(document, system="evotor") == "receipt"
    assert (
        load_mapping("evotor/v2").receipt_kind({"type": "RETURN"}, system="evotor") is None
    )  # no file maps it
    operation = json.loads((RAW / "crm" / "retailcrm_operations_page.json").read_text(encoding="utf-8"))
    item = operation["bonusOperations"][0]
    assert load_mapping("crm/retailcrm").receipt_kind(item, system="crm") is None  # a posting


def test_receipt_place_is_the_mapped_receipts_store_and_business_date() -> None:
    mapping = load_mapping("evotor/v2")
    documents = _sandbox_documents()
    for document in documents:
        mapped = mapping.map(document, system="evotor")
        assert mapping.receipt_place(document, system="evotor") == (
            "receipt",
            mapped.store,
            mapped.business_date,
        )
    # A receipt closed at 22:30 UTC in a UTC+3 store is the next local day.
    late = {**documents[0], "close_date": "2026-11-20T22:30:00.000+0000", "time_zone_offset": 10_800_000}
    assert mapping.receipt_place(late, system="evotor") == ("receipt", late["store_id"], date(2026, 11, 21))


def test_receipt_place_is_none_where_the_whole_mapping_must_decide() -> None:
    evotor = load_mapping("evotor/v2")
    document = _sandbox_documents()[0]
    assert evotor.receipt_place({**document, "close_date": "yesterday"}, system="evotor") is None
    assert evotor.receipt_place({**document, "store_id": 42}, system="evotor") is None  # not a store id
    assert evotor.receipt_place({"type": "RETURN"}, system="evotor") is None  # no file maps it
    receipt = json.loads(
        (RAW / "onec" / "ut11_receipt.json").read_text(encoding="utf-8"), parse_float=Decimal
    )
    onec = load_mapping("onec/ut11")  # its files are told apart by the payload's odata.metadata
    cheque = onec.map(receipt, system="onec")
    assert onec.receipt_place(receipt, system="onec") == (
        "Document_ЧекККМ",
        cheque.store,
        cheque.business_date,
    )
    operation = json.loads((RAW / "crm" / "retailcrm_operations_page.json").read_text(encoding="utf-8"))
    assert load_mapping("crm/retailcrm").receipt_place(operation["bonusOperations"][0], system="crm") is None


@pytest.mark.parametrize(
    ("expression", "read", "tested"),
    [
        ("store_id", {"store_id"}, set()),
        ("body.positions[0].sum", {"body"}, set()),
        ("body.positions[?sum > `0`].price", {"body"}, set()),  # the filter reads the elements, not the root
        ("body | positions", {"body"}, set()),
        ("sort_by(items, &price)[0].price", {"items"}, set()),  # &price reads the items, not the root
        ("catalog('stores', Склад_Key).timezone", {"Склад_Key"}, set()),
        ("[number, close_date]", {"number", "close_date"}, set()),
        ("{n: number}", {"number"}, set()),
        ("a || b", {"a", "b"}, set()),  # the value of a || b is a's or b's
        ("!a", set(), {"a"}),  # only a's truth
        ("`1` == `1`", set(), set()),
        ("param('bonus_app_ids')", set(), set()),  # the scope is not the document
    ],
)
def test_root_members_are_what_an_expression_reads_of_the_document(
    expression: str, read: set[str], tested: set[str]
) -> None:
    assert mapping_functions.root_members(compile_expression(expression)) == (
        frozenset(read),
        frozenset(tested),
    )


def test_where_only_the_truth_counts_a_member_may_be_only_tested() -> None:
    when = compile_expression("contains(['SELL', 'PAYBACK'], type) && body")
    assert mapping_functions.root_members(when, truth=True) == (frozenset({"type"}), frozenset({"body"}))
    assert mapping_functions.root_members(when) == (frozenset({"type", "body"}), frozenset())
    both = compile_expression("body && body.positions")  # read as well as tested: read
    assert mapping_functions.root_members(both, truth=True) == (frozenset({"body"}), frozenset())


@pytest.mark.parametrize("expression", ["@", "keys(@)", "root().id", "*.id", "@.id", "[@]"])
def test_an_expression_that_may_read_the_whole_document_has_no_members(expression: str) -> None:
    assert mapping_functions.root_members(compile_expression(expression)) is None


def test_every_shipped_expression_gives_the_same_on_only_the_members_it_reads(payloads: list[Any]) -> None:
    """The claim land_records relies on, checked on every expression of every shipped mapping and every raw
    payload we have: the document cut down to the members an expression reads gives the same value (or the
    same error), and where only truth counts, members only tested may stand in as True / False."""
    checked = 0
    for name in shipped_mappings():
        mapping = load_mapping(name)
        for path, spec in mapping.files:
            scope_params = mapping.params(path)
            for expression in _expressions(spec):
                members = mapping_functions.root_members(expression)
                if members is None:
                    continue
                for payload in payloads:
                    if not isinstance(payload, dict):
                        continue
                    cut = {key: value for key, value in payload.items() if key in members.read}
                    cut.update((key, json_truth(payload[key])) for key in members.tested if key in payload)
                    whole, part = (
                        Scope(root=payload, params=scope_params),
                        Scope(root=cut, params=scope_params),
                    )
                    assert _result(expression, payload, whole) == _result(expression, cut, part), (
                        expression.expression
                    )
                    checked += 1
    assert checked > 1000


def _result(expression: ParsedResult, node: Any, scope: Scope) -> Any:
    try:
        return ("value", evaluate(expression, node, scope))
    except ValueError as exc:
        return ("error", str(exc))


def test_place_members_of_the_shipped_evotor_mapping() -> None:
    members = load_mapping("evotor/v2").place_members()
    assert members == (frozenset({"type", "store_id", "close_date", "time_zone_offset"}), frozenset({"body"}))


def test_the_place_told_from_the_place_members_alone_is_the_whole_documents() -> None:
    mapping = load_mapping("evotor/v2")
    members = mapping.place_members()
    assert members is not None
    documents = _sandbox_documents()
    variants = [
        *documents,
        {**documents[0], "type": "RETURN"},  # no file maps it
        {**documents[0], "body": {}},  # not a v2 document: its body is empty
        {key: value for key, value in documents[0].items() if key != "body"},
        {**documents[0], "close_date": "yesterday"},
        {**documents[1], "time_zone_offset": -36_000_000},
    ]
    for document in variants:
        projected = JSONObject(json.dumps(document, default=str)).project(members.read, members.tested)
        assert set(projected) <= members.read | members.tested
        assert mapping.receipt_place(projected, system="evotor") == mapping.receipt_place(
            document, system="evotor"
        )
    assert mapping.receipt_place({**documents[0], "body": {}}, system="evotor") is None
    assert mapping.receipt_place(documents[0], system="evotor") is not None  # the same type, selected again
