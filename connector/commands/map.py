"""``map``: turn raw payloads from a system into canonical documents or postings with a mapping (DESIGN §5).

The input is one raw document, a JSON array of them, or a raw API page as the system returns it: Evotor
``{"items": […]}``, 1C OData ``{"odata.metadata": "…#Document_ЧекККМ", "value": […]}`` (the entity set is read
from ``odata.metadata``; ``--entity`` names it when the payload does not carry it) or RetailCRM
``{"bonusOperations": […]}``. Each mapped item is printed as one canonical JSON object per line. An item that
cannot be mapped is reported on stderr with its index, field path and reason while the others are still printed,
and the exit code is 1. Unreadable input, catalogs or mapping raise :class:`~connector.errors.InputError` /
:class:`~connector.errors.ConfigError` (one line, exit 2).

Example:
    loyalty-connector map --mapping onec/ut11 --catalogs catalogs.json --input page.json
    loyalty-connector map --mapping evotor/v2 --param 'bonus_app_ids=["<app uuid>"]' --input documents.json
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer

from connector.errors import InputError
from connector.mapping import MapResult, load_mapping
from connector.model import Posting, dump_document, dump_posting

__all__ = ["map_command", "split_payload"]

# Keys under which an API page carries its items, per system.
_PAGE_KEYS = ("items", "value", "bonusOperations")


def _read_json(source: Path, what: str) -> Any:
    try:
        text = sys.stdin.read() if str(source) == "-" else source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the {what}: {exc}", file=str(source)) from None
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", file=str(source)
        ) from None


def _entity_of(payload: dict[str, Any]) -> str | None:
    metadata = payload.get("odata.metadata")
    if not isinstance(metadata, str) or "#" not in metadata:
        return None
    return metadata.split("#", 1)[1].split("/", 1)[0] or None


def split_payload(payload: Any) -> tuple[list[Any], str | None]:
    """The raw items of an input and the OData entity set it names, if any.

    Example:
        >>> split_payload({"odata.metadata": "http://h/odata/standard.odata/$metadata#Document_ЧекККМ", "value": []})
        ([], 'Document_ЧекККМ')
    """
    if isinstance(payload, list):
        return payload, None
    if not isinstance(payload, dict):
        raise InputError(f"the input must be a JSON object or array, not {type(payload).__name__}")
    for key in _PAGE_KEYS:
        if isinstance(payload.get(key), list):
            return payload[key], _entity_of(payload)
    document = {key: value for key, value in payload.items() if not key.startswith("odata.")}
    return [document], _entity_of(payload)


def _catalogs(source: Path | None) -> dict[str, Any]:
    if source is None:
        return {}
    data = _read_json(source, "catalogs")
    if not isinstance(data, dict) or not all(isinstance(value, dict) for value in data.values()):
        raise InputError('catalogs must be a JSON object {"name": {"key": entry}}', file=str(source))
    return data


def _params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, separator, text = pair.partition("=")
        if not separator or not name.strip():
            raise InputError(f"--param takes NAME=VALUE, not {pair!r}")
        try:
            params[name.strip()] = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError:
            params[name.strip()] = text  # a bare word is a string: --param timezone=Europe/Samara
    return params


def _report(result: MapResult) -> str:
    error = result.error
    assert error is not None
    context = error.context
    where = f"document #{result.index}"
    if context.get("document"):
        where += f" ({context['document']})"
    field = f" field {context['field']}:" if context.get("field") else ""
    source = f" [source: {context['source']}]" if context.get("source") else ""
    return f"error: {where}:{field} {error.message}{source}"


def _output(value: Any) -> str:
    data = dump_posting(value) if isinstance(value, Posting) else dump_document(value)
    return json.dumps(data, ensure_ascii=False)


def map_command(
    mapping: str = typer.Option(
        ..., "--mapping", help="Shipped mapping name (evotor/v2, onec/ut11, …) or a path."
    ),
    input_path: Path = typer.Option(
        ..., "--input", help='Raw document, array or API page (JSON); "-" reads stdin.'
    ),
    entity: str | None = typer.Option(
        None, "--entity", help="1C entity set when the payload does not name it."
    ),
    system: str | None = typer.Option(
        None, "--system", help="Configured system name (default: the mapping's)."
    ),
    catalogs: Path | None = typer.Option(
        None, "--catalogs", help='Lookups JSON {"partners": {…}, "stores": {…}}.'
    ),
    param: list[str] = typer.Option(
        [],
        "--param",
        help='Override a mapping parameter: NAME=VALUE (VALUE as JSON, e.g. bonus_app_ids=["…"]).',
    ),
) -> None:
    """Map raw payloads to canonical documents or postings, one JSON object per line."""
    loaded = load_mapping(mapping, params=_params(param))
    lookups = _catalogs(catalogs)
    items, named = split_payload(_read_json(input_path, "input"))
    if entity and named and entity != named:
        raise InputError(f"the payload is {named} but --entity says {entity}", file=str(input_path))
    failed = 0
    for result in loaded.map_many(items, system=system, entity=named or entity, catalogs=lookups):
        if result.ok:
            typer.echo(_output(result.value))
        else:
            failed += 1
            typer.echo(_report(result), err=True)
    if failed:
        typer.echo(f"{failed} of {len(items)} document(s) could not be mapped", err=True)
        raise typer.Exit(1)
