"""Slots free to run that wait too long for a worker, while this node has no room.

The rules are :mod:`agentcron.policies.starvation`'s; this is the engine's look: once
per recover interval and only while every worker is busy, the longest-waiting slots
are read through the claim's index, a few at a time. A task whose period is under a
minute never has a slot that old (each fire displaces its waiting one), so when each
task began to wait is kept across the slots that displaced each other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from agentcron.model import Slot, SlotStatus, TaskSpec
from agentcron.policies.starvation import STARVE_AT_LEAST, holders, waited_too_long
from agentcron.schedules.base import Schedule
from agentcron.store.base import Store

from .planning import Plan
from .settings import EngineSettings

log = logging.getLogger("agentcron.engine")

STARVE_SCAN = 20  # longest-waiting slots looked at per check
WAITING_KEPT = 250_000  # tasks whose wait is kept; names of removed tasks would pile up

# the task, the slot, how long it waited, and what holds the workers
StarvedListener = Callable[[TaskSpec, Slot, timedelta, str], None]


class Starving:
    """When each task began to wait for a worker, and the look for those waiting too long."""

    def __init__(
        self, store: Store, settings: EngineSettings, schedule_for: Callable[[TaskSpec], Schedule]
    ) -> None:
        self.store = store
        self.settings = settings
        self.schedule_for = schedule_for
        # told of a slot that has waited longer than its period for a free worker
        self.listeners: list[StarvedListener] = []
        # task -> since when it has had a slot waiting for a worker, across the waiting
        # slots that newer fires displaced (each waits at most a period on its own)
        self._waiting_since: dict[str, datetime] = {}

    def started(self, task: str) -> None:
        """A run of ``task`` started: it waits no more."""
        self._waiting_since.pop(task, None)

    def note_waiting(self, plan: Plan, active: Sequence[Slot]) -> None:
        """``plan`` displaces waiting slots of its task: the task has waited since the
        oldest of them."""
        displaced = [s.next_attempt_at or s.scheduled_for for s in active if s.id in plan.displace]
        if not displaced:
            return
        name = plan.spec.name
        since = min([*displaced, self._waiting_since.get(name, displaced[0])])
        if len(self._waiting_since) >= WAITING_KEPT and name not in self._waiting_since:
            self._waiting_since.clear()  # a bound: at worst a starving task is told later
        self._waiting_since[name] = since

    def check(self, now: datetime, running: Sequence[tuple[str, datetime]]) -> None:
        """Slots free to run that have waited longer than their period while this node
        had no room. Read through the claim's index, a few at a time: only while every
        worker is busy, and only the longest waiting."""
        capacity = self.settings.max_concurrency
        if not self.listeners or len(running) < capacity:
            return
        waiting = self.store.waiting_slots(now - STARVE_AT_LEAST, STARVE_SCAN)
        # A task with a period under a minute never has a slot that old: each fire
        # displaces its waiting one. It is found by when it began to wait.
        seen = {s.task for s in waiting}
        long_waiting = {
            name
            for name, since in self._waiting_since.items()
            if now - since > STARVE_AT_LEAST and name not in seen
        }
        if long_waiting:
            others = self.store.active_slots_of(set(sorted(long_waiting)[:STARVE_SCAN]))
            waiting += [
                s for slots in others.values() for s in slots if s.status is SlotStatus.PENDING
            ]
        if not waiting:
            return
        busy = holders(running, capacity, now)
        own = self.store.active_slots_of({s.task for s in waiting})
        told: set[str] = set()
        for slot in waiting:
            if slot.task in told or any(
                a.status is SlotStatus.RUNNING for a in own.get(slot.task, ())
            ):
                continue  # waiting behind its own run is overlap, not starvation
            rec = self.store.get_task(slot.task)
            if rec is None or rec.paused:
                continue
            waited = waited_too_long(
                slot, now, self.schedule_for(rec.spec).period(), self._waiting_since.get(rec.name)
            )
            if waited is None:
                continue
            told.add(slot.task)
            for listener in self.listeners:
                try:
                    listener(rec.spec, slot, waited, busy)
                except Exception:
                    log.exception("starvation listener failed on %s", slot.task)
