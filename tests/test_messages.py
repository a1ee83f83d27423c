"""Messages as the owner reads them: exact texts, local times, redacted details."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agentcron.model import ErrorClass, IncidentKind, Message
from agentcron.notify import (
    AttemptFailed,
    DeliveryFailed,
    EmptySuccessStreak,
    Event,
    Notice,
    RunStuck,
    RunSucceeded,
    apply_event,
    render,
)

BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")


def local(day: int, hour: int, minute: int = 0, zone: ZoneInfo = BERLIN) -> datetime:
    """A March 2026 wall-clock time (Berlin is UTC+1 until the 29th), as UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=zone).astimezone(UTC)


def notice_for(event: Event, zone: ZoneInfo = BERLIN) -> Notice:
    transition = apply_event({}, event, zone)
    assert transition.notice is not None
    return transition.notice


def failure(**changes: object) -> AttemptFailed:
    fields: dict[str, object] = {
        "task": "story",
        "at": local(10, 2, 1),
        "slot_id": 1,
        "scheduled_for": local(10, 2),
        "attempt": 1,
        "max_attempts": 4,
        "error_class": ErrorClass.OVERLOADED,
        "explanation": "provider overloaded",
    }
    fields.update(changes)
    return AttemptFailed(**fields)  # type: ignore[arg-type]


def test_opened_transient_message() -> None:
    event = failure(
        error_class=ErrorClass.RATE_LIMITED,
        explanation="the model provider is rate-limiting requests (HTTP 429)",
        retry_at=local(10, 2, 7),
    )
    message = render(notice_for(event), BERLIN)
    assert message == Message(
        title="⚠ story failed",
        body="⚠ story failed: the model provider is rate-limiting requests (HTTP 429). "
        "Retrying at 02:07 (attempt 2 of 4).",
        task="story",
        event="opened",
        incident_kind="failure",
        severity="warning",
    )


def test_a_next_fire_already_due_is_said_to_run_now_not_at_a_past_time() -> None:
    """After a restart the catch-up fire is due before the failure is told: "The next
    scheduled run, at 15:00:50, tries again" came three seconds after 15:00:50
    (outside-in probe)."""
    due = failure(at=local(10, 2, 1), retry_at=local(10, 2, 7), next_run=local(10, 2, 0))
    assert render(notice_for(due), BERLIN).body == (
        "⚠ story failed: provider overloaded. The next scheduled run, due since 02:00, tries "
        "again now."
    )
    gave_up = failure(attempt=4, gave_up=True, next_run=local(10, 2, 0))
    assert render(notice_for(gave_up), BERLIN).body == (
        "✖ story gave up after 4 attempts: provider overloaded. Next scheduled run: now "
        "(due 02:00)."
    )


def test_a_retry_the_next_fire_comes_before_is_not_promised() -> None:
    """The next fire supersedes a retry still waiting: "Retrying at 02:07" for a task
    that fires every 5 minutes at 02:05 was a promise never kept (outside-in probe)."""
    later = failure(retry_at=local(10, 2, 7), next_run=local(10, 2, 5))
    assert render(notice_for(later), BERLIN).body == (
        "⚠ story failed: provider overloaded. The next scheduled run, at 02:05, tries again."
    )
    sooner = failure(retry_at=local(10, 2, 3), next_run=local(10, 2, 5))
    assert render(notice_for(sooner), BERLIN).body.endswith("Retrying at 02:03 (attempt 2 of 4).")


