"""The watchdog: threads of its own that notice what the loop cannot report itself.

It runs outside the scheduler's event loop on purpose: a run that blocks, a
task that ignores signals or a bug that wedges the loop cannot stop it. It looks
for runs going on longer than ``stuck_after`` (warned, not killed: ``timeout``
does the killing), tasks whose due fire has not been turned into a slot for
``overdue_after`` (default ``max(2 × period, 5m)``; checked as often as the
smallest limit in use needs, see :mod:`.limits`), and a loop that has stopped
ticking, which it reports and pings to the dead man's switch as a failure.

While the loop is stalled the outbox sender, which lives on that loop, sends
nothing; the watchdog's thread then stands in for it
(:class:`~agentcron.notify.direct.StandInSender`), so an overdue or stuck notice
reaches the owner during the stall rather than after it, and is claimed and
marked sent like any outbox message, never sent twice. The stalls it noticed are
kept (:mod:`.stalls`) for the reasons of the fires they made miss.

Checks take their time from the injectable clock, so tests drive them with a
fake one; only the loop's silence is measured on the monotonic clock the loop
stamps its passes with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agentcron.clock import Clock
from agentcron.faultlog import FaultLog
from agentcron.model import TaskSpec
from agentcron.notify.channels import Channel, channel_for
from agentcron.notify.direct import StandInSender
from agentcron.notify.events import Event, RunStuck, TaskOverdue
from agentcron.store.base import Store
from agentcron.watchdog.limits import (
    CHECK_FLOOR,
    MIN_OVERDUE,
    OverdueLimits,
    check_interval,
    overdue_limit,
)
from agentcron.watchdog.stalls import LoopStall, StallLog

__all__ = [
    "LOOP_STALL",
    "MIN_OVERDUE",
    "Watchdog",
    "WatchdogReport",
    "check_interval",
    "overdue_limit",
]

log = logging.getLogger("agentcron.watchdog")

LOOP_STALL = 30.0  # seconds without a tick before the loop counts as stuck
HELD_AFTER = 1.0  # seconds the stall thread woke past its time: the process was held
PASS_GRACE = 2.0  # seconds the loop then has to pass before its silence is a stall
STUCK_MARGIN = timedelta(milliseconds=50)  # a check just after a run passes stuck_after
OVERDUE_SCAN = 1000  # due tasks looked at per check, the longest overdue first


@dataclass
class WatchdogReport:
    stuck: list[int] = field(default_factory=list)  # slot ids newly reported stuck
    overdue: list[str] = field(default_factory=list)  # tasks newly reported overdue
    loop_stalled: bool = False
    stood_in: int = 0  # outbox messages the watchdog's thread sent for the stalled loop


class Watchdog:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        emit: Callable[[TaskSpec, Event], object],
        period_of: Callable[[TaskSpec], timedelta],
        count_fires: Callable[[TaskSpec, datetime, datetime], int],
        *,
        interval: float = 5.0,
        last_tick: Callable[[], float] | None = None,
        last_gap: Callable[[], tuple[float, float] | None] | None = None,
        on_stall: Callable[[float], None] | None = None,
        on_stall_end: Callable[[float], None] | None = None,
        on_past_stall: Callable[[float], None] | None = None,
        failing: Callable[[], bool] | None = None,
        worked_since: Callable[[], float] | None = None,
        stall_after: float = LOOP_STALL,
        channel_factory: Callable[[str], Channel] = channel_for,
        outbox_owner: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        last_full_pass: Callable[[], datetime | None] | None = None,
        last_caught_up: Callable[[], datetime | None] | None = None,
        owner: str | None = None,
        ended_here: Callable[[], Collection[int]] | None = None,
    ) -> None:
        """``interval``: seconds between stuck checks, and the longest between overdue
        checks. ``last_tick``: the monotonic time of the loop's last pass; without it
        there is no stall check and no standing in for the loop's sender (which then
        uses ``channel_factory`` and claims as ``outbox_owner``)."""
        self.store = store
        self.clock = clock
        self.emit = emit
        self.period_of = period_of
        self.count_fires = count_fires
        self.interval = interval
        self.last_tick = last_tick
        # when the loop's last pass that ended began (wall clock): a task is overdue
        # only once a pass that began after its deadline has ended without firing it
        self.last_full_pass = last_full_pass
        # ... and the last that left nothing due unrecorded (a downtime's catch-up is
        # recorded in chunks over several passes): the overdue check's own measure
        self.last_caught_up = last_caught_up or last_full_pass
        # This node's engine (the lease owner of its runs), and the slots whose end it
        # has but has not recorded yet (the database away): not stuck, whatever the
        # database still says.
        self.owner = owner
        self.ended_here = ended_here
        self.last_gap = last_gap
        self.on_stall = on_stall
        self.on_stall_end = on_stall_end
        # A stall seen only once it was over (the whole process was frozen): one
        # message that says it happened; without this, told as a stall and its end.
        self.on_past_stall = on_past_stall
        # Whether the loop's passes fail now (its database away). A statement that
        # waited for a locked table until its timeout ends a stall with a failed pass,
        # and the next pass waits again: the end is told at the first pass that works.
        self.failing = failing
        # The monotonic time the loop's passes began to work again (its first pass that
        # worked after failing ones): such a stall ends there, however late this thread
        # looks (its own reads may wait for the same database).
        self.worked_since = worked_since
        # a moment, next to the stall's own threshold (tests use a short one)
        self.pass_grace = min(PASS_GRACE, stall_after / 3)
        self.stall_after = stall_after
        self.limits = OverdueLimits(store, period_of)
        self.stalls = StallLog()
        self.stand_in = (
            StandInSender(store, clock, owner=outbox_owner, channel_factory=channel_factory)
            if last_tick is not None
            else None
        )
        self._monotonic = monotonic
        self._reported_stuck: set[int] = set()
        self._reported_overdue: dict[str, datetime] = {}
        self._stalled = False
        self._stall_mark = 0.0  # the loop's last pass before the stall (monotonic)
        self._gap_mark = 0.0  # ... before the last stall recorded, however it was seen
        self._untold_gap: float | None = None  # a stall seen only after it: to tell
        self._end_untold: LoopStall | None = None  # ended in failing passes: to tell
        self._stall_lock = threading.Lock()
        self._next_stuck: datetime | None = None
        self._stuck_next: datetime | None = None  # when a running slot would be stuck
        self._next_overdue: datetime | None = None
        self._stop = threading.Event()
        # Ends the checks' thread's sleep early: at stop, and when a stall begins (it
        # then sends the outbox for the loop at once, not after its planned sleep).
        self._wake = threading.Event()
        self._faults = FaultLog(log, "the watchdog's checks of runs and schedules")
        self._loop_faults = FaultLog(log, "the watchdog's check of the scheduler loop")
        self._threads: list[threading.Thread] = []

    # ---- the checks (pure of threads; time comes from the clock) ----------------------
    def check_once(self) -> WatchdogReport:
        """Every check, the loop's first: it needs no database, and the ones after it
        may wait on a database the wedged loop holds. Each is guarded on its own."""
        report = WatchdogReport()
        self._check_loop(report)
        self.check_tasks(report)
        return report

    def check_tasks(self, report: WatchdogReport | None = None) -> WatchdogReport:
        """The checks that read the database, all of them now: stuck runs, overdue
        tasks, and the outbox while the loop is stalled."""
        return self._guarded(report or WatchdogReport(), stuck=True, overdue=True)

    def run_due(self) -> WatchdogReport:
        """The database checks whose time has come by the clock: stuck runs every
        ``interval``, overdue tasks every :meth:`overdue_interval`; then, while the
        loop is stalled, the outbox is sent from this thread."""
        now = self.clock.now()
        stuck = _due(self._next_stuck, now, self.interval)
        overdue = _due(self._next_overdue, now, self.interval)
        report = self._guarded(WatchdogReport(), stuck=stuck, overdue=overdue)
        now = self.clock.now()
        if stuck:
            # every interval, and when a running slot would pass its stuck_after: a
            # stuck_after shorter than the interval (3 s, its run's timeout 6 s) fell
            # between two checks on every run and was never told (outside-in probe)
            self._next_stuck = now + timedelta(seconds=self.interval)
            if self._stuck_next is not None:
                soonest = now + timedelta(seconds=CHECK_FLOOR)
                self._next_stuck = min(self._next_stuck, max(soonest, self._stuck_next))
        if overdue:
            self._next_overdue = now + timedelta(seconds=self.overdue_interval(now))
        return report

    def overdue_interval(self, now: datetime | None = None) -> float:
        """Seconds between overdue checks: a quarter of the smallest limit in use,
        between once a second and once per ``interval``."""
        return self.limits.interval(now or self.clock.now(), self.interval)

    def _guarded(self, report: WatchdogReport, *, stuck: bool, overdue: bool) -> WatchdogReport:
        now = self.clock.now()
        checks: list[Callable[[datetime, WatchdogReport], None]] = []
        if stuck:
            checks.append(self._check_stuck)
        if overdue:
            checks.append(self._check_overdue)
        if self.stand_in is not None and self._stalled:
            checks.append(self._send_for_the_loop)
        failed: BaseException | None = None
        for check in checks:
            try:
                check(now, report)
            except Exception as exc:
                failed = exc
        if failed is not None:
            self._faults.failed(failed)
        elif checks:
            self._faults.ok()
        return report

    def _check_stuck(self, now: datetime, report: WatchdogReport) -> None:
        running = self.store.running_slots()
        live = {s.id for s in running}
        self._reported_stuck &= live
        self._stuck_next = None
        ended = set(self.ended_here()) if self.ended_here is not None else set()
        seen: dict[str, datetime | None] | None = None  # read once, when first needed
        for slot in running:
            if slot.id in self._reported_stuck or slot.started_at is None or slot.id in ended:
                continue
            rec = self.store.get_task(slot.task)
            if rec is None:
                continue
            if now - slot.started_at <= rec.spec.stuck_after:
                # not stuck (the slot's first start bounds the current attempt's): the
                # next check comes when it would be, however short its stuck_after
                self._check_stuck_at(slot.started_at + rec.spec.stuck_after + STUCK_MARGIN)
                continue
            attempts = self.store.attempts(slot.id)
            began = attempts[-1].started_at if attempts else slot.started_at
            running_for = now - began
            if running_for <= rec.spec.stuck_after:
                continue
            if seen is None:
                seen = self._seen_running()
            owner_saw = seen.get(slot.lease_owner or "", now)
            if owner_saw is not None and owner_saw <= began + rec.spec.stuck_after:
                # Its node has not looked since the run crossed its stuck_after: the run
                # may have ended unseen (the node frozen, its database away). Told once
                # a pass of its own loop, or a heartbeat of its node, comes after.
                self._check_stuck_at(now + timedelta(seconds=CHECK_FLOOR))
                continue
            log.warning(
                "%s has been running for %s (stuck_after %s)",
                slot.task,
                running_for,
                rec.spec.stuck_after,
            )
            self.emit(
                rec.spec,
                RunStuck(
                    task=slot.task,
                    at=now,
                    slot_id=slot.id,
                    running_for=running_for,
                    limit=rec.spec.stuck_after,
                    timeout=rec.spec.timeout,
                ),
            )
            # counted as told once the notice is written: a failed write is tried
            # again at the next check instead of never
            self._reported_stuck.add(slot.id)
            report.stuck.append(slot.id)

    def _check_stuck_at(self, at: datetime) -> None:
        if self._stuck_next is None or at < self._stuck_next:
            self._stuck_next = at

    def _seen_running(self) -> dict[str, datetime | None]:
        """When each lease owner last showed it still held its runs: this node's loop
        by its last full pass, another node by its heartbeat. An owner not listed
        (no node record) is taken at its word."""
        seen: dict[str, datetime | None] = {
            node.node_id: node.heartbeat_at for node in self.store.nodes()
        }
        if self.owner is not None and self.last_full_pass is not None:
            seen[self.owner] = self.last_full_pass()
        return seen

    def _check_overdue(self, now: datetime, report: WatchdogReport) -> None:
        """Due tasks past their limit. Only tasks due for longer than the smallest
        limit in use are listed (a cheap indexed read of names and times); a task's
        spec is read again only when it changed."""
        heads = self.store.due_heads(now - self.limits.smallest(now), OVERDUE_SCAN)
        looked = self.last_caught_up() if self.last_caught_up is not None else None
        due_names = {name for name, _, _ in heads}
        self.limits.forget_all_but(due_names)
        for name in list(self._reported_overdue):
            if name not in due_names:
                del self._reported_overdue[name]
        for name, due, updated_at in heads:
            if due is None:
                continue
            known = self.limits.spec_and_limit(name, updated_at)
            if known is None:
                continue
            spec, limit = known
            if now - due <= limit:
                continue
            unlooked = looked is None or looked < due + limit
            if self.last_caught_up is not None and unlooked and not self._stalled:
                # No pass of the loop that began after the task became overdue has
                # ended, and the loop is not known stalled: a frozen process (SIGSTOP)
                # seen just after it resumed, before the loop's first pass recorded what
                # came due. The freeze is told as such; this was told as "overdue
                # although the daemon is alive", and over within the second (outside-in
                # probe). A stall the watchdog told still has its tasks told overdue.
                continue
            # Re-reported on every check while it lasts: the open incident only counts
            # it (no message), and its missed count stays true for the recovery notice.
            first = self._reported_overdue.get(name) != due
            self._reported_overdue[name] = due
            if first:
                report.overdue.append(name)
            self._report_overdue(spec, due, now, first)

    def _report_overdue(self, spec: TaskSpec, due: datetime, now: datetime, first: bool) -> None:
        missed = max(1, self.count_fires(spec, due, now))
        last = self.store.last_slots(spec.name, 1)
        if first:
            log.error(
                "%s is overdue: due since %s, %d run(s) missed, the loop did not fire it",
                spec.name,
                due.isoformat(),
                missed,
            )
        self.emit(
            spec,
            TaskOverdue(
                task=spec.name,
                at=now,
                due_since=due,
                missed=missed,
                last_run=last[0].scheduled_for if last else None,
            ),
        )

    def _send_for_the_loop(self, now: datetime, report: WatchdogReport) -> None:
        """The loop is stalled, and its outbox sender with it: send what waits."""
        assert self.stand_in is not None
        report.stood_in = self.stand_in.drain()
        if report.stood_in:
            log.warning(
                "sent %d message(s) from the watchdog's thread while the scheduler loop is stalled",
                report.stood_in,
            )

    # ---- the loop's pulse (no database) ----------------------------------------------
    def _check_loop(self, report: WatchdogReport) -> None:
        """A loop that has not passed for ``stall_after`` seconds is stalled: told once
        when it starts and once when the loop moves again, at a pass that works (see
        ``failing``)."""
        if self.last_tick is None:
            return
        began: float | None = None
        ended: LoopStall | None = None
        with self._stall_lock:
            last = self.last_tick()
            silent = self._monotonic() - last
            if silent > self.stall_after:
                report.loop_stalled = True
                if not self._stalled:
                    self._stalled, self._stall_mark = True, last
                    self._gap_mark = last
                    self.stalls.begin(self._wall(last))
                    # A pass waiting out its statement again, its database still
                    # away: the stall already told goes on, not a new one.
                    began = silent if self._end_untold is None else None
            elif self._stalled:
                self._stalled = False
                ended = self._close_stall(last)
                if ended is not None and (self._end_untold is not None or self._fails()):
                    # The pass that ended it failed: over for the owner at the first
                    # pass that works (the database's own message says why meanwhile).
                    self._end_untold, ended = self._end_untold or ended, None
            else:
                self._note_gap()
            if self._end_untold is not None and not self._stalled and not self._fails():
                ended = LoopStall(self._end_untold.began, self._wall(self._worked_at(last)))
                self._end_untold = None
            gone_by, self._untold_gap = self._untold_gap, None
            waited = gone_by is not None and self._fails()
            if waited and self._end_untold is None:
                # Its pass waited for the database and failed (a locked table, a
                # statement's timeout as long as stall_after): no hold of the process,
                # and not over: told as a stall, whose end is told at the first pass
                # that works, as when this thread saw it going on.
                self._end_untold = self.stalls.all()[-1]
            elif waited:  # a wait again in the stall already told: not a new one
                gone_by = None
        if waited and gone_by is not None:
            report.loop_stalled = True
            log.error(
                "the scheduler loop did not tick for %.0fs: its pass waited for the "
                "database and failed",
                gone_by,
            )
            if self.on_stall is not None:
                self.on_stall(gone_by)
        elif gone_by is not None:  # stalled and resumed before this thread could look
            report.loop_stalled = True
            log.error("the scheduler loop did not tick for %.0fs (seen after it)", gone_by)
            if self.on_past_stall is not None:
                self.on_past_stall(gone_by)
            else:
                if self.on_stall is not None:
                    self.on_stall(gone_by)
                if self.on_stall_end is not None:
                    self.on_stall_end(gone_by)
        if began is not None:
            self._wake.set()
            log.error("the scheduler loop has not ticked for %.0fs", began)
            if self.on_stall is not None:
                self.on_stall(began)
        if ended is not None:
            lasted = ended.lasted(self.clock.now()).total_seconds()
            log.warning("the scheduler loop ticks again after a stall of %.0fs", lasted)
            if self.on_stall_end is not None:
                self.on_stall_end(lasted)

    def _worked_at(self, last: float) -> float:
        """When a stall whose passes failed ended: the loop's first pass that worked
        (``last``, its latest, when the engine does not say)."""
        if self.worked_since is None:
            return last
        try:
            since = self.worked_since()
        except Exception:  # a wrong answer must not end the stall check
            log.exception("could not tell when the scheduler loop's passes worked again")
            return last
        return since if self._stall_mark < since <= last else last

    def _fails(self) -> bool:
        if self.failing is None:
            return False
        try:
            return self.failing()
        except Exception:  # a wrong answer must not end the stall check
            log.exception("could not tell whether the scheduler loop's passes fail")
            return False

    def _note_gap(self) -> None:
        """Record a stall the loop has already passed (its whole process was frozen:
        this thread too, so it could not see it going on), once; under ``_stall_lock``.
        Its telling is left to :meth:`_check_loop`."""
        gap = self.last_gap() if self.last_gap is not None else None
        if gap is None or gap[1] - gap[0] <= self.stall_after or gap[0] <= self._gap_mark:
            return
        self._gap_mark = gap[0]
        self.stalls.begin(self._wall(gap[0]))
        self.stalls.end(self._wall(gap[1]))
        self._untold_gap = gap[1] - gap[0]

    def _close_stall(self, last: float) -> LoopStall | None:
        """Close the open stall at the loop's first pass after it (``last``, when the
        loop has passed since the stall began); under ``_stall_lock``."""
        if last <= self._stall_mark:
            return self.stalls.current()
        return self.stalls.end(self._wall(last))

    def _wall(self, mono: float) -> datetime:
        """The wall time of a monotonic instant in the recent past."""
        return self.clock.now() - timedelta(seconds=max(0.0, self._monotonic() - mono))

    def stall_covering(self, at: datetime) -> LoopStall | None:
        """The stall during which a fire due at ``at`` came due, or None: for the reason
        of a slot recorded missed ("the scheduler loop was stalled from … to …", see
        :meth:`LoopStall.reason`). Safe from any thread; asked by the loop's first pass
        after a stall, it closes the stall at that pass (the stall check may not have
        looked yet)."""
        with self._stall_lock:
            if self._stalled and self.last_tick is not None:
                self._close_stall(self.last_tick())
            elif not self._stalled:
                self._note_gap()
        return self.stalls.covering(at)

    @property
    def stalled(self) -> bool:
        return self._stalled

    # ---- the threads ---------------------------------------------------------------
    def start(self) -> None:
        """Two threads: the loop's pulse is watched by one that never touches the
        database, so a wedged connection cannot hide a wedged loop."""
        self._stop.clear()
        self._wake.clear()
        self._threads = [
            threading.Thread(target=self._run_loop_check, name="agentcron-stall", daemon=True),
            threading.Thread(target=self._run, name="agentcron-watchdog", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def _run_loop_check(self) -> None:
        wait = self._floor()
        while True:
            due = self._monotonic() + wait
            if self._stop.wait(wait):
                return
            # Woken well past its time, this thread was held with the whole process
            # (SIGSTOP, a paused VM): the loop's silence is the same hold, over now. The
            # loop is given a moment to pass first, so the hold is told once, as over
            # (:meth:`_note_gap`), not as a stall followed a second later by its end.
            # So is a stall about to begin: a hold that ended just as this thread's wait
            # did (on time, as far as it can tell) looks like one for a moment (a 30 s
            # SIGSTOP was told as "has not ticked for 31s … restart the daemon", then its
            # end a second later). A stall that goes on is told a moment later.
            held = self._monotonic() - due > HELD_AFTER
            if (held or self._stall_begins()) and self._stop.wait(self.pass_grace):
                return
            try:
                self._check_loop(WatchdogReport())
                wait = self.loop_check_wait()
            except Exception as exc:
                self._loop_faults.failed(exc)  # logged once, then every few minutes
                wait = self._floor()
            else:
                self._loop_faults.ok()

    def _stall_begins(self) -> bool:
        """Whether the loop's silence is past ``stall_after`` with no stall told yet."""
        if self.last_tick is None or self._stalled:
            return False
        return self._monotonic() - self.last_tick() > self.stall_after

    def _run(self) -> None:
        """Runs what is due by the clock, then sleeps until the next check is due: the
        checks' own intervals decide how often it wakes and reads the database. A stall
        beginning wakes it at once, to stand in for the loop's sender."""
        wait = self._floor()
        while True:
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_due()
                wait = self.checks_wait()
            except Exception as exc:
                # planning the next checks reads the tasks too (one row that cannot be
                # read logged a traceback a second: outside-in probe)
                self._faults.failed(exc)
                wait = self._floor()

    def fault(self) -> tuple[float, BaseException] | None:
        """How long the checks have failed in a row and the latest failure, or None
        while they work (the daemon tells a fault that lasts: see Daemon)."""
        # read once each: the watchdog's threads change them meanwhile
        seen = [(f.lasted(), f.last_error) for f in (self._faults, self._loop_faults)]
        streaks = [(lasted, error) for lasted, error in seen if error is not None]
        return max(streaks, key=lambda s: s[0]) if streaks else None

    def _floor(self) -> float:
        return min(self.interval, CHECK_FLOOR)

    def loop_check_wait(self) -> float:
        """Seconds the stall thread may sleep: until the loop could first count as
        stalled (its last pass + ``stall_after``), so an idle daemon's pulse costs one
        wake-up per ``stall_after`` rather than one a second; every ``CHECK_FLOOR``
        while a stall lasts, to tell its end promptly."""
        floor = self._floor()
        if self.last_tick is None or self._stalled:
            return floor
        silent = self._monotonic() - self.last_tick()
        return max(floor, self.stall_after - silent)

    def checks_wait(self) -> float:
        """Seconds the checks' thread may sleep: until the earlier of the next stuck and
        overdue checks, at most ``interval`` (a wall clock set back cannot park it
        longer) and at least 50 ms; every ``CHECK_FLOOR`` while the loop is stalled,
        when this thread sends the outbox for it."""
        if self._stalled and self.stand_in is not None:
            return self._floor()
        now = self.clock.now()
        planned = [t for t in (self._next_stuck, self._next_overdue) if t is not None]
        if not planned:
            return self._floor()
        until = (min(planned) - now).total_seconds()
        return min(self.interval, max(0.05, until))


def _due(next_at: datetime | None, now: datetime, longest: float) -> bool:
    """Whether a check planned for ``next_at`` is due: its time has come, or the wall
    clock was set back so far that waiting for it would skip checks."""
    if next_at is None or now >= next_at:
        return True
    return next_at - now > timedelta(seconds=2 * longest)
