"""Canonical documents and postings: the one loyalty model every system is mapped to and from.

Money and points are :class:`~decimal.Decimal`, never ``float``. In JSON they are strings with exactly two
decimals (``"423.08"``); quantities are strings with three (``"2.000"``). A value with more decimals than its
kind allows is refused rather than rounded, so a JSON → model → JSON round trip is exact. Datetimes must carry
an offset; the source offset is kept.

A customer's ledger identity (``Posting.account``) is the phone in E.164 (``+79161234567``), else ``card:`` and
the card number (``card:2000000012345``).
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import phonenumbers
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    WithJsonSchema,
    field_validator,
    model_validator,
)

__all__ = [
    "DOCUMENT_ADAPTER",
    "POSTING_KINDS",
    "Customer",
    "DocRef",
    "Document",
    "Fiscal",
    "Line",
    "Money",
    "Payment",
    "Points",
    "Posting",
    "PostingKind",
    "Quantity",
    "Return",
    "Sale",
    "canonical_json_schema",
    "dump_document",
    "dump_posting",
    "normalize_phone",
    "parse_document",
]

_CENTS = Decimal("0.01")


def _decimal_parser(places: int) -> BeforeValidator:
    """Accept str, int or Decimal (never float or bool) with at most ``places`` decimals."""

    def parse(value: Any) -> Decimal:
        if isinstance(value, bool | float):
            raise ValueError(f"must be a decimal string or integer, not {type(value).__name__}")
        if isinstance(value, int):
            return Decimal(value)
        if isinstance(value, str | Decimal):
            try:
                number = Decimal(value.strip() if isinstance(value, str) else value)
            except InvalidOperation:
                raise ValueError(f"{value!r} is not a decimal number") from None
            if not number.is_finite():
                raise ValueError(f"{value!r} is not a finite number")
            exponent = number.as_tuple().exponent
            if isinstance(exponent, int) and exponent < -places:
                raise ValueError(f"{value!r} has more than {places} decimal places")
            return number
        raise ValueError(f"must be a decimal string, not {type(value).__name__}")

    return BeforeValidator(parse)


def _decimal_json(places: int, description: str) -> tuple[PlainSerializer, WithJsonSchema]:
    pattern = rf"^-?\d+(\.\d{{1,{places}}})?$"
    return (
        PlainSerializer(lambda value: f"{value:.{places}f}", return_type=str, when_used="json"),
        WithJsonSchema({"type": "string", "pattern": pattern, "description": description}),
    )


Money = Annotated[Decimal, _decimal_parser(2), *_decimal_json(2, "money, roubles, 2 decimals")]
"""Roubles; JSON ``"423.08"``."""
Points = Annotated[Decimal, _decimal_parser(2), *_decimal_json(2, "points, signed, 2 decimals")]
"""Bonus points, signed; JSON ``"-150.00"``."""
Quantity = Annotated[Decimal, _decimal_parser(3), *_decimal_json(3, "quantity, 3 decimals")]
"""Units or kilograms; JSON ``"2.000"``."""

PostingKind = Literal[
    "accrual",
    "redemption",
    "accrual_reversal",
    "redemption_refund",
    "expiry",
    "adjustment",
    "welcome",
    "birthday",
    "referral",
]
POSTING_KINDS: tuple[str, ...] = PostingKind.__args__  # type: ignore[attr-defined]


class _Frozen(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        str_strip_whitespace=True,
        validate_by_name=True,
        serialize_by_alias=True,
        hide_input_in_errors=True,  # errors must not echo phones or other personal data
    )


class DocRef(_Frozen):
    """Where a document lives: the configured system name, the kind of document there, and its id."""

    system: str = Field(min_length=1)
    kind: str = Field(min_length=1, description="receipt, cheque, bonus_operation, …")
    id: str = Field(min_length=1)

    def __str__(self) -> str:
        return f"{self.system}:{self.kind}:{self.id}"


def normalize_phone(raw: str | int, region: str = "RU") -> str:
    """Return the phone in E.164, reading national forms in ``region``.

    Example:
        >>> normalize_phone("8 (916) 123-45-67")
        '+79161234567'
    """
    text = str(raw).strip()
    if text.isdigit() and len(text) == 11 and text[0] in "78":
        text = "+7" + text[1:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{_mask(text)} is not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"{_mask(text)} is not a possible phone number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _mask(phone: str) -> str:
    return phone[:-4] + "****" if len(phone) > 4 else "****"


class Customer(_Frozen):
    """A loyalty customer as a document names them; identified by phone, else card."""

    phone: str | None = None
    card: str | None = None
    email: str | None = None
    name: str | None = None
    refs: dict[str, str] = Field(default_factory=dict, description="the customer's id in each system")

    @field_validator("phone", mode="before")
    @classmethod
    def _e164(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        if isinstance(value, str | int) and not isinstance(value, bool):
            return normalize_phone(value)
        return value

    @property
    def account(self) -> str | None:
        """The ledger identity: E.164 phone, else ``card:<number>``, else None."""
        if self.phone:
            return self.phone
        if self.card:
            return f"card:{self.card}"
        return None


class Line(_Frozen):
    """One receipt line. ``amount`` is after discounts and includes the part paid with points."""

    line_no: int = Field(ge=1)
    sku: str | None = None
    name: str | None = None
    category: str | None = None
    quantity: Quantity
    price: Money
    amount: Money = Field(description="value after discounts; the part paid with points is inside it")
    discount: Money = Decimal("0.00")
    bonus_redeemed: Money = Field(
        Decimal("0.00"), description="the part of amount paid with points, in money"
    )

    @model_validator(mode="after")
    def _redeemed_within_amount(self) -> Line:
        if self.bonus_redeemed < 0 or self.bonus_redeemed > self.amount:
            raise ValueError(
                f"bonus_redeemed {self.bonus_redeemed} must be between 0 and amount {self.amount}"
            )
        return self


class Payment(_Frozen):
    """One means of payment of a receipt."""

    method: Literal["cash", "card", "bonus", "certificate", "other"]
    amount: Money


class Fiscal(_Frozen):
    """Fiscal identifiers printed on the receipt: fiscal drive number, document number, fiscal sign."""

    fn: str
    fd: str
    fp: str


class _Receipt(_Frozen):
    ref: DocRef
    number: str
    store: str
    register_: str | None = Field(None, alias="register", description="till / cash register id")
    occurred_at: AwareDatetime
    business_date: date = Field(description="local calendar date in the store's zone")
    customer: Customer | None = None
    lines: tuple[Line, ...]
    payments: tuple[Payment, ...] = ()
    total: Money = Field(description="sum of line amounts")
    discount: Money = Decimal("0.00")
    bonus_redeemed: Money = Decimal("0.00")
    bonus_accrued: Points | None = Field(None, description="as the source states it, or null")
    fiscal: Fiscal | None = None
    status: Literal["posted", "draft", "deleted"] = "posted"
    version: str | None = None

    @model_validator(mode="after")
    def _totals_agree(self) -> _Receipt:
        line_sum = sum((line.amount for line in self.lines), Decimal(0))
        if line_sum != self.total:
            raise ValueError(f"total {self.total} is not the sum of line amounts {line_sum}")
        redeemed = sum((line.bonus_redeemed for line in self.lines), Decimal(0))
        if redeemed and redeemed != self.bonus_redeemed:
            raise ValueError(
                f"bonus_redeemed {self.bonus_redeemed} differs from the sum over lines {redeemed}"
            )
        if self.bonus_redeemed < 0 or self.bonus_redeemed > self.total:
            raise ValueError(f"bonus_redeemed {self.bonus_redeemed} must be between 0 and total {self.total}")
        if len({line.line_no for line in self.lines}) != len(self.lines):
            raise ValueError("line_no values must be unique")
        return self

    @property
    def account(self) -> str | None:
        """The customer's ledger identity, or None for an anonymous document."""
        return self.customer.account if self.customer else None


