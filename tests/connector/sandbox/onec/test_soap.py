"""The LoyaltyExchange web service through an unmodified zeep client, plus hardening and faults with raw posts."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
import zeep
from lxml import etree
from zeep.exceptions import Fault
from zeep.transports import Transport

from .conftest import PARTNER_1, Served

BINDING = "{http://localhost/rt2discountservice}LoyaltyExchangeSoapBinding"
BINDING12 = "{http://localhost/rt2discountservice}LoyaltyExchangeSoap12Binding"
WSDL_NS = "{http://schemas.xmlsoap.org/wsdl/}"


@pytest.fixture
def soap(ut: Served, http: requests.Session) -> Iterator[tuple[Served, zeep.Client, str]]:
    client = zeep.Client(f"{ut.url}/ws/LoyaltyExchange.1cws?wsdl", transport=Transport(session=http))
    return ut, client, f"{ut.url}/ws/LoyaltyExchange.1cws"


def accrual(operation: str, points: str, **extra: Any) -> dict[str, Any]:
    row = {
        "Период": "2026-11-20T10:00:00",
        "ВидДвижения": "Начисление",
        "НомерТелефона": "8 (916) 123-45-67",
        "Сумма": Decimal(points),
    } | extra
    return {"ИдентификаторОперации": operation, "ДанныеОБонусах": {"Строка": [row]}}


def test_wsdl_is_1c_style_and_advertises_an_internal_host(ut: Served, http: requests.Session) -> None:
    root = etree.fromstring(http.get(f"{ut.url}/ws/LoyaltyExchange.1cws?wsdl").content)
    assert root.get("targetNamespace") == "http://localhost/rt2discountservice"
    bindings = {node.get("name") for node in root.iter(f"{WSDL_NS}binding")}
    assert bindings == {"LoyaltyExchangeSoapBinding", "LoyaltyExchangeSoap12Binding"}
    address = root.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address is not None
    assert address.get("location") == "http://srv-1c/1c/ut/ws/LoyaltyExchange.1cws"


def test_wsdl_needs_credentials(ut: Served) -> None:
    assert requests.get(f"{ut.url}/ws/LoyaltyExchange.1cws?wsdl", timeout=5).status_code == 401


def test_balance_by_card_and_by_phone_counts_only_active_points(
    soap: tuple[Served, zeep.Client, str],
) -> None:
    _, client, address = soap
    service = client.create_service(BINDING, address)
    # the world's bonus document accrued 8 points active from 2026-12-03
    assert service.ПолучитьОстатокБонусов(ИдентификаторКарты="2000000000017", Дата="2026-12-04T00:00:00") == 8
    assert service.ПолучитьОстатокБонусов(НомерТелефона="+79161234567", Дата="2026-12-01T00:00:00") == 0


def test_update_accrues_writes_off_and_is_idempotent(soap: tuple[Served, zeep.Client, str]) -> None:
    served, client, address = soap
    service = client.create_service(BINDING, address)
    first = service.ОбновитьДанныеОБонусах(
        **accrual("crm:op-1", "100", ДатаОкончанияСрокаДействия="2027-11-20")
    )
    again = service.ОбновитьДанныеОБонусах(
        **accrual("crm:op-1", "100", ДатаОкончанияСрокаДействия="2027-11-20")
    )
    assert first == again
    documents = served.infobase.find("Document_НачислениеИСписаниеБонусныхБаллов", Комментарий="crm:op-1")
    assert len(documents) == 1
    assert documents[0]["Posted"] is True
    write_off = {
        "Период": "2026-11-21T12:00:00",
        "ВидДвижения": "Списание",
        "ИдентификаторКарты": "2000000000017",
        "Сумма": Decimal("30"),
    }
    service.ОбновитьДанныеОБонусах(ИдентификаторОперации="crm:op-2", ДанныеОБонусах={"Строка": [write_off]})
    balance = service.ПолучитьОстатокБонусов(ИдентификаторКарты="2000000000017", Дата="2026-12-04T00:00:00")
    assert balance == Decimal("78")  # 8 from the world + 100 - 30
    records = [
        r
        for r in served.infobase.rows("AccumulationRegister_БонусныеБаллы_RecordType")
        if r["Recorder"] == documents[0]["Ref_Key"]
    ]
    assert [(r["RecordType"], r["Period"].isoformat(), r["Партнер_Key"]) for r in records] == [
        ("Receipt", "2026-11-20T00:00:00", PARTNER_1),
        ("Receipt", "2027-11-20T00:00:00", PARTNER_1),
    ]


def test_soap12_binding_works_too(soap: tuple[Served, zeep.Client, str]) -> None:
    _, client, address = soap
    service = client.create_service(BINDING12, address)
    assert service.ПолучитьОстатокБонусов(ИдентификаторКарты="2000000000017", Дата="2026-12-04T00:00:00") == 8
    with pytest.raises(Fault):
        service.ПолучитьОстатокБонусов(ИдентификаторКарты="нет-такой")


def test_unknown_card_is_a_soap_fault(soap: tuple[Served, zeep.Client, str]) -> None:
    _, client, address = soap
    service = client.create_service(BINDING, address)
    with pytest.raises(Fault) as caught:
        service.ПолучитьОстатокБонусов(ИдентификаторКарты="0000")
    assert "не найдена" in caught.value.message


def raw_post(http: requests.Session, address: str, body: bytes) -> requests.Response:
    return http.post(address, data=body, headers={"Content-Type": "text/xml; charset=utf-8"})


def test_dtd_and_entities_are_refused_with_a_client_fault(ut: Served, http: requests.Session) -> None:
    evil = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b'<m:x xmlns:m="http://localhost/rt2discountservice">&e;</m:x></soap:Body></soap:Envelope>'
    )
    response = raw_post(http, f"{ut.url}/ws/LoyaltyExchange.1cws", evil)
    fault = etree.fromstring(response.content).find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
    assert response.status_code == 500
    assert fault is not None
    assert fault.findtext("faultcode") == "soap:Client"
    assert "root:" not in response.text


def test_unknown_operation_is_a_fault(ut: Served, http: requests.Session) -> None:
    body = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        '<m:Удалить xmlns:m="http://localhost/rt2discountservice"/></soap:Body></soap:Envelope>'
    ).encode()
    response = raw_post(http, f"{ut.url}/ws/LoyaltyExchange.1cws", body)
    fault = etree.fromstring(response.content).find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
    assert fault is not None
    assert "Удалить" in (fault.findtext("faultstring") or "")
