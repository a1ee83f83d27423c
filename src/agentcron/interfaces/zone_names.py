"""How a time shown to people names its zone: the CLI's tables and the dashboard's
pages put it beside every time (``02:00 JST``), so 02:00 in Tokyo never reads as
02:00 UTC. ``--json`` and the API keep ISO 8601 with the offset instead."""

from __future__ import annotations

import contextlib
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Abbreviations the tz database gives to more than one offset in use (2025-2027): CST
# is Chicago's -06:00, Havana's -05:00 and Shanghai's +08:00; IST Kolkata's, Dublin's
# summer and Jerusalem's; PST Los Angeles' and Manila's; CDT Chicago's and Havana's.
# A time in such a zone is named by its IANA name instead.
AMBIGUOUS = frozenset({"CDT", "CST", "IST", "PST"})


def in_zone(when: datetime, zone: str | None) -> datetime:
    """``when`` in the IANA ``zone`` (unchanged when naive, or no zone is known)."""
    if when.tzinfo is None or not zone:
        return when
    with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
        return when.astimezone(ZoneInfo(zone))
    return when


def zone_label(when: datetime, zone: str | None = None) -> str:
    """The name to write beside ``when`` (already in ``zone`` when one is given): its
    abbreviation at that instant (``JST``, ``CET`` in winter and ``CEST`` in summer,
    ``UTC``); ``zone`` itself (``Asia/Kolkata``) when the abbreviation is shared by
    other offsets or is only a number (``+04`` of Asia/Dubai); the offset (``+09:00``)
    when no zone is known. "" for a naive time."""
    name = when.tzname() or ""
    if name.isalpha() and name not in AMBIGUOUS:  # Python's fixed offsets say "UTC+09:00"
        return name
    if zone and isinstance(when.tzinfo, ZoneInfo):
        return zone
    offset = when.strftime("%z")
    if offset in ("+0000", "-0000"):
        return "UTC"
    return f"{offset[:3]}:{offset[3:]}" if offset else ""


def labelled(iso: str | None, zone: str | None = None) -> str:
    """The zone label of the ISO time ``iso`` read in ``zone`` ("" for none)."""
    if not iso:
        return ""
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return ""
    return zone_label(in_zone(when, zone), zone)


def wall(iso: str | None, zone: str | None = None) -> str:
    """The ISO time ``iso`` as a page shows it, read in ``zone``: ``2026-12-05
    04:58:06`` (its zone is written beside it, :func:`labelled`)."""
    if not iso:
        return ""
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return in_zone(when, zone).isoformat()[:19].replace("T", " ")
