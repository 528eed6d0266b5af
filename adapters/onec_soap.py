"""1C over its loyalty web service instead of OData (``protocol: soap``), like Розница's ДисконтныйСервер.

Some customers publish a web service rather than the standard OData interface. The sandbox's
``LoyaltyExchange`` (reference/onec.md §4) offers two operations, and this module speaks exactly those:

* ``ПолучитьОстатокБонусов(ИдентификаторКарты | НомерТелефона, Дата)`` → the available points;
* ``ОбновитьДанныеОБонусах(ИдентификаторОперации, ДанныеОБонусах)`` → creates and posts one bonus document and
  returns its ``Ref_Key``. The service keeps the operation id in ``Комментарий`` and answers a repeated id
  with the first document, so the connector's idempotency key is the operation id and the call is safe to
  repeat after a lost answer — the service itself is the "look the key up before creating again".

Receipts, register rows and catalogs are not offered by such a service: asking for them raises a
:class:`~connector.errors.ConfigError` that says so (route receipts to an OData 1C instead).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from adapters.http import HttpClient
from adapters.soap import SoapClient, make_soap_client
from connector.errors import ConfigError, FatalRemoteError
from connector.model import Posting

__all__ = ["DEFAULT_SERVICE", "OneCSoapService", "soap_unsupported"]

DEFAULT_SERVICE = "LoyaltyExchange"
_ODATA_ROOT = "/odata/standard.odata"


def soap_unsupported(system: str, what: str) -> ConfigError:
    """The error for a read or write the 1C web service does not offer."""
    return ConfigError(
        f"systems.{system}: {what} is not offered by the 1C web service (protocol: soap offers only the "
        "bonus balance and bonus operations); route receipts to a 1C published over OData (protocol: odata)",
        system=system,
    )


class OneCSoapService:
    """Bonus balance and bonus operations through the base's loyalty web service.

    Args:
        http: the system's HTTP client (Basic auth, timeouts, retries).
        base_url: the configured ``base_url`` (the base root or its OData root).
        tz: the base's zone (``Период``/``Дата`` are its local time).
        options: ``soap_service`` (the service name, default ``LoyaltyExchange``), ``wsdl_url`` and
            ``soap_address`` (the endpoint, when the WSDL advertises an internal host).
    """

    def __init__(self, http: HttpClient, base_url: str, tz: tzinfo, options: dict[str, Any]) -> None:
        root = base_url.removesuffix(_ODATA_ROOT)
        service = str(options.get("soap_service", DEFAULT_SERVICE))
        self._wsdl = str(options.get("wsdl_url") or f"{root}/ws/{service}.1cws?wsdl")
        self._address = str(options.get("soap_address") or self._wsdl.split("?", 1)[0])
        self._http = http
        self._tz = tz
        self._client: SoapClient | None = None

    @property
    def client(self) -> SoapClient:
        """The zeep client, built on first use (loading the WSDL is one request)."""
        if self._client is None:
            self._client = make_soap_client(self._wsdl, http=self._http, service_address=self._address)
        return self._client

    def balance(
        self, *, card: str | None = None, phone: str | None = None, at: datetime | None = None
    ) -> Decimal:
        """Available points of a card or a phone at ``at`` (now when None), summed over programs."""
        moment = at.astimezone(self._tz).replace(tzinfo=None, microsecond=0) if at else None
        result = self.client.call(
            "ПолучитьОстатокБонусов",
            ИдентификаторКарты=card,
            НомерТелефона=phone,
            Дата=moment,
            idempotent=True,
        )
        try:
            return Decimal(str(result))
        except ArithmeticError:
            raise FatalRemoteError(
                "ПолучитьОстатокБонусов returned no number", system=self._http.system
            ) from None

    def write(self, posting: Posting, key: str, *, program: str | None = None) -> str:
        """Write one posting as a bonus operation with ``key`` as its operation id; returns the ``Ref_Key``.

        Repeating the call with the same key returns the first document, so the policy may retry it.
        """
        if posting.amount == 0:
            raise ValueError(f"posting {posting.key} has a zero amount: nothing to write")
        row: dict[str, Any] = {
            "Период": posting.occurred_at.astimezone(self._tz).replace(tzinfo=None, microsecond=0),
            "ВидДвижения": "Начисление" if posting.amount > 0 else "Списание",
            "ИдентификаторБонуснойПрограммы": program,
            "Сумма": abs(posting.amount),
        }
        if posting.account.startswith("card:"):
            row["ИдентификаторКарты"] = posting.account.removeprefix("card:")
        else:
            row["НомерТелефона"] = posting.account
        if posting.amount > 0:
            row["ДатаНачалаДействия"] = (
                posting.available_at.astimezone(self._tz).date() if posting.available_at else None
            )
            row["ДатаОкончанияСрокаДействия"] = (
                posting.expires_at.astimezone(self._tz).date() if posting.expires_at else None
            )
        result = self.client.call(
            "ОбновитьДанныеОБонусах",
            ИдентификаторОперации=key,
            ДанныеОБонусах={"Строка": [row]},
            idempotent=True,
        )
        if not result:
            raise FatalRemoteError(
                "ОбновитьДанныеОБонусах returned no document", system=self._http.system, key=key
            )
        return str(result)
