"""The words the owner reads.

A notice becomes a :class:`Message`: a title (the e-mail subject, the bold line
in a chat) and a body whose first line is the whole story in one sentence,
written for a person half awake at 2 a.m.: what happened, in plain language,
and what happens next ("Retrying at 02:07 (attempt 2 of 4).") or what they must
do ("check DEEPINFRA_API_KEY"). The details below it, the last lines of output,
are for when they sit down to fix it. Times are the task's local time.

Every text is redacted on the way out, whatever the caller already did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from agentcron.durations import format_duration
from agentcron.model import (
    ClockStepped,
    ErrorClass,
    Incident,
    IncidentKind,
    Message,
    NodeInfo,
    ProviderState,
    Severity,
)
from agentcron.model.budget import BudgetNews
from agentcron.model.failure import DAEMON_STOPPED
from agentcron.notify.events import (
    AttemptFailed,
    DeliveryFailed,
    DeliveryRecovered,
    EmptySuccessStreak,
    Event,
    Reminder,
    RunStuck,
    RunSucceeded,
    SkipStreak,
    TaskOverdue,
    TaskStarved,
    WorkerLost,
)
from agentcron.notify.incidents import (
    STUCK_HABIT,
    Notice,
    NoticeEvent,
    downtime,
    failing_targets,
    told_down,
    told_zero_tokens,
)
from agentcron.policies.budget import describe_usage
from agentcron.redact import redact
from agentcron.schedules.zones import zone_label

MAX_DETAIL_LINES = 20
# how the delivery worker begins the error of an output whose kept file was deleted:
# it gives up at once, and the output is not kept anywhere
OUTPUT_GONE = "the kept output file is gone"
MAX_LINE_CHARS = 300
MAX_PHRASE_CHARS = 400

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def render(
    notice: Notice,
    zone: ZoneInfo,
    secrets: Iterable[str] = (),
    owner_zone: ZoneInfo | None = None,
) -> Message:
    """Turn a notice into the message the owner reads; ``secrets`` are values to
    blank out in addition to the shapes :func:`agentcron.redact.redact` knows. Times
    are in the task's ``zone``, named after each time when it is not ``owner_zone``
    (the config's): "Retrying at 02:12 JST" beside another task's "since 12:12"."""
    token = _NAMED_ZONE.set(owner_zone is not None and zone.key != owner_zone.key)
    try:
        return _even_seconds(lambda: _render(notice, zone, secrets))
    finally:
        _NAMED_ZONE.reset(token)


def _render(notice: Notice, zone: ZoneInfo, secrets: Iterable[str]) -> Message:
    title, summary, severity = _summary(notice, zone)
    lines = [summary]
    lines += [_also_closed(inc, notice.cause) for inc in notice.also_closed]
    details = _details(notice.cause)
    if details:
        lines += ["", "Last lines of output:", *details]
    secret_list = list(secrets)
    return Message(
        title=redact(title, secret_list),
        body=redact("\n".join(lines), secret_list),
        task=notice.task,
        event=str(notice.event),
        incident_kind=str(notice.incident.kind),
        severity=severity,
    )


def _summary(notice: Notice, zone: ZoneInfo) -> tuple[str, str, Severity]:
    """(title, first line, severity) for the notice."""
    inc, cause, task = notice.incident, notice.cause, notice.task
    if notice.event is NoticeEvent.CLOSED:
        return _closed(inc, cause, task)
    if isinstance(cause, Reminder):
        return _reminder(inc, cause, zone)
    if inc.kind is IncidentKind.FLAPPING:
        return _flapping(inc, cause, zone)
    if isinstance(cause, WorkerLost):
        cause = cause.as_failure()
    if isinstance(cause, AttemptFailed):
        if notice.event is NoticeEvent.ESCALATED and not (cause.permanent or cause.gave_up):
            return _persisting(inc, cause, zone)
        hard = cause.gave_up or cause.permanent
        if notice.event is NoticeEvent.ESCALATED and hard and told_down(inc):
            return _persisting(inc, cause, zone)  # a flapping task that stopped recovering
        return _failed(cause, zone)
    if isinstance(cause, RunStuck) and cause.streak_before >= STUCK_HABIT - 1:
        in_a_row = cause.streak_before + 1
        return (
            f"⏳ {task} keeps running long",
            f"⏳ {task} has run longer than its {format_duration(cause.limit)} limit for a "
            f"warning {in_a_row} times in a row (this run: {format_duration(cause.running_for)} "
            "so far). Such runs are no longer told one by one until one ends sooner: raise "
            "`stuck_after` if this is how long it takes"
            + (
                f"; a run that reaches its timeout ({format_duration(cause.timeout)}) is "
                "still told."
                if cause.timeout is not None
                else "."
            ),
            "warning",
        )
    if isinstance(cause, RunStuck):
        return (
            f"⏳ {task} is taking long",
            f"⏳ {task} has been running for {format_duration(cause.running_for)}, longer than "
            f"its {format_duration(cause.limit)} limit for a warning.{_left_running(cause, zone)}",
            "warning",
        )
    if isinstance(cause, TaskOverdue):
        runs = _plural(cause.missed, "run")
        if cause.last_run is not None:
            since = f"since {_clock(cause.last_run, cause.at, zone)}"
        else:
            since = f"since it was due at {_clock(cause.due_since, cause.at, zone)}"
        return (
            f"⚠ {task} is overdue",
            f"⚠ {task} has not run {since} ({runs} missed) although the daemon is alive.",
            "warning",
        )
    if isinstance(cause, EmptySuccessStreak) and cause.with_text:
        return (
            f"⚠ {task}'s model reports no tokens",
            f"⚠ {task} succeeded {_times(cause.count)} with its model reporting 0 "
            "completion tokens, although its answers had text: the provider's token "
            "counts look wrong, so a tokens_per_day budget counts less than it spends.\n"
            "If that is expected, set `expect_output: false` on it.",
            "warning",
        )
    if isinstance(cause, EmptySuccessStreak):
        return (
            f"⚠ {task} produced nothing",
            f"⚠ {task} succeeded "
            + (
                "without producing anything."
                if cause.count == 1
                else f"{cause.count} times in a row without producing anything."
            )
            + "\nIf that is what it should do, set `expect_output: false` on it.",
            "warning",
        )
    if isinstance(cause, SkipStreak) and cause.replaced:
        return (
            f"⚠ {task} is not completing",
            f"⚠ {task} has not completed {cause.count} runs in a row: {_phrase(cause.reason)}. "
            "Give it a longer period or a shorter run, or use overlap: skip or queue.",
            "warning",
        )
    if isinstance(cause, SkipStreak):
        return (
            f"⚠ {task} is being skipped",
            f"⚠ {task} was skipped {cause.count} times in a row: {_phrase(cause.reason)}.",
            "warning",
        )
    if isinstance(cause, TaskStarved):
        return (
            f"⚠ {task} is waiting for a worker",
            f"⚠ {task} has waited {format_duration(cause.waited)} for a free worker: "
            f"{cause.holders}. Raise max_concurrency or move the long tasks apart.",
            "warning",
        )
    if isinstance(cause, DeliveryFailed):
        return _delivery_failed(cause, zone)
    raise ValueError(f"no {notice.event} message for {type(cause).__name__}")


def _flapping(inc: Incident, cause: Event, zone: ZoneInfo) -> tuple[str, str, Severity]:
    """A task whose failures keep opening and closing (see :mod:`.flapping`): told
    once, with what is still told while it lasts."""
    task = inc.task
    since = _clock(inc.since or inc.opened_at, cause.at, zone)
    latest = inc.summary.split("; latest: ", 1)[-1]
    line = (
        f"⚠ {task} keeps failing and recovering: {inc.count} failures since {since}, each "
        f"followed by a success (latest: {_phrase(latest, lower_first=True)}). While this "
        "lasts you are not told of each failure and recovery (`agentcron runs "
        f"{task}` shows them); you are told if it fails two runs in a row, and when it has "
        "run a day without failing."
    )
    return f"⚠ {task} keeps failing and recovering", line, "warning"


def _left_running(ev: RunStuck, zone: ZoneInfo) -> str:
    """What happens to a run past its warning: nothing, until its timeout."""
    if ev.timeout is None:
        return "\nIt is left running (it has no timeout)."
    ends = ev.at - ev.running_for + ev.timeout
    if ends <= ev.at:
        return ""
    return (
        f"\nIt is left running; its timeout ({format_duration(ev.timeout)}) stops it "
        f"{_at(ends, ev.at, zone)} if it has not ended by then."
    )


def _failed(ev: AttemptFailed, zone: ZoneInfo) -> tuple[str, str, Severity]:
    task, why = ev.task, _phrase(ev.explanation)
    if ev.permanent:
        fix = _fix(ev)
        advice = f"Retrying will not help — {fix}." if fix else "Retrying will not help."
        return f"✖ {task} failed", f"✖ {task} failed: {why}. {advice}", "failure"
    if ev.paused:
        line = f"⚠ {task} failed: {why}. Not retried: the task is paused."
        return f"⚠ {task} failed", line, "warning"
    if ev.gave_up:
        attempts = _plural(ev.attempt, "attempt")
        nxt = _next_run(ev.next_run, ev.at, zone)
        if ev.explanation == DAEMON_STOPPED and not ev.elsewhere and ev.next_run is not None:
            # the daemon is stopping, and no other runs: the fire comes when one runs
            # ("when agentcron starts again" was said of a yearly task, whose restart a
            # minute later ran nothing: probe)
            nxt = f" Its next run: {_clock(ev.next_run, ev.at, zone)}, if agentcron runs then."
        line = f"✖ {task} gave up after {attempts}: {why}.{nxt}"
        return f"✖ {task} gave up", line, "failure"
    if ev.retry_at is not None:
        stopped = ev.explanation == DAEMON_STOPPED
        if ev.next_run is not None and ev.next_run <= ev.retry_at and not stopped:
            # the next fire comes first and takes the retry's place (it supersedes it)
            plan = f"The next scheduled run, {_at(ev.next_run, ev.at, zone)}, tries again."
            if ev.next_run <= ev.at:  # due already (a catch-up after a restart)
                due = _clock(ev.next_run, ev.at, zone)
                plan = f"The next scheduled run, due since {due}, tries again now."
            return f"⚠ {task} failed", f"⚠ {task} failed: {why}. {plan}", "warning"
        if stopped:  # not at the time it was due: the daemon stops
            when = "on another running node" if ev.elsewhere else "when agentcron starts again"
        else:
            when = _at(ev.retry_at, ev.at, zone)
        plan = f"Retrying {when} (attempt {ev.attempt + 1} of {ev.max_attempts})."
        return f"⚠ {task} failed", f"⚠ {task} failed: {why}. {plan}", "warning"
    line = f"⚠ {task} failed: {why}.{_next_run(ev.next_run, ev.at, zone)}"
    return f"⚠ {task} failed", line, "warning"


def _persisting(inc: Incident, ev: AttemptFailed, zone: ZoneInfo) -> tuple[str, str, Severity]:
    """Every run is retried, yet the task has not succeeded for many runs or long."""
    task, why = ev.task, _phrase(ev.explanation)
    since = _clock(inc.since or inc.opened_at, ev.at, zone)
    if ev.permanent:
        fix = _fix(ev)
        plan = f" Retrying will not help — {fix}." if fix else " Retrying will not help."
    elif ev.gave_up:
        plan = _next_run(ev.next_run, ev.at, zone)
    else:
        plan = " Still retrying each run."
    runs = _plural(inc.failed_runs, "run")
    line = f"✖ {task} has failed {runs} in a row since {since}: {why}.{plan}"
    return f"✖ {task} keeps failing", line, "failure"


# How a reminder names each kind of open problem ("has been ... for 1d 2h").
_STILL = {
    IncidentKind.FAILURE: "has been failing",
    IncidentKind.STUCK: "has been running too long",
    IncidentKind.OVERDUE: "has not run",
    IncidentKind.SUSPICIOUS: "has been producing nothing",
    IncidentKind.SKIP_STREAK: "has been skipped",
    IncidentKind.DELIVERY: "has not been able to deliver its output",
    IncidentKind.STARVED: "has been waiting for a free worker",
    IncidentKind.MISSED: "has been missing runs",
}


def _reminder(inc: Incident, ev: Reminder, zone: ZoneInfo) -> tuple[str, str, Severity]:
    """The answer to "silently failing for days": an open incident, told again."""
    task = inc.task
    began = inc.since or inc.opened_at
    lasted = format_duration(ev.at - began)
    still = _STILL.get(inc.kind, "has had a problem")
    if told_zero_tokens(inc):
        still = "has had its model report 0 completion tokens"
    since = _clock(began, ev.at, zone)
    # the summary is what was last told (when it opened, escalated or met a new kind
    # of error): its counts are of then, beside the headline's of now, said as such
    then = f"; as last told: {_phrase(inc.summary)}." if inc.summary else "."
    if inc.kind is IncidentKind.FAILURE:
        cls = inc.last_error_class.value if inc.last_error_class else "error"
        failed = inc.failed_runs - (1 if ev.retrying else 0)
        runs = _plural(failed, "failed run") if failed else "a run being retried"
        if failed and ev.retrying:
            runs += " and one being retried"
        line = f"⏰ Reminder: {task} {still} for {lasted} ({runs} since {since}, last: {cls})"
    else:
        line = f"⏰ Reminder: {task} {still} for {lasted} (since {since})"
    line += then
    severity: Severity = "failure" if inc.kind is IncidentKind.FAILURE else "warning"
    return f"⏰ {task}: still open after {lasted}", line, severity


def _fix(ev: AttemptFailed) -> str | None:
    if ev.env_hint and ev.error_class is ErrorClass.AUTH:
        return f"check {ev.env_hint}"
    return _phrase(ev.fix, lower_first=True) if ev.fix else None


def _delivery_failed(ev: DeliveryFailed, zone: ZoneInfo) -> tuple[str, str, Severity]:
    task = ev.task
    if ev.gave_up and ev.error.startswith(OUTPUT_GONE):
        # ``attempts`` counts the sends really tried: none is tried once the file is
        # gone (it read "after 2 attempts" of one send and the file found gone)
        tried = (
            f" {_plural(ev.attempts, 'attempt')} had been made before it went."
            if ev.attempts
            else " None had been made."
        )
        line = (
            f"✖ {task}'s output could not be delivered to {ev.target_redacted}: "
            f"{_phrase(ev.error)}. Delivery gave up at once.{tried}"
        )
        return f"✖ {task}: delivery gave up", line, "failure"
    if ev.gave_up:
        kept = f"; it is kept at {ev.output_path}" if ev.output_path else ""
        if ev.output_path and ev.kept_until is not None and ev.kept_until <= ev.at:
            # past its keep_outputs already (an old output redelivered, a long retry)
            kept += (
                " until the next pruning (it is past its `keep_outputs`): "
                f"`agentcron redeliver {ev.slot_id}` now sends it again"
            )
        elif ev.output_path:
            if ev.kept_until is not None:
                # "kept" was said of files keep_outputs removed a minute later (probe)
                kept += f" until {_clock(ev.kept_until, ev.at, zone)} (`keep_outputs`)"
            kept += f", and `agentcron redeliver {ev.slot_id}` sends it again"
        line = (
            f"✖ {task}'s output could not be delivered to {ev.target_redacted} after "
            f"{_plural(ev.attempts, 'attempt')}: {_phrase(ev.error)}{kept}."
        )
        return f"✖ {task}: delivery gave up", line, "failure"
    line = f"⚠ {task}'s output could not be delivered to {ev.target_redacted}: {_phrase(ev.error)}."
    if ev.retry_at is not None:
        line += f" Retrying {_at(ev.retry_at, ev.at, zone)}."
    return f"⚠ {task}: delivery failed", line, "warning"


def _closed(inc: Incident, cause: Event, task: str) -> tuple[str, str, Severity]:
    if inc.kind is IncidentKind.STUCK and isinstance(cause, AttemptFailed | WorkerLost):
        failure = cause.as_failure() if isinstance(cause, WorkerLost) else cause
        ran = format_duration(cause.at - (inc.since or inc.opened_at))
        return (
            f"✖ {task} ended without success",
            f"✖ {task}'s long run ended after {ran} without success: "
            f"{_phrase(failure.explanation)}.",
            "failure",
        )
    titles = {
        IncidentKind.FAILURE: f"✔ {task} recovered",
        IncidentKind.STUCK: f"✔ {task} finished",
        IncidentKind.OVERDUE: f"✔ {task} is running again",
        IncidentKind.SUSPICIOUS: f"✔ {task} produced output again",
        IncidentKind.SKIP_STREAK: f"✔ {task} runs on schedule again",
        IncidentKind.DELIVERY: f"✔ {task}: output delivered",
        IncidentKind.STARVED: f"✔ {task} got a worker",
        IncidentKind.MISSED: f"✔ {task} ran again",
        IncidentKind.FLAPPING: f"✔ {task} is steady again",
    }
    title = titles[inc.kind]
    if isinstance(cause, RunSucceeded) and cause.unwatched and inc.kind is IncidentKind.SUSPICIOUS:
        title = f"✔ {task}: no longer watched for output"
    return title, f"✔ {_closed_sentence(inc, cause)}", "recovery"


def _closed_sentence(inc: Incident, cause: Event) -> str:
    task = inc.task
    if inc.kind is IncidentKind.FAILURE:
        same_slot = isinstance(cause, RunSucceeded) and cause.slot_id == inc.slot_id
        if same_slot and inc.failed_runs <= 1 and isinstance(cause, RunSucceeded):
            return f"{task} recovered after {_plural(cause.attempts - 1, 'retry', 'retries')}."
        failed = inc.failed_runs - (1 if same_slot else 0)
        down = format_duration(downtime(inc, cause.at))
        return f"{task} is running again after {_plural(failed, 'failed run')} (down {down})."
    if inc.kind is IncidentKind.STUCK:
        ran = format_duration(cause.at - (inc.since or inc.opened_at))
        return f"{task} finished after running for {ran}."
    if inc.kind is IncidentKind.OVERDUE:
        return f"{task} is running again after {_plural(inc.streak, 'missed run')}."
    if inc.kind is IncidentKind.SUSPICIOUS and isinstance(cause, RunSucceeded) and cause.unwatched:
        return (
            f"{task} is no longer watched for output (it has never printed, or its config "
            "says none is expected): its warning of runs without output ends."
        )
    if inc.kind is IncidentKind.SUSPICIOUS:
        return f"{task} produced output again."
    if inc.kind is IncidentKind.SKIP_STREAK and (inc.summary or "").startswith("stopped"):
        return f"{task} finishes its runs again after {_plural(inc.streak, 'unfinished run')}."
    if inc.kind is IncidentKind.SKIP_STREAK:
        return f"{task} runs on schedule again after {_plural(inc.streak, 'skipped run')}."
    if inc.kind is IncidentKind.STARVED:
        waited = format_duration(cause.at - (inc.since or inc.opened_at))
        return f"{task} got a worker after waiting {waited}."
    if inc.kind is IncidentKind.MISSED:
        return f"{task} ran again after the runs it missed."
    if inc.kind is IncidentKind.FLAPPING:
        lasted = format_duration(cause.at - (inc.since or inc.opened_at))
        return (
            f"{task} has run a day without failing: it failed {inc.count} times, "
            f"with recoveries between, over {lasted}."
        )
    assert isinstance(cause, DeliveryRecovered)
    # Outputs given up while it failed are not delivered by its recovery: said with
    # their count (only the first was told as it happened), where `runs` finds them.
    # counted per target given up, not per output: an output given up at two targets
    # counts twice (it read "10 outputs" of 8 outputs; outside-in probe)
    lost = _given_up_meanwhile(inc)
    failing = failing_targets(inc)
    if failing and cause.target_redacted not in failing:
        # the failing targets were taken out of the task's deliver list
        gone = ", ".join(failing)
        return (
            f"{task}'s output was delivered to {cause.target_redacted}; {gone}, which could "
            f"not be delivered to, is no longer one of its targets.{lost}"
        )
    if cause.slot_id == inc.slot_id:
        return (
            f"{task}'s output was delivered to {cause.target_redacted} after "
            f"{_plural(cause.attempts, 'attempt')}.{_maybe_twice(cause)}{lost}"
        )
    return f"{task}'s output is being delivered to {cause.target_redacted} again.{lost}"


def _maybe_twice(cause: DeliveryRecovered) -> str:
    """Said when an earlier attempt got no answer in time: the target may have taken
    that one too (a slow webhook got the output on each of four attempts, while the
    owner read only "Connection error"; outside-in probe)."""
    if not cause.unanswered_before:
        return ""
    return (
        " An earlier attempt got no answer in time, so the output may have arrived more "
        "than once (each attempt carried the same idempotency key)."
    )


def _given_up_meanwhile(inc: Incident) -> str:
    """The deliveries a delivery incident gave up, said at its end: their outputs are
    kept, unless the one given up was given up because its kept file was gone (it said
    "the outputs are kept" of a deleted one; outside-in probe). The incident keeps the
    error of the first given up (its summary), not of each: of several, none is said
    kept for sure when that one's file was gone."""
    if not inc.streak:
        return ""
    task = inc.task
    count = _plural(inc.streak, "delivery", "deliveries")
    if OUTPUT_GONE not in inc.summary:
        return (
            f" {count} gave up meanwhile; the outputs are kept until `keep_outputs` removes "
            f"them, and `agentcron runs {task}` shows which."
        )
    if inc.streak == 1:
        return " 1 delivery gave up meanwhile: its kept output file was gone."
    return (
        f" {count} gave up meanwhile, one because its kept output file was gone; "
        f"`agentcron runs {task}` shows which."
    )


def _also_closed(inc: Incident, cause: Event) -> str:
    if inc.kind is IncidentKind.STUCK:
        ran = format_duration(cause.at - (inc.since or inc.opened_at))
        return f"The run that was taking long ended after {ran}."
    return _closed_sentence(inc, cause)


def _details(cause: Event) -> list[str]:
    text = cause.details if isinstance(cause, AttemptFailed) else ""
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    lines = [line for line in lines if line.strip()][-MAX_DETAIL_LINES:]
    return [
        line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 1] + "…" for line in lines
    ]


