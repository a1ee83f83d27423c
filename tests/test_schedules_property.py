"""Property tests: cron fires are increasing, match their fields, and obey the DST rules.

Expressions are generated as structured fields so the test knows which values each
field allows without asking cronsim; the checks below re-derive cron semantics
independently (Debian rule: day-of-month OR day-of-week when both are restricted,
i.e. neither starts with '*').
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from agentcron.schedules import CronSchedule, FireTime, fires_between, validate_cron
from agentcron.schedules.zones import gap_before, is_repeated

ZONES = [
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "Europe/Dublin",
    "America/New_York",
    "America/Havana",  # changes at midnight
    "America/Santiago",  # changes at midnight
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute change
    "Pacific/Auckland",
    "Pacific/Chatham",  # +12:45 / +13:45
    "Africa/Cairo",  # changes at midnight
]
FIRST = datetime(2024, 1, 1, tzinfo=UTC)
LAST = datetime(2030, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]

    @property
    def star(self) -> bool:
        return self.text.startswith("*")


def field(lo: int, hi: int, small_hi: int | None = None) -> st.SearchStrategy[Field]:
    """One cron field over ``lo..hi``; ``small_hi`` biases picks toward early values."""
    top = hi if small_hi is None else small_hi
    value = st.one_of(st.integers(lo, top), st.integers(lo, hi))
    star = st.just(Field("*", frozenset(range(lo, hi + 1))))
    step = st.integers(1, max(1, (hi - lo) // 2)).map(
        lambda s: Field(f"*/{s}", frozenset(range(lo, hi + 1, s)))
    )
    single = value.map(lambda v: Field(str(v), frozenset({v})))
    listed = st.lists(value, min_size=2, max_size=3, unique=True).map(
        lambda vs: Field(",".join(map(str, vs)), frozenset(vs))
    )

    def ranged(pair: tuple[int, int], s: int) -> Field:
        a, b = sorted(pair)
        text = f"{a}-{b}" if s == 1 else f"{a}-{b}/{s}"
        return Field(text, frozenset(range(a, b + 1, s)))

    ranges = st.builds(ranged, st.tuples(value, value), st.integers(1, 4))
    return st.one_of(star, step, single, listed, ranges)


@dataclass(frozen=True)
class Expr:
    minute: Field
    hour: Field
    dom: Field
    month: Field
    dow: Field

    @property
    def text(self) -> str:
        return " ".join(f.text for f in (self.minute, self.hour, self.dom, self.month, self.dow))

    @property
    def fixed_time(self) -> bool:
        return not (self.minute.star or self.hour.star)

    def day_matches(self, local: datetime) -> bool:
        dom_ok = local.day in self.dom.values
        cron_dow = (local.weekday() + 1) % 7
        dow_ok = cron_dow in self.dow.values or (cron_dow == 0 and 7 in self.dow.values)
        if self.dom.star or self.dow.star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def matches(self, local: datetime) -> bool:
        return (
            local.minute in self.minute.values
            and local.hour in self.hour.values
            and local.month in self.month.values
            and self.day_matches(local)
        )


def valid(expr: Expr) -> bool:
    """Leaves out the few combinations with no such day, e.g. ``* * 30 2 *``."""
    try:
        validate_cron(expr.text)
    except ValueError:
        return False
    return True


expressions = st.builds(
    Expr,
    minute=field(0, 59),
    hour=field(0, 23, small_hi=3),  # DST changes happen in the small hours
    dom=field(1, 31, small_hi=28),
    month=field(1, 12),
    dow=field(0, 7),
).filter(valid)


@functools.cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """Every instant in 2024-2030 where the zone's UTC offset changes, found by bisection."""
    zone = ZoneInfo(zone_name)
    found: list[datetime] = []
    day = FIRST
    while day < LAST:
        nxt = day + timedelta(days=1)
        if day.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
            lo, hi = day, nxt
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(zone).utcoffset() == lo.astimezone(zone).utcoffset():
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
        day = nxt
    return tuple(found)


@st.composite
def zone_and_start(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    name = draw(st.sampled_from(ZONES))
    changes = transitions(name)
    anywhere = st.datetimes(FIRST.replace(tzinfo=None), LAST.replace(tzinfo=None))
    near_change: bool = draw(st.booleans())
    if changes and near_change:
        # Half the time start shortly before a DST change, where the rules bite.
        change = draw(st.sampled_from(changes))
        start = change - timedelta(seconds=draw(st.integers(0, 2 * 86400)))
    else:
        start = draw(anywhere).replace(tzinfo=UTC)
    return ZoneInfo(name), start


def check_fire(expr: Expr, zone: ZoneInfo, fire: FireTime) -> None:
    expected_local = fire.at.astimezone(zone)
    assert fire.at.utcoffset() == timedelta(0)
    assert fire.local.tzinfo is zone
    assert fire.local.isoformat() == expected_local.isoformat()
    assert fire.local.fold == expected_local.fold
    local = fire.local
    if fire.note is not None and "does not exist" in fire.note:
        # Stands in for a wall time inside a gap: it is the first instant after it.
        assert gap_before(local) is not None, fire
        assert local.month in expr.month.values and expr.day_matches(local), fire
    else:
        assert expr.matches(local), fire
    if is_repeated(local):
        assert fire.note is not None, fire
        if expr.fixed_time:
            assert local.fold == 0, f"fixed-time job fired in the second copy: {fire}"


@settings(max_examples=200, deadline=None)
@given(expr=expressions, where=zone_and_start())
def test_successive_fires_increase_and_match_their_fields(
    expr: Expr, where: tuple[ZoneInfo, datetime]
) -> None:
    zone, start = where
    schedule = CronSchedule(expr.text, zone)
    cursor = start
    for _ in range(20):
        fire = schedule.next_after(cursor)
        assert fire is not None
        assert fire.at > cursor
        check_fire(expr, zone, fire)
        cursor = fire.at


def expected_fires(expr: Expr, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The rules, re-derived minute by minute (changes fall on whole minutes).

    A minute fires when its local wall time matches, except a fixed-time job skips
    the second copy of a repeated hour; a fixed-time job also fires at the first
    minute after a gap when some wall time inside the gap matches.
    """
    fires: list[datetime] = []
    minute = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute <= end:
        local = minute.astimezone(zone)
        if expr.matches(local):
            if not (expr.fixed_time and is_repeated(local) and local.fold == 1):
                fires.append(minute)
        elif expr.fixed_time and (gap := gap_before(local)) is not None:
            wall = local.replace(tzinfo=None)
            missing = (
                wall - gap + timedelta(minutes=i) for i in range(gap // timedelta(minutes=1))
            )
            if any(expr.matches(w) for w in missing):
                fires.append(minute)
        minute += timedelta(minutes=1)
    return fires


@settings(max_examples=100, deadline=None)
@given(expr=expressions, where=zone_and_start())
def test_a_day_of_fires_equals_the_rules_applied_minute_by_minute(
    expr: Expr, where: tuple[ZoneInfo, datetime]
) -> None:
    """Against brute force, so no fire is missed, doubled or invented, DST or not."""
    zone, start = where
    end = start + timedelta(days=1)
    fires = fires_between(CronSchedule(expr.text, zone), start, end)
    assert [f.at for f in fires] == expected_fires(expr, zone, start, end)
