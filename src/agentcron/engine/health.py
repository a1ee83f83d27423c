"""What the scheduler loop knows of its own progress, and when a fault becomes news.

The loop's liveness is not the process's: a loop whose every tick fails (the
database locked, a PostgreSQL server restarting) is alive but schedules nothing.
:class:`LoopHealth` keeps both facts apart, so the dead man's switch pings only
while ticks complete, the watchdog tells a stalled loop from a failing one, and
the owner hears of an outage once when it has lasted long enough to matter and
once when it ends. The decisions are pure functions of the recorded times.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from agentcron.store.base import NodeStore
from agentcron.store.errors import is_database_error

NOTICE_AFTER = timedelta(seconds=10)  # a blip shorter than this is logged, not told
BACKOFF_FIRST = 0.5  # seconds between failed ticks, doubling
BACKOFF_MAX = 5.0  # short: the loop must resume soon after the database does
LOG_EVERY = timedelta(minutes=5)  # a lasting fault is logged again this often


@dataclass(frozen=True)
class Outage:
    """A run of failed ticks, from the first failure."""

    since: datetime
    failures: int
    error: str  # the latest failure, one line
    database: bool  # whether the failures come from the database
    announced: bool = False
    logged_at: datetime | None = None
    # Fires due after this (when the last pass that worked began) were left to the
    # failing passes: missed because of the outage, though due before ``since``.
    after: datetime | None = None

    def covers(self, at: datetime) -> bool:
        """Whether a fire due at ``at`` (up to now) fell to the outage."""
        return at > self.after if self.after is not None else at >= self.since


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def backoff(failures: int) -> float:
    """Seconds to wait after the ``failures``-th failed tick in a row."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** max(0, min(failures - 1, 10)))


def after_failure(
    outage: Outage | None, exc: BaseException, now: datetime, after: datetime | None = None
) -> Outage:
    """The outage as it stands after one more failed tick; ``after``: when the last
    pass that worked began (for a new outage)."""
    if outage is None:
        return Outage(
            since=now,
            failures=1,
            error=describe_error(exc),
            database=is_database_error(exc),
            after=after,
        )
    return replace(
        outage,
        failures=outage.failures + 1,
        error=describe_error(exc),
        database=outage.database and is_database_error(exc),
    )


def should_announce(outage: Outage, now: datetime, after: timedelta = NOTICE_AFTER) -> bool:
    """Tell the owner once, when the fault has lasted ``after``: a lock held for a second
    by a CLI command is not news; a database that stays away is."""
    return not outage.announced and now - outage.since >= after


def should_log(outage: Outage, now: datetime) -> bool:
    """The first failure is logged with its traceback; then a line every few minutes,
    not one per tick (a failing tick every half second would fill the disk)."""
    return outage.logged_at is None or now - outage.logged_at >= LOG_EVERY


@dataclass
class LoopHealth:
    """Monotonic times of the loop's last pass and last completed tick, and the
    outage in progress if ticks are failing. Read from other threads (watchdog,
    pulse): plain attribute reads of immutable values."""

    last_pass: float
    last_ok: float
    outage: Outage | None = None
    # when the first pass that worked after failing ones began (the end of a stall
    # that ended in failing passes, however late the watchdog looks)
    worked_since: float = 0.0
    # the last silence between two passes longer than GAP_NOTED, (from, to): a loop
    # frozen with its whole process (SIGSTOP, a paused VM) passes again before the
    # watchdog's thread can look; the watchdog learns of the stall from this
    gap: tuple[float, float] | None = None
    _gap_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def note_gap(self, began: float, ended: float) -> None:
        """Keep a silence between two passes (the loop's thread). One not yet read is
        replaced only by a longer one: the loop's ordinary two-second sleeps came
        after a freeze and took its place before the watchdog's thread, itself just
        woken from the freeze, looked; the freeze was then never told (outside-in
        probe, one SIGSTOP in five)."""
        with self._gap_lock:
            kept = self.gap
            if kept is None or ended - began >= kept[1] - kept[0]:
                self.gap = (began, ended)

    def take_gap(self) -> tuple[float, float] | None:
        """The silence kept, which is then forgotten (the watchdog's thread)."""
        with self._gap_lock:
            gap, self.gap = self.gap, None
            return gap

    def progressing(self, now: float, within: float) -> bool:
        """Whether a tick completed in the last ``within`` seconds."""
        return now - self.last_ok <= within


GAP_NOTED = 1.0  # seconds between two passes of the loop worth keeping (LoopHealth.gap)

PROBE_KEY = "write_probe"  # the meta row of probe_write


def probe_write(store: NodeStore) -> None:
    """A small write of agentcron's own (a meta row), which raises when the database
    does not take writes: a full disk lets reads, and an idle tick, through, so only a
    write tells a database that is back (or one that refuses a record of its data) from
    one that is away."""
    store.set_meta(PROBE_KEY, str(time.time()))
