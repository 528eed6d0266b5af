"""The 1C web service ``LoyaltyExchange`` (``/ws/LoyaltyExchange.1cws``), modelled on Розница 2's ``ДисконтныйСервер``.

Document/literal, namespace ``http://localhost/rt2discountservice``, bindings ``LoyaltyExchangeSoapBinding`` (SOAP
1.1) and ``LoyaltyExchangeSoap12Binding`` (SOAP 1.2), results in a ``return`` element, as 1C generates them
(reference/onec.md §4), except that ``soapAction`` is percent-encoded (see :func:`wsdl_text`). ``?wsdl`` serves the WSDL with an internal-looking ``soap:address`` (``http://srv-1c/…``)
the way a real publication often does, so a client must set the endpoint itself.

Operations:

* ``ПолучитьОстатокБонусов(ИдентификаторКарты | НомерТелефона, Дата?)`` → available points from the bonus
  register, ``max(0, НачисленоBalance − max(0, КСписаниюBalance))`` per program, summed;
* ``ОбновитьДанныеОБонусах(ИдентификаторОперации, ДанныеОБонусах)`` → creates and posts one
  ``НачислениеИСписаниеБонусныхБаллов`` (rows ``Начисление``/``Списание``) and returns its ``Ref_Key``; the
  operation id is kept in ``Комментарий`` and a repeated id returns the first document instead of a second one.

Requests are parsed with a hardened lxml parser (no entities, no network, DTDs refused); errors are SOAP faults.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any
from urllib.parse import quote

from lxml import etree  # type: ignore[import-untyped]
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.sandbox.onec.base import OneCInfobase
from connector.sandbox.onec.odata_app import BasicAuth
from connector.sandbox.onec.wire import EMPTY_GUID, OneCServiceError, parse_datetime

__all__ = ["NAMESPACE", "SERVICE", "soap_routes", "wsdl_text"]

NAMESPACE = "http://localhost/rt2discountservice"
SERVICE = "LoyaltyExchange"
_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
_BONUS_DOC = "Document_НачислениеИСписаниеБонусныхБаллов"
_SOAP_ACTION = re.compile(r'soapAction="([^"]*)"')


class _FaultError(Exception):
    """A request the service refuses; rendered as a SOAP fault (client: the caller's mistake)."""

    def __init__(self, message: str, *, client: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.client = client


def wsdl_text(address: str) -> str:
    """The service WSDL advertising ``address`` as the endpoint of both ports."""
    template = resources.files("connector.sandbox.onec").joinpath("LoyaltyExchange.wsdl").read_text("utf-8")
    # 1C writes the Cyrillic operation name into soapAction raw; HTTP header values must be latin-1, so a stock
    # client (requests/http.client) cannot send it. The sandbox percent-encodes it (a valid URI) and dispatches on
    # the body element, as 1C does; against a real base the client must encode the action itself.
    encoded = _SOAP_ACTION.sub(lambda m: f'soapAction="{quote(m.group(1), safe=":/#")}"', template)
    return encoded.replace("{address}", address)


def _parse(raw: bytes) -> etree._Element:
    if b"<!DOCTYPE" in raw.upper() or b"<!ENTITY" in raw.upper():
        raise _FaultError("Документ содержит DTD: запрос отклонен", client=True)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        raise _FaultError(f"Ошибка разбора XML: {exc}", client=True) from exc
    if root.getroottree().docinfo.doctype:
        raise _FaultError("Документ содержит DTD: запрос отклонен", client=True)
    return root


def _children(element: etree._Element) -> dict[str, etree._Element]:
    return {etree.QName(child).localname: child for child in element if isinstance(child.tag, str)}


def _text(fields: dict[str, etree._Element], name: str) -> str | None:
    element = fields.get(name)
    if element is None or element.get("{http://www.w3.org/2001/XMLSchema-instance}nil") == "true":
        return None
    return (element.text or "").strip() or None


def _digits(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    return "7" + digits[1:] if len(digits) == 11 and digits[0] == "8" else digits


class _Service:
    def __init__(
        self, infobase: Callable[[], OneCInfobase], auth: BasicAuth, now: Callable[[], datetime]
    ) -> None:
        self._infobase = infobase
        self.auth = auth
        self.now = now
        self.operations: dict[str, Callable[[dict[str, etree._Element]], str]] = {
            "ПолучитьОстатокБонусов": self._balance,
            "ОбновитьДанныеОБонусах": self._update,
        }

    @property
    def base(self) -> OneCInfobase:
        return self._infobase()

    async def handle(self, request: Request) -> Response:
        if not self.auth.allows(request):
            return self.auth.challenge()
        if request.method == "GET":
            if "wsdl" not in {key.lower() for key in request.query_params}:
                return Response("Для получения описания сервиса добавьте ?wsdl", status_code=400)
            address = f"http://srv-1c{request.scope.get('root_path', '')}/ws/{SERVICE}.1cws"
            return Response(wsdl_text(address), media_type="text/xml;charset=utf-8")
        envelope_ns = (
            _SOAP12 if "application/soap+xml" in request.headers.get("content-type", "") else _SOAP11
        )
        try:
            root = _parse(await request.body())
            envelope_ns = etree.QName(root).namespace or envelope_ns
            name, result = self._call(root, envelope_ns)
        except _FaultError as fault:
            return _fault(envelope_ns, fault.message, client=fault.client)
        except OneCServiceError as exc:
            return _fault(envelope_ns, exc.message, client=False)
        return _respond(envelope_ns, name, result)

    def _call(self, root: etree._Element, envelope_ns: str) -> tuple[str, str]:
        if etree.QName(root).localname != "Envelope" or envelope_ns not in (_SOAP11, _SOAP12):
            raise _FaultError("Ожидается конверт SOAP", client=True)
        body = root.find(f"{{{envelope_ns}}}Body")
        operation = (
            next((child for child in body if isinstance(child.tag, str)), None) if body is not None else None
        )
        if operation is None:
            raise _FaultError("Пустое тело запроса SOAP", client=True)
        qname = etree.QName(operation)
        handler = self.operations.get(qname.localname)
        if handler is None or qname.namespace != NAMESPACE:
            raise _FaultError(f"Операция {qname.localname} не найдена", client=True)
        return qname.localname, handler(_children(operation))

    # ---- operations -----------------------------------------------------------------------------------------

    def _holder(self, card: str | None, phone: str | None) -> str:
        """The register holder (УТ: partner, Розница: card) of a card number or a phone."""
        if card:
            found = self._card(card)
            if found is None:
                raise _FaultError(f"Карта лояльности {card} не найдена")
            return found
        if phone:
            found = self._by_phone(_digits(phone))
            if found is None:
                raise _FaultError("Клиент с указанным номером телефона не найден")
            return found
        raise _FaultError("Не указан идентификатор карты или номер телефона", client=True)

    def _card(self, code: str) -> str | None:
        if self.base.flavour == "ut":
            cards = self.base.find("Catalog_КартыЛояльности", Штрихкод=code, DeletionMark=False)
            return str(cards[0]["Партнер_Key"]) if cards else None
        cards = self.base.find("Catalog_ИнформационныеКарты", КодКарты=code, DeletionMark=False)
        return str(cards[0]["Ref_Key"]) if cards else None

    def _by_phone(self, digits: str) -> str | None:
        people = "Catalog_Партнеры" if self.base.flavour == "ut" else "Catalog_ФизическиеЛица"
        for person in self.base.find(people, DeletionMark=False):
            if any(_digits(row["НомерТелефона"]) == digits for row in person["КонтактнаяИнформация"]):
                if self.base.flavour == "ut":
                    return str(person["Ref_Key"])
                cards = self.base.find("Catalog_ИнформационныеКарты", ВладелецКарты=person["Ref_Key"])
                return str(cards[0]["Ref_Key"]) if cards else None
        return None

    def _balance(self, fields: dict[str, etree._Element]) -> str:
        holder = self._holder(_text(fields, "ИдентификаторКарты"), _text(fields, "НомерТелефона"))
        moment_text = _text(fields, "Дата")
        moment = parse_datetime(moment_text) if moment_text else self.now()
        dimension = "Партнер_Key" if self.base.flavour == "ut" else "ДисконтнаяКарта_Key"
        available = Decimal(0)
        get = self.base.register_layout.getter(dimension)
        for row in self.base.balance(moment, lambda record: get(record) == holder):
            available += max(Decimal(0), row["НачисленоBalance"] - max(Decimal(0), row["КСписаниюBalance"]))
        return str(available)

    def _update(self, fields: dict[str, etree._Element]) -> str:
        operation_id = _text(fields, "ИдентификаторОперации")
        if not operation_id:
            raise _FaultError("Не указан идентификатор операции", client=True)
        existing = self.base.find(_BONUS_DOC, Комментарий=operation_id, DeletionMark=False)
        if existing:
            if not existing[0]["Posted"]:
                self.base.post(_BONUS_DOC, existing[0]["Ref_Key"])
            return str(existing[0]["Ref_Key"])
        table = fields.get("ДанныеОБонусах")
        rows = [_children(row) for row in table if isinstance(row.tag, str)] if table is not None else []
        if not rows:
            raise _FaultError("Таблица бонусов пуста", client=True)
        ref = self.base.create(_BONUS_DOC, self._document(operation_id, rows))
        self.base.post(_BONUS_DOC, ref)
        return ref

    def _document(self, operation_id: str, rows: list[dict[str, etree._Element]]) -> dict[str, Any]:
        holder_field = "Партнер_Key" if self.base.flavour == "ut" else "ДисконтнаяКарта_Key"
        header: dict[str, Any] = {"Комментарий": operation_id, "Начисление": [], "Списание": []}
        for row in rows:
            kind = _text(row, "ВидДвижения")
            if kind not in ("Начисление", "Списание"):
                raise _FaultError(f"Неизвестный вид движения: {kind}", client=True)
            section = header[kind]
            holder = self._holder(_text(row, "ИдентификаторКарты"), _text(row, "НомерТелефона"))
            section.append({"LineNumber": len(section) + 1, holder_field: holder, "Баллы": _amount(row)})
            header.setdefault("Date", parse_datetime(_text(row, "Период") or self.now().isoformat()))
            program = _text(row, "ИдентификаторБонуснойПрограммы")
            header.setdefault("БонуснаяПрограммаЛояльности_Key", program or self._default_program())
            if kind == "Начисление":
                _validity(header, row)
        return header

    def _default_program(self) -> str:
        programs = self.base.find("Catalog_БонусныеПрограммыЛояльности", DeletionMark=False)
        return str(programs[0]["Ref_Key"]) if programs else EMPTY_GUID


def _amount(row: dict[str, etree._Element]) -> Decimal:
    try:
        amount = Decimal(_text(row, "Сумма") or "")
    except InvalidOperation as exc:
        raise _FaultError("Неверная сумма бонусов", client=True) from exc
    if amount <= 0:
        raise _FaultError("Сумма бонусов должна быть положительной", client=True)
    return amount


def _validity(header: dict[str, Any], row: dict[str, etree._Element]) -> None:
    starts, ends = _text(row, "ДатаНачалаДействия"), _text(row, "ДатаОкончанияСрокаДействия")
    if ends and "ДатаОкончанияСрокаДействия" not in header:
        header["ДатаОкончанияСрокаДействия"] = parse_datetime(ends[:10])
    if starts and "КоличествоПериодовОтсрочкиНачалаДействия" not in header:
        delay = (parse_datetime(starts[:10]).date() - header["Date"].date()).days
        if delay > 0:
            header |= {
                "ПериодОтсрочкиНачалаДействия": "День",
                "КоличествоПериодовОтсрочкиНачалаДействия": delay,
            }


def _envelope(envelope_ns: str) -> tuple[etree._Element, etree._Element]:
    envelope = etree.Element(f"{{{envelope_ns}}}Envelope", nsmap={"soap": envelope_ns})
    etree.SubElement(envelope, f"{{{envelope_ns}}}Header")
    return envelope, etree.SubElement(envelope, f"{{{envelope_ns}}}Body")


def _media_type(envelope_ns: str) -> str:
    return "application/soap+xml;charset=utf-8" if envelope_ns == _SOAP12 else "text/xml;charset=utf-8"


def _respond(envelope_ns: str, operation: str, result: str) -> Response:
    envelope, body = _envelope(envelope_ns)
    wrapper = etree.SubElement(body, f"{{{NAMESPACE}}}{operation}Response", nsmap={"m": NAMESPACE})
    etree.SubElement(wrapper, f"{{{NAMESPACE}}}return").text = result
    return Response(
        etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"), media_type=_media_type(envelope_ns)
    )


def _fault(envelope_ns: str, message: str, *, client: bool) -> Response:
    envelope, body = _envelope(envelope_ns)
    fault = etree.SubElement(body, f"{{{envelope_ns}}}Fault")
    if envelope_ns == _SOAP12:
        code = etree.SubElement(etree.SubElement(fault, f"{{{envelope_ns}}}Code"), f"{{{envelope_ns}}}Value")
        code.text = "soap:Sender" if client else "soap:Receiver"
        reason = etree.SubElement(
            etree.SubElement(fault, f"{{{envelope_ns}}}Reason"), f"{{{envelope_ns}}}Text"
        )
        reason.set("{http://www.w3.org/XML/1998/namespace}lang", "ru")
        reason.text = message
    else:
        etree.SubElement(fault, "faultcode").text = "soap:Client" if client else "soap:Server"
        etree.SubElement(fault, "faultstring").text = message
    payload = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    return Response(payload, status_code=500, media_type=_media_type(envelope_ns))


def soap_routes(
    infobase: Callable[[], OneCInfobase], auth: BasicAuth, now: Callable[[], datetime]
) -> list[Route]:
    """Starlette routes of the web service, relative to the 1C base's mount point.

    Args:
        infobase: returns the infobase the service reads and writes (may build it on first use).
        auth: the infobase user (Basic auth, as for OData).
        now: the infobase's local "now" (zone-less), for a balance asked without ``Дата``.
    """
    service = _Service(infobase, auth, now)
    return [Route(f"/ws/{SERVICE}.1cws", service.handle, methods=["GET", "POST"])]
