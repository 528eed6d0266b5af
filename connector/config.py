"""``connector.yaml``: the systems, the routes between them, the reconciliations, the schedule (DESIGN.md §6).

Values may reference the environment as ``${NAME}`` or ``${NAME:-default}`` (``$${`` writes a literal ``${``),
unquoted even inside flow mappings, so secrets live in the environment, not in the file. Secret fields (``password``, ``token``, ``api_key``) are
:class:`~pydantic.SecretStr`: printing the config, ``--verbose`` logs and errors show ``**********``.
A relative SQLite ``state`` path is taken relative to the config file, so the state file sits beside it.

Validation errors are :class:`~connector.errors.ConfigError` naming the file, the key path and its line::

    connector.yaml: systems.onec.base_url (line 7): must start with http:// or https://
"""

from __future__ import annotations

import os
import re
from datetime import date, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from connector.errors import ConfigError
from connector.program import Program
from connector.yamlfile import key_path, line_of, read_yaml, substitute_env, validation_error

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ConnectorConfig",
    "ReconcileSpec",
    "Route",
    "ScheduleJob",
    "SyncSettings",
    "SystemConfig",
    "load_config",
    "parse_duration",
    "write_sample_config",
]

DEFAULT_CONFIG_PATH = Path("connector.yaml")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

M = TypeVar("M", bound=BaseModel)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, hide_input_in_errors=True)


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Moscow") from None
    return value


class RateLimit(_Section):
    """A request budget: at most ``requests`` per ``per_seconds``."""

    requests: int = Field(gt=0)
    per_seconds: float = Field(1.0, gt=0)


class Timeouts(_Section):
    """Connect and read timeouts in seconds; always set."""

    connect: float = Field(5.0, gt=0)
    read: float = Field(60.0, gt=0)


class SystemConfig(_Section):
    """One external system: which adapter speaks to it, where, with which credentials and mapping."""

    adapter: Literal["evotor", "onec", "crm"]
    base_url: str
    mapping: str | None = None
    mapping_params: dict[str, Any] = Field(
        default_factory=dict, description="values for the mapping's params: (bonus_app_ids, …)"
    )
    timezone: str = "Europe/Moscow"
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    api_key: SecretStr | None = None
    preset: str | None = Field(None, description="CRM preset: retailcrm, or generic with options.definition")
    protocol: Literal["odata", "soap"] = "odata"
    stores: tuple[str, ...] = Field((), description="only these stores; empty = all")
    rate_limit: RateLimit | None = None
    timeouts: Timeouts = Field(default_factory=Timeouts)
    options: dict[str, Any] = Field(default_factory=dict, description="adapter-specific settings")

    _zone = field_validator("timezone")(_check_zone)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if re.match(r"^https?://[^/]*@", value):
            raise ValueError("must not carry credentials; use user/password/token/api_key fields")
        return value.rstrip("/")


class Route(_Section):
    """Documents of ``documents`` kinds flow from system ``from`` to system ``to`` as ``write``."""

    from_: str = Field(alias="from")
    documents: tuple[Literal["sale", "return", "posting"], ...]
    to: str
    write: Literal["postings", "documents", "bonus_documents"]


class ReconcileSpec(_Section):
    """A nightly comparison: documents between ``left`` and ``right``, or documents against a ``ledger``."""

    name: str
    left: str | None = None
    right: str | None = None
    documents: str | None = None
    ledger: str | None = None
    tolerance: Decimal = Field(Decimal("0.01"), ge=0)

    @model_validator(mode="after")
    def _one_shape(self) -> ReconcileSpec:
        pair = self.left is not None and self.right is not None
        ledger = self.documents is not None and self.ledger is not None
        if pair == ledger:
            raise ValueError("give either left and right, or documents and ledger")
        return self

    @property
    def systems(self) -> tuple[str, ...]:
        return tuple(s for s in (self.left, self.right, self.documents, self.ledger) if s is not None)


