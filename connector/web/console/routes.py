"""The console's read-only pages: dashboard, runs, failures, reconciliations, customer, health, audit log."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.responses import RedirectResponse, Response

from connector.discrepancies import DISCREPANCY_KINDS
from connector.report import CSV_BOM, spreadsheet_cell
from connector.store.tables import ERROR_KINDS, FAILED_ITEM_STATES

from ..auth import UserInfo
from . import queries as q
from .chart import trend_svg
from .customer import account_for, customer_view
from .health import health_view
from .web import console_state, page_user, render

__all__ = ["parse_date", "router"]

router = APIRouter()
_DASHBOARD_PROBE_S = 0.7
Viewer = Annotated[UserInfo, Depends(page_user)]


def parse_date(text: str | None) -> date | None:
    """A ``YYYY-MM-DD`` query parameter, or None when it is empty or not a date."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _param(request: Request, name: str) -> str | None:
    return request.query_params.get(name) or None


@router.get("/")
def dashboard(request: Request, user: Viewer) -> Response:
    """Last runs, open failures by system, the discrepancy trend, and scheduler health."""
    state = console_state(request)
    today = state.clock().astimezone(ZoneInfo(state.config.timezone)).date()
    trend = q.discrepancy_trend(state.store, today)
    return render(
        request,
        "dashboard.html",
        user,
        runs=q.runs(state.store, limit=10),
        open_failures=q.open_failures_by_system(state.store),
        trend=trend,
        chart=trend_svg(trend, lambda d: f"{d:%d.%m}"),
        leases=q.leases(state.store),
        cursors=q.sync_cursors(state.store),
        # A short probe: the dashboard must open quickly even when a system is down (the health page waits longer).
        systems=health_view(
            state.store,
            state.config,
            state.clock(),
            check_systems=state.probe_systems,
            timeout=_DASHBOARD_PROBE_S,
        ).systems,
        now=state.clock(),
    )


@router.get("/runs")
def runs_page(request: Request, user: Viewer) -> Response:
    """Runs with filters by kind, status and start date."""
    where = q.RunFilter(
        kind=_param(request, "kind"),
        status=_param(request, "status"),
        since=parse_date(_param(request, "since")),
        until=parse_date(_param(request, "until")),
    )
    return render(request, "runs.html", user, runs=q.runs(console_state(request).store, where), where=where)


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: int, user: Viewer) -> Response:
    """One run: arguments, counts per system and store, its failed items and discrepancies."""
    store = console_state(request).store
    found = q.run(store, run_id)
    if found is None:
        raise HTTPException(status_code=404)
    items = q.failures(store, q.FailureFilter(state=None), run_id=run_id)
    found_discrepancies = q.discrepancies(store, run_id) if found.kind == "reconcile" else []
    return render(request, "run.html", user, run=found, items=items, discrepancies=found_discrepancies)


def failure_filter(request: Request) -> q.FailureFilter:
    """The failures filter from query parameters (``state`` defaults to open; ``state=`` means any)."""
    state = request.query_params.get("state", "open")
    return q.FailureFilter(
        system=_param(request, "system"),
        route=_param(request, "route"),
        store=_param(request, "store"),
        since=parse_date(_param(request, "since")),
        until=parse_date(_param(request, "until")),
        error_kind=_param(request, "error_kind"),
        state=state if state in FAILED_ITEM_STATES else None,
    )


@router.get("/failures")
def failures_page(request: Request, user: Viewer) -> Response:
    """Failed items with filters, and the bulk retry of the filtered set."""
    state = console_state(request)
    where = failure_filter(request)
    items = q.failures(state.store, where)
    return render(
        request,
        "failures.html",
        user,
        items=items,
        where=where,
        systems=sorted(state.config.systems),
        routes=sorted(
            {f"{r.from_}->{r.to}" for r in state.config.routes} | {i.route for i in items if i.route}
        ),
        error_kinds=ERROR_KINDS,
        states=FAILED_ITEM_STATES,
        msg=_param(request, "msg"),
    )


