"""SOAP through zeep, with our HTTP policy as the transport and hardened XML parsing (reference/onec.md §4).

1C publishes web services as document/literal WSDLs whose port address is the host the base was published on —
often an internal name the connector cannot reach — so the endpoint is overridable. zeep gets a
:class:`PolicySession`: a ``requests.Session`` whose every request (the WSDL GET and each operation POST) goes
through :class:`~adapters.http.HttpClient`, so timeouts, retries, the rate budget, logging and masked errors apply
exactly as for REST and OData::

    soap = make_soap_client("http://1c/retail/ws/DiscountService.1cws?wsdl", http=onec_http,
                            service_address="http://1c/retail/ws/DiscountService.1cws")
    balance = soap.call("ПолучитьОстатокБонусов", ИдентификаторКарты="2000000012345", idempotent=True)

DTDs, entity declarations and external references in any XML zeep parses are refused. SOAP faults are mapped to
the error tree by :data:`SOAP_FAULT_ACTIONS`, naming the system and the operation.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests
import zeep
from zeep.exceptions import (
    DTDForbidden,
    EntitiesForbidden,
    Fault,
    TransportError,
    ValidationError,
    XMLParseError,
    XMLSyntaxError,
)
from zeep.wsdl.bindings import Soap11Binding

from adapters.http import Action, HttpClient, Verdict
from connector.errors import (
    FatalRemoteError,
    RemoteConfigError,
    RemoteError,
    RemoteNotFoundError,
    RetriableRemoteError,
)
from connector.logs import mask_text

__all__ = ["SOAP_FAULT_ACTIONS", "PolicySession", "SoapClient", "make_soap_client"]

SOAP_FAULT_ACTIONS: Mapping[str, Action] = {
    "Client": Action.FAIL_CONFIG,  # SOAP 1.1: the request was wrong
    "Sender": Action.FAIL_CONFIG,  # SOAP 1.2 spelling
    "VersionMismatch": Action.FAIL_CONFIG,
    "MustUnderstand": Action.FAIL_CONFIG,
    "Server": Action.FAIL,  # 1C: an exception in the service's handler — a business refusal, not transient
    "Receiver": Action.FAIL,
}
"""Fault code (local part) → action; an unknown code is ``fail``."""

_ERRORS: Mapping[Action, type[RemoteError]] = {
    Action.FAIL_CONFIG: RemoteConfigError,
    Action.FAIL_NOT_FOUND: RemoteNotFoundError,
    Action.RETRY: RetriableRemoteError,
    Action.RATE_LIMITED: RetriableRemoteError,
}


def _classify(response: requests.Response) -> Verdict | None:
    """A 500 carrying a SOAP fault goes back to zeep, which reads the fault; any other 500 is the policy's."""
    head = response.content[:4096]
    if response.status_code == 500 and b"Envelope" in head and b"Fault" in head:
        return Verdict(Action.IGNORE)
    return None


class PolicySession(requests.Session):
    """A ``requests.Session`` for zeep's ``Transport`` that sends everything through an :class:`HttpClient`.

    zeep's own ``timeout`` arguments are dropped: the policy's connect/read timeouts apply.

    Args:
        http: the system's HTTP client (its own plain session does the sending).
    """

    def __init__(self, http: HttpClient) -> None:
        super().__init__()
        self.http = http
        self._state = threading.local()

    @contextmanager
    def idempotent(self, value: bool) -> Iterator[None]:
        """Within the block, POSTs of this thread are (or are not) safe to repeat after an unknown outcome."""
        previous = getattr(self._state, "idempotent", None)
        self._state.idempotent = value
        try:
            yield
        finally:
            self._state.idempotent = previous

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        """Send through the HTTP policy (positional ``params``/``data`` as in ``requests`` are honoured)."""
        names = ("params", "data", "headers")
        options = {**dict(zip(names, args, strict=False)), **{k: kwargs[k] for k in names if k in kwargs}}
        verb = method.decode() if isinstance(method, bytes) else method
        target = url.decode() if isinstance(url, bytes) else url
        return self.http.request(
            verb, target, params=options.get("params"), data=options.get("data"),
            headers=options.get("headers"), classify=_classify, idempotent=getattr(self._state, "idempotent", None),
        )  # fmt: skip


