"""The retry policy: given a classified failure, retry or not, and when.

A policy object that returns a decision rather than a loop that sleeps: the engine
stores the decision's time on the slot (so a restart does not lose it) and the
notifier quotes its reason ("attempt 2 of 4 in 1 min"). Randomness for the jitter
is passed in, so every decision is reproducible in tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from agentcron.durations import format_duration
from agentcron.model.failure import Classification
from agentcron.model.task import BackoffSpec

# timedelta cannot hold much more than 2.7e6 years; no provider means that anyway.
_MAX_DELAY_S = 1e9


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: timedelta | None  # set when retry is True
    reason: str  # plain language, for logs and notifications


def backoff_delay(retry_number: int, backoff: BackoffSpec, rand: float) -> timedelta:
    """``base * factor**(n-1)``, capped at ``cap``, then shortened by up to ``jitter``.

    Jitter only ever shortens the wait, so the cap stays a promise ("never more
    than 30 min between tries") while retries of many tasks hit by the same outage
    spread out instead of arriving together.
    """
    n = max(retry_number, 1)
    base = backoff.base.total_seconds()
    cap = backoff.cap.total_seconds()
    if base <= 0:
        raw = 0.0
    else:
        # Compare in logarithms: factor**(n-1) overflows a float long before n is silly.
        log_raw = math.log(base) + (n - 1) * math.log(backoff.factor)
        raw = cap if log_raw >= math.log(max(cap, 1e-9)) else math.exp(log_raw)
    capped = min(raw, cap)
    r = min(max(rand, 0.0), 1.0)
    return timedelta(seconds=capped * (1.0 - backoff.jitter * r))


def decide_retry(
    classification: Classification,
    attempts_made: int,
    max_retries: int,
    backoff: BackoffSpec,
    rand: float,
) -> RetryDecision:
    """Retry a transient failure while attempts remain, never sooner than Retry-After.

    ``attempts_made`` includes the attempt that just failed; a task may make
    ``1 + max_retries`` attempts. Retry-After wins over the cap: a provider that
    asks for an hour gets an hour, because coming back earlier only earns another
    429 and burns an attempt.
    """
    error_class = classification.error_class
    if not classification.transient:
        return RetryDecision(False, None, f"permanent ({error_class}): retrying will not help")
    made = max(attempts_made, 1)
    total = 1 + max(max_retries, 0)
    if made >= total:
        noun = "attempt" if made == 1 else "attempts"
        return RetryDecision(False, None, f"gave up after {made} {noun}")
    delay = backoff_delay(made, backoff, rand)
    reason = f"transient ({error_class}); attempt {made + 1} of {total} in "
    if classification.retry_after is not None:
        asked = timedelta(seconds=min(max(classification.retry_after, 0.0), _MAX_DELAY_S))
        if asked >= delay:
            return RetryDecision(
                True, asked, reason + f"{format_duration(asked)}, as the provider asked"
            )
    return RetryDecision(True, delay, reason + format_duration(delay))


def parse_retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP-date).

    ``retry-after-ms`` (OpenAI, Anthropic) is preferred for its precision. Garbage
    yields None, a date in the past 0. ``now`` must be aware when a date is sent.
    """
    lowered = {str(k).lower(): str(v).strip() for k, v in headers.items()}
    millis = _number(lowered.get("retry-after-ms"))
    if millis is not None:
        return max(millis, 0.0) / 1000.0
    raw = lowered.get("retry-after")
    if not raw:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None or now.tzinfo is None:
        return None  # an HTTP-date is always GMT; a naive one is not an HTTP-date
    return max((when - now).total_seconds(), 0.0)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
