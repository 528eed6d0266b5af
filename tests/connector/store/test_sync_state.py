"""Cursors, runs and failed items: the state the sync engine keeps between runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from connector.errors import InputError
from connector.model import DocRef
from connector.store import Store
from connector.store.cursors import Cursors
from connector.store.failures import FailedItems, Failure
from connector.store.runs import Runs

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DOC = DocRef(system="evotor", kind="receipt", id="d-1")
ROUTE = "evotor->crm:postings"


def _failure(kind: str = "transient", due: datetime | None = None, document: DocRef | None = DOC) -> Failure:
    return Failure(system="evotor", route=ROUTE, error_kind=kind, error="RetriableRemoteError: 503",
                   document=document, store="s-1", business_date=date(2026, 11, 20), payload_excerpt="{}",
                   next_attempt_at=due)  # fmt: skip


def test_a_watermark_only_moves_forward(store: Store) -> None:
    cursors = Cursors(store.sessions)
    assert cursors.get("evotor", "documents", "s-1") is None
    cursors.advance("evotor", "documents", "s-1", NOW)
    cursors.advance("evotor", "documents", "s-1", NOW - timedelta(hours=1))
    assert cursors.get("evotor", "documents", "s-1") == NOW
    assert cursors.get("evotor", "documents", "s-2") is None


def test_a_run_records_args_counts_and_duration(store: Store) -> None:
    runs = Runs(store.sessions)
    run_id = runs.start("sync", {"scope": "incremental"})
    assert runs.get(run_id).status == "running"
    runs.finish(run_id, "ok", {"evotor": {"s-1": {"fetched": 3}}})
    run = runs.get(run_id)
    assert (run.status, run.counts, run.args) == (
        "ok",
        {"evotor": {"s-1": {"fetched": 3}}},
        {"scope": "incremental"},
    )
    assert run.duration_s is not None
    assert run.duration_s >= 0
    assert [r.id for r in runs.recent()] == [run_id]
    with pytest.raises(InputError, match="no run 999"):
        runs.get(999)


def test_phones_quoted_in_an_error_are_masked_in_the_failed_item_and_the_run(store: Store) -> None:
    quoted = (
        'IntegrityError: duplicate key value violates unique constraint "uq_documents" DETAIL: Key '
        '(source_id)=(d-1) already exists; row {"customer": {"phone": "+7 916 123-45-67"}} (key=crm:evotor:d-1)'
    )
    failure = Failure(system="evotor", route=ROUTE, error_kind="permanent", error=quoted, document=DOC,
                      store="s-1", payload_excerpt='{"phone": "79161234567"}')  # fmt: skip
    parked = FailedItems(store.sessions).park(failure, None)
    assert "123-45-67" not in parked.error
    assert "+7********67" in parked.error
    assert "duplicate key value violates unique constraint" in parked.error  # the rest stays as it was
    assert parked.error.endswith("(key=crm:evotor:d-1)")  # evidence named key= is not taken for a secret
    assert parked.payload_excerpt == '{"phone": "+7********67"}'
    runs = Runs(store.sessions)
    run_id = runs.start("sync", {})
    runs.finish(run_id, "error", {}, error=quoted)
    run = runs.get(run_id)
    assert run.error is not None
    assert "+7********67" in run.error
    assert "123-45-67" not in run.error


def test_a_second_failure_of_the_same_document_and_route_counts_an_attempt(store: Store) -> None:
    items = FailedItems(store.sessions)
    first = items.park(_failure(due=NOW + timedelta(minutes=1)), None)
    again = items.park(_failure(kind="permanent"), None)
    assert again.id == first.id
    assert (again.attempts, again.error_kind, again.state) == (2, "permanent", "open")
    assert items.attempts(DOC, ROUTE) == 2
    assert items.count_open() == 1


def test_a_pulls_item_is_the_source_document_whatever_kind_it_was_journaled_under(store: Store) -> None:
    items = FailedItems(store.sessions)
    as_read = DocRef(
        system="evotor", kind="SELL", id="d-1"
    )  # mapped as it was read: journaled under its entity
    parked = items.park(Failure(system="evotor", route="pull:evotor", error_kind="permanent", error="MappingError",
                                document=as_read, store="s-1"), None)  # fmt: skip
    # Landed later and mapped under its receipt kind: the same document, the same item.
    again = items.park(Failure(system="evotor", route="pull:evotor", error_kind="permanent", error="MappingError",
                               document=DOC, store="s-1"), None)  # fmt: skip
    assert (again.id, again.attempts) == (parked.id, 2)
    items.resolve(DOC, "pull:evotor")
    assert items.get(parked.id).state == "resolved"
    # A route's item stays the document of that kind.
    items.park(_failure(kind="permanent", document=as_read), None)
    items.resolve(DOC, ROUTE)
    assert items.count_open() == 1


def test_held_and_due_follow_kind_backoff_and_skips(store: Store) -> None:
    items = FailedItems(store.sessions)
    waiting = items.park(_failure(due=NOW + timedelta(minutes=5)), None)
    assert items.held(ROUTE, NOW) == {"d-1"}
    assert items.held(ROUTE, NOW, parked=False) == set()  # an explicit re-run touches it
    assert items.due(NOW) == []
    assert [item.id for item in items.due(NOW + timedelta(minutes=5))] == [waiting.id]
    skipped = items.skip(waiting.id, by="anna", reason="test receipt from the shop's training day")
    assert (skipped.state, skipped.skipped_by) == ("skipped", "anna")
    assert skipped.skip_reason == "test receipt from the shop's training day"
    assert items.held(ROUTE, NOW, parked=False) == {"d-1"}


def test_retry_queues_a_permanent_item_and_a_success_resolves_it(store: Store) -> None:
    items = FailedItems(store.sessions)
    parked = items.park(_failure(kind="permanent"), None)
    assert items.due(NOW) == []
    assert items.retry(parked.id).state == "retried"
    assert [item.id for item in items.due(NOW)] == [parked.id]
    items.resolve(DOC, ROUTE)
    assert items.get(parked.id).state == "resolved"
    assert items.list() == []
    assert [item.state for item in items.list(states=None)] == ["resolved"]


def test_skip_needs_a_reason_and_a_resolved_item_cannot_be_retried(store: Store) -> None:
    items = FailedItems(store.sessions)
    parked = items.park(_failure(kind="permanent"), None)
    with pytest.raises(InputError, match="reason"):
        items.skip(parked.id, by="anna", reason="  ")
    items.resolve(DOC, ROUTE)
    with pytest.raises(InputError, match="resolved"):
        items.retry(parked.id)


def test_as_json_is_the_stable_listing_shape(store: Store) -> None:
    item = FailedItems(store.sessions).park(_failure(due=NOW), None).as_json()
    assert item["document"] == {"system": "evotor", "kind": "receipt", "id": "d-1"}
    assert item["business_date"] == "2026-11-20"
    assert item["next_attempt_at"] == NOW.isoformat()
    assert set(item) == {"id", "run_id", "system", "route", "store", "business_date", "document", "error_kind",
                         "error", "payload_excerpt", "attempts", "state", "next_attempt_at", "skipped_by",
                         "skip_reason", "created_at", "updated_at"}  # fmt: skip
