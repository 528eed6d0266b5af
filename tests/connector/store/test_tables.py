"""Table rules the rest of the connector relies on: one cross-reference per pair, whichever side found it."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from connector.model import DocRef
from connector.store import Store
from connector.store.tables import CrossRef, FailedItem, Run

EVOTOR = DocRef(system="evotor", kind="receipt", id="d-1")
ONEC = DocRef(system="onec", kind="cheque", id="5f0c2a1e-e2b7-11ee-8a3c-00155d0a1f01")


def test_a_cross_reference_is_stored_the_same_whichever_ref_comes_first() -> None:
    one = CrossRef.between(ONEC, EVOTOR, "external_id")
    other = CrossRef.between(EVOTOR, ONEC, "external_id")
    assert (one.left_system, one.left_id, one.right_system, one.right_id) == (
        "evotor",
        "d-1",
        "onec",
        ONEC.id,
    )
    assert (other.left_system, other.right_system) == ("evotor", "onec")


def test_the_same_pair_cannot_be_linked_twice(store: Store) -> None:
    with store.transaction() as session:
        session.add(CrossRef.between(EVOTOR, ONEC, "external_id"))
    with (
        pytest.raises(IntegrityError, match=r"uq_cross_refs_pair|UNIQUE constraint failed: cross_refs"),
        store.transaction() as session,
    ):
        session.add(CrossRef.between(ONEC, EVOTOR, "number"))


def test_a_failed_item_belongs_to_a_run_and_keeps_who_skipped_it_and_why(store: Store) -> None:
    with store.transaction() as session:
        run = Run(kind="sync", args={"from": "2026-11-20"})
        session.add(run)
        session.flush()
        session.add(
            FailedItem(
                run_id=run.id,
                system="evotor",
                route="evotor->crm",
                document_system="evotor",
                document_kind="receipt",
                document_id="d-1",
                error_kind="permanent",
                error="MappingError: items[0].sum is not a decimal",
                payload_excerpt='{"sum": "abc"}',
                state="skipped",
                skipped_by="operator1",
                skip_reason="test receipt",
            )
        )
    with store.session() as session:
        item = session.scalars(select(FailedItem)).one()
        assert (item.state, item.skipped_by, item.skip_reason, item.attempts) == (
            "skipped",
            "operator1",
            "test receipt",
            1,
        )
        assert item.created_at.tzinfo is not None


def test_a_failed_item_must_name_an_existing_run(store: Store) -> None:
    with pytest.raises(IntegrityError), store.transaction() as session:
        session.add(FailedItem(run_id=999, system="evotor", error_kind="transient", error="timeout"))
