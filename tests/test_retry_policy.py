"""The retry policy: backoff arithmetic, the decision and its reason, Retry-After parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcron.model.enums import ErrorClass
from agentcron.model.failure import Classification
from agentcron.model.task import BackoffSpec
from agentcron.policies.retry import (
    RetryDecision,
    backoff_delay,
    decide_retry,
    parse_retry_after,
)

E = ErrorClass
NOW = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
DEFAULT = BackoffSpec()  # 30s base, factor 2, 30 min cap, jitter 0.2
NO_JITTER = BackoffSpec(jitter=0.0)
ONE_MICROSECOND = timedelta(microseconds=1)


def verdict(error_class: ErrorClass, retry_after: float | None = None) -> Classification:
    return Classification(error_class=error_class, explanation="x", retry_after=retry_after)


@pytest.mark.parametrize(
    ("n", "seconds"),
    [(1, 30), (2, 60), (3, 120), (4, 240), (6, 960), (7, 1800), (8, 1800), (500, 1800)],
)
def test_backoff_doubles_up_to_the_cap(n: int, seconds: float) -> None:
    assert backoff_delay(n, NO_JITTER, 0.5) == timedelta(seconds=seconds)


@pytest.mark.parametrize(("rand", "seconds"), [(0.0, 60.0), (0.5, 54.0), (0.999, 48.012)])
def test_jitter_only_shortens(rand: float, seconds: float) -> None:
    assert backoff_delay(2, DEFAULT, rand) == timedelta(seconds=seconds)


def test_huge_retry_numbers_do_not_overflow() -> None:
    spec = BackoffSpec(base=timedelta(seconds=1), factor=10.0, cap=timedelta(hours=1), jitter=0)
    assert backoff_delay(10_000, spec, 0.0) == timedelta(hours=1)


def test_zero_base_means_no_wait() -> None:
    spec = BackoffSpec(base=timedelta(0), jitter=0.5)
    assert backoff_delay(3, spec, 0.9) == timedelta(0)


specs = st.builds(
    BackoffSpec,
    base=st.floats(min_value=0.0, max_value=7200.0).map(lambda s: timedelta(seconds=s)),
    factor=st.floats(min_value=1.0, max_value=10.0),
    cap=st.floats(min_value=0.0, max_value=86400.0).map(lambda s: timedelta(seconds=s)),
    jitter=st.floats(min_value=0.0, max_value=1.0),
)
rands = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@given(n=st.integers(min_value=1, max_value=10_000), spec=specs, rand=rands)
def test_backoff_stays_between_jittered_floor_and_cap(
    n: int, spec: BackoffSpec, rand: float
) -> None:
    delay = backoff_delay(n, spec, rand)
    base = spec.base.total_seconds()
    cap = spec.cap.total_seconds()
    try:
        raw = base * spec.factor ** (n - 1)
    except OverflowError:
        raw = 0.0 if base == 0 else float("inf")
    floor = timedelta(seconds=min(cap, raw) * (1 - spec.jitter))
    assert floor - ONE_MICROSECOND <= delay <= spec.cap


@given(
    attempts=st.integers(min_value=1, max_value=5),
    spec=specs,
    rand=rands,
    retry_after=st.floats(min_value=0.0, max_value=30 * 86400.0),
    error_class=st.sampled_from(sorted(E, key=str)),
)
def test_decision_never_comes_before_retry_after(
    attempts: int, spec: BackoffSpec, rand: float, retry_after: float, error_class: ErrorClass
) -> None:
    decision = decide_retry(verdict(error_class, retry_after), attempts, 5, spec, rand)
    assert decision.retry == error_class.transient
    if decision.retry:
        assert decision.delay is not None
        assert decision.delay >= timedelta(seconds=retry_after) - ONE_MICROSECOND
        assert decision.delay >= backoff_delay(attempts, spec, rand)
    else:
        assert decision.delay is None


@pytest.mark.parametrize(
    ("classification", "attempts_made", "max_retries", "expected"),
    [
        (
            verdict(E.RATE_LIMITED),
            1,
            3,
            RetryDecision(
                True, timedelta(seconds=30), "transient (rate_limited); attempt 2 of 4 in 30s"
            ),
        ),
        (
            verdict(E.SERVER_ERROR),
            2,
            3,
            RetryDecision(
                True, timedelta(minutes=1), "transient (server_error); attempt 3 of 4 in 1 min"
            ),
        ),
        (verdict(E.TIMEOUT), 4, 3, RetryDecision(False, None, "gave up after 4 attempts")),
        (verdict(E.NETWORK), 1, 0, RetryDecision(False, None, "gave up after 1 attempt")),
        (
            verdict(E.AUTH),
            1,
            3,
            RetryDecision(False, None, "permanent (auth): retrying will not help"),
        ),
        (
            verdict(E.QUOTA_EXHAUSTED, retry_after=5),
            1,
            3,
            RetryDecision(False, None, "permanent (quota_exhausted): retrying will not help"),
        ),
        # Retry-After beyond the computed backoff, and beyond the cap, is honoured
        (
            verdict(E.RATE_LIMITED, retry_after=7200),
            1,
            3,
            RetryDecision(
                True,
                timedelta(hours=2),
                "transient (rate_limited); attempt 2 of 4 in 2 hours, as the provider asked",
            ),
        ),
        # a short Retry-After does not shorten the backoff
        (
            verdict(E.OVERLOADED, retry_after=2),
            1,
            3,
            RetryDecision(
                True, timedelta(seconds=30), "transient (overloaded); attempt 2 of 4 in 30s"
            ),
        ),
        (
            verdict(E.WORKER_LOST),
            3,
            3,
            RetryDecision(
                True, timedelta(minutes=2), "transient (worker_lost); attempt 4 of 4 in 2 min"
            ),
        ),
    ],
)
def test_decisions_and_their_reasons(
    classification: Classification,
    attempts_made: int,
    max_retries: int,
    expected: RetryDecision,
) -> None:
    assert decide_retry(classification, attempts_made, max_retries, NO_JITTER, 0.3) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "Sat, 01 Mar 2025 02:05:00 GMT"}, 300.0),
        ({"retry-after": "Sat, 01 Mar 2025 01:00:00 GMT"}, 0.0),
        ({"retry-after": "Sat, 01 Mar 2025 03:05:00 +0100"}, 300.0),
        ({"retry-after": "tomorrow-ish"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "Sat, 99 Foo 2025 99:99:99 GMT"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, NOW) == expected


def test_parse_retry_after_date_against_a_non_utc_now() -> None:
    berlin_now = NOW.astimezone(timezone(timedelta(hours=1)))
    assert parse_retry_after({"retry-after": "Sat, 01 Mar 2025 02:00:10 GMT"}, berlin_now) == 10


@given(st.dictionaries(st.sampled_from(["retry-after", "retry-after-ms", "x"]), st.text()))
def test_parse_retry_after_never_raises(headers: dict[str, str]) -> None:
    result = parse_retry_after(headers, NOW)
    assert result is None or result >= 0