def _phrase(text: str | None, lower_first: bool = False) -> str:
    """A clause to embed in a sentence: one line, no final period. ``lower_first``
    turns an imperative ("Check the key.") into "check the key", leaving words
    such as ``HTTP`` or ``DEEPINFRA_API_KEY`` alone; names ("Telegram …") in
    explanations and errors are never touched."""
    clause = " ".join((text or "").split()).rstrip(". ")
    if len(clause) > MAX_PHRASE_CHARS:
        clause = clause[: MAX_PHRASE_CHARS - 1] + "…"
    if lower_first and len(clause) > 1 and clause[0].isupper() and clause[1].islower():
        clause = clause[0].lower() + clause[1:]
    return clause or "unknown error"


def _times(count: int) -> str:
    """``once``, ``3 times in a row``."""
    return "once" if count == 1 else f"{count} times in a row"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


# whether the times of the message being rendered name their zone (see render)
_NAMED_ZONE: ContextVar[bool] = ContextVar("agentcron_named_zone", default=False)
# the message's times: whether each shown has seconds (None: not watched), and whether
# all of them must show seconds (see _even_seconds)
T = TypeVar("T")
_SEEN_SECONDS: ContextVar[set[bool] | None] = ContextVar("agentcron_seen_seconds", default=None)
_ALL_SECONDS: ContextVar[bool] = ContextVar("agentcron_all_seconds", default=False)


