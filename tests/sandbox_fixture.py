"""Pytest plugin: the sandbox server in-process on a free port (listed in ``tests/conftest.py``'s pytest_plugins).

Fixtures:

* ``sandbox`` — one server for the whole session over the default world (seed 7, 3 stores, 7 days from
  2026-11-01, with every injected discrepancy); its fault spec is reset to none after each test. Tests that
  write (a bonus document posted into 1C, a credit in the CRM) change what later tests read: assert on what you
  wrote, or use a server of your own.
* ``sandbox_factory`` — ``sandbox_factory(options_or_world, faults=…, rate_per_second=…)`` starts a server of
  your own, stopped at the end of the test.

Example::

    def test_stores(sandbox):
        response = requests.get(f"{sandbox.base_url}/evotor/stores",
                                headers={"X-Authorization": EVOTOR_TOKEN}, timeout=10)
        assert len(response.json()["items"]) == len(sandbox.world.stores)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connector.sandbox.generator import SandboxOptions
from connector.sandbox.server import SandboxServer
from connector.sandbox.world import World

__all__ = ["sandbox", "sandbox_factory", "sandbox_session"]


@pytest.fixture(scope="session")
def sandbox_session() -> Iterator[SandboxServer]:
    """The session's shared sandbox server (prefer ``sandbox``, which also resets faults)."""
    with SandboxServer(SandboxOptions()) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_session: SandboxServer) -> Iterator[SandboxServer]:
    """The shared sandbox server; faults set during the test are cleared after it."""
    yield sandbox_session
    sandbox_session.faults.update("")


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxServer]]:
    """Start sandbox servers of your own (a world or options, plus SandboxServer's keyword arguments)."""
    started: list[SandboxServer] = []

    def start(source: World | SandboxOptions | None = None, **kwargs: Any) -> SandboxServer:
        server = SandboxServer(source, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