class SoapClient:
    """Calls operations of one SOAP service and maps faults to the error tree.

    Attributes:
        client: the zeep client (WSDL, types: ``client.get_type("ns0:…")``).
        service: the zeep service proxy bound to the chosen binding and address.
    """

    def __init__(self, client: zeep.Client, service: Any, session: PolicySession) -> None:
        self.client = client
        self.service = service
        self._session = session

    @property
    def system(self) -> str:
        """The configured system name."""
        return self._session.http.system

    def call(self, operation: str, *args: Any, idempotent: bool = False, **kwargs: Any) -> Any:
        """Call ``operation`` and return zeep's result (a single ``return`` element comes back as its value).

        Args:
            operation: the operation's name as in the WSDL (``ПолучитьОстатокБонусов``).
            *args: positional arguments of the operation.
            idempotent: the call only reads, so it may be repeated after a timeout or a 5xx; writes stay
                ``False`` and raise ``outcome_unknown`` instead (look the write up before repeating).
            **kwargs: keyword arguments of the operation.

        Raises:
            RemoteConfigError: unknown operation or arguments, a ``Client`` fault, 400/401/403.
            FatalRemoteError: a ``Server`` fault (1C raised an exception) or a response that is not SOAP.
            RetriableRemoteError: transport failures after the policy's retries.
        """
        try:
            method = getattr(self.service, operation)
        except AttributeError:
            raise RemoteConfigError("the service has no such operation", system=self.system,
                                    operation=operation) from None  # fmt: skip
        with self._session.idempotent(idempotent):
            try:
                return method(*args, **kwargs)
            except Fault as fault:
                raise _fault_error(fault, self.system, operation) from None
            except RemoteError as error:
                error.context.setdefault("operation", operation)
                raise
            except (TypeError, ValidationError) as exc:
                raise RemoteConfigError(f"bad arguments: {mask_text(str(exc))[:200]}", system=self.system,
                                        operation=operation) from None  # fmt: skip
            except (TransportError, XMLSyntaxError, XMLParseError) as exc:
                raise FatalRemoteError(f"the answer is not a SOAP response ({type(exc).__name__})",
                                       system=self.system, operation=operation) from None  # fmt: skip


def _fault_error(fault: Fault, system: str, operation: str) -> RemoteError:
    code = str(fault.code or "").rsplit("}", 1)[-1].rsplit(":", 1)[-1]
    action = SOAP_FAULT_ACTIONS.get(code, Action.FAIL)
    text = mask_text(" ".join(str(fault.message or "").split()))[:200]
    error_type = _ERRORS.get(action, FatalRemoteError)
    return error_type(f"{system}: SOAP {operation} fault {code}: {text}", system=system, operation=operation,
                      fault_code=code)  # fmt: skip


def _binding_name(client: zeep.Client, binding: str | None) -> str:
    """The binding's qualified name: ``binding`` by local or full name, else the first SOAP 1.1 binding."""
    names = [str(name) for name in client.wsdl.bindings]
    if binding is not None:
        found = [name for name in names if name == binding or name.rsplit("}", 1)[-1] == binding]
        if not found:
            raise RemoteConfigError(f"the WSDL has no binding {binding!r}; it has {', '.join(names)}")
        return found[0]
    soap11 = [name for name in names if isinstance(client.wsdl.bindings[name], Soap11Binding)]
    if not (soap11 or names):
        raise RemoteConfigError("the WSDL declares no binding")
    return (soap11 or names)[0]


def make_soap_client(
    wsdl_url: str,
    *,
    http: HttpClient,
    service_address: str | None = None,
    binding: str | None = None,
    strict: bool = True,
) -> SoapClient:
    """Load a WSDL through the HTTP policy and bind a service.

    Args:
        wsdl_url: the WSDL (``http://host/base/ws/X.1cws?wsdl``), on the HTTP client's host.
        http: the system's HTTP client (Basic auth for 1C, timeouts, retries).
        service_address: the endpoint to call instead of the WSDL's port address (1C advertises the internal
            host it was published on); without it, an address on another host is refused by the policy.
        binding: the binding's name (``ДисконтныйСерверSoapBinding``) or qualified name; defaults to the first
            SOAP 1.1 binding when an address is given, else the WSDL's first service port.
        strict: zeep's strict parsing of responses.

    Raises:
        RemoteConfigError: the WSDL carries a DTD or entities (refused), or names no such binding.
        FatalRemoteError: the WSDL is not valid XML.
    """
    session = PolicySession(http)
    settings = zeep.Settings(strict=strict, forbid_dtd=True, forbid_entities=True, forbid_external=True,
                             xml_huge_tree=False)  # fmt: skip
    try:
        transport = zeep.Transport(session=session, cache=None)  # type: ignore[no-untyped-call]
        client = zeep.Client(wsdl_url, transport=transport, settings=settings)  # type: ignore[no-untyped-call]
    except (DTDForbidden, EntitiesForbidden) as exc:
        raise RemoteConfigError(f"WSDL refused: it declares a DTD or entities ({type(exc).__name__})",
                                system=http.system, path=urlsplit(wsdl_url).path) from None  # fmt: skip
    except (XMLSyntaxError, XMLParseError) as exc:
        raise FatalRemoteError(f"the WSDL is not valid XML ({type(exc).__name__})",
                               system=http.system) from None  # fmt: skip
    if service_address is None and binding is None:
        return SoapClient(client, client.service, session)
    address = service_address or _port_address(client)
    service = client.create_service(_binding_name(client, binding), address)  # type: ignore[no-untyped-call]
    return SoapClient(client, service, session)


def _port_address(client: zeep.Client) -> str:
    for service in client.wsdl.services.values():
        for port in service.ports.values():
            return str(port.binding_options["address"])
    raise RemoteConfigError("the WSDL declares no service port: give service_address")
