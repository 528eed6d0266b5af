"""``bench reconcile``: the compare stage on N receipts per side from the state store, against DuckDB and datacompy.

Issue 6, item 7. One run, in this order:

1. **data** — N receipts per side (``evotor``, ``onec``) written into a fresh SQLite state database with 1 %
   injected differences (:mod:`connector.bench.reconcile_data`);
2. **ours** — the reconciliation's load-and-compare path in a child process (:mod:`connector.bench.reconcile_ours`),
   so that its peak RSS is its own;
3. **export** — the columns both baselines compare, read from the same database with ``sqlite3`` into pandas
   (DuckDB's ``sqlite`` extension cannot be downloaded here, so DuckDB reads these frames);
4. **DuckDB** — a full outer join of the two frames on the connector key, classified as the compare stage does;
5. **datacompy** — ``PandasCompare`` of the same frames joined on the same key.

``duckdb_s`` and ``datacompy_s`` include the export (the data lives in the state store for everyone);
``*_join_s``/``*_compare_s`` are the joins alone. ``speed_vs_duckdb`` is ``duckdb_s / ours_s``.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from connector.bench.common import Target, load_average, peak_rss_mb, timed, verdict_lines
from connector.bench.reconcile_data import KINDS, seed_sides
from connector.bench.reconcile_ours import KEY_FIELD, measure_in_child
from connector.store import open_store

__all__ = ["RECONCILE_TARGETS", "format_reconcile", "reconcile_targets", "run_reconcile_bench"]

RECONCILE_TARGETS = {"speed_vs_duckdb": 0.5, "speed_vs_datacompy": 1.0, "ours_peak_rss_mb": 500.0}

_EXPORT = """
SELECT source_id AS id, json_extract(raw, ?) AS key, store, business_date, number, total,
       account, json_extract(canonical, '$.lines') AS lines
FROM documents WHERE system = ? AND business_date BETWEEN ? AND ?
"""
# The compare stage's decisions as SQL: pair by the key the 1C side keeps, then amount (1 kopeck tolerance:
# totals are stored in minor units), lines, customer.
_DUCKDB_JOIN = """
WITH r AS (SELECT *, split_part(key, ':', 3) AS left_id FROM right_side)
SELECT CASE
         WHEN l.id IS NULL THEN 'missing_in_left'
         WHEN r.id IS NULL THEN 'missing_in_right'
         WHEN abs(l.total - r.total) > 1 THEN 'amount_mismatch'
         WHEN l.lines <> r.lines THEN 'line_mismatch'
         WHEN l.account IS DISTINCT FROM r.account THEN 'customer_mismatch'
       END AS kind, l.id AS left_id, r.id AS right_id, l.total AS expected, r.total AS actual
FROM left_side l FULL OUTER JOIN r ON l.id = r.left_id
WHERE kind IS NOT NULL
"""


def _import_baselines() -> None:
    """Import pandas, DuckDB and datacompy before any timing: seconds of imports are nobody's compare."""
    import datacompy  # noqa: F401
    import duckdb  # noqa: F401
    import pandas  # type: ignore[import-untyped]  # noqa: F401


def _export(path: Path, first: str, last: str) -> tuple[Any, Any]:
    import pandas as pd

    with sqlite3.connect(path) as connection:
        left = pd.read_sql_query(_EXPORT, connection, params=(f"$.{KEY_FIELD}", "evotor", first, last))
        right = pd.read_sql_query(_EXPORT, connection, params=(f"$.{KEY_FIELD}", "onec", first, last))
    return left, right


def _duckdb(left: Any, right: Any) -> dict[str, int]:
    import duckdb

    with duckdb.connect() as connection:
        connection.register("left_side", left)
        connection.register("right_side", right)
        rows = connection.execute(_DUCKDB_JOIN).fetchall()
    counts: dict[str, int] = {}
    for kind, *_ in rows:
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _datacompy(left: Any, right: Any) -> dict[str, int]:
    import datacompy

    keyed = right.assign(id=right["key"].str.split(":").str[2]).drop(columns=["key"])
    compare = datacompy.PandasCompare(left.drop(columns=["key"]), keyed, join_columns="id", abs_tol=1)
    mismatched = compare.all_mismatch()
    return {
        "missing_in_right": len(compare.df1_unq_rows),
        "missing_in_left": len(compare.df2_unq_rows),
        "mismatched_rows": len(mismatched),
    }


