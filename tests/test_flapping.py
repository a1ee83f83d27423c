"""A task that keeps failing and recovering is told once, not at each turn.

In-process with the fake clock, wired as the daemon wires them (engine -> notifier ->
outbox -> a recording channel). Before, a task that failed every other hour sent a
"failed" and a "recovered" message for each flake, all day long.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.model import Health, IncidentKind
from agentcron.store.base import Store
from test_told_once import Rig as Wired


class Rig(Wired):
    """The daemon's wiring (test_told_once.Rig), an hour at a time."""

    def __init__(self, store: Store, clock: FakeClock, home: Path) -> None:
        super().__init__(store, clock, home)
        self.told = 0

    def scripted(self, plan: str, **spec: Any) -> None:
        """``flaky``, hourly, whose n-th run follows the n-th letter of ``plan`` (f:
        fails with a 503, x: is refused with a 401, o: succeeds; the last letter
        repeats)."""
        calls = [0]

        def run() -> str:
            step = plan[min(calls[0], len(plan) - 1)]
            calls[0] += 1
            if step == "f":
                raise RuntimeError("upstream answered HTTP 503 Service Unavailable")
            if step == "x":
                raise RuntimeError("HTTP 401 Unauthorized: invalid API key")
            return "fine"

        spec.setdefault("retries", 0)
        self.h.add("flaky", run, cron="0 * * * *", timezone="UTC", **spec)

    def hours(self, n: int) -> list[str]:
        """Run ``n`` more hours; the first lines of the messages told meanwhile."""

        async def scenario() -> list[str]:
            await self.h.run_until(self.clock.now() + timedelta(hours=n), timedelta(minutes=30))
            await self.sender.drain_once()
            new = self.channel.sent[self.told :]
            self.told = len(self.channel.sent)
            return [m.body.splitlines()[0] for m in new]

        return asyncio.run(scenario())

    def health(self) -> tuple[str, str | None]:
        task = self.h.service.show_task("flaky")
        return task["health"], task.get("health_detail")


@pytest.fixture
def rig(sqlite_store: Store, clock: FakeClock, home: Path) -> Rig:
    return Rig(sqlite_store, clock, home)


def _starts(lines: list[str], *heads: str) -> bool:
    return len(lines) == len(heads) and all(
        line.startswith(head) for line, head in zip(lines, heads, strict=True)
    )


def test_the_third_failure_in_a_day_says_it_flaps_and_the_turns_after_it_are_not_told(
    rig: Rig,
) -> None:
    rig.scripted("fofofofofoooo")
    first = rig.hours(4)  # f o f o: each turn told, as before
    assert _starts(
        first, "✖ flaky gave up", "✔ flaky is running again", "✖ flaky gave up", "✔ flaky is"
    ), first
    third = rig.hours(1)
    assert len(third) == 1, third
    assert third[0].startswith("⚠ flaky keeps failing and recovering: 3 failures since 01:00"), (
        third
    )
    assert "latest: gave up after 1 attempt: " in third[0]
    assert "you are told if it fails two runs in a row" in third[0]
    assert rig.health()[0] == Health.FAILING.value  # the run that just failed comes first
    assert rig.hours(1) == []
    health, detail = rig.health()
    assert health == Health.FLAPPING.value, (health, detail)
    assert detail is not None and detail.startswith("failed 3 times, with recoveries between")
    assert rig.hours(5) == []  # f o f o o: counted, not told
    (flapping,) = [i for i in rig.store.incidents("flaky") if i.kind is IncidentKind.FLAPPING]
    assert flapping.is_open and flapping.count == 5
    assert "failed 5 times, with recoveries between" in flapping.summary
    failures = [
        i for i in rig.store.incidents("flaky", limit=100) if i.kind is IncidentKind.FAILURE
    ]
    assert len(failures) == 5 and not any(i.is_open for i in failures)  # each recorded


def test_a_day_without_failing_ends_it_told_once(rig: Rig) -> None:
    rig.scripted("fofofoooo")
    rig.hours(6)
    quiet = rig.hours(17)  # the last failure opened at 05:00: a day later is 05:00 next day
    assert quiet == [], quiet
    steady = rig.hours(8)
    assert len(steady) == 1, steady
    assert steady[0].startswith(
        "✔ flaky has run a day without failing: it failed 3 times, with recoveries between, over"
    ), steady
    rig.h.ticking()
    assert rig.health()[0] == Health.OK.value
    assert rig.hours(24) == []  # not reminded, and nothing more to say


def test_two_runs_in_a_row_failing_while_it_flaps_are_told_and_so_is_the_recovery(
    rig: Rig,
) -> None:
    rig.scripted("fofoffffo")
    rig.hours(5)  # f o f o f: flapping told at the third failure
    down = rig.hours(1)
    assert len(down) == 1 and down[0].startswith(
        "✖ flaky has failed 2 runs in a row since 05:00: "
    ), down
    assert rig.hours(2) == []  # still down: counted in the incident told
    back = rig.hours(2)
    assert len(back) == 1 and back[0].startswith("✔ flaky is running again after 4 failed runs")


