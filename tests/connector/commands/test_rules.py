"""``loyalty-connector rules check`` through the real entry point (connector.cli.main) and the console script."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connector.cli import main

DATA = Path(__file__).parent.parent.parent / "data" / "rules"
PROGRAM = DATA / "program.yaml"
CASE = DATA / "sale_and_partial_return.json"
SCRIPT = Path(sys.executable).parent / "loyalty-connector"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(["rules", "check", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def case_with(tmp_path: Path, change: Any) -> Path:
    """The example case after ``change(case)`` edits it in place."""
    case = json.loads(CASE.read_text(encoding="utf-8"))
    change(case)
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case), encoding="utf-8")
    return path


def test_prints_expected_postings_in_document_order(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--program", str(PROGRAM), "--input", str(CASE))
    assert (code, err) == (0, "")
    postings = json.loads(out)
    # Sale 1200 (milk 1000 + tobacco 200) paying 150 in points: spread 125 / 25; bases 875 / 175;
    # milk 5% = 43.75, tobacco excluded -> floor 43. Half the milk back: floor(0.5·43.75) = 21, floor(0.5·125) = 62.
    assert [(p["key"], p["amount"]) for p in postings] == [
        ("evotor:s-1:redemption", "-150.00"),
        ("evotor:s-1:accrual", "43.00"),
        ("evotor:r-1:accrual_reversal", "-21.00"),
        ("evotor:r-1:redemption_refund", "62.00"),
    ]
    assert postings[1] == {
        "key": "evotor:s-1:accrual",
        "kind": "accrual",
        "amount": "43.00",
        "document": {"system": "evotor", "kind": "receipt", "id": "s-1"},
        "occurred_at": "2026-11-20T12:30:00+03:00",
        "available_at": "2026-12-04T00:00:00+03:00",
        "expires_at": "2027-12-04T00:00:00+03:00",
        "status": "pending",
    }
    assert postings[2]["available_at"] is None
    assert postings[2]["expires_at"] is None
    assert postings[2]["status"] == "active"


def test_cumulative_spend_before_picks_the_tier(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = case_with(tmp_path, lambda case: case.update(cumulative_spend_before="100000"))
    code, out, _ = run(capsys, "--program", str(PROGRAM), "--input", str(path))
    # Gold 10%: 875 · 10% = 87.5 -> 87
    assert code == 0
    assert json.loads(out)[1]["amount"] == "87.00"


def test_notes_returns_without_sale_and_redemption_over_limit_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def change(case: dict[str, Any]) -> None:
        case["documents"][1]["original"] = None
        sale = case["documents"][0]
        sale["bonus_redeemed"] = "600.00"  # over 30% of 1200 = 360
        sale["payments"] = [{"method": "card", "amount": "600.00"}, {"method": "bonus", "amount": "600.00"}]

    code, out, err = run(capsys, "--program", str(PROGRAM), "--input", str(case_with(tmp_path, change)))
    assert code == 0
    assert [p["kind"] for p in json.loads(out)] == ["redemption", "accrual"]
    assert "return_without_sale: evotor:receipt:r-1 has no known original sale" in err
    assert (
        "redemption_over_limit: evotor:receipt:s-1: 600.00 paid with points is over 30% of total 1200.00"
        in err
    )


def test_stdin_input(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"documents": []})))
    assert run(capsys, "--program", str(PROGRAM), "--input", "-") == (0, "[]\n", "")


def _set(path: list[Any], value: Any) -> Any:
    def change(case: dict[str, Any]) -> None:
        target = case
        for part in path[:-1]:
            target = target[part]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return change


_DELETE = object()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _set(["documents", 0, "lines", 1, "amount"], "abc"),
            "documents[0].lines[1].amount: 'abc' is not a decimal number",
        ),
        (_set(["documents", 1, "number"], _DELETE), "documents[1].number: Field required"),
        (
            _set(["documents", 0, "payments", 0, "method"], "bitcoin"),
            "documents[0].payments[0].method: Input should be 'cash', 'card', 'bonus', 'certificate' or 'other', "
            "got 'bitcoin'",
        ),
        (
            _set(["documents", 0, "type"], "refund"),
            "documents[0].type: Input tag 'refund' found using 'type'",
        ),
        (
            _set(["documents", 0, "total"], "1.00"),
            "documents[0]: total 1.00 is not the sum of line amounts 1200.00",
        ),
        (
            _set(["cumulative_spend_before"], "lots"),
            "cumulative_spend_before: 'lots' is not a decimal number",
        ),
        (
            _set(["documents", 1, "ref"], {"system": "evotor", "kind": "receipt", "id": "s-1"}),
            "documents[1].ref",
        ),
        (_set(["documnets"], []), "documnets: Extra inputs are not permitted"),
    ],
)
def test_malformed_case_exits_2_naming_the_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, change: Any, message: str
) -> None:
    code, out, err = run(capsys, "--program", str(PROGRAM), "--input", str(case_with(tmp_path, change)))
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err


def test_bad_json_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "case.json"
    path.write_text('{"documents": [', encoding="utf-8")
    code, out, err = run(capsys, "--program", str(PROGRAM), "--input", str(path))
    assert (code, out) == (2, "")
    assert "not valid JSON: Expecting value at line 1 column 16" in err
    assert f"file={path}" in err


def test_not_an_object_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "case.json"
    path.write_text("[]", encoding="utf-8")
    assert run(capsys, "--program", str(PROGRAM), "--input", str(path))[:2] == (2, "")


def test_bad_program_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    program = tmp_path / "program.yaml"
    program.write_text("program:\n  name: p\n  accrual:\n    rounding: ceil\n", encoding="utf-8")
    code, out, err = run(capsys, "--program", str(program), "--input", str(CASE))
    assert (code, out) == (2, "")
    assert "program.accrual.rounding (line 4): Input should be 'floor', 'half_up' or 'none'" in err


def test_json_numbers_are_read_as_exact_decimals(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = CASE.read_text(encoding="utf-8").replace('"amount": "1000.00"', '"amount": 1000.00')
    path = tmp_path / "case.json"
    path.write_text(text, encoding="utf-8")
    code, out, _ = run(capsys, "--program", str(PROGRAM), "--input", str(path))
    assert code == 0
    assert Decimal(json.loads(out)[1]["amount"]) == Decimal("43")


def test_console_script(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(SCRIPT), "rules", "check", "--program", str(PROGRAM), "--input", str(CASE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [p["kind"] for p in json.loads(result.stdout)] == [
        "redemption",
        "accrual",
        "accrual_reversal",
        "redemption_refund",
    ]
    bad = case_with(tmp_path, _set(["documents", 0, "lines", 1, "amount"], "abc"))
    failed = subprocess.run(
        [str(SCRIPT), "rules", "check", "--program", str(PROGRAM), "--input", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (failed.returncode, failed.stdout) == (2, "")
    assert "documents[0].lines[1].amount: 'abc' is not a decimal number" in failed.stderr
