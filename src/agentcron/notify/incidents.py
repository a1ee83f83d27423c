"""Incidents: the difference between "tell the owner" and "count it".

A problem opens an incident for its task; while it is open, more of the same is
counted, not sent. The owner hears at most three things about one incident: that
it opened (cause and plan), that it escalated (gave up, or turned out permanent)
and that it closed (recovered). That is the whole defence against notification
storms, so it lives here as a pure function over plain data: the engine feeds
events in the order they happened and persists what comes out.

A task has at most one open incident per kind. :func:`apply_event` takes those
open incidents and one event and returns a :class:`Transition`: which incidents
opened, were updated, escalated or closed, and the single :class:`Notice` (if
any) to send. One event never yields more than one notice; incidents that close
as a side effect of a more important change ride along in ``also_closed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from agentcron.durations import format_duration
from agentcron.model import Incident, IncidentKind
from agentcron.notify.events import (
    AttemptFailed,
    DeliveryFailed,
    DeliveryRecovered,
    EmptySuccessStreak,
    Event,
    Reminder,
    RunsMissed,
    RunStuck,
    RunSucceeded,
    SkipStreak,
    SkipStreakEnded,
    TaskOverdue,
    TaskStarved,
    WorkerLost,
)


class NoticeEvent(StrEnum):
    OPENED = "opened"
    ESCALATED = "escalated"
    CLOSED = "closed"
    REMINDER = "reminder"


# When one event closes several incidents, the notice speaks about the first of
# these; the others are mentioned below it.
_CLOSE_ORDER = (
    IncidentKind.FAILURE,
    IncidentKind.OVERDUE,
    IncidentKind.STUCK,
    IncidentKind.SKIP_STREAK,
    IncidentKind.SUSPICIOUS,
    IncidentKind.DELIVERY,
    IncidentKind.STARVED,
    IncidentKind.MISSED,
)


@dataclass(frozen=True, kw_only=True)
class Notice:
    """Something the owner must be told: ``incident`` (its state after the event)
    ``event``-ed because of ``cause``. ``also_closed`` are incidents of the same
    task that the same event closed."""

    task: str
    event: NoticeEvent
    incident: Incident
    cause: Event
    also_closed: tuple[Incident, ...] = ()


@dataclass(frozen=True)
class Transition:
    """The result of one event. Every changed incident is in exactly one list:
    ``opened`` (new, ``id`` None, possibly already escalated), ``escalated``,
    ``updated`` (counted, still open) or ``closed``."""

    opened: tuple[Incident, ...] = ()
    updated: tuple[Incident, ...] = ()
    escalated: tuple[Incident, ...] = ()
    closed: tuple[Incident, ...] = ()
    notice: Notice | None = None

    @property
    def changed(self) -> tuple[Incident, ...]:
        return self.opened + self.escalated + self.updated + self.closed


class _Changes:
    """Collects the changes of one event; the last change of a kind wins, but a
    kind that was opened stays in ``opened`` whatever happens to it next."""

    def __init__(self, open_incidents: Mapping[str, Incident]) -> None:
        self.current: dict[IncidentKind, Incident] = {
            IncidentKind(kind): inc for kind, inc in open_incidents.items() if inc.is_open
        }
        self._how: dict[IncidentKind, str] = {}
        self._incident: dict[IncidentKind, Incident] = {}

    def put(self, how: str, incident: Incident) -> None:
        kind = incident.kind
        if self._how.get(kind) == "opened" and how != "closed":
            how = "opened"
        self._how[kind] = how
        self._incident[kind] = incident
        if how == "closed":
            self.current.pop(kind, None)
        else:
            self.current[kind] = incident

    def close(self, kind: IncidentKind, at: datetime) -> list[Incident]:
        """Close the open incident of ``kind``; returns it in a list (empty if none)."""
        incident = self.current.get(kind)
        if incident is None:
            return []
        closed = replace(incident, closed_at=at, updated_at=at)
        self.put("closed", closed)
        return [closed]

    def transition(self, notice: Notice | None) -> Transition:
        def of(how: str) -> tuple[Incident, ...]:
            return tuple(inc for kind, inc in self._incident.items() if self._how[kind] == how)

        return Transition(of("opened"), of("updated"), of("escalated"), of("closed"), notice)


def apply_event(
    open_incidents: Mapping[str, Incident], event: Event, task_zone: ZoneInfo
) -> Transition:
    """Advance the incidents of ``event.task`` (``open_incidents``: kind -> open incident).

    Pure: the result depends only on the arguments. ``task_zone`` is used for the
    times written into incident summaries.
    """
    changes = _Changes(open_incidents)
    if isinstance(event, WorkerLost):
        notice = _on_failure(changes, event.as_failure(), cause=event)
    elif isinstance(event, AttemptFailed):
        notice = _on_failure(changes, event, cause=event)
    elif isinstance(event, RunSucceeded):
        notice = _on_success(changes, event)
    elif isinstance(event, RunStuck):
        notice = _on_stuck(changes, event)
    elif isinstance(event, TaskOverdue):
        notice = _on_streak(
            changes, event, IncidentKind.OVERDUE, event.missed, _overdue_summary(event, task_zone)
        )
    elif isinstance(event, EmptySuccessStreak):
        summary = empty_summary(event.count, with_text=event.with_text)
        notice = _on_streak(changes, event, IncidentKind.SUSPICIOUS, event.count, summary)
    elif isinstance(event, SkipStreak):
        summary = (
            f"stopped before finishing {event.count} times in a row: {event.reason}"
            if event.replaced
            else f"skipped {event.count} times in a row: {event.reason}"
        )
        notice = _on_streak(changes, event, IncidentKind.SKIP_STREAK, event.count, summary)
    elif isinstance(event, SkipStreakEnded):
        notice = _on_skips_ended(changes, event)
    elif isinstance(event, DeliveryFailed):
        notice = _on_delivery_failed(changes, event)
    elif isinstance(event, RunsMissed):
        notice = _on_missed(changes, event)
    elif isinstance(event, TaskStarved):
        notice = _on_starved(changes, event)
    elif isinstance(event, Reminder):
        notice = _on_reminder(changes, event)
    else:
        notice = _on_delivery_recovered(changes, event)
    return changes.transition(notice)


def _close_after_run(changes: _Changes, slot_id: int, at: datetime) -> list[Incident]:
    """A run that ended (or is going) proves the schedule fires: overdue is over,
    and a stuck incident about this very run ends with it."""
    # Missed runs are told in one report for all tasks (see Notifier.report_missed);
    # their incidents end with the next run without a message of their own.
    changes.close(IncidentKind.MISSED, at)
    closed = changes.close(IncidentKind.OVERDUE, at)
    closed += changes.close(IncidentKind.STARVED, at)
    stuck = changes.current.get(IncidentKind.STUCK)
    if stuck is not None and stuck.slot_id == slot_id:
        closed += changes.close(IncidentKind.STUCK, at)
    return closed


def _notice(
    event: NoticeEvent, incident: Incident, cause: Event, also_closed: list[Incident] | None = None
) -> Notice:
    return Notice(
        task=incident.task,
        event=event,
        incident=incident,
        cause=cause,
        also_closed=tuple(also_closed or ()),
    )


def _closing_notice(closed: list[Incident], cause: Event) -> Notice | None:
    closed = [inc for inc in closed if inc.told != ()]  # opened without a word: none at its end
    if not closed:
        return None
    first, *others = sorted(closed, key=lambda inc: _CLOSE_ORDER.index(inc.kind))
    return _notice(NoticeEvent.CLOSED, first, cause, others)


def _on_failure(changes: _Changes, ev: AttemptFailed, cause: Event) -> Notice | None:
    closed = _close_after_run(changes, ev.slot_id, ev.at)
    hard = ev.gave_up or ev.permanent
    current = changes.current.get(IncidentKind.FAILURE)
    if current is None:
        incident = Incident(
            task=ev.task,
            kind=IncidentKind.FAILURE,
            opened_at=ev.at,
            escalated=hard,
            failed_runs=1,
            retries=1 if ev.retry_at is not None else 0,
            first_error_class=ev.error_class,
            last_error_class=ev.error_class,
            summary=_failure_summary(ev),
            slot_id=ev.slot_id,
            since=ev.scheduled_for,
            updated_at=ev.at,
            told=() if ev.held and not hard else _class_of(ev),
        )
        changes.put("opened", incident)
        if ev.held and not hard:
            # told as its provider's incident: counted here, so that a refusal that
            # lasts is told as the task failing (it never was: `list` said `retrying`
            # for as long as the provider refused, whatever escalate_after said)
            return _closing_notice(closed, cause)
        return _notice(NoticeEvent.OPENED, incident, cause, closed)
    # A run is counted once: at its first failed attempt. Two runs of a task whose
    # attempts interleave (a trigger while a retry waits) were counted at each turn;
    # runs that fail out of order (overlap: allow) are each counted too.
    newest = current.slot_id or 0
    incident = replace(
        current,
        count=current.count + 1,
        failed_runs=current.failed_runs + (1 if ev.attempt == 1 else 0),
        retries=current.retries + (1 if ev.retry_at is not None else 0),
        last_error_class=ev.error_class,
        slot_id=max(ev.slot_id, newest),
        updated_at=ev.at,
    )
    told = _told_classes(current)
    news = tuple(c for c in _class_of(ev) if c not in told)
    if hard and not current.escalated:
        incident = replace(incident, escalated=True, summary=_failure_summary(ev), told=told + news)
        changes.put("escalated", incident)
        return _notice(NoticeEvent.ESCALATED, incident, cause, closed)
    if hard and current.escalated and news:
        # Failing for good for a reason not told yet: a passing failure told as lasting
        # ("still retrying each run") that turned permanent, a quota used up after a bad
        # key, a context too long. Each asks the owner for another fix. Once per class in
        # an incident, so two causes taking turns cannot send a message per run, and a
        # worker lost between two failures of a told class is no new turn.
        incident = replace(incident, summary=_failure_summary(ev), told=told + news)
        changes.put("escalated", incident)
        return _notice(NoticeEvent.ESCALATED, incident, cause, closed)
    if (
        current.escalated
        and ev.gave_up
        and not ev.permanent
        and not told_down(current)
        and incident.failed_runs > 1
        and _persists(incident, ev)
    ):
        # The first run gave up and was told so ("Next scheduled run: …"), which reads
        # as a run's bad luck; every run since has given up too. That it lasts is news,
        # told once (probe: 62 runs over 20 minutes, then only a reminder a day later).
        incident = replace(incident, summary=_persisting_summary(incident, ev), told=told + news)
        changes.put("escalated", incident)
        return _notice(NoticeEvent.ESCALATED, incident, cause, closed)
    if not current.escalated and _persists(incident, ev):
        # Each run is still retried, but the task as a whole is down: the owner hears
        # it once, in words that say how long and how many (not once per slot).
        incident = replace(
            incident,
            escalated=True,
            summary=_persisting_summary(incident, ev),
            told=told + news,
        )
        changes.put("escalated", incident)
        return _notice(NoticeEvent.ESCALATED, incident, cause, closed)
    changes.put("updated", incident)
    return _closing_notice(closed, cause)


def _class_of(ev: AttemptFailed) -> tuple[str, ...]:
    return (ev.error_class.value,) if ev.error_class is not None else ()


def _told_classes(incident: Incident) -> tuple[str, ...]:
    """The error classes the owner was told of in this failure incident. One saved
    before these were kept: its first and last class, taken as told (a class that
    was only counted is then not told late; a new one is)."""
    if incident.told is not None:
        return incident.told
    seen = (incident.first_error_class, incident.last_error_class)
    return tuple(dict.fromkeys(c.value for c in seen if c is not None))


def _persists(incident: Incident, ev: AttemptFailed) -> bool:
    """A transient failure that outlasts single slots: ``escalate_runs`` failed runs in
    a row, or no success for ``escalate_after`` since the first failed slot was due."""
    if ev.escalate_runs > 0 and incident.failed_runs >= ev.escalate_runs:
        return True
    began = incident.since or incident.opened_at
    return ev.escalate_after is not None and ev.at - began >= ev.escalate_after


def _persisting_summary(incident: Incident, ev: AttemptFailed) -> str:
    return down_summary(incident.failed_runs, ev.explanation)


def down_summary(failed_runs: int, explanation: str) -> str:
    """The summary of a failure told as lasting (read back by :func:`told_down`)."""
    return f"failed {failed_runs} runs in a row: {explanation}"


# what an empty-success streak of answers with text but no tokens is called: what
# `list`, `doctor` and reminders say of it (they said "without output" of answers that
# had text, beside a message that said otherwise: outside-in probe)
ZERO_TOKENS = "with its model reporting 0 completion tokens although its answers had text"


def empty_summary(count: int, *, with_text: bool) -> str:
    """The summary of an empty-success streak (read back by :func:`told_zero_tokens`)."""
    return f"{count} successes in a row {ZERO_TOKENS if with_text else 'without output'}"


def told_zero_tokens(incident: Incident) -> bool:
    """Whether a ``suspicious`` incident is of answers with text and no tokens."""
    return incident.kind is IncidentKind.SUSPICIOUS and incident.summary.endswith(ZERO_TOKENS)


def told_down(incident: Incident) -> bool:
    """Whether the owner was told this failure lasts (see :func:`_persists`): its
    recovery is news whatever else is said of the task."""
    head = incident.summary.split(":", 1)[0]
    return incident.escalated and head.startswith("failed ") and head.endswith(" runs in a row")


def _failure_summary(ev: AttemptFailed) -> str:
    if ev.gave_up and not ev.permanent:
        plural = "s" if ev.attempt != 1 else ""
        return f"gave up after {ev.attempt} attempt{plural}: {ev.explanation}"
    return ev.explanation


def _on_success(changes: _Changes, ev: RunSucceeded) -> Notice | None:
    closed = _close_after_run(changes, ev.slot_id, ev.at)
    closed += changes.close(IncidentKind.FAILURE, ev.at)
    # another empty success changes nothing (no write per run while it stays open),
    # unless the task is no longer watched for output: a warning it would not raise now
    # (opened by an older version's rule, or before `expect_output: false`) ends
    if IncidentKind.SUSPICIOUS in changes.current and (not ev.empty or ev.unwatched):
        closed += changes.close(IncidentKind.SUSPICIOUS, ev.at)
    return _closing_notice(closed, ev)


# Runs in a row past stuck_after, at which that is told as the task's habit (once)
# instead of a warning and an end per run: two messages a run for a task whose every
# run is slower than its stuck_after (outside-in probe).
STUCK_HABIT = 3


def _on_stuck(changes: _Changes, ev: RunStuck) -> Notice | None:
    closed = changes.close(IncidentKind.OVERDUE, ev.at)
    summary = (
        f"running for {format_duration(ev.running_for)}, over its {format_duration(ev.limit)} limit"
    )
    current = changes.current.get(IncidentKind.STUCK)
    if current is None and IncidentKind.FAILURE in changes.current:
        # Its runs already fail and the owner was told: a run of it that hangs is the
        # same trouble, counted by the failure when it ends (`list` says stuck from the
        # run itself). A task whose every run hung was told twice per run, "taking
        # long" and "ended without success", 84 messages in 22 minutes (outside-in probe).
        return _closing_notice(closed, ev)
    if current is not None:
        changes.put(
            "updated",
            replace(
                current,
                count=current.count + 1,
                summary=summary,
                slot_id=ev.slot_id,
                since=ev.at - ev.running_for,
                updated_at=ev.at,
            ),
        )
        return _closing_notice(closed, ev)
    habitual = ev.streak_before >= STUCK_HABIT - 1
    incident = Incident(
        task=ev.task,
        kind=IncidentKind.STUCK,
        opened_at=ev.at,
        summary=summary,
        slot_id=ev.slot_id,
        since=ev.at - ev.running_for,
        updated_at=ev.at,
        # past stuck_after run after run: its end is not told (nor its start, after
        # the message that says long runs are no longer told one by one)
        told=() if habitual else None,
    )
    changes.put("opened", incident)
    if ev.streak_before >= STUCK_HABIT:
        return _closing_notice(closed, ev)
    return _notice(NoticeEvent.OPENED, incident, ev, closed)


def _overdue_summary(ev: TaskOverdue, zone: ZoneInfo) -> str:
    plural = "s" if ev.missed != 1 else ""
    if ev.last_run is not None:
        since = f"no run since {ev.last_run.astimezone(zone):%H:%M}"
    else:
        since = f"no run although due since {ev.due_since.astimezone(zone):%H:%M}"
    return f"{since} ({ev.missed} run{plural} missed)"


def _on_streak(
    changes: _Changes,
    ev: TaskOverdue | EmptySuccessStreak | SkipStreak,
    kind: IncidentKind,
    streak: int,
    summary: str,
) -> Notice | None:
    current = changes.current.get(kind)
    if current is not None:
        changes.put(
            "updated",
            replace(
                current,
                count=current.count + 1,
                streak=max(streak, current.streak),
                summary=summary,
                updated_at=ev.at,
            ),
        )
        return None
    since = ev.last_run if isinstance(ev, TaskOverdue) else None
    if isinstance(ev, SkipStreak):
        since = ev.since
    incident = Incident(
        task=ev.task,
        kind=kind,
        opened_at=ev.at,
        summary=summary,
        streak=streak,
        since=since,
        updated_at=ev.at,
    )
    changes.put("opened", incident)
    return _notice(NoticeEvent.OPENED, incident, ev)


_UNDELIVERED = "output could not be delivered to "
_ALSO = "; also failing: "


def _failing_target(incident: Incident) -> str | None:
    """The target a delivery incident's summary names first."""
    if not incident.summary.startswith(_UNDELIVERED):
        return None
    return incident.summary.removeprefix(_UNDELIVERED).split(": ", 1)[0]


