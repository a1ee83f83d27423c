"""When a slot that is free to run has waited too long for a worker.

A frequent task behind long runs of others can wait for hours with nothing wrong in
its own record: no failure, no skip. Waiting longer than its own period (at least a
minute) is a problem the owner must hear about, named with what holds the workers.
Pure functions; the engine supplies the slots and its runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from agentcron.durations import format_duration
from agentcron.model import Slot

STARVE_AT_LEAST = timedelta(minutes=1)
MAX_NAMED = 4  # holders named in the sentence; the rest are counted


def waited_too_long(
    slot: Slot, now: datetime, period: timedelta, task_waiting_since: datetime | None = None
) -> timedelta | None:
    """How long the task has waited to start ``slot`` (or the earlier waiting slots that
    newer fires displaced, since ``task_waiting_since``), if that is longer than its
    period (at least :data:`STARVE_AT_LEAST`); None if it has not waited that long."""
    since = slot.next_attempt_at or slot.scheduled_for
    if task_waiting_since is not None:
        since = min(since, task_waiting_since)
    waited = now - since
    return waited if waited > max(period, STARVE_AT_LEAST) else None


def holders(runs: Sequence[tuple[str, datetime]], capacity: int, now: datetime) -> str:
    """``all 4 workers busy: story for 2h10m, reindex for 40m`` — longest first."""
    ordered = sorted(runs, key=lambda r: r[1])
    named = [f"{name} for {format_duration(now - began)}" for name, began in ordered[:MAX_NAMED]]
    more = len(ordered) - len(named)
    if more > 0:
        named.append(f"{more} more")
    busy = "all " if len(ordered) >= capacity > 1 else ""  # not "all 1 worker busy"
    workers = "worker" if capacity == 1 else "workers"
    return (
        f"{busy}{capacity} {workers} busy: " + ", ".join(named)
        if named
        else (f"{capacity} {workers}, none free")
    )
