"""The loyalty program: its configuration (DESIGN.md §3) and how it is read from YAML.

The program is data an integrator writes under a top-level ``program:`` key, in its own file or inside
``connector.yaml``. :func:`load_program` reads it with every YAML float kept as :class:`~decimal.Decimal`
(``percent: 7.5`` never passes through binary floating point) and turns validation failures into one
:class:`~connector.errors.ConfigError` naming the file, the key path (``program.accrual.tiers[1].percent``) and
the line. The rules that turn documents into expected postings live in :mod:`connector.rules`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connector.errors import ConfigError
from connector.model import Money, Points
from connector.yamlfile import DecimalLoader, child_node, read_yaml, substitute_env, validation_error

__all__ = [
    "Accrual",
    "DecimalLoader",
    "Events",
    "Program",
    "Promotion",
    "Redemption",
    "Rounding",
    "Tier",
    "load_program",
]

Rounding = Literal["floor", "half_up", "none"]
"""``floor`` and ``half_up`` round to whole points; ``none`` keeps 2 decimals (half-up)."""


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Tier(_Config):
    """A spend tier: from ``from_spend`` of cumulative spend, accrue ``percent``."""

    name: str
    from_spend: Money
    percent: Decimal = Field(ge=0)


class Promotion(_Config):
    """A dated multiplier of the accrual rate; ``from`` and ``to`` are inclusive business dates."""

    name: str
    from_: date = Field(alias="from")
    to: date
    multiplier: Decimal = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Promotion:
        if self.to < self.from_:
            raise ValueError(f"promotion {self.name!r} ends ({self.to}) before it starts ({self.from_})")
        return self


class Accrual(_Config):
    """How points are earned."""

    percent: Decimal = Field(Decimal("0"), ge=0)
    tiers: tuple[Tier, ...] = ()
    categories: dict[str, Decimal] = Field(
        default_factory=dict, description="per-category percent; 0 excludes"
    )
    fixed_per_purchase: Points = Field(Decimal("0"), ge=0)
    min_purchase: Money = Decimal("0")
    promotions: tuple[Promotion, ...] = ()
    rounding: Rounding = "floor"

    @field_validator("tiers")
    @classmethod
    def _tiers_ascending(cls, tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
        # "the highest tier whose from_spend <= spend" is only unambiguous with distinct thresholds; asking for
        # ascending order as well keeps the file readable as a ladder.
        for lower, upper in pairwise(tiers):
            if upper.from_spend <= lower.from_spend:
                raise ValueError(
                    f"tiers must be in ascending from_spend: {upper.name!r} ({upper.from_spend}) "
                    f"follows {lower.name!r} ({lower.from_spend})"
                )
        return tiers

    @field_validator("categories")
    @classmethod
    def _percents_not_negative(cls, categories: dict[str, Decimal]) -> dict[str, Decimal]:
        negative = sorted(name for name, percent in categories.items() if percent < 0)
        if negative:
            raise ValueError(f"category percent must be >= 0 (use 0 to exclude): {', '.join(negative)}")
        return categories


class Redemption(_Config):
    """Limits on paying with points, checked by reconciliation (``redemption_over_limit``)."""

    max_share_percent: Decimal = Field(Decimal("100"), ge=0, le=100)
    min_points: Decimal = Field(Decimal("0"), ge=0)
    excluded_categories: tuple[str, ...] = ()


class Events(_Config):
    """Points granted on customer events."""

    welcome: Decimal = Decimal("0")
    birthday: Decimal = Decimal("0")
    referral: Decimal = Decimal("0")


class Program(_Config):
    """A loyalty program as configured under ``program:`` in YAML."""

    name: str
    timezone: str = "Europe/Moscow"
    point_value: Decimal = Field(Decimal("1.00"), gt=0, description="roubles per point")
    accrual: Accrual = Field(default_factory=Accrual)
    activation_delay_days: int = Field(0, ge=0)
    expiry_days: int = Field(0, ge=0, description="counted from available_at; 0 = never")
    redemption: Redemption = Field(default_factory=Redemption)
    events: Events = Field(default_factory=Events)

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not an IANA time zone (e.g. Europe/Moscow)") from None
        return name

    @property
    def zone(self) -> ZoneInfo:
        """The program's time zone, in which accruals become available and expire at midnight."""
        return ZoneInfo(self.timezone)


def load_program(path: Path) -> Program:
    """Read the program from the top-level ``program:`` key of a YAML file.

    Args:
        path: a program file, or ``connector.yaml`` itself.

    Returns:
        The validated program.

    Raises:
        ConfigError: the file cannot be read or parsed, has no ``program:`` key, or the program is invalid; the
            error names the file, the key path and the line.

    Example:
        >>> load_program(Path("connector.yaml")).accrual.rounding  # doctest: +SKIP
        'floor'
    """
    document = read_yaml(path)
    node = child_node(document.root, "program")
    if not isinstance(document.data, dict) or node is None:
        raise ConfigError(f"{path}: no top-level 'program:' key")
    try:
        return Program.model_validate(substitute_env(document, document.data["program"], "program"))
    except ValidationError as exc:
        raise validation_error(exc, document, prefix=("program",)) from None