def parse_duration(text: str) -> timedelta:
    """Parse ``30s``, ``5m``, ``2h`` or ``1d``.

    Example:
        >>> parse_duration("5m")
        datetime.timedelta(seconds=300)
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 2h or 1d")
    return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


class ScheduleJob(_Section):
    """A scheduled job: every interval or on a cron expression, running the listed commands."""

    every: str | None = None
    cron: str | None = None
    run: tuple[Literal["sync", "reconcile"], ...] = ("sync",)

    @model_validator(mode="after")
    def _one_trigger(self) -> ScheduleJob:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of every or cron")
        if self.every is not None:
            parse_duration(self.every)
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError(f"cron {self.cron!r} must have 5 fields: minute hour day month weekday")
        return self


class SyncSettings(_Section):
    """The ``sync:`` section: workers, pull windows and the retry policy of failed items.

    ``lookback`` re-reads that much before each (system, stream, store) watermark (late till uploads,
    back-dated 1C documents); a system not listed uses ``default_lookback``. Without a watermark a pull starts
    at ``start`` (a date) if set, else ``initial_window`` before now. A transient failure is retried after
    ``backoff`` × ``backoff_factor`` ** (attempts − 1), at most ``max_backoff``, up to ``max_attempts`` tries.
    """

    workers: int = Field(4, ge=1, le=64)
    default_lookback: str = "2d"
    lookback: dict[str, str] = Field(default_factory=dict, description="system name -> duration")
    initial_window: str = "7d"
    start: date | None = None
    max_attempts: int = Field(5, ge=1)
    backoff: str = "1m"
    backoff_factor: float = Field(2.0, ge=1)
    max_backoff: str = "6h"
    lease_seconds: int = Field(300, gt=0, description="how long a crashed worker's partition stays locked")

    @model_validator(mode="after")
    def _durations(self) -> SyncSettings:
        for text in (self.default_lookback, self.initial_window, self.backoff, self.max_backoff,
                     *self.lookback.values()):  # fmt: skip
            parse_duration(text)
        return self

    def lookback_for(self, system: str) -> timedelta:
        """The lookback window of ``system``."""
        return parse_duration(self.lookback.get(system, self.default_lookback))


class ConnectorConfig(_Section):
    """The whole ``connector.yaml``."""

    state: str = "sqlite:///connector.db"
    timezone: str = Field("Europe/Moscow", description="zone of the schedule and of reports")
    program: Program | None = None
    systems: dict[str, SystemConfig] = Field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    reconcile: tuple[ReconcileSpec, ...] = ()
    schedule: dict[str, ScheduleJob] = Field(default_factory=dict)
    sync: SyncSettings = Field(default_factory=SyncSettings)

    _zone = field_validator("timezone")(_check_zone)

    @field_validator("state")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must be sqlite:///FILE or postgresql+psycopg://USER@HOST/DB")
        return value


def _check_references(config: ConnectorConfig, source: Path, root: yaml.Node | None) -> None:
    """Routes and reconciliations may only name configured systems."""
    known = ", ".join(sorted(config.systems)) or "none"
    named: list[tuple[list[str | int], str]] = []
    for index, route in enumerate(config.routes):
        named += [(["routes", index, "from"], route.from_), (["routes", index, "to"], route.to)]
    for index, spec in enumerate(config.reconcile):
        for key in ("left", "right", "documents", "ledger"):
            if (name := getattr(spec, key)) is not None:
                named.append((["reconcile", index, key], name))
    for loc, name in named:
        if name not in config.systems:
            line = line_of(root, loc)
            where = f"{key_path(loc)}{f' (line {line})' if line else ''}"
            raise ConfigError(
                f"{source}: {where}: names system {name!r}, which is not under systems: (known: {known})"
            )


def _resolve_state(state: str, directory: Path) -> str:
    prefix = "sqlite:///"
    if state.startswith(prefix) and not state.startswith(prefix + "/") and state != prefix + ":memory:":
        return prefix + str((directory / state.removeprefix(prefix)).resolve())
    return state


def load_config(path: Path | None = None) -> ConnectorConfig:
    """Load and validate ``connector.yaml`` (``path``, else ``$LC_CONFIG``, else ./connector.yaml)."""
    path = path or Path(os.environ.get("LC_CONFIG", DEFAULT_CONFIG_PATH))
    if not path.exists():
        raise ConfigError(f"no config at {path}; write one with `loyalty-connector init`")
    document = read_yaml(path)
    if not isinstance(document.data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    try:
        config = ConnectorConfig.model_validate(substitute_env(document, document.data))
    except ValidationError as exc:
        raise validation_error(exc, document) from None
    _check_references(config, path, document.root)
    return config.model_copy(update={"state": _resolve_state(config.state, path.parent)})


def write_sample_config(path: Path, *, force: bool = False) -> Path:
    """Write the commented sample configuration to ``path``; refuses to overwrite unless ``force``."""
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")
    sample = resources.files("connector").joinpath("config_sample.yaml").read_text(encoding="utf-8")
    path.write_text(sample, encoding="utf-8")
    return path
