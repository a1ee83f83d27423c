"""The health word and sentence of a task (agentcron.health, pure) where an outside-in
probe saw `list` say what was not so: `retrying` while no retry waited, and "attempt
2/1" after the task's retries were lowered during a retry wait."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from agentcron.health import task_health
from agentcron.model import ErrorClass, Health, Slot, SlotStatus, TaskSpec
from agentcron.model.incident import Incident, IncidentKind
from harness import Harness, until

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
    assert sentence == "retrying (attempt 2/4 at 12:01:00 UTC): server_error"


def test_the_times_of_a_health_sentence_name_their_zone() -> None:
    """`list` said "retrying (attempt 3/3 at 05:46:22)" for a Tokyo task beside tables
    that name every time's zone (outside-in probe); a shared abbreviation (IST) is
    replaced by the zone's name, as the tables do."""
    for zone, said in (("Asia/Tokyo", "21:01:00 JST"), ("Asia/Kolkata", "17:31:00 Asia/Kolkata")):
        _, sentence = task_health(
            task(retries=3), [retrying(1)], None, NOW, timedelta(hours=1), ZoneInfo(zone), []
        )
        assert sentence == f"retrying (attempt 2/4 at {said}): server_error", sentence


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
    assert sentence == "retrying (the next run, at 12:00:30 UTC, tries again): server_error"


def test_a_running_retry_is_judged_by_its_own_attempts_start() -> None:
    """The service passes a running retry with its current attempt's start. Begun a
    minute ago after 40 minutes of backoff it is not stuck; begun 41 minutes ago (a
    retry that hangs) it is, whatever failure is open (outside-in probe: a hung retry
    read `retrying` for minutes, with no retry waiting)."""
    running = replace(
        retrying(1), status=SlotStatus.RUNNING, attempts=2, started_at=NOW - timedelta(minutes=1)
    )
    word, _ = health(task(retries=3), [running], [failure()])
    assert word is Health.RETRYING
    hung = replace(running, started_at=NOW - timedelta(minutes=41))
    word, sentence = health(task(retries=3), [hung], [failure()])
    assert (word, sentence) == (Health.STUCK, "running for 41 min")


def test_the_service_reads_a_running_retrys_start_from_its_attempt(
    sqlite_store, clock, home: Path
) -> None:
    """Over the store: the first attempt fails, the retry hangs. A minute into it the
    task is not stuck; past stuck_after it is (before, never, until the retry ended)."""
    release = threading.Event()

    def flaky() -> str:
        if not flaky.failed:  # type: ignore[attr-defined]
            flaky.failed = True  # type: ignore[attr-defined]
            raise ConnectionError("the service reset the connection")
        release.wait(30)
        return "done"

    flaky.failed = False  # type: ignore[attr-defined]

    async def scenario() -> list[tuple[str, str | None]]:
        h = Harness(sqlite_store, clock, home)
        h.add(
            "flaky",
            flaky,
            every="1h",
            retries=2,
            retry_backoff={"base": "1m", "jitter": 0},
            stuck_after="30m",
        )
        clock.advance(timedelta(hours=1))
        await h.tick()
        clock.advance(timedelta(minutes=2))
        await h.tick(settle=False)  # the retry starts and hangs
        await until(lambda: h.engine.running == 1)
        seen = []
        for wait in (timedelta(minutes=1), timedelta(minutes=31)):
            clock.advance(wait)
            h.ticking()
            view = h.service.show_task("flaky")
            seen.append((view["health"], view["health_detail"]))
        release.set()
        await h.engine.wait_idle(30)
        return seen

    seen = asyncio.run(scenario())
    # no notifier runs here, so no failure incident says `retrying`: not stuck is the point
    assert seen[0][0] == "ok", seen
    assert seen[1] == ("stuck", "running for 32 min"), seen


def test_a_failing_tasks_word_pairs_the_class_with_the_sentence_told() -> None:
    """The class of the last failure counted beside the sentence of the last one told
    read "failing: auth: gave up after 2 attempts: … TimeoutError" (outside-in probe)."""
    told = replace(
        failure(),
        escalated=True,
        last_error_class=ErrorClass.AUTH,  # counted since, not told (told before)
        summary="gave up after 2 attempts: TimeoutError",
        told=("auth", "timeout"),
    )
    word, sentence = health(task(retries=1), [], [told])
    assert (word, sentence) == (
        Health.FAILING,
        "failing: timeout: gave up after 2 attempts: TimeoutError",
    )


def test_a_last_slot_superseded_while_its_retry_waited_is_failing_not_ok() -> None:
    """Runs failing on a full disk were retried, then superseded by the next fire, and
    `list` said `ok` for the task while no incident was open yet (outside-in probe): a
    slot superseded while it waited for its retry counts as a failed run (README)."""
    superseded = replace(
        retrying(1),
        status=SlotStatus.SUPERSEDED,
        error_class=ErrorClass.WORKER_LOST,
        next_attempt_at=None,
        reason="a newer run of the task was due",
    )
    word, sentence = task_health(
        task(retries=3), [], superseded, NOW, timedelta(hours=1), ZoneInfo("UTC"), []
    )
    assert (word, sentence) == (Health.FAILING, "failing: worker_lost")
    waited = replace(superseded, attempts=0, error_class=None)  # never ran: starved
    word, _ = task_health(task(retries=3), [], waited, NOW, timedelta(hours=1), ZoneInfo("UTC"), [])
    assert word is Health.OK
