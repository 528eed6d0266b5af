"""JSON on the wire with exact decimals: numbers parse as ``Decimal`` and ``Decimal`` is written as a JSON number."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

__all__ = ["JSONObject", "dumps_json", "json_truth", "loads_json", "project_value", "split_items"]


def loads_json(content: bytes | str) -> Any:
    """Parse JSON with floats as :class:`~decimal.Decimal` (money never passes through binary floating point)."""
    return json.loads(content, parse_float=Decimal)


_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_VALUE = msgspec.json.Decoder(float_hook=Decimal)  # the hook gets the literal's text: exact, never a float


class JSONObject:
    """A JSON object kept as the UTF-8 its system sent, decoded on demand: whole, or a few top-level members.

    A pull that journals documents raw needs only a handful of members of each (its id, type, store, date):
    those are decoded alone, straight from the bytes, and the whole document only when something maps it. The
    bytes as sent (:attr:`data`) are what the journal stores and what a version hashes; :attr:`text` is decoded
    from them when asked. Numbers with a fraction decode as :class:`~decimal.Decimal`, as in :func:`loads_json`.
    Two objects are equal when their bytes are.

    Args:
        text: the object's JSON, as text or as UTF-8 bytes (the caller vouches that bytes are valid UTF-8, as
            :func:`split_items` checks a page's).

    Example:
        >>> document = JSONObject('{"id": "a", "sum": 1.10, "body": {"positions": []}}')
        >>> document.project(["id", "sum", "missing"])
        {'id': 'a', 'sum': Decimal('1.10')}
        >>> document.decode()["body"]
        {'positions': []}
    """

    __slots__ = ("_members", "_text", "_value", "data")

    def __init__(self, text: str | bytes) -> None:
        self._text: str | None = None
        if isinstance(text, str):
            self.data, self._text = text.encode("utf-8"), text
        else:
            self.data = bytes(text)
        self._members: dict[str, msgspec.Raw] | None = None
        self._value: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """The JSON text, decoded from :attr:`data` on first use."""
        if self._text is None:
            self._text = self.data.decode("utf-8")
        return self._text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JSONObject) and other.data == self.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __repr__(self) -> str:
        return f"JSONObject(<{len(self.data)} bytes>)"  # a payload (personal data) never reaches a repr

    def decode(self) -> dict[str, Any]:
        """The whole object, decoded once.

        Raises:
            ValueError: the text is not a JSON object.
        """
        if self._value is None:
            value = _decode(self.data)
            if not isinstance(value, dict):
                raise ValueError(f"not a JSON object but {type(value).__name__}")
            self._value = value
        return self._value

    def project(self, names: Iterable[str], tested: Iterable[str] = ()) -> dict[str, Any]:
        """Only the named top-level members that are present, each decoded (the rest is only scanned).

        Members named in ``tested`` are not decoded but stand in as ``True`` or ``False``, their JSON truth
        (false, null, ``""``, ``[]`` and ``{}`` are false): enough for a predicate that only tests them.

        Raises:
            ValueError: the text is not a JSON object.

        Example:
            >>> JSONObject('{"type": "SELL", "body": {"positions": [1]}, "extras": {}}').project(
            ...     ["type"], tested=["body", "extras"])
            {'type': 'SELL', 'body': True, 'extras': False}
        """
        if self._value is not None:
            return project_value(self._value, names, tested)
        if self._members is None:
            try:
                self._members = _MEMBERS.decode(self.data)
            except msgspec.DecodeError as exc:
                raise ValueError(f"not a JSON object: {exc}") from None
        members = self._members
        found = {name: _decode(members[name]) for name in names if name in members}
        found.update((name, _raw_true(members[name])) for name in tested if name in members)
        return found

    def get(self, name: str) -> Any:
        """One top-level member, decoded; None when absent (see :meth:`project`)."""
        return self.project((name,)).get(name)


def json_truth(value: Any) -> bool:
    """JMESPath's truth of a decoded JSON value: false, null, ``""``, ``[]`` and ``{}`` are false."""
    return not (value is None or value is False or value in ("", [], {}))


def project_value(
    value: Mapping[str, Any], names: Iterable[str], tested: Iterable[str] = ()
) -> dict[str, Any]:
    """:meth:`JSONObject.project` of an object already decoded: the named members, and those in ``tested`` as
    their truth."""
    found = {name: value[name] for name in names if name in value}
    found.update((name, json_truth(value[name])) for name in tested if name in value)
    return found


def _raw_true(raw: msgspec.Raw) -> bool:
    """The JSON truth of an encoded value, without decoding it."""
    text = bytes(raw).strip()
    if text in (b"null", b"false", b'""'):
        return False
    return text[:1] not in (b"[", b"{") or bool(text[1:-1].strip())


def _decode(text: str | bytes | msgspec.Raw) -> Any:
    try:
        return _VALUE.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None


def split_items(content: bytes, key: str) -> tuple[dict[str, Any], list[JSONObject]]:
    """Parse a page whose items are the list at member ``key``, keeping each item as the bytes it was sent.

    The journal keeps a document's raw payload exactly as the system sent it, and its version is the hash of
    those bytes: nothing is decoded or encoded again. The items are only split here, not decoded (see
    :class:`JSONObject`), once the list is checked to be valid UTF-8; the rest of the body is decoded, numbers
    with a fraction as :class:`~decimal.Decimal`.

    Returns:
        The body without ``key`` (decoded), and the items; no items when ``key`` is absent or null.

    Raises:
        ValueError: the body is not JSON, not an object, or ``key`` is not a list.

    Example:
        >>> body, items = split_items(b'{"items": [{"id": "a", "sum": 1.10}], "paging": {}}', "items")
        >>> body, items[0].text, items[0].get("sum")
        ({'paging': {}}, '{"id": "a", "sum": 1.10}', Decimal('1.10'))
    """
    try:
        members = _MEMBERS.decode(content)
        body = {name: _VALUE.decode(value) for name, value in members.items() if name != key}
        raw = members.get(key)
        texts = [] if raw is None or bytes(raw) == b"null" else _RAW_LIST.decode(raw)
        if raw is not None:  # checked once here: the items are kept as bytes, not decoded
            _valid_utf8(memoryview(raw))
        items = [JSONObject(bytes(text)) for text in texts]
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a JSON object with a list {key!r}: {exc}") from None
    return body, items


def _valid_utf8(data: bytes | memoryview) -> None:
    """Raise :class:`UnicodeDecodeError` unless ``data`` is valid UTF-8 (the decoded text is let go at once)."""
    codecs.utf_8_decode(data, "strict", True)


_DECIMAL_MARK = "\x00decimal:"
_DECIMAL_TOKEN = re.compile(r'"\\u0000decimal:(-?[0-9]+(?:\.[0-9]+)?)"')


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send {value} as JSON")
        return f"{_DECIMAL_MARK}{value:f}"
    if isinstance(value, Mapping):
        return {str(key): _to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def dumps_json(payload: Any) -> bytes:
    """Serialise to UTF-8 JSON, writing :class:`~decimal.Decimal` as an exact JSON number (``423.08``).

    The standard encoder only knows floats, so decimals travel as marked strings and are unquoted afterwards.
    """
    text = json.dumps(_to_jsonable(payload), ensure_ascii=False, separators=(",", ":"))
    return _DECIMAL_TOKEN.sub(r"\1", text).encode("utf-8")
