"""Retry decisions and the adaptive throttle: pure, deterministic (seeded rng)."""

from __future__ import annotations

import calendar
import random

import pytest

from trio_crawler._exceptions import RETRYABLE_KINDS, FailureKind
from trio_crawler._retry import (
    AdaptiveDelay,
    RetryPolicy,
    parse_retry_after,
)
from trio_crawler._settings import Settings

# 2015-10-21 07:28:00 UTC
NOW = float(calendar.timegm((2015, 10, 21, 7, 28, 0)))


def make_policy(
    *,
    max_retries: int = 2,
    backoff: float = 0.5,
    backoff_max: float = 60.0,
    max_retry_after: float = 120.0,
    seed: int = 1,
) -> RetryPolicy:
    return RetryPolicy(
        max_retries=max_retries,
        backoff=backoff,
        backoff_max=backoff_max,
        max_retry_after=max_retry_after,
        rng=random.Random(seed),
    )


# --- Retry-After


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("Wed, 21 Oct 2015 07:30:00 GMT", 120.0),  # IMF-fixdate
        ("Wednesday, 21-Oct-15 07:30:00 GMT", 120.0),  # RFC 850
        ("Wed Oct 21 07:30:00 2015", 120.0),  # asctime
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # now
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # past
        ("Tue, 01 Jan 1980 00:00:00 GMT", 0.0),  # long past
    ],
)
def test_parse_retry_after(value: str, expected: float) -> None:
    assert parse_retry_after(value, now_wall=NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "soon",
        "-5",
        "-1.5",
        "nan",
        "inf",
        "1e3",
        "12 seconds",
        "Wed, 31 Feb 2015 07:28:00 GMT",
        "Wed, 21 Oct 2015 25:61:00 GMT",
        "\x00\xff",
    ],
)
def test_parse_retry_after_garbage(value: str | None) -> None:
    assert parse_retry_after(value, now_wall=NOW) is None


# --- backoff


def test_backoff_bounded_and_growing() -> None:
    policy = make_policy(backoff=0.5, backoff_max=10.0)
    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    highest = []
    for attempt, ceiling in enumerate(ceilings):
        samples = [policy.backoff_delay(attempt) for _ in range(500)]
        assert all(0.0 <= s <= ceiling for s in samples)
        highest.append(max(samples))
        # full jitter: the whole range is used
        assert max(samples) > 0.9 * ceiling
        assert min(samples) < 0.1 * ceiling
    assert highest[:5] == sorted(highest[:5])


def test_backoff_deterministic_with_seed() -> None:
    a = [make_policy(seed=7).backoff_delay(n) for n in range(5)]
    b = [make_policy(seed=7).backoff_delay(n) for n in range(5)]
    assert a == b


def test_backoff_huge_attempt_does_not_overflow() -> None:
    policy = make_policy(backoff=1.0, backoff_max=30.0)
    assert 0.0 <= policy.backoff_delay(100_000) <= 30.0


def test_backoff_zero() -> None:
    assert make_policy(backoff=0.0).backoff_delay(3) == 0.0
    assert make_policy(backoff_max=0.0).backoff_delay(3) == 0.0


def test_backoff_negative_attempt() -> None:
    with pytest.raises(ValueError):
        make_policy().backoff_delay(-1)


# --- statuses


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    policy = make_policy(backoff=1.0)
    decision = policy.for_status(status, {}, attempt=0, now_wall=NOW)
    assert decision is not None
    assert decision.retry
    assert decision.give_up is None
    assert 0.0 <= decision.delay <= 1.0
    if status in (429, 503):
        assert decision.host_delay == decision.delay
    else:
        assert decision.host_delay is None


@pytest.mark.parametrize(
    "status", [200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 410, 451, 501, 505, 599]
)
def test_final_statuses(status: int) -> None:
    assert make_policy().for_status(status, {}, attempt=0, now_wall=NOW) is None


def test_retry_after_seconds() -> None:
    decision = make_policy().for_status(503, {"retry-after": "30"}, attempt=0, now_wall=NOW)
    assert decision is not None
    assert (decision.retry, decision.delay, decision.host_delay, decision.give_up) == (
        True,
        30.0,
        30.0,
        None,
    )
    assert "503" in decision.reason


def test_retry_after_date() -> None:
    headers = {"retry-after": "Wed, 21 Oct 2015 07:29:00 GMT"}
    decision = make_policy().for_status(429, headers, attempt=1, now_wall=NOW)
    assert decision is not None and decision.retry
    assert decision.delay == pytest.approx(60.0)
    assert decision.host_delay == pytest.approx(60.0)


