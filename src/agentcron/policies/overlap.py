"""What to do when a slot comes due while the task still has work in flight."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agentcron.model import OverlapPolicy, Slot, SlotStatus


@dataclass(frozen=True)
class OverlapDecision:
    status: SlotStatus  # PENDING (run or wait) or SKIPPED
    reason: str | None = None
    supersede: list[int] = field(default_factory=list)  # retrying slots the new one replaces
    replace: list[int] = field(default_factory=list)  # running slots to stop (overlap: replace)


def decide_overlap(policy: OverlapPolicy, active: Sequence[Slot], label: str) -> OverlapDecision:
    """``active``: the task's pending/running/retrying slots; ``label`` names the new slot
    in reasons (e.g. its local time)."""
    retrying = [s.id for s in active if s.status is SlotStatus.RETRYING]
    running = [s for s in active if s.status is SlotStatus.RUNNING]
    waiting = [s for s in active if s.status is SlotStatus.PENDING]
    if not running:
        return OverlapDecision(SlotStatus.PENDING, supersede=retrying)
    if policy is OverlapPolicy.ALLOW:
        return OverlapDecision(SlotStatus.PENDING, supersede=retrying)
    if policy is OverlapPolicy.REPLACE:
        return OverlapDecision(
            SlotStatus.PENDING, supersede=retrying, replace=[s.id for s in running]
        )
    if policy is OverlapPolicy.QUEUE:
        if waiting:
            return OverlapDecision(
                SlotStatus.SKIPPED,
                f"a run is already queued behind the running one (overlap: queue); {label} skipped",
            )
        return OverlapDecision(SlotStatus.PENDING, supersede=retrying)
    started = running[0]
    return OverlapDecision(
        SlotStatus.SKIPPED,
        f"the previous run (slot {started.id}) was still running (overlap: skip)",
    )
