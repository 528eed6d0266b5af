"""Health: a system is reachable when it answers anything; pulls and leases come from the state database."""

from __future__ import annotations

import socket

import responses

from connector.store import Store
from connector.web.console.health import Reachability, health_view, probe

from ..seed import NOW, Seeded, console_config


@responses.activate(assert_all_requests_are_fired=True)
def test_any_http_answer_means_reachable() -> None:
    responses.get("http://crm.example/api", status=401)
    assert probe("crm", "http://crm.example/api") == Reachability(
        "crm", "http://crm.example/api", True, "HTTP 401"
    )


def test_a_closed_port_is_unreachable_without_leaking_the_address_in_the_reason() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    found = probe("onec", f"http://127.0.0.1:{port}/odata?token=secret", timeout=1)
    assert found.reachable is False
    assert found.detail == "ConnectionError"


def test_health_view_reads_pulls_runs_and_leases(store: Store, seeded: Seeded) -> None:
    view = health_view(store, console_config(str(store.engine.url)), NOW, check_systems=False)
    assert [(c.system, c.store, c.stream) for c in view.cursors] == [("evotor", "msk-1", "receipts")]
    assert [(lease.name, lease.holder) for lease in view.leases] == [("scheduler:sync", "connector-01:4242")]
    sync = view.last_runs["sync"]
    assert sync is not None
    assert sync.id == seeded.sync_run