def _even_seconds(render_once: Callable[[], T]) -> T:
    """Render a message whose times all show seconds if one must: seconds are shown
    only when they matter (02:07 or 02:07:30), but "due between 10:51 and 10:51:10"
    read as if the first time were less exact (outside-in probe)."""
    seen: set[bool] = set()
    token = _SEEN_SECONDS.set(seen)
    try:
        first = render_once()
    finally:
        _SEEN_SECONDS.reset(token)
    if len(seen) < 2:
        return first
    token_all = _ALL_SECONDS.set(True)
    try:
        return render_once()
    finally:
        _ALL_SECONDS.reset(token_all)


def _clock(when: datetime, now: datetime, zone: ZoneInfo) -> str:
    """``02:07``, ``tomorrow 02:07``, ``yesterday 23:10`` or ``Mon 5 Jan 02:07``
    (``02:07 JST`` when the message names its zone)."""
    day, hm = _day_and_time(when, now, zone)
    return f"{day} {hm}" if day else hm


def _day_and_time(when: datetime, now: datetime, zone: ZoneInfo) -> tuple[str, str]:
    """("", "02:07"), ("tomorrow", "02:07") or ("Mon 5 Jan", "02:07 JST")."""
    local = when.astimezone(zone)
    days = (local.date() - now.astimezone(zone).date()).days
    # seconds only when they matter (sub-minute schedules, retries): 02:07 or 02:07:30
    seconds = bool(local.second) or _ALL_SECONDS.get()
    hm = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    seen = _SEEN_SECONDS.get()
    if seen is not None:
        seen.add(seconds)
    if _NAMED_ZONE.get():
        hm = f"{hm} {zone_label(local, zone.key)}"
    if days == 0:
        return "", hm
    if days == 1:
        return "tomorrow", hm
    if days == -1:
        return "yesterday", hm
    day = f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]}"
    if abs(days) > 300 or local.year != now.astimezone(zone).year:
        # far from now, or in another year, the year is said: a one-shot of 2020 read
        # "Wed 1 Jan 10:00", as if it were the coming one, and a span of New Year's Eve
        # "Sat 31 Dec 17:30 and 00:30" (outside-in probes)
        day = f"{day} {local.year}"
    return day, hm


