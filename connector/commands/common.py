"""What many commands share: the ``--config`` option, loading the config, and choosing the state database."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from connector.config import DEFAULT_CONFIG_PATH, ConnectorConfig, load_config
from connector.store import DEFAULT_STATE_URL, Store, open_store

__all__ = ["CONFIG_OPTION", "STATE_OPTION", "config_path", "load", "open_state", "state_url"]

CONFIG_OPTION = typer.Option(
    None, "--config", "-c", help="connector.yaml to use (default: $LC_CONFIG, else ./connector.yaml)."
)
STATE_OPTION = typer.Option(
    None,
    "--state",
    help="State database URL (sqlite:///path or postgresql+psycopg://user@host/db); "
    "default: $LC_STATE, else the config's state:, else sqlite:///connector.db.",
)


def config_path(path: Path | None) -> Path:
    """The config file a command uses: ``--config``, else ``$LC_CONFIG``, else ./connector.yaml."""
    return path or Path(os.environ.get("LC_CONFIG", DEFAULT_CONFIG_PATH))


def load(path: Path | None) -> ConnectorConfig:
    """Load and validate the config a command uses (a ConfigError names file, key and line)."""
    return load_config(config_path(path))


def state_url(state: str | None, path: Path | None) -> str:
    """The state database: ``--state``, else ``$LC_STATE``, else the config's ``state:`` if a config exists."""
    if state:
        return state
    if os.environ.get("LC_STATE"):
        return os.environ["LC_STATE"]
    if config_path(path).exists():
        return load(path).state
    return DEFAULT_STATE_URL


def open_state(config: ConnectorConfig) -> Store:
    """Open (and migrate on first use) the state database of ``config``."""
    return open_store(config.state)
