"""The schedule contract shared by cron, every and at.

A schedule is a pure function of time: given an instant it names the next fire.
It holds no state about what already ran, so the engine can ask it about any
instant (startup, catch-up, ``agentcron next --from``) and get the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from agentcron.quick_init import quick_init


@quick_init
@dataclass(frozen=True)
class FireTime:
    """One planned fire.

    ``at`` is the instant (aware UTC) and the slot's identity; ``local`` is the
    same instant in the schedule's zone, for people. ``note`` explains, in plain
    words, when DST moved or doubled the wall time the schedule asked for.
    """

    at: datetime
    local: datetime
    note: str | None = None


@runtime_checkable
class Schedule(Protocol):
    zone: ZoneInfo

    def next_after(self, after: datetime) -> FireTime | None:
        """The first fire strictly after ``after`` (aware, any zone).

        Returns None when the schedule is exhausted (a one-shot that already fired).
        Raises ValueError for a naive ``after``: an instant needs a zone.
        """
        ...

    def period(self) -> timedelta:
        """The nominal interval between fires, for overdue detection.

        ``timedelta(0)`` for a one-shot, which has no period.
        """
        ...

    def describe(self) -> str:
        """One line for people, e.g. ``cron 0 2 * * * (Europe/Berlin)``."""
        ...


def as_utc(when: datetime) -> datetime:
    """``when`` as aware UTC; a naive datetime is refused rather than guessed."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"need a timezone-aware datetime, got naive {when.isoformat()}")
    return when.astimezone(UTC)


def fires_between(
    schedule: Schedule, start: datetime, end: datetime, limit: int = 10000
) -> list[FireTime]:
    """Fires with ``start < at <= end``, oldest first, at most ``limit`` of them.

    Start is exclusive and end inclusive so that consecutive windows
    ``(a, b]``, ``(b, c]`` never report a fire twice or lose one.
    """
    end_utc = as_utc(end)
    fires: list[FireTime] = []
    cursor = as_utc(start)
    while len(fires) < limit:
        fire = schedule.next_after(cursor)
        if fire is None or fire.at > end_utc:
            break
        fires.append(fire)
        cursor = fire.at
    return fires