def test_times_name_their_zone_when_it_is_not_the_owners() -> None:
    """A Tokyo task's "Retrying at 10:07" beside a Berlin task's "since 02:00" in the
    same minute read as one clock (outside-in probe): a task of another zone than the
    config's names it after each time; one of the config's zone does not."""
    event = failure(retry_at=local(10, 2, 7), next_run=local(11, 2))
    tokyo = render(notice_for(event, TOKYO), TOKYO, owner_zone=BERLIN)
    assert (
        tokyo.body == "⚠ story failed: provider overloaded. Retrying at 10:07 JST (attempt 2 of 4)."
    )
    berlin = render(notice_for(event), BERLIN, owner_zone=BERLIN)
    assert berlin.body.endswith("Retrying at 02:07 (attempt 2 of 4).")
    # and the zone is named only in that message (a context, not a global)
    assert render(notice_for(event), BERLIN).body == berlin.body
    # IST is also Dublin's summer and Jerusalem's: a shared abbreviation is not a name
    # (an outside-in probe read "stops it at 03:15:01 IST" beside tables that said
    # "Asia/Kolkata")
    kolkata = ZoneInfo("Asia/Kolkata")
    india = render(notice_for(event, kolkata), kolkata, owner_zone=BERLIN)
    assert india.body.endswith("Retrying at 06:37 Asia/Kolkata (attempt 2 of 4)."), india.body


def test_the_missed_report_names_the_zone_of_its_span() -> None:
    from agentcron.notify.messages import render_missed

    rows = [("story", 3, 0, local(10, 2), local(10, 4), "the daemon was not running")]
    body = render_missed(rows, local(10, 5), BERLIN).body
    assert body.startswith("⚠ 3 runs of 1 task did not run (due between 02:00 and 04:00 CET):")


def test_a_missed_span_over_days_or_years_says_where_it_ends() -> None:
    """ "due between Sat 5 Dec 16:21 and 16:20 UTC" read as a span of minus a minute (it
    ended two days later, today), and "Sat 5 Dec 17:30 and 00:30" hid a New Year
    (outside-in probe, the clock stepped forward)."""
    from agentcron.notify.messages import render_missed

    rows = [("tick", 3000, 0, local(5, 16, 21), local(7, 16, 20), "the clock jumped")]
    body = render_missed(rows, local(7, 16, 30), BERLIN).body
    assert "(due between Thu 5 Mar 16:21 and today 16:20 CET)" in body, body
    eve = datetime(2026, 12, 31, 16, 30, tzinfo=UTC)
    rows = [("tick", 420, 0, eve, eve + timedelta(hours=7), "the clock jumped")]
    body = render_missed(rows, eve + timedelta(hours=7, minutes=5), BERLIN).body
    assert "(due between yesterday 17:30 and today 00:30 CET)" in body, body
    far = render_missed(rows, eve + timedelta(days=3), BERLIN).body
    assert "(due between Thu 31 Dec 2026 17:30 and Fri 1 Jan 00:30 CET)" in far, far


def test_the_times_of_one_message_show_seconds_alike() -> None:
    """Seconds are shown only when they matter, but for every time of a message if for
    one: "due between 10:51 and 10:51:10" read as two kinds of time (outside-in probe)."""
    from agentcron.notify.messages import render_missed

    ten = timedelta(seconds=10)
    rows = [("beat", 2, 0, local(10, 10, 51), local(10, 10, 51) + ten, "stopped")]
    body = render_missed(rows, local(10, 11), BERLIN).body
    assert body.startswith("⚠ 2 runs of 1 task did not run (due between 10:51:00 and 10:51:10 CET)")
    event = failure(retry_at=local(10, 2, 30) + ten)  # the failure itself on the minute
    assert render(notice_for(event), BERLIN).body.endswith("Retrying at 02:30:10 (attempt 2 of 4).")
    rows = [("beat", 2, 0, local(10, 10, 51), local(10, 10, 52), "stopped")]
    body = render_missed(rows, local(10, 11), BERLIN).body
    assert body.startswith("⚠ 2 runs of 1 task did not run (due between 10:51 and 10:52 CET)")


