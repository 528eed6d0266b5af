"""Fault injection, observed the way an adapter would meet it: a ``requests`` client against a real server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connector.errors import InputError
from connector.sandbox.faults import FaultInjector, FaultSpec, faults_middleware, wants_dup
from tests.connector.sandbox._servers import serve

PAYLOAD = {"items": [{"id": n, "name": f"item {n}"} for n in range(50)]}


async def _items(request: Request) -> JSONResponse:
    return JSONResponse({**PAYLOAD, "dup": wants_dup(request.scope)})


@pytest.fixture
def injector() -> FaultInjector:
    return FaultInjector(seed=3, slow_seconds=0.4, retry_after=7)


@pytest.fixture
def base(injector: FaultInjector) -> Iterator[str]:
    app = Starlette(routes=[Route("/items", _items)])
    with serve(faults_middleware(app, injector, "crm")) as url:
        yield f"{url}/items"


def test_spec_parses_rates_percentages_wildcards_and_latency() -> None:
    spec = FaultSpec.parse(
        " evotor:429=0.1, crm:drop=5%, *:503=0.2, crm:503=0, onec:latency=20ms, *:latency=0.5s,"
    )

    assert spec.rate("evotor", "429") == 0.1
    assert spec.rate("crm", "drop") == 0.05
    assert spec.rate("onec", "503") == 0.2  # from *
    assert spec.rate("crm", "503") == 0.0  # its own item wins over *
    assert spec.latency("onec") == 0.02
    assert spec.latency("evotor") == 0.5
    assert FaultSpec.parse(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "bad_part"),
    [
        ("evotor:429=0.1,bank:500=0.1", "bank:500=0.1"),
        ("evotor:teapot=0.1", "evotor:teapot=0.1"),
        ("crm:500=often", "crm:500=often"),
        ("crm:500=1.5", "crm:500=1.5"),
        ("crm:latency=fast", "crm:latency=fast"),
        ("crm:500", "crm:500"),
    ],
)
def test_invalid_specs_name_the_bad_part(text: str, bad_part: str) -> None:
    with pytest.raises(InputError) as caught:
        FaultSpec.parse(text)

    assert bad_part in str(caught.value)


def test_no_faults_means_the_real_response(base: str) -> None:
    response = requests.get(base, timeout=5)

    assert response.status_code == 200
    assert response.json()["items"] == PAYLOAD["items"]


def test_429_comes_with_retry_after(base: str, injector: FaultInjector) -> None:
    injector.update("crm:429=1")
    response = requests.get(base, timeout=5)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json() == {"success": False, "errorMsg": "Too many requests"}


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors(base: str, injector: FaultInjector, status: int) -> None:
    injector.update(f"*:{status}=1")
    response = requests.get(base, timeout=5)

    assert response.status_code == status
    assert response.json()["success"] is False


def test_drop_resets_the_connection(base: str, injector: FaultInjector) -> None:
    injector.update("crm:drop=1")

    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(base, timeout=5)
    injector.update("")
    assert requests.get(base, timeout=5).status_code == 200  # the server survives


def test_malformed_truncates_the_json_body(base: str, injector: FaultInjector) -> None:
    injector.update("crm:malformed=1")
    response = requests.get(base, timeout=5)

    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    with pytest.raises(requests.exceptions.JSONDecodeError):
        response.json()


def test_latency_is_added_to_every_response(base: str, injector: FaultInjector) -> None:
    injector.update("crm:latency=250ms")
    started = time.perf_counter()
    response = requests.get(base, timeout=5)

    assert response.status_code == 200
    assert time.perf_counter() - started >= 0.25


def test_slow_outlasts_the_client_timeout(base: str, injector: FaultInjector) -> None:
    injector.update("crm:slow=1")  # slow_seconds is 0.4 here; 31 by default

    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(base, timeout=0.2)
    started = time.perf_counter()
    assert requests.get(base, timeout=5).status_code == 200
    assert time.perf_counter() - started >= 0.4


def test_dup_marks_the_request_for_the_paginated_endpoint(base: str, injector: FaultInjector) -> None:
    assert requests.get(base, timeout=5).json()["dup"] is False
    injector.update("crm:dup=1")
    assert requests.get(base, timeout=5).json()["dup"] is True


def test_runtime_update_changes_faults_and_a_bad_update_keeps_the_old_spec(
    base: str, injector: FaultInjector
) -> None:
    injector.update("crm:500=1")
    assert requests.get(base, timeout=5).status_code == 500
    with pytest.raises(InputError):
        injector.update("crm:500=2")
    assert requests.get(base, timeout=5).status_code == 500
    injector.update("evotor:500=1")  # another system's fault does not touch the CRM
    assert requests.get(base, timeout=5).status_code == 200
    assert injector.injected[("crm", "500")] == 2


def test_rates_are_probabilities_from_a_seeded_rng() -> None:
    first = [FaultInjector("crm:503=0.3", seed=11).draw("crm").fault for _ in range(1)]
    one, two = FaultInjector("crm:503=0.3", seed=11), FaultInjector("crm:503=0.3", seed=11)
    draws = [one.draw("crm").fault for _ in range(1000)]

    assert draws == [two.draw("crm").fault for _ in range(1000)]
    assert 230 <= draws.count("503") <= 370
    assert set(draws) == {None, "503"}
    assert first[0] == draws[0]


def test_unknown_system_for_the_middleware_is_refused() -> None:
    with pytest.raises(InputError):
        faults_middleware(Starlette(), FaultInjector(), "bank")