class Sale(_Receipt):
    """A sale receipt."""

    type: Literal["sale"] = "sale"


class Return(_Receipt):
    """A return receipt; amounts are positive. ``original`` is the sale it returns, when known."""

    type: Literal["return"] = "return"
    original: DocRef | None = None
    original_number: str | None = None


Document = Annotated[Sale | Return, Field(discriminator="type")]
DOCUMENT_ADAPTER: TypeAdapter[Sale | Return] = TypeAdapter(Document)


class Posting(_Frozen):
    """A movement of points on a customer's account. Immutable: a correction is a new posting."""

    key: str = Field(min_length=1, description="idempotency key: {source system}:{source doc id}:{kind}")
    account: str = Field(min_length=1, description="E.164 phone, else card:<number>")
    kind: PostingKind
    amount: Points = Field(description="signed points")
    document: DocRef | None = None
    occurred_at: AwareDatetime
    available_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    status: Literal["pending", "active", "cancelled"]
    ref: DocRef | None = Field(None, description="where it was read from; null for an expected posting")


def parse_document(data: str | bytes | dict[str, Any]) -> Sale | Return:
    """Validate a canonical sale or return from JSON text or a decoded object (numbers kept as Decimal)."""
    if isinstance(data, str | bytes):
        data = json.loads(data, parse_float=Decimal)
    return DOCUMENT_ADAPTER.validate_python(data)


def dump_document(document: Sale | Return) -> dict[str, Any]:
    """The canonical JSON object of a document (money as strings)."""
    return document.model_dump(mode="json")


def dump_posting(posting: Posting) -> dict[str, Any]:
    """The canonical JSON object of a posting (points as strings)."""
    return posting.model_dump(mode="json")


def canonical_json_schema() -> dict[str, Any]:
    """JSON Schema of canonical documents (sale | return) and postings, as ``loyalty-connector schema`` prints."""
    documents = DOCUMENT_ADAPTER.json_schema(ref_template="#/$defs/{model}")
    posting = Posting.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = {**documents.pop("$defs", {}), **posting.pop("$defs", {})}
    defs["Document"] = documents
    defs["Posting"] = posting
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "loyalty-connector canonical model",
        "oneOf": [{"$ref": "#/$defs/Document"}, {"$ref": "#/$defs/Posting"}],
        "$defs": defs,
    }
