"""Pulls a chunk at a time: the same journal, counts and days as one record at a time; a bad record is parked."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy.exc import IntegrityError

from adapters.base import RawRecord, build_adapter
from adapters.jsonwire import JSONObject
from connector.mapping import Mapping
from connector.store import open_store
from connector.store.failures import FailedItems
from connector.store.journal import Journal, JournalWrite
from connector.store.tables import utc_now
from connector.store.types import JSONBytes
from connector.sync import pull, pull_window
from connector.sync.context import SyncContext
from connector.sync.pull import PullReport, window_bounds
from tests.connector.sync.conftest import SyncWorld, start_world


def _window(sw: SyncWorld) -> tuple[date, date]:
    days = sorted({receipt.business_date for receipt in sw.world.receipts})
    return days[0] - timedelta(days=1), days[-1] + timedelta(days=1)


def _journal(sw: SyncWorld) -> dict[str, tuple[Any, ...]]:
    first, last = _window(sw)
    with open_store(sw.config.state) as store:
        entries = Journal(store.sessions).documents_in_window("evotor", None, first, last)
    return {e.ref.id: (e.ref.kind, e.version, e.store, e.business_date, e.canonical, e.raw) for e in entries}


def _count_mapped(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the ids of the payloads mapped."""
    mapped: list[str] = []
    original = Mapping.map

    def counting(self: Mapping, raw: Any, **kwargs: Any) -> Any:
        mapped.append(raw["id"])
        return original(self, raw, **kwargs)

    monkeypatch.setattr(Mapping, "map", counting)
    return mapped


@pytest.mark.parametrize(
    ("chunk", "backend"),
    [
        (1, "sqlite"),
        (4, "sqlite"),
        (500, "sqlite"),
        pytest.param(4, "postgresql", marks=pytest.mark.postgres),
    ],
)
def test_a_chunk_with_a_bad_record_journals_it_raw_parks_it_and_maps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, chunk: int, backend: str
) -> None:
    monkeypatch.setattr(pull, "CHUNK", chunk)
    state = request.getfixturevalue("pg_state") if backend == "postgresql" else None
    for sw in start_world(tmp_path, state=state, malformed=True):
        first, last = _window(sw)
        report = pull_window(sw.config, None, "evotor", first, last, workers=2)

        receipts = len(sw.world.receipts)  # the malformed one included
        # Every receipt is landed (journaled raw under its place), then mapped: one does not map.
        assert (report.fetched, report.new, report.changed, report.failed) == (receipts, receipts, 0, 1)
        journal = _journal(sw)
        assert len(journal) == receipts
        assert all(row[0] == "receipt" for row in journal.values())
        assert report.days == {(row[2], row[3]) for row in journal.values()}
        with open_store(sw.config.state) as store:
            [item] = FailedItems(store.sessions).list()
            [raw] = Journal(store.sessions).find(item.document.id if item.document else "")
        assert (item.system, item.route) == ("evotor", "pull:evotor")
        assert "customer.phone" in item.error
        assert (raw.canonical, raw.raw["id"], raw.store) == (None, raw.ref.id, item.store)
        assert (raw.ref.kind, raw.business_date) == ("receipt", item.business_date)
        assert raw.business_date is not None
        assert [doc for doc, row in journal.items() if row[4] is None] == [raw.ref.id]

        mapped = _count_mapped(monkeypatch)
        again = pull_window(sw.config, None, "evotor", first, last, workers=2)
        assert (again.new, again.changed, again.unchanged, again.failed) == (0, 0, receipts, 1)
        assert again.days == report.days
        assert mapped == [raw.ref.id]  # the unchanged ones are not mapped again; the unmapped one is
        assert _journal(sw) == journal


def test_a_landed_receipt_keeps_the_text_evotor_sent_and_is_versioned_by_it(tmp_path: Path) -> None:
    for sw in start_world(tmp_path):
        first, last = _window(sw)
        pull_window(sw.config, None, "evotor", first, last, workers=1)
        with open_store(sw.config.state) as store:
            entries = Journal(store.sessions).documents_in_window("evotor", None, first, last)
        adapter = build_adapter("evotor", sw.config.systems["evotor"])
        store_id = entries[0].store or ""
        sent = {record.id: record.text for record in adapter.documents(store_id, *window_bounds(first, last))}
        for entry in (entry for entry in entries if entry.store == store_id):
            text = sent[entry.ref.id]
            assert text is not None
            assert entry.version == hashlib.sha256(text.encode()).hexdigest()
            assert entry.raw == json.loads(text, parse_float=Decimal)
            assert entry.canonical is not None
            assert entry.canonical["ref"]["id"] == entry.ref.id


def test_a_pull_without_the_map_lands_every_receipt_raw_for_a_sync_to_map(tmp_path: Path) -> None:
    for sw in start_world(tmp_path):
        first, last = _window(sw)
        report = pull_window(sw.config, None, "evotor", first, last, workers=2, map_landed=False)
        receipts = len(sw.world.receipts)
        assert (report.fetched, report.new, report.failed) == (receipts, receipts, 0)
        journal = _journal(sw)
        assert len(journal) == receipts
        assert all(row[4] is None for row in journal.values())  # landed under their place, none mapped yet
        assert report.days == {(row[2], row[3]) for row in journal.values()}

        mapped = pull_window(sw.config, None, "evotor", first, last, workers=2)  # the same, mapped this time
        assert (mapped.new, mapped.changed, mapped.failed) == (0, 0, 0)
        assert all(row[4] is not None for row in _journal(sw).values())


