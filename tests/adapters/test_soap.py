"""SOAP over the HTTP policy: a 1C-style WSDL, calls, faults, DTD refusal and the endpoint override."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import responses

from adapters.http import HttpClient, HttpPolicy, SystemHttpConfig
from adapters.rest import BasicAuth
from adapters.soap import make_soap_client
from connector.errors import FatalRemoteError, RemoteConfigError, RetriableRemoteError

DATA = Path(__file__).parent / "data"
BASE = "http://1c.shop.ru/retail/ws"
WSDL_URL = f"{BASE}/DiscountService.1cws?wsdl"
ENDPOINT = f"{BASE}/DiscountService.1cws"
WSDL = (DATA / "discount_service.wsdl").read_bytes()
BALANCE = (DATA / "balance_response.xml").read_bytes()
FAULT = (DATA / "fault_response.xml").read_bytes()
XML = "text/xml; charset=utf-8"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def make_http(max_retries: int = 2) -> HttpClient:
    config = SystemHttpConfig(system="retail", base_url=BASE, policy=HttpPolicy(max_retries=max_retries))
    return HttpClient(config, auth=BasicAuth("Обмен", "pw-secret-1"), sleep=lambda _s: None)


def test_call_through_the_policy_with_address_override(mocked: responses.RequestsMock) -> None:
    mocked.get(WSDL_URL, body=WSDL, content_type=XML)
    mocked.post(ENDPOINT, body=BALANCE, content_type=XML)
    soap = make_soap_client(WSDL_URL, http=make_http(), service_address=ENDPOINT)
    balance = soap.call("ПолучитьОстатокБонусов", ИдентификаторКарты="2000000012345", idempotent=True)
    assert balance == Decimal("1250.75")
    sent = mocked.calls[1].request
    assert sent.headers["Authorization"].startswith("Basic ")
    assert "ДисконтныйСервер:ПолучитьОстатокБонусов" in sent.headers["SOAPAction"]
    body = sent.body if isinstance(sent.body, bytes) else str(sent.body).encode()
    assert "<ns0:ИдентификаторКарты>2000000012345</ns0:ИдентификаторКарты>".encode() in body
    assert b'xmlns:ns0="http://localhost/rt2discountservice"' in body


def test_named_binding(mocked: responses.RequestsMock) -> None:
    mocked.get(WSDL_URL, body=WSDL, content_type=XML)
    soap = make_soap_client(
        WSDL_URL, http=make_http(), service_address=ENDPOINT, binding="ДисконтныйСерверSoap12Binding"
    )
    assert soap.service._binding.name.localname == "ДисконтныйСерверSoap12Binding"
    mocked.get(WSDL_URL, body=WSDL, content_type=XML)
    with pytest.raises(RemoteConfigError, match="no binding"):
        make_soap_client(WSDL_URL, http=make_http(), service_address=ENDPOINT, binding="Nope")


def test_internal_address_from_the_wsdl_is_refused(mocked: responses.RequestsMock) -> None:
    mocked.get(WSDL_URL, body=WSDL, content_type=XML)
    soap = make_soap_client(WSDL_URL, http=make_http())
    with pytest.raises(RemoteConfigError, match="another host") as caught:
        soap.call("ПолучитьОстатокБонусов", ИдентификаторКарты="1")
    assert caught.value.context["operation"] == "ПолучитьОстатокБонусов"
    assert caught.value.context["host"] == "srv-1c-04.corp.local"


def test_fault_is_mapped_with_system_and_operation(mocked: responses.RequestsMock) -> None:
    mocked.get(WSDL_URL, body=WSDL, content_type=XML)
    mocked.post(ENDPOINT, body=FAULT, status=500, content_type=XML)
    soap = make_soap_client(WSDL_URL, http=make_http(), service_address=ENDPOINT)
    with pytest.raises(FatalRemoteError) as caught:
        soap.call("ПолучитьОстатокБонусов", ИдентификаторКарты="2000000012345", idempotent=True)
    text = str(caught.value)
    assert "retail: SOAP ПолучитьОстатокБонусов fault Server" in text
    assert "+79161234567" not in text  # the phone in the fault text is masked
    assert caught.value.context["fault_code"] == "Server"
    assert not isinstance(caught.value, RetriableRemoteError)  # a fault is an answer: not retried


def test_plain_500_is_retried_by_the_policy(mocked: responses.RequestsMock) -> None:
    mocked.get(WSDL_URL, body=WSDL, content_type=XML)
    mocked.post(ENDPOINT, body="proxy error", status=502)
    mocked.post(ENDPOINT, body=BALANCE, content_type=XML)
    soap = make_soap_client(WSDL_URL, http=make_http(), service_address=ENDPOINT)
    assert soap.call("ПолучитьОстатокБонусов", ИдентификаторКарты="1", idempotent=True) == Decimal("1250.75")


def test_write_with_unknown_outcome_is_not_repeated(mocked: responses.RequestsMock) -> None:
    mocked.get(WSDL_URL, body=WSDL, content_type=XML)
    mocked.post(ENDPOINT, body=requests.ReadTimeout())
    soap = make_soap_client(WSDL_URL, http=make_http(), service_address=ENDPOINT)
    with pytest.raises(RetriableRemoteError) as caught:
        soap.call("ОбновитьДанныеОБонусах", ДанныеXML="<x/>")
    assert caught.value.context["outcome_unknown"] is True
    assert caught.value.context["operation"] == "ОбновитьДанныеОБонусах"


def test_wsdl_load_error_names_the_system(mocked: responses.RequestsMock) -> None:
    mocked.get(WSDL_URL, status=401, body="Unauthorized")
    with pytest.raises(RemoteConfigError, match=r"retail: GET /retail/ws/DiscountService\.1cws returned 401"):
        make_soap_client(WSDL_URL, http=make_http())


@pytest.mark.parametrize(
    "prolog",
    [
        b'<!DOCTYPE definitions [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
        b'<!DOCTYPE definitions SYSTEM "http://evil.example/x.dtd">',
    ],
)
def test_wsdl_with_dtd_or_external_entity_is_refused(mocked: responses.RequestsMock, prolog: bytes) -> None:
    declaration, rest = WSDL.split(b"\n", 1)
    mocked.get(WSDL_URL, body=declaration + b"\n" + prolog + b"\n" + rest, content_type=XML)
    with pytest.raises(RemoteConfigError, match="WSDL refused"):
        make_soap_client(WSDL_URL, http=make_http())


def test_unknown_operation_and_bad_arguments(mocked: responses.RequestsMock) -> None:
    mocked.get(WSDL_URL, body=WSDL, content_type=XML)
    soap = make_soap_client(WSDL_URL, http=make_http(), service_address=ENDPOINT)
    with pytest.raises(RemoteConfigError, match="no such operation"):
        soap.call("УдалитьВсё")
    with pytest.raises(RemoteConfigError, match="bad arguments"):
        soap.call("ПолучитьОстатокБонусов", Лишний="1")


def test_non_soap_answer_is_fatal(mocked: responses.RequestsMock) -> None:
    mocked.get(WSDL_URL, body=WSDL, content_type=XML)
    mocked.post(ENDPOINT, body="<html>login</html>", content_type="text/html")
    soap = make_soap_client(WSDL_URL, http=make_http(), service_address=ENDPOINT)
    with pytest.raises(FatalRemoteError, match="not a SOAP response"):
        soap.call("ПолучитьОстатокБонусов", ИдентификаторКарты="1", idempotent=True)
