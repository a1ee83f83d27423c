"""What to do when a slot comes due while the task still has work in flight.

A task's own catch-up backlog is not work in flight for the fires of the same gap.
After a long downtime the engine records the missed fires in chunks over several
ticks; the first chunk's slots (pending, one of them running) are still active when
the next chunk is planned. Had the whole gap been recorded at once, those fires would
simply have queued behind each other, so they must here too: a catch-up slot counts
against a new fire only if that fire came due after the catch-up slot was recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agentcron.model import OverlapPolicy, Slot, SlotStatus

# how a run stopped by a newer fire (overlap: replace) is recorded: its slot's error
REPLACED = "replaced by the run due at"


def replaced_text(label: str) -> str:
    return f"{REPLACED} {label} (overlap: replace)"


def passed_over(slot: Slot) -> bool:
    """A slot whose fire did not complete because of its task's own overlap: skipped,
    or started and stopped by the next fire (overlap: replace). A task whose fires are
    all passed over never completes; one streak of them is told (the notifier's skip
    streak)."""
    if slot.status is SlotStatus.SKIPPED:
        return True
    return slot.status is SlotStatus.CANCELLED and (slot.error or "").startswith(REPLACED)


@dataclass(frozen=True)
class OverlapDecision:
    status: SlotStatus  # PENDING (run or wait) or SKIPPED
    reason: str | None = None
    supersede: list[int] = field(default_factory=list)  # retrying slots the new one replaces
    replace: list[int] = field(default_factory=list)  # running slots to stop (overlap: replace)
    # scheduled slots still waiting for a free worker: the newer fire takes their place,
    # so a starved task has one slot waiting, not one per period it waited
    displace: list[int] = field(default_factory=list)


def decide_overlap(
    policy: OverlapPolicy,
    active: Sequence[Slot],
    label: str,
    held_by: Callable[[Slot], str | None] | None = None,
) -> OverlapDecision:
    """``active``: the task's pending/running/retrying slots; ``label`` names the new slot
    in reasons (e.g. its local time); ``held_by``: for a running slot whose node has
    gone silent, who holds it and since when (it may have ended unseen there)."""
    retrying = [s.id for s in active if s.status is SlotStatus.RETRYING]
    running = [s for s in active if s.status is SlotStatus.RUNNING]
    waiting = [s for s in active if s.status is SlotStatus.PENDING]
    # A manual trigger is the owner's own request: it keeps its place.
    stale = [s.id for s in waiting if s.trigger != "manual"]
    if not running:
        return OverlapDecision(SlotStatus.PENDING, supersede=retrying, displace=stale)
    if policy is OverlapPolicy.ALLOW:
        return OverlapDecision(SlotStatus.PENDING, supersede=retrying, displace=stale)
    if policy is OverlapPolicy.REPLACE:
        return OverlapDecision(
            SlotStatus.PENDING,
            supersede=retrying,
            replace=[s.id for s in running],
            displace=stale,
        )
    if policy is OverlapPolicy.QUEUE:
        if waiting:
            return OverlapDecision(
                SlotStatus.SKIPPED,
                f"a run is already queued behind the running one (overlap: queue); {label} skipped",
            )
        return OverlapDecision(SlotStatus.PENDING, supersede=retrying)
    started = running[0]
    holder = held_by(started) if held_by is not None else None
    if holder is not None:
        # "was still running" was said of runs that had ended on a node frozen since
        # (outside-in probe): what is known is that its node still holds it
        return OverlapDecision(
            SlotStatus.SKIPPED,
            f"the previous run (slot {started.id}) is still held by {holder}: it may have "
            "ended there unseen, and is taken over when its lease lapses (overlap: skip)",
        )
    return OverlapDecision(
        SlotStatus.SKIPPED,
        f"the previous run (slot {started.id}) was still running (overlap: skip)",
    )


def is_own_backlog(slot: Slot, due: datetime) -> bool:
    """Whether active ``slot`` is part of the catch-up that a fire at ``due`` belongs
    to: a catch-up slot recorded when ``due`` had already come (so the fire was missed
    in the same gap, and only the engine's chunking recorded it later)."""
    return slot.trigger == "catchup" and slot.created_at is not None and slot.created_at >= due


def overlapping(active: Sequence[Slot], due: datetime) -> list[Slot]:
    """The active slots a new fire at ``due`` is decided against: ``active`` less the
    task's own catch-up backlog for that fire (see :func:`is_own_backlog`)."""
    return [s for s in active if not is_own_backlog(s, due)]
