"""``rules`` commands: what the loyalty program expects for given documents.

``rules check --program P.yaml --input CASE.json`` reads a case ``{"documents": [...], "cumulative_spend_before":
"0"}`` and prints the expected postings as a JSON array in document order. A malformed case raises
:class:`~connector.errors.InputError` naming the field path (``documents[0].lines[1].amount``), which the CLI root
prints on stderr with exit 2; stdout then stays empty. Returns without a known sale and redemptions over the
program's limits are noted on stderr, so stdout is always pure JSON.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector.errors import InputError
from connector.model import Document, Money, Posting, Return, Sale
from connector.program import Program, load_program
from connector.rules import evaluate, redemption_violations

__all__ = ["app", "check"]

app = typer.Typer(help="Loyalty rules: the postings the program expects for documents.", no_args_is_help=True)

# Errors whose message does not show the offending value; the path alone would not say what was wrong.
_SHOW_INPUT = {"literal_error", "enum", "union_tag_invalid", "extra_forbidden"}


class _Case(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    documents: list[Document]
    cumulative_spend_before: Money = Field(default=Decimal("0"))


def _field_path(loc: tuple[Any, ...]) -> str:
    """``('documents', 0, 'sale', 'lines', 1, 'amount')`` -> ``documents[0].lines[1].amount``."""
    path = ""
    for position, part in enumerate(loc):
        if position >= 2 and loc[position - 2] == "documents" and part in ("sale", "return"):
            continue  # the discriminated union's tag, not a field of the input
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _describe(error: Any) -> str:
    loc: tuple[Any, ...] = error["loc"]
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc = (*loc, "type")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] in _SHOW_INPUT:
        message += f", got {error['input']!r}"
    return f"{_field_path(loc) or '(case)'}: {message}"


def _read_case(source: Path) -> _Case:
    try:
        text = sys.stdin.read() if str(source) == "-" else source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the case: {exc}", file=str(source)) from None
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", file=str(source)
        ) from None
    if not isinstance(data, dict):
        raise InputError('the case must be a JSON object {"documents": [...]}', file=str(source))
    try:
        return _Case.model_validate(data)
    except ValidationError as exc:
        raise InputError("; ".join(_describe(error) for error in exc.errors()), file=str(source)) from None


def _posting_json(posting: Posting) -> dict[str, Any]:
    def moment(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    document = posting.document
    return {
        "key": posting.key,
        "kind": posting.kind,
        "amount": f"{posting.amount:.2f}",
        "document": {"system": document.system, "kind": document.kind, "id": document.id}
        if document
        else None,
        "occurred_at": moment(posting.occurred_at),
        "available_at": moment(posting.available_at),
        "expires_at": moment(posting.expires_at),
        "status": posting.status,
    }


def _notes(program: Program, documents: list[Sale | Return], orphans: tuple[Return, ...]) -> list[str]:
    notes = [
        f"return_without_sale: {ret.ref} has no known original sale; it posts nothing" for ret in orphans
    ]
    for document in documents:
        if isinstance(document, Sale) and document.status == "posted":
            problems = redemption_violations(program, document)
            notes += [f"redemption_over_limit: {document.ref}: {problem}" for problem in problems]
    return notes


@app.command("check")
def check(
    program_path: Path = typer.Option(..., "--program", help="YAML file with a top-level program: key."),
    input_path: Path = typer.Option(..., "--input", help='Case JSON {"documents": [...]}; "-" reads stdin.'),
) -> None:
    """Print the postings the program expects for the documents of a case, as a JSON array."""
    program = load_program(program_path)
    case = _read_case(input_path)
    outcome = evaluate(program, case.documents, cumulative_spend_before=case.cumulative_spend_before)
    for note in _notes(program, case.documents, outcome.returns_without_sale):
        typer.echo(f"note: {note}", err=True)
    typer.echo(json.dumps([_posting_json(p) for p in outcome.postings], ensure_ascii=False, indent=2))
