"""Proposed changes to agentcron, applied inside a benchmark child only, to measure what
they would gain before anyone makes them in ``src/``.

``against.py --what-if NAME[,NAME]`` applies them to agentcron's in-process children
(the steady loads and the profiles) and to the idle ``agentcron run`` processes (started
through a wrapper that applies them first). Figures measured with a what-if are
labelled as such in the JSON and the table: they are not the product's figures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def sleep_for_tick_time() -> None:
    """``Engine._sleep_for`` treats a fire that came due after the tick read the due
    tasks (between the tick's ``now`` and its own) as one the tick could not move, and
    sleeps a whole ``poll_interval``. With staggered fires every millisecond that
    happens every few passes. Proposed: tick again at once when the next wake-up is
    later than the moment the pass began (the tick cannot have seen it)."""
    from agentcron.engine.engine import Engine
    from agentcron.engine.settings import TickReport

    def _sleep_for(self: Engine, report: TickReport) -> float:
        poll = self.settings.poll_interval
        now = self.clock.now()
        nxt = self.store.next_times(after=now).wakeup
        if nxt is None:
            return poll
        delay = (nxt - now).total_seconds()
        if delay <= 0:
            progressed = report.started or report.materialized or report.lost
            unseen = nxt > self._pass_began  # came due after the tick looked
            return 0.0 if progressed or unseen else poll
        return min(poll, delay)

    Engine._sleep_for = _sleep_for  # type: ignore[method-assign]


def running_slots_unordered() -> None:
    """``SQLStore.running_slots`` (the watchdog's stuck check, every 5 s) asks for
    ``ORDER BY id``, which SQLite answers by walking the whole slots table in rowid
    order instead of the ``slots_running`` partial index: 48 ms at 1,000,000 slots.
    Proposed: no ORDER BY; sort the few rows in Python."""
    from agentcron.store._rows import SLOT_COLUMNS, slot_from_row
    from agentcron.store.sql import SQLStore

    def running_slots(self: SQLStore) -> list[Any]:
        rows = self._q(f"SELECT {SLOT_COLUMNS} FROM slots WHERE status = 'running'")
        return sorted((slot_from_row(r) for r in rows), key=lambda s: s.id)

    SQLStore.running_slots = running_slots  # type: ignore[method-assign]


def watchdog_sleeps() -> None:
    """The watchdog's two threads wake every second (``min(interval, CHECK_FLOOR)``)
    whatever is due: 2 of an idle daemon's wake-ups a second once the loop sleeps on
    its beat. Proposed for ``watchdog/watchdog.py``: the stall thread sleeps until the
    loop could first count as stalled (its last pass + ``stall_after``; every
    ``CHECK_FLOOR`` while a stall lasts, to tell its end), and the checks' thread until
    its next due check (``_next_stuck``, ``_next_overdue``), at most ``interval``."""
    import time
    from datetime import timedelta

    from agentcron.watchdog.limits import CHECK_FLOOR
    from agentcron.watchdog.watchdog import Watchdog, WatchdogReport

    def _run_loop_check(self: Watchdog) -> None:
        wait = min(self.interval, CHECK_FLOOR)
        while not self._stop.wait(wait):
            try:
                self._check_loop(WatchdogReport())
            except Exception:
                wait = min(self.interval, CHECK_FLOOR)
                continue
            if self._stalled or self.last_tick is None:
                wait = min(self.interval, CHECK_FLOOR)
            else:
                silent = time.monotonic() - self.last_tick()
                wait = max(min(self.interval, CHECK_FLOOR), self.stall_after - silent)

    def _run(self: Watchdog) -> None:
        wait = min(self.interval, CHECK_FLOOR)
        while not self._stop.wait(wait):
            try:
                self.run_due()
            except Exception:
                wait = min(self.interval, CHECK_FLOOR)
                continue
            if self._stalled:  # standing in for the loop's sender
                wait = min(self.interval, CHECK_FLOOR)
                continue
            now = self.clock.now()
            due = [t for t in (self._next_stuck, self._next_overdue) if t is not None]
            until = min(due, default=now + timedelta(seconds=self.interval)) - now
            wait = min(self.interval, max(0.05, until.total_seconds()))

    Watchdog._run_loop_check = _run_loop_check  # type: ignore[method-assign]
    Watchdog._run = _run  # type: ignore[method-assign]


def coalesce_10ms() -> None:
    """A pass waits 10 ms past the next fire instead of 5 (``engine.COALESCE``), so one
    pass takes the fires of 10 ms: about half the passes of a staggered load, and up to
    5 ms more lateness."""
    import agentcron.engine.engine as engine

    engine.COALESCE = 0.010


PATCHES: dict[str, Callable[[], None]] = {
    "coalesce_10ms": coalesce_10ms,
    "sleep_for": sleep_for_tick_time,
    "running_slots": running_slots_unordered,
    "watchdog_sleeps": watchdog_sleeps,
}


def wrapped_command(names: list[str], repo: str) -> list[str]:
    """``python -m agentcron`` with the named what-ifs applied first (for the idle
    daemons, which run as processes of their own)."""
    import sys

    code = (
        f"import sys; sys.path.insert(0, {repo!r}); "
        f"from bench.against_whatif import apply; apply({names!r}); "
        "sys.argv[0] = 'agentcron'; from agentcron.interfaces.cli import main; main()"
    )
    return [sys.executable, "-c", code]


def apply(names: list[str]) -> list[str]:
    """Apply the named patches; their names (an unknown one is an error)."""
    for name in names:
        if name not in PATCHES:
            raise SystemExit(f"unknown what-if {name!r}; known: {sorted(PATCHES)}")
        PATCHES[name]()
    return names
