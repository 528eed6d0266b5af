"""``sandbox generate``: write a world's raw datasets as each emulator serves them, and its answer key.

The files are fetched through an in-process sandbox server with plain HTTP, so a file and the wire never
disagree. Paged lists are merged into one page of the system's own shape; numbers keep their digits (parsed as
Decimal, written back by the emulators' exact-decimal JSON writer); URLs inside them name the default address
``http://127.0.0.1:8800``::

    evotor/stores.json                 GET /stores (Evotor page: {"items", "paging"})
    evotor/documents/<store id>.json   every SELL and PAYBACK of the store, one Evotor page
    onec/metadata.xml                  1C УТ 11 $metadata
    onec/<entity set>.json             every published set, as 1C answers ?$format=json
    onec/retail/…                      the same for the Розница 2 base
    crm/accounts.json                  loyalty accounts ({"success", "loyaltyAccounts"})
    crm/operations.json                the bonus-operation feed ({"success", "bonusOperations"})
    program.yaml                       the loyalty program the data was generated under
    answer_key.json                    one object per injected discrepancy
    sandbox.json                       the options and counts
"""

from __future__ import annotations

import json
import re
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from connector.errors import RemoteError
from connector.sandbox._wire import dumps
from connector.sandbox.answer_key import MOSCOW
from connector.sandbox.server import CRM_API_KEY, EVOTOR_TOKEN, ONEC_PASSWORD, ONEC_USER, SandboxServer
from connector.sandbox.world import World

__all__ = ["export_world"]

_TIMEOUT = 120.0
_DEFAULT_HOST = "127.0.0.1:8800"
_PAGE_CAP = 100_000  # no feed of a generated world has this many pages: a loop past it is a bug


def export_world(world: World, directory: Path) -> list[Path]:
    """Write ``world``'s datasets under ``directory`` (created if needed); return the files written.

    The CRM's clock is pinned to midnight after the window, so balances — and the files — depend on the
    options only.
    """
    end = datetime.combine(world.start + timedelta(days=world.days), time(0), tzinfo=MOSCOW)
    with SandboxServer(world, rate_per_second=0, clock=lambda: end) as sandbox, requests.Session() as session:
        fetch = _Fetcher(session, sandbox.base_url, directory)
        fetch.evotor(world)
        fetch.onec("ut", Path("onec"))
        fetch.onec("retail", Path("onec/retail"))
        fetch.crm()
    written = fetch.written
    written.append(_write(directory / "program.yaml", world.program_yaml.encode()))
    entries = [entry.as_json() for entry in world.answer_key]
    written.append(_write(directory / "answer_key.json", _pretty(entries)))
    manifest = {
        "seed": world.seed,
        "start": world.start.isoformat(),
        "days": world.days,
        "clean": world.clean,
        "stores": len(world.stores),
        "receipts": len(world.receipts),
        "discrepancies": len(entries),
        "files": sorted(str(path.relative_to(directory)) for path in written),
    }
    written.append(_write(directory / "sandbox.json", _pretty(manifest)))
    return written


def _pretty(payload: Any) -> bytes:
    return (json.dumps(payload, ensure_ascii=False, indent=2) + "\n").encode()


def _write(path: Path, body: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path


class _Fetcher:
    """GETs from the running sandbox and writes what it answers."""

    def __init__(self, session: requests.Session, base_url: str, directory: Path) -> None:
        self.session, self.base, self.directory = session, base_url, directory
        # URLs the systems write into their answers (1C's odata.metadata) name the default `sandbox up`
        # address rather than this server's random port, so the files depend on the options only.
        session.headers["Host"] = _DEFAULT_HOST
        self.written: list[Path] = []

    def _get(self, path: str, **kwargs: Any) -> requests.Response:
        response = self.session.get(f"{self.base}{path}", timeout=_TIMEOUT, **kwargs)
        if response.status_code != 200:
            raise RemoteError(
                f"the sandbox answered {response.status_code}", system="sandbox", request=f"GET {path}"
            )
        return response

    def _json(self, path: str, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self._get(path, **kwargs).content, parse_float=Decimal)
        return body

    def _save(self, relative: str | Path, body: bytes) -> None:
        self.written.append(_write(self.directory / relative, body))

    def evotor(self, world: World) -> None:
        """The stores, and each store's SELL and PAYBACK documents merged into one page."""
        headers = {"X-Authorization": EVOTOR_TOKEN}
        self._save("evotor/stores.json", self._get("/evotor/stores", headers=headers).content)
        for store in world.stores:
            items: list[Any] = []
            params: dict[str, str] = {"type": "SELL,PAYBACK"}
            for _ in range(_PAGE_CAP):
                page = self._json(f"/evotor/stores/{store.id}/documents", headers=headers, params=params)
                items += page["items"]
                cursor = page.get("paging", {}).get("next_cursor")
                if not cursor:
                    break
                params = {"cursor": cursor}
            self._save(f"evotor/documents/{store.id}.json", dumps({"items": items, "paging": {}}))

    def onec(self, flavour: str, folder: Path) -> None:
        """``$metadata`` and every entity set it publishes, as served."""
        auth = (ONEC_USER, ONEC_PASSWORD)
        root = f"/1c/{flavour}/odata/standard.odata"
        metadata = self._get(f"{root}/$metadata", auth=auth).content
        self._save(folder / "metadata.xml", metadata)
        for name in re.findall(r'<EntitySet Name="([^"]+)"', metadata.decode("utf-8")):
            self._save(folder / f"{name}.json", self._get(f"{root}/{name}?$format=json", auth=auth).content)

    def crm(self) -> None:
        """The loyalty accounts and the whole bonus-operation feed."""
        headers = {"X-API-KEY": CRM_API_KEY}
        accounts: list[Any] = []
        for page in range(1, _PAGE_CAP):
            body = self._json(
                "/crm/api/v5/loyalty/accounts", headers=headers, params={"limit": 250, "page": page}
            )
            accounts += body["loyaltyAccounts"]
            if page >= body["pagination"]["totalPageCount"]:
                break
        self._save("crm/accounts.json", dumps({"success": True, "loyaltyAccounts": accounts}))
        operations: list[Any] = []
        params: dict[str, Any] = {"limit": 250}
        for _ in range(_PAGE_CAP):
            body = self._json("/crm/api/v5/loyalty/bonus/operations", headers=headers, params=params)
            operations += body["bonusOperations"]
            cursor = body["pagination"].get("nextCursor")
            if not cursor:
                break
            params = {"limit": 250, "cursor": cursor}
        self._save("crm/operations.json", dumps({"success": True, "bonusOperations": operations}))
