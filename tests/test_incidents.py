"""The incident state machine: one message when a problem opens, one when it
escalates, one when it closes, and nothing in between."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from agentcron.model import ErrorClass, Incident, IncidentKind
from agentcron.notify import (
    AttemptFailed,
    DeliveryFailed,
    DeliveryRecovered,
    EmptySuccessStreak,
    Event,
    Notice,
    NoticeEvent,
    RunStuck,
    RunSucceeded,
    SkipStreak,
    SkipStreakEnded,
    TaskOverdue,
    WorkerLost,
    apply_event,
    render,
)

BERLIN = ZoneInfo("Europe/Berlin")


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A March 2026 wall-clock time in Berlin (CET, UTC+1), as UTC."""
    return datetime(2026, 3, day, hour, minute, second, tzinfo=BERLIN).astimezone(UTC)


class Feed:
    """Plays events into apply_event like the engine does, persisting the result."""

    def __init__(self) -> None:
        self.open: dict[str, Incident] = {}
        self.notices: list[Notice] = []
        self.history: list[Incident] = []
        self._next_id = 1

    def __call__(self, events: Iterable[Event]) -> list[Notice]:
        new: list[Notice] = []
        for event in events:
            transition = apply_event(self.open, event, BERLIN)
            for incident in transition.opened:
                assert incident.id is None
                saved = replace(incident, id=self._next_id)
                self._next_id += 1
                self.open[saved.kind] = saved
            for incident in transition.updated + transition.escalated:
                self.open[incident.kind] = incident
            for incident in transition.closed:
                assert incident.closed_at is not None
                del self.open[incident.kind]
                self.history.append(incident)
            if transition.notice is not None:
                new.append(transition.notice)
        self.notices += new
        return new

    def texts(self, notices: Iterable[Notice]) -> list[str]:
        return [render(n, BERLIN).body.splitlines()[0] for n in notices]


def rate_limited(slot: int, attempt: int, at: datetime, retry_at: datetime | None) -> AttemptFailed:
    return AttemptFailed(
        task="story",
        at=at,
        slot_id=slot,
        scheduled_for=local(10, 2),
        attempt=attempt,
        max_attempts=4,
        error_class=ErrorClass.RATE_LIMITED,
        explanation="the model provider is rate-limiting requests (HTTP 429)",
        retry_at=retry_at,
    )


def overloaded_run(slot: int, day: int) -> list[Event]:
    """A nightly reindex that fails four times and gives up."""
    events: list[Event] = []
    for attempt in range(1, 5):
        gave_up = attempt == 4
        events.append(
            AttemptFailed(
                task="reindex",
                at=local(day, 4, attempt * 5),
                slot_id=slot,
                scheduled_for=local(day, 4),
                attempt=attempt,
                max_attempts=4,
                error_class=ErrorClass.OVERLOADED,
                explanation="provider overloaded",
                retry_at=None if gave_up else local(day, 4, attempt * 5 + 4),
                gave_up=gave_up,
                next_run=local(day + 1, 4) if gave_up else None,
            )
        )
    return events


def test_rate_limit_then_success_sends_exactly_opened_and_recovered() -> None:
    feed = Feed()
    notices = feed(
        [
            rate_limited(1, 1, local(10, 2, 0, 40), retry_at=local(10, 2, 7)),
            rate_limited(1, 2, local(10, 2, 7, 30), retry_at=local(10, 2, 15)),
            RunSucceeded(task="story", at=local(10, 2, 19), slot_id=1, attempts=3),
        ]
    )
    assert [n.event for n in notices] == [NoticeEvent.OPENED, NoticeEvent.CLOSED]
    assert feed.texts(notices) == [
        "⚠ story failed: the model provider is rate-limiting requests (HTTP 429). "
        "Retrying at 02:07 (attempt 2 of 4).",
        "✔ story recovered after 2 retries.",
    ]
    closed = feed.history[0]
    assert (closed.kind, closed.count, closed.retries, closed.failed_runs) == (
        IncidentKind.FAILURE,
        2,
        2,
        1,
    )
    assert closed.id == 1 and closed.closed_at == local(10, 2, 19)
    assert feed.open == {}