def test_flakes_retried_to_success_flap_too_and_their_recoveries_go_quiet(rig: Rig) -> None:
    """With retries, each flake is "failed, retrying" then "recovered after 1 retry"."""
    rig.scripted("fofofofoo", retries=1, retry_backoff={"base": "10m", "jitter": 0})
    lines = rig.hours(6)
    heads = [line.split(":")[0] for line in lines]
    assert heads[:4] == [
        "⚠ flaky failed",
        "✔ flaky recovered after 1 retry.",
        "⚠ flaky failed",
        "✔ flaky recovered after 1 retry.",
    ], lines
    assert lines[4].startswith("⚠ flaky keeps failing and recovering: 3 failures"), lines
    assert len(lines) == 5, lines


def test_a_task_refused_then_fine_run_after_run_flaps_too(rig: Rig) -> None:
    """Outside-in probe: 401, success, 401, success… sent 55 messages in 5 minutes and
    `list` said ok: a failure of a class retrying will not help is a turn too when the
    next run succeeds. Refused two runs in a row, it is told, with the advice."""
    rig.scripted("xoxoxoxoxxo")
    lines = rig.hours(5)
    assert [line.split(":")[0] for line in lines] == [
        "✖ flaky failed",
        "✔ flaky is running again after 1 failed run (down 1 hour).",
        "✖ flaky failed",
        "✔ flaky is running again after 1 failed run (down 1 hour).",
        "⚠ flaky keeps failing and recovering",
    ], lines
    assert rig.hours(4) == []  # o x o x: counted, not told
    down = rig.hours(1)
    assert len(down) == 1 and down[0].startswith("✖ flaky has failed 2 runs in a row since "), down
    assert "Retrying will not help" in down[0]
    assert rig.hours(1)[0].startswith("✔ flaky is running again after 2 failed runs")


def test_runs_the_daemons_own_stops_interrupted_do_not_make_a_task_flap(rig: Rig) -> None:
    """Three restarts of the daemon within a day, each during a run: each stop is told
    ("… the daemon stopped while the run was in progress"), and the run after it is
    fine; the task is not told as "keeps failing and recovering" nor shown flapping
    (outside-in probe: the operator's restarts were counted as the task's turns)."""
    from agentcron.model import ErrorClass
    from agentcron.model.failure import DAEMON_STOPPED
    from agentcron.notify.events import AttemptFailed, RunSucceeded

    rig.scripted("o")
    spec = rig.h.service.store.get_task("flaky").spec  # type: ignore[union-attr]
    told: list[str] = []
    for n in range(4):
        at = rig.clock.now()
        rig.notifier.emit(
            spec,
            AttemptFailed(
                task="flaky",
                at=at,
                slot_id=100 + n,
                scheduled_for=at,
                attempt=1,
                max_attempts=4,
                error_class=ErrorClass.WORKER_LOST,
                explanation=DAEMON_STOPPED,
                retry_at=at,
            ),
        )
        rig.clock.advance(timedelta(minutes=5))
        rig.notifier.emit(spec, RunSucceeded(task="flaky", at=rig.clock.now(), slot_id=100 + n))
        rig.clock.advance(timedelta(hours=2))
        told += rig.hours(0)
    assert not any("keeps failing and recovering" in line for line in told), told
    assert sum("the daemon stopped while the run was in progress" in line for line in told) == 4
    assert not [i for i in rig.store.incidents("flaky") if i.kind is IncidentKind.FLAPPING]


def test_the_end_of_a_failure_nothing_was_told_of_is_not_told_while_it_flaps(rig: Rig) -> None:
    """While the task flaps, a run failed and its retry was superseded by the next run
    (the ticks had waited for a locked database), which failed once and was retried to
    success: two failed runs, neither told, and then "✔ flaky is running again after 1
    failed run" out of nowhere (outside-in probe, PostgreSQL)."""
    rig.scripted("fofofooffo", retries=2, retry_backoff={"base": "20m", "jitter": 0})
    lines = rig.hours(4)
    assert lines[-1].startswith("⚠ flaky keeps failing and recovering: 3 failures"), lines
    assert rig.hours(1) == []  # 05:00 failed, its retry waits: a turn, not told

    async def locked_then_ticking() -> None:
        assert rig.h.slots("flaky")[-1].status.value == "retrying"
        rig.clock.advance(timedelta(hours=1))  # no tick: the database was locked
        await rig.h.tick()  # 06:00 supersedes the waiting retry, and fails once
        await rig.h.run_until(rig.clock.now() + timedelta(minutes=30), timedelta(minutes=10))

    asyncio.run(locked_then_ticking())
    statuses = [s.status.value for s in rig.h.slots("flaky")][-2:]
    assert statuses == ["superseded", "succeeded"], statuses
    failures = rig.store.incidents("flaky", limit=100)
    [failure] = [i for i in failures if i.kind is IncidentKind.FAILURE and i.failed_runs == 2]
    assert not failure.is_open
    assert rig.hours(1) == []  # counted in the flapping incident, not told
