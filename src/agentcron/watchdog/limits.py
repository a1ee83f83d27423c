"""How late each task may be before it is overdue, and how often that must be looked at.

A task is overdue when its due fire has not been turned into a slot for
``overdue_after`` (by default ``max(2 × period, 5m)``). The watchdog finds such
tasks among the due ones the database lists, looking back only as far as the
smallest limit in use, and it looks as often as that smallest limit needs: an
``overdue_after: 20s`` is checked every 5 s, one of 3 s every second (never more
often), while a setup where every limit is the 5-minute default is checked at the
watchdog's base interval.

The smallest explicit ``overdue_after`` is asked of the database (an index probe of
the copy written beside each spec, see ``store._spec_sql.SMALLEST_OVERDUE``; reading
the stored specs' values instead cost ~0.3 s for 100,000 tasks, parsing every spec
~6 s); it is read again after a pause that grows with what the last read cost (100
times it, at least 10 s, at most 10 min), and a task seen due in between updates it at
once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from agentcron.model import TaskRecord, TaskSpec
from agentcron.store.base import Store

MIN_OVERDUE = timedelta(minutes=5)  # the default rule's floor: max(2 periods, 5 min)
OVERDUE_FLOOR = timedelta(seconds=1)  # a smaller overdue_after counts as 1 s
CHECK_FLOOR = 1.0  # seconds: the overdue check runs at most once a second
CHECKS_PER_LIMIT = 4  # an overdue task is found within a quarter of its limit
RESCAN_FACTOR = 100.0  # pause between full reads, in multiples of what one cost
RESCAN_MIN = timedelta(seconds=10)
RESCAN_MAX = timedelta(minutes=10)


def overdue_limit(spec: TaskSpec, period: timedelta) -> timedelta:
    """How long past due a task may go without a slot before it is overdue."""
    if spec.overdue_after is not None:
        return max(spec.overdue_after, OVERDUE_FLOOR)
    return max(2 * period, MIN_OVERDUE)


def check_interval(smallest: timedelta, base: float) -> float:
    """Seconds between overdue checks: a quarter of the smallest limit in use, not
    more often than :data:`CHECK_FLOOR` and not less often than ``base``."""
    wanted = smallest.total_seconds() / CHECKS_PER_LIMIT
    return max(CHECK_FLOOR, min(base, wanted))


@dataclass(frozen=True)
class _Known:
    updated_at: datetime
    spec: TaskSpec
    limit: timedelta


class OverdueLimits:
    """Each due task's limit (read once per version of its spec) and the smallest
    limit in use. Used from the watchdog's thread only."""

    def __init__(
        self,
        store: Store,
        period_of: Callable[[TaskSpec], timedelta],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.period_of = period_of
        self._monotonic = monotonic
        self._known: dict[str, _Known] = {}
        self._smallest_explicit: timedelta | None = None
        self._rescan_at: datetime | None = None

    def smallest(self, now: datetime) -> timedelta:
        """The smallest limit any enabled task has: the 5-minute floor of the default
        rule, or a smaller explicit ``overdue_after``."""
        if self._rescan_at is None or not now < self._rescan_at <= now + RESCAN_MAX:
            self._rescan(now)  # due, or the wall clock was set back
        explicit = self._smallest_explicit
        return MIN_OVERDUE if explicit is None else min(MIN_OVERDUE, explicit)

    def interval(self, now: datetime, base: float) -> float:
        return check_interval(self.smallest(now), base)

    def spec_and_limit(self, name: str, updated_at: datetime) -> tuple[TaskSpec, timedelta] | None:
        """The task's spec and limit as of ``updated_at`` (read when the spec changed);
        None when the task is gone or paused meanwhile."""
        known = self._known.get(name)
        if known is None or known.updated_at != updated_at:
            rec = self.store.get_task(name)
            if rec is None or rec.paused:
                self._known.pop(name, None)
                return None
            known = self._remember(rec)
        return known.spec, known.limit

    def forget_all_but(self, names: set[str]) -> None:
        """Keep only the tasks still due: the cache stays as small as the due list."""
        for name in list(self._known):
            if name not in names:
                del self._known[name]

    def _remember(self, rec: TaskRecord) -> _Known:
        limit = overdue_limit(rec.spec, self.period_of(rec.spec))
        known = self._known[rec.name] = _Known(rec.updated_at, rec.spec, limit)
        if rec.spec.overdue_after is not None:
            self._note_explicit(limit)
        return known

    def _note_explicit(self, limit: timedelta) -> None:
        if self._smallest_explicit is None or limit < self._smallest_explicit:
            self._smallest_explicit = limit

    def _rescan(self, now: datetime) -> None:
        began = self._monotonic()
        smallest = self.store.smallest_overdue_after()
        self._smallest_explicit = None if smallest is None else max(smallest, OVERDUE_FLOOR)
        cost = timedelta(seconds=max(0.0, self._monotonic() - began) * RESCAN_FACTOR)
        self._rescan_at = now + min(RESCAN_MAX, max(RESCAN_MIN, cost))