def test_auth_failure_is_one_notice_that_names_the_key() -> None:
    feed = Feed()
    failure = AttemptFailed(
        task="story",
        at=local(10, 2, 0, 5),
        slot_id=1,
        scheduled_for=local(10, 2),
        attempt=1,
        max_attempts=4,
        error_class=ErrorClass.AUTH,
        explanation="the provider rejected the API key (HTTP 401)",
        fix="Check the API key.",
        env_hint="DEEPINFRA_API_KEY",
        next_run=local(11, 2),
    )
    next_night = replace(failure, at=local(11, 2, 0, 5), slot_id=2, scheduled_for=local(11, 2))
    notices = feed([failure, next_night])
    assert feed.texts(notices) == [
        "✖ story failed: the provider rejected the API key (HTTP 401). "
        "Retrying will not help — check DEEPINFRA_API_KEY."
    ]
    assert notices[0].event is NoticeEvent.OPENED
    incident = feed.open["failure"]
    assert incident.escalated and incident.count == 2 and incident.failed_runs == 2


def test_ten_failing_runs_in_one_incident_send_only_opened_and_escalated() -> None:
    feed = Feed()
    events = [e for day in range(1, 11) for e in overloaded_run(slot=day, day=day)]
    notices = feed(events)
    assert [n.event for n in notices] == [NoticeEvent.OPENED, NoticeEvent.ESCALATED]
    assert feed.texts(notices)[1] == (
        "✖ reindex gave up after 4 attempts: provider overloaded. "
        "Next scheduled run: tomorrow 04:00."
    )
    incident = feed.open["failure"]
    assert (incident.count, incident.failed_runs, incident.retries) == (40, 10, 30)

    closing = feed([RunSucceeded(task="reindex", at=local(11, 5), slot_id=11)])
    assert feed.texts(closing) == [
        "✔ reindex is running again after 10 failed runs (down 10 days 1 hour)."
    ]


def test_two_runs_whose_attempts_interleave_count_as_two_runs() -> None:
    """A trigger while a retry waits: the attempts of slots 1 and 2 alternate. Each turn
    counted as a new run, so two runs read "failed 3 runs in a row" and escalated early
    (outside-in probe)."""
    feed = Feed()
    turns = [(1, 1), (2, 1), (1, 2), (2, 2), (1, 3), (2, 3)]
    events = [
        rate_limited(slot, attempt, local(10, 2, 5 * i), local(10, 2, 5 * i + 3))
        for i, (slot, attempt) in enumerate(turns)
    ]
    feed(events)
    incident = feed.open["failure"]
    assert (incident.count, incident.failed_runs) == (6, 2)
    assert incident.slot_id == 2
    # out of order (overlap: allow): the newer run fails first; both are counted
    late = Feed()
    late([rate_limited(5, 1, local(10, 2), None), rate_limited(4, 1, local(10, 3), None)])
    assert late.open["failure"].failed_runs == 2


def test_transient_then_permanent_escalates_once() -> None:
    feed = Feed()
    permanent = replace(
        rate_limited(1, 2, local(10, 2, 8), None),
        error_class=ErrorClass.QUOTA_EXHAUSTED,
        explanation="the account has no credit left (insufficient_quota)",
        fix="add credit to the provider account",
    )
    notices = feed([rate_limited(1, 1, local(10, 2, 1), local(10, 2, 7)), permanent, permanent])
    assert [n.event for n in notices] == [NoticeEvent.OPENED, NoticeEvent.ESCALATED]
    assert feed.texts(notices)[1] == (
        "✖ story failed: the account has no credit left (insufficient_quota). "
        "Retrying will not help — add credit to the provider account."
    )
    incident = feed.open["failure"]
    assert incident.first_error_class is ErrorClass.RATE_LIMITED
    assert incident.last_error_class is ErrorClass.QUOTA_EXHAUSTED


