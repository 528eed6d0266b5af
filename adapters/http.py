"""The one HTTP policy every adapter speaks through: timeouts, retries, rate budget, status → action table.

A :class:`HttpClient` is built per configured system from a :class:`SystemHttpConfig`::

    client = HttpClient(SystemHttpConfig(system="crm", base_url="https://shop.retailcrm.ru/api/v5",
                                         policy=HttpPolicy(rate=BUDGET_PRESETS["amocrm"])),
                        auth=QueryApiKeyAuth(api_key))          # auth schemes live in adapters.rest
    body = client.request_json("GET", "loyalty/accounts", params={"filter[phoneNumber]": phone})

What happens on every call, in order:

1. the system's token bucket (:class:`TokenBucket`, shared by all threads of the system) hands out a slot;
2. the request goes out with connect *and* read timeouts (never without);
3. the status is looked up in the action table (:data:`DEFAULT_STATUS_ACTIONS`, then the system's overrides,
   then the call's overrides): ``ok`` returns, ``ignore`` returns the response for the caller to inspect, the
   ``fail_*`` actions raise a :class:`~connector.errors.FatalRemoteError`, ``retry``/``rate_limited`` raise a
   :class:`~connector.errors.RetriableRemoteError` that tenacity retries with exponential backoff and jitter, or
   after the wait the server asked for (``Retry-After`` seconds or HTTP date, Evotor's ``X-RateLimit-Reset``,
   MoySklad's ``X-Lognex-Retry-After``), clamped to :attr:`HttpPolicy.max_retry_wait`;
4. each attempt is logged (system, method, path, status, duration_ms, attempt) — never a URL query or header.

What ``requests`` reads from the environment — proxies (``HTTPS_PROXY``, ``NO_PROXY`` …), the CA bundle
(``REQUESTS_CA_BUNDLE``), ``.netrc`` credentials — is read once when the client is made, for its base URL, and
passed with every request: every request of a client goes to that scheme and host, so the answer is the same,
and ``requests`` would otherwise look it all up again per request (a tenth of a write's CPU in the sync).

Non-idempotent requests (POST, PATCH) are **not** retried blindly: when the request may have reached the server
(read timeout, connection dropped after sending, 5xx) the client raises a ``RetriableRemoteError`` whose context
has ``outcome_unknown=True`` (see :func:`outcome_unknown`). The caller resolves it by looking its idempotency key
up in the target before writing again; keys are created by callers *outside* this retried call (STYLE §4,
gocardless-pro-python #12). A connection refused or a connect timeout never reached the server and is retried.
``HttpPolicy.retry_unsafe=True`` or ``request(..., idempotent=True)`` lifts this for calls the caller knows are
safe to repeat (a 1C ``Post`` of the same document, a PATCH with the same body).

Errors name the system, method, URL path (no host, no query string), status and a masked body excerpt of at
most 300 characters; the auth scheme's secrets are scrubbed from the excerpt as literal strings as well.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

import requests
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator
from requests.auth import AuthBase
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from adapters.budget import BUDGET_PRESETS, Clock, RateBudget, Sleep, TokenBucket, shared_bucket
from adapters.jsonwire import dumps_json, loads_json
from connector.errors import (
    FatalRemoteError,
    RateLimitedError,
    RemoteConfigError,
    RemoteError,
    RemoteNotFoundError,
    RetriableRemoteError,
)
from connector.logs import get_logger, mask_text

if TYPE_CHECKING:
    from connector.config import SystemConfig

__all__ = [
    "BUDGET_PRESETS",
    "DEFAULT_STATUS_ACTIONS",
    "Action",
    "Clock",
    "HttpClient",
    "HttpPolicy",
    "RateBudget",
    "ResponseClassifier",
    "SecretBearing",
    "Sleep",
    "SystemHttpConfig",
    "TokenBucket",
    "Verdict",
    "action_for_status",
    "dumps_json",
    "loads_json",
    "outcome_unknown",
    "shared_bucket",
]

_log = get_logger("adapters.http")
_BODY_EXCERPT = 300
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# X-RateLimit-Reset is documented by Evotor as "seconds until the window resets"; a value this large can only be
# an epoch timestamp (other APIs send that), so it is read as one instead of waiting for decades.
_EPOCH_THRESHOLD = 1_000_000_000


class Action(StrEnum):
    """What to do with a response: the right-hand side of the status → action table."""

    OK = "ok"
    IGNORE = "ignore"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    FAIL_CONFIG = "fail_config"
    FAIL_NOT_FOUND = "fail_not_found"
    FAIL = "fail"


DEFAULT_STATUS_ACTIONS: Mapping[int, Action] = {
    **dict.fromkeys((400, 401, 403), Action.FAIL_CONFIG),
    404: Action.FAIL_NOT_FOUND,
    429: Action.RATE_LIMITED,
    **dict.fromkeys((408, 500, 502, 503, 504), Action.RETRY),
}
"""Statuses with a fixed meaning; any other 2xx is ``ok``, other 4xx ``fail``, other 5xx ``retry``."""

_HINTS: Mapping[int, str] = {
    400: "the system refused the request shape: check the mapping and the configured fields",
    401: "credentials were refused: check the token, key or password of this system",
    403: "the account lacks rights for this call: grant them in the remote system",
    404: "no such object or endpoint: check base_url and the identifier",
    408: "the system timed out waiting for the request",
    429: "the system's rate limit was hit",
}


def action_for_status(status: int, *overrides: Mapping[int, Action] | None) -> Action:
    """Look a status up: the last override that names it wins, then the default table, then its class.

    Example:
        >>> action_for_status(404, {404: Action.IGNORE})
        <Action.IGNORE: 'ignore'>
    """
    for table in reversed(overrides):
        if table and status in table:
            return table[status]
    if status in DEFAULT_STATUS_ACTIONS:
        return DEFAULT_STATUS_ACTIONS[status]
    if 200 <= status < 300:
        return Action.OK
    return Action.RETRY if status >= 500 else Action.FAIL


@dataclass(frozen=True)
class Verdict:
    """A protocol client's reading of a response body (an ``odata.error`` code, a SOAP fault).

    Attributes:
        action: what to do, overriding the status table.
        reason: a short, already masked explanation for the error message (e.g. the 1C error text).
    """

    action: Action
    reason: str | None = None


ResponseClassifier = Callable[[requests.Response], Verdict | None]
"""Reads a non-2xx response and returns a :class:`Verdict`, or ``None`` to fall back to the status table."""


@runtime_checkable
class SecretBearing(Protocol):
    """An auth scheme that can list its secret values, so they are scrubbed from error excerpts."""

    def secrets(self) -> Iterable[str]:
        """The literal secret strings (tokens, keys, passwords) this scheme sends."""
        ...


class HttpPolicy(BaseModel):
    """Timeouts, retries and budget of one system; every field has a safe default.

    Attributes:
        connect_timeout: seconds to open a connection.
        read_timeout: seconds to wait for response bytes (1C needs 60–300 s on cold start and virtual tables).
        max_retries: retries after the first attempt (so ``max_retries + 1`` attempts in all).
        backoff_base: first backoff in seconds; doubles per retry, with jitter.
        backoff_max: cap of one exponential backoff.
        max_retry_wait: cap of a wait the server asked for (``Retry-After``, ``X-RateLimit-Reset``).
        rate: request budget or the name of a preset (``amocrm``), ``None`` for unlimited.
        status_actions: this system's overrides of the status table (e.g. RetailCRM ``{503: "rate_limited"}``).
        retry_unsafe: retry POST/PATCH even when the outcome is unknown (only for targets that dedupe).
    """

    model_config = ConfigDict(frozen=True)

    connect_timeout: PositiveFloat = 5.0
    read_timeout: PositiveFloat = 60.0
    max_retries: int = Field(default=5, ge=0, le=20)
    backoff_base: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=30.0, ge=0)
    max_retry_wait: float = Field(default=120.0, ge=0)
    rate: RateBudget | None = None
    status_actions: dict[int, Action] = Field(default_factory=dict)
    retry_unsafe: bool = False

    @field_validator("rate", mode="before")
    @classmethod
    def _preset(cls, value: Any) -> Any:
        """A preset name (``rate: amocrm``) stands for its budget."""
        if isinstance(value, str):
            if value not in BUDGET_PRESETS:
                raise ValueError(f"unknown rate preset {value!r}; known: {', '.join(BUDGET_PRESETS)}")
            return BUDGET_PRESETS[value]
        return value


class SystemHttpConfig(BaseModel):
    """Where a system lives and how to talk to it.

    Attributes:
        system: the configured system name; appears in every log line and error.
        base_url: root of the API; request paths are relative to it. No credentials in it.
        policy: timeouts, retries and budget.
        headers: headers sent with every request (``Accept`` and the like — secrets belong in ``auth``).
    """

    model_config = ConfigDict(frozen=True)

    system: str
    base_url: str
    policy: HttpPolicy = Field(default_factory=HttpPolicy)
    headers: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def from_system(
        cls, name: str, system: SystemConfig, *, headers: Mapping[str, str] | None = None, **policy: Any
    ) -> SystemHttpConfig:
        """The HTTP config of ``systems.<name>`` in connector.yaml: base URL, timeouts and budget.

        Args:
            name: the configured system name.
            system: its configuration.
            headers: headers for every request (``Accept: application/vnd.evotor.v2+json``).
            **policy: further :class:`HttpPolicy` fields (RetailCRM: ``status_actions={503: "rate_limited"}``).
        """
        limit = system.rate_limit
        rate = RateBudget(requests=limit.requests, per_seconds=limit.per_seconds) if limit else None
        timeouts = {"connect_timeout": system.timeouts.connect, "read_timeout": system.timeouts.read}
        return cls(system=name, base_url=system.base_url, policy=HttpPolicy(**{**timeouts, "rate": rate, **policy}),
                   headers=dict(headers or {}))  # fmt: skip


def outcome_unknown(error: BaseException) -> bool:
    """True when a write may or may not have been applied: look its idempotency key up before writing again."""
    return isinstance(error, RemoteError) and error.context.get("outcome_unknown") is True


@dataclass(frozen=True)
class _Call:
    method: str
    url: str
    path: str
    params: Any
    body: Any
    headers: Mapping[str, str]
    expect: frozenset[int]
    actions: Mapping[int, Action] | None
    classify: ResponseClassifier | None
    safe_to_repeat: bool


class HttpClient:
    """A system's HTTP client: one session, one budget, one retry policy, one action table.

    Args:
        config: the system's name, base URL and policy.
        session: the ``requests.Session`` to send with (tests pass one under ``responses``; the sandbox too).
        auth: a ``requests`` auth object (see ``adapters.rest``); if it has ``secrets()`` they are scrubbed.
        bucket: the token bucket; defaults to :func:`shared_bucket` for the system when the policy has a rate.
        sleep: how retries wait (tests inject a recorder so nothing really sleeps).
        now: wall-clock time, for ``Retry-After`` HTTP dates.
        rng: randomness for the backoff jitter.
    """

    def __init__(
        self,
        config: SystemHttpConfig,
        session: requests.Session | None = None,
        *,
        auth: AuthBase | None = None,
        bucket: TokenBucket | None = None,
        sleep: Sleep = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.policy = config.policy
        self.session = session if session is not None else requests.Session()
        self.auth = auth
        self._environment: dict[str, Any] = {}
        if session is None:
            self._environment = self._read_environment()
            self.auth = auth or self._environment.pop("auth", None)
        rate = config.policy.rate
        self.bucket = bucket if bucket is not None else (shared_bucket(config.system, rate) if rate else None)
        self._sleep = sleep
        self._now = now
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._origin = urlsplit(config.base_url)

    @property
    def system(self) -> str:
        """The configured system name."""
        return self.config.system

    def _read_environment(self) -> dict[str, Any]:
        """What the own session would read from the environment per request, read once for the base URL.

        The session then stops reading it (``trust_env``); a session given by the caller is left as it is.
        ``auth`` is the ``.netrc`` entry of the host, used when the client has no auth of its own.
        """
        base_url, session = self.config.base_url, self.session
        settings = session.merge_environment_settings(base_url, {}, None, None, None)
        netrc = None if self.auth is not None or session.auth else requests.utils.get_netrc_auth(base_url)
        session.trust_env = False
        found = {"proxies": settings["proxies"], "verify": settings["verify"], "cert": settings["cert"]}
        return {**found, "auth": requests.auth.HTTPBasicAuth(*netrc)} if netrc else found

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (relative to ``base_url``; an absolute URL must be on the same host)."""
        if "://" not in path:
            return f"{self.config.base_url.rstrip('/')}/{path.lstrip('/')}" if path else self.config.base_url
        target = urlsplit(path)
        if (target.scheme, target.netloc) != (self._origin.scheme, self._origin.netloc):
            # Following a link to another host would hand it our credentials.
            raise RemoteConfigError(
                "refusing to send credentials to another host: set the system's base_url or address",
                system=self.system,
                path=_display_path(path),
                host=target.hostname,
            )
        return path

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | str | None = None,
        json: Any = None,
        data: Mapping[str, Any] | bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        expect: int | Collection[int] | None = None,
        actions: Mapping[int, Action] | None = None,
        classify: ResponseClassifier | None = None,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """Send a request under the policy and return the response whose action is ``ok`` or ``ignore``.

        Args:
            method: HTTP method.
            path: path relative to ``base_url`` or an absolute URL on the same host.
            params: query parameters, or a query string already encoded (OData needs ``%20``, not ``+``).
            json: a body to send as JSON (decimals exact, see :func:`dumps_json`).
            data: a raw body, or a mapping to send form-encoded (RetailCRM writes).
            headers: extra headers for this call.
            expect: the 2xx statuses this call accepts (e.g. ``201`` for a create); another 2xx is an error.
            actions: this call's overrides of the status table (e.g. ``{404: Action.IGNORE}`` for a lookup).
            classify: reads the body of a non-2xx response (``odata.error`` codes, SOAP faults).
            idempotent: whether repeating is safe; by default only GET/HEAD/OPTIONS/PUT/DELETE are.

        Raises:
            RemoteConfigError: 400/401/403 or a bad URL — a person must fix something.
            RemoteNotFoundError: 404 (unless the call ignores it).
            RateLimitedError: still rate-limited after the last retry.
            RetriableRemoteError: still failing after the last retry, or ``outcome_unknown`` for an unsafe write.
            FatalRemoteError: any other refusal.
        """
        method = method.upper()
        merged = {**self.config.headers, **(headers or {})}
        body = data.encode("utf-8") if isinstance(data, str) else data
        if json is not None:
            body = dumps_json(json)
            merged.setdefault("Content-Type", "application/json; charset=utf-8")
        safe = idempotent if idempotent is not None else method in _IDEMPOTENT_METHODS
        url = self.url(path)
        expected = frozenset([expect] if isinstance(expect, int) else (expect or ()))
        call = _Call(method, url, _display_path(url), params, body, merged, expected, actions, classify,
                     safe_to_repeat=safe or self.policy.retry_unsafe)  # fmt: skip
        retrying = Retrying(
            stop=stop_after_attempt(self.policy.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_worth_retrying),
            sleep=self._sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._attempt(call, attempt.retry_state.attempt_number)
        raise AssertionError("tenacity returns or raises")  # pragma: no cover

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`request`, then the body parsed with :func:`loads_json`; ``None`` for an ignored or empty one."""
        response = self.request(method, path, **kwargs)
        # Only an ignored status returns outside 2xx, and its body is not the resource asked for.
        if not 200 <= response.status_code < 300 or response.status_code == 204 or not response.content:
            return None
        return self.parse_json(response, method=method)

    def get_json(self, path: str, **kwargs: Any) -> Any:
        """``GET`` ``path`` and return the parsed JSON body (see :meth:`request_json`)."""
        return self.request_json("GET", path, **kwargs)

    def parse_json(self, response: requests.Response, *, method: str = "GET") -> Any:
        """Parse a response body as JSON with decimals; a non-JSON body is a :class:`FatalRemoteError`."""
        try:
            return loads_json(response.content)
        except ValueError:
            raise FatalRemoteError(
                "the system answered with something that is not JSON: check base_url",
                **self._evidence(method, response.url or "", response),
            ) from None

    # -- one attempt -------------------------------------------------------------------------------------

    def _attempt(self, call: _Call, attempt: int) -> requests.Response:
        if self.bucket is not None:
            self.bucket.acquire()
        started = time.perf_counter()
        try:
            timeout = (self.policy.connect_timeout, self.policy.read_timeout)
            response = self.session.request(call.method, call.url, params=call.params, data=call.body,
                                            headers=dict(call.headers), auth=self.auth, timeout=timeout,
                                            **self._environment)  # fmt: skip
        except requests.RequestException as exc:
            self._log_attempt(call, attempt, started, None, type(exc).__name__)
            raise self._transport_error(call, exc, attempt) from None
        self._log_attempt(call, attempt, started, response.status_code, None)
        return self._judge(call, response, attempt)

    def _judge(self, call: _Call, response: requests.Response, attempt: int) -> requests.Response:
        status = response.status_code
        verdict = call.classify(response) if call.classify and not 200 <= status < 300 else None
        action = (
            verdict.action if verdict else action_for_status(status, self.policy.status_actions, call.actions)
        )
        if action is Action.OK and call.expect and status not in call.expect:
            action = Action.FAIL
        if action in (Action.OK, Action.IGNORE):
            return response
        reason = verdict.reason if verdict and verdict.reason else _HINTS.get(status, "the request failed")
        raise self._status_error(call, response, action, reason, attempt)

    def _status_error(
        self, call: _Call, response: requests.Response, action: Action, reason: str, attempt: int
    ) -> RemoteError:
        evidence = {**self._evidence(call.method, call.url, response), "attempt": attempt}
        message = f"{self.system}: {call.method} {call.path} returned {response.status_code}: {reason}"
        if action is Action.RATE_LIMITED:
            return RateLimitedError(message, retry_after=self._server_wait(response), **evidence)
        if action is Action.RETRY:
            if not call.safe_to_repeat:
                return _unknown_outcome(message, evidence)
            return RetriableRemoteError(message, retry_after=self._server_wait(response), **evidence)
        error_type = {Action.FAIL_CONFIG: RemoteConfigError, Action.FAIL_NOT_FOUND: RemoteNotFoundError}
        return error_type.get(action, FatalRemoteError)(message, **evidence)

    def _transport_error(self, call: _Call, exc: requests.RequestException, attempt: int) -> RemoteError:
        # str(exc) holds the full URL, query string included: only the exception's class name is kept.
        kind = type(exc).__name__
        evidence = {"system": self.system, "method": call.method, "path": call.path, "attempt": attempt}
        if not isinstance(
            exc, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError
        ):
            return RemoteConfigError(
                f"{self.system}: {call.method} {call.path} could not be sent ({kind})", **evidence
            )
        message = f"{self.system}: {call.method} {call.path} failed: {kind}"
        if call.safe_to_repeat or _never_sent(exc):
            return RetriableRemoteError(message, **evidence)
        return _unknown_outcome(message, evidence)

    def _evidence(self, method: str, url: str, response: requests.Response) -> dict[str, Any]:
        path, status, body = _display_path(url), response.status_code, self._excerpt(response)
        return {"system": self.system, "method": method, "path": path, "status": status, "body": body}

    def _excerpt(self, response: requests.Response) -> str:
        # UTF-8 whatever the header says: requests guesses latin-1 for text/* without a charset, and 1C is UTF-8.
        text = response.content[: _BODY_EXCERPT * 8].decode("utf-8", errors="replace")
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return mask_text(" ".join(text.split()))[:_BODY_EXCERPT]

    def _secrets(self) -> list[str]:
        if isinstance(self.auth, SecretBearing):
            return [secret for secret in self.auth.secrets() if len(secret) >= 4]
        return []

    def _log_attempt(
        self, call: _Call, attempt: int, started: float, status: int | None, error: str | None
    ) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        fields = {"system": self.system, "method": call.method, "path": call.path, "status": status,
                  "duration_ms": duration_ms, "attempt": attempt}  # fmt: skip
        if error is None and status is not None and status < 400:
            _log.info("http.request", **fields)
        else:
            _log.warning("http.request", error=error, **fields)

    # -- waiting -----------------------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        asked = error.context.get("retry_after") if isinstance(error, RemoteError) else None
        if asked is not None:
            return min(max(float(asked), 0.0), self.policy.max_retry_wait)
        ceiling = min(self.policy.backoff_max, self.policy.backoff_base * 2.0 ** (state.attempt_number - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _server_wait(self, response: requests.Response) -> float | None:
        """Seconds the server asked us to wait, from the first header of :data:`_WAIT_HEADERS` it sent."""
        for header, parse in _WAIT_HEADERS.items():
            value = response.headers.get(header, "").strip()
            wait = parse(value, self._now()) if value else None
            if wait is not None:
                return max(wait, 0.0)
        return None


def _seconds_or_http_date(value: str, now: datetime) -> float | None:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() - now.timestamp()


def _reset_seconds(value: str, now: datetime) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds - now.timestamp() if seconds > _EPOCH_THRESHOLD else seconds


def _milliseconds(value: str, _now: datetime) -> float | None:
    try:
        return float(value) / 1000
    except ValueError:
        return None


_WAIT_HEADERS: Mapping[str, Callable[[str, datetime], float | None]] = {
    "Retry-After": _seconds_or_http_date,  # RFC 9110: seconds or an HTTP date
    "X-RateLimit-Reset": _reset_seconds,  # Evotor: seconds until the window resets
    "X-Lognex-Retry-After": _milliseconds,  # MoySklad: milliseconds
}


def _unknown_outcome(message: str, evidence: dict[str, Any]) -> RetriableRemoteError:
    return RetriableRemoteError(f"{message} (outcome unknown: look the write up before repeating)",
                                outcome_unknown=True, **evidence)  # fmt: skip


def _worth_retrying(error: BaseException) -> bool:
    return isinstance(error, RetriableRemoteError) and not outcome_unknown(error)


def _never_sent(exc: BaseException) -> bool:
    """True when the connection was never established, so the server cannot have seen the request."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NewConnectionError | ConnectTimeoutError | ConnectionRefusedError):
            return True
        stack.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
    return False


def _display_path(url: str) -> str:
    """The URL path for logs and errors: no scheme, host, credentials or query string; phones masked."""
    return mask_text(unquote(urlsplit(url).path) or "/")
