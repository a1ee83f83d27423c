"""Proposed changes to agentcron, applied inside a benchmark child only, to measure what
they would gain before anyone makes them in ``src/``.

``against.py --what-if NAME[,NAME]`` applies them to agentcron's in-process children
(the steady loads and the profiles; not to the idle ``agentcron run`` processes, which
run the tree as it is). Figures measured with a what-if are labelled as such in the
JSON and the table: they are not the product's figures.
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
    from agentcron.engine.engine import Engine, TickReport

    def _sleep_for(self: Engine, report: TickReport) -> float:
        poll = self.settings.poll_interval
        now = self.clock.now()
        nxt = self.store.next_wakeup(after=now)
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


PATCHES: dict[str, Callable[[], None]] = {
    "sleep_for": sleep_for_tick_time,
    "running_slots": running_slots_unordered,
}


def apply(names: list[str]) -> list[str]:
    """Apply the named patches; their names (an unknown one is an error)."""
    for name in names:
        if name not in PATCHES:
            raise SystemExit(f"unknown what-if {name!r}; known: {sorted(PATCHES)}")
        PATCHES[name]()
    return names
