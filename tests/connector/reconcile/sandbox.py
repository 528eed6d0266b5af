"""A running sandbox and the ``connector.yaml`` for it, shared by the reconcile tests."""

from __future__ import annotations

from pathlib import Path

from connector.sandbox.rehearsal import write_sandbox_config
from connector.sandbox.server import SandboxServer

__all__ = ["sandbox_config"]


def sandbox_config(server: SandboxServer, directory: Path) -> Path:
    """Write the rehearsal's config for ``server`` into ``directory``, with 1C's store keys mapped.

    1C knows the stores by its own ``Ref_Key``; the rehearsal's config does not map them yet, so the
    ``options.store_ids`` the 1C adapter needs are added under the 1C system.
    """
    path = write_sandbox_config(server.base_url, directory)
    text = path.read_text(encoding="utf-8")
    if "store_ids" not in text:
        pairs = ", ".join(f'"{s.id}": "{s.onec_store_ref}"' for s in server.world.stores)
        marker = "    mapping: onec/ut11\n"
        assert marker in text, "the rehearsal's 1C system has changed shape"
        text = text.replace(marker, f"{marker}    options: {{store_ids: {{{pairs}}}}}\n", 1)
        path.write_text(text, encoding="utf-8")
    return path
