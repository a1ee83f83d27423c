"""Which of the fires that came due get run, and which are recorded as missed.

A fire is *on time* when the engine sees it within ``grace`` of its instant: it
always runs, whatever the policy (catch-up is about downtime, not about a tick
that was a few hundred milliseconds late). Fires seen later than that are
*late* and follow the task's ``catchup`` policy within ``catchup_window``;
anything older than the window is recorded ``missed``. Every fire becomes a slot
either way: nothing is dropped without a record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache

from agentcron.durations import format_duration
from agentcron.model import CatchupPolicy, NewSlot, SlotStatus


@lru_cache(maxsize=1024)
def on_time_grace(period: timedelta) -> timedelta:
    """How late a fire may be noticed and still count as on time (asked for every
    due task on every tick, of a handful of periods: remembered)."""
    if period <= timedelta(0):
        return timedelta(seconds=60)
    return max(timedelta(seconds=1), min(timedelta(seconds=60), period / 2))


def plan_fires(
    fires: Sequence[datetime],
    now: datetime,
    policy: CatchupPolicy,
    window: timedelta,
    grace: timedelta,
    *,
    more_follow: bool = False,
    running_since: datetime | None = None,
    stalled: Callable[[datetime], str | None] | None = None,
) -> list[NewSlot]:
    """Decide each fire's fate; ``fires`` ascending, all ``<= now``.

    ``more_follow`` says this is not the last batch of fires (the engine processes
    a long downtime in chunks), so the newest fire here is not the newest overall.
    ``running_since`` is when this daemon's scheduler started: a fire after it was
    missed while agentcron ran (a stalled loop, a frozen machine), and its reason
    says so rather than blaming downtime. ``stalled`` gives the words for a fire that
    came due while the scheduler loop was known to be stalled (the watchdog's record).
    """
    if len(fires) == 1 and now - fires[0] <= grace:
        # what nearly every tick plans: one fire, on time (the steps below made a
        # closure, two lists and a sort for it, for each due task on every tick)
        return [NewSlot(fires[0], SlotStatus.PENDING)]

    def cause(at: datetime) -> str:
        stall = stalled(at) if stalled is not None else None
        if stall is not None:
            return stall
        if running_since is not None and at >= running_since:
            return (
                "agentcron was running but its scheduler was late (a stalled loop or an "
                "overloaded machine)"
            )
        # before this daemon's start: none ran, or one was stopping (its runs were
        # given their grace, its scheduler no longer fired): "not running" was untrue
        # for the fires of those seconds (outside-in probe)
        return "agentcron was not scheduling (stopped, or stopping)"

    slots: list[NewSlot] = []
    late_in_window: list[datetime] = []
    for at in fires:
        age = now - at
        if age <= grace:
            slots.append(NewSlot(at, SlotStatus.PENDING))
        elif age > window:
            slots.append(
                NewSlot(
                    at,
                    SlotStatus.MISSED,
                    f"due {format_duration(age)} ago, older than catchup_window "
                    f"({format_duration(window)}); {cause(at)}",
                )
            )
        else:
            late_in_window.append(at)
    if policy is CatchupPolicy.ALL:
        slots.extend(NewSlot(at, SlotStatus.PENDING, trigger="catchup") for at in late_in_window)
    elif policy is CatchupPolicy.LATEST:
        newest = (
            None
            if more_follow or any(s.status is SlotStatus.PENDING for s in slots)
            else (late_in_window[-1] if late_in_window else None)
        )
        for at in late_in_window:
            if at == newest:
                slots.append(NewSlot(at, SlotStatus.PENDING, trigger="catchup"))
            else:
                slots.append(
                    NewSlot(
                        at,
                        SlotStatus.MISSED,
                        f"{cause(at)}; catchup: latest runs only the newest missed slot",
                    )
                )
    else:
        slots.extend(
            NewSlot(at, SlotStatus.MISSED, f"{cause(at)}; catchup: none") for at in late_in_window
        )
    slots.sort(key=lambda s: s.scheduled_for)
    return slots
