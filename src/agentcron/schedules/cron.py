"""Cron schedules: the five standard fields plus ``@hourly``…``@yearly``.

Fields are matched by cronsim. The DST rules are those of Debian cron and cronie:

* a fixed local time that does not exist (clocks spring forward) fires at the first
  instant after the gap;
* a fixed local time that occurs twice (clocks fall back) fires once, at the first;
* a job with a wildcard leading its minute or hour field (``*/15 * * * *``,
  ``@hourly``, ``30 * * * *``) follows real time: it fires in both copies of a
  repeated hour and does not fire at wall times that do not exist.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from agentcron.schedules.base import FireTime, Schedule, as_utc
from agentcron.schedules.zones import (
    gap_before,
    gap_note,
    is_repeated,
    next_offset_change,
    repeated_copy_note,
    repeated_once_note,
    zone_name,
)

ALIASES: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31 or L"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, 0 and 7 are Sunday"),
)
_SECOND = timedelta(seconds=1)
# Only used to let cronsim parse; the value is irrelevant to validation.
_PARSE_AT = datetime(2000, 1, 1)
# period() measures gaps between wall-clock fires from this fixed point, so the
# answer is a property of the expression, not of the day it is asked.
_PERIOD_FROM = datetime(2026, 1, 1)
_PERIOD_SAMPLES = 32
_PERIOD_CAP = timedelta(days=1)


def validate_cron(expr: str) -> str:
    """The expression in normal form (aliases expanded, single spaces) or ValueError.

    The message quotes the expression and names the field at fault, because it is
    shown to a person editing a config file.
    """
    return _validate(" ".join(expr.split()), expr)


# Cached because every schedule built at startup validates, and expressions repeat.
@functools.lru_cache(maxsize=4096)
def _validate(text: str, expr: str) -> str:
    if not text:
        raise _invalid(expr, "it is empty; expected 5 fields: minute hour day month weekday")
    if text.startswith("@"):
        alias = text.lower()
        if alias in ALIASES:
            return ALIASES[alias]
        if alias == "@reboot":
            raise _invalid(expr, "@reboot is not supported: agentcron schedules by time")
        raise _invalid(expr, f"unknown alias; use one of {', '.join(ALIASES)}")
    fields = text.split(" ")
    if len(fields) == 5:
        text = " ".join(_collapse_single_ranges(f) for f in fields)
        if _parses(text):
            return text
    if len(fields) != 5:
        given = "1 field" if len(fields) == 1 else f"{len(fields)} fields"
        extra = " (seconds and years are not supported)" if len(fields) > 5 else ""
        raise _invalid(
            expr,
            f"{given} given, expected 5: minute hour day-of-month month day-of-week{extra}",
        )
    for index, (name, allowed) in enumerate(_FIELDS):
        probe = ["*"] * 5
        probe[index] = fields[index]
        if not _parses(" ".join(probe)):
            raise _invalid(
                expr,
                f"{name} field {fields[index]!r} is not valid (use {allowed}; "
                "lists 1,5, ranges 1-5 and steps */15 are allowed)",
            )
    # Each field parses alone but not together: a day that no chosen month has.
    raise _invalid(expr, "that day of the month never occurs in the given month(s)")


_STEPPED_RANGE = re.compile(r"^([0-9A-Za-z]+)-([0-9A-Za-z]+)/[0-9]+$")


def _collapse_single_ranges(field: str) -> str:
    """Rewrite ``5-5/2`` as ``5``.

    cronsim reads a stepped range whose ends are equal as "from 5 to the maximum,
    step 2"; cron means just 5. Normalizing keeps cronsim on cron's meaning.
    """
    terms = field.split(",")
    for index, term in enumerate(terms):
        match = _STEPPED_RANGE.match(term)
        if match and _same_value(match.group(1), match.group(2)):
            terms[index] = match.group(1)
    return ",".join(terms)


def _same_value(a: str, b: str) -> bool:
    if a.isdigit() and b.isdigit():
        return int(a) == int(b)
    return a.upper() == b.upper()


def _parses(text: str) -> bool:
    try:
        CronSim(text, _PARSE_AT)
    except (CronSimError, ValueError):
        return False
    return True


def _invalid(expr: str, detail: str) -> ValueError:
    return ValueError(f"invalid cron expression {expr!r}: {detail}")


class CronSchedule(Schedule):
    """A cron expression evaluated in one zone."""

    def __init__(self, expr: str, zone: ZoneInfo) -> None:
        self.expr = validate_cron(expr)
        self.zone = zone
        minute, hour = self.expr.split(" ")[:2]
        # The same test cronie and cronsim use to tell wildcard jobs from fixed-time ones.
        self.follows_real_time = minute.startswith("*") or hour.startswith("*")
        self._period: timedelta | None = None

    def next_after(self, after: datetime) -> FireTime | None:
        after_utc = as_utc(after)
        # Compute cron in local time, convert each fire to UTC at once, and compare
        # and do arithmetic only in UTC.
        try:
            if self.follows_real_time:
                at = self._next_real_time(after_utc)
            else:
                at = self._next_fixed_time(after_utc)
        except OverflowError:  # past year 9999
            return None
        if at is None:
            return None
        local = at.astimezone(self.zone)
        return FireTime(at=at, local=local, note=self._note(local))

    def _next_fixed_time(self, after_utc: datetime) -> datetime | None:
        """cronsim walks wall time and applies the fixed-time DST rules itself."""
        for candidate in CronSim(self.expr, after_utc.astimezone(self.zone)):
            at = candidate.astimezone(UTC)
            # From the second copy of a repeated hour, the first candidates (first
            # copies, fold=0) can be earlier instants than `after`.
            if at > after_utc:
                return at
        return None

    def _next_real_time(self, after_utc: datetime) -> datetime | None:
        """The first instant after ``after_utc`` whose local wall time matches.

        Walks spans of constant UTC offset: inside one, wall time and UTC move
        together, so cronsim on naive wall time is exact; at an offset change the
        walk restarts from the change. (cronsim's own aware mode can step over
        fires right after a gap, e.g. all of 01:00-01:59 on a day whose midnight is
        skipped, so it is not used here.)
        """
        start, inclusive = after_utc, False
        while True:
            offset = start.astimezone(self.zone).utcoffset()
            assert offset is not None
            wall = (start + offset).replace(tzinfo=None)
            matched = self._first_wall_match(wall if inclusive else wall + _SECOND)
            if matched is None:
                return None
            at = (matched - offset).replace(tzinfo=UTC)
            change = next_offset_change(self.zone, start, at)
            if change is None:
                return at
            start, inclusive = change, True

    def _note(self, local: datetime) -> str | None:
        if is_repeated(local):
            return (
                repeated_copy_note(local) if self.follows_real_time else repeated_once_note(local)
            )
        gap = None if self.follows_real_time else gap_before(local)
        if gap is None:
            return None
        # A fixed-time fire right after a gap may stand in for a wall time inside it.
        wall = local.replace(tzinfo=None)
        asked = self._first_wall_match(wall - gap)
        if asked is None or asked >= wall:
            return None
        return gap_note(asked, local)

    def _first_wall_match(self, wall: datetime) -> datetime | None:
        """The first naive wall time at or after ``wall`` (whole seconds) that matches."""
        try:
            return next(CronSim(self.expr, wall.replace(microsecond=0) - _SECOND))
        except StopIteration:
            return None

    def period(self) -> timedelta:
        """Smallest wall-clock gap over the first fires of 2026, capped at one day.

        The cap keeps weekly or monthly jobs from hiding as "not yet overdue" for weeks.
        """
        if self._period is None:
            self._period = _measured_period(self.expr)
        return self._period

    def describe(self) -> str:
        return f"cron {self.expr} ({zone_name(self.zone)})"

    def __repr__(self) -> str:
        return f"CronSchedule({self.expr!r}, {zone_name(self.zone)!r})"


@lru_cache(maxsize=4096)
def _measured_period(expr: str) -> timedelta:
    """The period of a cron expression, walked once per expression and process: it
    depends on the expression alone (naive wall time), and `list`, the task view and the
    watchdog ask for it per task (100,000 tasks mostly share a few expressions)."""
    smallest = _PERIOD_CAP
    previous: datetime | None = None
    for count, wall in enumerate(CronSim(expr, _PERIOD_FROM)):
        if previous is not None:
            smallest = min(smallest, wall - previous)
        if count >= _PERIOD_SAMPLES:
            break
        previous = wall
    return smallest
