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

import logging
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime, timedelta

from agentcron.clock import Clock
from agentcron.durations import format_duration
from agentcron.model import ClockStepped, TaskRecord
from agentcron.schedules.base import Schedule
from agentcron.store.base import Store

log = logging.getLogger("agentcron.engine")

STEP_NOTICED = timedelta(seconds=60)  # smaller steps are an NTP slew's business


class WallClockWatch:
    """Tells a step back of the wall clock between two looks (``look``), and keeps the
    last steps forward (``forward``)."""

    def __init__(self) -> None:
        self._lead: float | None = None  # wall seconds minus monotonic seconds
        # the last steps forward, (the wall time it left, the one it jumped to): the
        # fires between came due at once, and their reasons say so
        self.forward: deque[tuple[datetime, datetime]] = deque(maxlen=10)

    def look(self, wall: datetime, monotonic: float) -> timedelta | None:
        """How far the wall clock went back since the last look, when by at least
        :data:`STEP_NOTICED`; else None. A step forward is the catch-up rules'
        business (fires passed are missed or run late), not this: it is only kept."""
        lead = wall.timestamp() - monotonic
        before, self._lead = self._lead, lead
        if before is None:
            return None
        back = timedelta(seconds=before - lead)
        if -back >= STEP_NOTICED:
            self.forward.append((wall + back, wall))
        return back if back >= STEP_NOTICED else None

    def jump_covering(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The step forward that ``at`` fell in (it came due at once), or None."""
        for left, landed in reversed(self.forward):
            if left < at <= landed:
                return left, landed
        return None


def step_while_stopped(now: datetime, last_seen: Iterable[datetime | None]) -> timedelta | None:
    """How far now lies behind the latest time an earlier daemon on this machine
    wrote (its heartbeats, its stop), when by at least :data:`STEP_NOTICED`."""
    latest = max((at for at in last_seen if at is not None), default=None)
    if latest is None or latest - now < STEP_NOTICED:
        return None
    return latest - now


def replans(
    tasks: Iterable[TaskRecord],
    schedule_for: Callable[[TaskRecord], Schedule],
    now: datetime,
    ran_ahead: Mapping[str, Collection[datetime]] | None = None,
) -> list[tuple[TaskRecord, datetime]]:
    """The tasks whose stored next fire lies past their schedule's first fire after
    ``now`` that has not run yet (``ran_ahead``: the fires that ran while the clock was
    ahead), each with that fire: what a step back left planned too late. A fire already
    run is not run again: planned at one, a task was shown and told as running then,
    and ran nothing until past the fires that had run (outside-in probe). Paused tasks
    are planned from now when resumed; a next fire at or before ``now`` is due and
    left to the tick."""
    late: list[tuple[TaskRecord, datetime]] = []
    for rec in tasks:
        stored = rec.next_fire_at
        if rec.paused or stored is None or stored <= now:
            continue
        fire = first_not_run(schedule_for, rec, now, (ran_ahead or {}).get(rec.name, ()))
        if fire is not None and fire < stored:
            late.append((rec, fire))
    return late


def first_not_run(
    schedule_for: Callable[[TaskRecord], Schedule],
    rec: TaskRecord,
    now: datetime,
    ran: Collection[datetime],
) -> datetime | None:
    """The task's first fire after ``now`` that is not among those that ``ran``."""
    try:
        schedule = schedule_for(rec)
        fire = schedule.next_after(now)
        for _ in range(len(ran) + 1):
            if fire is None or fire.at not in ran:
                break
            fire = schedule.next_after(fire.at)
    except Exception:  # a schedule that cannot be built is told when it is planned
        return None
    return fire.at if fire is not None else None


def waits_past_runs(
    tasks: Iterable[TaskRecord],
    schedule_for: Callable[[TaskRecord], Schedule],
    now: datetime,
    ran_ahead: Mapping[str, Collection[datetime]],
) -> list[tuple[str, datetime, datetime | None]]:
    """The tasks whose next fires after ``now`` ran while the clock was ahead: each with
    the last of those and its next run (told: nothing else says why such a task runs
    nothing for as long as the clock was ahead)."""
    out: list[tuple[str, datetime, datetime | None]] = []
    for rec in tasks:
        ran = ran_ahead.get(rec.name)
        if not ran or rec.paused:
            continue
        try:
            first = schedule_for(rec).next_after(now)
        except Exception:
            continue
        if first is None or first.at not in ran:
            continue  # its next fire runs: nothing waits
        nxt = first_not_run(schedule_for, rec, now, ran)
        last = max(t for t in ran if nxt is None or t < nxt)
        out.append((rec.name, last, nxt))
    return out


class ClockSteps:
    """The engine's look for a step back at each tick, and the planning again after one."""

    def __init__(
        self, store: Store, clock: Clock, schedule_for: Callable[[TaskRecord], Schedule]
    ) -> None:
        self.store = store
        self.clock = clock
        self.schedule_for = schedule_for
        # told when the wall clock stepped back and tasks were planned again
        self.listeners: list[Callable[[ClockStepped], None]] = []
        self._wall = WallClockWatch()
        self._stepped: timedelta | None = None  # a step back not yet planned for
        self._undone: tuple[int, int] | None = None  # its undo_fires_ahead, once done
        self._looked_back = False  # whether the first tick looked for a step while stopped

    def jump_covering(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The step forward of the wall clock that a fire due at ``at`` fell in."""
        return self._wall.jump_covering(at)

    def mind(self, now: datetime) -> bool:
        """Plan again from now when the wall clock stepped back: seen between ticks, or,
        at the first tick, from an earlier daemon's heartbeats on this machine that lie
        ahead of now. A step stays to be planned for until that has worked (a failing
        database fails this tick and the next tries again). Whether tasks were planned
        again (plans made ahead for the old times are then stale)."""
        back = self._wall.look(now, self.clock.monotonic())
        if not self._looked_back:
            from agentcron.home import hostname

            here = hostname()
            seen = [(n.heartbeat_at, n.stopped_at) for n in self.store.nodes() if n.host == here]
            self._looked_back = True
            back = back or step_while_stopped(now, [at for pair in seen for at in pair])
        if back is not None:
            if self._stepped is not None:  # a second step before the first was planned for
                self._undone = None
            self._stepped = max(back, self._stepped or back)
        if self._stepped is None:
            return False
        by = self._stepped
        if self._undone is None:  # once per step: a second call would move retries again
            self._undone = self.store.undo_fires_ahead(now, by)
        removed, retries = self._undone
        ran = self.store.ran_ahead(now)
        tasks = self.store.list_tasks()
        late = replans(tasks, self.schedule_for, now, ran)
        moved: list[tuple[str, datetime, datetime]] = []
        for rec, fire in late:
            if self.store.materialize(rec.name, rec.next_fire_at, fire, [], now) is not None:
                moved.append((rec.name, rec.next_fire_at or fire, fire))
        self._stepped, self._undone = None, None
        log.warning(
            "the system clock went back %s; %d task(s) planned from the later time are "
            "planned from now again, %d slot(s) it recorded for times still to come that "
            "never ran are removed, %d retry(ies) brought back",
            format_duration(by),
            len(moved),
            removed,
            retries,
        )
        news = ClockStepped(
            by=by,
            at=now,
            replanned=tuple(moved),
            removed=removed,
            retries=retries,
            ran_ahead=tuple(waits_past_runs(tasks, self.schedule_for, now, ran)),
        )
        for listener in self.listeners:
            try:
                listener(news)
            except Exception:
                log.exception("clock listener failed")
        return True