def failing_targets(incident: Incident) -> tuple[str, ...]:
    """The targets a delivery incident is about: those whose failure was told and that
    have not taken an output since (one saved before these were kept: the target its
    summary names)."""
    if incident.told is not None:
        return incident.told
    first = _failing_target(incident)
    return (first,) if first is not None else ()


def asked_again(incident: Incident, deliveries: int, at: datetime) -> Incident:
    """A delivery incident once the owner asked for ``deliveries`` that gave up to be
    delivered again (``agentcron redeliver``): they no longer count as given up, and
    the next give-up is news again, so that how the new attempts end is told, whichever
    way (a redelivery that gave up again was only counted in the open incident, and the
    one that arrived said "2 deliveries gave up meanwhile" of its own run: outside-in
    probe)."""
    return replace(
        incident, streak=max(0, incident.streak - deliveries), escalated=False, updated_at=at
    )


def _delivery_summary(ev: DeliveryFailed, failing: tuple[str, ...]) -> str:
    others = [t for t in failing if t != ev.target_redacted]
    also = f"{_ALSO}{', '.join(others)}" if others else ""
    return f"{_UNDELIVERED}{ev.target_redacted}: {ev.error}{also}"


def _on_delivery_failed(changes: _Changes, ev: DeliveryFailed) -> Notice | None:
    current = changes.current.get(IncidentKind.DELIVERY)
    if current is None:
        incident = Incident(
            task=ev.task,
            kind=IncidentKind.DELIVERY,
            opened_at=ev.at,
            escalated=ev.gave_up,
            streak=1 if ev.gave_up else 0,  # outputs given up: told at its end
            retries=1 if ev.retry_at is not None else 0,
            summary=_delivery_summary(ev, ()),
            slot_id=ev.slot_id,
            updated_at=ev.at,
            told=(ev.target_redacted,),
        )
        changes.put("opened", incident)
        return _notice(NoticeEvent.OPENED, incident, ev)
    incident = replace(
        current,
        count=current.count + 1,
        streak=current.streak + (1 if ev.gave_up else 0),
        retries=current.retries + (1 if ev.retry_at is not None else 0),
        slot_id=ev.slot_id,
        updated_at=ev.at,
    )
    failing = failing_targets(current)
    if ev.gave_up and (not current.escalated or ev.target_redacted not in failing):
        # the incident's target given up at last, or another target given up while it
        # is open (one incident per task: a second target's failures were only counted,
        # and a target put in place of a failing one was never told failing)
        if ev.target_redacted not in failing:
            failing += (ev.target_redacted,)
        summary = _delivery_summary(ev, failing)
        incident = replace(incident, escalated=True, summary=summary, told=failing)
        changes.put("escalated", incident)
        return _notice(NoticeEvent.ESCALATED, incident, ev)
    changes.put("updated", incident)
    return None


