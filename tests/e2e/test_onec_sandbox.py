"""The 1C adapter against the emulated 1C over real HTTP on loopback (УТ 11 and Розница 2, OData and SOAP)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from adapters.onec import OneCAdapter
from connector.config import SystemConfig
from connector.mapping import load_mapping
from connector.model import Customer, DocRef, Line, Payment, Posting, Return, Sale
from connector.sandbox.onec import build_onec_app
from connector.sandbox.world import OneCReceipt, Product, ReceiptLine, SandboxCustomer, Store, World
from tests.connector.sandbox._servers import serve

MSK = ZoneInfo("Europe/Moscow")
BONUS_SET = "Document_НачислениеИСписаниеБонусныхБаллов"
START = datetime(2026, 11, 2, tzinfo=MSK)
PROGRAM = "00000000-0000-0000-0000-000000000999"
STORES = [
    Store(
        f"20230110-0000-40bb-80cc-00000000000{n}",
        f"S0{n}",
        f"Магазин {n}",
        "Europe/Moscow",
        f"20230110-1b2c-40d3-80e4-00000000000{n}",
        f"00000000-0000-0000-0000-00000000010{n}",
        f"00000000-0000-0000-0000-00000000020{n}",
    )
    for n in (1, 2)
]
PRODUCTS = [
    Product(
        "101",
        "Латте 0.3",
        "coffee",
        Decimal("250.00"),
        "c0ffee00-0001-4000-8000-000000000001",
        "00000000-0000-0000-0000-0000000a0001",
        "4600001",
    ),
    Product(
        "205",
        "Круассан",
        "bakery",
        Decimal("150.00"),
        "c0ffee00-0002-4000-8000-000000000002",
        "00000000-0000-0000-0000-0000000a0002",
        "4600002",
    ),
]
CUSTOMERS = [
    SandboxCustomer(
        "+79161234567",
        "2000000123456",
        "Анна",
        None,
        "00000000-0000-0000-0000-0000000b0001",
        "00000000-0000-0000-0000-0000000c0001",
        11,
        159,
    ),
    SandboxCustomer(
        "+79267654321",
        "2000000654321",
        "Борис",
        None,
        "00000000-0000-0000-0000-0000000b0002",
        "00000000-0000-0000-0000-0000000c0002",
        12,
        160,
    ),
]


def _receipt(n: int, store: Store, at: datetime, **extra: Any) -> OneCReceipt:
    lines = (
        ReceiptLine(1, "101", Decimal("2.000"), Decimal("250.00"), Decimal("450.00"), Decimal("50.00")),
        ReceiptLine(2, "205", Decimal("1.000"), Decimal("150.00"), Decimal("150.00")),
    )
    fields: dict[str, Any] = {"kind": "sale", "customer_phone": CUSTOMERS[n % 2].phone} | extra
    return OneCReceipt(
        ref_key=f"00000000-0000-0000-0000-{n:012d}",
        source_id=f"evo-{n}",
        number=f"ТДМ-{n:07d}",
        comment=f"onec:evotor:evo-{n}:{fields['kind']}",
        store_id=store.id,
        occurred_at=at,
        lines=lines,
        **fields,
    )


def _world() -> World:
    world = World(
        seed=3,
        start=START.date(),
        days=9,
        clean=False,
        program_yaml="program: {name: test}\n",
        onec_program_ref=PROGRAM,
        stores=list(STORES),
        products=list(PRODUCTS),
        customers=list(CUSTOMERS),
    )
    n = 0
    for day in range(-1, 8):  # a day before and after the week, so the window's edges are tested
        for store in STORES:
            for hour in (0, 13, 23):
                n += 1
                world.onec_receipts.append(
                    _receipt(n, store, START + timedelta(days=day, hours=hour, minutes=30))
                )
    first = STORES[0]
    world.onec_receipts += [
        _receipt(901, first, START + timedelta(days=1, hours=10), deletion_mark=True),
        _receipt(902, first, START + timedelta(days=2, hours=10), posted=False),
        _receipt(
            903,
            first,
            START + timedelta(days=2, hours=11),
            kind="return",
            original_ref_key=world.onec_receipts[6].ref_key,
        ),
    ]
    return world


@pytest.fixture(scope="module")
def world() -> World:
    return _world()


@pytest.fixture(scope="module", params=["ut", "retail"])
def sandbox(request: pytest.FixtureRequest, world: World) -> Iterator[tuple[str, str, Any]]:
    app = build_onec_app(world, flavour=request.param, user="Обмен", password="секрет")
    with serve(app) as url:
        yield request.param, url, app.state.infobase


def _adapter(flavour: str, url: str, session: requests.Session | None = None, **options: Any) -> OneCAdapter:
    config = SystemConfig(
        adapter="onec",
        base_url=url,
        user="Обмен",
        password="секрет",
        timezone="Europe/Moscow",  # type: ignore[arg-type]
        mapping="onec/ut11" if flavour == "ut" else "onec/retail2",
        options={"store_ids": {store.id: store.code for store in STORES}, "max_retries": 1, **options},
    )
    return OneCAdapter("onec", config, session=session)


def test_a_week_of_receipts_for_a_store(sandbox: tuple[str, str, Any], world: World) -> None:
    flavour, url, _ = sandbox
    onec = _adapter(flavour, url)
    store = STORES[0]
    records = list(onec.documents(store.id, START, START + timedelta(days=7)))
    expected = {
        r.ref_key
        for r in world.onec_receipts
        if r.store_id == store.id
        and not r.deletion_mark
        and START <= r.occurred_at < START + timedelta(days=7)
    }
    assert len(records) == len(expected) == 7 * 3 + 2
    assert {record.id for record in records} == expected
    assert {record.store for record in records} == {store.id}
    deleted = list(onec.deleted_documents(store.id, START, START + timedelta(days=7)))
    assert [record.id for record in deleted] == ["00000000-0000-0000-0000-000000000901"]
    # what was read maps: statuses, the return and its original
    mapping = load_mapping("onec/ut11" if flavour == "ut" else "onec/retail2")
    mapped = {
        r.id: mapping.map(r.payload, system="onec", entity=r.entity, catalogs=onec.catalogs())
        for r in records
    }
    draft = mapped["00000000-0000-0000-0000-000000000902"]
    assert draft.status == "draft"
    assert draft.customer is not None
    assert draft.customer.phone == CUSTOMERS[0].phone
    refund = mapped["00000000-0000-0000-0000-000000000903"]
    assert isinstance(refund, Return)
    assert refund.original is not None
    assert refund.original.id == world.onec_receipts[6].ref_key
    assert mapped[records[0].id].store == store.id
    assert mapped[records[0].id].total == Decimal("600.00")


def _posting(key: str, amount: str, kind: str = "accrual", **extra: Any) -> Posting:
    return Posting(
        key=key,
        account=CUSTOMERS[0].phone,
        kind=kind,
        amount=Decimal(amount),  # type: ignore[arg-type]
        occurred_at=datetime(2026, 11, 5, 12, 0, tzinfo=MSK),
        status="active",
        **extra,
    )


def test_bonus_document_written_posted_read_back_and_moves_the_balance(sandbox: tuple[str, str, Any]) -> None:
    flavour, url, base = sandbox
    onec = _adapter(flavour, url)
    later = datetime(2026, 11, 20, tzinfo=MSK)
    before = onec.points_balance(CUSTOMERS[0].phone, at=later)
    accrual = _posting(
        "evotor:evo-1:accrual",
        "120.00",
        available_at=datetime(2026, 11, 19, tzinfo=MSK),
        expires_at=datetime(2027, 11, 19, tzinfo=MSK),
    )
    eve = datetime(2026, 11, 18, 23, 59, tzinfo=MSK)
    before_eve = onec.points_balance(CUSTOMERS[0].phone, at=eve)
    result = onec.write_posting(accrual, "onec:evotor:evo-1:accrual")
    assert result.created
    assert onec.points_balance(CUSTOMERS[0].phone, at=eve) == before_eve  # deferred to the 19th
    assert onec.points_balance(CUSTOMERS[0].phone, at=later) == before + Decimal("120")
    redemption = _posting("evotor:evo-2:redemption", "-45.50", kind="redemption")
    onec.write_posting(redemption, "onec:evotor:evo-2:redemption")
    assert onec.points_balance(CUSTOMERS[0].phone, at=later) == before + Decimal("120") - Decimal("45.50")
    stored = onec.odata.get("Document_НачислениеИСписаниеБонусныхБаллов", result.remote_id, decode=False)
    assert stored["Posted"] is True
    assert stored["Комментарий"] == "onec:evotor:evo-1:accrual"
    assert Decimal(str(stored["Начисление"][0]["Баллы"])) == Decimal("120")
    if flavour == "ut":  # the shipped УТ mapping reads the document back as the posting it was written from
        mapping = load_mapping("onec/ut11")
        back = mapping.map(stored, system="onec", entity=BONUS_SET, catalogs=onec.catalogs())
        assert isinstance(back, Posting)
        assert (back.key, back.kind, back.amount, back.account) == (
            "evotor:evo-1:accrual",
            "accrual",
            Decimal("120.00"),
            CUSTOMERS[0].phone,
        )
        assert back.available_at == datetime(2026, 11, 19, tzinfo=MSK)
        assert back.expires_at == datetime(2027, 11, 19, tzinfo=MSK)
    holder = onec.holder_for_account(CUSTOMERS[0].phone)
    moves = [r.payload for r in onec.register_records(START, later, holder=holder)]
    assert sorted(
        (m["RecordType"], Decimal(str(m["Начислено"]))) for m in moves if m["Recorder"] == result.remote_id
    ) == [("Receipt", Decimal("120"))]
    # a second write of the same key finds the first document
    again = _adapter(flavour, url).write_posting(accrual, "onec:evotor:evo-1:accrual")
    assert (again.remote_id, again.created) == (result.remote_id, False)
    assert (
        len(base.find("Document_НачислениеИСписаниеБонусныхБаллов", Комментарий="onec:evotor:evo-1:accrual"))
        == 1
    )


def test_receipt_written_and_read_back_as_the_same_sale(sandbox: tuple[str, str, Any]) -> None:
    flavour, url, _ = sandbox
    onec = _adapter(flavour, url)
    at = datetime(2026, 11, 6, 15, 45, tzinfo=MSK)
    sale = Sale(
        ref=DocRef(system="evotor", kind="receipt", id="evo-sale-77"),
        number="77",
        store=STORES[1].id,
        occurred_at=at,
        business_date=date(2026, 11, 6),
        customer=Customer(phone=CUSTOMERS[1].phone),
        lines=(
            Line(
                line_no=1,
                sku="205",
                quantity=Decimal("3"),
                price=Decimal("150"),
                amount=Decimal("420.00"),
                discount=Decimal("30.00"),
                bonus_redeemed=Decimal("20.00"),
            ),
        ),
        payments=(
            Payment(method="card", amount=Decimal("400.00")),
            Payment(method="bonus", amount=Decimal("20.00")),
        ),
        total=Decimal("420.00"),
        bonus_redeemed=Decimal("20.00"),
    )
    key = "onec:evotor:evo-sale-77:sale"
    assert onec.find_documents([key]) == {}
    points_before = onec.points_balance(CUSTOMERS[1].phone, at=at + timedelta(days=1))
    result = onec.write_document(sale, key)
    # the register mirrors the CRM ledger through bonus documents only: a receipt moves no points
    assert onec.points_balance(CUSTOMERS[1].phone, at=at + timedelta(days=1)) == points_before
    records = list(onec.documents(STORES[1].id, at - timedelta(minutes=1), at + timedelta(minutes=1)))
    assert [r.id for r in records] == [result.remote_id]
    mapping = load_mapping("onec/ut11" if flavour == "ut" else "onec/retail2")
    back = mapping.map(records[0].payload, system="onec", entity=records[0].entity, catalogs=onec.catalogs())
    assert isinstance(back, Sale)
    assert back.status == "posted"
    assert back.store == STORES[1].id
    assert back.customer is not None
    assert back.customer.phone == CUSTOMERS[1].phone
    assert [(line.sku, line.quantity, line.amount, line.bonus_redeemed) for line in back.lines] == [
        ("205", Decimal("3.000"), Decimal("420.00"), Decimal("20.00"))
    ]
    assert back.occurred_at == at
    assert back.total == Decimal("420.00")
    assert onec.find_documents([key]) == {key: result.remote_id}
    refund = Return(
        ref=DocRef(system="evotor", kind="receipt", id="evo-ret-78"),
        number="78",
        store=STORES[1].id,
        occurred_at=at + timedelta(minutes=5),
        business_date=date(2026, 11, 6),
        original=sale.ref,
        lines=(
            Line(line_no=1, sku="205", quantity=Decimal("1"), price=Decimal("150"), amount=Decimal("140.00")),
        ),
        payments=(Payment(method="card", amount=Decimal("140.00")),),
        total=Decimal("140.00"),
    )
    returned = onec.write_document(refund, "onec:evotor:evo-ret-78:return")
    entity = "Document_ЧекККМВозврат" if flavour == "ut" else "Document_ЧекККМ"
    stored = onec.odata.get(entity, returned.remote_id, decode=False)
    original_field = "ЧекККМ_Key" if flavour == "ut" else "ЧекККМПродажа_Key"
    assert stored[original_field] == result.remote_id
    assert stored["Posted"] is True


class _LoseFirstCreateAnswer(requests.Session):
    """Lets the first POST of a create reach 1C, then loses its answer as a read timeout would."""

    def __init__(self) -> None:
        super().__init__()
        self.creates = 0

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().request(method, url, *args, **kwargs)
        if method == "POST" and not str(url).split("?")[0].endswith("/Post"):
            self.creates += 1
            if self.creates == 1:
                raise requests.exceptions.ReadTimeout("the answer was lost")
        return response


def test_retry_after_a_lost_create_answer_creates_nothing_twice(sandbox: tuple[str, str, Any]) -> None:
    flavour, url, base = sandbox
    session = _LoseFirstCreateAnswer()
    onec = _adapter(flavour, url, session=session)
    key = "onec:evotor:evo-lost:accrual"
    result = onec.write_posting(_posting("evotor:evo-lost:accrual", "33.00"), key)
    assert session.creates == 1  # the lookup found the first create: no second POST
    documents = base.find("Document_НачислениеИСписаниеБонусныхБаллов", Комментарий=key)
    assert [(d["Ref_Key"], d["Posted"]) for d in documents] == [(result.remote_id, True)]
    assert onec.write_posting(_posting("evotor:evo-lost:accrual", "33.00"), key).remote_id == result.remote_id
    assert len(base.find("Document_НачислениеИСписаниеБонусныхБаллов", Комментарий=key)) == 1


def test_a_receipt_whose_create_answer_was_lost_is_written_once(sandbox: tuple[str, str, Any]) -> None:
    flavour, url, base = sandbox
    session = _LoseFirstCreateAnswer()
    onec = _adapter(flavour, url, session=session)
    at = datetime(2026, 11, 7, 11, 0, tzinfo=MSK)
    line = Line(line_no=1, sku="101", quantity=Decimal("1"), price=Decimal("250"), amount=Decimal("250"))
    sale = Sale(
        ref=DocRef(system="evotor", kind="receipt", id="evo-lost-sale"),
        number="90",
        store=STORES[0].id,
        occurred_at=at,
        business_date=at.date(),
        lines=(line,),
        payments=(Payment(method="cash", amount=Decimal("250")),),
        total=Decimal("250"),
    )
    key = "onec:evotor:evo-lost-sale:sale"
    result = onec.write_document(sale, key)
    assert session.creates == 1
    documents = base.find("Document_ЧекККМ", Комментарий=key)
    assert [(d["Ref_Key"], d["Posted"]) for d in documents] == [(result.remote_id, True)]


def test_soap_balance_and_idempotent_bonus_operation(world: World) -> None:
    app = build_onec_app(world, flavour="ut", user="Обмен", password="секрет")
    with serve(app) as url:
        onec = _adapter(
            "ut",
            url,
        )
        soap = OneCAdapter("onec", onec.config.model_copy(update={"protocol": "soap"}))
        phone = CUSTOMERS[1].phone
        before = soap.points_balance(phone)
        posting = Posting(
            key="crm:op-5:accrual",
            account=phone,
            kind="accrual",
            amount=Decimal("70.00"),
            occurred_at=datetime.now(MSK) - timedelta(hours=1),
            status="active",
        )
        first = soap.write_posting(posting, "onec:crm:op-5:accrual")
        second = soap.write_posting(posting, "onec:crm:op-5:accrual")
        assert first.remote_id == second.remote_id
        assert soap.points_balance(phone) == before + Decimal("70")
        assert soap.points_balance(f"card:{CUSTOMERS[1].card}") == before + Decimal("70")
        assert onec.points_balance(phone) == before + Decimal("70")  # the same register read over OData


@pytest.mark.parametrize("flavour", ["ut", "retail"])
def test_a_generated_week_reads_back_whole_and_maps(flavour: str) -> None:
    generator = pytest.importorskip("connector.sandbox.generator")
    generated: World = generator.generate_world(generator.SandboxOptions(stores=2, days=7, receipts=12))
    app = build_onec_app(generated, flavour=flavour)  # type: ignore[arg-type]
    with serve(app) as url:
        config = SystemConfig(
            adapter="onec",
            base_url=url,
            user="exchange",
            password="exchange",  # type: ignore[arg-type]
            mapping="onec/ut11" if flavour == "ut" else "onec/retail2",
            options={
                "store_ids": {store.id: store.onec_store_ref for store in generated.stores},
                # the sandbox dates each store's receipts in that store's zone, as a multi-zone base does
                "store_timezones": {store.id: store.timezone for store in generated.stores},
            },
        )
        onec = OneCAdapter("onec", config)
        store = generated.stores[1]
        since = datetime.combine(generated.start, datetime.min.time(), ZoneInfo(store.timezone))
        records = list(onec.documents(store.id, since, since + timedelta(days=generated.days)))
        held = [r for r in generated.onec_receipts if r.store_id == store.id and not r.deletion_mark]
        assert sorted(record.id for record in records) == sorted(receipt.ref_key for receipt in held)
        mapping = load_mapping(config.mapping or "", params={"timezone": store.timezone})
        results = list(
            mapping.map_many([r.payload for r in records], system="onec", catalogs=onec.catalogs())
        )
        assert [result.error for result in results if result.error] == []
        numbers = {result.value.number for result in results if result.value is not None}
        assert numbers == {receipt.number for receipt in held}
