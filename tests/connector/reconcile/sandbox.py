"""A running sandbox and the ``connector.yaml`` for it, shared by the reconcile tests."""

from __future__ import annotations

from pathlib import Path

from connector.sandbox.rehearsal import write_sandbox_config
from connector.sandbox.server import SandboxServer

__all__ = ["sandbox_config"]


def sandbox_config(server: SandboxServer, directory: Path) -> Path:
    """Write the rehearsal's config for ``server`` into ``directory`` (1C stores paired with the tills')."""
    return write_sandbox_config(server.base_url, directory)