def test_retry_after_past_date_means_now() -> None:
    headers = {"retry-after": "Wed, 21 Oct 2015 07:00:00 GMT"}
    decision = make_policy().for_status(503, headers, attempt=0, now_wall=NOW)
    assert decision is not None and decision.retry
    assert decision.delay == 0.0
    assert decision.host_delay == 0.0


def test_retry_after_on_other_retryable_status() -> None:
    decision = make_policy().for_status(500, {"retry-after": "5"}, attempt=0, now_wall=NOW)
    assert decision is not None and decision.retry
    assert decision.delay == 5.0
    assert decision.host_delay is None


def test_retry_after_garbage_falls_back_to_backoff() -> None:
    decision = make_policy(backoff=2.0).for_status(
        503, {"retry-after": "whenever"}, attempt=0, now_wall=NOW
    )
    assert decision is not None and decision.retry
    assert 0.0 <= decision.delay <= 2.0
    assert decision.host_delay == decision.delay


def test_retry_after_too_long() -> None:
    policy = make_policy(max_retry_after=120.0)
    decision = policy.for_status(429, {"retry-after": "3600"}, attempt=0, now_wall=NOW)
    assert decision is not None
    assert not decision.retry
    assert decision.give_up is FailureKind.RETRY_AFTER_TOO_LONG
    # the host still slows down, by no more than the cap
    assert decision.host_delay == 120.0
    date = {"retry-after": "Thu, 22 Oct 2015 07:28:00 GMT"}
    decision = policy.for_status(500, date, attempt=0, now_wall=NOW)
    assert decision is not None and decision.give_up is FailureKind.RETRY_AFTER_TOO_LONG
    assert decision.host_delay is None


def test_retry_after_at_cap_is_fine() -> None:
    decision = make_policy(max_retry_after=120.0).for_status(
        503, {"retry-after": "120"}, attempt=0, now_wall=NOW
    )
    assert decision is not None and decision.retry and decision.delay == 120.0


def test_header_case_tolerated() -> None:
    decision = make_policy().for_status(503, {"Retry-After": "9"}, attempt=0, now_wall=NOW)
    assert decision is not None and decision.delay == 9.0


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_status_attempts_exhausted(status: int) -> None:
    policy = make_policy(max_retries=2)
    for attempt in (0, 1):
        decision = policy.for_status(status, {}, attempt=attempt, now_wall=NOW)
        assert decision is not None and decision.retry
    decision = policy.for_status(status, {}, attempt=2, now_wall=NOW)
    assert decision is not None
    assert not decision.retry
    assert decision.give_up is FailureKind.HTTP_STATUS
    assert decision.reason == f"{status} after 3 tries"
    assert (decision.host_delay is not None) == (status in (429, 503))


def test_no_retries_at_all() -> None:
    decision = make_policy(max_retries=0).for_status(503, {}, attempt=0, now_wall=NOW)
    assert decision is not None and not decision.retry
    assert decision.give_up is FailureKind.HTTP_STATUS
    assert decision.reason == "503 after 1 try"


# --- errors


@pytest.mark.parametrize("kind", sorted(RETRYABLE_KINDS))
def test_retryable_errors(kind: FailureKind) -> None:
    policy = make_policy(max_retries=2, backoff=1.0)
    for attempt in (0, 1):
        decision = policy.for_error(kind, attempt=attempt)
        assert decision.retry
        assert decision.give_up is None
        assert decision.host_delay is None
        assert 0.0 <= decision.delay <= 2.0**attempt
    decision = policy.for_error(kind, attempt=2)
    assert not decision.retry
    assert decision.give_up is kind
    assert decision.reason == f"{kind.value} after 3 tries"


@pytest.mark.parametrize("kind", sorted(set(FailureKind) - RETRYABLE_KINDS))
def test_final_errors(kind: FailureKind) -> None:
    decision = make_policy().for_error(kind, attempt=0)
    assert not decision.retry
    assert decision.give_up is kind
    assert decision.delay == 0.0


# --- construction


def test_from_settings() -> None:
    settings = Settings(
        max_retries=5, retry_backoff=0.1, retry_backoff_max=3.0, max_retry_after=9.0
    )
    policy = RetryPolicy.from_settings(settings, rng=random.Random(0))
    assert (policy.max_retries, policy.backoff, policy.backoff_max, policy.max_retry_after) == (
        5,
        0.1,
        3.0,
        9.0,
    )
    decision = policy.for_status(503, {"retry-after": "10"}, attempt=0, now_wall=NOW)
    assert decision is not None and decision.give_up is FailureKind.RETRY_AFTER_TOO_LONG