def _at(when: datetime, now: datetime, zone: ZoneInfo) -> str:
    """``at 02:07``, ``tomorrow at 02:07`` or ``on Mon 5 Jan at 02:07``."""
    day, hm = _day_and_time(when, now, zone)
    if not day:
        return f"at {hm}"
    if day in ("tomorrow", "yesterday"):
        return f"{day} at {hm}"
    return f"on {day} at {hm}"


def _next_run(when: datetime | None, now: datetime, zone: ZoneInfo) -> str:
    """The next fire; one already due (a catch-up after a restart) runs now: a time
    before the message's own read as a promise already broken (outside-in probe)."""
    if when is None:
        return ""
    if when <= now:
        return f" Next scheduled run: now (due {_clock(when, now, zone)})."
    return f" Next scheduled run: {_clock(when, now, zone)}."


def render_missed(
    report: Iterable[tuple[str, int, int, datetime, datetime, str]],
    now: datetime,
    zone: ZoneInfo,
    secrets: Iterable[str] = (),
) -> Message:
    """One message for every slot recorded missed or expired at once (a downtime, a
    stall): ``report`` rows are (task, missed, expired, first due, last due, reason).
    A daemon back after a day says so once, not once per task."""
    return _even_seconds(lambda: _render_missed(list(report), now, zone, secrets))


