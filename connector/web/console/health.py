"""Health of the systems around the connector: each configured system reachable, the last successful pull per
system and store, the last finished runs, and who holds the scheduler's leases.

A system is *reachable* when its base URL answers any HTTP status within the timeout: this says the network
path and the server are up, not that the credentials are right (a sync run tells that).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import requests
from sqlalchemy import select

from connector.config import ConnectorConfig
from connector.store import Store
from connector.store.tables import Lease, Run, SyncCursor

from .queries import leases, sync_cursors

__all__ = ["HealthView", "Reachability", "health_view", "probe"]

_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Reachability:
    """Whether one system answered, with the HTTP status or the reason it did not."""

    system: str
    url: str
    reachable: bool
    detail: str


@dataclass(frozen=True)
class HealthView:
    """Everything the health page shows."""

    systems: list[Reachability]
    cursors: list[SyncCursor]
    leases: list[Lease]
    last_runs: dict[str, Run | None]
    now: datetime


def probe(system: str, url: str, timeout: float = _TIMEOUT_S) -> Reachability:
    """Ask ``url`` for anything; reachable when any HTTP answer arrives in time."""
    try:
        answer = requests.get(url, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        # The exception class only: its text may carry the URL with a query string.
        return Reachability(system, url, False, exc.__class__.__name__)
    return Reachability(system, url, True, f"HTTP {answer.status_code}")


def _last_good_run(store: Store, kind: str) -> Run | None:
    query = (
        select(Run)
        .where(Run.kind == kind, Run.finished_at.is_not(None), Run.error.is_(None), Run.status != "error")
        .order_by(Run.finished_at.desc())
        .limit(1)
    )
    with store.session() as session:
        return session.scalar(query)


def health_view(
    store: Store,
    config: ConnectorConfig,
    now: datetime,
    *,
    check_systems: bool = True,
    timeout: float = _TIMEOUT_S,
) -> HealthView:
    """Probe every configured system (in parallel) and read the pull watermarks, last runs and leases."""
    systems: list[Reachability] = []
    if check_systems and config.systems:
        with ThreadPoolExecutor(max_workers=min(8, len(config.systems))) as pool:
            futures = [
                pool.submit(probe, name, system.base_url, timeout) for name, system in config.systems.items()
            ]
            systems = [future.result() for future in futures]
    last = {kind: _last_good_run(store, kind) for kind in ("sync", "reconcile")}
    return HealthView(systems, sync_cursors(store), leases(store), last, now)
