"""Time zones and the wall-clock oddities of DST.

Every schedule turns local wall times into instants. Two things can go wrong at a
DST change: a wall time may not exist (clocks jump forward) or may occur twice
(clocks fall back). The helpers here detect both and phrase them for people, so
``agentcron next`` can say what will happen instead of leaving it to surprise.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_LOCALTIME = Path("/etc/localtime")
_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)


def resolve_zone(name: str | None) -> ZoneInfo:
    """The zone called ``name``, or the system zone when ``name`` is None.

    An unknown name raises ValueError with a message a person can act on, so a typo
    in the config is reported instead of silently scheduling in UTC.
    """
    if name is None:
        return system_zone()
    zone = _load(name.strip())
    if zone is None:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)")
    return zone


def system_zone(env: Mapping[str, str] | None = None, localtime: Path = _LOCALTIME) -> ZoneInfo:
    """This machine's zone: ``TZ``, then the ``/etc/localtime`` link, else UTC.

    Only named zones are returned, because the name is stored with tasks and shown
    to people; a POSIX rule string in ``TZ`` or a copied (unlinked) localtime file
    cannot be named, so they fall through to the next source.
    """
    if env is None and localtime == _LOCALTIME:
        return _system_zone_cached(os.environ.get("TZ", ""))
    return _system_zone(os.environ if env is None else env, localtime)


@functools.lru_cache(maxsize=8)
def _system_zone_cached(tz_env: str) -> ZoneInfo:
    """Resolved once per TZ value: every task without a zone asks, several times a slot."""
    return _system_zone({"TZ": tz_env}, _LOCALTIME)


def _system_zone(environ: Mapping[str, str], localtime: Path) -> ZoneInfo:
    tz = environ.get("TZ", "").strip().removeprefix(":")
    if tz:
        zone = _load(_key_from_path(tz) if tz.startswith("/") else tz)
        if zone is not None:
            return zone
    if localtime.is_symlink():
        zone = _load(_key_from_path(str(localtime.resolve())))
        if zone is not None:
            return zone
    return ZoneInfo("UTC")


def _key_from_path(path: str) -> str:
    marker = "zoneinfo/"
    index = path.rfind(marker)
    return path[index + len(marker) :] if index >= 0 else ""


def _load(key: str) -> ZoneInfo | None:
    if not key:
        return None
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone_name(zone: ZoneInfo) -> str:
    return zone.key if zone.key else str(zone)


def clock_text(local: datetime) -> str:
    """``02:30``, or ``02:30:15`` when seconds matter."""
    return local.strftime("%H:%M:%S" if local.second else "%H:%M")


def is_repeated(local: datetime) -> bool:
    """True when this aware, real local wall time occurs twice (clocks fell back)."""
    first = local.replace(fold=0) if local.fold else local
    second = local.replace(fold=1)
    return first.utcoffset() != second.utcoffset() and _round_trips(first)


def is_imaginary(wall: datetime, zone: ZoneInfo) -> bool:
    """True when the naive wall time ``wall`` does not exist in ``zone`` (clocks sprang forward)."""
    return not _round_trips(wall.replace(tzinfo=zone, fold=0))


def _round_trips(local: datetime) -> bool:
    back = local.astimezone(UTC).astimezone(local.tzinfo)
    return back.replace(tzinfo=None) == local.replace(tzinfo=None, fold=0)


def gap_before(local: datetime) -> timedelta | None:
    """The length of the DST gap that ends exactly at ``local``, if one does.

    ``local`` is an aware real instant; it ends a gap when the second before it had
    a smaller UTC offset, i.e. it is the first instant after the skipped wall times.
    """
    zone = local.tzinfo
    before = (local.astimezone(UTC) - _SECOND).astimezone(zone)
    now_offset, before_offset = local.utcoffset(), before.utcoffset()
    if now_offset is None or before_offset is None or now_offset <= before_offset:
        return None
    return now_offset - before_offset


def localize(wall: datetime, zone: ZoneInfo) -> tuple[datetime, str | None]:
    """Place a naive wall time in ``zone`` under our DST rules, with a note when it mattered.

    A wall time inside a gap becomes the first instant after the gap; a wall time
    that occurs twice becomes its first occurrence. Returns an aware local time.
    """
    first = wall.replace(tzinfo=zone, fold=0)
    if is_imaginary(wall, zone):
        fire = _end_of_gap(first)
        return fire, gap_note(first, fire)
    if is_repeated(first):
        return first, repeated_once_note(first)
    return first, None


def _end_of_gap(imaginary: datetime) -> datetime:
    """The first real instant after the gap that swallows ``imaginary``.

    Read with the offset after the change (fold=1) the wall time is an instant
    before the change; with the offset before it (fold=0), one after. The change
    lies between.
    """
    zone = imaginary.tzinfo
    assert isinstance(zone, ZoneInfo)
    before = imaginary.replace(fold=1).astimezone(UTC)
    after = imaginary.replace(fold=0).astimezone(UTC)
    change = next_offset_change(zone, before, after)
    assert change is not None, "an imaginary wall time lies inside a change"
    return change.astimezone(zone)


def next_offset_change(zone: ZoneInfo, start: datetime, end: datetime) -> datetime | None:
    """The first instant in ``(start, end]`` where ``zone``'s UTC offset differs from
    its offset at ``start``, or None.

    zoneinfo does not publish its transitions, so probe once a day and bisect to the
    second (tz changes fall on whole seconds). Daily probes assume no zone changes
    its offset twice within a day; since 1990 the closest pair in tzdata is 7 days.
    """
    offset = start.astimezone(zone).utcoffset()
    lo = start
    while lo < end:
        hi = min(lo + _DAY, end)
        if hi.astimezone(zone).utcoffset() != offset:
            return _bisect_change(zone, lo, hi, offset)
        lo = hi
    return None


def _bisect_change(
    zone: ZoneInfo, lo: datetime, hi: datetime, offset: timedelta | None
) -> datetime:
    low, high = math.floor(lo.timestamp()), math.ceil(hi.timestamp())
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == offset:
            low = mid
        else:
            high = mid
    return datetime.fromtimestamp(high, UTC)


def gap_note(asked: datetime, fire: datetime) -> str:
    return (
        f"{clock_text(asked)} does not exist on this day (DST starts); fires at {clock_text(fire)}"
    )


def repeated_once_note(local: datetime) -> str:
    return f"{clock_text(local)} occurs twice (DST ends); fires once, at the first"


def repeated_copy_note(local: datetime) -> str:
    """For real-time schedules, which fire in both copies of a repeated wall time."""
    copy = "second" if local.fold else "first"
    return f"repeated hour (DST ends): {copy} {clock_text(local)}"


# Abbreviations the tz database gives to more than one offset in use (2025-2027): CST
# is Chicago's -06:00, Havana's -05:00 and Shanghai's +08:00; IST Kolkata's, Dublin's
# summer and Jerusalem's; PST Los Angeles' and Manila's; CDT Chicago's and Havana's.
# A time in such a zone is named by its IANA name instead.
AMBIGUOUS = frozenset({"CDT", "CST", "IST", "PST"})


def zone_label(when: datetime, zone: str | None = None) -> str:
    """The name to write beside ``when`` (already in ``zone`` when one is given): its
    abbreviation at that instant (``JST``, ``CET`` in winter and ``CEST`` in summer,
    ``UTC``); ``zone`` itself (``Asia/Kolkata``) when the abbreviation is shared by
    other offsets or is only a number (``+04`` of Asia/Dubai); the offset (``+09:00``)
    when no zone is known. "" for a naive time. One rule for tables, pages, health
    sentences and messages."""
    name = when.tzname() or ""
    if name.isalpha() and name not in AMBIGUOUS:  # Python's fixed offsets say "UTC+09:00"
        return name
    if zone and isinstance(when.tzinfo, ZoneInfo):
        return zone
    offset = when.strftime("%z")
    if offset in ("+0000", "-0000"):
        return "UTC"
    return f"{offset[:3]}:{offset[3:]}" if offset else ""
