"""Time as a dependency.

Everything that decides on time (schedules, backoff, leases, watchdogs) reads it
from a :class:`Clock`, so tests move a :class:`FakeClock` instead of sleeping.
Arithmetic is done on aware UTC datetimes only; local time appears only when a
schedule is evaluated or a time is shown to a person.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Return the current instant as an aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Return seconds from an arbitrary origin that never goes backwards."""
        ...


class SystemClock:
    """The wall clock of this machine."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        import time

        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to; thread-safe so a watchdog thread can read it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._origin = self._now
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now.astimezone(UTC)

    def monotonic(self) -> float:
        with self._lock:
            return (self._now - self._origin).total_seconds()

    def advance(self, delta: timedelta | float) -> datetime:
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        with self._lock:
            self._now += step
            return self._now

    def step_wall(self, delta: timedelta) -> datetime:
        """Step the wall clock alone (an NTP step, a clock set by hand): ``monotonic``
        does not move, as on a real machine. ``advance`` and ``set`` move both."""
        with self._lock:
            self._now += delta
            self._origin += delta
            return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        with self._lock:
            self._now = when
