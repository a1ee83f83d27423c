"""What the engine, the watchdog and the delivery worker report about a task.

These are facts, not decisions: the engine says "attempt 2 of slot 17 failed with
``rate_limited`` and will be retried at 02:07"; whether that opens an incident or
is one more repeat of an open one is decided by :mod:`agentcron.notify.incidents`.
Keeping the facts free of notification policy lets the same events feed logs,
metrics and the dashboard.

Every event names its ``task`` and the instant ``at`` (aware UTC) it happened.
Texts in events (``explanation``, ``details``, ``error``) may still contain
secrets; everything that leaves the process is redacted when it is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from agentcron.model import ErrorClass, IncidentKind


@dataclass(frozen=True, kw_only=True)
class AttemptFailed:
    """One attempt of a slot failed; ``retry_at`` says when the next one runs.

    ``gave_up`` is true when no retry follows although the class was transient
    (retries exhausted). A permanent class never has a ``retry_at``.
    ``details`` holds the last lines of output; ``env_hint`` names the
    environment variable that holds the credential (e.g. ``llm.api_key_env``),
    so an auth failure can say which key to check.
    """

    task: str
    at: datetime
    slot_id: int
    scheduled_for: datetime
    attempt: int
    max_attempts: int
    error_class: ErrorClass
    explanation: str
    fix: str | None = None
    retry_at: datetime | None = None
    gave_up: bool = False
    paused: bool = False  # its task was paused meanwhile: the retry it was due is not run
    elsewhere: bool = False  # stopped with its daemon while another node runs: retried there
    details: str = ""
    next_run: datetime | None = None
    env_hint: str | None = None
    # A failure that persists across runs escalates although each slot is still
    # being retried: after this many failed runs in a row (0: never by count) ...
    escalate_runs: int = 0
    # ... or once the failing has lasted this long (None: never by time).
    escalate_after: timedelta | None = None
    # Refused by its model provider, whose cooldown is told as the provider's incident
    # ("⚠ HOST is refusing calls … 1 task waits"): counted in the task's failure, told
    # only once it lasts (the task's escalation rule) or fails for good.
    held: bool = False

    @property
    def permanent(self) -> bool:
        return not self.error_class.transient


@dataclass(frozen=True, kw_only=True)
class WorkerLost:
    """The worker running a slot vanished (kill -9, power loss): its lease lapsed.

    It is a failure of class ``worker_lost`` for incident purposes; it is a
    separate event because the engine learns it from the watchdog, not from an
    attempt that reported back.
    """

    task: str
    at: datetime
    slot_id: int
    scheduled_for: datetime
    attempt: int
    max_attempts: int
    node: str | None = None
    retry_at: datetime | None = None
    gave_up: bool = False
    next_run: datetime | None = None

    def as_failure(self) -> AttemptFailed:
        where = f" (node {self.node})" if self.node else ""
        return AttemptFailed(
            task=self.task,
            at=self.at,
            slot_id=self.slot_id,
            scheduled_for=self.scheduled_for,
            attempt=self.attempt,
            max_attempts=self.max_attempts,
            error_class=ErrorClass.WORKER_LOST,
            explanation=f"the worker running it stopped unexpectedly{where}",
            retry_at=self.retry_at,
            gave_up=self.gave_up,
            next_run=self.next_run,
        )


@dataclass(frozen=True, kw_only=True)
class RunSucceeded:
    """A slot succeeded on its ``attempts``-th attempt; ``empty`` when it produced nothing,
    ``unwatched`` when that is not a warning sign for this task (it never printed, or its
    config says no output is expected)."""

    task: str
    at: datetime
    slot_id: int
    attempts: int = 1
    empty: bool = False
    unwatched: bool = False


@dataclass(frozen=True, kw_only=True)
class RunStuck:
    """A run has been going for longer than ``stuck_after`` (it is not killed)."""

    task: str
    at: datetime
    slot_id: int
    running_for: timedelta
    limit: timedelta
    timeout: timedelta | None = None  # what ends the run if it goes on (said with it)
    # the task's runs just before this one, in a row, that went past stuck_after too
    # (set by the notifier when a new one opens: a task whose every run is slower than
    # its stuck_after is told so once, not twice a run)
    streak_before: int = 0


@dataclass(frozen=True, kw_only=True)
class TaskOverdue:
    """No slot was recorded although one was due since ``due_since``.

    ``last_run`` is when the task last ran, if ever; the message says "has not
    run since" that time, which is what a person compares with their memory.
    """

    task: str
    at: datetime
    due_since: datetime
    missed: int
    last_run: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class EmptySuccessStreak:
    """``count`` successes in a row produced no output (or zero model tokens);
    ``with_text``: each had text, its model reported 0 completion tokens."""

    task: str
    at: datetime
    count: int
    with_text: bool = False


@dataclass(frozen=True, kw_only=True)
class SkipStreak:
    """``count`` slots in a row were skipped, all for ``reason`` (plain language)."""

    task: str
    at: datetime
    count: int
    reason: str
    since: datetime | None = None  # when the first skipped slot of the streak was due
    replaced: bool = False  # runs stopped by the next fire (overlap: replace), not skips


@dataclass(frozen=True, kw_only=True)
class SkipStreakEnded:
    """A run whose next slot was not skipped: the task runs on its schedule again.
    ``skipped`` is read from the record: the slots skipped since the streak began."""

    task: str
    at: datetime
    skipped: int


@dataclass(frozen=True, kw_only=True)
class DeliveryFailed:
    """Delivering a run's output to one target failed.

    ``target_redacted`` is the channel key (no secrets). ``attempts`` counts the
    delivery attempts so far; ``output_path`` is where the output is kept, so a
    given-up delivery can point the owner to it.
    """

    task: str
    at: datetime
    slot_id: int
    target_redacted: str
    error: str
    attempts: int = 1
    gave_up: bool = False
    retry_at: datetime | None = None
    output_path: str | None = None
    # when ``keep_outputs`` removes that file (None: kept for good, or not known)
    kept_until: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class DeliveryRecovered:
    """A delivery of this task's output succeeded.

    The delivery worker may emit it for every successful delivery: it only
    changes something while a delivery incident is open.
    """

    task: str
    at: datetime
    slot_id: int
    target_redacted: str
    attempts: int = 1
    # the task's deliver targets now (their keys); empty: not known
    targets: tuple[str, ...] = ()
    # the attempt before got no answer in time: the target may have taken it as well
    unanswered_before: bool = False


@dataclass(frozen=True, kw_only=True)
class TaskStarved:
    """A slot free to run has waited ``waited`` for a worker; ``holders`` says what holds
    them ("all 4 workers busy: story for 2h10m, reindex for 40m")."""

    task: str
    at: datetime
    slot_id: int
    waited: timedelta
    holders: str


@dataclass(frozen=True, kw_only=True)
class RunsMissed:
    """``count`` slots of the task were recorded missed or expired (not run) at once,
    due from ``first`` to ``last``, for ``reason`` (the newest one's)."""

    task: str
    at: datetime
    count: int
    first: datetime
    last: datetime
    reason: str


@dataclass(frozen=True, kw_only=True)
class Reminder:
    """An incident of ``kind`` is still open after the task's ``remind_after``."""

    task: str
    at: datetime
    kind: IncidentKind
    # the incident's newest run failed its first attempt and its retry is still to
    # come: it is not counted a failed run yet (the recovery would not count it)
    retrying: bool = False


Event = (
    AttemptFailed
    | WorkerLost
    | RunSucceeded
    | RunStuck
    | TaskOverdue
    | EmptySuccessStreak
    | SkipStreak
    | SkipStreakEnded
    | DeliveryFailed
    | DeliveryRecovered
    | TaskStarved
    | RunsMissed
    | Reminder
)