def _render_missed(
    report: list[tuple[str, int, int, datetime, datetime, str]],
    now: datetime,
    zone: ZoneInfo,
    secrets: Iterable[str],
) -> Message:
    rows = sorted(report, key=lambda r: (-(r[1] + r[2]), r[0]))
    total = sum(r[1] + r[2] for r in rows)
    first = min(r[3] for r in rows)
    last = max(r[4] for r in rows)
    # the report's tasks may be of other zones: its span says whose time it gives
    named = f" {first.astimezone(zone).tzname()}"
    since, until = _clock(first, now, zone), _clock(last, now, zone)
    if until[:1].isdigit() and not since[:1].isdigit():
        # "between Sat 5 Dec 16:21 and 16:20" read as a span of minus one minute
        until = f"today {until}"
    span = f"due at {since}{named}" if first == last else f"due between {since} and {until}{named}"
    tasks = _plural(len(rows), "task")
    lines = [f"⚠ {_plural(total, 'run')} of {tasks} did not run ({span}):"]
    for task, missed, expired, _first, _last, reason in rows[:MAX_DETAIL_LINES]:
        counts = [
            c
            for c in (f"{missed} missed" if missed else "", f"{expired} expired" if expired else "")
            if c
        ]
        lines.append(f"• {task}: {', '.join(counts)} — {_phrase(reason)}")
    if len(rows) > MAX_DETAIL_LINES:
        lines.append(f"• and {len(rows) - MAX_DETAIL_LINES} more tasks (`agentcron list`)")
    secret_list = list(secrets)
    return Message(
        title=f"⚠ {_plural(total, 'run')} of {tasks} did not run",
        body=redact("\n".join(lines), secret_list),
        task="",
        event="missed",
        incident_kind=str(IncidentKind.MISSED),
        severity="warning",
    )


