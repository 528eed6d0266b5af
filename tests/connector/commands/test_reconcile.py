"""``loyalty-connector reconcile`` through the real entry point, against a running sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.cli import main
from connector.config import load_config
from connector.sandbox.generator import SandboxOptions
from connector.sandbox.server import SandboxServer
from connector.store import open_store
from connector.store.tables import Discrepancy, Fix, Run
from tests.connector.reconcile.sandbox import sandbox_config


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(["reconcile", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOptions(seed=4, stores=2, days=2, receipts=10), rate_per_second=0) as running:
        yield running


@pytest.fixture
def config(server: SandboxServer, tmp_path: Path) -> Path:
    return sandbox_config(server, tmp_path)


def test_json_report_lists_the_answer_key_exits_1_and_stores_the_run(
    capsys: pytest.CaptureFixture[str], server: SandboxServer, config: Path
) -> None:
    code, out, err = run(capsys, "--from", "2026-11-01", "--to", "2026-11-02", "--config", str(config),
                         "--format", "json")  # fmt: skip
    assert code == 1, err
    report = json.loads(out, parse_float=Decimal)
    assert report["window"] == {"from": "2026-11-01", "to": "2026-11-02"}
    assert sorted(report["stores"]) == sorted(store.id for store in server.world.stores)
    expected: dict[str, int] = {}
    for entry in server.world.answer_key:
        expected[entry.kind] = expected.get(entry.kind, 0) + 1
    assert report["summary"] == expected
    with open_store(load_config(config).state) as store, store.session() as session:
        (reconcile_run,) = session.scalars(select(Run).where(Run.kind == "reconcile")).all()
        assert (reconcile_run.status, reconcile_run.counts["missing_accrual"]) == (
            "discrepancies",
            expected["missing_accrual"],
        )
        rows = session.scalars(select(Discrepancy).where(Discrepancy.run_id == reconcile_run.id)).all()
        assert len(rows) == len(report["discrepancies"])
        fixes = session.scalars(select(Fix)).all()
        automatic = [d for d in report["discrepancies"] if d["fix"]["action"] != "manual"]
        assert sorted(f.outbox_key for f in fixes) == sorted(d["fix"]["key"] for d in automatic)


def test_one_store_one_day_and_the_fix_plan(capsys: pytest.CaptureFixture[str], server: SandboxServer,
                                            config: Path) -> None:  # fmt: skip
    store = server.world.stores[0].id
    code, out, _ = run(capsys, "--date", "2026-11-01", "--store", store, "--config", str(config), "--fix")
    assert code == 1
    expected = [e for e in server.world.answer_key if e.store in (store, "") and e.business_date.day == 1]
    assert "Fix plan: " in out
    assert "manual" not in out.split("Fix plan:")[1].split("\n", 1)[1]  # only automatic fixes are listed
    assert len(expected) > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2026-13-01"], "--date '2026-13-01' is not a date"),
        (["--from", "2026-11-02"], "give --date D, or --from A and --to B"),
        (["--from", "2026-11-02", "--to", "2026-11-01"], "is before --from"),
        (["--date", "2026-11-01", "--format", "xml"], "unknown --format 'xml'"),
        (["--date", "2026-11-01", "--apply"], "--apply needs --fix"),
    ],
)
def test_bad_input_is_exit_2_with_a_reason(
    capsys: pytest.CaptureFixture[str], config: Path, args: list[str], message: str
) -> None:
    code, out, err = run(capsys, *args, "--config", str(config))
    assert (code, out) == (2, "")
    assert message in err


def test_a_system_refusing_the_credentials_is_exit_2(
    capsys: pytest.CaptureFixture[str], server: SandboxServer, tmp_path: Path
) -> None:
    path = tmp_path / "connector.yaml"
    path.write_text(
        f"systems:\n  evotor: {{adapter: evotor, base_url: '{server.base_url}/evotor', token: wrong,"
        " mapping: evotor/v2}\n  onec: {adapter: onec, base_url: 'http://127.0.0.1:9', mapping: onec/ut11}\n"
        "reconcile:\n  - {name: tills, left: evotor, right: onec}\n",
        encoding="utf-8",
    )
    code, out, err = run(capsys, "--date", "2026-11-01", "--config", str(path))
    assert (code, out) == (2, "")
    assert "evotor" in err


def test_html_report_to_a_file(capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    code, out, err = run(capsys, "--date", "2026-11-02", "--config", str(config), "--format", "html",
                         "--output", str(target))  # fmt: skip
    assert (code, out) == (1, "")
    assert f"report written to {target}" in err
    page = target.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "missing_accrual" in page
    assert "http://" not in page.replace("http://www.w3.org", "")  # self-contained: nothing to fetch


@pytest.mark.slow
def test_fix_apply_writes_once_and_the_next_run_finds_none_of_the_fixed_kinds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    window = ("--from", "2026-11-01", "--to", "2026-11-02")
    with SandboxServer(SandboxOptions(seed=4, stores=2, days=2, receipts=10), rate_per_second=0) as own:
        path = str(sandbox_config(own, tmp_path))
        code, out, _ = run(capsys, *window, "--config", path, "--fix", "--apply")
        assert code == 1
        written = int(out.split("Applied: ")[1].split(" written")[0])
        assert written >= 5
        code, out, _ = run(capsys, *window, "--config", path, "--fix", "--apply")
        assert "Applied: 0 written" in out
        code, out, _ = run(capsys, *window, "--config", path, "--format", "json")
    fixed = {
        "missing_in_right",
        "missing_accrual",
        "accrual_mismatch",
        "missing_reversal",
        "duplicate_posting",
    }
    assert set(json.loads(out)["summary"]) & fixed == set()
