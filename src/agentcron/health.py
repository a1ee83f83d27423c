"""A task's health as the owner sees it in `list`, `show`, the API and the dashboard.

Pure: given what the store recorded (the task, its active and last slots, its open
incidents) and the time, it says one health word and one sentence. Every open
incident shows: a `list` that says ``ok`` while an incident is open is exactly the
silent failure agentcron exists to prevent, so the order below is "most urgent
first" and ``ok`` is reached only when nothing at all is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from agentcron.durations import format_duration
from agentcron.model import Health, Slot, SlotStatus, TaskSpec
from agentcron.model.incident import Incident, IncidentKind
from agentcron.model.provider import waits_for_provider
from agentcron.policies.budget import REASON_PREFIX as BUDGET_REASON
from agentcron.schedules.zones import zone_label
from agentcron.watchdog.limits import OVERDUE_FLOOR, overdue_limit

# An open incident of each kind sets this health (failure: see _failure_health).
_INCIDENT_HEALTH = {
    IncidentKind.STUCK: Health.STUCK,
    IncidentKind.OVERDUE: Health.OVERDUE,
    IncidentKind.STARVED: Health.STARVED,
    IncidentKind.SKIP_STREAK: Health.SKIPPING,
    IncidentKind.FLAPPING: Health.FLAPPING,
    IncidentKind.SUSPICIOUS: Health.SUSPICIOUS,
    IncidentKind.DELIVERY: Health.DELIVERY_FAILED,
    IncidentKind.MISSED: Health.MISSED,
}
# Most urgent first: the word `list` shows when several things are wrong at once.
_ORDER = [
    IncidentKind.STUCK,
    IncidentKind.FAILURE,
    IncidentKind.STARVED,
    IncidentKind.OVERDUE,
    IncidentKind.SKIP_STREAK,
    IncidentKind.FLAPPING,
    IncidentKind.MISSED,
    IncidentKind.SUSPICIOUS,
    IncidentKind.DELIVERY,
]


class HealthTask(Protocol):
    """What health reads of a task: a :class:`TaskRecord`, or a task list's row whose
    ``spec`` is loaded only when read (agentcron.store._listing.TaskListing)."""

    @property
    def name(self) -> str: ...

    @property
    def paused(self) -> bool: ...

    @property
    def next_fire_at(self) -> datetime | None: ...

    @property
    def spec(self) -> TaskSpec: ...


def task_health(
    rec: HealthTask,
    active: Sequence[Slot],
    last: Slot | None,
    now: datetime,
    period: timedelta | Callable[[], timedelta],
    zone: ZoneInfo,
    incidents: Sequence[Incident] = (),
) -> tuple[Health, str | None]:
    """The health word and the sentence behind it (None only for ``ok``).

    ``rec.spec`` and ``period`` (a value, or a function giving it) are read only when
    the answer depends on them: a run in progress, a retry, a fire more than
    OVERDUE_FLOOR late. A list of 100,000 quiet tasks then parses no spec and walks
    no cron expression."""
    if rec.paused:
        # paused while failing: the failure is still open (and counted by `incidents`),
        # so the word says it, lest pausing hide it from every "what is failing" look
        failure = next((i for i in incidents if i.is_open and i.kind is IncidentKind.FAILURE), None)
        if failure is not None:
            return Health.PAUSED, f"paused while {_failing(failure)[1]}"
        return Health.PAUSED, "paused"
    if active or incidents:
        found = _active_health(rec, active, now, zone, incidents)
        if found is not None:
            return found
    due = rec.next_fire_at
    # no limit is under OVERDUE_FLOOR: below it neither the spec nor the period is read
    if due is not None and now - due > OVERDUE_FLOOR and now - due > _overdue_limit(rec, period):
        return Health.OVERDUE, f"due since {due.astimezone(zone).isoformat()}, not fired"
    if (
        last is not None
        and last.status is SlotStatus.SKIPPED
        and (last.reason or "").startswith(BUDGET_REASON)
    ):
        return Health.OVER_BUDGET, last.reason
    if last is not None and (
        last.status is SlotStatus.FAILED
        # superseded while it waited for its retry: a failed run (README); "ok" said
        # of a task whose runs failed on a full disk (outside-in probe)
        or (last.status is SlotStatus.SUPERSEDED and last.error_class is not None)
    ):
        return (
            Health.FAILING,
            f"failing: {last.error_class.value if last.error_class else 'error'}",
        )
    return Health.OK, None


def _active_health(
    rec: HealthTask,
    active: Sequence[Slot],
    now: datetime,
    zone: ZoneInfo,
    incidents: Sequence[Incident],
) -> tuple[Health, str | None] | None:
    """The health a run in progress or an open incident gives, or None when they give
    none (most tasks of a list have neither, and skip this)."""
    for slot in active:
        # ``started_at`` of a running slot here is its current attempt's (the service
        # passes it so): a retry started long after the first attempt (a backoff of
        # 30 min) is not stuck for that wait, and a retry that hangs is stuck.
        if slot.status is SlotStatus.RUNNING and slot.started_at is not None:
            running_for = now - slot.started_at
            if running_for > rec.spec.stuck_after:
                return Health.STUCK, f"running for {format_duration(running_for)}"
    open_ = sorted(
        (i for i in incidents if i.is_open and i.task == rec.name),
        key=lambda i: _ORDER.index(i.kind) if i.kind in _ORDER else len(_ORDER),
    )
    for incident in open_:
        if incident.kind is IncidentKind.FAILURE:
            if incident.escalated:
                return _failing(incident)
            continue  # a failure still being retried is told below as `retrying`
        return _INCIDENT_HEALTH.get(incident.kind, Health.FAILING), incident.summary or (
            incident.kind.value.replace("_", " ")
        )
    for slot in active:
        if slot.status is SlotStatus.RETRYING and waits_for_provider(slot.reason):
            return Health.WAITING, f"waiting: {slot.reason}"
        if slot.status is SlotStatus.RETRYING:
            at = _clock(slot.next_attempt_at, zone) if slot.next_attempt_at else "?"
            # retries lowered since this run began: its attempts may pass the new count
            total = max(rec.spec.retries + 1, slot.attempts + 1)
            error = slot.error_class.value if slot.error_class else "error"
            nxt = rec.next_fire_at
            if slot.next_attempt_at is not None and nxt is not None and nxt <= slot.next_attempt_at:
                # the next fire comes first and takes the retry's place (as the message
                # said): promising the retry's attempt would promise what does not run
                when = _clock(nxt, zone)
                return Health.RETRYING, f"retrying (the next run, at {when}, tries again): {error}"
            return (
                Health.RETRYING,
                f"retrying (attempt {slot.attempts + 1}/{total} at {at}): {error}",
            )
    if any(i.kind is IncidentKind.FAILURE for i in open_):
        failure = next(i for i in open_ if i.kind is IncidentKind.FAILURE)
        if active:  # a retry (or the next run) is under way or waits to start
            return Health.RETRYING, failure.summary or "failing, still retrying"
        # not escalated, and nothing waits (the retry was superseded by the next fire
        # and that ran, or a pause cancelled it): `retrying` would promise what is not
        return _failing(failure)
    return None


def _failing(incident: Incident) -> tuple[Health, str]:
    # the class of the cause the summary tells (the last told), not of the last failure
    # counted: "failing: auth: gave up after 2 attempts: … TimeoutError" paired a 401
    # counted since with the timeout told before (outside-in probe)
    cls = incident.told[-1] if incident.told else None
    if cls is None and incident.last_error_class is not None:
        cls = incident.last_error_class.value
    summary = f": {incident.summary}" if incident.summary else ""
    return Health.FAILING, f"failing: {cls or 'error'}{summary}"


def _overdue_limit(rec: HealthTask, period: timedelta | Callable[[], timedelta]) -> timedelta:
    return overdue_limit(rec.spec, period if isinstance(period, timedelta) else period())


def budget_health(
    health: str, detail: str | None, budgets: Sequence[Mapping[str, Any]]
) -> tuple[str, str | None]:
    """A task's health word and sentence as its daily budgets stand now (``budgets``: the
    view's budget entries, each with ``used_up``, ``label``, ``resets_at``).

    The record gives ``over_budget`` when the latest slot was skipped over a budget. But
    after the reset that slot still is the latest until the next run (hours, for a task
    every 6 h), and under a budget used up by other tasks a task not yet skipped read
    ``ok`` while its next run will be (outside-in probe). Only ``ok`` and
    ``over_budget`` move: any other word names a problem of its own."""
    spent = [b for b in budgets if b.get("used_up")]
    if health == Health.OVER_BUDGET.value and not spent:
        return Health.OK.value, None
    if health == Health.OK.value and spent:
        first = spent[0]
        when = f" at {first['resets_at']}" if first.get("resets_at") else ""
        return Health.OVER_BUDGET.value, (
            f"the daily budget of {first.get('label') or first.get('scope')} is used up: "
            f"its next runs are skipped until it resets{when}"
        )
    return health, detail


def _clock(when: datetime, zone: ZoneInfo) -> str:
    """``05:46:22 JST``: a time of a health sentence, with its zone (the sentence is
    shown beside tables whose times name theirs)."""
    local = when.astimezone(zone)
    return f"{local:%H:%M:%S} {zone_label(local, zone.key)}"