def test_gave_up_message_names_the_next_run() -> None:
    event = failure(attempt=4, gave_up=True, next_run=local(11, 2))
    message = render(notice_for(event), BERLIN)
    assert message.body == (
        "✖ story gave up after 4 attempts: provider overloaded. Next scheduled run: tomorrow 02:00."
    )
    assert (message.title, message.severity) == ("✖ story gave up", "failure")


@pytest.mark.parametrize(
    ("retry_at", "expected"),
    [
        (local(10, 23, 59), "Retrying at 23:59 (attempt 2 of 4)."),
        (local(11, 0, 30), "Retrying tomorrow at 00:30 (attempt 2 of 4)."),
        (local(16, 2), "Retrying on Mon 16 Mar at 02:00 (attempt 2 of 4)."),
    ],
)
def test_retry_times_are_said_relative_to_today_in_the_task_zone(
    retry_at: datetime, expected: str
) -> None:
    message = render(notice_for(failure(retry_at=retry_at)), BERLIN)
    assert message.body.endswith(expected)


def test_times_are_shown_in_the_tasks_zone_not_utc() -> None:
    event = failure(at=local(10, 2, 1, TOKYO), retry_at=local(10, 2, 7, TOKYO))
    assert render(notice_for(event, TOKYO), TOKYO).body.endswith(
        "Retrying at 02:07 (attempt 2 of 4)."
    )


def test_permanent_failure_without_a_known_fix_still_says_retrying_will_not_help() -> None:
    event = failure(error_class=ErrorClass.CODE_ERROR, explanation="the script has a bug")
    assert render(notice_for(event), BERLIN).body == (
        "✖ story failed: the script has a bug. Retrying will not help."
    )


def test_details_are_the_last_twenty_lines_below_the_summary() -> None:
    output = "\n".join(f"line {n}" for n in range(1, 31)) + "\n\n"
    event = failure(retry_at=local(10, 2, 7), details=output + "x" * 500)
    body = render(notice_for(event), BERLIN).body.splitlines()
    assert body[1:3] == ["", "Last lines of output:"]
    assert body[3:] == [f"line {n}" for n in range(12, 31)] + ["x" * 299 + "…"]


def test_secrets_never_reach_the_text() -> None:
    event = failure(
        error_class=ErrorClass.AUTH,
        explanation="Incorrect API key provided: sk-proj-abcdefghijklmnop1234567890",
        details="export PROVIDER_KEY=hunter2-but-longer\ncurl: token=abcdef0123456789abcdef",
        env_hint="PROVIDER_KEY",
    )
    message = render(notice_for(event), BERLIN, secrets=["hunter2-but-longer"])
    assert message.body.splitlines() == [
        "✖ story failed: Incorrect API key provided: [REDACTED]. "
        "Retrying will not help — check PROVIDER_KEY.",
        "",
        "Last lines of output:",
        "export PROVIDER_KEY=[REDACTED]",
        "curl: token=[REDACTED]",
    ]


def test_stuck_and_closed_messages() -> None:
    stuck = RunStuck(
        task="story",
        at=local(10, 2, 31),
        slot_id=1,
        running_for=timedelta(minutes=31),
        limit=timedelta(minutes=30),
    )
    opened = notice_for(stuck)
    message = render(opened, BERLIN)
    assert (message.title, message.severity, message.incident_kind) == (
        "⏳ story is taking long",
        "warning",
        "stuck",
    )
    transition = apply_event(
        {IncidentKind.STUCK: opened.incident},
        RunSucceeded(task="story", at=local(10, 3, 2), slot_id=1),
        BERLIN,
    )
    assert transition.notice is not None
    closed = render(transition.notice, BERLIN)
    assert (closed.title, closed.body, closed.event, closed.severity) == (
        "✔ story finished",
        "✔ story finished after running for 1 hour 2 min.",
        "closed",
        "recovery",
    )