def render_removed_delivery(ev: DeliveryFailed, zone: ZoneInfo) -> Message:
    """The end of a delivery whose task was removed after its run: no incident opens
    (nothing is left to fix, and a task added again under the name must not inherit
    one), so the message says itself what happened."""
    title, line, severity = _delivery_failed(ev, zone)
    gone = f" {ev.task} was removed after that run; nothing more will be told of it."
    return Message(
        title=redact(title),
        body=redact(line + gone),
        task=ev.task,
        event=str(NoticeEvent.ESCALATED),
        incident_kind=str(IncidentKind.DELIVERY),
        severity=severity,
    )


_REMOVED_WHILE = {
    IncidentKind.FAILURE: "failing",
    IncidentKind.STUCK: "a run of it was stuck",
    IncidentKind.OVERDUE: "its runs had stopped coming",
    IncidentKind.SUSPICIOUS: "its runs succeeded without output",
    IncidentKind.SKIP_STREAK: "its runs were being skipped",
    IncidentKind.DELIVERY: "its output could not be delivered",
    IncidentKind.STARVED: "it waited for a free worker",
    IncidentKind.MISSED: "runs of it were missed",
    IncidentKind.FLAPPING: "it kept failing and recovering",
}


def render_removed_task(
    task: str, incidents: Sequence[Incident], by: str | None, now: datetime, zone: ZoneInfo
) -> Message:
    """The end of a task's open problems when the task itself was removed (from its
    config file, with `agentcron remove`, the API or an agent): the owner was told of
    the problem and would otherwise hear nothing more of it."""
    first = min(incidents, key=lambda inc: inc.since or inc.opened_at)
    problems = [_REMOVED_WHILE[i.kind] for i in incidents if i.kind in _REMOVED_WHILE]
    what = " and ".join(dict.fromkeys(problems)) or "its problem was open"
    since = _clock(first.since or first.opened_at, now, zone)
    failed = sum(i.failed_runs for i in incidents if i.kind is IncidentKind.FAILURE)
    count = f", {_plural(failed, 'failed run')}" if failed else ""
    who = f" {by}" if by else ""
    if any(i.kind is IncidentKind.DELIVERY for i in incidents):
        # its deliveries keep going (they said "nothing more" while the output then
        # arrived: outside-in probe); only one that gives up is told again
        rest = (
            "Its waiting runs and retries are cancelled; the outputs still waiting to be "
            "delivered are still delivered, and one that gives up is told once. Its "
            "history stays"
        )
    else:
        rest = (
            "Its waiting runs and retries are cancelled and nothing more will be told of "
            "it; its history stays"
        )
    body = (
        f"{task} was removed{who} while {what} (since {since}{count}). {rest} "
        f"(`agentcron runs {task}`)."
    )
    return Message(
        title=redact(f"⚠ {task} was removed while {what}"),
        body=redact(body),
        task=task,
        event=str(NoticeEvent.CLOSED),
        incident_kind=str(first.kind),
        severity="warning",
    )


