"""A ``connector.yaml`` for a running sandbox: the rehearsal before the real systems.

``loyalty-connector sandbox up`` in one terminal, ``loyalty-connector init --sandbox URL`` in another, then any
command: :func:`write_sandbox_config` asks the sandbox for its systems, credentials and loyalty program
(``/__sandbox/info``, ``/__sandbox/program``) and writes the three systems, the routes, reconciliations and
schedule of DESIGN.md §6, and a SQLite state file beside the config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from connector.errors import ConfigError, RemoteError

__all__ = ["CONFIG_NAME", "sandbox_config_text", "write_sandbox_config"]

CONFIG_NAME = "connector.yaml"
_TIMEOUT = 10.0

_TEMPLATE = """\
# loyalty-connector configuration for the sandbox at {base}
# (written by `loyalty-connector init --sandbox`). The sandbox's credentials are not secrets; against real
# systems keep tokens, passwords and keys in the environment: token: ${{EVOTOR_TOKEN}}.

# Journal, ledger, outbox and runs: a SQLite file beside this one.
state: sqlite:///connector.db
timezone: Europe/Moscow

systems:
  evotor:
    adapter: evotor
    base_url: {evotor_url}
    token: {evotor_token}
    mapping: evotor/v2
  onec:
    adapter: onec
    base_url: {onec_url}
    user: {onec_user}
    password: {onec_password}
    timezone: Europe/Moscow          # the sandbox's 1C writes Moscow time
    mapping: onec/ut11
    options:
      store_ids:                     # till store id -> the 1C Склад (Ref_Key or Code) it sells from
{onec_stores}
  crm:
    adapter: crm
    preset: retailcrm
    base_url: {crm_url}
    api_key: {crm_key}

routes:
  - {{from: evotor, documents: [sale, return], to: crm, write: postings}}      # accrue, redeem, reverse in the CRM
  - {{from: evotor, documents: [sale, return], to: onec, write: documents}}    # receipts into accounting
  - {{from: crm, documents: [posting], to: onec, write: bonus_documents}}      # the bonus ledger into accounting

reconcile:
  - {{name: tills-vs-accounting, left: evotor, right: onec, tolerance: "0.01"}}
  - {{name: loyalty-ledger, documents: evotor, ledger: crm}}

schedule:
  sync: {{every: 5m}}
  nightly: {{cron: "30 2 * * *", run: [reconcile]}}

# The loyalty program the sandbox generated its data under ({summary}).
{program}"""


def _get(session: requests.Session, base: str, path: str) -> requests.Response:
    try:
        response = session.get(f"{base}{path}", timeout=_TIMEOUT)
    except requests.RequestException as exc:
        raise RemoteError(
            f"the sandbox does not answer: {type(exc).__name__}; is `loyalty-connector sandbox up` running?",
            system="sandbox",
            request=f"GET {base}{path}",
        ) from None
    if response.status_code != 200:
        raise RemoteError(
            f"the sandbox answered {response.status_code}; is {base} a loyalty-connector sandbox?",
            system="sandbox",
            request=f"GET {base}{path}",
        )
    return response


def sandbox_config_text(base_url: str, *, session: requests.Session | None = None) -> str:
    """The ``connector.yaml`` text for the sandbox at ``base_url`` (``http://127.0.0.1:8800``).

    Raises:
        RemoteError: the sandbox does not answer, or is not a sandbox.
    """
    base = base_url.rstrip("/")
    with session or requests.Session() as http:
        info: dict[str, Any] = _get(http, base, "/__sandbox/info").json()
        program = _get(http, base, "/__sandbox/program").text
    systems = info["systems"]
    summary = f"seed {info['seed']}, {info['stores']} stores, {info['days']} days from {info['start']}"
    return _TEMPLATE.format(
        base=base,
        evotor_url=systems["evotor"]["url"],
        evotor_token=systems["evotor"]["token"],
        onec_url=systems["onec_ut"]["url"].rstrip("/"),
        onec_user=systems["onec_ut"]["user"],
        onec_password=systems["onec_ut"]["password"],
        crm_url=systems["crm"]["url"],
        crm_key=systems["crm"]["api_key"],
        onec_stores="\n".join(f'        "{store}": "{ref}"' for store, ref in info["onec_stores"].items()),
        summary=summary,
        program=program if program.endswith("\n") else program + "\n",
    )


def write_sandbox_config(base_url: str, directory: Path, *, force: bool = False) -> Path:
    """Write ``connector.yaml`` for the running sandbox at ``base_url`` into ``directory``; return its path.

    Args:
        base_url: where ``sandbox up`` listens, e.g. ``http://127.0.0.1:8800``.
        directory: where to write ``connector.yaml`` (the SQLite state ``connector.db`` goes beside it).
        force: overwrite an existing ``connector.yaml``.

    Raises:
        ConfigError: the file exists and ``force`` is not set.
        RemoteError: the sandbox does not answer.

    Example:
        >>> write_sandbox_config("http://127.0.0.1:8800", Path("."))  # doctest: +SKIP
        PosixPath('connector.yaml')
    """
    path = directory / CONFIG_NAME
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it", file=str(path))
    text = sandbox_config_text(base_url)
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
