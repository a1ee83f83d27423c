"""The watchdog: a thread of its own that notices what the loop cannot report itself.

It runs outside the scheduler's event loop on purpose: a run that blocks, a
task that ignores signals or a bug that wedges the loop cannot stop it. Every
few seconds it looks for runs going on longer than ``stuck_after`` (warned, not
killed: ``timeout`` does the killing), tasks whose due fire has not been turned
into a slot for ``max(2 × period, 5m)`` (``overdue_after``), and a loop that has
stopped ticking, which it reports and pings to the dead man's switch as a
failure. Its checks take the time as an argument so tests drive them with a
fake clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agentcron.clock import Clock
from agentcron.faultlog import FaultLog
from agentcron.model import TaskRecord, TaskSpec
from agentcron.notify.events import Event, RunStuck, TaskOverdue
from agentcron.store.base import Store

log = logging.getLogger("agentcron.watchdog")

MIN_OVERDUE = timedelta(minutes=5)
LOOP_STALL = 30.0  # seconds without a tick before the loop counts as stuck


@dataclass
class WatchdogReport:
    stuck: list[int] = field(default_factory=list)  # slot ids newly reported stuck
    overdue: list[str] = field(default_factory=list)  # tasks newly reported overdue
    loop_stalled: bool = False


def overdue_limit(spec: TaskSpec, period: timedelta) -> timedelta:
    """How long past due a task may go without a slot before it is overdue."""
    if spec.overdue_after is not None:
        return spec.overdue_after
    return max(2 * period, MIN_OVERDUE)


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
        on_stall: Callable[[float], None] | None = None,
        on_stall_end: Callable[[float], None] | None = None,
        stall_after: float = LOOP_STALL,
    ) -> None:
        self.store = store
        self.clock = clock
        self.emit = emit
        self.period_of = period_of
        self.count_fires = count_fires
        self.interval = interval
        self.last_tick = last_tick
        self.on_stall = on_stall
        self.on_stall_end = on_stall_end
        self.stall_after = stall_after
        self._reported_stuck: set[int] = set()
        self._reported_overdue: dict[str, datetime] = {}
        self._stalled = False
        self._stalled_at = 0.0  # monotonic time the stall was noticed
        self._stop = threading.Event()
        self._faults = FaultLog(log, "the watchdog's checks of runs and schedules")
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
        """The checks that read the database: stuck runs and overdue tasks."""
        report = report if report is not None else WatchdogReport()
        now = self.clock.now()
        failed: BaseException | None = None
        for check in (self._check_stuck, self._check_overdue):
            try:
                check(now, report)
            except Exception as exc:
                failed = exc
        if failed is not None:
            self._faults.failed(failed)
        else:
            self._faults.ok()
        return report

    def _check_stuck(self, now: datetime, report: WatchdogReport) -> None:
        running = self.store.running_slots()
        live = {s.id for s in running}
        self._reported_stuck &= live
        for slot in running:
            if slot.id in self._reported_stuck or slot.started_at is None:
                continue
            rec = self.store.get_task(slot.task)
            if rec is None or now - slot.started_at <= rec.spec.stuck_after:
                continue  # the slot's first start bounds the current attempt's: not stuck
            attempts = self.store.attempts(slot.id)
            began = attempts[-1].started_at if attempts else slot.started_at
            running_for = now - began
            if running_for > rec.spec.stuck_after:
                self._reported_stuck.add(slot.id)
                report.stuck.append(slot.id)
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
                    ),
                )

    def _check_overdue(self, now: datetime, report: WatchdogReport) -> None:
        for rec in self.store.due_tasks(now - MIN_OVERDUE, 1000):
            due = rec.next_fire_at
            if due is None:
                continue
            if now - due <= overdue_limit(rec.spec, self.period_of(rec.spec)):
                continue
            # Re-reported on every check while it lasts: the open incident only counts
            # it (no message), and its missed count stays true for the recovery notice.
            first = self._reported_overdue.get(rec.name) != due
            self._reported_overdue[rec.name] = due
            if first:
                report.overdue.append(rec.name)
            self._report_overdue(rec, due, now, first)

    def _report_overdue(self, rec: TaskRecord, due: datetime, now: datetime, first: bool) -> None:
        missed = max(1, self.count_fires(rec.spec, due, now))
        last = self.store.last_slots(rec.name, 1)
        if first:
            log.error(
                "%s is overdue: due since %s, %d run(s) missed, the loop did not fire it",
                rec.name,
                due.isoformat(),
                missed,
            )
        self.emit(
            rec.spec,
            TaskOverdue(
                task=rec.name,
                at=now,
                due_since=due,
                missed=missed,
                last_run=last[0].scheduled_for if last else None,
            ),
        )

    def _check_loop(self, report: WatchdogReport) -> None:
        """A loop that has not passed for ``stall_after`` seconds is stalled: told once
        when it starts and once when the loop moves again."""
        if self.last_tick is None:
            return
        import time

        now = time.monotonic()
        silent = now - self.last_tick()
        if silent > self.stall_after:
            report.loop_stalled = True
            if not self._stalled:
                self._stalled, self._stalled_at = True, now - silent
                log.error("the scheduler loop has not ticked for %.0fs", silent)
                if self.on_stall is not None:
                    self.on_stall(silent)
        elif self._stalled:
            self._stalled = False
            lasted = max(0.0, self.last_tick() - self._stalled_at)
            log.warning("the scheduler loop ticks again after a stall of %.0fs", lasted)
            if self.on_stall_end is not None:
                self.on_stall_end(lasted)

    @property
    def stalled(self) -> bool:
        return self._stalled

    # ---- the threads ---------------------------------------------------------------
    def start(self) -> None:
        """Two threads: the loop's pulse is watched by one that never touches the
        database, so a wedged connection cannot hide a wedged loop."""
        self._stop.clear()
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
        for thread in self._threads:
            thread.join(timeout)

    def _run_loop_check(self) -> None:
        while not self._stop.wait(min(self.interval, 1.0)):
            try:
                self._check_loop(WatchdogReport())
            except Exception:
                log.exception("loop check failed; continuing")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check_tasks()
            except Exception:
                log.exception("watchdog check failed; continuing")