def test_delivery_gave_up_on_first_try_points_to_the_kept_output() -> None:
    event = DeliveryFailed(
        task="story",
        at=local(10, 2, 5),
        slot_id=1,
        target_redacted="json://127.0.0.1:9/hook",
        error="connection refused",
        gave_up=True,
        output_path="/srv/agentcron/outputs/story/1.txt",
    )
    message = render(notice_for(event), BERLIN)
    assert message.body == (
        "✖ story's output could not be delivered to json://127.0.0.1:9/hook after 1 attempt: "
        "connection refused; "
        "it is kept at /srv/agentcron/outputs/story/1.txt, and `agentcron redeliver 1` sends "
        "it again."
    )
    assert message.severity == "failure"


def test_a_given_up_deliverys_output_is_said_kept_until_keep_outputs_removes_it() -> None:
    """ "it is kept at PATH" was said of files `keep_outputs` removed a minute later, and
    `agentcron redeliver` then found nothing (outside-in probe)."""
    event = DeliveryFailed(
        task="story",
        at=local(10, 2, 5),
        slot_id=7,
        target_redacted="json://127.0.0.1:9/hook",
        error="connection refused",
        gave_up=True,
        output_path="/srv/agentcron/outputs/story/7.txt",
        kept_until=local(12, 2, 0),
    )
    assert render(notice_for(event), BERLIN).body.endswith(
        "it is kept at /srv/agentcron/outputs/story/7.txt until Thu 12 Mar 02:00 "
        "(`keep_outputs`), and `agentcron redeliver 7` sends it again."
    )
    late = replace(event, kept_until=local(10, 1, 0))  # already past (an old one redelivered)
    assert render(notice_for(late), BERLIN).body.endswith(
        "it is kept at /srv/agentcron/outputs/story/7.txt until the next pruning (it is past "
        "its `keep_outputs`): `agentcron redeliver 7` now sends it again."
    )


def test_message_round_trips_through_its_stored_form() -> None:
    message = render(notice_for(failure(retry_at=local(10, 2, 7))), BERLIN)
    assert Message.from_dict(message.to_dict()) == message
    assert Message.from_dict({"title": "t", "body": "b", "severity": "bogus"}).severity == "info"


def test_a_run_the_stop_interrupted_is_retried_when_agentcron_starts_again() -> None:
    """Not "Retrying at 08:28:31" (its record's due time), which the stopping daemon
    will not be there to keep."""
    from agentcron.model.failure import DAEMON_STOPPED

    event = failure(
        error_class=ErrorClass.WORKER_LOST,
        explanation=DAEMON_STOPPED,
        retry_at=local(10, 2, 1),
    )
    assert render(notice_for(event), BERLIN).body == (
        "⚠ story failed: the daemon stopped while the run was in progress. "
        "Retrying when agentcron starts again (attempt 2 of 4)."
    )


def test_a_run_the_stop_interrupted_while_another_node_runs_is_retried_there() -> None:
    """Several nodes on PostgreSQL: the run is taken up by another node at once; "when
    agentcron starts again" was told while it did (outside-in probe)."""
    from agentcron.model.failure import DAEMON_STOPPED

    event = failure(
        error_class=ErrorClass.WORKER_LOST,
        explanation=DAEMON_STOPPED,
        retry_at=local(10, 2, 1),
        elsewhere=True,
    )
    assert render(notice_for(event), BERLIN).body == (
        "⚠ story failed: the daemon stopped while the run was in progress. "
        "Retrying on another running node (attempt 2 of 4)."
    )


@pytest.mark.parametrize(
    ("tasks", "verb"), [(["story"], "1 task waits"), (["a", "b"], "2 tasks wait")]
)
def test_a_provider_refusing_calls_says_what_the_wait_costs(tasks: list[str], verb: str) -> None:
    """Outside-in probe: "1 task wait until", and "without spending their retries" read
    as if no retry were spent at all (each call after the cooldown is an attempt)."""
    from agentcron.model import Incident
    from agentcron.model.provider import ProviderState
    from agentcron.notify.messages import render_provider

    now = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    state = ProviderState("api.x", "api.x", now + timedelta(minutes=2), "HTTP 429", now)
    incident = Incident(task="provider:api.x", kind=IncidentKind.PROVIDER, opened_at=now)
    body = render_provider(state, incident, tasks, now, ZoneInfo("UTC"), answered=False).body
    assert f"{verb} until 10:02" in body, body
    assert "the wait spends none of their retries." in body, body