def test_stuck_run_warns_once_and_closes_when_that_run_ends() -> None:
    feed = Feed()
    stuck = RunStuck(
        task="story",
        at=local(10, 2, 31),
        slot_id=7,
        running_for=timedelta(minutes=31),
        limit=timedelta(minutes=30),
    )
    later = replace(stuck, at=local(10, 2, 40), running_for=timedelta(minutes=40))
    other_slot_done = RunSucceeded(task="story", at=local(10, 2, 41), slot_id=6)
    notices = feed([stuck, later, other_slot_done])
    assert feed.texts(notices) == [
        "⏳ story has been running for 31 min, longer than its 30 min limit for a warning."
    ]
    assert feed.open["stuck"].count == 2

    closing = feed([RunSucceeded(task="story", at=local(10, 2, 47), slot_id=7)])
    assert feed.texts(closing) == ["✔ story finished after running for 47 min."]


def test_stuck_run_that_fails_gives_one_notice_mentioning_both() -> None:
    feed = Feed()
    feed(
        [
            RunStuck(
                task="story",
                at=local(10, 2, 31),
                slot_id=7,
                running_for=timedelta(minutes=31),
                limit=timedelta(minutes=30),
            )
        ]
    )
    failure = replace(
        rate_limited(7, 1, local(10, 3), local(10, 3, 5)),
        error_class=ErrorClass.TIMEOUT,
        explanation="it ran longer than its 1 hour timeout and was stopped",
    )
    notices = feed([failure])
    assert len(notices) == 1 and notices[0].event is NoticeEvent.OPENED
    assert [i.kind for i in notices[0].also_closed] == [IncidentKind.STUCK]
    assert render(notices[0], BERLIN).body.splitlines()[:2] == [
        "⚠ story failed: it ran longer than its 1 hour timeout and was stopped. "
        "Retrying at 03:05 (attempt 2 of 4).",
        "The run that was taking long ended after 1 hour.",
    ]
    assert set(feed.open) == {"failure"}


def test_a_run_that_hangs_while_the_tasks_runs_fail_is_counted_not_told_again() -> None:
    """Every run hangs until its timeout: the first is told as taking long and as failed;
    the next ones are the same trouble, counted by the failure incident, not two more
    messages each (outside-in probe: 84 messages in 22 minutes)."""
    feed = Feed()
    told: list[str] = []
    for n in range(3):
        start = local(10, 2, 0) + timedelta(minutes=10 * n)
        stuck = RunStuck(
            task="story",
            at=start + timedelta(seconds=5),
            slot_id=n + 1,
            running_for=timedelta(seconds=5),
            limit=timedelta(seconds=4),
        )
        failure = replace(
            rate_limited(n + 1, 1, start + timedelta(seconds=12), start + timedelta(minutes=1)),
            error_class=ErrorClass.TIMEOUT,
            explanation="it ran longer than its 12s timeout and was stopped",
        )
        told += feed.texts(feed([stuck, failure]))
    assert told[0].startswith("⏳ story has been running for 5s"), told
    assert told[1].startswith("⚠ story failed: it ran longer than its 12s timeout"), told
    assert len(told) == 2, told
    assert set(feed.open) == {"failure"}
    assert feed.open["failure"].failed_runs == 3


def test_overdue_opens_once_and_closes_on_the_next_run() -> None:
    feed = Feed()
    overdue = TaskOverdue(
        task="heartbeat",
        at=local(10, 13, 5),
        due_since=local(10, 11),
        missed=3,
        last_run=local(10, 10),
    )
    notices = feed([overdue, replace(overdue, at=local(10, 14, 5), missed=4)])
    assert feed.texts(notices) == [
        "⚠ heartbeat has not run since 10:00 (3 runs missed) although the daemon is alive."
    ]
    closing = feed([RunSucceeded(task="heartbeat", at=local(10, 15), slot_id=40)])
    assert feed.texts(closing) == ["✔ heartbeat is running again after 4 missed runs."]


def test_overdue_task_that_comes_back_failing_reports_both_in_one_notice() -> None:
    feed = Feed()
    feed([TaskOverdue(task="story", at=local(10, 5), due_since=local(10, 2), missed=1)])
    notices = feed([rate_limited(3, 1, local(11, 2, 1), local(11, 2, 7))])
    assert len(notices) == 1
    lines = render(notices[0], BERLIN).body.splitlines()
    assert lines[1] == "story is running again after 1 missed run."
    assert set(feed.open) == {"failure"}


