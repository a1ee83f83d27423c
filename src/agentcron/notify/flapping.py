"""A task that keeps failing and recovering is told once, not at each turn.

A flaky task (a model API that times out one call in ten, a scrape that fails every
few hours) opens a failure incident and closes it again over and over: each turn is
"⚠ TASK failed" and then "✔ TASK recovered", a pair of messages per flake, until the
owner mutes the channel and misses the day it really breaks. Once a task's failures
have opened :data:`FLAP_OPENINGS` incidents within :data:`FLAP_WINDOW`, a ``flapping``
incident opens with one message, and while it is open the turns of single runs (a
run that failed, was given up, or was retried to success) are recorded and counted
but not told, whatever the failure's class: one the next run recovers from is a
flake. What still needs the owner is a failure that lasts (two runs in a row given up
or refused, the task's own ``retries + 1`` / ``escalate_after`` rule) and its recovery.
The incident closes, told, after a task's first success :data:`STEADY_AFTER` past its
last failure.

Pure: the notifier reads the openings and persists what comes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from agentcron.model import Incident, IncidentKind
from agentcron.model.failure import DAEMON_STOPPED
from agentcron.notify.events import AttemptFailed, Event, RunSucceeded, WorkerLost
from agentcron.notify.incidents import Notice, NoticeEvent, Transition, down_summary, told_down

FLAP_OPENINGS = 3  # failure incidents opened ...
FLAP_WINDOW = timedelta(hours=24)  # ... within this long: the task flaps
STEADY_AFTER = timedelta(hours=24)  # a success this long after the last failure ends it


@dataclass(frozen=True)
class Damped:
    """What the flapping rule makes of one transition: the flapping incident it opened,
    counted or closed (if any), and the notice to tell in the transition's place
    (None: nothing)."""

    changed: tuple[Incident, ...]
    notice: Notice | None


def a_turn(notice: Notice) -> bool:
    """Whether ``notice`` is a turn of a single run's failure: its opening, its giving
    up, or its recovery; not a failure that lasted. A failure of a class retrying will
    not help (a 401) is a turn too when the next run succeeds: a task that answered
    401 and then succeeded, run after run, sent 55 messages in 5 minutes and never
    read as flapping (outside-in probe)."""
    inc = notice.incident
    if inc.kind is not IncidentKind.FAILURE or told_down(inc):
        return False
    if notice.event is NoticeEvent.CLOSED:
        # The end of a failure nothing was told of is a turn too: a run superseded
        # while its retry waited, then the next one retried to success, made two
        # failed runs, none told, and "✔ running again after 1 failed run" came out of
        # nowhere (outside-in probe, three times in a day). One told meanwhile (it
        # escalated past its first run: a new kind of error) has its end told.
        return inc.failed_runs <= 1 or not inc.escalated
    if inc.failed_runs > 1:
        return False
    cause: Event = notice.cause
    if isinstance(cause, WorkerLost):
        cause = cause.as_failure()
    if not isinstance(cause, AttemptFailed) or stopped_with_the_daemon(inc):
        return False
    return notice.event is NoticeEvent.OPENED or (
        notice.event is NoticeEvent.ESCALATED and (cause.gave_up or cause.permanent)
    )


def stopped_with_the_daemon(incident: Incident) -> bool:
    """Whether a failure incident is of a run the daemon's own stop interrupted: the
    operator's doing, not a turn of the task (outside-in probe: three restarts within a
    day told a healthy task as "keeps failing and recovering", `list` said flapping).
    A daemon killed with -9 is not known as such: its runs are found lost later."""
    return (incident.summary or "").endswith(DAEMON_STOPPED)


def damp(
    transition: Transition,
    flapping: Incident | None,
    event: Event,
    openings: Sequence[datetime],
    failing_after: bool,
) -> Damped:
    """Apply the rule to ``transition`` (of ``event``). ``flapping``: the task's open
    flapping incident; ``openings``: when its earlier failure incidents opened, newest
    first (those within FLAP_WINDOW when none flaps yet; the newest one when a
    success may end it); ``failing_after``: whether a failure incident is still open
    after the transition."""
    notice = transition.notice
    at = event.at
    opened = next((i for i in transition.opened if i.kind is IncidentKind.FAILURE), None)
    if flapping is None:
        if notice is None or opened is None or notice.incident.kind is not IncidentKind.FAILURE:
            return Damped((), notice)
        if not a_turn(notice):
            return Damped((), notice)
        recent = [when for when in openings if at - when <= FLAP_WINDOW]
        if len(recent) + 1 < FLAP_OPENINGS:
            return Damped((), notice)
        flap = Incident(
            task=opened.task,
            kind=IncidentKind.FLAPPING,
            opened_at=at,
            count=len(recent) + 1,
            since=min(recent),
            last_error_class=opened.last_error_class,
            summary=flap_summary(len(recent) + 1, opened.summary),
            updated_at=at,
        )
        return Damped((flap,), replace(notice, event=NoticeEvent.OPENED, incident=flap))
    down = _stopped_recovering(transition, event)
    if down is not None:
        return Damped(
            (down,), Notice(task=down.task, event=NoticeEvent.ESCALATED, incident=down, cause=event)
        )
    if notice is not None and a_turn(notice):
        changed: tuple[Incident, ...] = ()
        if opened is not None:
            count = flapping.count + 1
            changed = (
                replace(
                    flapping,
                    count=count,
                    last_error_class=opened.last_error_class,
                    summary=flap_summary(count, opened.summary),
                    updated_at=at,
                ),
            )
        return Damped(changed, _others_closed(notice))
    if isinstance(event, RunSucceeded) and not failing_after:
        last = max(openings, default=None)
        if last is None or at - last >= STEADY_AFTER:
            closed = replace(flapping, closed_at=at, updated_at=at)
            also = () if notice is None else (notice.incident, *notice.also_closed)
            if notice is not None and notice.event is not NoticeEvent.CLOSED:
                return Damped((closed,), notice)  # told on its own; it ends quietly
            return Damped(
                (closed,),
                Notice(
                    task=closed.task,
                    event=NoticeEvent.CLOSED,
                    incident=closed,
                    cause=event,
                    also_closed=tuple(also),
                ),
            )
    return Damped((), notice)


def _stopped_recovering(transition: Transition, event: Event) -> Incident | None:
    """The failure incident of a flapping task whose second run in a row was just
    given up, told as lasting (what :func:`a_turn` keeps quiet is a single run's
    failure); None when there is none, or it was told already. A task whose runs are
    retried is told so by the incidents' own rule (``escalate_runs``) until a run is
    given up; one given up opens its incident told (escalated) and no later run of
    it would be told without this."""
    cause = event.as_failure() if isinstance(event, WorkerLost) else event
    if not isinstance(cause, AttemptFailed) or not (cause.gave_up or cause.permanent):
        return None
    for inc in (*transition.updated, *transition.escalated):
        if inc.kind is IncidentKind.FAILURE and inc.failed_runs > 1 and not told_down(inc):
            summary = down_summary(inc.failed_runs, cause.explanation)
            return replace(inc, escalated=True, summary=summary)
    return None


def flap_summary(failures: int, latest: str) -> str:
    """What `list` and the messages say of a flapping task."""
    # not "recovering each time": failures in a row are counted too (24 of 29 were one
    # run after another, while it said so; outside-in probe)
    return f"failed {failures} times, with recoveries between; latest: {latest}"


def _others_closed(notice: Notice) -> Notice | None:
    """What a quiet turn's notice also closed (an overdue, a stuck run), told on its
    own: they are not turns."""
    if not notice.also_closed:
        return None
    first, *rest = notice.also_closed
    return Notice(
        task=notice.task,
        event=NoticeEvent.CLOSED,
        incident=first,
        cause=notice.cause,
        also_closed=tuple(rest),
    )