def test_the_journal_is_the_same_whatever_the_chunk_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = []
    for chunk in (1, 500):
        monkeypatch.setattr(pull, "CHUNK", chunk)
        (tmp_path / str(chunk)).mkdir()
        for sw in start_world(tmp_path / str(chunk)):
            first, last = _window(sw)
            pull_window(sw.config, None, "evotor", first, last, workers=1)
            found.append({doc_id: row[:5] for doc_id, row in _journal(sw).items()})
    assert found[0] == found[1]
    assert len(found[0]) > 10


def test_a_receipt_with_no_store_is_mapped_as_read_not_left_waiting_under_no_stores_day(
    tmp_path: Path,
) -> None:
    for sw in start_world(tmp_path):
        first, last = _window(sw)
        adapter = build_adapter("evotor", sw.config.systems["evotor"])
        store_id = adapter.stores()[0]
        good = next(iter(adapter.documents(store_id, *window_bounds(first, last))))
        payload = {key: value for key, value in good.payload.items() if key != "store_id"}
        orphan = RawRecord(
            "evotor", good.entity, good.id, None, None, payload, json.dumps(payload, default=str)
        )
        with open_store(sw.config.state) as store:
            ctx = SyncContext(sw.config, store, utc_now())
            report = PullReport()
            pull.land_records(ctx, [orphan], report)
            [entry] = Journal(store.sessions).find(good.id)
            [item] = FailedItems(store.sessions).list()
        # Mapped at once: it fails there (a receipt needs its store) and is parked now, not never.
        assert (report.new, report.failed) == (0, 1)
        assert (entry.canonical, entry.business_date) == (None, None)
        assert item.route == "pull:evotor"
        assert "store" in item.error


def test_a_landed_text_that_is_not_a_json_object_is_parked_and_the_rest_lands(tmp_path: Path) -> None:
    for sw in start_world(tmp_path):
        first, last = _window(sw)
        adapter = build_adapter("evotor", sw.config.systems["evotor"])
        good = next(iter(adapter.documents(adapter.stores()[0], *window_bounds(first, last))))
        bad = RawRecord("evotor", "SELL", "not-an-object", None, good.store, JSONObject('["SELL", 1]'))
        with open_store(sw.config.state) as store:
            ctx = SyncContext(sw.config, store, utc_now())
            report = PullReport()
            pull.land_records(ctx, [bad, good], report)
            journal = Journal(store.sessions)
            [item] = FailedItems(store.sessions).list()
            [landed] = journal.find(good.id)
            [kept] = journal.find("not-an-object")
        assert (report.new, report.failed) == (1, 1)
        assert (landed.ref.kind, landed.store, landed.canonical) == (
            "receipt",
            good.store,
            None,
        )  # waits to be mapped
        assert kept.raw == ["SELL", 1]  # kept as sent, nothing lost
        assert (item.route, item.document.id if item.document else None) == ("pull:evotor", "not-an-object")
        assert "not a JSON object" in item.error


def _landing_write(doc_id: str, *, no_id: bool = False) -> JournalWrite:
    data = json.dumps({"id": doc_id}).encode()
    return JournalWrite("receipt", cast(Any, None) if no_id else doc_id, hashlib.sha256(data).hexdigest(), JSONBytes(data), None, store="s-1",
                        business_date=date(2026, 11, 20), aliases=("SELL",), landing=True)  # fmt: skip


def test_the_page_writer_lands_waiting_pages_together_and_a_page_that_fails_fails_alone(
    tmp_path: Path,
) -> None:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        journal, turn, taken = Journal(store.sessions), threading.Lock(), []

        @contextmanager
        def writing() -> Iterator[None]:
            with turn:
                taken.append("turn")
                yield

        writer = pull.PageWriter(cast(Any, SimpleNamespace(journal=journal, writing=writing)))
        pages = {doc_id: journal.prepare("evotor", [_landing_write(doc_id)]) for doc_id in "ABCE"}
        pages["D"] = journal.prepare(
            "evotor", [_landing_write("D", no_id=True)]
        )  # NOT NULL: fails on its own
        with turn:  # the writer takes A and waits for the turn while B to E queue up behind it
            futures = {"A": writer.submit(pages["A"])}
            while writer._queue.qsize():
                time.sleep(0.001)
            futures |= {doc_id: writer.submit(pages[doc_id]) for doc_id in "BCDE"}
        writer.close()
        assert {doc_id: futures[doc_id].result() for doc_id in "ABCE"} == {key: ["new"] for key in "ABCE"}
        with pytest.raises(IntegrityError):
            futures["D"].result()
        assert sorted(entry.ref.id for entry in journal.documents_in_window(
            "evotor", None, date(2026, 11, 20), date(2026, 11, 20))) == ["A", "B", "C", "E"]  # fmt: skip
        # A alone; B–E in one transaction, which D failed; then each of B–E on its own.
        assert len(taken) == 1 + 1 + 4


def test_a_stream_s_landing_raises_what_a_page_s_landing_raised_and_finishes_the_rest(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        journal = Journal(store.sessions)
        ctx = cast(Any, SimpleNamespace(journal=journal, writing=threading.RLock, count=lambda *_: None))
        writer, report = pull.PageWriter(ctx), PullReport()
        landing = pull.Landing(ctx, report, writer)
        landing.submit("evotor", [_landing_write("bad", no_id=True)])
        with pytest.raises(IntegrityError):  # the failure surfaces when the next page is handed over
            landing.submit("evotor", [_landing_write("good")])
        landing.finish()  # as a stream does then: the page handed over lands and is counted
        writer.close()
        assert [entry.ref.id for entry in journal.find("good")] == ["good"]  # waited for, not left in flight
        assert (report.new, report.days) == (1, {("s-1", date(2026, 11, 20))})  # counted by its stream