def _still_failing(incident: Incident, left: tuple[str, ...]) -> str:
    """The summary once only ``left`` fail: its first target's error if that one still
    fails, else the targets alone."""
    head = incident.summary.split(_ALSO, 1)[0]
    first = _failing_target(incident)
    if first not in left:
        return f"{_UNDELIVERED}{', '.join(left)}"
    others = [t for t in left if t != first]
    return head + (f"{_ALSO}{', '.join(others)}" if others else "")


def _on_delivery_recovered(changes: _Changes, ev: DeliveryRecovered) -> Notice | None:
    """Over when every failing target has taken an output again, or is no longer one
    of the task's; another target's success says nothing of it (two targets, one down,
    made a "✔ delivered" and a "✖ gave up" of every run)."""
    current = changes.current.get(IncidentKind.DELIVERY)
    if current is None:
        return None
    failing = failing_targets(current)
    left = tuple(
        t for t in failing if t != ev.target_redacted and (not ev.targets or t in ev.targets)
    )
    if left == failing and failing:
        return None
    if left:
        # one of several failing targets is back: the incident goes on for the others
        changes.put(
            "updated",
            replace(current, told=left, summary=_still_failing(current, left), updated_at=ev.at),
        )
        return None
    return _closing_notice(changes.close(IncidentKind.DELIVERY, ev.at), ev)


