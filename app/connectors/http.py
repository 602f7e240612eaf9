"""Fetching records from a provider's HTTP endpoint.

The provider protocol (what :mod:`tests.support.provider_sim` serves):

* ``POST <token_url>`` with HTTP Basic client credentials and
  ``grant_type=client_credentials`` → ``{"access_token", "token_type": "Bearer", "expires_in"}``;
* ``GET <base_url>/records/<scope>?uscc=<uscc>&months=YYYY-MM,YYYY-MM`` with
  ``Authorization: Bearer <token>`` → ``{"tables": {<table>: [<row>, ...]}}``.

Resilience: every request has a timeout; timeouts, connection errors and 5xx answers are
retried with exponential backoff and full jitter, 4xx answers are not (they will not get
better); a 401 drops the cached token and asks for a new one once. A circuit breaker per
provider opens after ``breaker_threshold`` consecutive failed attempts, refuses calls for
``breaker_cooldown`` seconds, then lets one trial call through (half-open): success closes it,
failure opens it again. Breakers and tokens live per process, shared by every job.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.connectors.base import (
    ConnectorError,
    FailureReason,
    Tables,
    check_request,
    validate_tables,
)

TOKEN_EXPIRY_MARGIN = 30.0  # seconds before expiry a cached token is renewed


@dataclass(frozen=True)
class ProviderEndpoint:
    """Where and as whom to fetch one scope."""

    name: str
    base_url: str
    client_id: str
    client_secret: str
    token_url: str | None = None  # default: <base_url>/oauth/token

    @property
    def resolved_token_url(self) -> str:
        return self.token_url or self.base_url.rstrip("/") + "/oauth/token"


@dataclass(frozen=True)
class RetryPolicy:
    timeout: float = 10.0  # seconds, per request
    retries: int = 3  # attempts after the first
    backoff_base: float = 0.5  # seconds; attempt n waits up to base * 2**n
    backoff_max: float = 8.0
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0  # seconds

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)]."""
        return rng.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))


class BreakerState:
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """Counts consecutive failures of one provider; thread-safe."""

    threshold: int
    cooldown: float
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    _trial_running: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self.opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a request go out now? In half-open state only one trial at a time."""
        with self._lock:
            state = self._state()
            if state == BreakerState.CLOSED:
                return True
            if state == BreakerState.HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def succeeded(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None
            self._trial_running = False

    def failed(self) -> None:
        with self._lock:
            self.failures += 1
            if self._trial_running or self.failures >= self.threshold:
                self.opened_at = self.clock()
            self._trial_running = False

    def released(self) -> None:
        """A trial ended with an answer that says nothing about the provider's health."""
        with self._lock:
            self._trial_running = False


@dataclass
class _CachedToken:
    value: str
    expires_at: float


_breakers: dict[str, CircuitBreaker] = {}
_tokens: dict[tuple[str, str], _CachedToken] = {}
_registry_lock = threading.Lock()


def breaker_for(
    base_url: str, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic
) -> CircuitBreaker:
    with _registry_lock:
        breaker = _breakers.get(base_url)
        if breaker is None:
            breaker = _breakers[base_url] = CircuitBreaker(
                policy.breaker_threshold, policy.breaker_cooldown, clock
            )
        return breaker


def reset_state() -> None:
    """Forget every breaker and cached token of this process."""
    with _registry_lock:
        _breakers.clear()
        _tokens.clear()


