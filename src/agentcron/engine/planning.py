"""What a due task's fires become, decided in memory before anything is written.

Planning is pure: a task record, its schedule and the current time give the fires
that came due, the slots they become under the catch-up rules, and the task's next
fire; the slots active at the instant then decide overlap. The engine records the
result in one transaction.

Plans can also be made ahead of time: up to two seconds before they come due, the
engine plans the tasks' next fires, each as of its own instant (nothing is written),
up to the window's end: the first instant at which a fire might be due that is not
planned (a planned task's following fire, or the end of what was read). At a fire's
instant, :meth:`Ahead.take` hands its plan over only if it still holds exactly: the
task is unchanged since (same next fire, same last change), the tick is less than a
second late (every fire then is on time, whatever the task's period), no further fire
of the task has come due, and a one-shot task has not expired. Otherwise the tick
plans from a fresh read, as it would have without them. Overlap is always decided at
the instant.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agentcron.durations import format_duration
from agentcron.model import DueHead, NewSlot, Slot, SlotStatus, TaskRecord, TaskSpec
from agentcron.policies.catchup import on_time_grace, plan_fires
from agentcron.policies.overlap import decide_overlap, overlapping
from agentcron.schedules.base import Schedule

CHUNK = 2000  # fires processed per task per tick after a long downtime
ON_TIME = timedelta(seconds=1)  # the smallest on-time grace (see on_time_grace)


@dataclass
class Plan:
    spec: TaskSpec
    expected: datetime | None  # the task's next fire as read: the compare-and-set's value
    new_next: datetime | None
    slots: list[NewSlot]
    supersede: list[int] = field(default_factory=list)
    replace: list[int] = field(default_factory=list)
    displace: list[int] = field(default_factory=list)  # waiting slots a newer fire replaces


def plan_due(
    rec: TaskRecord,
    sched: Schedule,
    now: datetime,
    running_since: datetime | None = None,
    stalled: Callable[[datetime], str | None] | None = None,
) -> Plan:
    """The fires of a due task up to ``now`` (at most CHUNK), as slots under its
    catch-up policy, and the fire after them. Overlap is not applied here."""
    spec = rec.spec
    assert rec.next_fire_at is not None
    fires = [rec.next_fire_at]
    following = sched.next_after(rec.next_fire_at)
    while following is not None and following.at <= now and len(fires) < CHUNK:
        fires.append(following.at)
        following = sched.next_after(following.at)
    new_next = following.at if following else None  # the first fire after `fires`
    if spec.at is not None:
        planned = plan_one_shot(spec, fires[0], now)
    else:
        planned = plan_fires(
            fires,
            now,
            spec.catchup,
            spec.catchup_window,
            on_time_grace(sched.period()),
            more_follow=new_next is not None and new_next <= now,
            running_since=running_since,
            stalled=stalled,
        )
    return Plan(spec, rec.next_fire_at, new_next, planned)


def plan_one_shot(spec: TaskSpec, at: datetime, now: datetime) -> list[NewSlot]:
    if spec.expires is not None and now - at > spec.expires:
        return [
            NewSlot(
                at,
                SlotStatus.EXPIRED,
                f"not started within {format_duration(spec.expires)} of its time (expires)",
            )
        ]
    return [NewSlot(at, SlotStatus.PENDING)]


def with_overlap(
    plan: Plan,
    active: Sequence[Slot],
    default_zone: str | None,
    held_by: Callable[[Slot], str | None] | None = None,
) -> Plan:
    """``plan`` under its task's overlap policy, given the task's active slots.

    Each pending slot is decided against the active slots less the task's own catch-up
    backlog for it (:func:`~agentcron.policies.overlap.overlapping`): a long downtime
    is recorded in chunks of :data:`CHUNK` fires over several ticks, and the fires of
    a later chunk must queue behind the earlier chunks' slots exactly as they would had
    the whole gap fitted in one chunk, not be skipped as if those slots were another
    run. Consecutive pending slots facing the same active slots share one decision."""
    pending = [s for s in plan.slots if s.status is SlotStatus.PENDING]
    if not pending or not active:
        return plan
    spec = plan.spec
    zone = spec.zone(default_zone)
    skipped: dict[datetime, str | None] = {}
    supersede: list[int] = []
    replace: list[int] = []
    displace: list[int] = []
    # Which active slots a pending slot faces changes only where its time passes the
    # recording time of some catch-up slot: one bisection per slot finds its group
    # (a chunk of 2,000 against a backlog of 2,000 costs no quadratic filtering).
    recorded = sorted(s.created_at for s in active if s.trigger == "catchup" and s.created_at)
    groups: dict[int, list[NewSlot]] = {}
    for new in pending:
        groups.setdefault(bisect_left(recorded, new.scheduled_for), []).append(new)
    for members in groups.values():
        against = overlapping(active, members[0].scheduled_for)
        if not against:
            continue
        local = members[0].scheduled_for.astimezone(zone)
        # with its seconds when it has some ("08:39 skipped" named the 08:39:50 fire)
        label = f"{local:%H:%M:%S}" if local.second else f"{local:%H:%M}"
        decision = decide_overlap(spec.overlap, against, label, held_by)
        if decision.status is not SlotStatus.PENDING:
            skipped.update((m.scheduled_for, decision.reason) for m in members)
            continue
        supersede += [i for i in decision.supersede if i not in supersede]
        replace += [i for i in decision.replace if i not in replace]
        displace += [i for i in decision.displace if i not in displace]
    slots = [
        NewSlot(s.scheduled_for, SlotStatus.SKIPPED, skipped[s.scheduled_for], s.trigger)
        if s.status is SlotStatus.PENDING and s.scheduled_for in skipped
        else s
        for s in plan.slots
    ]
    return Plan(spec, plan.expected, plan.new_next, slots, supersede, replace, displace)


@dataclass(frozen=True)
class Ahead:
    """Plans made ahead (with ``zone`` the default zone then), each as of its task's
    next fire; ``at`` is the earliest of those fires, and every fire before ``until``
    (``at`` itself when None) was planned."""

    at: datetime
    zone: str | None
    plans: dict[str, tuple[TaskRecord, Plan]]
    until: datetime | None = None

    def covers(self, instant: datetime) -> bool:
        """Whether a fire at ``instant`` was planned, if any task had one then."""
        return instant < self.until if self.until is not None else instant <= self.at

    def take(self, heads: Sequence[DueHead], now: datetime, zone: str | None) -> list[Plan] | None:
        """The plans for the tasks due now (``heads``, in order), or None when any of
        them cannot be taken as it was made (see the module docstring)."""
        if zone != self.zone or now < self.at:
            return None
        out: list[Plan] = []
        for name, next_fire_at, updated_at in heads:
            hit = self.plans.get(name)
            if hit is None or next_fire_at is None:
                return None
            rec, plan = hit
            if rec.next_fire_at != next_fire_at or rec.updated_at != updated_at:
                return None
            if now < next_fire_at:
                return None  # planned as of an instant still to come
            if now - next_fire_at >= ON_TIME:
                return None
            if plan.new_next is not None and plan.new_next <= now:
                return None
            expires = rec.spec.expires
            if rec.spec.at is not None and expires is not None and now - next_fire_at > expires:
                return None
            out.append(plan)
        return out