def test_a_worker_lost_between_two_permanent_failures_is_not_a_turn_told_again() -> None:
    """exit 3 with no retries (told "✖ failed … Retrying will not help"), then its run on
    a node killed mid-run (worker lost), then exit 3 again: the same message was sent
    twice, word for word (outside-in probe)."""
    feed = Feed()
    permanent = replace(
        rate_limited(1, 1, local(10, 2, 0), None),
        error_class=ErrorClass.CODE_ERROR,
        explanation="the command exited with code 3",
    )
    lost = WorkerLost(
        task="story",
        at=local(10, 2, 2),
        slot_id=2,
        scheduled_for=local(10, 2, 1),
        attempt=1,
        max_attempts=1,
        retry_at=local(10, 2, 3),
    )
    again = replace(permanent, slot_id=3, at=local(10, 2, 5), scheduled_for=local(10, 2, 4))
    notices = feed([permanent, lost, again])
    told = feed.texts(notices)
    assert told == ["✖ story failed: the command exited with code 3. Retrying will not help."]


def test_empty_success_streak_is_suspicious_until_output_returns() -> None:
    feed = Feed()
    notices = feed(
        [
            EmptySuccessStreak(task="story", at=local(12, 2, 10), count=3),
            RunSucceeded(task="story", at=local(13, 2, 10), slot_id=4, empty=True),
            EmptySuccessStreak(task="story", at=local(13, 2, 10), count=4),
        ]
    )
    assert feed.texts(notices) == ["⚠ story succeeded 3 times in a row without producing anything."]
    assert feed.open["suspicious"].count == 2 and feed.open["suspicious"].streak == 4
    closing = feed([RunSucceeded(task="story", at=local(14, 2, 10), slot_id=5)])
    assert feed.texts(closing) == ["✔ story produced output again."]


def test_skip_streak_opens_once_and_closes_only_when_the_schedule_holds_again() -> None:
    feed = Feed()
    skip = SkipStreak(
        task="reindex",
        at=local(10, 7),
        count=3,
        reason="the previous run was still running",
        since=local(10, 5),
    )
    notices = feed([skip, replace(skip, count=4, at=local(10, 8))])
    assert feed.texts(notices) == [
        "⚠ reindex was skipped 3 times in a row: the previous run was still running."
    ]
    # a run that ends does not close it: the next slot may be skipped again
    assert feed([RunSucceeded(task="reindex", at=local(10, 9, 30), slot_id=9)]) == []
    assert "skip_streak" in feed.open
    closing = feed([SkipStreakEnded(task="reindex", at=local(10, 12), skipped=7)])
    assert feed.texts(closing) == ["✔ reindex runs on schedule again after 7 skipped runs."]
    assert feed.open == {}


