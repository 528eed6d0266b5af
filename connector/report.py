"""Render a reconciliation for people and for machines: a terminal table, JSON, CSV or one HTML page with charts.

Every format reads the one :class:`~connector.discrepancies.ReconcileResult` the engine produces:

* ``table`` — rich tables for the terminal: a summary by kind (count, money or points at stake), then every
  discrepancy; readable at 100 columns.
* ``json`` — exactly :meth:`ReconcileResult.as_json`, indented, UTF-8 (Cyrillic is written as is).
* ``csv`` — one row per discrepancy (RFC 4180, header row, ``.`` decimals), for spreadsheets and scripts.
* ``html`` — one self-contained page (:mod:`connector.report_html`): no network is needed to open it.

Example:
    >>> text = render(result, "table", width=100)          # doctest: +SKIP
    >>> write_report(result, "html", Path("report.html"))  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from connector.discrepancies import AUTO_FIXABLE, MONEY_KINDS, Discrepancy, ReconcileResult
from connector.errors import InputError

__all__ = [
    "CSV_BOM",
    "CSV_COLUMNS",
    "FORMATS",
    "TABLE_MAX_ROWS",
    "ReportFormat",
    "format_refs",
    "render",
    "render_csv",
    "render_json",
    "render_table",
    "spreadsheet_cell",
    "stake_totals",
    "unit_of",
    "value_text",
    "write_report",
]

ReportFormat = Literal["table", "json", "csv", "html"]

FORMATS: tuple[str, ...] = get_args(ReportFormat)
"""The formats :func:`render` knows, in the order ``--format`` lists them."""

CSV_COLUMNS: tuple[str, ...] = (
    "kind",
    "store",
    "business_date",
    "refs",
    "expected",
    "actual",
    "delta",
    "unit",
    "fix_action",
    "fix_target",
    "fix_key",
    "fix_description",
)
"""The header row of the CSV report."""

CSV_BOM = "\ufeff"
"""Starts a CSV *file* (``--output``, the console's download): Excel reads UTF-8 without it as the ANSI code page,
and Cyrillic store names become mojibake. Standard output carries none (read a file with ``utf-8-sig``)."""

_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")

TABLE_MAX_ROWS = 200
"""Discrepancies the terminal table lists by default: rich lays out ~100 rows a second, and a screen of 200 rows
is already more than an operator reads; the summary above it always counts every one."""

_UNIT_LABEL = {"money": "RUB", "points": "pts"}
_MISSING = "—"
# A line list as expected/actual would otherwise make one row of the terminal table a screen long.
_CELL_LIMIT = 60


def render(
    result: ReconcileResult,
    fmt: ReportFormat,
    *,
    title: str | None = None,
    width: int = 100,
    max_rows: int | None = TABLE_MAX_ROWS,
) -> str:
    """Render ``result`` in one of :data:`FORMATS`.

    Args:
        result: what the reconciliation found.
        fmt: ``table``, ``json``, ``csv`` or ``html``.
        title: a heading for the table and HTML reports (default: "Reconciliation" and the window).
        width: columns of the terminal the ``table`` text is laid out for.
        max_rows: discrepancies the ``table`` lists one by one (None: all); the other formats list all.

    Returns:
        The report text (plain text without colour codes for ``table``).

    Raises:
        InputError: ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt == "table":
        console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
        with console.capture() as capture:
            render_table(result, console, title=title, max_rows=max_rows)
        return capture.get()
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise InputError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}", field="format")
    return renderer(result, title)


def write_report(
    result: ReconcileResult, fmt: ReportFormat, path: Path | str, *, title: str | None = None
) -> Path:
    """Render ``result`` and write it to ``path`` as UTF-8 (creating parent folders); return the path.

    A CSV file starts with a byte order mark (:data:`CSV_BOM`) so that Excel opens it as UTF-8.

    Raises:
        InputError: unknown format, or the file cannot be written (names the file).
    """
    target = Path(path)
    text = render(result, fmt, title=title)
    if fmt == "csv":
        text = CSV_BOM + text
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Bytes, not text mode: the CSV's RFC 4180 CRLF line ends must not be translated.
        target.write_bytes(text.encode("utf-8"))
    except OSError as exc:
        raise InputError(f"cannot write the report: {exc.strerror or exc}", file=str(target)) from exc
    return target


