"""The runs this node holds: the one truth of what it is running.

Each run is an asyncio task the engine started and never awaits. Held here with what
stopping it needs: why it was cancelled, whether its task has taken its first step (a
task cancelled before that never runs its coroutine, so it is asked to stop itself as
it starts), whether its end is being recorded (no longer renewed, no longer stopped)
and the deadline past which it is abandoned. The leases of held runs are renewed, and
stops other nodes asked for are honoured, from here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from agentcron.model import Finished, TaskSpec
from agentcron.store.base import Store

from .runner import outer_limit
from .settings import EngineSettings

log = logging.getLogger("agentcron.engine")

# How often a node holding runs looks for those another node asked it to stop
STOPS_LOOK = timedelta(seconds=1)


@dataclass
class HeldRun:
    task: asyncio.Task[Finished | None]
    slot_id: int
    name: str
    started_at: datetime
    spec: TaskSpec
    deadline: datetime | None = None  # see runner.outer_limit; set by the first sweep
    cancel_reason: str | None = None
    overran: bool = False
    finishing: bool = False  # its end is being recorded: no longer renewed
    started: bool = False  # its task has taken its first step (see HeldRuns.stop)
    stop_asked: bool = False  # stopped before that: it stops itself as it starts


class HeldRuns:
    """The runs of this node, by slot id (see the module's docstring)."""

    def __init__(self, store: Store, settings: EngineSettings) -> None:
        self.store = store
        self.settings = settings
        self.runs: dict[int, HeldRun] = {}
        self._last_renew: datetime | None = None
        self._last_stops: datetime | None = None  # see honour_stops
        self._last_sweep: datetime | None = None
        self.sweep_not_before: datetime | None = None  # set by a freeze (the engine's)

    def cancel(self, slot_id: int, reason: str) -> bool:
        """Stop a run in progress; False when there is none, or it has ended and is
        being recorded (its end stands)."""
        run = self.runs.get(slot_id)
        if run is None or run.finishing:
            return False
        run.cancel_reason = reason
        self.stop(run)
        return True

    @staticmethod
    def stop(run: HeldRun) -> None:
        """Cancel ``run``'s task. A task cancelled before its first step never runs its
        coroutine: nothing would record its end, and the run would stay in progress,
        its lease renewed, for good (overlap: replace stopping a run its own tick had
        just started did that). Such a run is recorded stopped as it starts, its action
        not called."""
        if run.started:
            run.task.cancel()
        else:
            run.stop_asked = True

    def renew(self, now: datetime) -> None:
        """Keep the leases of the runs this engine holds, and only those: the table of
        runs is the one truth of what this node is running. A held run whose slot was
        not renewed is no longer this node's (its lease lapsed and another node, or a
        recovery, took it): it is stopped, so the slot does not run twice at once."""
        lease = self.settings.lease
        if self._last_renew is not None and now - self._last_renew < lease / 3:
            return
        held = {sid for sid, run in self.runs.items() if not run.finishing}
        if held:
            renewed = self.store.renew_leases(self.settings.owner, held, now, now + lease)
            for slot_id in held - renewed:
                run = self.runs.get(slot_id)
                if run is None or run.finishing:
                    continue
                log.error(
                    "slot %s of %s is no longer this node's (its lease lapsed and it was "
                    "taken over); stopping the run here",
                    slot_id,
                    run.name,
                )
                self.cancel(slot_id, "taken over after this node's lease lapsed")
        self._last_renew = now

    def honour_stops(self, now: datetime) -> None:
        """Stop the runs held here that another node asked to stop (overlap: replace,
        its newer fire planned there): looked for once a second while this node holds
        runs, so a run is replaced across nodes within about a second and its
        kill_grace, as on one node."""
        if not self.runs:
            return
        if self._last_stops is not None and now - self._last_stops < STOPS_LOOK:
            return
        self._last_stops = now
        for slot_id, reason in self.store.stops_asked(self.settings.owner).items():
            run = self.runs.get(slot_id)
            if run is not None and run.cancel_reason is None and self.cancel(slot_id, reason):
                log.info(
                    "stopping %s (slot %s), as another node asked: %s", run.name, slot_id, reason
                )

    def finishing(self, slot_id: int) -> None:
        """The run's end is being recorded: its lease is no longer renewed."""
        run = self.runs.get(slot_id)
        if run is not None:
            run.finishing = True

    def cancel_reason(self, slot_id: int) -> str | None:
        run = self.runs.get(slot_id)
        return run.cancel_reason if run is not None else None

    def stopped_before_start(self, slot_id: int) -> bool:
        run = self.runs.get(slot_id)
        return run is not None and run.stop_asked

    def overran(self, slot_id: int) -> bool:
        run = self.runs.get(slot_id)
        return run is not None and run.overran

    def sweep_overruns(self, now: datetime) -> None:
        """Stop waiting for runs whose action outlived every bound it was given."""
        if self._last_sweep is not None and now - self._last_sweep < timedelta(seconds=1):
            return
        if self.sweep_not_before is not None:
            if now < self.sweep_not_before:
                return
            self.sweep_not_before = None
        self._last_sweep = now
        for run in self.runs.values():
            if run.deadline is None:  # worked out here, not on the run's start
                run.deadline = run.started_at + outer_limit(run.spec)
            if now >= run.deadline and not run.overran and not run.finishing:
                run.overran = True
                log.error(
                    "run of %s (slot %s) outlived its timeout and was abandoned",
                    run.name,
                    run.slot_id,
                )
                self.stop(run)
