"""The loyalty program: configuration (DESIGN.md §3) and the rules that turn documents into expected postings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connector.model import Money

__all__ = [
    "Accrual",
    "Events",
    "Program",
    "Promotion",
    "Redemption",
    "Tier",
]


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
    categories: dict[str, Decimal] = Field(default_factory=dict, description="per-category percent; 0 excludes")
    fixed_per_purchase: Decimal = Field(Decimal("0"), ge=0)
    min_purchase: Money = Decimal("0")
    promotions: tuple[Promotion, ...] = ()
    rounding: Literal["floor", "half_up", "none"] = "floor"


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
