"""HttpConnector against the provider simulator on loopback: retries, timeouts, garbage,
the circuit breaker and the token cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.connectors import (
    ConnectorError,
    FailureReason,
    HttpConnector,
    RetryPolicy,
    SandboxConnector,
)
from app.connectors import http as http_connector
from app.connectors.http import BreakerState
from tests.support.provider_sim import ProviderSimulator

USCC = "91350102MA2XYZ1234"
MONTHS = [f"2025-{m:02d}" for m in range(1, 13)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    http_connector.reset_state()
    yield
    http_connector.reset_state()


@pytest.fixture
def sim() -> Iterator[ProviderSimulator]:
    with ProviderSimulator() as simulator:
        yield simulator


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make(
    sim: ProviderSimulator,
    sleeps: list[float],
    clock: FakeClock | None = None,
    **policy: float,
) -> HttpConnector:
    settings = {
        "timeout": 2.0,
        "retries": 3,
        "backoff_base": 0.1,
        "backoff_max": 0.4,
        "breaker_threshold": 50,
        "breaker_cooldown": 30.0,
        **policy,
    }
    return HttpConnector(
        {scope: sim.endpoint(scope) for scope in ("tax", "utilities")},
        RetryPolicy(**settings),  # type: ignore[arg-type]
        sleep=sleeps.append,
        clock=clock or FakeClock(),
    )


def test_fetch_returns_the_providers_records_and_reuses_the_token(sim, sleeps):
    connector = make(sim, sleeps)
    tables = connector.fetch(USCC, "tax", MONTHS)
    assert tables == SandboxConnector().fetch(USCC, "tax", MONTHS)
    assert set(tables) == {"tax", "tax_credit_rating"}
    assert tables["tax"] and all(row["uscc"] == USCC for row in tables["tax"])
    connector.fetch(USCC, "utilities", MONTHS)
    assert sim.token_requests == 1, "the token is cached until it expires"
    assert sim.record_requests == 2
    assert sleeps == []
    assert connector.provider_name("tax") == "sim-tax"


def test_5xx_is_retried_with_growing_jittered_backoff_then_succeeds(sim, sleeps):
    sim.fail_next(3, status=503)
    tables = make(sim, sleeps).fetch(USCC, "tax", MONTHS)
    assert tables["tax"]
    assert sim.record_requests == 4
    assert len(sleeps) == 3
    # full jitter: attempt n waits in [0, min(max, base * 2**n)]
    for attempt, delay in enumerate(sleeps):
        assert 0 <= delay <= min(0.4, 0.1 * 2**attempt)


def test_persistent_5xx_fails_with_a_clear_status_after_every_retry(sim, sleeps):
    sim.fail_next(100, status=502)
    with pytest.raises(ConnectorError) as caught:
        make(sim, sleeps, retries=2).fetch(USCC, "tax", MONTHS)
    assert caught.value.reason is FailureReason.UNAVAILABLE
    assert "HTTP 502" in caught.value.detail
    assert "3 attempts" in caught.value.detail
    assert sim.record_requests == 3


def test_4xx_is_not_retried(sim, sleeps):
    sim.status_override = 404
    with pytest.raises(ConnectorError) as caught:
        make(sim, sleeps).fetch(USCC, "tax", MONTHS)
    assert caught.value.reason is FailureReason.REJECTED
    assert "HTTP 404" in caught.value.detail
    assert sim.record_requests == 1
    assert sleeps == []


def test_a_slow_provider_times_out_after_the_retries(sim, sleeps):
    sim.delay = 0.6
    with pytest.raises(ConnectorError) as caught:
        make(sim, sleeps, timeout=0.15, retries=1).fetch(USCC, "tax", MONTHS)
    assert caught.value.reason is FailureReason.TIMEOUT
    assert "0.15 s" in caught.value.detail
    assert sim.record_requests == 2


def test_a_timeout_then_an_answer_succeeds(sim, sleeps):
    calls: list[str] = []

    def slow_first(scope: str) -> None:
        calls.append(scope)
        sim.delay = 0.6 if len(calls) == 1 else 0.0

    sim.on_request = slow_first
    tables = make(sim, sleeps, timeout=0.3, retries=2).fetch(USCC, "tax", MONTHS)
    assert tables["tax"]
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("malformation", "expected"),
    [
        ("garbage", "expected a list of rows"),
        ("not_json", "not JSON"),
        ("missing_column", "missing ["),
        ("wrong_uscc", "was not asked for"),
        ("nested_value", "is not a scalar value"),
        ("extra_table", "expected tables"),
    ],
)
def test_malformed_answers_raise_and_return_nothing(sim, sleeps, malformation, expected):
    sim.malformed = malformation
    with pytest.raises(ConnectorError) as caught:
        make(sim, sleeps).fetch(USCC, "tax", MONTHS)
    assert caught.value.reason is FailureReason.MALFORMED
    assert expected in caught.value.detail
    assert sim.record_requests == 1, "a malformed answer is not retried"


def test_the_breaker_opens_after_consecutive_failures_and_recovers(sim, sleeps):
    clock = FakeClock()
    connector = make(sim, sleeps, clock, retries=0, breaker_threshold=3, breaker_cooldown=30)
    sim.fail_next(100)
    for _ in range(3):
        with pytest.raises(ConnectorError) as caught:
            connector.fetch(USCC, "tax", MONTHS)
        assert caught.value.reason is FailureReason.UNAVAILABLE
    assert connector.breaker("tax").state == BreakerState.OPEN

    # open: the provider is not asked at all
    with pytest.raises(ConnectorError) as caught:
        connector.fetch(USCC, "tax", MONTHS)
    assert caught.value.reason is FailureReason.CIRCUIT_OPEN
    assert "3 consecutive failures" in caught.value.detail
    assert sim.record_requests == 3

    # half-open after the cool-down: one trial; it fails, so the breaker opens again
    clock.now += 31
    assert connector.breaker("tax").state == BreakerState.HALF_OPEN
    with pytest.raises(ConnectorError):
        connector.fetch(USCC, "tax", MONTHS)
    assert sim.record_requests == 4
    assert connector.breaker("tax").state == BreakerState.OPEN

    # the provider recovers: the next trial closes the breaker
    sim.fail_next(0)
    clock.now += 31
    assert connector.fetch(USCC, "tax", MONTHS)["tax"]
    assert connector.breaker("tax").state == BreakerState.CLOSED
    assert connector.fetch(USCC, "tax", MONTHS)["tax"]


def test_the_breaker_stops_the_retries_of_a_call_once_open(sim, sleeps):
    sim.fail_next(100)
    connector = make(sim, sleeps, retries=5, breaker_threshold=2)
    with pytest.raises(ConnectorError) as caught:
        connector.fetch(USCC, "tax", MONTHS)
    assert caught.value.reason is FailureReason.CIRCUIT_OPEN
    assert "last: HTTP 503" in caught.value.detail
    assert sim.record_requests == 2


def test_breakers_are_per_provider(sleeps):
    with ProviderSimulator() as broken, ProviderSimulator() as healthy:
        broken.fail_next(100)
        connector = HttpConnector(
            {"tax": broken.endpoint("tax"), "utilities": healthy.endpoint("utilities")},
            RetryPolicy(retries=0, breaker_threshold=1),
            sleep=sleeps.append,
        )
        with pytest.raises(ConnectorError):
            connector.fetch(USCC, "tax", MONTHS)
        assert connector.breaker("tax").state == BreakerState.OPEN
        assert connector.fetch(USCC, "utilities", MONTHS)["utilities"]


def test_a_rejected_token_is_renewed_once(sim, sleeps):
    connector = make(sim, sleeps)
    connector.fetch(USCC, "tax", MONTHS)
    sim.revoke_tokens()
    assert connector.fetch(USCC, "tax", MONTHS)["tax"]
    assert sim.token_requests == 2


def test_an_expired_token_is_renewed_before_use(sim, sleeps):
    clock = FakeClock()
    connector = make(sim, sleeps, clock)
    connector.fetch(USCC, "tax", MONTHS)
    clock.now += sim.token_lifetime - 10  # within the safety margin of expiry
    connector.fetch(USCC, "tax", MONTHS)
    assert sim.token_requests == 2


def test_wrong_client_credentials_fail_as_auth(sim, sleeps):
    connector = HttpConnector(
        {"tax": sim.endpoint("tax", secret="wrong")}, RetryPolicy(), sleep=sleeps.append
    )
    with pytest.raises(ConnectorError) as caught:
        connector.fetch(USCC, "tax", MONTHS)
    assert caught.value.reason is FailureReason.AUTH
    assert sim.record_requests == 0


def test_an_unreachable_provider_is_unavailable(sleeps):
    simulator = ProviderSimulator().start()
    endpoint = simulator.endpoint("tax")
    simulator.stop()
    connector = HttpConnector({"tax": endpoint}, RetryPolicy(retries=1), sleep=sleeps.append)
    with pytest.raises(ConnectorError) as caught:
        connector.fetch(USCC, "tax", MONTHS)
    assert caught.value.reason is FailureReason.UNAVAILABLE
    assert "connection failed" in caught.value.detail


def test_a_scope_without_a_provider_is_not_configured(sim, sleeps):
    with pytest.raises(ConnectorError) as caught:
        make(sim, sleeps).fetch(USCC, "provident_fund", MONTHS)
    assert caught.value.reason is FailureReason.NOT_CONFIGURED


def test_a_4xx_during_the_half_open_trial_does_not_wedge_the_breaker(sim, sleeps):
    clock = FakeClock()
    connector = make(sim, sleeps, clock, retries=0, breaker_threshold=1, breaker_cooldown=10)
    sim.fail_next(1)
    with pytest.raises(ConnectorError):
        connector.fetch(USCC, "tax", MONTHS)
    clock.now += 11
    sim.status_override = 404
    with pytest.raises(ConnectorError) as caught:
        connector.fetch(USCC, "tax", MONTHS)
    assert caught.value.reason is FailureReason.REJECTED
    sim.status_override = None
    assert connector.fetch(USCC, "tax", MONTHS)["tax"], "the next trial is let through"
    assert connector.breaker("tax").state == BreakerState.CLOSED


def test_a_redirect_is_not_followed(sim, sleeps):
    sim.status_override = 302
    with pytest.raises(ConnectorError) as caught:
        make(sim, sleeps).fetch(USCC, "tax", MONTHS)
    assert caught.value.reason is FailureReason.MALFORMED
    assert "HTTP 302, expected 200" in caught.value.detail