def test_delivery_failure_retries_escalates_and_recovers() -> None:
    feed = Feed()
    first = DeliveryFailed(
        task="story",
        at=local(10, 2, 6),
        slot_id=1,
        target_redacted="tgram://…",
        error="Telegram answered 502 Bad Gateway",
        retry_at=local(10, 2, 7),
        output_path="/home/me/.agentcron/outputs/story/2026-03-10T0200.txt",
    )
    again = replace(first, at=local(10, 2, 8), attempts=2, retry_at=local(10, 2, 13))
    gave_up = replace(first, at=local(10, 2, 40), attempts=4, retry_at=None, gave_up=True)
    notices = feed([first, again, gave_up, replace(gave_up, at=local(10, 3))])
    assert feed.texts(notices) == [
        "⚠ story's output could not be delivered to tgram://…: "
        "Telegram answered 502 Bad Gateway. Retrying at 02:07.",
        "✖ story's output could not be delivered to tgram://… after 4 attempts: "
        "Telegram answered 502 Bad Gateway; it is kept at "
        "/home/me/.agentcron/outputs/story/2026-03-10T0200.txt, and `agentcron redeliver 1` "
        "sends it again.",
    ]
    assert [n.event for n in notices] == [NoticeEvent.OPENED, NoticeEvent.ESCALATED]
    # the outputs given up are its streak, not "failed runs" (the runs succeeded: the
    # dashboard and `incidents` show failed_runs as such)
    delivery = feed.open["delivery"]
    assert delivery.streak == 2 and delivery.failed_runs == 0
    # A run succeeding does not close a delivery problem; a delivery does.
    assert feed([RunSucceeded(task="story", at=local(11, 2, 5), slot_id=2)]) == []
    closing = feed(
        [
            DeliveryRecovered(
                task="story", at=local(11, 2, 6), slot_id=2, target_redacted="tgram://…"
            )
        ]
    )
    # two outputs were given up (only the first told as it happened): the end says so
    assert feed.texts(closing) == [
        "✔ story's output is being delivered to tgram://… again. 2 deliveries gave up "
        "meanwhile; the outputs are kept until `keep_outputs` removes them, and `agentcron "
        "runs story` shows which."
    ]
    assert (
        feed(
            [
                DeliveryRecovered(
                    task="story", at=local(12, 2, 6), slot_id=3, target_redacted="tgram://…"
                )
            ]
        )
        == []
    )


def test_another_targets_delivery_does_not_end_a_failing_targets_incident() -> None:
    """Two deliver targets, one down (outside-in probe): the working one's deliveries
    closed the incident after every run, and each run made a "✔ delivered" and a
    "✖ gave up". Only the failing target's delivery ends it, or that target leaving
    the task's deliver list."""
    feed = Feed()
    down = DeliveryFailed(
        task="story",
        at=local(10, 2, 6),
        slot_id=1,
        target_redacted="json://down",
        error="HTTP 503",
        gave_up=True,
    )
    fine = DeliveryRecovered(
        task="story",
        at=local(10, 2, 6),
        slot_id=1,
        target_redacted="json://up",
        targets=("json://down", "json://up"),
    )
    told = feed([down, fine, replace(down, slot_id=2), replace(fine, slot_id=2)])
    assert [n.event for n in told] == [NoticeEvent.OPENED]  # one message, not one per run
    assert feed.open["delivery"].streak == 2
    back = feed([replace(fine, slot_id=3, target_redacted="json://down")])
    assert feed.texts(back)[0].startswith("✔ story's output is being delivered to json://down")
    feed([replace(down, slot_id=4)])
    # the failing target removed from deliver: the next delivery elsewhere ends it
    moved = feed([replace(fine, slot_id=5, targets=("json://up",))])
    assert [n.event for n in moved] == [NoticeEvent.CLOSED] and feed.open == {}


def test_delivered_after_retries_names_the_attempts() -> None:
    feed = Feed()
    feed(
        [
            DeliveryFailed(
                task="story",
                at=local(10, 2, 6),
                slot_id=1,
                target_redacted="tgram://…",
                error="connection refused",
                retry_at=local(10, 2, 7),
            )
        ]
    )
    closing = feed(
        [
            DeliveryRecovered(
                task="story",
                at=local(10, 2, 12),
                slot_id=1,
                target_redacted="tgram://…",
                attempts=3,
            )
        ]
    )
    assert feed.texts(closing) == ["✔ story's output was delivered to tgram://… after 3 attempts."]


def test_worker_lost_is_a_failure_with_a_plain_explanation() -> None:
    feed = Feed()
    lost = WorkerLost(
        task="story",
        at=local(10, 2, 20),
        slot_id=1,
        scheduled_for=local(10, 2),
        attempt=1,
        max_attempts=4,
        node="vps-1",
        retry_at=local(10, 2, 21),
    )
    notices = feed([lost])
    assert feed.texts(notices) == [
        "⚠ story failed: the worker running it stopped unexpectedly (node vps-1). "
        "Retrying at 02:21 (attempt 2 of 4)."
    ]
    assert feed.open["failure"].first_error_class is ErrorClass.WORKER_LOST