@router.get("/failures/{item_id}")
def failure_page(request: Request, item_id: int, user: Viewer) -> Response:
    """One failed item: its error and payload, with retry and skip for operators."""
    item = q.failure(console_state(request).store, item_id)
    if item is None:
        raise HTTPException(status_code=404)
    return render(request, "failure.html", user, item=item, msg=_param(request, "msg"))


@router.get("/reconciliations")
def reconciliations_page(request: Request, user: Viewer) -> Response:
    """Reconciliation runs with their discrepancy counts."""
    return render(
        request, "reconciliations.html", user, found=q.reconciliations(console_state(request).store)
    )


def _discrepancy_filter(request: Request) -> q.DiscrepancyFilter:
    return q.DiscrepancyFilter(
        kind=_param(request, "kind"), store=_param(request, "store"), state=_param(request, "state")
    )


@router.get("/reconciliations/{run_id}")
def reconciliation_page(request: Request, run_id: int, user: Viewer) -> Response:
    """A reconciliation's discrepancies with filters by kind, store and state."""
    store = console_state(request).store
    found = q.run(store, run_id)
    if found is None or found.kind != "reconcile":
        raise HTTPException(status_code=404)
    rows = q.discrepancies(store, run_id, _discrepancy_filter(request))
    every = q.discrepancies(store, run_id)
    return render(
        request,
        "reconciliation.html",
        user,
        run=found,
        rows=rows,
        where=_discrepancy_filter(request),
        kinds=[k for k in DISCREPANCY_KINDS if any(d.kind == k for d in every)],
        stores=sorted({d.store for d in every if d.store}),
        fixes=q.fixes_of(store, [d.id for d in rows]),
        msg=_param(request, "msg"),
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return (
        value
        if isinstance(value, str)
        else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    )


@router.get("/reconciliations/{run_id}/discrepancies.csv")
def reconciliation_csv(request: Request, run_id: int, user: Viewer) -> Response:
    """The (filtered) discrepancies as CSV: one row each, amounts as 2-decimal strings, refs as JSON."""
    rows = q.discrepancies(console_state(request).store, run_id, _discrepancy_filter(request))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["id", "kind", "store", "business_date", "refs", "expected", "actual", "delta", "fix", "state"]
    )
    for d in rows:
        delta = f"{d.delta:.2f}" if d.delta is not None else ""
        action = (d.fix or {}).get("action", "")
        cells = [d.id, d.kind, d.store or "", d.business_date or "", _cell(d.refs), _cell(d.expected),
                 _cell(d.actual), delta, action, d.state]  # fmt: skip
        writer.writerow([spreadsheet_cell(str(cell)) for cell in cells])
    headers = {"Content-Disposition": f'attachment; filename="reconciliation-{run_id}.csv"'}
    return Response(CSV_BOM + out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/customers")
def customer_search(request: Request, user: Viewer) -> Response:
    """The search form; a query redirects to the customer's page."""
    query = (request.query_params.get("q") or "").strip()
    if query:
        # To the account as stored (E.164 or card:…), so the address is the same whatever the spelling.
        target = request.url_for("customer_page", query=account_for(query)).path
        return RedirectResponse(target, status_code=303)
    return render(request, "customer_search.html", user)


@router.get("/customers/{query}", name="customer_page")
def customer_page(request: Request, query: str, user: Viewer) -> Response:
    """Everything about the customer a phone or card names, in every system."""
    state = console_state(request)
    view = customer_view(state.store, state.config, query, state.clock())
    return render(request, "customer.html", user, view=view, query=query, msg=_param(request, "msg"))


@router.get("/health")
def health_page(request: Request, user: Viewer) -> Response:
    """Systems reachable, last successful pulls per system and store, scheduler leases."""
    state = console_state(request)
    view = health_view(state.store, state.config, state.clock(), check_systems=state.probe_systems)
    return render(request, "health.html", user, view=view)


@router.get("/audit")
def audit_page(request: Request, user: Viewer) -> Response:
    """The audit log: who did what, when, and how it ended."""
    store = console_state(request).store
    return render(request, "audit.html", user, entries=q.audit_entries(store, _param(request, "who")))