def _not_a_tasks(
    title: str, line: str, kind: IncidentKind, event: str, severity: Severity
) -> Message:
    """A message of a provider, a home or a node rather than of one task."""
    return Message(
        title=title,
        body=redact(line),
        task="",
        event=event,
        incident_kind=str(kind),
        severity=severity,
    )


def render_provider(
    state: ProviderState,
    incident: Incident,
    tasks: Sequence[str],
    now: datetime,
    zone: ZoneInfo,
    *,
    answered: bool,
) -> Message:
    """A provider's back-off, told once for all the tasks that call it."""
    name = state.name
    listed = ", ".join(tasks[:MAX_DETAIL_LINES]) + (" …" if len(tasks) > MAX_DETAIL_LINES else "")
    if answered:
        lasted = format_duration(now - (incident.since or incident.opened_at))
        line = (
            f"✔ {name} is answering again after {lasted}; "
            f"{_plural(len(tasks), 'task')} waited for it ({listed})."
        )
        title, event = f"✔ {name} is answering again", "closed"
        severity: Severity = "recovery"
    else:
        line = (
            f"⚠ {name} is refusing calls ({_phrase(state.reason)}): "
            f"{_plural(len(tasks), 'task')} {'waits' if len(tasks) == 1 else 'wait'} until "
            f"{_clock(state.until, now, zone)} ({listed}); the wait spends none of their "
            "retries."
        )
        title, event = f"⚠ {name} is refusing calls", "opened"
        severity = "warning"
    return _not_a_tasks(title, line, IncidentKind.PROVIDER, event, severity)


# What the error of the home's storage asks of the owner: (until when runs fail, what
# to do), by words of the system's error (strerror); "free space" for a read-only home
# or a file in a folder's place sent the owner to the wrong fix (outside-in probe).
_STORAGE_FIXES = (
    (("No space", "quota", "is full"), "until there is room", "Free space in agentcron's home"),
    (
        ("Read-only",),
        "until it is writable again",
        "Mount agentcron's home read-write again",
    ),
    (
        ("Permission denied", "Operation not permitted"),
        "until agentcron may write there",
        "Give the daemon's user write access to its home (and clear an immutable flag: chattr -i)",
    ),
    (
        ("Not a directory", "Is a directory", "File exists"),
        "until what stands in the way is moved",
        "Something sits where one of agentcron's files or folders belongs: move it",
    ),
)


def _storage_fix(what: str) -> tuple[str, str]:
    for words, until, advice in _STORAGE_FIXES:
        if any(w.lower() in what.lower() for w in words):
            return until, advice
    return "until it is mended", "Free space in agentcron's home, or make it writable"


def render_storage(incident: Incident, what: str | None, now: datetime, *, opened: bool) -> Message:
    """The home's storage failing runs (``what``: what could not be written), told once
    for every task it hits, and its end with what it cost (see :mod:`.storage`); an end
    with ``what`` is one seen only once over, told in one message."""
    where = incident.task.removeprefix("home:")
    tasks = sorted(incident.summary.split(", ")) if incident.summary else []
    listed = ", ".join(tasks[:MAX_DETAIL_LINES]) + (" …" if len(tasks) > MAX_DETAIL_LINES else "")
    hit = f"{_plural(len(tasks), 'task')} ({listed})"
    severity: Severity
    if opened:
        title = f"✖ agentcron cannot write runs' files on {where}"
        until, advice = _storage_fix(what or "")
        line = (
            f"{title}: {what}. Runs of {hit} failed for it (retried as each task's "
            "`retries` allow); any task's run that writes files fails the same way "
            f"{until}. {advice}; you are told when runs write their files again."
        )
        event, severity = "opened", "failure"
    else:
        lasted = format_duration(now - (incident.since or incident.opened_at))
        after = (
            f"{incident.streak} of them had no retry left and failed for good "
            "(`agentcron runs TASK` shows which)"
            if incident.streak
            else "each was retried as its task's `retries` allow"
        )
        # the storage incident counts failed attempts, not runs (slots): one run that
        # failed twice read "2 runs of 1 task (d) failed meanwhile" (outside-in probe)
        attempts = _plural(incident.failed_runs, "attempt")
        failed = f"{attempts} at runs of {hit} failed meanwhile; {after}"
        if what is None:
            title = f"✔ agentcron writes runs' files on {where} again"
            line = f"{title} after {lasted}: {failed}."
            event, severity = "closed", "recovery"
        else:  # its start is told with its end: seen only once it was over
            title = f"⚠ agentcron could not write runs' files on {where} for {lasted}"
            line = f"{title} ({what}); it can again: {failed}."
            event, severity = "closed", "warning"
    return _not_a_tasks(title, line, IncidentKind.STORAGE, event, severity)