def test_success_closes_every_run_incident_with_one_notice() -> None:
    feed = Feed()
    feed(
        [
            EmptySuccessStreak(task="story", at=local(10, 1), count=3),
            rate_limited(1, 1, local(10, 2, 1), local(10, 2, 7)),
        ]
    )
    notices = feed([RunSucceeded(task="story", at=local(10, 2, 8), slot_id=1, attempts=2)])
    assert len(notices) == 1
    assert notices[0].incident.kind is IncidentKind.FAILURE
    assert render(notices[0], BERLIN).body.splitlines() == [
        "✔ story recovered after 1 retry.",
        "story produced output again.",
    ]
    assert feed.open == {}


def test_apply_event_does_not_mutate_its_input() -> None:
    feed = Feed()
    feed([rate_limited(1, 1, local(10, 2, 1), local(10, 2, 7))])
    before = dict(feed.open)
    transition = apply_event(
        before, RunSucceeded(task="story", at=local(10, 2, 8), slot_id=1), BERLIN
    )
    assert before == feed.open and before["failure"].closed_at is None
    assert transition.closed[0].closed_at == local(10, 2, 8)


def test_a_new_permanent_cause_inside_an_open_failure_is_told_once() -> None:
    """A bad key (told), then a context too long, then a quota used up: each needs
    another fix from the owner, and neither was told (outside-in probe: only the 401
    was sent, and `list` paired the quota class with the key's sentence). Two causes
    taking turns are told once each, not once per run."""
    feed = Feed()
    auth = replace(
        rate_limited(1, 1, local(10, 2, 0), None),
        error_class=ErrorClass.AUTH,
        explanation="the provider rejected the API key (HTTP 401)",
        fix="Check the API key.",
    )
    context = replace(
        auth,
        slot_id=2,
        at=local(10, 3),
        error_class=ErrorClass.BAD_REQUEST,
        explanation="the prompt is longer than the model's context (context_length_exceeded)",
        fix="shorten the prompt",
    )
    quota = replace(
        auth,
        slot_id=3,
        at=local(10, 4),
        error_class=ErrorClass.QUOTA_EXHAUSTED,
        explanation="the account has no credit left (insufficient_quota)",
        fix="add credit to the provider account",
    )
    turns = [auth, context, quota] + [
        replace(e, slot_id=4 + i, at=local(10, 5 + i)) for i, e in enumerate([auth, quota] * 3)
    ]
    notices = feed(turns)
    assert [n.event for n in notices] == [
        NoticeEvent.OPENED,
        NoticeEvent.ESCALATED,
        NoticeEvent.ESCALATED,
    ]
    assert feed.texts(notices)[1:] == [
        "✖ story failed: the prompt is longer than the model's context "
        "(context_length_exceeded). Retrying will not help — shorten the prompt.",
        "✖ story failed: the account has no credit left (insufficient_quota). "
        "Retrying will not help — add credit to the provider account.",
    ]
    incident = feed.open["failure"]
    assert incident.told == ("auth", "bad_request", "quota_exhausted")
    assert incident.failed_runs == 9
    # the summary `list` shows is the last cause told, not the first one's words
    assert incident.summary.startswith("the account has no credit left")
    # a passing failure in between is counted, not told, and does not reopen a class
    timeout = replace(rate_limited(20, 1, local(11, 2), local(11, 2, 5)))
    assert feed([timeout, replace(quota, slot_id=21, at=local(11, 3))]) == []


def test_an_incident_saved_before_classes_were_kept_tells_only_a_new_class() -> None:
    """An open failure read from a database of an earlier version has no told classes:
    its first and last count as told (not told again after an upgrade)."""
    feed = Feed()
    quota = replace(
        rate_limited(2, 1, local(10, 3), None),
        error_class=ErrorClass.QUOTA_EXHAUSTED,
        explanation="the account has no credit left (insufficient_quota)",
    )
    feed.open["failure"] = Incident(
        id=1,
        task="story",
        kind=IncidentKind.FAILURE,
        opened_at=local(10, 2),
        escalated=True,
        failed_runs=1,
        first_error_class=ErrorClass.QUOTA_EXHAUSTED,
        last_error_class=ErrorClass.QUOTA_EXHAUSTED,
        summary="the account has no credit left (insufficient_quota)",
    )
    assert feed([quota]) == []
    auth = replace(quota, slot_id=3, error_class=ErrorClass.AUTH, explanation="HTTP 401")
    assert [n.event for n in feed([auth])] == [NoticeEvent.ESCALATED]


