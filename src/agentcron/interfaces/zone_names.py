"""How a time shown to people names its zone: the CLI's tables and the dashboard's
pages put it beside every time (``02:00 JST``), so 02:00 in Tokyo never reads as
02:00 UTC. ``--json`` and the API keep ISO 8601 with the offset instead."""

from __future__ import annotations

import contextlib
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentcron.schedules.zones import zone_label

__all__ = ["in_zone", "labelled", "wall", "zone_label"]


def in_zone(when: datetime, zone: str | None) -> datetime:
    """``when`` in the IANA ``zone`` (unchanged when naive, or no zone is known)."""
    if when.tzinfo is None or not zone:
        return when
    with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
        return when.astimezone(ZoneInfo(zone))
    return when


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
