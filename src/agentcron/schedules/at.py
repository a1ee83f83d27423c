"""One-shot schedules: ``at: 2026-05-01 09:00``.

A naive time is wall time in the task's zone, placed by the same DST rules as
cron (a missing time fires at the end of the gap, a doubled one at its first
occurrence). Giving up after ``expires`` is the engine's business, not this one's:
a schedule only says when.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from agentcron.schedules.base import FireTime, Schedule, as_utc
from agentcron.schedules.zones import is_repeated, localize, repeated_copy_note, zone_name


class AtSchedule(Schedule):
    """Fires once, at ``at``; exhausted afterwards."""

    def __init__(self, at: datetime, zone: ZoneInfo) -> None:
        self.zone = zone
        if at.tzinfo is None:
            local, note = localize(at, zone)
        else:
            local = as_utc(at).astimezone(zone)
            # An explicit offset already picks the copy; say which one it is.
            note = repeated_copy_note(local) if is_repeated(local) else None
        self.fire = FireTime(at=local.astimezone(UTC), local=local, note=note)

    def next_after(self, after: datetime) -> FireTime | None:
        return self.fire if self.fire.at > as_utc(after) else None

    def period(self) -> timedelta:
        return timedelta(0)

    def describe(self) -> str:
        return f"at {self.fire.local.isoformat()} ({zone_name(self.zone)})"

    def __repr__(self) -> str:
        return f"AtSchedule({self.fire.at.isoformat()!r}, {zone_name(self.zone)!r})"
