"""The scheduler loop: due fires become slots, slots become runs.

Each tick does bounded work in proportion to what is due: it recovers runs whose
lease lapsed, claims the slots already waiting while there is room, asks the store
for tasks whose ``next_fire_at`` has come (an index range scan), records their slots
(applying catch-up and overlap) and starts the fresh ones in the same transaction
while room is left, then gets the next fire instant ready if it is close. Runs are
asyncio tasks that the tick starts and never awaits, so no run can hold the loop:
there is no global "executing" flag, only per-slot leases that expire. Runs that end
together are recorded together (:mod:`.finisher`) and reported to listeners together.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from agentcron.actions.base import Action
from agentcron.beats import Sleeper, when_to_wake
from agentcron.clock import Clock
from agentcron.durations import format_duration
from agentcron.engine.left_running import left_running_gate
from agentcron.model import (
    AttemptOutcome,
    Claim,
    Finished,
    Fires,
    NextTimes,
    NodeInfo,
    Slot,
    SlotStatus,
    StartRoom,
    TaskRecord,
    TaskSpec,
)
from agentcron.model.provider import ProviderNews
from agentcron.policies.overlap import replaced_text
from agentcron.schedules.base import Schedule
from agentcron.schedules.zones import zone_label
from agentcron.store.base import Store

from . import health
from .clockstep import ClockSteps
from .finisher import Finisher
from .health import LoopHealth, Outage
from .held import HeldRun, HeldRuns
from .lapsed import LapsedRuns
from .outages import TickOutages
from .planning import Ahead, Plan, plan_due, with_overlap
from .providers import ProviderGate
from .runner import RunnerDeps, execute
from .settings import EngineSettings, TickReport
from .starving import Starving

if TYPE_CHECKING:
    pass


log = logging.getLogger("agentcron.engine")

LOOKAHEAD = timedelta(seconds=2)  # how early the tasks of a coming fire are prepared
PREPARE_LIMIT = 50_000  # tasks prepared for one instant (reading them is cheap ahead of it)
PREPARE_BATCH = 200  # tasks of several instants prepared in one pass
PREPARE_SLACK = 0.05  # seconds inside LOOKAHEAD at which a pass wakes to prepare a fire
DUE_LIMIT = 5000  # due tasks planned per tick (a bigger burst takes two ticks)
# how long a backlog of due fires may hold the watchdog's overdue check back
BACKLOG_AT_MOST = timedelta(minutes=10)
FINISH_GRACE = 5.0  # seconds a stop waits for ended runs' records, past its own grace
FREEZE_AFTER_BEATS = 3  # no pass for this many beats: the process was frozen
FREEZE_SETTLE = 0.2  # seconds the first pass after a freeze lets runs see their ends
# seconds past its wake-up time a pass may begin before the process counts as held then
# (a freeze shorter than a few beats: the beat is 6 s)
FREEZE_LATE = 1.0
# a claim's transaction that took this long (a locked table) has its runs' start
# written again, when they really start (see Engine._began)
RESTAMP_AFTER = timedelta(seconds=1)
# Seconds a pass waits past the next fire (and a run's end before the loop looks at it),
# to take those just after it in the same pass. The lateness bought for fewer passes:
# 1,000 staggered tasks a second took ~195 passes a second at 5 ms and ~95 at 10 ms,
# a quarter less CPU, p99 lateness 7.6 ms then 13 ms (bench/README.md, issue 16).
COALESCE = 0.010
_NOT_RUN = frozenset({SlotStatus.MISSED, SlotStatus.EXPIRED})
SCHEDULE_CACHE_LIMIT = 250_000  # schedules kept; names of removed tasks would pile up


Listener = Callable[[Finished], None]
Gate = Callable[[list[Claim], datetime], tuple[list[Claim], list[tuple[TaskSpec, Slot]]]]
# (spec, outcome, when it ended) -> (budget scope key, day, tokens) for each budget
Spender = Callable[[TaskSpec, AttemptOutcome, datetime], Sequence[tuple[str, str, int]]]


@dataclass
class _ScheduleCache:
    entries: dict[str, tuple[TaskSpec, str | None, str, Schedule]] = field(default_factory=dict)


class Engine:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: EngineSettings,
        actions: Callable[[TaskSpec], Action],
        rand: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.actions = actions
        self.rand = rand or random.random
        self.listeners: list[Listener] = []
        # told once per pass of the loop about every run that ended in it (a burst's
        # worth at a time), after the per-run listeners
        self.batch_listeners: list[Callable[[Sequence[Finished]], None]] = []
        self._ended: list[Finished] = []
        # told about slots recorded without running: skipped, missed, expired
        self.slot_listeners: list[Callable[[TaskSpec, Slot], None]] = []
        # called every recover interval with the time (reminders of open incidents)
        self.housekeeping: list[Callable[[datetime], None]] = []
        # called after every pass whose tick worked, the first after an outage too
        # (the record of the last tick: `health` must see ticks as soon as they work)
        self.after_pass: list[Callable[[datetime], None]] = []
        # the report of the tick under way: a tick that fails after recording fires
        # (a later statement refused) has its slots counted with the outage's end
        self._pass_report: TickReport | None = None
        self._starving = Starving(store, settings, self.schedule_for)
        # told of a slot that has waited longer than its period for a free worker
        # (the task, the slot, how long, and what holds the workers)
        self.starved_listeners = self._starving.listeners
        self.providers = ProviderGate(
            store, settings.owner, lambda spec: spec.zone(self.settings.default_zone)
        )
        # told what the engine learns about a provider (refused, waiting, answered)
        self.provider_listeners: list[Callable[[ProviderNews], None]] = []
        # asked after the provider gate about the claims about to start: each returns
        # those that may, and the others it recorded final itself, with their task, for
        # the slot listeners (daily budgets: agentcron.engine.budgets)
        self.gates: list[Gate] = [
            left_running_gate(
                store,
                settings.owner,
                lambda spec: spec.zone(self.settings.default_zone),
                str(settings.home),  # as the runs' output paths begin
            )
        ]
        # what an ended attempt spent (daily budgets): written with the attempt's end
        self.spenders: list[Spender] = []
        # the watchdog's record of loop stalls: (fire time, zone) -> the words a missed
        # slot's reason gives when the fire came due during one (None: not stalled then)
        self.stall_reason: Callable[[datetime, ZoneInfo], str | None] | None = None
        self._held = HeldRuns(store, settings)
        self._runs = self._held.runs
        self._schedules = _ScheduleCache()
        self._last_recover: datetime | None = None
        self._ahead: Ahead | None = None  # plans made for the coming fires
        self._times: NextTimes | None = None  # read by this tick, for the sleep after it
        self._folders_made: set[str] = set()  # tasks whose output folder was made
        self._wake = asyncio.Event()
        self._end_wake: asyncio.TimerHandle | None = None  # see _run_ended
        # slots may wait for a run's end: the last tick's claim met some whose time had
        # come, or it recorded fires it could not start (see _run_ended)
        self._slots_wait = True
        self.last_tick = time.monotonic()  # read by the watchdog thread to spot a stuck loop
        started = time.monotonic()
        self.health = LoopHealth(last_pass=started, last_ok=started)
        self._outages = TickOutages(store, clock, settings, self.health)
        self.on_outage = self._outages.on_outage
        self.on_recovery = self._outages.on_recovery
        self.past_outages = self._outages.past
        # fires due after this were missed while the scheduler ran (see plan_fires)
        self.started_at = clock.now()
        self._pass_began = self.started_at  # when the current loop pass began
        self._good_pass_began: datetime | None = None  # ... and the last that worked
        self._caught_up_began: datetime | None = None  # ... and left no backlog
        self._backlog_since: datetime | None = None  # the first pass of a backlog
        self.stopping = False  # set by the daemon's stop signal, before runs are stopped
        self._clock_steps = ClockSteps(store, clock, lambda rec: self.schedule_for(rec.spec))
        # told when the wall clock stepped back and tasks were planned again
        self.clock_listeners = self._clock_steps.listeners
        self.passes = 0  # loop passes: a waiting loop must not spin (tests count them)
        # the event loop's time the loop's sleep was to end: a pass that begins well past
        # it finds a process that was held (a freeze shorter than FREEZE_AFTER_BEATS)
        self._wake_due: float | None = None
        self._lapsed = LapsedRuns(store, settings, self.rand, lambda: self._runs, self._notify)
        self._deps = RunnerDeps(
            store=store,
            clock=clock,
            home=settings.home,
            owner=settings.owner,
            actions=actions,
            rand=self.rand,
            cancel_reason=self._held.cancel_reason,
            overran=self._held.overran,
            stopped_before_start=self._held.stopped_before_start,
            finisher=Finisher(store),
            stopping=lambda: self.stopping,
            finishing=self._held.finishing,
            spend=self._spend,
            fence=settings.fence,
        )

    # ---- public ------------------------------------------------------------------
    @property
    def running(self) -> int:
        return len(self._runs)

    def running_slots(self) -> dict[int, tuple[str, datetime]]:
        return {sid: (r.name, r.started_at) for sid, r in self._runs.items()}

    def ending_slots(self) -> set[int]:
        """Slots of runs that have ended here and whose end is being recorded (held
        while the database is away): still ``running`` in the database, not going."""
        return {sid for sid, run in self._runs.items() if run.finishing}

    @property
    def last_full_pass(self) -> datetime | None:
        """When the last pass whose tick worked began (what this node's runs were last
        seen held by)."""
        return self._good_pass_began

    @property
    def last_caught_up_pass(self) -> datetime | None:
        """When the last pass whose tick worked and left no backlog began: what came due
        before then has been recorded (the watchdog's overdue check waits for one). A
        pass that recorded one chunk of a 3-day downtime was taken for one that had
        recorded it all, and 20 tasks were told overdue "although the daemon is alive"
        two seconds after a start, then "running again" (outside-in probe). A backlog
        that has lasted :data:`BACKLOG_AT_MOST` (more due tasks than a tick plans, on
        every tick) no longer holds the check back (review)."""
        good, since = self._good_pass_began, self._backlog_since
        if good is not None and since is not None and good - since > BACKLOG_AT_MOST:
            return good
        return self._caught_up_began

    def wake(self) -> None:
        """Ask the loop to tick now (a trigger, a finished run, a reload)."""
        self._wake.set()

    def schedule_for(self, spec: TaskSpec) -> Schedule:
        """The task's schedule, built once per spec: a tick asks for it per due task."""
        from agentcron.schedules.build import build_schedule

        zone = self.settings.default_zone  # a reload may change it: part of the key
        hit = self._schedules.entries.get(spec.name)
        if hit is not None and hit[0] is spec and hit[1] == zone:  # parsed specs are shared
            return hit[3]
        key = spec.model_dump_json(include={"cron", "every", "anchor", "at", "timezone"})
        sched = hit[3] if hit is not None and hit[1] == zone and hit[2] == key else None
        if sched is None:
            sched = build_schedule(spec, zone)
        entries = self._schedules.entries
        if len(entries) >= SCHEDULE_CACHE_LIMIT and spec.name not in entries:
            entries.clear()  # removed tasks' entries go too; the rest are rebuilt when due
        entries[spec.name] = (spec, zone, key, sched)
        return sched

    def first_fire(self, spec: TaskSpec, after: datetime) -> datetime | None:
        fire = self.schedule_for(spec).next_after(after)
        return fire.at if fire else None

    async def tick(self) -> TickReport:
        report = self._pass_report = TickReport()
        self.last_tick = time.monotonic()
        self._times = None  # read afresh after this tick's writes
        now = self.clock.now()
        if self._clock_steps.mind(now):
            self._ahead = None  # made for the old times
        self._held.renew(now)
        self._held.honour_stops(now)
        self._held.sweep_overruns(now)
        # Lapsed leases are looked for a few times per lease, not on every tick: a burst
        # ticks after every finished run, and each look reads all running slots.
        interval = max(timedelta(seconds=1), self.settings.lease / 20)
        # Not while our own ticks fail, nor just after: see TickOutages.settled.
        if self._outages.settled(now) and (
            self._last_recover is None or now - self._last_recover >= interval
        ):
            self._last_recover = now
            report.lost = self._lapsed.recover(now)
            self.store.cancel_waiting_of_paused(now)
            self._housekeep(now)
            self._starving.check(now, [(r.name, r.started_at) for r in self._runs.values()])
        # Slots already waiting go first; then fresh ones start as they are recorded,
        # while there is room (one write each instead of a record and a claim).
        self._slots_wait = True  # until this tick's claim and records say otherwise
        report.started = self._start_runs(now)
        report.materialized, report.skipped, report.missed, fresh = self._materialize(now)
        report.started += fresh
        report.fresh = fresh
        report.waiting = max(0, report.materialized - fresh - report.skipped - report.missed)
        self._slots_wait = report.waiting > 0 or self.store.claim_saw_waiting
        if report.started:
            # The runs just started take their first step (their actions are called)
            # before the next instant is prepared: preparing a thousand aligned tasks
            # of the next second held a thousand started runs back by tens of ms.
            await asyncio.sleep(0)
        self._prepare(now)
        return report

    def _stall_words(self, spec: TaskSpec) -> Callable[[datetime], str | None]:
        """Why a fire of ``spec`` at a time agentcron ran could not run then: a stalled
        loop (the watchdog's record) or an outage of the ticks (the database away)."""
        stall_reason = self.stall_reason
        zone = spec.zone(self.settings.default_zone)

        def words(at: datetime) -> str | None:
            jump = self._clock_steps.jump_covering(at)
            if jump is not None:
                # a fire the clock jumped over came due at once, the loop on time: it
                # was said to be "late (a stalled loop or an overloaded machine)"
                left, landed = (t.astimezone(zone) for t in jump)
                # a jump of days shows the days ("from 16:09 to 16:09" of a week)
                shown = "%H:%M:%S" if left.date() == landed.date() else "%a %d %b %Y %H:%M:%S"
                return (
                    f"the system clock jumped forward {format_duration(landed - left)} "
                    f"(from {left:{shown}} to {landed:{shown}} "
                    f"{zone_label(landed, zone.key)}), past its time"
                )
            # The outage first: a loop that waited for its database (a locked table) is
            # stalled too, and each of its waits was a stall of its own, so fires of one
            # outage were reported in several reports, with stalls' ends the outage
            # outlasted (outside-in probe, PostgreSQL).
            outage = self.outage_covering(at)
            if outage is None:
                return stall_reason(at, zone) if stall_reason is not None else None
            what = "use its database" if outage.database else "tick"
            local = outage.since.astimezone(zone)
            # the zone named: one report lists tasks of several zones (outside-in probe:
            # "from 07:20:10" and "from 22:20:10" for one moment, neither named)
            since = f"{local:%H:%M:%S} {zone_label(local, zone.key)}"
            return f"agentcron could not {what} from {since} ({outage.error})"

        return words

    def _housekeep(self, now: datetime) -> None:
        for duty in self.housekeeping:
            try:
                duty(now)
            except Exception:
                # a fault of the database fails the tick's own reads too and is told
                # as an outage; anything else is a bug of that duty, logged each time
                log.exception("housekeeping duty %s failed", getattr(duty, "__name__", duty))

    async def wait_idle(self, within: float = 60.0) -> None:
        """Wait until no run is in progress (tests and graceful shutdown)."""
        async with asyncio.timeout(within):
            while self._runs:
                # asyncio.wait, not gather: the timeout must stop the waiting only, not
                # cancel the runs (shutdown decides which of them to stop)
                await asyncio.wait([r.task for r in list(self._runs.values())])
        self._tell_listeners()

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Tick, then sleep until the next fire, retry or wake-up, until ``stop``.

        Every step of a pass is guarded, the working out of the sleep included: a
        failing database makes ticks fail, never the loop end. Failed ticks back off,
        are logged once per outage (then every few minutes), and become one message
        to the owner when they last (:mod:`.health`)."""
        poll = self.settings.poll_interval
        sleeper = Sleeper(stop, self._wake)
        try:
            while not stop.is_set():
                delay = await self.run_pass()
                # Woken by what announces itself (a trigger, a reload, a run's end); the
                # look for what does not (another process's or node's work) is on the
                # daemon's beat, with its other looks: one wake-up for all of them.
                if delay <= poll:
                    self._wake_due = when_to_wake(poll, delay)
                else:  # a failing tick's backoff: not shortened by the beat
                    self._wake_due = asyncio.get_running_loop().time() + delay
                await sleeper.until(self._wake_due)
        finally:
            sleeper.close()

    async def run_pass(self) -> float:
        """One pass of the loop: a tick and the sleep that follows it, in seconds."""
        self.passes += 1
        began = time.monotonic()
        silent = began - self.health.last_pass
        if silent > health.GAP_NOTED:
            self.health.note_gap(self.health.last_pass, began)
        late = began - self._wake_due if self._wake_due is not None else 0.0
        self._wake_due = None
        if silent > FREEZE_AFTER_BEATS * self.settings.poll_interval or late > FREEZE_LATE:
            # A freeze (no pass for several beats, or one that began well past its
            # wake-up): runs' deadlines may have passed while
            # their ends wait to be seen (a command that exited meanwhile). This pass's
            # sweep, and only it, waits a second for them; and the runs get a moment to
            # see their commands' ends before this tick plans the fires due meanwhile
            # (an ended run still recorded running made the next fire a skip).
            self._held.sweep_not_before = self.clock.now() + timedelta(seconds=1)
            if self._runs:
                await asyncio.sleep(FREEZE_SETTLE)
        self.health.last_pass = began
        self._pass_began = self.clock.now()
        self._wake.clear()
        try:
            report = await self.tick()
            delay = self._sleep_for(report)
            finisher = self._deps.finisher
            if finisher is not None and finisher.last_error is not None:
                # Ticks work but the ends of runs cannot be written: as much an
                # outage as a failing tick (the runs wait, nothing is recorded).
                return self._tick_failed(finisher.last_error)
        except Exception as exc:
            return self._tick_failed(exc)
        self._pass_report = None  # a pass that worked: its report goes with it below
        if self.health.outage is not None:
            self.health.worked_since = began
        self.health.last_ok = time.monotonic()
        self._good_pass_began = self._pass_began
        if not report.backlog:
            self._caught_up_began, self._backlog_since = self._pass_began, None
        elif self._backlog_since is None:
            self._backlog_since = self._pass_began
        self._outages.worked(report)
        now = self.clock.now()
        for duty in self.after_pass:
            try:
                duty(now)
            except Exception:
                log.exception("after-pass duty %s failed", getattr(duty, "__name__", duty))
        if self._outages.healing():
            return min(delay, self._heal())
        return delay

    def _heal(self) -> float:
        """Tell a held outage's end once it has held (see TickOutages.hold_left); the
        seconds until the next look."""
        left = self._outages.hold_left()
        if left > 0:
            return left
        refused = self._outages.tell_recovered_if_writes()
        if refused is not None:  # not back after all: the same outage goes on
            return self._tick_failed(refused)
        return self.settings.poll_interval

    def _tick_failed(self, exc: Exception) -> float:
        self._ahead = None  # made before the fault: the first tick after it plans afresh
        partial, self._pass_report = self._pass_report, None
        return self._outages.failed(exc, partial, self._pass_began, self._good_pass_began)

    def outage_told(self) -> Outage | None:
        """The outage the owner was told of and has not yet been told is over."""
        return self._outages.told()

    def healing_since(self) -> datetime | None:
        """When ticks worked again after the outage being held, or None."""
        return self._outages.healing_since()

    def outage_covering(self, at: datetime) -> Outage | None:
        """The outage (going on, or among the last ones) during which ``at`` came due."""
        return self._outages.covering(at)

    async def shutdown(self, grace: float = 10.0) -> None:
        """Let runs finish for ``grace`` seconds, then cancel them: each is recorded as
        interrupted through the same finish path as any other end, and every listener
        hears of every ended run before this returns (the store is closed after)."""
        self.stopping = True
        self._outages.at_stop()  # the database worked until the stop: said, if it writes
        try:
            if self._runs:
                await self.wait_idle(grace)
        except TimeoutError:
            stopped = [r for r in self._runs.values() if not r.finishing]
            for run in stopped:  # one that has ended is only being recorded
                self._held.stop(run)
            tasks = [r.task for r in list(self._runs.values())]
            # a stopped command gets its kill_grace to end, then each record FINISH_GRACE;
            # a record the database will not take is not waited for past that (the next
            # start recovers the run from its lease and its launcher's marker)
            ending = max((r.spec.kill_grace.total_seconds() for r in stopped), default=0.0)
            bound = ending + FINISH_GRACE
            _, stuck = await asyncio.wait(tasks, timeout=bound) if tasks else ((), ())
            if stuck:
                finisher = self._deps.finisher
                # dropped, so that none is written after the stop with no one told
                dropped = finisher.abandon() if finisher is not None else 0
                log.error(
                    "%d run(s) did not end within %gs of the stop (%d end(s) still waited "
                    "for the database); the next start recovers them from their leases",
                    len(stuck),
                    bound,
                    dropped,
                )
                for task in stuck:
                    task.cancel()
                # not waited for past a moment: a run that will not end when cancelled
                # held the stop for good (outside-in probe)
                _, still = await asyncio.wait(stuck, timeout=1.0)
                if still:
                    log.error(
                        "%d run(s) would not end when cancelled; left to the next start",
                        len(still),
                    )
        self._tell_listeners()

    def cancel_slot(self, slot_id: int, reason: str) -> bool:
        """Stop a run in progress; False when there is none, or it has ended and is
        being recorded (its end stands)."""
        return self._held.cancel(slot_id, reason)

    # ---- steps -------------------------------------------------------------------
    def _sleep_for(self, report: TickReport) -> float:
        """Until the next fire or retry, at most ``poll_interval``. Slots waiting for room
        are not counted (a run's end wakes the loop, and the poll covers another node's),
        and a fire still due after a tick that moved nothing waits for the poll: the
        loop sleeps whenever nothing can be done, it never spins."""
        poll = self.settings.poll_interval
        now = self.clock.now()
        times = self._next_times(now, kept=True)
        poll = min(poll, self._until_prepared(times.fire, now))
        nxt = times.wakeup
        if nxt is None:
            return poll
        delay = (nxt - now).total_seconds()
        if delay <= 0:
            progressed = report.started or report.materialized or report.lost
            # due after this pass's tick looked (a steady load fires every few ms): not a
            # fire the tick could not move. Taken COALESCE after its instant, as a fire
            # seen ahead is (at once if that has passed): ticking at once made a steady
            # load pay a pass per fire, and waiting for the poll made it a second late.
            unseen = nxt > self._pass_began
            if not (progressed or unseen):
                return poll
            return max(0.0, delay + COALESCE)
        # Fires a few ms apart are taken by one pass: a tick and its writes per fire is
        # what a steady load of staggered tasks costs (COALESCE is the lateness bought).
        return min(poll, delay + COALESCE)

    def _until_prepared(self, fire: datetime | None, now: datetime) -> float:
        """Seconds until a pass must look at ``fire`` to prepare it (see
        :meth:`_prepare`): just inside :data:`LOOKAHEAD` of it, unless it is prepared
        or that moment has come (infinity: no such pass is needed). Without this wake
        a beat longer than the look ahead slept past the window, and a burst of
        thousands due at once was planned in its own instant's tick (the burst at
        ``max_concurrency`` 10 measured it)."""
        if fire is None:
            return math.inf
        ahead = self._ahead
        if ahead is not None and ahead.zone == self.settings.default_zone and ahead.covers(fire):
            return math.inf
        early = (fire - LOOKAHEAD - now).total_seconds() + PREPARE_SLACK
        return early if early > 0 else math.inf

    def _prepare(self, now: datetime) -> None:
        """Get the tasks of the coming fires ready, if they are close: build their
        schedules, load their kinds of action, plan each fire as of its instant and
        make new tasks' output folders now, so that the tick at an instant does only
        what cannot be done before it (record, start). A burst of a thousand new tasks
        due at once would otherwise spend a third of its first tick on this. Nothing is
        recorded early: slots are still made when due, by the rules.

        One read prepares every fire up to the window's end (see :class:`.Ahead`), not
        one instant: with staggered tasks the next instant is always a millisecond away,
        and preparing it on every tick cost a read, a plan and a thread job per fire."""
        nxt = self._next_times(now).fire
        if nxt is None or nxt <= now or nxt - now > LOOKAHEAD:
            return
        zone = self.settings.default_zone
        ahead = self._ahead
        if ahead is not None and ahead.zone == zone and ahead.covers(nxt):
            return  # the next fire is planned already
        end = now + LOOKAHEAD
        # A bounded batch per pass (a thousand staggered tasks planned at once held the
        # loop for tens of ms: the tail of the lateness), but every task of an instant
        # together (a burst due at one instant is prepared whole, as before).
        due = self.store.due_tasks(end, PREPARE_BATCH)
        if len(due) >= PREPARE_BATCH and due[0].next_fire_at == due[-1].next_fire_at:
            due = self.store.due_tasks(end, PREPARE_LIMIT)
            limit = PREPARE_LIMIT
        else:
            limit = PREPARE_BATCH
        if len(due) >= limit and due[-1].next_fire_at is not None:
            end = due[-1].next_fire_at  # tasks at that instant may lie past the limit
        plans: dict[str, tuple[TaskRecord, Plan]] = {}
        for rec in due:
            at = rec.next_fire_at
            if at is None or at <= now or at >= end:
                continue  # due already (this tick's), or past the window
            try:
                sched = self.schedule_for(rec.spec)
                if rec.name not in self._folders_made:  # a task not prepared before
                    self.actions(rec.spec)  # imports and makes the action (cached by kind)
                plan = plan_due(rec, sched, at, self.started_at)
            except Exception:  # reported when the fire is planned or run
                continue
            plans[rec.name] = (rec, plan)
            if plan.new_next is not None:
                end = min(end, plan.new_next)  # that task's next fire is not planned
        if not plans:
            return
        first = min(rec.next_fire_at or end for rec, _ in plans.values())
        self._ahead = Ahead(first, zone, plans, until=end)
        self._make_folders_of(plans)

    def _next_times(self, now: datetime, *, kept: bool = False) -> NextTimes:
        """The next fire and retry, read by the tick's look ahead (after its writes) and
        kept for the sleep that follows it (``kept``), which then reads nothing: one
        statement per pass, not two (each waits for the GIL while inline runs are busy)."""
        times, self._times = self._times, None
        if times is None or not kept:
            times = self.store.next_times(after=now)
        if not kept:
            self._times = times
        return times

    def _make_folders_of(self, plans: dict[str, tuple[TaskRecord, Plan]]) -> None:
        """Make the output folders of tasks not seen before, on a thread (a task's runs
        make their folder themselves if it went missing since)."""
        made = self._folders_made
        fresh = [name for name in plans if name not in made]
        if not fresh:
            return
        if len(made) + len(fresh) > SCHEDULE_CACHE_LIMIT:
            made.clear()  # a bound: names of removed tasks would pile up
        made.update(fresh)
        from agentcron.actions.output import output_folder

        folders = [output_folder(self.settings.home, name) for name in fresh]
        asyncio.get_running_loop().run_in_executor(None, _make_folders, folders)

    def _materialize(self, now: datetime) -> tuple[int, int, int, int]:
        """Plan every due task in memory, then record all their slots in one
        transaction, starting fresh ones while there is room: a burst of thousands of
        due tasks costs one commit, not thousands. Returns (recorded, skipped, missed,
        started)."""
        planned = self._due_plans(now)
        if not planned:
            return 0, 0, 0, 0
        if self._pass_report is not None:
            self._pass_report.backlog = len(planned) >= DUE_LIMIT or any(
                p.new_next is not None and p.new_next <= now for p in planned
            )
        active = self._still_running(self.store.active_slots_of({p.spec.name for p in planned}))
        zone = self.settings.default_zone
        held_by = self._silent_holder(now)
        plans = [with_overlap(p, active.get(p.spec.name, ()), zone, held_by) for p in planned]
        room = StartRoom(
            owner=self.settings.owner,
            lease_until=now + self.settings.lease,
            room=max(0, self.settings.max_concurrency - len(self._runs)),
        )
        results, claims = self.store.materialize_and_start(
            [Fires(p.spec, p.expected, p.new_next, p.slots) for p in plans], now, room
        )
        started = self._gate(claims, now)
        began = self._began(started, now)
        for claim in started:
            self._spawn(claim, began)
        created = skipped = missed = 0
        for plan, inserted in zip(plans, results, strict=True):
            if inserted is None:
                continue  # another node got there first
            if plan.displace and not plan.replace:  # behind its own run: not for a worker
                self._starving.note_waiting(plan, active.get(plan.spec.name, ()))
            created += len(inserted)
            skipped += sum(1 for s in inserted if s.status is SlotStatus.SKIPPED)
            missed += sum(1 for s in inserted if s.status in _NOT_RUN)
            self._after_materialize(plan, inserted, now)
        return created, skipped, missed, len(claims)

    def _silent_holder(self, now: datetime) -> Callable[[Slot], str | None]:
        """For a skip's reason: the node holding a running slot, when it has not beaten
        for three beats (frozen, cut off); nodes read once, when first asked."""
        from agentcron.schedules.zones import resolve_zone

        nodes: dict[str, NodeInfo] | None = None
        silent_after = timedelta(seconds=max(3 * self.settings.poll_interval, 15.0))

        def held_by(slot: Slot) -> str | None:
            nonlocal nodes
            owner = slot.lease_owner
            if owner is None or owner == self.settings.owner:
                return None
            if nodes is None:
                nodes = {n.node_id: n for n in self.store.nodes()}
            node = nodes.get(owner)
            if (
                node is None
                or node.stopped_at is not None
                or now - node.heartbeat_at < silent_after
            ):
                return None
            zone = resolve_zone(self.settings.default_zone)
            beat = node.heartbeat_at.astimezone(zone).strftime("%H:%M:%S %Z")
            return f"the node on {node.host} (pid {node.pid}), not heard from since {beat}"

        return held_by

    def _still_running(self, active: dict[str, list[Slot]]) -> dict[str, list[Slot]]:
        """The active slots less the runs of this node that have ended and are being
        recorded: an end held while the database is away (or seen just after a
        freeze) left the slot ``running`` in the record, and under ``overlap: skip``
        the next fire was skipped "the previous run was still running" although it had
        ended, and catch-up ran nothing (outside-in probe). The new slot waits instead,
        and runs once that end is written (a claim passes over a task that runs)."""
        ended = self.ending_slots()
        if not ended:
            return active
        return {
            task: [s for s in slots if s.id not in ended or s.status is not SlotStatus.RUNNING]
            for task, slots in active.items()
        }

    def _due_plans(self, now: datetime) -> list[Plan]:
        """The plans of the tasks due now: those made ahead if they all still hold (see
        :mod:`.planning`), else made now from a fresh read."""
        ahead = self._ahead
        if ahead is not None:  # the names due (no specs read) are enough to take them
            heads = self.store.due_heads(now, DUE_LIMIT)
            if not heads:
                return []
            taken = ahead.take(heads, now, self.settings.default_zone)
            if taken is not None:
                return taken
            self._ahead = None  # something changed: plan afresh, prepare again
        plans: list[Plan] = []
        for rec in self.store.due_tasks(now, DUE_LIMIT):
            try:
                plans.append(
                    plan_due(
                        rec,
                        self.schedule_for(rec.spec),
                        now,
                        self.started_at,
                        self._stall_words(rec.spec),
                    )
                )
            except Exception:
                log.exception("could not plan slots for task %s", rec.name)
        return plans

    def _after_materialize(self, plan: Plan, inserted: list[Slot], now: datetime) -> None:
        spec = plan.spec
        if plan.supersede or plan.replace or plan.displace:
            newest = max((s.scheduled_for for s in plan.slots), default=now)
            local = newest.astimezone(spec.zone(self.settings.default_zone))
            label = f"{local:%H:%M:%S}" if local.second else f"{local:%H:%M}"
            waiting_retry = f"superseded by the run due at {label} while waiting for a retry"
            waiting_room = (
                f"superseded by the run due at {label}: it was still waiting for the run "
                "it replaces to stop"
                if plan.replace  # behind a run of its own task (on a node that may be gone)
                else f"superseded by the run due at {label}: it was still waiting for a free worker"
            )
            changes = [
                (i, waiting_retry, [SlotStatus.RETRYING, SlotStatus.PENDING])
                for i in plan.supersede
            ] + [(i, waiting_room, [SlotStatus.PENDING]) for i in plan.displace]
            superseded = [
                slot_id
                for slot_id, why, was in changes
                if self.store.set_slot_status(
                    slot_id, SlotStatus.SUPERSEDED, why, now, only_from=was
                )
            ]
            # final without running: told like the skipped and missed (metrics count them)
            inserted = [*inserted, *filter(None, map(self.store.get_slot, superseded))]
            for slot_id in plan.replace:
                if slot_id in self._runs:
                    self._held.cancel(slot_id, replaced_text(label))
                elif self.store.ask_stop(slot_id, replaced_text(label)):
                    # run by another node: its owner stops it (see HeldRuns.honour_stops)
                    log.info("asked the node running %s (slot %s) to stop it", spec.name, slot_id)
        for slot in inserted:
            if slot.status.is_final:
                self._tell_slot_listeners(spec, slot)

    def tell_recorded_slot(self, spec: TaskSpec, slot: Slot) -> None:
        """Tell the slot listeners of a slot recorded final without a run elsewhere than
        in a tick (a one-shot whose time had passed when the file was first read)."""
        self._tell_slot_listeners(spec, slot)

    def _tell_slot_listeners(self, spec: TaskSpec, slot: Slot) -> None:
        for listener in self.slot_listeners:
            try:
                listener(spec, slot)
            except Exception:
                log.exception("slot listener failed on %s", spec.name)

    def _start_runs(self, now: datetime) -> int:
        room = self.settings.max_concurrency - len(self._runs)
        if room <= 0:
            return 0
        claims = self.store.claim(self.settings.owner, now, now + self.settings.lease, room)
        started = self._gate(claims, now)
        began = self._began(started, now)
        for claim in started:
            self._spawn(claim, began)
        return len(started)

    def _began(self, started: list[Claim], now: datetime) -> datetime:
        """When the runs just claimed really start. The claim's transaction writes the
        time its pass began; one that waited (a locked table) made runs read as started
        before their action did, so that their timeout killed them early and they were
        told as running too long (outside-in probe, PostgreSQL: a 35 s run with
        ``timeout: 40s`` killed 32 s after its command started). Their start and leases
        are then written again, from now."""
        began = self.clock.now()
        if not started or began - now < RESTAMP_AFTER:
            return now
        pairs = [(c.slot.id, c.attempt.id) for c in started]
        try:
            self.store.restamp_started(
                self.settings.owner, pairs, began, began + self.settings.lease
            )
        except Exception as exc:  # the runs start all the same; their record is early
            log.warning(
                "could not record the late start of %d run(s) (their pass waited %s for "
                "the database): %s",
                len(pairs),
                format_duration(began - now),
                exc,
            )
        return began

    def _gate(self, claims: list[Claim], now: datetime) -> list[Claim]:
        """The claims whose provider may be called now (see :mod:`.providers`), less the
        one-shots past their ``expires`` (recorded expired, not run)."""
        claims = self._unexpired(claims, now)
        start, news = self.providers.gate(claims, now)
        self._tell_providers(news)
        for gate in self.gates:
            if not start:
                break
            start, ended = gate(start, now)
            for spec, slot in ended:
                self._tell_slot_listeners(spec, slot)
        return start

    def _unexpired(self, claims: list[Claim], now: datetime) -> list[Claim]:
        """An ``at`` task's first attempt that comes later than its ``expires`` allows
        is recorded ``expired`` instead of run: its slot waited for a free worker (or a
        database that came back) past it, and ran anyway (outside-in probe; the check
        was made only when the slot was recorded)."""
        keep: list[Claim] = []
        for claim in claims:
            spec, slot = claim.spec, claim.slot
            late = now - slot.scheduled_for
            if (
                spec.at is None
                or spec.expires is None
                or claim.attempt.number != 1
                or slot.trigger == "manual"
                or late <= spec.expires
            ):
                keep.append(claim)
                continue
            reason = (
                f"not started within {format_duration(spec.expires)} of its time (expires): "
                f"it waited {format_duration(late)} for a free worker"
            )
            ended = self.store.skip_claim(
                slot.id, claim.attempt.id, self.settings.owner, reason, now, SlotStatus.EXPIRED
            )
            if ended is None:  # taken over meanwhile: not ours to end, nor to start
                continue
            log.info("slot %s of %s expired: %s", slot.id, spec.name, reason)
            self._tell_slot_listeners(spec, ended)
        return keep

    def _tell_providers(self, news: Sequence[ProviderNews]) -> None:
        for item in news:
            for listener in self.provider_listeners:
                try:
                    listener(item)
                except Exception:
                    log.exception("provider listener failed on %s", item.state.name)

    def _spawn(self, claim: Claim, now: datetime) -> None:
        slot_id = claim.slot.id
        self._starving.started(claim.spec.name)
        task = asyncio.create_task(
            self._guarded(claim, self._deps), name=f"run:{claim.spec.name}:{slot_id}"
        )
        self._runs[slot_id] = HeldRun(
            task=task,
            slot_id=slot_id,
            name=claim.spec.name,
            started_at=now,
            spec=claim.spec,
        )

    async def _guarded(self, claim: Claim, deps: RunnerDeps) -> Finished | None:
        slot_id = claim.slot.id
        run = self._runs.get(slot_id)
        if run is not None:
            run.started = True  # stopped before this step: execute records it unrun
        settled = False  # ended for good, no retry to plan
        try:
            result = await execute(claim, deps)
            if result is not None:
                self._notify(result)
                settled = result.slot.status.is_final
            return result
        except Exception:
            # execute records every end it meets; what escapes it is a bug of ours,
            # said here (no one awaits this task's result) and its run recovered from
            # its lease as lost
            log.exception(
                "the run of %s (slot %s) ended without a record", claim.spec.name, slot_id
            )
            return None
        finally:
            full = len(self._runs) >= self.settings.max_concurrency
            self._runs.pop(slot_id, None)
            self._run_ended(full, settled)

    def _spend(
        self, spec: TaskSpec, outcome: AttemptOutcome, at: datetime
    ) -> tuple[tuple[str, str, int], ...]:
        spent: list[tuple[str, str, int]] = []
        for spender in self.spenders:
            try:
                spent += spender(spec, outcome, at)
            except Exception:  # the run's end is recorded all the same
                log.exception("could not count what the run of %s spent", spec.name)
        return tuple(spent)

    def _run_ended(self, full: bool, settled: bool) -> None:
        """A run's end may free room for a waiting slot or leave a retry to plan. When
        every place was taken (``full``), slots may be waiting for this one: the loop
        ticks at once (a burst at a small ``max_concurrency`` starts the next runs
        without delay). When slots wait (a task's queue, fires the tick could not
        start) or the run is to be tried again (``settled`` is false: its retry may
        come before the loop's wake-up), it looks within :data:`COALESCE`, so runs
        that end close together share one pass instead of one each. A run that ended
        for good while nothing waits frees nothing a pass would start: a steady load
        of 1,000 staggered tasks paid ~30 passes a second for such ends (bench/README)."""
        if full:
            self._wake.set()
        elif (self._slots_wait or not settled) and self._end_wake is None:
            loop = asyncio.get_running_loop()
            self._end_wake = loop.call_later(COALESCE, self._ends_looked_at)

    def _ends_looked_at(self) -> None:
        self._end_wake = None
        self._wake.set()

    def _notify(self, finished: Finished) -> None:
        """Queue ``finished`` for the listeners; they hear on the loop's next pass,
        together with every other run that ended in this one."""
        if not self._ended:
            asyncio.get_running_loop().call_soon(self._tell_listeners)
        self._ended.append(finished)

    def _tell_listeners(self) -> None:
        ended, self._ended = self._ended, []
        if not ended:
            return
        try:
            news = self.providers.feedback(ended, self.clock.now())
            if any(item.what == "answered" for item in news):
                self._wake.set()  # the slots that waited for the provider may start now
            self._tell_providers(news)
        except Exception:  # the runs' own ends are recorded; their listeners hear below
            log.exception("could not record what %d ended runs said of their providers", len(ended))
        for finished in ended:
            for listener in self.listeners:
                try:
                    listener(finished)
                except Exception:
                    log.exception("listener failed on %s", finished.spec.name)
        for batch_listener in self.batch_listeners:
            try:
                batch_listener(ended)
            except Exception:
                log.exception("listener failed on a batch of %d finished runs", len(ended))


def _make_folders(folders: Sequence[str]) -> None:
    from agentcron.home import private_dirs

    for folder in folders:
        try:
            private_dirs(folder)  # outputs are private: new folders are 0700
        except OSError:  # the run's own write will say what is wrong
            log.debug("could not make %s ahead of its runs", folder, exc_info=True)