def test_each_delivery_target_given_up_is_told_and_the_incident_ends_with_the_last() -> None:
    """One delivery incident per task: a second target given up while the first one's
    incident was open was counted, never told, and a target put in place of a failing
    one was never told failing either; `list` kept naming the old target (outside-in
    probe)."""
    feed = Feed()
    old = DeliveryFailed(
        task="story",
        at=local(10, 2, 6),
        slot_id=1,
        target_redacted="json://old",
        error="HTTP 500",
        gave_up=True,
    )
    new = replace(old, slot_id=2, at=local(10, 3), target_redacted="json://new", error="HTTP 503")
    told = feed([old, new, replace(new, slot_id=3, at=local(10, 4)), replace(old, slot_id=3)])
    assert feed.texts(told) == [
        "✖ story's output could not be delivered to json://old after 1 attempt: HTTP 500.",
        "✖ story's output could not be delivered to json://new after 1 attempt: HTTP 503.",
    ]
    incident = feed.open["delivery"]
    assert incident.told == ("json://old", "json://new")
    assert incident.summary == (
        "output could not be delivered to json://new: HTTP 503; also failing: json://old"
    )
    # one of the two back: the incident goes on, quietly, for the other
    back = DeliveryRecovered(
        task="story",
        at=local(10, 5),
        slot_id=4,
        target_redacted="json://old",
        targets=("json://old", "json://new"),
    )
    assert feed([back]) == []
    assert feed.open["delivery"].told == ("json://new",)
    assert feed.open["delivery"].summary == "output could not be delivered to json://new: HTTP 503"
    # the other one taken out of the config: the next delivery anywhere ends it, and
    # the end says why, not that a target never failing is "delivered again"
    closing = feed([replace(back, slot_id=5, at=local(10, 6), targets=("json://old",))])
    assert feed.texts(closing) == [
        "✔ story's output was delivered to json://old; json://new, which could not be "
        "delivered to, is no longer one of its targets. 4 deliveries gave up meanwhile; the "
        "outputs are kept until `keep_outputs` removes them, and `agentcron runs story` shows "
        "which."
    ]
    assert feed.open == {}


def test_a_provider_refusal_that_lasts_is_told_as_the_task_failing() -> None:
    """A model provider answering 529 run after run: the refusals were told only as the
    provider's incident ("⚠ HOST is refusing calls … 1 task waits"), the task's were not
    even counted, and `list` said `retrying` for 5 minutes of superseded slots, whatever
    escalate_after said (outside-in probe). Counted now, and told when the task's own rule
    says it lasts; a refusal the next run gets past says nothing of the task."""
    overloaded = replace(
        rate_limited(1, 1, local(10, 2), local(10, 2, 5)),
        error_class=ErrorClass.OVERLOADED,
        explanation="the model provider is overloaded (HTTP 529)",
        held=True,
        escalate_runs=4,
    )
    brief = Feed()
    assert brief([overloaded]) == []
    assert brief.open["failure"].told == ()  # opened without a word
    assert brief([RunSucceeded(task="story", at=local(10, 3), slot_id=1, attempts=2)]) == []
    assert brief.open == {} and brief.history[0].failed_runs == 1  # closed, quietly
    lasting = Feed()
    runs = [replace(overloaded, slot_id=n, at=local(10, 2 + n)) for n in range(1, 6)]
    notices = lasting(runs)
    assert lasting.texts(notices) == [
        "✖ story has failed 4 runs in a row since 02:00: the model provider is overloaded "
        "(HTTP 529). Still retrying each run."
    ]
    assert lasting.open["failure"].failed_runs == 5
    back = lasting([RunSucceeded(task="story", at=local(10, 9), slot_id=6)])
    assert lasting.texts(back) == ["✔ story is running again after 5 failed runs (down 7 hours)."]
