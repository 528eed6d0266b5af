"""``loyalty-connector map`` through the real entry point on every input form."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connector.commands.map import split_payload

RAW = Path(__file__).parent.parent.parent / "data" / "raw"
ONEC_CATALOGS = str(RAW / "onec" / "catalogs.json")
SALE_ID = "5d1c2f0a-8b4e-4c1a-9f3e-2a7b6c5d4e01"


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def write_json(tmp_path: Path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_one_evotor_document(run_cli: Callable[..., Any]) -> None:
    result = run_cli(
        "map", "--mapping", "evotor/v2", "--input", str(RAW / "evotor" / "sell_bonus_discount.json")
    )

    assert (result.code, result.err) == (0, "")
    (sale,) = lines(result.out)
    assert sale["type"] == "sale"
    assert sale["ref"] == {
        "system": "evotor",
        "kind": "receipt",
        "id": "6e2d3f1b-9c5f-4d2b-8a4f-3b8c7d6e5f02",
    }
    assert (sale["total"], sale["occurred_at"], sale["business_date"]) == (
        "550.00",
        "2024-05-17T12:41:12.318000+03:00",
        "2024-05-17",
    )
    assert [line["quantity"] for line in sale["lines"]] == ["2.000", "1.000"]


def test_evotor_page_of_items_with_system_name(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    sell = json.loads((RAW / "evotor" / "sell_bonus_payment.json").read_text(encoding="utf-8"))
    refund = json.loads((RAW / "evotor" / "payback_wrapped.json").read_text(encoding="utf-8"))
    page = write_json(tmp_path, "page.json", {"items": [sell, refund], "paging": {}})
    result = run_cli("map", "--mapping", "evotor/v2", "--system", "tills", "--input", page)

    assert result.code == 0
    sale, refund_out = lines(result.out)
    assert (sale["type"], refund_out["type"]) == ("sale", "return")
    assert refund_out["original"] == {"system": "tills", "kind": "receipt", "id": SALE_ID}
    assert sale["customer"]["phone"] == "+79161234567"


def test_param_overrides_a_mapping_parameter(run_cli: Callable[..., Any]) -> None:
    document = str(RAW / "evotor" / "sell_bonus_discount.json")
    result = run_cli(
        "map", "--mapping", "evotor/v2", "--param", 'bonus_discount_types=["SUM"]', "--input", document
    )
    assert result.code == 0
    (sale,) = lines(result.out)
    assert (sale["total"], sale["bonus_redeemed"]) == ("650.00", "100.00")

    bad = run_cli("map", "--mapping", "evotor/v2", "--param", "bonus_discount_type=[]", "--input", document)
    assert bad.code == 2
    assert "unknown mapping parameter 'bonus_discount_type'" in bad.err


def test_odata_page_names_its_entity_set(run_cli: Callable[..., Any]) -> None:
    page = str(RAW / "onec" / "ut11_register_page.json")
    result = run_cli("map", "--mapping", "onec/ut11", "--catalogs", ONEC_CATALOGS, "--input", page)

    assert (result.code, result.err) == (0, "")
    postings = lines(result.out)
    assert [(p["kind"], p["amount"]) for p in postings] == [
        ("redemption", "-150.00"),
        ("accrual", "117.00"),
        ("expiry", "-117.00"),
        ("accrual_reversal", "-11.70"),
        ("redemption_refund", "50.00"),
        ("expiry", "11.70"),
    ]
    assert postings[1]["available_at"] == "2024-03-29T00:00:00+03:00"


def test_single_odata_entity_and_a_plain_array_with_entity_option(
    run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    single = run_cli(
        "map",
        "--mapping",
        "onec/ut11",
        "--catalogs",
        ONEC_CATALOGS,
        "--input",
        str(RAW / "onec" / "ut11_receipt.json"),
    )
    assert single.code == 0
    (sale,) = lines(single.out)
    assert (sale["ref"]["kind"], sale["lines"][2]["amount"], sale["customer"]["phone"]) == (
        "Document_ЧекККМ",
        "0.30",
        "+79161234567",
    )

    returns = json.loads((RAW / "onec" / "ut11_returns_page.json").read_text(encoding="utf-8"))["value"]
    array = write_json(tmp_path, "returns.json", returns)
    listed = run_cli(
        "map",
        "--mapping",
        "onec/ut11",
        "--entity",
        "Document_ЧекККМВозврат",
        "--catalogs",
        ONEC_CATALOGS,
        "--input",
        array,
    )
    assert listed.code == 0
    assert [(doc["type"], doc["status"]) for doc in lines(listed.out)] == [
        ("return", "posted"),
        ("return", "draft"),
    ]


def test_retailcrm_page_with_catalogs(run_cli: Callable[..., Any]) -> None:
    result = run_cli(
        "map",
        "--mapping",
        "crm/retailcrm",
        "--catalogs",
        str(RAW / "crm" / "catalogs.json"),
        "--input",
        str(RAW / "crm" / "retailcrm_operations_page.json"),
    )
    assert result.code == 0
    keys = [posting["key"] for posting in lines(result.out)]
    assert keys == [
        f"evotor:{SALE_ID}:accrual",
        f"evotor:{SALE_ID}:redemption",
        "crm:5003:accrual",
        "crm:5004:birthday",
        "crm:5005:expiry",
    ]


def test_bad_documents_are_reported_and_the_good_ones_printed(
    run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    page = json.loads((RAW / "onec" / "ut11_register_page.json").read_text(encoding="utf-8"))
    page["value"][2]["Партнер_Key"] = "99999999-0000-0000-0000-000000000000"
    page["value"][3]["Period"] = "вчера"
    path = write_json(tmp_path, "page.json", page)
    result = run_cli("map", "--mapping", "onec/ut11", "--catalogs", ONEC_CATALOGS, "--input", path)

    assert result.code == 1
    assert [p["kind"] for p in lines(result.out)] == ["redemption", "accrual", "redemption_refund", "expiry"]
    errors = result.err.splitlines()
    assert errors[0].startswith("error: document #2 (5f0c2a1e-e2b7-11ee-8a3c-00155d0a1f01:3): field account:")
    assert "catalog 'partners' has no '99999999-0000-0000-0000-000000000000'" in errors[0]
    assert errors[1].startswith(
        "error: document #3 (6a1d3b2f-e2b8-11ee-8a3c-00155d0a1f01:1): field occurred_at:"
    )
    assert "'вчера' is not an ISO 8601 date or time" in errors[1]
    assert errors[2] == "2 of 6 document(s) could not be mapped"


def test_custom_mapping_file(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    mapping = tmp_path / "ops.yaml"
    mapping.write_text(
        "system: mycrm\nproduces: posting\nref: {kind: {value: op}, id: id}\n"
        "fields:\n  kind: {value: welcome}\n  account: {path: tel, transforms: [phone]}\n"
        "  amount: {path: pts, transforms: [decimal]}\n  occurred_at: {path: at, transforms: [{datetime: Europe/Samara}]}\n"
        "  status: {value: active}\n",
        encoding="utf-8",
    )
    data = write_json(
        tmp_path, "ops.json", [{"id": "w-1", "tel": "89161234567", "pts": "200", "at": "2025-01-02T03:04:05"}]
    )
    result = run_cli("map", "--mapping", str(mapping), "--input", data)

    assert result.code == 0
    assert lines(result.out) == [
        {
            "key": "mycrm:w-1:welcome",
            "account": "+79161234567",
            "kind": "welcome",
            "amount": "200.00",
            "document": None,
            "occurred_at": "2025-01-02T03:04:05+04:00",
            "available_at": None,
            "expires_at": None,
            "status": "active",
            "ref": {"system": "mycrm", "kind": "op", "id": "w-1"},
        }
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--mapping", "evotor/v3", "--input", str(RAW / "evotor" / "payback_wrapped.json")],
            "error: no mapping 'evotor/v3'",
        ),
        (["--mapping", "evotor/v2", "--input", "/nonexistent/x.json"], "error: cannot read the input"),
        (
            ["--mapping", "onec/ut11", "--catalogs", "/nonexistent/c.json", "--input", ONEC_CATALOGS],
            "error: cannot read the catalogs",
        ),
        (
            [
                "--mapping",
                "onec/ut11",
                "--entity",
                "Document_ЧекККМ",
                "--input",
                str(RAW / "onec" / "ut11_register_page.json"),
            ],
            "error: the payload is AccumulationRegister_БонусныеБаллы_RecordType but --entity says Document_ЧекККМ",
        ),
    ],
)
def test_unreadable_input_or_mapping_exits_2_with_one_line(
    run_cli: Callable[..., Any], args: list[str], message: str
) -> None:
    result = run_cli("map", *args)
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith(message)
    assert len(result.err.strip().splitlines()) == 1


def test_invalid_json_and_broken_mapping_exit_2(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"items": [', encoding="utf-8")
    result = run_cli("map", "--mapping", "evotor/v2", "--input", str(bad_json))
    assert (result.code, result.err.startswith("error: not valid JSON")) == (2, True)

    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "system: x\nproduces: posting\nfields:\n  amount: {path: a, transforms: [money]}\n", encoding="utf-8"
    )
    result = run_cli("map", "--mapping", str(broken), "--input", str(bad_json))
    assert result.code == 2
    assert "unknown transform 'money'" in result.err
    assert f"file={broken}, line=4, key=fields.amount.transforms[0]" in result.err


def test_split_payload_recognises_each_page_form() -> None:
    metadata = "http://1c/ut/odata/standard.odata/$metadata#Document_ЧекККМ/@Element"
    assert split_payload({"odata.metadata": metadata, "Ref_Key": "k"}) == (
        [{"Ref_Key": "k"}],
        "Document_ЧекККМ",
    )
    assert split_payload({"bonusOperations": [{"id": 1}], "success": True}) == ([{"id": 1}], None)
    assert split_payload([{"a": 1}, {"a": 2}]) == ([{"a": 1}, {"a": 2}], None)
    assert split_payload({"id": "x", "type": "SELL"}) == ([{"id": "x", "type": "SELL"}], None)
