"""The declarative mapping engine: a YAML mapping + a raw payload → canonical documents and postings (DESIGN §5).

A mapping is data an integrator edits without Python. Shipped mappings live in ``mappings/`` (package data), one
directory per system and configuration with one file per document kind:

==========================  =====================================================================
``evotor/v2``               Evotor REST v2 ``SELL``/``PAYBACK`` (flat and ``{"position": …}`` arrays)
``onec/ut11``               1C УТ 11 / КА 2 / ERP: ``ЧекККМ``, ``ЧекККМВозврат``, bonus register rows,
                            ``НачислениеИСписаниеБонусныхБаллов``
``onec/retail2``            1C Розница 2: ``ЧекККМ`` with ``ВидОперации``
``crm/retailcrm``           RetailCRM loyalty bonus operations → postings
``crm/generic-example``     a commented generic REST CRM operation → posting
==========================  =====================================================================

The file schema is in :mod:`connector.mapping.spec`, the transforms in :mod:`connector.mapping.transforms`,
the extra JMESPath functions in :mod:`connector.mapping.functions`.

Catalogs (``catalogs=``; ``map --catalogs FILE``) are lookups read once per run, by catalog name then key (GUID
keys in lower case, as 1C writes them — a GUID in upper case still finds them; a scalar entry ``"X"`` stands for
``{"id": "X"}``)::

    {"partners": {"<Партнер_Key>": {"phone": "+79161234567", "card": "2000000012345", "name": "…"}},
     "cards":    {"<КартаЛояльности_Key>": {"number": "2000000012345", "phone": "+79161234567"}},
     "stores":   {"<Склад_Key or Магазин_Key>": {"id": "<canonical store id (the Evotor store_id)>",
                                                "timezone": "Europe/Samara"}},   # or just "<store id>"
     "products": {"<Номенклатура_Key or Evotor product_id>": {"sku": "A-001", "category": "dairy", "name": "…"}},
     "accounts": {"<CRM loyalty account id>": {"phone": "+79161234567", "card": "…"}},
     "payment_kinds": {"<ВидОплаты_Key>": {"type": "Бонусы"}}}

Example:
    >>> mapping = load_mapping("onec/ut11", params={"timezone": "Asia/Yekaterinburg"})
    >>> for result in mapping.map_many(page["value"], system="onec", catalogs=catalogs):
    ...     print(result.index, result.value or result.error)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.errors import ConfigError
from connector.mapping.engine import Canonical, Mapping, MapResult
from connector.mapping.loader import load_spec, resolve, shipped_mappings
from connector.mapping.transforms import TRANSFORM_NAMES

if TYPE_CHECKING:
    from connector.config import SystemConfig

__all__ = [
    "TRANSFORM_NAMES",
    "Canonical",
    "MapResult",
    "Mapping",
    "load_mapping",
    "load_system_mapping",
    "shipped_mappings",
]


def load_mapping(
    name_or_path: str | Path, *, params: dict[str, Any] | None = None, defaults: dict[str, Any] | None = None
) -> Mapping:
    """Load a shipped mapping by name (``evotor/v2``) or a custom file or directory by path.

    Every file is validated now — its schema, every JMESPath expression and every transform — so a typo fails
    at start-up, not on the first document.

    Args:
        name_or_path: a shipped name (``onec/ut11``) or a path to a ``.yaml`` file or a directory of them.
        params: overrides of the files' ``params:`` (e.g. ``{"timezone": "Europe/Samara"}``,
            ``{"bonus_app_ids": ["…"]}``); a name no file declares is an error.
        defaults: values applied only to parameters the mapping declares (a system's ``timezone``).

    Raises:
        ConfigError: naming the file, the YAML line and the key of the first problem.
    """
    files = resolve(str(name_or_path))
    specs = [(path, load_spec(path)) for path in files]
    overrides = dict(params or {})
    declared = {name for _, spec in specs for name in spec.params}
    unknown = sorted(set(overrides) - declared)
    if unknown:
        raise ConfigError(
            f"unknown mapping parameter {unknown[0]!r}; the mapping declares: {', '.join(sorted(declared))}",
            file=str(files[0].parent if len(files) > 1 else files[0]),
        )
    applicable = {name: value for name, value in (defaults or {}).items() if name in declared}
    return Mapping(str(name_or_path), specs, {**applicable, **overrides})


def load_system_mapping(name: str, system: SystemConfig) -> Mapping:
    """The mapping of configured system ``name``: its ``mapping``, ``mapping_params`` and ``timezone``."""
    if not system.mapping:
        raise ConfigError(f"systems.{name}.mapping: a mapping is needed to read this system (e.g. evotor/v2)")
    return load_mapping(system.mapping, params=system.mapping_params, defaults={"timezone": system.timezone})