@pytest.mark.parametrize(
    "changes",
    [
        {"max_retries": -1},
        {"backoff": -0.1},
        {"backoff_max": float("nan")},
        {"max_retry_after": -1.0},
    ],
)
def test_policy_rejects_nonsense(changes: dict[str, float]) -> None:
    kwargs: dict[str, float] = {
        "max_retries": 2,
        "backoff": 0.5,
        "backoff_max": 60.0,
        "max_retry_after": 120.0,
    } | changes
    with pytest.raises(ValueError):
        RetryPolicy(
            max_retries=int(kwargs["max_retries"]),
            backoff=kwargs["backoff"],
            backoff_max=kwargs["backoff_max"],
            max_retry_after=kwargs["max_retry_after"],
        )


# --- adaptive delay


def test_adaptive_start_is_clamped() -> None:
    assert AdaptiveDelay(start=0.0, minimum=0.25, maximum=10.0).delay == 0.25
    assert AdaptiveDelay(start=99.0, minimum=0.25, maximum=10.0).delay == 10.0
    assert AdaptiveDelay(start=1.0, minimum=0.25, maximum=10.0).delay == 1.0


def test_adaptive_follows_latency() -> None:
    throttle = AdaptiveDelay(start=4.0, minimum=0.1, maximum=60.0)
    assert throttle.observe(1.0, 200) == 2.5  # halfway from 4 toward 1
    assert throttle.observe(1.0, 200) == 1.75
    for _ in range(30):
        throttle.observe(1.0, 200)
    assert throttle.delay == pytest.approx(1.0)
    # slower server: the delay rises toward the new latency
    assert throttle.observe(3.0, 200) == pytest.approx(2.0)


def test_adaptive_target_concurrency() -> None:
    throttle = AdaptiveDelay(start=2.0, minimum=0.0, maximum=60.0, target_concurrency=4.0)
    for _ in range(40):
        throttle.observe(2.0, 200)
    assert throttle.delay == pytest.approx(0.5)


def test_adaptive_never_below_minimum() -> None:
    throttle = AdaptiveDelay(start=1.0, minimum=0.5, maximum=60.0)
    for _ in range(20):
        throttle.observe(0.001, 200)
    assert throttle.delay == 0.5


@pytest.mark.parametrize("status", [429, 503])
def test_adaptive_backs_off(status: int) -> None:
    throttle = AdaptiveDelay(start=1.0, minimum=0.0, maximum=5.0)
    assert throttle.observe(0.1, status) == 2.0
    assert throttle.observe(0.1, status) == 4.0
    assert throttle.observe(0.1, status) == 5.0  # capped
    assert throttle.observe(0.1, status) == 5.0


def test_adaptive_backs_off_from_zero() -> None:
    throttle = AdaptiveDelay(start=0.0, minimum=0.0, maximum=5.0)
    assert throttle.observe(0.01, 429) == AdaptiveDelay.BACKOFF_FLOOR
    assert throttle.observe(0.01, 429) == 2 * AdaptiveDelay.BACKOFF_FLOOR


def test_adaptive_errors_never_decrease() -> None:
    throttle = AdaptiveDelay(start=2.0, minimum=0.0, maximum=60.0)
    assert throttle.observe(0.01, None) == 2.0
    assert throttle.observe(0.01, 404) == 2.0
    assert throttle.observe(0.01, 500) == 2.0
    # a slow failure (a timeout) may raise it, capped at maximum
    assert throttle.observe(20.0, None) == 11.0
    assert AdaptiveDelay(start=2.0, minimum=0.0, maximum=5.0).observe(100.0, None) == 5.0


@pytest.mark.parametrize("latency", [-1.0, float("nan"), float("inf")])
def test_adaptive_ignores_bad_latency(latency: float) -> None:
    throttle = AdaptiveDelay(start=2.0, minimum=0.0, maximum=60.0)
    assert throttle.observe(latency, 200) == 2.0


def test_adaptive_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        AdaptiveDelay(start=1.0, minimum=2.0, maximum=1.0)
    with pytest.raises(ValueError):
        AdaptiveDelay(start=1.0, minimum=-1.0, maximum=1.0)
    with pytest.raises(ValueError):
        AdaptiveDelay(start=1.0, minimum=0.0, maximum=1.0, target_concurrency=0.0)
