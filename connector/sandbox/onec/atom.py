"""Atom/XML, the format 1C answers in when a client does not ask for JSON (reference/onec.md §1.3).

Kept small: feeds and entries with ``m:properties``, typed ``d:`` elements, tabular sections as
``Collection(...)`` of ``d:element``, and the ``m:error`` body. Its main job is to make a client that forgot
``$format=json`` fail here the way it would fail against a real base.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from lxml import etree  # type: ignore[import-untyped]
from starlette.responses import Response

from connector.sandbox.onec.wire import Int64, format_datetime, format_decimal

__all__ = ["entry_response", "error", "feed_response"]

_ATOM = "http://www.w3.org/2005/Atom"
_D = "http://schemas.microsoft.com/ado/2007/08/dataservices"
_M = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
_NSMAP = {None: _ATOM, "d": _D, "m": _M}
_TYPE = "application/atom+xml;charset=utf-8"
_EPOCH = "0001-01-01T00:00:00Z"


def _text_and_type(value: Any) -> tuple[str, str | None]:
    if isinstance(value, bool):
        return ("true" if value else "false"), "Edm.Boolean"
    if isinstance(value, Int64):
        return str(int(value)), "Edm.Int64"
    if isinstance(value, int):
        return str(value), "Edm.Int32"
    if isinstance(value, Decimal):
        return format_decimal(value), "Edm.Double"
    if isinstance(value, datetime):
        return format_datetime(value), "Edm.DateTime"
    return str(value), None


def _properties(parent: etree._Element, row: dict[str, Any], select: tuple[str, ...] | None) -> None:
    for name, value in row.items():
        if select is not None and name not in select:
            continue
        element = etree.SubElement(parent, f"{{{_D}}}{name}")
        if isinstance(value, list):
            element.set(f"{{{_M}}}type", "Collection")
            for line in value:
                _properties(etree.SubElement(element, f"{{{_D}}}element"), line, None)
            continue
        text, edm_type = _text_and_type(value)
        element.text = text
        if edm_type is not None:
            element.set(f"{{{_M}}}type", edm_type)


def _entry(root: str, name: str, row: dict[str, Any], select: tuple[str, ...] | None) -> etree._Element:
    entry = etree.Element(f"{{{_ATOM}}}entry", nsmap=_NSMAP)
    key = row.get("Ref_Key", "")
    etree.SubElement(entry, f"{{{_ATOM}}}id").text = f"{root}/{name}(guid'{key}')"
    category = etree.SubElement(entry, f"{{{_ATOM}}}category")
    category.set("term", f"StandardODATA.{name}")
    category.set("scheme", "http://schemas.microsoft.com/ado/2007/08/dataservices/scheme")
    etree.SubElement(entry, f"{{{_ATOM}}}title").set("type", "text")
    etree.SubElement(entry, f"{{{_ATOM}}}updated").text = _EPOCH
    etree.SubElement(etree.SubElement(entry, f"{{{_ATOM}}}author"), f"{{{_ATOM}}}name")
    content = etree.SubElement(entry, f"{{{_ATOM}}}content")
    content.set("type", "application/xml")
    _properties(etree.SubElement(content, f"{{{_M}}}properties"), row, select)
    return entry


def _bytes(element: etree._Element) -> bytes:
    return bytes(etree.tostring(element, xml_declaration=True, encoding="UTF-8"))


def feed_response(
    root: str, name: str, rows: list[dict[str, Any]], select: tuple[str, ...] | None, count: int | None
) -> Response:
    """A collection as an Atom feed."""
    feed = etree.Element(f"{{{_ATOM}}}feed", nsmap=_NSMAP)
    feed.set("{http://www.w3.org/XML/1998/namespace}base", f"{root}/")
    etree.SubElement(feed, f"{{{_ATOM}}}id").text = f"{root}/{name}"
    title = etree.SubElement(feed, f"{{{_ATOM}}}title")
    title.set("type", "text")
    title.text = name
    etree.SubElement(feed, f"{{{_ATOM}}}updated").text = _EPOCH
    if count is not None:
        etree.SubElement(feed, f"{{{_M}}}count").text = str(count)
    for row in rows:
        feed.append(_entry(root, name, row, select))
    return Response(_bytes(feed), media_type=_TYPE)


def entry_response(
    root: str,
    name: str,
    row: dict[str, Any],
    select: tuple[str, ...] | None,
    status: int,
    headers: dict[str, str],
) -> Response:
    """One entity as an Atom entry."""
    return Response(
        _bytes(_entry(root, name, row, select)), status_code=status, media_type=_TYPE, headers=headers
    )


def error(code: str, message: str) -> bytes:
    """The ``m:error`` body 1C writes in XML mode."""
    body = etree.Element(f"{{{_M}}}error", nsmap={"m": _M})
    etree.SubElement(body, f"{{{_M}}}code").text = code
    text = etree.SubElement(body, f"{{{_M}}}message")
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "ru")
    text.text = message
    return _bytes(body)