class _RetryableFailure(Exception):
    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class HttpConnector:
    """Fetches each scope from the provider configured for it.

    ``sleep`` and ``clock`` are injectable so tests need not wait for real backoff delays.
    """

    def __init__(
        self,
        endpoints: dict[str, ProviderEndpoint],
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    def provider_name(self, scope: str) -> str:
        return self._endpoint(scope).name

    def _endpoint(self, scope: str) -> ProviderEndpoint:
        endpoint = self.endpoints.get(scope)
        if endpoint is None:
            raise ConnectorError(
                FailureReason.NOT_CONFIGURED, f"no provider endpoint is configured for {scope!r}"
            )
        return endpoint

    def breaker(self, scope: str) -> CircuitBreaker:
        return breaker_for(self._endpoint(scope).base_url, self.policy, self._clock)

    def fetch(self, uscc: str, scope: str, months: list[str]) -> Tables:
        check_request(uscc, scope, months)
        endpoint = self._endpoint(scope)
        breaker = self.breaker(scope)
        url = endpoint.base_url.rstrip("/") + f"/records/{scope}"
        params = {"uscc": uscc, "months": ",".join(sorted(set(months)))}
        with httpx.Client(timeout=self.policy.timeout, follow_redirects=False) as client:
            response = self._call(
                breaker,
                lambda: self._get(client, endpoint, url, params),
                what=f"{endpoint.name} {scope}",
            )
        try:
            payload = response.json()
        except ValueError as exc:
            raise ConnectorError(
                FailureReason.MALFORMED, f"{endpoint.name} answered with something not JSON"
            ) from exc
        return validate_tables(payload, uscc, scope, months)

    # -- one logical call with retries ----------------------------------------------------

    def _call(
        self, breaker: CircuitBreaker, send: Callable[[], httpx.Response], what: str
    ) -> httpx.Response:
        last = _RetryableFailure(FailureReason.UNAVAILABLE, "no attempt was made")
        tried = False
        for attempt in range(self.policy.retries + 1):
            if attempt:
                self._sleep(self.policy.delay(attempt - 1, self._rng))
            if not breaker.allow():
                detail = f"{what}: circuit open after {breaker.failures} consecutive failures"
                if tried:
                    detail += f" (last: {last.detail})"
                raise ConnectorError(FailureReason.CIRCUIT_OPEN, detail)
            try:
                response = send()
            except _RetryableFailure as failure:
                breaker.failed()
                last, tried = failure, True
                continue
            except BaseException:
                # Not a sign of the provider's health (a 4xx, a bug): free a half-open trial.
                breaker.released()
                raise
            breaker.succeeded()
            return response
        raise ConnectorError(
            last.reason, f"{what}: {last.detail} ({self.policy.retries + 1} attempts)"
        )

    def _send(self, client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise _RetryableFailure(
                FailureReason.TIMEOUT, f"no answer within {self.policy.timeout:g} s"
            ) from exc
        except httpx.TransportError as exc:
            raise _RetryableFailure(
                FailureReason.UNAVAILABLE, f"connection failed ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:  # redirects, undecodable bodies
            raise ConnectorError(
                FailureReason.MALFORMED, f"invalid HTTP answer ({type(exc).__name__})"
            ) from exc
        if response.status_code >= 500:
            raise _RetryableFailure(
                FailureReason.UNAVAILABLE, f"HTTP {response.status_code} from {url}"
            )
        return response

    def _get(
        self,
        client: httpx.Client,
        endpoint: ProviderEndpoint,
        url: str,
        params: dict[str, str],
    ) -> httpx.Response:
        token = self._token(client, endpoint)
        response = self._send(client, "GET", url, params=params, headers=_bearer(token))
        if response.status_code == 401:
            # The token may have been revoked or expired early: get a fresh one, once.
            self._forget_token(endpoint)
            token = self._token(client, endpoint)
            response = self._send(client, "GET", url, params=params, headers=_bearer(token))
            if response.status_code == 401:
                raise ConnectorError(
                    FailureReason.AUTH, f"{endpoint.name} refused a freshly issued token"
                )
        if response.status_code >= 400:
            raise ConnectorError(
                FailureReason.REJECTED,
                f"{endpoint.name} refused the request: HTTP {response.status_code}",
            )
        if response.status_code != 200:
            raise ConnectorError(
                FailureReason.MALFORMED,
                f"{endpoint.name} answered HTTP {response.status_code}, expected 200",
            )
        return response

    # -- OAuth2 client credentials --------------------------------------------------------

    def _token(self, client: httpx.Client, endpoint: ProviderEndpoint) -> str:
        key = (endpoint.resolved_token_url, endpoint.client_id)
        now = self._clock()
        with _registry_lock:
            cached = _tokens.get(key)
        if cached is not None and cached.expires_at - TOKEN_EXPIRY_MARGIN > now:
            return cached.value
        response = self._send(
            client,
            "POST",
            endpoint.resolved_token_url,
            data={"grant_type": "client_credentials"},
            auth=(endpoint.client_id, endpoint.client_secret),
        )
        if response.status_code in (400, 401):
            raise ConnectorError(
                FailureReason.AUTH,
                f"{endpoint.name} refused our client credentials: HTTP {response.status_code}",
            )
        if response.status_code != 200:
            raise ConnectorError(
                FailureReason.REJECTED,
                f"{endpoint.name} token endpoint answered HTTP {response.status_code}",
            )
        try:
            body = response.json()
            value = body["access_token"]
            expires_in = float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConnectorError(
                FailureReason.MALFORMED, f"{endpoint.name} token answer lacks an access_token"
            ) from exc
        if (
            not isinstance(value, str)
            or not value
            or str(body.get("token_type", "")).lower() != ("bearer")
        ):
            raise ConnectorError(
                FailureReason.MALFORMED, f"{endpoint.name} did not issue a bearer token"
            )
        with _registry_lock:
            _tokens[key] = _CachedToken(value, now + expires_in)
        return value

    def _forget_token(self, endpoint: ProviderEndpoint) -> None:
        with _registry_lock:
            _tokens.pop((endpoint.resolved_token_url, endpoint.client_id), None)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}