def _on_missed(changes: _Changes, ev: RunsMissed) -> Notice | None:
    """Counted into the task's open ``missed`` incident; no notice of its own."""
    current = changes.current.get(IncidentKind.MISSED)
    if current is not None:
        count = current.streak + ev.count
        incident = replace(
            current,
            count=current.count + 1,
            streak=count,
            summary=f"{count} runs not run since the last one: {ev.reason}",
            updated_at=ev.at,
        )
        changes.put("updated", incident)
        return None
    plural = "run" if ev.count == 1 else "runs"
    incident = Incident(
        task=ev.task,
        kind=IncidentKind.MISSED,
        opened_at=ev.at,
        summary=f"{ev.count} {plural} not run: {ev.reason}",
        streak=ev.count,
        since=ev.first,
        updated_at=ev.at,
    )
    changes.put("opened", incident)
    return None


def _on_starved(changes: _Changes, ev: TaskStarved) -> Notice | None:
    summary = f"waited {format_duration(ev.waited)} for a free worker: {ev.holders}"
    current = changes.current.get(IncidentKind.STARVED)
    if current is not None:
        changes.put("updated", replace(current, summary=summary, updated_at=ev.at))
        return None
    incident = Incident(
        task=ev.task,
        kind=IncidentKind.STARVED,
        opened_at=ev.at,
        summary=summary,
        slot_id=ev.slot_id,
        since=ev.at - ev.waited,
        updated_at=ev.at,
    )
    changes.put("opened", incident)
    return _notice(NoticeEvent.OPENED, incident, ev)


def _on_skips_ended(changes: _Changes, ev: SkipStreakEnded) -> Notice | None:
    current = changes.current.get(IncidentKind.SKIP_STREAK)
    if current is None:
        return None
    changes.put("updated", replace(current, streak=ev.skipped, updated_at=ev.at))
    return _closing_notice(changes.close(IncidentKind.SKIP_STREAK, ev.at), ev)


def _on_reminder(changes: _Changes, ev: Reminder) -> Notice | None:
    current = changes.current.get(ev.kind)
    if current is None:
        return None  # closed meanwhile: nothing to remind of
    incident = replace(current, reminded_at=ev.at, updated_at=ev.at)
    changes.put("updated", incident)
    return _notice(NoticeEvent.REMINDER, incident, ev)


def downtime(incident: Incident, at: datetime) -> timedelta:
    """How long the task was failing: from the first failed slot's due time."""
    return at - (incident.since or incident.opened_at)
