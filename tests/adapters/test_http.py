"""The HTTP policy: retries, waits, budget, status table, unknown outcomes and secrecy of errors and logs."""

from __future__ import annotations

import http.server
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses
from structlog.testing import capture_logs
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from adapters.http import (
    BUDGET_PRESETS,
    Action,
    HttpClient,
    HttpPolicy,
    RateBudget,
    SystemHttpConfig,
    TokenBucket,
    Verdict,
    action_for_status,
    dumps_json,
    outcome_unknown,
    shared_bucket,
)
from adapters.rest import BasicAuth, BearerAuth, MultiAuth, QueryApiKeyAuth
from connector.errors import (
    FatalRemoteError,
    RateLimitedError,
    RemoteConfigError,
    RemoteNotFoundError,
    RetriableRemoteError,
)

BASE = "https://crm.example.ru/api/v5"
NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
TOKEN = "tok-SECRET-7f3a9c"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


class Sleeps(list[float]):
    """Records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(sleeps: Sleeps, auth: Any = None, **policy: Any) -> HttpClient:
    config = SystemHttpConfig(system="crm", base_url=BASE, policy=HttpPolicy(**policy))
    return HttpClient(config, auth=auth, sleep=sleeps, now=lambda: NOW, rng=random.Random(7))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retries_retriable_status_then_succeeds(mocked: responses.RequestsMock, status: int) -> None:
    mocked.get(f"{BASE}/accounts", status=status)
    mocked.get(f"{BASE}/accounts", json={"id": 1, "balance": 12.5})
    sleeps = Sleeps()
    body = make_client(sleeps).get_json("accounts")
    assert body == {"id": 1, "balance": Decimal("12.5")}
    assert isinstance(body["balance"], Decimal)
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    "error", [requests.ConnectionError(), requests.ReadTimeout(), requests.ConnectTimeout()]
)
def test_retries_connection_errors_then_succeeds(mocked: responses.RequestsMock, error: Exception) -> None:
    mocked.get(f"{BASE}/accounts", body=error)
    mocked.get(f"{BASE}/accounts", json=[])
    assert make_client(Sleeps()).get_json("accounts") == []


def test_gives_up_after_max_retries_with_exponential_jittered_backoff(mocked: responses.RequestsMock) -> None:
    for _ in range(4):
        mocked.get(f"{BASE}/accounts", status=502, body="bad gateway")
    sleeps = Sleeps()
    client = make_client(sleeps, max_retries=3, backoff_base=1.0, backoff_max=3.0)
    with pytest.raises(RetriableRemoteError) as caught:
        client.get_json("accounts")
    assert caught.value.status == 502
    assert caught.value.context["attempt"] == 4
    assert len(sleeps) == 3
    # equal jitter: between half and all of min(max, base * 2^n)
    for wait, ceiling in zip(sleeps, [1.0, 2.0, 3.0], strict=True):
        assert ceiling / 2 <= wait <= ceiling


def test_gives_up_on_persistent_connection_error(mocked: responses.RequestsMock) -> None:
    for _ in range(3):
        mocked.get(f"{BASE}/accounts", body=requests.ConnectionError(f"{BASE}/accounts?apiKey={TOKEN}"))
    with pytest.raises(RetriableRemoteError) as caught:
        make_client(Sleeps(), max_retries=2).get_json("accounts")
    assert "ConnectionError" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_rate_limited_gives_rate_limited_error_after_retries(mocked: responses.RequestsMock) -> None:
    for _ in range(2):
        mocked.get(f"{BASE}/accounts", status=429, headers={"Retry-After": "3"})
    sleeps = Sleeps()
    with pytest.raises(RateLimitedError) as caught:
        make_client(sleeps, max_retries=1).get_json("accounts")
    assert caught.value.retry_after == 3.0
    assert sleeps == [3.0]


def test_retry_after_seconds_and_http_date_honoured(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/a", status=429, headers={"Retry-After": "7"})
    mocked.get(f"{BASE}/a", status=503, headers={"Retry-After": "Fri, 20 Nov 2026 12:00:12 GMT"})
    mocked.get(f"{BASE}/a", json={})
    sleeps = Sleeps()
    make_client(sleeps).get_json("a")
    assert sleeps == [7.0, 12.0]


def test_retry_after_is_clamped_to_the_maximum(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/a", status=429, headers={"Retry-After": "3600"})
    mocked.get(f"{BASE}/a", status=429, headers={"Retry-After": "Fri, 20 Nov 2026 14:00:00 GMT"})
    mocked.get(f"{BASE}/a", json={})
    sleeps = Sleeps()
    make_client(sleeps, max_retry_wait=45).get_json("a")
    assert sleeps == [45.0, 45.0]


def test_evotor_rate_limit_reset_is_a_delay_in_seconds(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/a", status=429, headers={"X-RateLimit-Limit": "100", "X-RateLimit-Reset": "9"})
    reset_epoch = str(int(NOW.timestamp()) + 4)
    mocked.get(f"{BASE}/a", status=429, headers={"X-RateLimit-Reset": reset_epoch})
    mocked.get(f"{BASE}/a", json={})
    sleeps = Sleeps()
    make_client(sleeps).get_json("a")
    assert sleeps == [9.0, 4.0]


@pytest.mark.parametrize(
    ("status", "error_type", "hint"),
    [
        (400, RemoteConfigError, "request shape"),
        (401, RemoteConfigError, "credentials"),
        (403, RemoteConfigError, "rights"),
        (404, RemoteNotFoundError, "no such object"),
        (409, FatalRemoteError, "failed"),
    ],
)
def test_client_errors_are_not_retried_and_say_where(
    mocked: responses.RequestsMock, status: int, error_type: type[Exception], hint: str
) -> None:
    mocked.get(f"{BASE}/customers/42", status=status, json={"errorMsg": "nope"})
    sleeps = Sleeps()
    with pytest.raises(error_type) as caught:
        make_client(sleeps).get_json("customers/42")
    text = str(caught.value)
    assert sleeps == []
    assert f"crm: GET /api/v5/customers/42 returned {status}" in text
    assert hint in text
    assert "nope" in text  # the body excerpt


def test_error_and_log_never_carry_secrets(mocked: responses.RequestsMock) -> None:
    phone = "+79161234567"
    echoed = f'{{"errorMsg": "bad key {TOKEN} for {phone}", "password": "hunter2", "auth": "Basic {TOKEN}"}}'
    mocked.get(f"{BASE}/customers", status=401, body=echoed)
    auth = MultiAuth(QueryApiKeyAuth(TOKEN), BearerAuth(TOKEN), BasicAuth("Обмен", "pa55-word-x"))
    with capture_logs() as logs, pytest.raises(RemoteConfigError) as caught:
        make_client(Sleeps(), auth=auth).get_json("customers", params={"filter[phone]": phone})
    sent = mocked.calls[0].request
    assert f"apiKey={TOKEN}" in str(sent.url)  # the key did go out, in the query
    text = str(caught.value) + repr(caught.value.context) + repr(logs)
    for secret in (TOKEN, "hunter2", "pa55-word-x", phone, "filter", str(sent.headers["Authorization"])):
        assert secret not in text
    assert "+7********67" in text  # masked, not dropped
    assert logs[0]["path"] == "/api/v5/customers"
    assert logs[0]["status"] == 401


def test_body_excerpt_is_short(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/a", status=400, body="x" * 5000)
    with pytest.raises(RemoteConfigError) as caught:
        make_client(Sleeps()).get_json("a")
    assert len(caught.value.context["body"]) == 300


def test_each_attempt_is_logged(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/a", status=500)
    mocked.get(f"{BASE}/a", json={})
    with capture_logs() as logs:
        make_client(Sleeps()).get_json("a")
    assert [(e["status"], e["attempt"], e["log_level"]) for e in logs] == [
        (500, 1, "warning"),
        (200, 2, "info"),
    ]
    assert {"system", "method", "path", "duration_ms"} <= set(logs[1])


def test_post_5xx_is_not_retried_and_flags_unknown_outcome(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/loyalty/credit", status=502)
    with pytest.raises(RetriableRemoteError) as caught:
        make_client(Sleeps()).request_json("POST", "loyalty/credit", json={"amount": Decimal("10.00")})
    assert outcome_unknown(caught.value)
    assert "outcome unknown" in str(caught.value)


def test_post_read_timeout_or_dropped_connection_is_unknown(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/credit", body=requests.ReadTimeout())
    mocked.post(f"{BASE}/credit", body=requests.ConnectionError(ProtocolError("Connection aborted.")))
    client = make_client(Sleeps())
    for _ in range(2):
        with pytest.raises(RetriableRemoteError) as caught:
            client.request("POST", "credit", json={})
        assert outcome_unknown(caught.value)


def test_post_never_sent_is_retried(mocked: responses.RequestsMock) -> None:
    refused = requests.ConnectionError(MaxRetryError(None, "/credit", NewConnectionError(None, "refused")))  # type: ignore[arg-type]
    mocked.post(f"{BASE}/credit", body=requests.ConnectTimeout())
    mocked.post(f"{BASE}/credit", body=refused)
    mocked.post(f"{BASE}/credit", status=429)  # refused for rate: not processed, safe to repeat
    mocked.post(f"{BASE}/credit", status=201, json={"id": 9})
    sleeps = Sleeps()
    assert make_client(sleeps).request_json("POST", "credit", json={}, expect=201) == {"id": 9}
    assert len(sleeps) == 3


def test_post_retried_when_caller_says_idempotent(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/doc/Post", status=500)
    mocked.post(f"{BASE}/doc/Post", status=200)
    response = make_client(Sleeps()).request("POST", "doc/Post", idempotent=True)
    assert response.status_code == 200


def test_unexpected_success_status_is_an_error(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/credit", status=200, json={})
    with pytest.raises(FatalRemoteError, match="returned 200"):
        make_client(Sleeps()).request("POST", "credit", json={}, expect=201)


def test_per_system_and_per_call_overrides() -> None:
    assert action_for_status(503) is Action.RETRY
    assert action_for_status(503, {503: Action.RATE_LIMITED}) is Action.RATE_LIMITED
    assert action_for_status(404, {404: Action.FAIL}, {404: Action.IGNORE}) is Action.IGNORE
    assert action_for_status(418) is Action.FAIL
    assert action_for_status(507) is Action.RETRY
    assert action_for_status(204) is Action.OK


def test_retailcrm_503_is_rate_limited_and_lookup_ignores_404(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/a", status=503)
    mocked.get(f"{BASE}/a", status=503)
    mocked.get(f"{BASE}/a", status=404, json={"success": False})
    client = make_client(Sleeps(), max_retries=1, status_actions={503: Action.RATE_LIMITED})
    with pytest.raises(RateLimitedError):
        client.get_json("a")
    assert client.get_json("a", actions={404: Action.IGNORE}) is None


def test_classifier_overrides_the_status_table(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/a", status=500, json={"code": "NOT_FOUND"})

    def classify(response: requests.Response) -> Verdict | None:
        return (
            Verdict(Action.FAIL_NOT_FOUND, "the account is gone")
            if b"NOT_FOUND" in response.content
            else None
        )

    with pytest.raises(RemoteNotFoundError, match="the account is gone"):
        make_client(Sleeps()).get_json("a", classify=classify)


def test_refuses_to_send_credentials_to_another_host() -> None:
    with pytest.raises(RemoteConfigError, match="another host"):
        make_client(Sleeps()).get_json("https://evil.example.com/api/v5/a")


def test_absolute_url_on_the_same_host_is_allowed(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/a", json={"ok": True})
    assert make_client(Sleeps()).get_json(f"{BASE}/a") == {"ok": True}


def test_timeouts_are_always_set(mocked: responses.RequestsMock) -> None:
    seen: list[Any] = []

    def capture(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        seen.append(request.req_kwargs["timeout"])  # type: ignore[attr-defined]
        return 200, {}, "{}"

    mocked.add_callback(responses.GET, f"{BASE}/a", callback=capture)
    make_client(Sleeps()).get_json("a")
    assert seen == [(5.0, 60.0)]


def test_non_json_body_is_a_fatal_error(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/a", body="<html>login</html>")
    with pytest.raises(FatalRemoteError, match="not JSON"):
        make_client(Sleeps()).get_json("a")


def test_json_body_keeps_decimals_exact(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/a", json={})
    make_client(Sleeps()).request(
        "POST", "a", json={"amount": Decimal("0.10"), "name": "Иван"}, idempotent=True
    )
    assert mocked.calls[0].request.body == '{"amount":0.10,"name":"Иван"}'.encode()
    assert dumps_json([Decimal("-1E+2"), Decimal("12.345")]) == b"[-100,12.345]"
    with pytest.raises(ValueError, match="NaN"):
        dumps_json({"x": Decimal("NaN")})


def test_basic_auth_is_utf8(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/a", json={})
    make_client(Sleeps(), auth=BasicAuth("Обмен", "пароль")).get_json("a")
    assert mocked.calls[0].request.headers["Authorization"] == "Basic 0J7QsdC80LXQvTrQv9Cw0YDQvtC70Yw="


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_token_bucket_enforces_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(BUDGET_PRESETS["bitrix24"], clock=clock, sleep=clock.sleep)
    for _ in range(10):
        bucket.acquire()
    # a burst of 2, then one every 0.5 s
    assert clock.now - 100.0 == pytest.approx(4.0)


def test_token_bucket_moysklad_window() -> None:
    clock = FakeClock()
    bucket = TokenBucket(BUDGET_PRESETS["moysklad"], clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(60)]
    assert waits[:45] == [0.0] * 45
    assert clock.now - 100.0 == pytest.approx(15 * 3 / 45)


def test_token_bucket_refills_while_idle() -> None:
    clock = FakeClock()
    bucket = TokenBucket(RateBudget(requests=7, per_seconds=1), clock=clock, sleep=clock.sleep)
    for _ in range(7):
        assert bucket.acquire() == 0.0
    clock.now += 1.0
    assert [bucket.acquire() for _ in range(7)] == [0.0] * 7
    assert bucket.acquire() == pytest.approx(1 / 7)


def test_token_bucket_is_shared_by_threads() -> None:
    waits: list[float] = []
    lock = threading.Lock()
    bucket = TokenBucket(RateBudget(requests=5, per_seconds=1), sleep=lambda s: None)

    def worker() -> None:
        for _ in range(5):
            wait = bucket.acquire()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 20 requests against a burst of 5: 15 had to wait, each reservation a distinct slot
    assert sum(1 for w in waits if w > 0) >= 15
    assert max(waits) >= 14 / 5


def test_client_uses_the_shared_bucket_of_its_system(mocked: responses.RequestsMock) -> None:
    config = SystemHttpConfig(
        system="amo-test", base_url=BASE, policy=HttpPolicy(rate=BUDGET_PRESETS["amocrm"])
    )
    first, second = HttpClient(config), HttpClient(config)
    assert first.bucket is second.bucket is shared_bucket("amo-test", BUDGET_PRESETS["amocrm"])
    assert HttpClient(SystemHttpConfig(system="x", base_url=BASE)).bucket is None


def test_moysklad_retry_after_is_in_milliseconds(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/a", status=429, headers={"X-Lognex-Retry-After": "1500"})
    mocked.get(f"{BASE}/a", json={})
    sleeps = Sleeps()
    make_client(sleeps).get_json("a")
    assert sleeps == [1.5]


def test_rate_preset_by_name_and_unknown_preset() -> None:
    assert HttpPolicy.model_validate({"rate": "moysklad"}).rate == RateBudget(requests=45, per_seconds=3)
    assert HttpPolicy.model_validate({"rate": {"requests": 10, "per_seconds": 2}}).rate == RateBudget(
        requests=10, per_seconds=2
    )
    with pytest.raises(ValueError, match="unknown rate preset"):
        HttpPolicy.model_validate({"rate": "bitrix"})
    policy = HttpPolicy.model_validate({"status_actions": {503: "rate_limited"}})
    assert policy.status_actions == {503: Action.RATE_LIMITED}


def test_retry_unsafe_policy_retries_posts(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/credit", status=503)
    mocked.post(f"{BASE}/credit", status=201, json={"id": 1})
    assert make_client(Sleeps(), retry_unsafe=True).request_json("POST", "credit", json={}) == {"id": 1}


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_idempotent_methods_are_retried(mocked: responses.RequestsMock, method: str) -> None:
    mocked.add(method, f"{BASE}/a", status=504)
    mocked.add(method, f"{BASE}/a", status=200)
    assert make_client(Sleeps()).request(method, "a").status_code == 200


def test_no_retries_when_max_retries_is_zero(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/a", status=500)
    sleeps = Sleeps()
    with pytest.raises(RetriableRemoteError):
        make_client(sleeps, max_retries=0).get_json("a")
    assert sleeps == []


def test_cyrillic_body_excerpt_is_readable(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/a", status=400, body="Ошибка разбора".encode(), content_type="text/plain")
    with pytest.raises(RemoteConfigError, match="Ошибка разбора"):
        make_client(Sleeps()).get_json("a")


def test_config_from_a_configured_system() -> None:
    from connector.config import SystemConfig

    system = SystemConfig.model_validate(
        {"adapter": "crm", "base_url": "https://shop.retailcrm.ru/", "api_key": "k",
         "rate_limit": {"requests": 10, "per_seconds": 1}, "timeouts": {"connect": 3, "read": 90}}
    )  # fmt: skip
    config = SystemHttpConfig.from_system("crm", system, status_actions={503: "rate_limited"})
    assert config.system == "crm"
    assert config.base_url == "https://shop.retailcrm.ru"
    assert config.policy.rate == RateBudget(requests=10, per_seconds=1)
    assert (config.policy.connect_timeout, config.policy.read_timeout) == (3.0, 90.0)
    assert config.policy.status_actions == {503: Action.RATE_LIMITED}


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 200 to anything and records the request line (absolute-form when it came as a proxy)."""

    lines: list[str]

    def do_GET(self) -> None:
        type(self).lines.append(self.requestline)
        if self.headers.get("Authorization"):
            type(self).lines.append(f"Authorization: {self.headers['Authorization']}")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server (proxy or origin) and the request lines it received."""
    handler = type("Handler", (_Recorder,), {"lines": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.lines
    server.shutdown()
    server.server_close()


def test_proxy_variables_are_honoured_though_read_once(
    recorder: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, lines = recorder
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = HttpClient(SystemHttpConfig(system="crm", base_url="http://crm.invalid/api"))
    monkeypatch.delenv("HTTP_PROXY")  # read when the client was made: later changes do not matter
    assert client.get_json("accounts", params={"page": 2}) == {}
    assert client.get_json("accounts") == {}
    assert lines == [
        "GET http://crm.invalid/api/accounts?page=2 HTTP/1.1",  # through the proxy: the host never resolved
        "GET http://crm.invalid/api/accounts HTTP/1.1",
    ]


def test_no_proxy_sends_straight_to_the_host(
    recorder: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    origin, lines = recorder
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = HttpClient(SystemHttpConfig(system="crm", base_url=f"{origin}/api"))
    assert client.get_json("accounts") == {}
    assert lines == ["GET /api/accounts HTTP/1.1"]


def test_netrc_credentials_of_the_host_are_sent_when_the_client_has_no_auth(
    recorder: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    origin, lines = recorder
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login robot password pw\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert HttpClient(SystemHttpConfig(system="crm", base_url=origin)).get_json("a") == {}
    assert (
        HttpClient(SystemHttpConfig(system="crm", base_url=origin), auth=BearerAuth("t-1234")).get_json("b")
        == {}
    )
    assert lines == [
        "GET /a HTTP/1.1",
        "Authorization: Basic cm9ib3Q6cHc=",
        "GET /b HTTP/1.1",
        "Authorization: Bearer t-1234",
    ]
