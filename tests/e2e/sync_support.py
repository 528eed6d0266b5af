"""Shared by the sync end-to-end tests: a connector.yaml for a running sandbox, and readers of its state."""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import requests
import yaml

from connector.rules import expected_postings
from connector.sandbox.answer_key import canonical_documents, load_world_program
from connector.sandbox.server import CRM_API_KEY, EVOTOR_TOKEN, ONEC_PASSWORD, ONEC_USER
from connector.sandbox.world import World

WEBHOOK_TOKEN = "test-webhook-token"
WEBHOOK_SECRET = "test-webhook-secret"

__all__ = [
    "WEBHOOK_SECRET",
    "WEBHOOK_TOKEN",
    "business_days",
    "crm_comments",
    "expected_keys",
    "inject_malformed_receipt",
    "onec_comments",
    "seed_opening_balances",
    "write_config",
]


def write_config(
    world: World,
    base_url: str,
    directory: Path,
    *,
    state: str | None = None,
    sync: dict[str, Any] | None = None,
) -> Path:
    """Write ``connector.yaml`` for the sandbox at ``base_url`` (all three routes) and return its path."""
    program = yaml.safe_load(world.program_yaml)["program"]
    config = {
        "state": state or f"sqlite:///{directory / 'state.db'}",
        "program": program,
        "systems": {
            "evotor": {"adapter": "evotor", "base_url": f"{base_url}/evotor", "token": EVOTOR_TOKEN,
                       "mapping": "evotor/v2",
                       "options": {"webhook_token": WEBHOOK_TOKEN, "webhook_secret": WEBHOOK_SECRET}},
            "onec": {"adapter": "onec", "base_url": f"{base_url}/1c/ut/odata/standard.odata", "user": ONEC_USER,
                     "password": ONEC_PASSWORD, "mapping": "onec/ut11",
                     "options": {"store_ids": {s.id: s.onec_store_ref for s in world.stores}}},
            "crm": {"adapter": "crm", "preset": "retailcrm", "base_url": f"{base_url}/crm", "api_key": CRM_API_KEY},
        },
        "routes": [
            {"from": "evotor", "documents": ["sale", "return"], "to": "crm", "write": "postings"},
            {"from": "evotor", "documents": ["sale", "return"], "to": "onec", "write": "documents"},
            {"from": "crm", "documents": ["posting"], "to": "onec", "write": "bonus_documents"},
        ],
        "sync": {"start": world.start.isoformat(), "backoff": "0s", **(sync or {})},
    }  # fmt: skip
    path = directory / "connector.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def crm_comments(base_url: str) -> list[str]:
    """The ``comment`` of every operation in the sandbox CRM's feed (paged to the end)."""
    comments: list[str] = []
    cursor: str | None = None
    session = requests.Session()
    session.headers["X-API-KEY"] = CRM_API_KEY
    for _ in range(10_000):
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        body = session.get(
            f"{base_url}/crm/api/v5/loyalty/bonus/operations", params=params, timeout=30
        ).json()
        comments += [str(op.get("comment") or "") for op in body.get("bonusOperations", [])]
        cursor = (body.get("pagination") or {}).get("nextCursor")
        if not cursor:
            return comments
    raise AssertionError("the CRM feed did not end")


def onec_comments(base_url: str, entity_set: str) -> list[str]:
    """The ``Комментарий`` of every document of a 1C entity set (not marked for deletion)."""
    url = f"{base_url}/1c/ut/odata/standard.odata/{entity_set}"
    params = {"$format": "json", "$select": "Комментарий,DeletionMark", "$top": "100000"}
    rows = requests.get(url, params=params, auth=(ONEC_USER, ONEC_PASSWORD), timeout=60).json()["value"]
    return [str(row.get("Комментарий") or "") for row in rows if not row.get("DeletionMark")]


def business_days(world: World) -> list[date]:
    """The world's business dates."""
    return sorted({receipt.occurred_at.date() for receipt in world.receipts})


def seed_opening_balances(base_url: str, world: World, points: str = "100000") -> None:
    """Credit every customer an opening balance in the sandbox CRM, so redemptions can be charged.

    A ``--clean`` world starts every CRM account at zero, while its till receipts redeem points earned before
    the world began: without this, every redemption would be refused (400, not enough bonuses).
    """
    session = requests.Session()
    session.headers["X-API-KEY"] = CRM_API_KEY
    for customer in world.customers:
        response = session.post(
            f"{base_url}/crm/api/v5/loyalty/account/{customer.crm_account_id}/bonus/credit",
            data={"amount": points, "comment": "opening balance"},
            timeout=30,
        )
        response.raise_for_status()


def expected_keys(world: World) -> tuple[set[str], set[str]]:
    """``(CRM keys, 1C receipt keys)`` a full sync of ``world`` must write: ``crm:<posting key>`` and
    ``onec:evotor:<receipt id>:sale|return``."""
    documents = sorted(canonical_documents(world), key=lambda d: (d.occurred_at, d.ref.id))
    postings = expected_postings(load_world_program(world), documents)
    receipts = {f"onec:evotor:{r.id}:{r.kind}" for r in world.receipts}
    return {f"crm:{p.key}" for p in postings}, receipts


def inject_malformed_receipt(world: World) -> str:
    """Add a sale whose customer phone is not a phone number (the mapping refuses it); returns its id."""
    model = next(r for r in world.receipts if r.kind == "sale" and r.customer_phone)
    bad = dataclasses.replace(model, id=str(uuid.UUID(int=random.Random(world.seed).getrandbits(128))),
                              customer_phone="+7000")  # fmt: skip
    world.receipts.append(bad)
    return bad.id
