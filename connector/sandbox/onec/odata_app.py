"""HTTP face of the emulated 1C: the standard OData interface (v3) over an :class:`OneCInfobase`.

Routes under ``/odata/standard.odata/`` of wherever the app is mounted (reference/onec.md §1):
``$metadata``; ``<Set>`` (GET with query options, POST to create); ``<Set>/$count``; ``<Set>(guid'…')`` (GET,
PATCH/MERGE, PUT, DELETE); ``<Set>(guid'…')/Post`` and ``/Unpost``; ``AccumulationRegister_БонусныеБаллы/
Balance(Period=…,Condition=…,Dimensions=…)``. Basic auth guards everything (401 + ``WWW-Authenticate``). Without
``$format=json`` or an ``Accept: application/json`` the answer is Atom, as on a real publication (the ``Balance``
table and ``$count`` answer in JSON / plain text whatever is asked). Query options are decoded like 1C does:
``%20`` is a space, a ``+`` is a plus (so ``requests``' ``params=`` breaks here as it breaks there). A 201's
``Location`` carries raw UTF-8 Cyrillic, as 1C sends it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.logs import get_logger
from connector.sandbox.onec import atom
from connector.sandbox.onec.base import OneCInfobase
from connector.sandbox.onec.metadata import metadata_xml
from connector.sandbox.onec.odata_query import Fields, compile_fields_filter, parse_query, query_error
from connector.sandbox.onec.results import ResultCache, run_query
from connector.sandbox.onec.schema import REGISTER, Flavour, register_dimensions
from connector.sandbox.onec.wire import OneCServiceError, dump_json, parse_datetime

__all__ = ["BasicAuth", "odata_routes", "service_root"]

Format = Literal["json", "nometadata", "atom"]
Handler = Callable[[Request], Awaitable[Response]]

_log = get_logger(__name__)
_JSON_TYPE = "application/json;odata=minimalmetadata;charset=utf-8"
_PATH = re.compile(r"^(?P<set>[^/(]+)(?:\((?P<key>[^)]*)\))?(?:/(?P<tail>.*))?$", re.S)
_VIRTUAL = re.compile(r"^(?P<name>\w+)\((?P<args>.*)\)$", re.S)
_GUID_KEY = re.compile(r"^guid'(?P<guid>[0-9a-fA-F-]{36})'$")
_METHODS = ["GET", "POST", "PATCH", "MERGE", "PUT", "DELETE"]


class BasicAuth:
    """The infobase user a request must authenticate as (HTTP Basic, UTF-8 credentials as 1C expects)."""

    def __init__(self, user: str, password: str) -> None:
        self._expected = (user, password)

    def allows(self, request: Request) -> bool:
        """True when the request carries this user's Basic credentials."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (user, password) == self._expected

    @staticmethod
    def challenge() -> Response:
        """The 401 answer that asks a client for credentials."""
        return Response(
            "401 Unauthorized", status_code=401, headers={"WWW-Authenticate": 'Basic realm="1C:Enterprise"'}
        )


def service_root(request: Request) -> str:
    """Absolute URL of ``…/odata/standard.odata`` as seen by the client, mount prefix included."""
    return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}/odata/standard.odata"


def _params(request: Request) -> dict[str, str]:
    """Query options decoded as 1C decodes them: ``%XX`` only — a ``+`` stays a plus, not a space.

    Clients that let their HTTP library encode spaces as ``+`` (``requests``' ``params=``) break on a real base;
    they break here the same way (reference/onec.md §1.4).
    """
    params = {}
    for part in request.url.query.split("&"):
        name, _, value = part.partition("=")
        if name:
            params[unquote(name)] = unquote(value)
    return params


def _format(request: Request) -> Format:
    requested = _params(request).get("$format")
    if requested:
        text = requested.lower().replace(" ", "")
        if text == "json" or text.startswith("application/json"):
            return "nometadata" if "odata=nometadata" in text else "json"
        if text in ("atom", "xml", "application/atom+xml", "application/xml"):
            return "atom"
        raise OneCServiceError(f"Неверное значение параметра $format: '{requested}'", code="14", status=400)
    accept = request.headers.get("accept", "").lower()
    if "application/json" in accept:
        return "nometadata" if "odata=nometadata" in accept else "json"
    return "atom"


def _json(text: str | bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        text,
        status_code=status,
        media_type=_JSON_TYPE,
        headers={"DataServiceVersion": "3.0", **(headers or {})},
    )


def _error(exc: OneCServiceError, fmt: Format) -> Response:
    if fmt == "atom":
        return Response(
            atom.error(exc.code, exc.message), status_code=exc.status, media_type="application/xml"
        )
    body = {"odata.error": {"code": exc.code, "message": {"lang": "ru", "value": exc.message}}}
    return _json(json.dumps(body, ensure_ascii=False), exc.status)


def _pick(row: dict[str, Any], select: tuple[str, ...]) -> dict[str, Any]:
    return {name: row[name] for name in select}