# --- JSON -------------------------------------------------------------------------------------------------


def render_json(result: ReconcileResult, title: str | None = None) -> str:
    """The ``reconcile --format json`` document: :meth:`ReconcileResult.as_json`, indented, Cyrillic as is.

    Args:
        result: what the reconciliation found.
        title: ignored (the JSON contract has no title); accepted so every renderer has one signature.
    """
    return json.dumps(result.as_json(), ensure_ascii=False, indent=2, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    # A fix payload is canonical JSON already; this only guards against a Decimal or date slipping into it.
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# --- CSV --------------------------------------------------------------------------------------------------


def render_csv(result: ReconcileResult, title: str | None = None) -> str:
    """One RFC 4180 row per discrepancy under a :data:`CSV_COLUMNS` header (``.`` decimals, CRLF line ends).

    Args:
        result: what the reconciliation found.
        title: ignored; accepted so every renderer has one signature.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows([spreadsheet_cell(cell) for cell in _csv_row(item)] for item in result.discrepancies)
    return buffer.getvalue()


def spreadsheet_cell(text: str) -> str:
    """A CSV cell that a spreadsheet shows as text instead of running it as a formula (CSV injection).

    Text from other systems (store names, document ids, comments) that starts with ``=``, ``+``, ``-``, ``@``,
    a tab or a carriage return gets a leading apostrophe; plain numbers (``-10.00``) and phones
    (``+79161234567``) are left as they are.

    Example:
        >>> spreadsheet_cell('=HYPERLINK("http://x")'), spreadsheet_cell("-42.00")
        ('\'=HYPERLINK("http://x")', '-42.00')
    """
    if text.startswith(_FORMULA_LEADS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _csv_row(item: Discrepancy) -> list[str]:
    data = item.as_json()
    fix = data["fix"]
    return [
        item.kind,
        item.store or "",
        data["business_date"] or "",
        format_refs(item.refs),
        value_text(data["expected"]),
        value_text(data["actual"]),
        data["delta"] or "",
        item.unit,
        fix["action"],
        fix["target"] or "",
        fix["key"] or "",
        fix["description"],
    ]


def value_text(value: Any) -> str:
    """A JSON-able ``expected``/``actual`` as one line of text, as the CSV writes it.

    Scalars as text (None as empty); lists and objects as compact JSON so a script can parse them back.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def format_refs(refs: dict[str, str]) -> str:
    """``{"onec": "b", "evotor": "a"}`` → ``"evotor=a;onec=b"`` (sorted by system), as the CSV writes refs."""
    return ";".join(f"{system}={ref}" for system, ref in sorted(refs.items()))


# --- terminal table ---------------------------------------------------------------------------------------


def render_table(
    result: ReconcileResult,
    console: Console,
    *,
    title: str | None = None,
    max_rows: int | None = TABLE_MAX_ROWS,
) -> None:
    """Print the summary by kind and every discrepancy to ``console`` (rich).

    Text from the systems (store names, ids) is never read as rich markup.

    Args:
        result: what the reconciliation found.
        console: where to print; its width decides the layout (100 columns reads well).
        title: a heading (default: "Reconciliation" and the window).
        max_rows: how many discrepancies to list one by one (None: all); the summary always counts every one.
    """
    console.print(_heading(result, title))
    if result.agrees:
        console.print(Text("All systems agree: no discrepancies in the window.", style="bold green"))
        return
    console.print(_summary_table(result))
    shown = result.discrepancies if max_rows is None else result.discrepancies[:max_rows]
    console.print(_discrepancy_table(shown))
    hidden = len(result.discrepancies) - len(shown)
    if hidden:
        console.print(
            Text(f"… and {hidden} more, not listed here: the csv, json and html formats list every one.")
        )


def _heading(result: ReconcileResult, title: str | None) -> Group:
    window = f"{result.date_from.isoformat()} … {result.date_to.isoformat()}"
    lines = [Text(title or f"Reconciliation {window}", style="bold")]
    facts = [f"window {window}", f"stores: {', '.join(result.stores) or _MISSING}"]
    if result.run_id is not None:
        facts.append(f"run {result.run_id}")
    lines.append(Text(" · ".join(facts), style="dim"))
    if result.documents_compared:
        read = ", ".join(f"{system} {count}" for system, count in sorted(result.documents_compared.items()))
        lines.append(Text(f"documents read: {read}", style="dim"))
    return Group(*lines)


def _summary_table(result: ReconcileResult) -> Table:
    table = Table(title="Discrepancies by kind", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("Kind")
    table.add_column("Count", justify="right")
    table.add_column("At stake", justify="right")
    table.add_column("Fix")
    at_stake = result.at_stake()
    for kind, count in result.summary().items():
        fix = "automatic" if kind in AUTO_FIXABLE else "manual"
        table.add_row(kind, str(count), _amount(at_stake.get(kind), unit_of(kind)), fix)
    table.add_section()
    totals = stake_totals(result)
    stake = "\n".join(_amount(totals[unit], unit) for unit in ("money", "points") if unit in totals)
    table.add_row(Text("total", style="bold"), str(len(result.discrepancies)), stake or _MISSING, "")
    return table


def _discrepancy_table(items: list[Discrepancy]) -> Table:
    # Four columns, expected/actual/delta stacked: with more, a 100-column terminal leaves the fix a sliver.
    table = Table(
        title="Discrepancies",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_lines=True,
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("Kind · store · date", min_width=21, max_width=24)
    table.add_column("Refs", overflow="fold", max_width=24)
    table.add_column("Exp · act · Δ", overflow="fold", min_width=16, max_width=20)
    table.add_column("Fix", ratio=1, min_width=20)
    for item in items:
        table.add_row(*_discrepancy_cells(item))
    return table


def _discrepancy_cells(item: Discrepancy) -> tuple[Text, ...]:
    data = item.as_json()
    where = Text(item.kind, style="bold")
    where.append(f"\n{item.store or _MISSING}\n{data['business_date'] or _MISSING}")
    refs = "\n".join(f"{system}={ref}" for system, ref in sorted(item.refs.items()))
    values = Text()
    for label, value in (("exp", _cell_value(data["expected"])), ("act", _cell_value(data["actual"]))):
        values.append(f"{label} ", style="dim")
        values.append(f"{value}\n")
    values.append("Δ ", style="dim")
    values.append(_amount(item.delta, item.unit, signed=True), style="bold")
    target = f" → {item.fix.target}" if item.fix.target else ""
    fix = Text(f"[{item.fix.action}{target}]\n", style="cyan")
    fix.append(item.fix.description)
    return (where, Text(refs or _MISSING), values, fix)


def _cell_value(value: Any) -> str:
    text = _MISSING if value is None else value_text(value)
    return text if len(text) <= _CELL_LIMIT else text[: _CELL_LIMIT - 1] + "…"


def _amount(value: Decimal | None, unit: str, *, signed: bool = False) -> str:
    """``Decimal("-1234.5")`` → ``"-1 234.50 RUB"``: 2 decimals, thin grouping a terminal cannot misread."""
    if value is None:
        return _MISSING
    number = f"{value:{'+' if signed else ''},.2f}".replace(",", " ")
    return f"{number} {_UNIT_LABEL[unit]}"


def unit_of(kind: str) -> Literal["money", "points"]:
    """``money`` for :data:`MONEY_KINDS` (roubles at stake), else ``points``."""
    return "money" if kind in MONEY_KINDS else "points"


def stake_totals(result: ReconcileResult) -> dict[str, Decimal]:
    """Money and points at stake over every kind, kept apart (roubles and points do not add up).

    Returns:
        ``{"money": roubles, "points": points}``, with only the units that occur.
    """
    totals: dict[str, Decimal] = {}
    for kind, amount in result.at_stake().items():
        unit = unit_of(kind)
        totals[unit] = totals.get(unit, Decimal("0")) + amount
    return totals


def _render_html(result: ReconcileResult, title: str | None) -> str:
    # Imported here: report_html builds on this module's helpers, so a top-level import would be circular.
    from connector.report_html import render_html

    return render_html(result, title=title)


_RENDERERS: dict[str, Callable[[ReconcileResult, str | None], str]] = {
    "json": render_json,
    "csv": render_csv,
    "html": _render_html,
}
