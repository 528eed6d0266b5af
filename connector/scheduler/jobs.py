"""What a scheduled job runs: the explicit registry of commands (``sync``, ``reconcile``) and their functions.

A ``schedule:`` entry of ``connector.yaml`` lists commands (``run: [sync]``, ``run: [reconcile]``); each command
names an entry of :data:`JOBS`, an import path (``"module:function"``) resolved only when the job runs, so
that starting the scheduler imports neither the sync engine nor the reconciliation, and tests can put their own
functions in the registry. A job function takes a :class:`JobContext` and checks ``context.should_stop()``
between items: it is set on SIGTERM / Ctrl-C and when the job's lease is lost.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from connector.config import ConnectorConfig
from connector.errors import ConfigError
from connector.store import Store

__all__ = [
    "JOBS",
    "JobContext",
    "JobFunction",
    "reconcile_job",
    "resolve_job",
    "sync_job",
    "yesterday_in",
]


@dataclass(frozen=True)
class JobContext:
    """Everything a job function gets.

    Attributes:
        config: the loaded ``connector.yaml``.
        store: the open state database.
        job: the ``schedule:`` entry being run (e.g. ``nightly``).
        stop: set when the job should stop after its current item (SIGTERM, Ctrl-C, lease lost).
        started_at: when this run started (aware, UTC).
    """

    config: ConnectorConfig
    store: Store
    job: str
    stop: threading.Event
    started_at: datetime

    def should_stop(self) -> bool:
        """True when the job should finish its current item and return."""
        return self.stop.is_set()


JobFunction = Callable[[JobContext], object]

JOBS: dict[str, str] = {
    "sync": "connector.scheduler.jobs:sync_job",
    "reconcile": "connector.scheduler.jobs:reconcile_job",
}
"""Command name (as in ``schedule.<job>.run``) -> ``"module:function"`` of its :data:`JobFunction`."""


def resolve_job(command: str, registry: dict[str, str] | None = None) -> JobFunction:
    """The job function of ``command``, imported from its registry path.

    Raises:
        ConfigError: the command is not in the registry, or its path does not import.
    """
    registry = JOBS if registry is None else registry
    if command not in registry:
        raise ConfigError(f"no scheduled job named {command!r}", known=", ".join(sorted(registry)))
    module_name, _, attribute = registry[command].partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"scheduled job {command!r} cannot be loaded: {exc}", path=registry[command]
        ) from None
    if not callable(function):
        raise ConfigError(f"scheduled job {command!r} is not callable", path=registry[command])
    return function  # type: ignore[no-any-return]


def _stop_keyword(function: Callable[..., Any], context: JobContext) -> dict[str, Any]:
    # The sync engine may take the stop signal as a callable or as an event; without either it runs to the end.
    parameters = inspect.signature(function).parameters
    if "should_stop" in parameters:
        return {"should_stop": context.should_stop}
    if "stop" in parameters:
        return {"stop": context.stop}
    return {}


def sync_job(context: JobContext) -> object:
    """``sync``: one incremental sync of every route, with the configured workers."""
    from connector.sync import run_sync

    keywords: dict[str, Any] = {"store": context.store, "workers": context.config.sync.workers}
    keywords.update(_stop_keyword(run_sync, context))
    return run_sync(context.config, **keywords)


def yesterday_in(zone: str, now: datetime) -> date:
    """The business date before ``now``'s date in ``zone`` (the nightly reconcile's day)."""
    return now.astimezone(ZoneInfo(zone)).date() - timedelta(days=1)


def reconcile_job(context: JobContext) -> object:
    """``reconcile``: every configured reconciliation over yesterday's business date in the schedule's zone."""
    from connector.reconcile import reconcile

    day = yesterday_in(context.config.timezone, context.started_at)
    return reconcile(context.config, date_from=day, date_to=day, store=context.store)
