"""The wall clock stepped back: schedules planned from the later time are planned again.

A task's ``next_fire_at`` is worked out from the fire before it, on the wall clock. When
that clock was ahead (a machine that booted with a wrong time, an NTP step after a
drift, a VM restored from a snapshot) and is then set back, every stored next fire
lies in what is now the future, up to as far as the clock was wrong: a daily task
set back a week would not run for a week, and nothing would look overdue, since its
next fire has not come. Cron itself plans again after a step back (Debian cron: more
than three hours).

A step is seen as the wall clock's lead over the monotonic clock shrinking (this
process was running), or as a heartbeat of an earlier daemon on this machine that
lies ahead of now (it was stopped meanwhile). Planning again is safe at any size of
step: a next fire is only ever moved earlier, to the schedule's first fire after
now, and a fire already recorded is not recorded twice (a slot's task and time are
unique).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from agentcron.model import TaskRecord
from agentcron.schedules.base import Schedule

STEP_NOTICED = timedelta(seconds=60)  # smaller steps are an NTP slew's business


class WallClockWatch:
    """Tells a step back of the wall clock between two looks (``look``)."""

    def __init__(self) -> None:
        self._lead: float | None = None  # wall seconds minus monotonic seconds

    def look(self, wall: datetime, monotonic: float) -> timedelta | None:
        """How far the wall clock went back since the last look, when by at least
        :data:`STEP_NOTICED`; else None. A step forward is the catch-up rules'
        business (fires passed are missed or run late), not this."""
        lead = wall.timestamp() - monotonic
        before, self._lead = self._lead, lead
        if before is None:
            return None
        back = timedelta(seconds=before - lead)
        return back if back >= STEP_NOTICED else None


def step_while_stopped(now: datetime, last_seen: Iterable[datetime | None]) -> timedelta | None:
    """How far now lies behind the latest time an earlier daemon on this machine
    wrote (its heartbeats, its stop), when by at least :data:`STEP_NOTICED`."""
    latest = max((at for at in last_seen if at is not None), default=None)
    if latest is None or latest - now < STEP_NOTICED:
        return None
    return latest - now


def replans(
    tasks: Iterable[TaskRecord], schedule_for: Callable[[TaskRecord], Schedule], now: datetime
) -> list[tuple[TaskRecord, datetime]]:
    """The tasks whose stored next fire lies past their schedule's first fire after
    ``now``, each with that first fire: what a step back left planned too late. Paused
    tasks are planned from now when resumed; a next fire at or before ``now`` is due
    and left to the tick."""
    late: list[tuple[TaskRecord, datetime]] = []
    for rec in tasks:
        stored = rec.next_fire_at
        if rec.paused or stored is None or stored <= now:
            continue
        try:
            fire = schedule_for(rec).next_after(now)
        except Exception:  # a schedule that cannot be built is told when it is planned
            continue
        if fire is not None and fire.at < stored:
            late.append((rec, fire.at))
    return late
