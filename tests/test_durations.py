"""Durations as the owner reads them: the text says the value (a ``stuck_after: 90s`` read
"longer than its 1 min limit", 166 s "did not run for 2 min")."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcron.durations import format_duration, parse_duration

_READ = {"day": 86400, "days": 86400, "hour": 3600, "hours": 3600, "min": 60, "s": 1}


def read_back(text: str) -> int:
    """The seconds a person reads in ``text`` ("1 hour 30 min", "2 min 46s")."""
    parts = re.findall(r"(\d+) ?(days?|hours?|min|s)\b", text)
    assert " ".join(f"{n} {u}" if u != "s" else f"{n}s" for n, u in parts) == text, text
    return sum(int(n) * _READ[u] for n, u in parts)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "250ms"),
        (0.0004, "<1ms"),  # above zero, never "0ms"
        (0.000001, "<1ms"),
        (0.001, "1ms"),
        (0.9994, "999ms"),
        (0.9996, "1s"),  # rounds to a second, never "1000ms"
        (0, "0s"),
        (4, "4s"),
        (59.6, "1 min"),
        (60, "1 min"),
        (90, "1 min 30s"),  # stuck_after: 90s
        (106, "1 min 46s"),
        (166, "2 min 46s"),
        (300, "5 min"),
        (3599, "59 min 59s"),
        (3600, "1 hour"),
        (3629, "1 hour"),  # from an hour on, to the nearest minute
        (3630, "1 hour 1 min"),
        (5400, "1 hour 30 min"),
        (7200, "2 hours"),
        (86400, "1 day"),
        (86400 + 7 * 60, "1 day 7 min"),
        (2 * 86400 + 3600 + 300, "2 days 1 hour 5 min"),
    ],
)
def test_a_duration_reads_as_a_person_says_it(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


def read_millis(text: str) -> float:
    """The milliseconds a person reads in a sub-second text ("<1ms" is under one)."""
    if text == "<1ms":
        return 0.0
    if text == "1s":
        return 1000.0
    match = re.fullmatch(r"([1-9]\d{0,2})ms", text)
    assert match, text
    return float(match.group(1))


@given(st.integers(min_value=1, max_value=999_999))
def test_under_a_second_the_text_is_within_half_a_millisecond(micros: int) -> None:
    """Every positive duration under a second reads "<1ms", "1ms" to "999ms" or "1s":
    never "0ms" (as if none) nor "1000ms" (which is "1s")."""
    text = format_duration(timedelta(microseconds=micros))
    assert abs(read_millis(text) - micros / 1000) <= 0.5 + 1e-9, text
    assert (text == "<1ms") == (micros <= 500), text  # half even, as round() is


@given(st.integers(min_value=1, max_value=999_998))
def test_under_a_second_a_longer_duration_never_reads_shorter(micros: int) -> None:
    shorter = read_millis(format_duration(timedelta(microseconds=micros)))
    assert read_millis(format_duration(timedelta(microseconds=micros + 1))) >= shorter


@given(st.integers(min_value=0, max_value=3599))
def test_under_an_hour_the_text_says_every_second(seconds: int) -> None:
    assert read_back(format_duration(timedelta(seconds=seconds))) == seconds


@given(st.floats(min_value=3600, max_value=400 * 86400, allow_nan=False))
def test_from_an_hour_on_the_text_is_within_half_a_minute(seconds: float) -> None:
    assert abs(read_back(format_duration(timedelta(seconds=seconds))) - seconds) <= 30.5


@given(
    st.sampled_from(["s", "m", "h", "d"]).flatmap(
        lambda unit: st.tuples(st.integers(1, 100), st.just(unit))
    )
)
def test_a_configured_limit_reads_as_its_value(value: tuple[int, str]) -> None:
    """A limit the owner wrote (``90s``, ``45m``, ``36h``, ``2d``) reads back as that value."""
    number, unit = value
    limit = parse_duration(f"{number}{unit}")
    assert read_back(format_duration(limit)) == limit.total_seconds()
