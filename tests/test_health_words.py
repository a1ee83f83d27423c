"""The health word and sentence of a task (agentcron.health, pure) where an outside-in
probe saw `list` say what was not so: `retrying` while no retry waited, and "attempt
2/1" after the task's retries were lowered during a retry wait."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from agentcron.health import task_health
from agentcron.model import ErrorClass, Health, Slot, SlotStatus, TaskSpec
from agentcron.model.incident import Incident, IncidentKind

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@dataclass
class Task:
    spec: TaskSpec
    paused: bool = False
    next_fire_at: datetime | None = NOW + timedelta(minutes=30)

    @property
    def name(self) -> str:
        return self.spec.name


def task(retries: int) -> Task:
    return Task(TaskSpec(name="t", every=timedelta(hours=1), command=["true"], retries=retries))


def failure() -> Incident:
    return Incident(
        task="t",
        kind=IncidentKind.FAILURE,
        opened_at=NOW - timedelta(minutes=5),
        failed_runs=1,
        last_error_class=ErrorClass.SERVER_ERROR,
        summary="the service answered HTTP 503",
    )


def retrying(attempts: int) -> Slot:
    return Slot(
        id=1,
        task="t",
        scheduled_for=NOW - timedelta(minutes=5),
        status=SlotStatus.RETRYING,
        attempts=attempts,
        error_class=ErrorClass.SERVER_ERROR,
        next_attempt_at=NOW + timedelta(minutes=1),
        created_at=NOW - timedelta(minutes=5),
    )


def health(rec: Task, active: list[Slot], incidents: list[Incident]) -> tuple[Health, str | None]:
    return task_health(rec, active, None, NOW, timedelta(hours=1), ZoneInfo("UTC"), incidents)


def test_an_open_failure_with_a_retry_waiting_is_retrying() -> None:
    word, sentence = health(task(retries=3), [retrying(1)], [failure()])
    assert word is Health.RETRYING
    assert sentence == "retrying (attempt 2/4 at 12:01:00): server_error"


def test_an_open_failure_with_no_retry_waiting_is_failing_not_retrying() -> None:
    """The retry was cancelled by a pause, or superseded by the next fire."""
    word, sentence = health(task(retries=3), [], [failure()])
    assert word is Health.FAILING
    assert sentence == "failing: server_error: the service answered HTTP 503"


def test_retries_lowered_during_a_retry_wait_never_read_attempt_2_of_1() -> None:
    word, sentence = health(task(retries=0), [retrying(1)], [failure()])
    assert word is Health.RETRYING
    assert sentence is not None and "attempt 2/2" in sentence, sentence


def test_a_retry_under_way_is_retrying_not_failing() -> None:
    """Its slot is running, not retrying, while the retry runs (found by review: the
    list flipped to `failing` and back on every retry attempt)."""
    running = replace(retrying(1), status=SlotStatus.RUNNING, attempts=2, started_at=NOW)
    word, sentence = health(task(retries=3), [running], [failure()])
    assert word is Health.RETRYING
    assert sentence == "the service answered HTTP 503"


def test_a_retry_the_next_fire_comes_before_is_not_promised() -> None:
    """The message said "The next scheduled run, at 12:00:30, tries again", while
    `list` promised "attempt 2/4 at 12:01:00", which never ran: the fire superseded it
    (outside-in probe)."""
    rec = task(retries=3)
    rec.next_fire_at = NOW + timedelta(seconds=30)
    word, sentence = health(rec, [retrying(1)], [failure()])
    assert word is Health.RETRYING
    assert sentence == "retrying (the next run, at 12:00:30, tries again): server_error"


def test_a_retry_under_way_after_a_long_backoff_is_not_called_stuck() -> None:
    """The slot's start is its first attempt's: the second attempt, begun a minute ago
    after 40 minutes of backoff, read as running 41 minutes, past stuck_after (30m)."""
    running = replace(
        retrying(1), status=SlotStatus.RUNNING, attempts=2, started_at=NOW - timedelta(minutes=41)
    )
    word, _ = health(task(retries=3), [running], [failure()])
    assert word is Health.RETRYING
    first = replace(running, attempts=1)
    assert health(task(retries=3), [first], [])[0] is Health.STUCK
    stuck = Incident(task="t", kind=IncidentKind.STUCK, opened_at=NOW, summary="running long")
    assert health(task(retries=3), [running], [failure(), stuck])[0] is Health.STUCK
