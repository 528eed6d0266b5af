"""The HTML reconciliation report: one self-contained page an ops team opens from a mail or a shared folder.

Nothing is loaded from the network (no CDN, no web fonts): the CSS and a few lines of JS are inline and the charts
are SVG drawn here. Every value from a system (store names, ids, descriptions) is HTML-escaped, and the filter script
reads rows through ``data-`` attributes, never through ``innerHTML``, so a ``<script>`` in an id stays text.
Numbers read the Russian way (``1 234,50 ₽``); the JSON and CSV reports keep machine ``.`` decimals.

Layout of the page: a header (window, stores, totals), three charts (discrepancies by kind, by store and day,
money and points at stake by kind), and a table of every discrepancy filtered client-side by kind, store, date and
free text. Below 700 px the table turns into one card per discrepancy so it reads on a 390 px phone.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from html import escape
from typing import Any

from connector.discrepancies import AUTO_FIXABLE, Discrepancy, ReconcileResult
from connector.report import stake_totals, unit_of, value_text

__all__ = ["render_html", "ru_number"]

_NBSP = "\u00a0"
_MINUS = "\u2212"
_UNIT_SUFFIX = {"money": f"{_NBSP}₽", "points": f"{_NBSP}pts"}
# Not strftime("%a"): the page must read the same whatever locale the connector runs under.
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MAX_HEATMAP_DAYS = 62  # a longer window shows only the days that have discrepancies
_NO_STORE = "(account)"


def render_html(result: ReconcileResult, *, title: str | None = None) -> str:
    """The whole report page as one string (UTF-8 HTML5, no external resources).

    Args:
        result: what the reconciliation found.
        title: the page heading (default: "Reconciliation" and the window).
    """
    heading = title or f"Reconciliation {result.date_from.isoformat()} … {result.date_to.isoformat()}"
    body = [_header(result, heading)]
    if result.agrees:
        body.append('<section><p class="ok">All systems agree: no discrepancies in the window.</p></section>')
    else:
        body += [_charts(result), _table_section(result)]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(heading)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def ru_number(value: Decimal, places: int = 2) -> str:
    """``Decimal("-1234.5")`` → ``"−1 234,50"``: no-break-space groups, decimal comma, a real minus sign."""
    text = f"{abs(value):,.{places}f}".replace(",", _NBSP).replace(".", ",")
    return f"{_MINUS}{text}" if value < 0 else text


def _ru_amount(value: Decimal, unit: str, *, signed: bool = False) -> str:
    sign = "+" if signed and value > 0 else ""
    return f"{sign}{ru_number(value)}{_UNIT_SUFFIX[unit]}"


# --- header -----------------------------------------------------------------------------------------------


def _header(result: ReconcileResult, heading: str) -> str:
    window = f"{result.date_from.strftime('%d.%m.%Y')} – {result.date_to.strftime('%d.%m.%Y')}"
    stores = ", ".join(result.stores) or "—"
    facts = [("Window", window), ("Stores", stores)]
    if result.run_id is not None:
        facts.append(("Run", str(result.run_id)))
    if result.documents_compared:
        read = ", ".join(
            f"{system} {ru_number(Decimal(count), 0)}"
            for system, count in sorted(result.documents_compared.items())
        )
        facts.append(("Documents read", read))
    items = "".join(f"<div><dt>{_e(name)}</dt><dd>{_e(value)}</dd></div>" for name, value in facts)
    return f"<header><h1>{_e(heading)}</h1><dl class='facts'>{items}</dl>{_tiles(result)}</header>"


def _tiles(result: ReconcileResult) -> str:
    totals = stake_totals(result)
    automatic = sum(1 for item in result.discrepancies if item.kind in AUTO_FIXABLE)
    tiles = [
        ("Discrepancies", str(len(result.discrepancies))),
        ("Money at stake", _ru_amount(totals.get("money", Decimal(0)), "money")),
        ("Points at stake", _ru_amount(totals.get("points", Decimal(0)), "points")),
        ("Fixable automatically", f"{automatic} of {len(result.discrepancies)}"),
    ]
    cells = "".join(
        f"<div class='tile'><span>{_e(name)}</span><strong>{_e(value)}</strong></div>"
        for name, value in tiles
    )
    return f"<div class='tiles'>{cells}</div>"


# --- charts -----------------------------------------------------------------------------------------------


def _charts(result: ReconcileResult) -> str:
    return (
        "<section class='charts'>"
        + _card("Discrepancies by kind", _kind_chart(result), "chart-kind")
        + _card("Money and points at stake by kind", _stake_chart(result), "chart-stake")
        + _card("Discrepancies by store and day", _heatmap(result), "chart-heatmap wide")
        + "</section>"
    )


def _card(heading: str, svg: str, css_class: str) -> str:
    return f"<figure class='card {css_class}'><figcaption>{_e(heading)}</figcaption>{svg}</figure>"


def _kind_chart(result: ReconcileResult) -> str:
    summary = result.summary()
    peak = max(summary.values())
    rows = [
        (kind, Decimal(count) / peak, str(count), f"{kind}: {count} discrepancies")
        for kind, count in summary.items()
    ]
    legend = "<p class='legend'><i class='money'></i>money kinds <i class='points'></i>points kinds</p>"
    return _bar_svg(rows, "Discrepancies by kind") + legend


def _stake_chart(result: ReconcileResult) -> str:
    """Bars scaled within each unit: roubles against roubles, points against points."""
    at_stake = result.at_stake()
    if not at_stake:
        return "<p class='empty'>No amounts at stake.</p>"
    parts = []
    for unit, heading in (("money", "Money, ₽"), ("points", "Points")):
        amounts = {kind: value for kind, value in at_stake.items() if unit_of(kind) == unit}
        if not amounts:
            continue
        peak = max(amounts.values()) or Decimal(1)
        rows = [
            (kind, value / peak, _ru_amount(value, unit), f"{kind}: {_ru_amount(value, unit)} at stake")
            for kind, value in amounts.items()
        ]
        parts.append(f"<h3>{_e(heading)}</h3>" + _bar_svg(rows, f"{heading} at stake by kind"))
    return "".join(parts)


_LABEL_W, _BAR_W, _ROW_H = 150, 170, 24


def _bar_svg(rows: list[tuple[str, Decimal, str, str]], label: str) -> str:
    """Horizontal bars, one per ``(kind, share of the longest, value text, tooltip)``; clicking filters the table."""
    height = len(rows) * _ROW_H + 4
    width = _LABEL_W + _BAR_W + 90
    bars = []
    for index, (kind, share, value, tooltip) in enumerate(rows):
        y = index * _ROW_H + 2
        # A sliver stays visible for a tiny non-zero value; a zero draws no bar at all.
        length = max(2, int((share * _BAR_W).to_integral_value())) if share > 0 else 0
        bars.append(
            f"<g class='row' data-filter-kind='{_e(kind)}'><title>{_e(tooltip)}</title>"
            f"<text class='label' x='{_LABEL_W - 6}' y='{y + 16}'>{_e(kind)}</text>"
            f"<rect class='bar {unit_of(kind)}' data-kind='{_e(kind)}' x='{_LABEL_W}' y='{y + 3}' "
            f"width='{length}' height='{_ROW_H - 6}' rx='2'></rect>"
            f"<text class='value' x='{_LABEL_W + length + 5}' y='{y + 16}'>{_e(value)}</text></g>"
        )
    return (
        f"<svg class='chart' viewBox='0 0 {width} {height}' role='img' aria-label='{_e(label)}'>"
        + "".join(bars)
        + "</svg>"
    )


_CELL_H, _HEAT_LABEL_W, _HEAT_HEAD_H = 26, 170, 30
_HEAT_SCALE = 1.3  # drawn as large as the bar charts beside it, which scale up to fill their cards


def _heatmap(result: ReconcileResult) -> str:
    """A store × day grid; each cell's colour and number is the count of discrepancies there."""
    days = _heatmap_days(result)
    stores = _heatmap_stores(result)
    counts = Counter((item.store, item.business_date) for item in result.discrepancies)
    peak = max(counts.values())
    cell_w = max(24, min(44, 280 // max(1, len(days))))
    width = _HEAT_LABEL_W + cell_w * len(days) + 4
    height = _HEAT_HEAD_H + _CELL_H * len(stores) + 4
    parts = [_heatmap_head(days, cell_w)]
    for row, store in enumerate(stores):
        y = _HEAT_HEAD_H + row * _CELL_H
        name = store or _NO_STORE
        short = name if len(name) <= 21 else name[:20] + "…"
        parts.append(
            f"<text class='label' x='{_HEAT_LABEL_W - 6}' y='{y + 17}'>{_e(short)}<title>{_e(name)}</title></text>"
        )
        for col, day in enumerate(days):
            parts.append(
                _heat_cell(counts[(store, day)], peak, _HEAT_LABEL_W + col * cell_w, y, cell_w, name, day)
            )
    return (
        f"<div class='heatmap-wrap'><svg class='chart heatmap' viewBox='0 0 {width} {height}' "
        f"width='{round(width * _HEAT_SCALE)}' role='img' aria-label='Discrepancies by store and day'>"
        + "".join(parts)
        + "</svg></div>"
    )


def _heatmap_days(result: ReconcileResult) -> list[date | None]:
    """Every day of the window (empty days show the quiet ones too) unless it is long; undated items last."""
    present = {item.business_date for item in result.discrepancies}
    dated = {day for day in present if day is not None}
    span = (result.date_to - result.date_from).days + 1
    if 0 < span <= _MAX_HEATMAP_DAYS:
        dated |= {result.date_from + timedelta(days=n) for n in range(span)}
    undated: list[date | None] = [None] if None in present else []
    return [*sorted(dated), *undated]


def _heatmap_stores(result: ReconcileResult) -> list[str | None]:
    stores: list[str | None] = list(dict.fromkeys(result.stores))
    stores += sorted({item.store for item in result.discrepancies if item.store and item.store not in stores})
    if any(item.store is None for item in result.discrepancies):
        stores.append(None)
    return stores


def _heatmap_head(days: list[date | None], cell_w: int) -> str:
    labels = []
    for col, day in enumerate(days):
        x = _HEAT_LABEL_W + col * cell_w + cell_w / 2
        text = day.strftime("%d.%m") if day else "—"
        weekday = _WEEKDAYS[day.weekday()] if day else "no date"
        labels.append(
            f"<text class='day' x='{x:g}' y='12'>{_e(weekday)}</text><text class='day' x='{x:g}' y='25'>{_e(text)}</text>"
        )
    return "".join(labels)


def _heat_cell(count: int, peak: int, x: int, y: int, width: int, store: str, day: date | None) -> str:
    when = day.isoformat() if day else "no date"
    tooltip = f"{store}, {when}: {count}"
    if not count:
        return f"<rect class='cell empty' x='{x + 1}' y='{y + 1}' width='{width - 2}' height='{_CELL_H - 2}' rx='2'><title>{_e(tooltip)}</title></rect>"
    intensity = 0.2 + 0.8 * count / peak
    text_class = "count dark" if intensity > 0.55 else "count"
    return (
        f"<g><title>{_e(tooltip)}</title><rect class='cell' x='{x + 1}' y='{y + 1}' width='{width - 2}' "
        f"height='{_CELL_H - 2}' rx='2' fill-opacity='{intensity:.2f}'></rect>"
        f"<text class='{text_class}' x='{x + width / 2:g}' y='{y + 17}'>{count}</text></g>"
    )


# --- table ------------------------------------------------------------------------------------------------

_COLUMNS = ("Kind", "Store", "Date", "Refs", "Expected", "Actual", "Delta", "Fix")


def _table_section(result: ReconcileResult) -> str:
    stores = sorted({item.store or _NO_STORE for item in result.discrepancies})
    store_keys = {store: f"s{index}" for index, store in enumerate(stores)}
    rows = "\n".join(_row(item, store_keys[item.store or _NO_STORE]) for item in result.discrepancies)
    head = "".join(f"<th scope='col'>{name}</th>" for name in _COLUMNS)
    total = len(result.discrepancies)
    return (
        "<section id='discrepancies'><h2>Discrepancies</h2>"
        + _filters(result, stores, store_keys)
        + f"<p class='shown'>Showing <b id='shown'>{total}</b> of {total}</p>"
        + f"<table><thead><tr>{head}</tr></thead><tbody id='rows'>\n{rows}\n</tbody></table></section>"
    )


def _filters(result: ReconcileResult, stores: list[str], store_keys: dict[str, str]) -> str:
    summary = result.summary()
    kinds = [(kind, f"{kind} ({count})") for kind, count in summary.items()]
    dates = sorted({_date_key(item) for item in result.discrepancies})
    return (
        "<form class='filters' onsubmit='return false'>"
        + _select("f-kind", "Kind", "all kinds", kinds)
        + _select("f-store", "Store", "all stores", [(store_keys[store], store) for store in stores])
        + _select(
            "f-date", "Date", "all dates", [(key, key if key != "none" else "no date") for key in dates]
        )
        + "<label>Search<input id='f-text' type='search' placeholder='id, store, description…'></label>"
        + "<button type='reset' id='f-reset'>Reset</button></form>"
    )


def _select(ident: str, label: str, everything: str, options: list[tuple[str, str]]) -> str:
    choices = "".join(f"<option value='{_e(value)}'>{_e(text)}</option>" for value, text in options)
    return f"<label>{_e(label)}<select id='{ident}'><option value=''>{_e(everything)}</option>{choices}</select></label>"


def _date_key(item: Discrepancy) -> str:
    return item.business_date.isoformat() if item.business_date else "none"


def _row(item: Discrepancy, store_key: str) -> str:
    data = item.as_json()
    refs = "".join(
        f"<div><span class='sys'>{_e(system)}</span> <code>{_e(ref)}</code></div>"
        for system, ref in sorted(item.refs.items())
    )
    cells = [
        ("Kind", f"<span class='kind {item.unit}'>{_e(item.kind)}</span>"),
        ("Store", _e(item.store or _NO_STORE)),
        ("Date", _e(data["business_date"] or "—")),
        ("Refs", refs or "—"),
        ("Expected", _value(item.expected, data["expected"], item.unit)),
        ("Actual", _value(item.actual, data["actual"], item.unit)),
        ("Delta", _delta(item)),
        ("Fix", _fix(item)),
    ]
    # One child per cell: on a phone each cell is a two-column grid of its label and this div.
    tds = "".join(f"<td data-label='{name}'><div>{html}</div></td>" for name, html in cells)
    return (
        f"<tr data-kind='{_e(item.kind)}' data-store='{store_key}' data-date='{_e(_date_key(item))}' "
        f"data-search='{_e(_search_text(item, data))}'>{tds}</tr>"
    )


def _search_text(item: Discrepancy, data: dict[str, Any]) -> str:
    """What the free-text filter matches: ids, store, date, values (a phone, a sum) and the fix, lower-cased."""
    words = [item.kind, item.store or "", data["business_date"] or "", *item.refs.keys(), *item.refs.values()]
    words += [value_text(data["expected"]), value_text(data["actual"]), data["delta"] or ""]
    words += [item.fix.description, item.fix.key or "", item.fix.target or ""]
    return " ".join(words).lower()


def _value(raw: Any, value: Any, unit: str) -> str:
    """An amount the Russian way with its unit; anything else (a phone, a line list) as its JSON text."""
    if isinstance(raw, Decimal):
        return f"<span class='amount'>{_e(_ru_amount(raw, unit))}</span>"
    if value is None:
        return "<span class='none'>—</span>"
    if isinstance(value, str):
        return f"<code>{_e(value)}</code>"
    # Spaces after the separators let a line list wrap at its commas in a narrow cell.
    return f"<code>{_e(json.dumps(value, ensure_ascii=False, separators=(', ', ': ')))}</code>"


def _delta(item: Discrepancy) -> str:
    if item.delta is None:
        return "—"
    sign = "neg" if item.delta < 0 else "pos" if item.delta > 0 else "zero"
    return f"<span class='delta {sign}'>{_e(_ru_amount(item.delta, item.unit, signed=True))}</span>"


def _fix(item: Discrepancy) -> str:
    fix = item.fix
    mode = "auto" if fix.automatic else "manual"
    target = f" → {_e(fix.target)}" if fix.target else ""
    key = f"<div class='key'><code>{_e(fix.key)}</code></div>" if fix.key else ""
    return f"<span class='action {mode}'>{_e(fix.action)}</span>{target}<div>{_e(fix.description)}</div>{key}"


_CSS = """
:root{--fg:#1d2330;--muted:#5f6b7a;--line:#dfe3e8;--bg:#f6f7f9;--money:#2f6fdb;--points:#e07b00;--heat:#c2255c}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:var(--fg);background:var(--bg)}
header,section{max-width:1240px;margin:0 auto;padding:16px}
h1{font-size:1.5rem;margin:0 0 8px}h2{font-size:1.2rem;margin:8px 0}h3{font-size:.9rem;margin:8px 0 2px;color:var(--muted)}
.facts{display:flex;flex-wrap:wrap;gap:4px 24px;margin:0 0 12px}.facts div{display:flex;gap:6px}
dt{color:var(--muted)}dd{margin:0;font-weight:600}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:10px}
.tile{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 14px}
.tile span{display:block;color:var(--muted);font-size:.85rem}.tile strong{font-size:1.35rem;white-space:nowrap}
.ok{margin:0;padding:16px;background:#e6f6ea;border-radius:8px}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;margin:0;padding:12px;min-width:0}
.card.wide{grid-column:1/-1}figcaption{font-weight:600;margin-bottom:6px}
svg.chart{display:block;width:100%;max-width:560px;height:auto;font-size:12px}
svg.heatmap{max-width:100%;width:auto;max-height:none}
.heatmap-wrap{overflow-x:auto}
svg text{fill:var(--fg)}svg .label{text-anchor:end}svg .day{text-anchor:middle;fill:var(--muted);font-size:10px}
svg .count{text-anchor:middle;font-weight:600}svg .count.dark{fill:#fff}
svg .row{cursor:pointer}svg .row:hover .bar{opacity:.75}
.bar.money,.legend .money{fill:var(--money);background:var(--money)}
.bar.points,.legend .points{fill:var(--points);background:var(--points)}
.cell{fill:var(--heat)}.cell.empty{fill:#eef0f3}
.legend{margin:6px 0 0;color:var(--muted);font-size:.85rem}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 10px}
.filters{display:flex;flex-wrap:wrap;gap:8px 12px;align-items:flex-end;margin-bottom:8px}
.filters label{display:flex;flex-direction:column;font-size:.8rem;color:var(--muted);gap:2px}
.filters select,.filters input,.filters button{font:inherit;padding:6px 8px;border:1px solid var(--line);border-radius:6px;background:#fff;min-width:150px}
.filters button{min-width:0;cursor:pointer}
.shown{color:var(--muted);margin:4px 0}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid var(--line)}
th,td{text-align:left;vertical-align:top;padding:8px;border-bottom:1px solid var(--line)}
th{background:#eef1f5;font-size:.85rem;position:sticky;top:0}
td:nth-child(4){min-width:180px}td:nth-child(8){min-width:230px}
td code{font:12px/1.35 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.sys{color:var(--muted);font-size:.8rem}.none{color:var(--muted)}
.kind{font-weight:600;border-left:4px solid;padding-left:6px;white-space:nowrap}
.kind.money{border-color:var(--money)}.kind.points{border-color:var(--points)}
.delta{white-space:nowrap;font-weight:600}.delta.neg{color:#c92a2a}.delta.pos{color:#2b8a3e}
.action{display:inline-block;font-size:.75rem;padding:1px 6px;border-radius:10px;background:#e7f0ff;color:#1c4fa8}
.action.manual{background:#fff0e0;color:#9a4b00}.key{color:var(--muted)}
td:nth-child(7){text-align:right}td:nth-child(3),td:nth-child(7){white-space:nowrap}
[hidden]{display:none!important}
@media (max-width:700px){
 header,section{padding:12px 10px}
 thead{display:none}table,tbody,tr,td{display:block;width:100%}table{border:0;background:none}
 tr{background:#fff;border:1px solid var(--line);border-radius:8px;margin-bottom:10px;padding:4px 0}
 td{display:grid;grid-template-columns:84px 1fr;gap:8px;border:0;padding:4px 10px;min-width:0!important}
 td::before{content:attr(data-label);color:var(--muted);font-size:.8rem}
 td:nth-child(7){text-align:left}
 .filters label{flex:1 1 140px}.filters select,.filters input{min-width:0;width:100%}
 .charts{grid-template-columns:1fr}
 .tile strong{font-size:1.1rem}
 td:nth-child(3),td:nth-child(7){white-space:normal}
}
"""

_SCRIPT = """
(function(){
  var rows=Array.prototype.slice.call(document.querySelectorAll('#rows tr'));
  var kind=document.getElementById('f-kind');if(!kind)return;
  var store=document.getElementById('f-store'),day=document.getElementById('f-date'),
      text=document.getElementById('f-text'),shown=document.getElementById('shown');
  function apply(){
    var k=kind.value,s=store.value,d=day.value,q=text.value.trim().toLowerCase(),n=0;
    rows.forEach(function(r){
      var ok=(!k||r.dataset.kind===k)&&(!s||r.dataset.store===s)&&(!d||r.dataset.date===d)
        &&(!q||r.dataset.search.indexOf(q)!==-1);
      r.hidden=!ok;if(ok)n++;
    });
    shown.textContent=String(n);
  }
  [kind,store,day].forEach(function(el){el.addEventListener('change',apply);});
  text.addEventListener('input',apply);
  document.getElementById('f-reset').addEventListener('click',function(){setTimeout(apply,0);});
  document.querySelectorAll('[data-filter-kind]').forEach(function(el){
    el.addEventListener('click',function(){
      kind.value=el.getAttribute('data-filter-kind');apply();
      document.getElementById('discrepancies').scrollIntoView({behavior:'smooth'});
    });
  });
})();
"""