def _ref_key(key: str) -> str:
    match = _GUID_KEY.match(key.strip())
    if match is None:
        raise query_error(f"Неверный ключ сущности: ({key})")
    return match.group("guid").lower()


def _split_args(text: str) -> dict[str, str]:
    args: dict[str, str] = {}
    current: list[str] = []
    quoted = False
    for char in [*text, ","]:
        if char == "'":
            quoted = not quoted
        if char == "," and not quoted:
            name, _, value = "".join(current).partition("=")
            if name.strip():
                args[name.strip()] = value.strip()
            current = []
        else:
            current.append(char)
    return args


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    raise query_error(f"Ошибка разбора параметра виртуальной таблицы: {value}")


class _ODataService:
    def __init__(self, infobase: Callable[[], OneCInfobase], flavour: Flavour, auth: BasicAuth) -> None:
        self._infobase = infobase
        self.auth = auth
        self.cache = ResultCache()
        self.metadata = metadata_xml(flavour)

    @property
    def base(self) -> OneCInfobase:
        return self._infobase()

    async def dispatch(self, request: Request) -> Response:
        if not self.auth.allows(request):
            return self.auth.challenge()
        fmt: Format = "json"
        try:
            fmt = _format(request)
            return await self._route(request, fmt)
        except OneCServiceError as exc:
            return _error(exc, fmt)
        except Exception as exc:  # a sandbox bug must still look like 1C's internal error, and be logged
            _log.exception("onec.internal_error", path=request.url.path)
            return _error(OneCServiceError(f"Внутренняя ошибка OData сервиса: {exc}"), fmt)

    async def _route(self, request: Request, fmt: Format) -> Response:
        path = request.path_params.get("path", "").strip("/")
        method = request.headers.get("x-http-method", request.method).upper()
        if path in ("", "$metadata"):
            if path == "$metadata":
                return Response(self.metadata, media_type="application/xml;charset=utf-8")
            return self._service_document(request, fmt)
        match = _PATH.match(path)
        if match is None:
            raise OneCServiceError(f"Сегмент пути '{path}' не найден", code="6", status=400)
        name, key, tail = match.group("set"), match.group("key"), match.group("tail")
        if key is not None:
            return await self._entity(request, fmt, method, name, _ref_key(key), tail)
        if tail == "$count" and method == "GET":
            return self._count(request, name)
        if tail:
            return self._virtual(request, fmt, name, tail)
        if method == "POST":
            return await self._create(request, fmt, name)
        if method == "GET":
            return self._collection(request, fmt, name)
        raise OneCServiceError(f"Метод {method} не поддерживается для '{name}'", code="6", status=400)

    def _service_document(self, request: Request, fmt: Format) -> Response:
        names = [*self.base.schema, REGISTER, f"{REGISTER}_RecordType"]
        root = service_root(request)
        body = {"odata.metadata": f"{root}/$metadata", "value": [{"name": n, "url": n} for n in names]}
        if fmt == "nometadata":
            del body["odata.metadata"]
        return _json(json.dumps(body, ensure_ascii=False))

    def _envelope(
        self, request: Request, fmt: Format, fragment: str, items: list[bytes], count: int | None
    ) -> bytes:
        head = []
        if fmt != "nometadata":
            meta = json.dumps(f"{service_root(request)}/$metadata#{fragment}", ensure_ascii=False)
            head.append(f'"odata.metadata":{meta},')
        if count is not None:
            head.append(f'"odata.count":"{count}",')
        return b"".join([("{" + "".join(head) + '"value":[').encode("utf-8"), b",".join(items), b"]}"])

    def _collection(self, request: Request, fmt: Format, name: str) -> Response:
        source = self.base.source(name)
        query = parse_query(_params(request), Fields.of_layout(source.layout))
        page, total = run_query(query, source.name, source.version, source.rows, self.cache, source.lookup)
        count = total if query.inlinecount else None
        if fmt == "atom":
            rows = [source.layout.unpack(row) for row in page]
            return atom.feed_response(service_root(request), name, rows, query.select, count)
        select = query.select
        if select is None:
            items = [source.to_json(row) for row in page]
        else:
            items = [dump_json(_pick(source.layout.unpack(row), select)).encode("utf-8") for row in page]
        return _json(self._envelope(request, fmt, name, items, count))

    def _count(self, request: Request, name: str) -> Response:
        source = self.base.source(name)
        query = parse_query({"$filter": _params(request).get("$filter", "")}, Fields.of_layout(source.layout))
        _, total = run_query(query, source.name, source.version, source.rows, self.cache, source.lookup)
        return Response(str(total), media_type="text/plain;charset=utf-8")

    def _single(self, request: Request, fmt: Format, name: str, ref: str, status: int = 200) -> Response:
        root = service_root(request)
        self.base.entity_schema(name)
        select = parse_query(_params(request), Fields.of_layout(self.base.layouts[name])).select
        row = self.base.get(name, ref)
        headers = {}
        if status == 201:
            # real 1C writes the Cyrillic of Location as raw UTF-8 bytes; latin-1 text carries them through
            location = f"{root}/{name}(guid'{ref}')"
            headers["Location"] = location.encode("utf-8").decode("latin-1")
        if fmt == "atom":
            return atom.entry_response(root, name, row, select, status, headers)
        body = (
            self.base.row_json(name, ref).decode("utf-8") if select is None else dump_json(_pick(row, select))
        )
        if fmt != "nometadata":
            meta = json.dumps(f"{root}/$metadata#{name}/@Element", ensure_ascii=False)
            body = f'{{"odata.metadata":{meta},{body[1:]}' if body != "{}" else f'{{"odata.metadata":{meta}}}'
        return _json(body, status, headers)

    async def _body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw.decode("utf-8") or "{}", parse_float=Decimal)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise OneCServiceError(f"Ошибка разбора тела запроса: {exc}", code="1", status=400) from exc
        if not isinstance(body, dict):
            raise OneCServiceError("Ошибка разбора тела запроса: ожидается объект JSON", code="1", status=400)
        return body

    async def _create(self, request: Request, fmt: Format, name: str) -> Response:
        entity = self.base.entity_schema(name)
        body = await self._body(request)
        ref = self.base.create(entity.name, body, strict_lines=True)
        return self._single(request, fmt, name, ref, status=201)

    async def _entity(
        self, request: Request, fmt: Format, method: str, name: str, ref: str, tail: str | None
    ) -> Response:
        if tail in ("Post", "Unpost") and method == "POST":
            self._posting_mode(request)
            (self.base.post if tail == "Post" else self.base.unpost)(name, ref)
            return Response(status_code=200, headers={"DataServiceVersion": "3.0"})
        if tail:
            raise OneCServiceError(f"Сегмент пути '{tail}' не найден", code="6", status=400)
        if method == "GET":
            return self._single(request, fmt, name, ref)
        if method in ("PATCH", "MERGE", "PUT"):
            self.base.update(name, ref, await self._body(request), replace=method == "PUT", strict_lines=True)
            return self._single(request, fmt, name, ref)
        if method == "DELETE":
            self.base.delete(name, ref)
            return Response(status_code=204, headers={"DataServiceVersion": "3.0"})
        raise OneCServiceError(f"Метод {method} не поддерживается", code="6", status=400)

    @staticmethod
    def _posting_mode(request: Request) -> None:
        mode = _params(request).get("PostingModeOperational", "false").lower()
        if mode not in ("true", "false"):
            raise OneCServiceError(
                f"Неверное значение параметра PostingModeOperational: '{mode}'", code="1", status=400
            )

    def _virtual(self, request: Request, fmt: Format, name: str, tail: str) -> Response:
        match = _VIRTUAL.match(tail)
        if name != REGISTER or match is None or match.group("name") != "Balance":
            self.base.source(name)  # an unknown set is code 6 before "method not found"
            raise OneCServiceError(f"Метод не найден: {tail.split('(')[0]}", code="6", status=400)
        args = _split_args(match.group("args"))
        period = None
        if "Period" in args:
            literal = args["Period"]
            if not (literal.startswith("datetime'") and literal.endswith("'")):
                raise query_error(f"Ошибка разбора параметра Period: {literal}")
            period = parse_datetime(literal[9:-1])
        fields = Fields.of_layout(self.base.register_layout)
        condition = (
            compile_fields_filter(_unquote(args["Condition"]), fields) if "Condition" in args else None
        )
        dims = self._dimensions(args)
        rows = self.base.balance(period, condition, dims)
        items = [dump_json(row).encode("utf-8") for row in rows]
        return _json(self._envelope(request, fmt, f"{REGISTER}_Balance", items, None))

    def _dimensions(self, args: dict[str, str]) -> list[str] | None:
        if "Dimensions" not in args:
            return None
        known = register_dimensions(self.base.flavour)
        dims = []
        for item in _unquote(args["Dimensions"]).split(","):
            name = item.strip()
            name = name if name.endswith("_Key") else f"{name}_Key"
            if name not in known:
                raise query_error(f"Неизвестное измерение '{item.strip()}'")
            dims.append(name)
        return dims


def odata_routes(infobase: Callable[[], OneCInfobase], flavour: Flavour, auth: BasicAuth) -> list[Route]:
    """Starlette routes of the OData service, relative to the 1C base's mount point.

    Args:
        infobase: returns the infobase to serve (called per request, so it may build it on first use).
        flavour: its flavour, for ``$metadata``.
        auth: the infobase user.
    """
    service = _ODataService(infobase, flavour, auth)
    return [
        Route("/odata/standard.odata", service.dispatch, methods=_METHODS),
        Route("/odata/standard.odata/{path:path}", service.dispatch, methods=_METHODS),
    ]
