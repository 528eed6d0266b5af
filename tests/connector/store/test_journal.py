"""The journal: documents deduplicated by id and version, unmapped payloads kept raw, windows, cross-refs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from connector.model import DocRef, Return, Sale
from connector.store import Store
from connector.store import journal as journal_module
from connector.store.journal import Journal, JournalWrite, raw_version, sent_version
from connector.store.types import JSONBytes, canonical_json

PHONE = "+79161234567"


def _doc(doc_id: str, kind: str = "sale", *, day: str = "2026-11-20", total: str = "1000.00",
         time: str = "12:00", store: str = "store-1", phone: str | None = PHONE, **extra: Any) -> Sale | Return:  # fmt: skip
    data = {
        "type": kind,
        "ref": {"system": "evotor", "kind": "receipt", "id": doc_id},
        "number": doc_id,
        "store": store,
        "occurred_at": f"{day}T{time}:00+03:00",
        "business_date": day,
        "customer": {"phone": phone} if phone else None,
        "lines": [{"line_no": 1, "sku": "A", "quantity": "1.000", "price": total, "amount": total}],
        "total": total,
        **extra,
    }
    return Return.model_validate(data) if kind == "return" else Sale.model_validate(data)


def _put(journal: Journal, document: Sale | Return, raw: dict[str, Any] | None = None) -> str:
    payload = raw or {"id": document.ref.id, "sum": str(document.total)}
    return journal.upsert("evotor", "receipt", document.ref.id, version=raw_version(payload), raw=payload,
                          document=document)  # fmt: skip


def test_a_reread_of_the_same_version_is_unchanged_and_a_new_version_replaces_it(store: Store) -> None:
    journal = Journal(store.sessions)
    assert _put(journal, _doc("d-1")) == "new"
    assert _put(journal, _doc("d-1")) == "unchanged"
    assert _put(journal, _doc("d-1", total="900.00"), {"id": "d-1", "sum": "900"}) == "changed"
    entry = journal.get(DocRef(system="evotor", kind="receipt", id="d-1"))
    assert entry is not None
    assert entry.total == Decimal("900.00")
    assert entry.raw == {"id": "d-1", "sum": "900"}
    assert entry.account == PHONE
    assert isinstance(entry.document, Sale)


def test_an_unmapped_payload_is_kept_raw_and_a_later_mapping_fills_the_same_row(store: Store) -> None:
    journal = Journal(store.sessions)
    raw = {"id": "d-2", "type": "SELL", "close_date": "not a date"}
    version = raw_version(raw)
    assert (
        journal.upsert("evotor", "SELL", "d-2", version=version, raw=raw, document=None, store="s-1") == "new"
    )
    kept = journal.get(("evotor", "d-2"))
    assert kept is not None
    assert kept.canonical is None
    assert kept.raw == raw
    assert kept.store == "s-1"
    # Same version, now mapped (the mapping was fixed): the row is completed, not duplicated.
    assert (
        journal.upsert("evotor", "receipt", "d-2", version=version, raw=raw, document=_doc("d-2"))
        == "changed"
    )
    assert [entry.ref.kind for entry in journal.find("d-2")] == ["receipt"]


def test_deleted_and_draft_documents_keep_their_status(store: Store) -> None:
    journal = Journal(store.sessions)
    _put(journal, _doc("d-3", status="deleted"))
    _put(journal, _doc("d-4", status="draft"))
    window = journal.documents_in_window("evotor", None, date(2026, 11, 20), date(2026, 11, 20))
    assert {entry.ref.id: entry.status for entry in window} == {"d-3": "deleted", "d-4": "draft"}
    posted = journal.documents_in_window("evotor", None, date(2026, 11, 20), date(2026, 11, 20),
                                         statuses=["posted"])  # fmt: skip
    assert posted == []


def test_documents_in_window_filters_by_store_and_inclusive_dates_in_time_order(store: Store) -> None:
    journal = Journal(store.sessions)
    _put(journal, _doc("late", time="18:00"))
    _put(journal, _doc("early", time="09:00"))
    _put(journal, _doc("next-day", day="2026-11-21"))
    _put(journal, _doc("other-store", store="store-2"))
    _put(journal, _doc("outside", day="2026-11-22"))
    window = journal.documents_in_window("evotor", ["store-1"], date(2026, 11, 20), date(2026, 11, 21))
    assert [entry.ref.id for entry in window] == ["early", "late", "next-day"]


def test_spend_before_counts_earlier_posted_sales_minus_returns(store: Store) -> None:
    journal = Journal(store.sessions)
    _put(journal, _doc("s-1", total="1000.00", day="2026-11-18"))
    _put(journal, _doc("s-2", total="500.00", day="2026-11-19", status="draft"))
    _put(journal, _doc("r-1", "return", total="200.00", day="2026-11-19",
                       original={"system": "evotor", "kind": "receipt", "id": "s-1"}))  # fmt: skip
    _put(journal, _doc("s-3", total="700.00", day="2026-11-21"))
    at = datetime.fromisoformat("2026-11-20T12:00:00+03:00")
    assert journal.spend_before("evotor", PHONE, at, exclude="s-3") == Decimal("800.00")


def test_returns_of_a_sale_in_time_order(store: Store) -> None:
    journal = Journal(store.sessions)
    sale = _doc("s-1", day="2026-11-18")
    _put(journal, sale)
    original = {"system": "evotor", "kind": "receipt", "id": "s-1"}
    _put(journal, _doc("r-2", "return", total="100.00", day="2026-11-20", original=original))
    _put(journal, _doc("r-1", "return", total="100.00", day="2026-11-19", original=original, phone=None))
    _put(journal, _doc("r-x", "return", total="100.00", day="2026-11-19",
                       original={"system": "evotor", "kind": "receipt", "id": "other"}))  # fmt: skip
    assert [ret.ref.id for ret in journal.returns_of(sale.ref)] == ["r-1", "r-2"]


def test_cross_references_are_recorded_once_and_found_from_either_side(store: Store) -> None:
    journal = Journal(store.sessions)
    receipt = DocRef(system="evotor", kind="receipt", id="d-1")
    cheque = DocRef(system="onec", kind="Document_ЧекККМ", id="g-1")
    journal.link(receipt, cheque, "created")
    journal.link(cheque, receipt, "created")
    assert journal.linked(receipt) == [(cheque, "created")]
    assert journal.linked(cheque) == [(receipt, "created")]


def _write(document: Sale | Return | None, doc_id: str, raw: dict[str, Any], *, kind: str = "receipt",
           **extra: Any) -> JournalWrite:  # fmt: skip
    return JournalWrite(kind, doc_id, raw_version(raw), raw, document, **extra)


def test_upsert_many_gives_each_document_the_outcome_upsert_would(store: Store) -> None:
    journal = Journal(store.sessions)
    _put(journal, _doc("old-same"), {"id": "old-same"})
    _put(journal, _doc("old-changed"), {"id": "old-changed"})
    writes = [
        _write(_doc("fresh"), "fresh", {"id": "fresh"}),
        _write(_doc("old-same"), "old-same", {"id": "old-same"}),
        _write(_doc("old-changed", total="900.00"), "old-changed", {"id": "old-changed", "sum": "900"}),
        # The same document twice in one page: new, then a re-read of the same version.
        _write(_doc("twice"), "twice", {"id": "twice"}),
        _write(_doc("twice"), "twice", {"id": "twice"}),
    ]
    assert journal.upsert_many("evotor", writes) == ["new", "unchanged", "changed", "new", "unchanged"]
    changed = journal.get(DocRef(system="evotor", kind="receipt", id="old-changed"))
    assert changed is not None
    assert (changed.total, changed.raw) == (Decimal("900.00"), {"id": "old-changed", "sum": "900"})
    fresh = journal.get(DocRef(system="evotor", kind="receipt", id="fresh"))
    assert fresh is not None
    assert (fresh.store, fresh.business_date, fresh.account) == ("store-1", date(2026, 11, 20), PHONE)
    assert isinstance(fresh.document, Sale)
    assert [entry.ref.id for entry in journal.find("twice")] == ["twice"]


def test_upsert_many_maps_again_an_unmapped_row_journaled_under_its_entity(store: Store) -> None:
    journal = Journal(store.sessions)
    raw = {"id": "d-5", "type": "SELL"}
    unmapped = _write(None, "d-5", raw, kind="SELL", store="s-9")
    assert journal.upsert_many("evotor", [unmapped]) == ["new"]
    assert journal.upsert_many("evotor", [unmapped]) == ["unchanged"]  # still unmapped: nothing to redo
    kept = journal.get(("evotor", "d-5"))
    assert kept is not None
    assert (kept.canonical, kept.raw, kept.store, kept.status) == (None, raw, "s-9", "posted")
    mapped = _write(_doc("d-5"), "d-5", raw, aliases=("SELL",))
    assert journal.upsert_many("evotor", [mapped]) == ["changed"]
    assert journal.upsert_many("evotor", [mapped]) == ["unchanged"]
    [entry] = journal.find("d-5")
    assert entry.ref.kind == "receipt"
    assert isinstance(entry.document, Sale)


def test_upsert_many_and_upsert_find_each_others_rows(store: Store) -> None:
    journal = Journal(store.sessions)
    raw = {"id": "d-6"}
    assert journal.upsert_many("evotor", [_write(_doc("d-6"), "d-6", raw)]) == ["new"]
    assert _put(journal, _doc("d-6"), raw) == "unchanged"
    # A row of another kind that is not named as an alias is another document: upsert_many leaves it alone.
    journal.upsert("evotor", "other", "d-7", version="1", raw={}, document=None)
    assert journal.upsert_many("evotor", [_write(_doc("d-7"), "d-7", {"id": "d-7"})]) == ["new"]
    assert sorted(entry.ref.kind for entry in journal.find("d-7")) == ["other", "receipt"]


def test_places_answers_store_and_day_of_journaled_documents_only(store: Store) -> None:
    journal = Journal(store.sessions)
    _put(journal, _doc("p-1", store="store-4", day="2026-11-19"))
    assert journal.places("evotor", ["p-1", "missing"]) == {"p-1": ("store-4", date(2026, 11, 19))}
    assert journal.places("onec", ["p-1"]) == {}


def test_raw_version_is_the_hash_of_the_canonical_json_so_journaled_versions_stay_valid() -> None:
    payload = {"id": "d-8", "sum": Decimal("1.50"), "items": [{"b": 1, "a": "ё"}]}
    assert raw_version(payload) == hashlib.sha256(canonical_json(payload).encode()).hexdigest()
    assert raw_version(payload) != raw_version({**payload, "sum": Decimal("1.5")})


def test_unchanged_tells_which_documents_an_upsert_would_leave_alone_with_their_place(store: Store) -> None:
    journal = Journal(store.sessions)
    _put(journal, _doc("same", store="store-7", day="2026-11-19"), {"id": "same"})
    _put(journal, _doc("newer"), {"id": "newer"})
    journal.upsert(
        "evotor", "SELL", "unmapped", version=raw_version({"id": "unmapped"}), raw={}, document=None
    )
    checks = [
        _write(None, "same", {"id": "same"}, aliases=("SELL",)),
        _write(None, "newer", {"id": "newer", "sum": "1"}, aliases=("SELL",)),  # another version
        _write(None, "unmapped", {"id": "unmapped"}, aliases=("SELL",)),  # journaled raw: map it again
        _write(None, "unknown", {"id": "unknown"}, aliases=("SELL",)),
    ]
    assert journal.unchanged("evotor", checks) == {"same": ("store-7", date(2026, 11, 19))}
    assert journal.unchanged("onec", checks) == {}


def _landing(
    doc_id: str, text: str, *, store: str = "store-1", day: date = date(2026, 11, 20)
) -> JournalWrite:
    return JournalWrite("receipt", doc_id, sent_version(text.encode()), JSONBytes(text.encode()), None,
                        store=store, business_date=day, aliases=("SELL",), landing=True)  # fmt: skip


def test_a_landed_receipt_keeps_its_text_waits_unmapped_under_its_place_and_is_mapped_in_place(
    store: Store,
) -> None:
    journal = Journal(store.sessions)
    text = '{"id": "l-1", "type": "SELL", "sum": 1000.10}'
    assert journal.upsert_many("evotor", [_landing("l-1", text)]) == ["new"]
    [waiting] = journal.unmapped("evotor", "store-1", date(2026, 11, 20))
    assert (waiting.ref.id, waiting.canonical, waiting.occurred_at) == ("l-1", None, None)
    assert waiting.raw == {"id": "l-1", "type": "SELL", "sum": Decimal("1000.10")}  # exact, never a float
    assert journal.unmapped("evotor", "store-1", date(2026, 11, 21)) == []
    assert journal.unmapped("evotor", "store-2", date(2026, 11, 20)) == []
    # A re-read of the same text while it waits: unchanged, still waiting.
    assert journal.upsert_many("evotor", [_landing("l-1", text)]) == ["unchanged"]
    journal.set_canonical([(waiting, _doc("l-1", total="1000.10"))])
    assert journal.unmapped("evotor", "store-1", date(2026, 11, 20)) == []
    entry = journal.get(DocRef(system="evotor", kind="receipt", id="l-1"))
    assert entry is not None
    assert (entry.total, entry.account, entry.occurred_at) == (
        Decimal("1000.10"),
        PHONE,
        datetime.fromisoformat("2026-11-20T12:00:00+03:00"),
    )
    assert journal.upsert_many("evotor", [_landing("l-1", text)]) == ["unchanged"]  # mapped: left alone
    # A new version replaces the raw form and forgets the older mapping until it is mapped again.
    assert journal.upsert_many("evotor", [_landing("l-1", text.replace("1000.10", "900"))]) == ["changed"]
    [again] = journal.unmapped("evotor", "store-1", date(2026, 11, 20))
    assert (again.canonical, again.total, again.account, again.raw["sum"]) == (None, None, None, 900)


def test_set_canonical_leaves_a_row_a_pull_replaced_meanwhile(store: Store) -> None:
    journal = Journal(store.sessions)
    journal.upsert_many("evotor", [_landing("l-2", '{"id": "l-2", "v": 1}')])
    [stale] = journal.unmapped("evotor", "store-1", date(2026, 11, 20))
    journal.upsert_many("evotor", [_landing("l-2", '{"id": "l-2", "v": 2}')])  # a newer version landed
    journal.set_canonical([(stale, _doc("l-2"))])
    [waiting] = journal.unmapped("evotor", "store-1", date(2026, 11, 20))
    assert waiting.raw == {"id": "l-2", "v": 2}


def test_a_landing_gives_a_row_that_did_not_map_its_place_so_the_map_stage_finds_it(store: Store) -> None:
    journal = Journal(store.sessions)
    text = '{"id": "l-3", "type": "SELL"}'
    version = hashlib.sha256(text.encode()).hexdigest()
    journal.upsert("evotor", "SELL", "l-3", version=version, raw={"id": "l-3", "type": "SELL"}, document=None,
                   store="store-1")  # fmt: skip
    assert journal.unmapped("evotor", "store-1", date(2026, 11, 20)) == []  # no business date: no place
    assert journal.upsert_many("evotor", [_landing("l-3", text)]) == ["unchanged"]
    [waiting] = journal.unmapped("evotor", "store-1", date(2026, 11, 20))
    assert waiting.ref == DocRef(system="evotor", kind="receipt", id="l-3")
    assert [entry.ref.kind for entry in journal.find("l-3")] == ["receipt"]


def test_upsert_many_inserts_a_page_in_several_statements_with_a_later_version_of_a_new_row_merged(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        journal_module, "_ROWS_PER_INSERT", 2
    )  # 5 new rows: three multi-row statements on SQLite
    journal = Journal(store.sessions)
    texts = {f"p-{n}": f'{{"id": "p-{n}", "sum": {n}00.10}}' for n in range(1, 6)}
    page = [_landing(doc_id, text, day=date(2026, 11, 21)) for doc_id, text in texts.items()]
    newer = texts["p-1"].replace("100.10", "150.55")
    page.insert(3, _landing("p-1", newer, day=date(2026, 11, 21)))  # new, then changed within the page
    taken: list[str] = []

    @contextmanager
    def lock() -> Iterator[None]:
        taken.append("held")
        yield

    assert journal.upsert_many("evotor", page, lock=lock) == ["new", "new", "new", "changed", "new", "new"]
    assert taken == ["held"]  # one turn for the whole page
    waiting = journal.unmapped("evotor", "store-1", date(2026, 11, 21))
    assert {entry.ref.id: entry.raw["sum"] for entry in waiting} == {
        "p-1": Decimal("150.55"),  # the later version, in the row inserted once
        "p-2": Decimal("200.10"),
        "p-3": Decimal("300.10"),
        "p-4": Decimal("400.10"),
        "p-5": Decimal("500.10"),
    }
    assert [entry.version for entry in waiting if entry.ref.id == "p-1"] == [
        hashlib.sha256(newer.encode()).hexdigest()
    ]


def test_pages_landed_in_one_transaction_end_as_if_upserted_one_after_another(store: Store) -> None:
    journal = Journal(store.sessions)
    journal.upsert_many("evotor", [_landing("m-0", '{"id": "m-0", "v": 0}')])
    first = [_landing("m-1", '{"id": "m-1", "v": 1}'), _landing("m-0", '{"id": "m-0", "v": 0}')]
    second = [
        _landing("m-1", '{"id": "m-1", "v": 2}'),  # a new row of the first page, changed by the second
        _landing("m-0", '{"id": "m-0", "v": 3}'),  # a stored row, changed
        _landing("m-2", '{"id": "m-2", "v": 1}'),
    ]
    taken: list[str] = []

    @contextmanager
    def lock() -> Iterator[None]:
        taken.append("held")
        yield

    pages = [
        journal.prepare("evotor", first),
        journal.prepare("evotor", []),
        journal.prepare("evotor", second),
    ]
    prepared = [dict(row) for row in pages[0].rows]
    assert journal.land(pages, lock=lock) == [["new", "unchanged"], [], ["changed", "changed", "new"]]
    assert taken == ["held"]
    assert pages[0].rows == prepared  # left as prepared: a page writer may land them again one by one
    waiting = journal.unmapped("evotor", "store-1", date(2026, 11, 20))
    assert {entry.ref.id: entry.raw["v"] for entry in waiting} == {"m-0": 3, "m-1": 2, "m-2": 1}
    assert [len(journal.find(doc_id)) for doc_id in ("m-0", "m-1", "m-2")] == [1, 1, 1]


def test_a_payload_kept_as_the_bytes_sent_is_stored_as_that_text_inserted_or_updated(store: Store) -> None:
    journal = Journal(store.sessions)
    sent = '{"id": "b-1", "name": "Молоко 3,2%", "sum": 89.90}'.encode()

    def write(data: bytes) -> JournalWrite:
        return JournalWrite("receipt", "b-1", sent_version(data), JSONBytes(data), None, store="store-1",
                            business_date=date(2026, 11, 20), aliases=("SELL",), landing=True)  # fmt: skip

    def stored() -> tuple[Any, str]:
        with store.sessions() as session:
            raw = session.execute(text("SELECT raw FROM documents WHERE source_id = 'b-1'")).scalar_one()
            kind = "text"
            if store.dialect == "sqlite":  # text, not a blob: SQLite's JSON functions read it
                kind = session.execute(
                    text("SELECT typeof(raw) FROM documents WHERE source_id = 'b-1'")
                ).scalar_one()
        return raw, kind

    assert journal.upsert_many("evotor", [write(sent)]) == ["new"]
    assert stored()[1] == "text"
    expected = sent.decode() if store.dialect == "sqlite" else json.loads(sent, parse_float=Decimal)
    assert stored()[0] == expected  # SQLite: the text as sent, byte for byte; PostgreSQL: its JSONB value
    changed = sent.replace(b"89.90", b"99.90")
    assert journal.upsert_many("evotor", [write(changed)]) == ["changed"]  # an UPDATE, not the INSERT
    assert stored()[1] == "text"
    [entry] = journal.find("b-1")
    assert entry.raw == {"id": "b-1", "name": "Молоко 3,2%", "sum": Decimal("99.90")}
    assert entry.version == hashlib.sha256(changed).hexdigest()


def test_a_database_error_does_not_show_the_payload_it_was_writing(store: Store) -> None:
    raw = JSONBytes(b'{"id": "e-1", "customer_phone": "79161234567"}')
    write = JournalWrite("receipt", cast(Any, None), sent_version(raw), raw, None, store="store-1")
    with pytest.raises(IntegrityError) as error:  # no source id: NOT NULL
        Journal(store.sessions).upsert_many("evotor", [write])
    assert "parameters hidden" in str(error.value)  # SQLAlchemy no longer lists what was bound
    # PostgreSQL's own DETAIL of the violation still quotes the failing row (README, the state database).
    if store.dialect == "sqlite":
        assert "79161234567" not in str(error.value)