def test_a_long_run_and_empty_runs_say_what_happens_next() -> None:
    """Outside-in probe: "⏳ slow has been running for 3s, longer than its 3s limit for a
    warning." did not say the run goes on, nor what ends it; "produced nothing" gave no
    way out for a task that is meant to print nothing."""
    stuck = RunStuck(
        task="story",
        at=local(10, 2, 31),
        slot_id=1,
        running_for=timedelta(minutes=31),
        limit=timedelta(minutes=30),
        timeout=timedelta(hours=2),
    )
    assert render(notice_for(stuck), BERLIN).body.splitlines() == [
        "⏳ story has been running for 31 min, longer than its 30 min limit for a warning.",
        "It is left running; its timeout (2 hours) stops it at 04:00 if it has not ended by then.",
    ]
    endless = replace(stuck, timeout=None)
    assert render(notice_for(endless), BERLIN).body.splitlines()[1] == (
        "It is left running (it has no timeout)."
    )
    empty = EmptySuccessStreak(task="story", at=local(10, 2, 31), count=3)
    assert render(notice_for(empty), BERLIN).body.splitlines() == [
        "⚠ story succeeded 3 times in a row without producing anything.",
        "If that is what it should do, set `expect_output: false` on it.",
    ]


def test_the_deliveries_given_up_are_counted_as_deliveries() -> None:
    """ "1 output could not be delivered meanwhile; they are kept", and "10 outputs" of
    8 outputs given up at two targets (outside-in probes): the count is of deliveries."""
    from agentcron.model import Incident, IncidentKind
    from agentcron.notify import DeliveryRecovered

    incident = Incident(
        task="story",
        kind=IncidentKind.DELIVERY,
        opened_at=local(10, 2),
        escalated=True,
        streak=1,
        summary="output could not be delivered to json://h: HTTP 500",
        slot_id=1,
        told=("json://h",),
    )
    back = DeliveryRecovered(task="story", at=local(10, 3), slot_id=2, target_redacted="json://h")
    closed = apply_event({"delivery": incident}, back, BERLIN).notice
    assert closed is not None
    assert (
        "1 delivery gave up meanwhile; the outputs are kept until `keep_outputs` removes them"
        in (render(closed, BERLIN).body)
    )


def test_a_give_up_at_a_stop_says_the_next_run_waits_for_a_start() -> None:
    """ "✖ longrun gave up after 1 attempt: the daemon stopped while the run was in
    progress. Next scheduled run: 11:24": the daemon was stopping, so nothing ran at
    11:24 (outside-in probe). A give-up says the next run comes if agentcron runs then,
    unless another node runs the task ("when agentcron starts again" was then said of a
    yearly task, whose restart a minute later ran nothing: a later probe)."""
    from agentcron.model.failure import DAEMON_STOPPED

    ev = failure(gave_up=True, explanation=DAEMON_STOPPED, retry_at=None, next_run=local(10, 3))
    body = render(notice_for(ev), BERLIN).body
    assert body.endswith("Its next run: 03:00, if agentcron runs then."), body
    yearly = replace(ev, next_run=datetime(2027, 1, 1, tzinfo=UTC))
    said = render(notice_for(yearly), BERLIN).body
    assert said.endswith("Its next run: Fri 1 Jan 2027 01:00, if agentcron runs then."), said
    elsewhere = render(notice_for(replace(ev, elsewhere=True)), BERLIN).body
    assert elsewhere.endswith("Next scheduled run: 03:00."), elsewhere