def render_node(
    node: NodeInfo, incident: Incident, now: datetime, local: Callable[[datetime], str]
) -> Message:
    """A node that stopped without a word, told by a running one (see
    :mod:`agentcron.watchdog.peers`), and its end. ``local``: a time in the owner's zone."""
    who = f"agentcron's node {node.host} (pid {node.pid}, {node.node_id})"
    severity: Severity
    if incident.closed_at is None:
        title = f"⚠ agentcron's node {node.host} is gone"
        line = (
            f"⚠ {who} has not been heard from since {local(node.heartbeat_at)} and did not "
            "stop: it was killed, crashed or frozen (SIGSTOP, a suspended VM), or its "
            "machine is down or cut off. The running nodes take its runs over once their "
            "leases lapse; start it again, or stop it cleanly, when you can."
        )
        event, severity = "opened", "warning"
    else:
        lasted = format_duration(now - (incident.since or incident.opened_at))
        how = (
            "it runs again"
            if node.stopped_at is None
            else "its restart on its machine found it dead and recorded it stopped"
        )
        title = f"✔ agentcron's node {node.host} is accounted for"
        line = f"✔ {who}, silent for {lasted}, is accounted for: {how}."
        event, severity = "closed", "recovery"
    return _not_a_tasks(title, line, IncidentKind.NODE_LOST, event, severity)


def render_node_forgotten(incident: Incident, now: datetime) -> Message:
    """The alarm of a node whose record was removed (silent past ``keep_history``'s
    node retention) is closed, with a word: its machine never came back."""
    lasted = format_duration(now - (incident.since or incident.opened_at))
    who = f"agentcron's node {incident.summary or incident.task.removeprefix('node:')}"
    line = (
        f"⚠ {who}, silent for {lasted}, is no longer tracked: its record was removed as "
        "old, and this alarm is closed. If its machine comes back, its daemon starts as a "
        "new node."
    )
    return _not_a_tasks(
        f"⚠ {who} is no longer tracked", line, IncidentKind.NODE_LOST, "closed", "warning"
    )


def render_budget(news: BudgetNews, zone: ZoneInfo) -> Message:
    """A budget ran out: told once per budget and day, whichever task met it first."""
    scope = news.scope
    where = {
        "task": f"tasks.{news.task}.budget",
        "agent": f"agents.clients.{scope.key.partition(':')[2]}.budget",
    }.get(scope.key.partition(":")[0], "budget")
    covered = (
        "its slots are"
        if scope.key.startswith("task:")
        else "the slots of every task it covers are"
    )
    line = (
        f"⏸ Daily budget used up: {scope.label} spent "
        f"{describe_usage(news.usage, scope.budget)} today ({news.spent} used up), so "
        f"{covered} recorded skipped until {_clock(news.resets_at, news.at, zone)}, "
        f"starting with {news.task}. You are told once a day; raise "
        f"{where}.{news.spent}_per_day to allow more."
    )
    return Message(
        title=f"⏸ Budget used up: {scope.label}",
        body=redact(line),
        task=news.task,
        event="opened",
        incident_kind="budget",
        severity="warning",
    )


def clock_step_words(news: ClockStepped, local: Callable[[datetime], str]) -> tuple[str, str]:
    """The title and text of a step back of the wall clock that left tasks planned
    from the later time (see ``engine.clockstep``); ``local``: a time for the owner."""
    by = format_duration(news.by)
    title = f"⚠ agentcron: the system clock went back {by}"
    moved = sorted(news.replanned)
    lines = [
        f"  {task}: would have waited until {local(was)}; next run {local(now)}"
        for task, was, now in moved[:MAX_DETAIL_LINES]
    ]
    if len(moved) > MAX_DETAIL_LINES:
        lines.append(f"  … and {len(moved) - MAX_DETAIL_LINES} more")
    one = len(moved) == 1
    replanned = (
        f" The next {'run' if one else 'runs'} of {_plural(len(moved), 'task')} had been "
        f"planned from the time it showed before, so {'it' if one else 'they'} would not "
        f"have run until then; {'it is' if one else 'they are'} planned from now again:\n"
        + "\n".join(lines)
        + "\n"
        if moved
        else "\n"
    )
    body = (
        f"{title} (noticed at {local(news.at)})."
        + replanned
        + _ahead_records(news, local)
        + "Check the machine's time source (NTP) if you did not set the clock yourself."
    )
    return title, body


def _ahead_records(news: ClockStepped, local: Callable[[datetime], str]) -> str:
    """What became of the records the clock made while it was ahead."""
    said = ""
    if news.removed:
        one = news.removed == 1
        said += (
            f"{_plural(news.removed, 'run')} it had recorded as missed or skipped for "
            f"{'a time' if one else 'times'} still to come {'was' if one else 'were'} "
            f"removed, so {'it runs' if one else 'they run'} at {'its' if one else 'their'} "
            "time. "
        )
    if news.retries:
        was = "was" if news.retries == 1 else "were"
        said += f"{_plural(news.retries, 'retry', 'retries')} waiting too late {was} brought back. "
    if not news.ran_ahead:
        return said + "Runs that ran while it was ahead keep the times it showed. "
    ran = sorted(news.ran_ahead)
    said += (
        "Runs that ran while it was ahead keep the times it showed, and a fire already "
        "run is not run again, so these tasks next run after them:\n"
    )
    said += "".join(
        f"  {task}: its fires until {local(last)} ran; next run "
        f"{local(nxt) if nxt is not None else 'none (its schedule has no more)'}\n"
        for task, last, nxt in ran[:MAX_DETAIL_LINES]
    )
    if len(ran) > MAX_DETAIL_LINES:
        said += f"  … and {len(ran) - MAX_DETAIL_LINES} more\n"
    return said