def _result(
    rows: int, injected: dict[str, int], ours: dict[str, Any], base: dict[str, Any]
) -> dict[str, Any]:
    ours_s = round(ours["load_s"] + ours["compare_s"], 3)
    duckdb_s = round(base["export_s"] + base["duckdb_join_s"], 3)
    datacompy_s = round(base["export_s"] + base["datacompy_compare_s"], 3)
    return {
        "rows": rows,
        "ours_s": ours_s,
        "ours_load_s": ours["load_s"],
        "ours_compare_s": ours["compare_s"],
        "duckdb_s": duckdb_s,
        "datacompy_s": datacompy_s,
        **base,
        "rows_per_s": {
            "ours": round(rows / ours_s),
            "duckdb": round(rows / duckdb_s),
            "datacompy": round(rows / datacompy_s),
        },
        "ours_peak_rss_mb": ours["peak_rss_mb"],
        "baselines_peak_rss_mb": peak_rss_mb(),
        "speed_vs_duckdb": round(duckdb_s / ours_s, 4),
        "speed_vs_datacompy": round(datacompy_s / ours_s, 4),
        "compare_only_speed_vs_duckdb": round(base["duckdb_join_s"] / max(ours["compare_s"], 1e-6), 4),
        "rows_read": {"evotor": ours["left_rows"], "onec": ours["right_rows"]},
        "injected": injected,
        "found": {kind: ours["found"].get(kind, 0) for kind in sorted({*KINDS, *ours["found"]})},
        "load_average": load_average(),
        "targets": RECONCILE_TARGETS,
    }


def run_reconcile_bench(
    *, rows: int = 1_000_000, seed: int = 7, directory: Path | None = None
) -> dict[str, Any]:
    """Run the reconciliation compare benchmark once; return the object ``bench reconcile --json`` prints.

    Args:
        rows: receipts per side.
        seed: the data's seed.
        directory: where the SQLite state database goes (a temporary directory by default).
    """
    _import_baselines()
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = Path(tmp) / "state.db"
        url = f"sqlite:///{path}"
        store = open_store(url)
        try:
            injected, seed_s = timed(lambda: seed_sides(store, rows, seed=seed))
        finally:
            store.close()
        ours = measure_in_child(url, injected.date_from, injected.date_to)
        first, last = injected.date_from.isoformat(), injected.date_to.isoformat()
        (left, right), export_s = timed(lambda: _export(path, first, last))
    duck, duckdb_join_s = timed(lambda: _duckdb(left, right))
    compared, datacompy_compare_s = timed(lambda: _datacompy(left, right))
    base = {"seed_s": seed_s, "export_s": export_s, "duckdb_join_s": duckdb_join_s,
            "datacompy_compare_s": datacompy_compare_s, "duckdb_found": duck, "datacompy_found": compared}  # fmt: skip
    return _result(rows, injected.expected, ours, base)


def reconcile_targets(result: dict[str, Any]) -> list[Target]:
    """The issue's targets for a result of :func:`run_reconcile_bench`."""
    return [
        Target("speed vs DuckDB (DuckDB s / ours s)", result["speed_vs_duckdb"], 0.5, at_least=True),
        Target("speed vs datacompy (its s / ours s)", result["speed_vs_datacompy"], 1.0, at_least=True),
        Target("our peak RSS, MB", result["ours_peak_rss_mb"], RECONCILE_TARGETS["ours_peak_rss_mb"]),
    ]


def format_reconcile(result: dict[str, Any]) -> list[str]:
    """The human-readable report of a result of :func:`run_reconcile_bench`."""
    rps = result["rows_per_s"]
    return [
        f"bench reconcile: {result['rows']} receipts per side in a SQLite state store "
        f"(load average {' '.join(map(str, result['load_average']))}; ours in a child process)",
        f"  ours (journal → records → compare_snapshot) {result['ours_s']:>9.2f} s  {rps['ours']:>9} rows/s  "
        f"(load {result['ours_load_s']:.2f} s, compare {result['ours_compare_s']:.2f} s; "
        f"peak RSS {result['ours_peak_rss_mb']:.0f} MB)",
        f"  DuckDB full outer join (export + join)      {result['duckdb_s']:>9.2f} s  {rps['duckdb']:>9} rows/s  "
        f"(export {result['export_s']:.2f} s, join {result['duckdb_join_s']:.2f} s)",
        f"  datacompy PandasCompare (export + compare)  {result['datacompy_s']:>9.2f} s  "
        f"{rps['datacompy']:>9} rows/s  (compare {result['datacompy_compare_s']:.2f} s; "
        f"baselines' process peak RSS {result['baselines_peak_rss_mb']:.0f} MB)",
        f"  injected {result['injected']}; ours found {result['found']}; DuckDB found {result['duckdb_found']}",
        f"  compare stage alone vs DuckDB's join alone: {result['compare_only_speed_vs_duckdb']:.2f}",
        *verdict_lines(reconcile_targets(result)),
    ]
