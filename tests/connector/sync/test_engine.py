"""The sync engine against the sandbox: every route written exactly once, re-runs, scopes and parked failures."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from adapters.base import RawRecord
from adapters.crm import CrmAdapter
from adapters.evotor import EvotorAdapter
from connector.config import Route
from connector.errors import RetriableRemoteError
from connector.model import Posting
from connector.store import open_store
from connector.store.cursors import Cursors
from connector.store.failures import FailedItems
from connector.store.runs import Runs
from connector.sync import SyncScope, pull_window, run_sync
from connector.sync.engine import _groups
from connector.sync.locks import partition_lock
from tests.connector.sync.conftest import SyncWorld, start_world
from tests.e2e.sync_support import crm_comments, onec_comments

RECEIPT_SETS = ("Document_ЧекККМ", "Document_ЧекККМВозврат")
BONUS_SET = "Document_НачислениеИСписаниеБонусныхБаллов"


def _written(base_url: str) -> tuple[Counter[str], Counter[str], Counter[str]]:
    crm = Counter(c for c in crm_comments(base_url) if c.startswith("crm:"))
    receipts = Counter(c for s in RECEIPT_SETS for c in onec_comments(base_url, s))
    bonus = Counter(onec_comments(base_url, BONUS_SET))
    return crm, receipts, bonus


def _assert_all_written_once(sw: SyncWorld) -> None:
    crm, receipts, bonus = _written(sw.base_url)
    assert set(crm) == sw.crm_keys
    assert max(crm.values()) == 1
    assert set(receipts) == sw.receipt_keys
    assert max(receipts.values()) == 1
    # the CRM ledger mirrored into 1C: one bonus document per CRM operation the connector wrote
    assert {f"onec:{key.removeprefix('crm:')}" for key in sw.crm_keys} <= set(bonus)
    assert max(bonus[key] for key in bonus if key.startswith("onec:evotor:")) == 1


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SyncWorld]:
    if request.param == "sqlite":
        yield from start_world(tmp_path)
        return
    state = request.getfixturevalue("pg_state")
    yield from start_world(tmp_path, state=state)


def test_a_run_whose_process_died_is_recorded_interrupted_by_the_next_sync(any_backend: SyncWorld) -> None:
    sw = any_backend
    with open_store(sw.config.state) as store:
        dead = Runs(store.sessions).start("sync", {"mode": "incremental"})  # its process was SIGKILLed
    report = run_sync(sw.config, workers=2)
    with open_store(sw.config.state) as store:
        runs = Runs(store.sessions)
        killed = runs.get(dead)
        assert killed.status == "interrupted"
        assert killed.error is not None
        assert killed.error.endswith(f"found by run {report.run_id}")
        assert killed.duration_s is None, "when it ended is unknown"
        assert runs.get(report.run_id).status == "ok"
        assert runs.running("sync") == []


def test_a_sync_writes_every_expected_posting_and_receipt_exactly_once(any_backend: SyncWorld) -> None:
    sw = any_backend
    report = run_sync(sw.config, workers=4)

    assert report.exit_code == 0
    assert report.failed_open == 0
    _assert_all_written_once(sw)
    assert sum(c["fetched"] for c in report.counts["evotor"].values()) == len(sw.world.receipts)
    assert report.counts["crm"]
    assert sum(c["written"] for c in report.counts["crm"].values()) == len(sw.crm_keys)
    with open_store(sw.config.state) as store:
        run = Runs(store.sessions).get(report.run_id)
        assert run.status == "ok"
        assert run.counts == report.counts
        assert len(store.ledger.postings()) == len(sw.crm_keys)


def test_a_second_run_reads_everything_unchanged_and_writes_nothing(synced_world: SyncWorld) -> None:
    # A lookback that reaches back to the world's first day, so the second run re-reads every receipt.
    settings = synced_world.config.sync.model_copy(update={"default_lookback": "90d"})
    config = synced_world.config.model_copy(update={"sync": settings})
    run_sync(config)
    again = run_sync(config)
    assert again.totals["written"] == 0
    assert sum(c["unchanged"] for c in again.counts["evotor"].values()) == len(synced_world.world.receipts)
    _assert_all_written_once(synced_world)


def test_a_posting_already_in_the_crm_is_confirmed_by_the_lookup_not_written_again(
    synced_world: SyncWorld,
) -> None:
    # As if an earlier attempt wrote it and its answer was lost: the key is in the CRM, the outbox never heard.
    with open_store(synced_world.config.state):
        pass
    key = sorted(synced_world.crm_keys)[0]
    crm = CrmAdapter("crm", synced_world.config.systems["crm"])
    posting = _expected_posting(synced_world, key)
    crm.write_posting(posting, key)

    report = run_sync(synced_world.config)

    crm_written, _, _ = _written(synced_world.base_url)
    assert crm_written[key] == 1
    assert set(crm_written) == synced_world.crm_keys
    assert report.totals["skipped"] >= 1
    with open_store(synced_world.config.state) as store:
        entry = store.outbox.get(key)
        assert entry is not None
        assert entry.state == "confirmed"


def _expected_posting(sw: SyncWorld, key: str) -> Posting:
    from connector.rules import expected_postings
    from connector.sandbox.answer_key import canonical_documents, load_world_program

    documents = sorted(canonical_documents(sw.world), key=lambda d: (d.occurred_at, d.ref.id))
    postings = expected_postings(load_world_program(sw.world), documents)
    return next(p for p in postings if f"crm:{p.key}" == key)


def test_a_store_that_could_not_be_read_is_one_item_resolved_by_the_next_good_read(
    any_backend: SyncWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    sw = any_backend
    down = sorted({receipt.store_id for receipt in sw.world.receipts})[0]
    original = EvotorAdapter.documents

    def failing(self: EvotorAdapter, store: str, since: datetime, until: datetime) -> Iterator[RawRecord]:
        if store == down:
            raise RetriableRemoteError("evotor: 503 Service Unavailable", system="evotor", store=store)
        return original(self, store, since, until)

    monkeypatch.setattr(EvotorAdapter, "documents", failing)
    assert run_sync(sw.config).exit_code == 1
    assert run_sync(sw.config).exit_code == 1  # still down: the same item, one attempt more
    with open_store(sw.config.state) as store:
        [item] = FailedItems(store.sessions).list()
    assert (item.route, item.store, item.document, item.attempts) == ("pull:evotor", down, None, 2)

    monkeypatch.setattr(EvotorAdapter, "documents", original)
    report = run_sync(sw.config, scope=SyncScope(rerun_failed=True))  # re-reads only the store that failed
    assert report.exit_code == 0, "the store was read: nothing is left failed"
    assert report.failed_open == 0
    assert set(report.counts["evotor"]) == {down}
    with open_store(sw.config.state) as store:
        [resolved] = FailedItems(store.sessions).list(route="pull:evotor", states=None)
    assert (resolved.id, resolved.state) == (item.id, "resolved")
    assert run_sync(sw.config).exit_code == 0  # the next incremental run mirrors the new CRM postings into 1C
    _assert_all_written_once(sw)


def test_a_malformed_document_is_parked_naming_its_field_and_the_batch_goes_on(tmp_path: Path) -> None:
    for sw in start_world(tmp_path, malformed=True):
        report = run_sync(sw.config)

        assert report.exit_code == 1
        with open_store(sw.config.state) as store:
            items = FailedItems(store.sessions).list()
        assert len(items) == 1
        item = items[0]
        assert (item.route, item.error_kind, item.system) == ("pull:evotor", "permanent", "evotor")
        assert item.document is not None
        assert "customer.phone" in item.error
        assert item.payload_excerpt
        assert "+7000" not in item.error
        crm, receipts, _ = _written(sw.base_url)
        assert set(crm) == sw.crm_keys
        assert set(receipts) == sw.receipt_keys


def test_a_backfill_moves_no_watermark_and_an_incremental_sync_does(synced_world: SyncWorld) -> None:
    sw = synced_world
    store_id = sw.world.stores[0].id
    report = run_sync(sw.config, scope=SyncScope(date_from=date(2026, 11, 2), date_to=date(2026, 11, 2),
                                                 stores=(store_id,)))  # fmt: skip
    assert set(report.counts["evotor"]) == {store_id}
    with open_store(sw.config.state) as store:
        assert Cursors(store.sessions).get("evotor", "documents", store_id) is None
    run_sync(sw.config)
    with open_store(sw.config.state) as store:
        assert Cursors(store.sessions).get("evotor", "documents", store_id) is not None
    _assert_all_written_once(sw)


def test_sync_document_writes_that_document_only(synced_world: SyncWorld) -> None:
    sw = synced_world
    receipt = next(r for r in sw.world.receipts if r.kind == "sale")
    days = sorted({r.business_date for r in sw.world.receipts})
    pull_window(sw.config, None, "evotor", days[0], days[-1])  # journaled from its page, nothing written
    report = run_sync(sw.config, scope=SyncScope(document=receipt.id, stores=(receipt.store_id,)))
    assert report.exit_code == 0
    _, receipts, _ = _written(sw.base_url)
    assert set(receipts) == {f"onec:evotor:{receipt.id}:sale"}
    # Fetched alone, the document has the version its page gave it: unchanged, not mapped again.
    assert report.counts["evotor"][receipt.store_id]["fetched"] == 1
    assert report.counts["evotor"][receipt.store_id]["unchanged"] == 1
    assert report.counts["evotor"][receipt.store_id]["mapped"] == 0


@pytest.mark.postgres
def test_on_postgresql_a_partition_another_process_holds_is_left_to_it(tmp_path: Path, pg_state: str) -> None:
    for sw in start_world(tmp_path, state=pg_state):
        receipt = next(r for r in sw.world.receipts if r.kind == "sale")
        day = receipt.occurred_at.date()
        name = f"evotor->onec:documents:{receipt.store_id}:{day.isoformat()}"
        held = {f"onec:evotor:{r.id}:{r.kind}" for r in sw.world.receipts
                if r.store_id == receipt.store_id and r.occurred_at.date() == day}  # fmt: skip
        other = open_store(pg_state)
        try:
            with partition_lock(other, name) as mine:
                assert mine
                run_sync(sw.config)
                _, receipts, _ = _written(sw.base_url)
                # the holder's partition is untouched; returns of its sales wait for them (retried later)
                waiting = {f"onec:evotor:{r.id}:return" for r in sw.world.receipts
                           if r.original_id and f"onec:evotor:{r.original_id}:sale" in held}  # fmt: skip
                assert set(receipts) == sw.receipt_keys - held - waiting
        finally:
            other.close()
        # the holder's turn (here a backfill of that day stands in for the process that held it)
        run_sync(sw.config, scope=SyncScope(date_from=day, date_to=day, stores=(receipt.store_id,)))
        run_sync(sw.config, scope=SyncScope(rerun_failed=True))
        _, receipts, _ = _written(sw.base_url)
        assert set(receipts) == sw.receipt_keys
        assert max(receipts.values()) == 1


def test_routes_reading_one_source_run_together_and_a_route_reading_a_target_waits_for_it() -> None:
    def route(source: str, target: str, write: str) -> Route:
        return Route.model_validate(
            {"from": source, "documents": ["sale", "return"], "to": target, "write": write}
        )

    to_crm, to_1c = route("evotor", "crm", "postings"), route("evotor", "onec", "documents")
    mirror = route("crm", "onec", "bonus_documents")
    again = route("evotor", "onec", "documents")
    assert _groups([to_crm, to_1c, mirror, again]) == [[to_crm, to_1c], [mirror], [again]]
