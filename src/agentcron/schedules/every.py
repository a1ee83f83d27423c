"""Fixed-interval schedules on a grid: ``every: 1h``.

Fires sit at ``anchor + k * interval`` in absolute time, so the grid never drifts
(a late or slow run does not push later fires) and DST does not bend it: ``every
1h`` fires every 3600 s of real time, through both copies of a repeated hour.
Without an anchor the grid starts at the Unix epoch, so ``every 1h`` fires on the
UTC hour and ``every 1d`` at 00:00 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from agentcron.schedules.base import FireTime, Schedule, as_utc
from agentcron.schedules.zones import is_repeated, localize, repeated_copy_note, zone_name

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EverySchedule(Schedule):
    """Every ``interval`` from ``anchor`` on; a naive anchor is wall time in ``zone``.

    The anchor is the first fire: nothing fires before it, which lets a grid both
    set its phase (``09:00`` daily) and start on a given day.
    """

    def __init__(self, interval: timedelta, zone: ZoneInfo, anchor: datetime | None = None) -> None:
        if interval <= timedelta(0):
            raise ValueError(f"every needs a positive interval, got {interval}")
        self.interval = interval
        self.zone = zone
        self.anchor = anchor
        if anchor is None:
            self._origin = EPOCH
        elif anchor.tzinfo is None:
            self._origin = localize(anchor, zone)[0].astimezone(UTC)
        else:
            self._origin = as_utc(anchor)

    @property
    def origin(self) -> datetime:
        """The first fire of the grid, aware UTC."""
        return self._origin

    def next_after(self, after: datetime) -> FireTime | None:
        after_utc = as_utc(after)
        # timedelta // timedelta is exact integer arithmetic on microseconds: no drift.
        k = 0 if after_utc < self._origin else (after_utc - self._origin) // self.interval + 1
        try:
            at = self._origin + k * self.interval
        except OverflowError:  # past year 9999
            return None
        local = at.astimezone(self.zone)
        return FireTime(
            at=at, local=local, note=repeated_copy_note(local) if is_repeated(local) else None
        )

    def period(self) -> timedelta:
        return self.interval

    def describe(self) -> str:
        start = (
            "" if self.anchor is None else f" from {self._origin.astimezone(self.zone).isoformat()}"
        )
        return f"every {compact_duration(self.interval)}{start} ({zone_name(self.zone)})"

    def __repr__(self) -> str:
        return f"EverySchedule({self.interval!r}, {zone_name(self.zone)!r}, anchor={self.anchor!r})"


def compact_duration(delta: timedelta) -> str:
    """``1d``, ``1h30m``, ``90ms``: exact, and readable back by ``parse_duration``."""
    micros = delta // timedelta(microseconds=1)
    parts: list[str] = []
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000)):
        count, micros = divmod(micros, size)
        if count:
            parts.append(f"{count}{unit}")
    if micros % 1_000_000 == 0:
        if micros:
            parts.append(f"{micros // 1_000_000}s")
    elif micros % 1000 == 0:
        parts.append(f"{micros // 1000}ms")
    else:
        parts.append(f"{micros / 1_000_000:g}s")
    return "".join(parts) or "0s"
