"""``connector.yaml`` for a running sandbox: what ``init --sandbox URL`` writes."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from connector.config import load_config
from connector.errors import ConfigError, RemoteError
from connector.sandbox.answer_key import load_world_program
from connector.sandbox.generator import SandboxOptions
from connector.sandbox.rehearsal import write_sandbox_config


def test_the_config_names_the_sandbox_systems_routes_and_program(
    sandbox_factory: Any, tmp_path: Path
) -> None:
    server = sandbox_factory(SandboxOptions(seed=5, stores=2, days=3, receipts=10))
    path = write_sandbox_config(server.base_url, tmp_path)
    assert path == tmp_path / "connector.yaml"
    config = load_config(path)
    assert config.state == f"sqlite:///{(tmp_path / 'connector.db').resolve()}"
    evotor, onec, crm = config.systems["evotor"], config.systems["onec"], config.systems["crm"]
    assert (evotor.adapter, evotor.base_url, evotor.mapping) == (
        "evotor",
        f"{server.base_url}/evotor",
        "evotor/v2",
    )
    assert evotor.token is not None
    assert evotor.token.get_secret_value() == "sandbox-evotor-token"
    assert onec.base_url == f"{server.base_url}/1c/ut/odata/standard.odata"
    assert (onec.user, onec.timezone, onec.mapping) == ("exchange", "Europe/Moscow", "onec/ut11")
    # 1C knows each till store by its own Склад: the adapter needs the pairing to read and write receipts.
    assert onec.options["store_ids"] == {store.id: store.onec_store_ref for store in server.world.stores}
    assert onec.password is not None
    assert onec.password.get_secret_value() == "exchange"
    assert (crm.adapter, crm.preset, crm.base_url) == ("crm", "retailcrm", f"{server.base_url}/crm")
    assert crm.api_key is not None
    assert crm.api_key.get_secret_value() == "sandbox-crm-key"
    assert [(r.from_, r.to, r.write) for r in config.routes] == [
        ("evotor", "crm", "postings"),
        ("evotor", "onec", "documents"),
        ("crm", "onec", "bonus_documents"),
    ]
    assert [(r.name, r.left, r.right, r.documents, r.ledger) for r in config.reconcile] == [
        ("tills-vs-accounting", "evotor", "onec", None, None),
        ("loyalty-ledger", None, None, "evotor", "crm"),
    ]
    assert set(config.schedule) == {"sync", "nightly"}
    assert config.program == load_world_program(server.world)


def test_an_existing_config_is_kept_unless_forced(sandbox_factory: Any, tmp_path: Path) -> None:
    server = sandbox_factory(SandboxOptions(stores=1, days=1, receipts=5))
    (tmp_path / "connector.yaml").write_text("# mine\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="exists"):
        write_sandbox_config(server.base_url, tmp_path)
    assert (tmp_path / "connector.yaml").read_text(encoding="utf-8") == "# mine\n"
    write_sandbox_config(server.base_url, tmp_path, force=True)
    assert load_config(tmp_path / "connector.yaml").systems["crm"].preset == "retailcrm"


def test_no_sandbox_at_the_url_is_a_remote_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free once closed: nothing listens there
    with pytest.raises(RemoteError, match="does not answer"):
        write_sandbox_config(f"http://127.0.0.1:{port}", tmp_path)
    assert not (tmp_path / "connector.yaml").exists()
