"""What the stall check knows about the scheduler loop's silences, for whoever asks.

The stall check (a thread of the watchdog) sees the loop stop and start again.
Fires that came due meanwhile are recorded missed by the loop's first pass after
the stall, and their reason should name the stall rather than blame a daemon that
was running all along. So every stall the check noticed is kept here, with wall
times, and :meth:`StallLog.covering` answers "was the loop stalled at this instant?"
from any thread.

The end of a stall is the loop's first pass after it. The loop itself may ask
before the check's thread has looked again (that first pass is the one recording
the missed fires), so the log can be closed from either side; the first to close
it wins, and the announcement reads the same end.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from agentcron.durations import format_duration
from agentcron.schedules.zones import zone_label

KEEP = 50  # stalls remembered; older ones no fire of the catch-up window can meet


@dataclass(frozen=True)
class LoopStall:
    """A silence of the scheduler loop: ``began`` is its last pass before the silence,
    ``ended`` its first pass after (None while the silence lasts)."""

    began: datetime
    ended: datetime | None = None

    def covers(self, at: datetime) -> bool:
        """Whether a fire due at ``at`` came due while the loop was silent."""
        return self.began < at and (self.ended is None or at <= self.ended)

    def lasted(self, now: datetime) -> timedelta:
        return max(timedelta(0), (self.ended or now) - self.began)

    def reason(self, zone: ZoneInfo | None = None) -> str:
        """The words a missed slot's reason gives: "the scheduler loop was stalled from
        10:07:03 to 10:08:15 UTC (1 min 12s)". Times in ``zone`` (UTC by default); the
        date is shown when the stall does not begin and end on one day."""
        began = self.began.astimezone(zone) if zone else self.began
        if self.ended is None:
            return f"the scheduler loop has been stalled since {_at(began, began)}"
        ended = self.ended.astimezone(zone) if zone else self.ended
        lasted = format_duration(timedelta(seconds=round(self.lasted(self.ended).total_seconds())))
        return (
            f"the scheduler loop was stalled from {_at(began, ended)} to {_at(ended, began)} "
            f"{zone_label(ended, zone.key if zone else None)} ({lasted})"
        )


def _at(when: datetime, other: datetime) -> str:
    """A time of day, with its date when ``other`` is on another day."""
    if when.date() == other.date():
        return when.strftime("%H:%M:%S")
    return when.strftime("%Y-%m-%d %H:%M:%S")


class StallLog:
    """The stalls noticed since this daemon started, newest last; thread-safe."""

    def __init__(self, keep: int = KEEP) -> None:
        self._lock = threading.Lock()
        self._stalls: deque[LoopStall] = deque(maxlen=keep)

    def begin(self, began: datetime) -> LoopStall:
        """A silence was noticed; it began at the loop's last pass, ``began``."""
        stall = LoopStall(began)
        with self._lock:
            self._stalls.append(stall)
        return stall

    def end(self, ended: datetime) -> LoopStall | None:
        """The loop passed again at ``ended``: close the open stall (kept as it is when
        already closed). Returns the stall, or None when none was noticed."""
        with self._lock:
            if not self._stalls:
                return None
            last = self._stalls[-1]
            if last.ended is None:
                last = replace(last, ended=max(ended, last.began))
                self._stalls[-1] = last
            return last

    def current(self) -> LoopStall | None:
        """The stall going on now, if one is open."""
        with self._lock:
            last = self._stalls[-1] if self._stalls else None
        return last if last is not None and last.ended is None else None

    def covering(self, at: datetime) -> LoopStall | None:
        """The noticed stall during which ``at`` came due, or None."""
        with self._lock:
            stalls = list(self._stalls)
        return next((s for s in reversed(stalls) if s.covers(at)), None)

    def all(self) -> list[LoopStall]:
        with self._lock:
            return list(self._stalls)
