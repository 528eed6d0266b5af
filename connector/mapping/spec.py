"""The mapping file schema: what an integrator may write in ``mappings/**.yaml``, validated when loaded.

A file maps one kind of raw document to one canonical type::

    system: evotor                      # the default system name (DocRef.system, posting keys)
    produces: receipt                   # receipt (a sale, or a return when return_when holds) | posting
    select: {entity: [Document_ЧекККМ], when: "type == 'SELL'"}   # which raw documents this file maps
    params: {timezone: Europe/Moscow}   # named values, overridable when loading: param('x'), $x
    vars: {positions: "unwrap(body.positions, 'position')"}       # per-document values: var('positions')
    ref: {kind: {value: receipt}, id: id}                          # the source DocRef; its id is the external id
    return_when: "type == 'PAYBACK'"
    fields: {number: …, store: …, occurred_at: …}                  # canonical header fields
    customer: {phone: …, card: …, ref: …}
    lines: {source: "var('positions')", fields: {line_no: …, amount: …}}
    points: {receipt: …, line: …, line_discount: …}

A *field spec* is a JMESPath string, or a mapping with exactly one source — ``path`` (JMESPath), ``value``
(a constant), ``template`` (``"{Recorder}:{LineNumber}"``; ``{$kind}`` is a field already mapped, ``$system``,
``$entity`` or a parameter), ``first`` (the first non-null of several specs), ``cases`` (specs each with a
``when`` predicate; one without ``when`` is the fallback) — plus ``transforms`` and ``default``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from jmespath.parser import ParsedResult
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from connector.mapping.functions import compile_expression
from connector.mapping.transforms import Transform, parse_transform

__all__ = [
    "DocRefSpec",
    "DocumentSpec",
    "Expr",
    "FieldSpec",
    "ListSpec",
    "PointsSpec",
    "PostingSpec",
    "ReceiptSpec",
    "Select",
]

Expr = Annotated[ParsedResult, BeforeValidator(compile_expression)]
"""A compiled JMESPath expression (its text is ``.expression``)."""

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")

_SOURCES = ("path", "value", "template", "first", "cases")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def _template_parts(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    for match in _PLACEHOLDER.finditer(text):
        name = match.group(1)
        if not name.startswith("$"):
            compile_expression(name)
    return text


def _field_shorthand(data: Any) -> Any:
    if isinstance(data, str):
        return {"path": data}
    if not isinstance(data, dict):
        raise ValueError(f"a field is a JMESPath string or a mapping with one of {', '.join(_SOURCES)}")
    given = [key for key in _SOURCES if key in data]
    if len(given) != 1:
        found = ", ".join(given) or "none"
        raise ValueError(f"a field needs exactly one of {', '.join(_SOURCES)} (found: {found})")
    return data


class FieldSpec(_Spec):
    """Where one canonical value comes from and how it is transformed."""

    path: Expr | None = None
    value: Any = None
    template: Annotated[str | None, BeforeValidator(_template_parts)] = None
    first: list[FieldSpec] | None = None
    cases: list[Case] | None = None
    transforms: list[Annotated[Transform, BeforeValidator(parse_transform)]] = Field(default_factory=list)
    default: Any = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return _field_shorthand(data)

    @property
    def source(self) -> str:
        """The source text, for error evidence."""
        if self.path is not None:
            return str(self.path.expression)
        if self.template is not None:
            return self.template
        if self.first is not None:
            return " | ".join(spec.source for spec in self.first)
        if self.cases is not None:
            return "cases"
        return "value"


class Case(FieldSpec):
    """A field spec used when its ``when`` predicate holds (or always, without ``when``)."""

    when: Expr | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict):
            rest = {key: value for key, value in data.items() if key != "when"}
            checked = _field_shorthand(rest)
            return {**checked, "when": data["when"]} if "when" in data else checked
        return _field_shorthand(data)


FieldSpec.model_rebuild()


class DocRefSpec(_Spec):
    """A document reference; ``system`` defaults to the configured system name. Null when ``id`` is null."""

    system: FieldSpec | None = None
    kind: FieldSpec
    id: FieldSpec


class Select(_Spec):
    """Which raw documents a file maps.

    When the entity set is known (``odata.metadata`` or ``--entity``) and the file lists entities, the entity
    decides; otherwise the ``when`` predicate on the raw document does (no predicate: every document).
    """

    entity: list[str] = Field(default_factory=list)
    when: Expr | None = None


class ListSpec(_Spec):
    """Rows of a document (lines, payments): a source array, an optional wrapper key, per-row fields."""

    source: Expr
    unwrap: str | None = None
    when: Expr | None = None
    fields: dict[str, FieldSpec]


_LineField = Literal[
    "line_no", "sku", "name", "category", "quantity", "price", "amount", "discount", "bonus_redeemed"
]
_PaymentField = Literal["method", "amount"]


class LineSpec(ListSpec):
    """Receipt lines; ``line_no`` defaults to the row's position (1-based)."""

    fields: dict[_LineField, FieldSpec]  # type: ignore[assignment]


class PaymentSpec(ListSpec):
    """Receipt payments; rows whose amount maps to zero or null are left out."""

    fields: dict[_PaymentField, FieldSpec]  # type: ignore[assignment]


class PointsSpec(_Spec):
    """Money paid with points (DESIGN §2: a means of payment, inside line amounts).

    Attributes:
        receipt: receipt-level money paid with points when the source gives no split per line; lines keep
            ``bonus_redeemed`` zero and the rules engine spreads it.
        line: per line (on the row), money paid with points that is already inside the line's amount.
        line_discount: per line, points the source booked as a *discount*: added back to the line's amount,
            taken off its discount, and counted as its ``bonus_redeemed``.
    """

    receipt: FieldSpec | None = None
    line: FieldSpec | None = None
    line_discount: FieldSpec | None = None


_Header = Literal[
    "number",
    "store",
    "register",
    "occurred_at",
    "business_date",
    "discount",
    "bonus_accrued",
    "status",
    "version",
    "original_number",
]
_CustomerField = Literal["phone", "card", "email", "name", "ref"]
_FiscalField = Literal["fn", "fd", "fp"]
_PostingField = Literal[
    "key", "account", "kind", "amount", "occurred_at", "available_at", "expires_at", "status"
]


class _DocumentBase(_Spec):
    system: str = Field(min_length=1)
    description: str = ""
    select: Select = Field(default_factory=Select)
    params: dict[str, Any] = Field(default_factory=dict)
    vars: dict[str, Expr] = Field(default_factory=dict)


class ReceiptSpec(_DocumentBase):
    """A file producing canonical sales and returns."""

    produces: Literal["receipt"]
    ref: DocRefSpec
    return_when: Expr | bool = False
    fields: dict[_Header, FieldSpec]
    original: DocRefSpec | None = None
    customer: dict[_CustomerField, FieldSpec] = Field(default_factory=dict)
    fiscal: dict[_FiscalField, FieldSpec] | None = None
    lines: LineSpec
    payments: PaymentSpec | None = None
    points: PointsSpec = Field(default_factory=PointsSpec)


class PostingSpec(_DocumentBase):
    """A file producing canonical postings; ``key`` defaults to ``{system}:{document id}:{kind}``."""

    produces: Literal["posting"]
    ref: DocRefSpec | None = None
    document: DocRefSpec | None = None
    fields: dict[_PostingField, FieldSpec]


DocumentSpec = Annotated[ReceiptSpec | PostingSpec, Field(discriminator="produces")]
"""One mapping file."""
