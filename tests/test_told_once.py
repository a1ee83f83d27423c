"""Every problem reaches the owner once, and again only as a reminder (issue 12 §1, §2).

In-process with the fake clock (milliseconds): a transient failure that outlasts the
task's period escalates once, per task and not per slot; an open incident is told again
after ``remind_after``; a skip streak is one incident for as long as the pattern lasts,
and the counts in its messages are the counts in the record.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from agentcron.clock import FakeClock
from agentcron.model import ErrorClass, IncidentKind, Message, NewSlot, SlotStatus
from agentcron.notify import OutboxSender
from agentcron.notify.notifier import Notifier
from agentcron.store.base import Store
from harness import Harness, until
from notify_rig import HOOK, RecordingChannel


class Rig:
    """Engine -> notifier -> outbox -> a recording channel, wired as the daemon wires them."""

    def __init__(self, store: Store, clock: FakeClock, home: Path) -> None:
        self.h = Harness(store, clock, home)
        self.store, self.clock = store, clock
        self.notifier = Notifier(store, clock, [HOOK], "UTC")
        self.notifier.attach(self.h.engine)
        self.channel = RecordingChannel()
        self.sender = OutboxSender(store, channel_factory=lambda _url: self.channel, clock=clock)

    async def lines(self) -> list[str]:
        await self.sender.drain_once()
        return [m.body.splitlines()[0] for m in self.channel.sent]


def _unavailable() -> Any:
    raise RuntimeError("upstream answered HTTP 503 Service Unavailable")


def _flaky(
    rig: Rig,
    func: Any,
    lasting: timedelta,
    *,
    name: str = "flaky",
    step: timedelta = timedelta(seconds=1),
    every: str = "5s",
    retries: int = 3,
    first_retry: str = "20s",
) -> list[str]:
    """``name`` (by default every 5s, 3 retries from 20s: each retry is superseded by
    the next slot) calling ``func``, ticked each ``step`` for ``lasting``: the lines
    told."""

    async def scenario() -> list[str]:
        rig.h.add(
            name,
            func,
            every=every,
            timezone="UTC",
            retries=retries,
            retry_backoff={"base": first_retry, "jitter": 0},
        )
        await rig.h.run_until(rig.clock.now() + lasting, step)
        return await rig.lines()

    return asyncio.run(scenario())


def test_a_failure_that_outlasts_the_period_escalates_once_with_counts_from_the_record(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """every 5s, first retry after 20s: each retry is superseded by the next slot. The
    owner hears the first failure, then once that the task is down (4 = retries + 1
    failed runs), then nothing more while it goes on; `list` says failing."""

    lines = _flaky(Rig(sqlite_store, clock, home), _unavailable, timedelta(minutes=3))
    assert len(lines) == 2, lines
    # the retry (00:00:25) would come after the next fire (00:00:10), which takes its place
    assert lines[0].startswith("⚠ flaky failed: "), lines
    assert lines[0].endswith("The next scheduled run, at 00:00:10, tries again."), lines
    assert lines[1].startswith("✖ flaky has failed 4 runs in a row since 00:00:05: "), lines
    assert lines[1].endswith("Still retrying each run."), lines
    [incident] = sqlite_store.incidents("flaky")
    assert incident.kind is IncidentKind.FAILURE and incident.escalated and incident.is_open
    failed = [
        s
        for s in sqlite_store.slots("flaky", limit=1000)
        if s.attempts > 0 and s.status is not SlotStatus.SUCCEEDED
    ]
    assert incident.failed_runs == len(failed) > 4
    superseded = [s for s in failed if s.status is SlotStatus.SUPERSEDED]
    assert superseded and all("waiting for a retry" in (s.reason or "") for s in superseded)


def test_list_says_failing_once_escalated_and_recovery_counts_every_failed_run(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    broken = [True]

    def sometimes() -> str:
        if broken[0]:
            raise RuntimeError("upstream answered HTTP 503 Service Unavailable")
        return "fine"

    async def scenario() -> tuple[dict[str, Any], list[str]]:
        rig = Rig(sqlite_store, clock, home)
        rig.h.add(
            "flaky",
            sometimes,
            every="5s",
            timezone="UTC",
            retry_backoff={"base": "20s", "jitter": 0},
        )
        await rig.h.run_until(clock.now() + timedelta(seconds=40), timedelta(seconds=1))
        row = next(t for t in rig.h.service.list_tasks() if t["name"] == "flaky")
        broken[0] = False
        await rig.h.run_until(clock.now() + timedelta(seconds=10), timedelta(seconds=1))
        return row, await rig.lines()

    row, lines = asyncio.run(scenario())
    assert row["health"] == "failing", row
    assert row["health_detail"].startswith("failing: server_error"), row
    failed_runs = sqlite_store.incidents("flaky")[0].failed_runs
    assert lines[-1].startswith(f"✔ flaky is running again after {failed_runs} failed runs"), lines
    assert len(lines) == 3, lines


def test_no_success_for_the_escalation_span_escalates_even_below_the_run_count(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """retries: 10 would need 11 failed runs; escalate_after: 30s comes first."""

    async def scenario() -> list[str]:
        rig = Rig(sqlite_store, clock, home)
        rig.h.add(
            "flaky",
            _unavailable,
            every="10s",
            timezone="UTC",
            retries=10,
            escalate_after="25s",
            retry_backoff={"base": "1m", "jitter": 0},
        )
        await rig.h.run_until(clock.now() + timedelta(seconds=70), timedelta(seconds=1))
        return await rig.lines()

    lines = asyncio.run(scenario())
    assert len(lines) == 2, lines
    assert lines[1].startswith("✖ flaky has failed 4 runs in a row since 00:00:10"), lines


def test_an_open_incident_is_told_again_after_remind_after_once_per_period(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        rig = Rig(sqlite_store, clock, home)
        rig.h.add(
            "daily", _unavailable, cron="0 2 * * *", timezone="UTC", retries=0, remind_after="6h"
        )
        rig.h.add(
            "quiet", _unavailable, cron="0 2 * * *", timezone="UTC", retries=0, remind_after="0s"
        )
        await rig.h.run_until(clock.now() + timedelta(hours=20), timedelta(minutes=10))
        first = await rig.lines()
        await rig.h.run_until(clock.now() + timedelta(hours=13), timedelta(minutes=10))
        return first, await rig.lines()

    first, lines = asyncio.run(scenario())
    daily = [line for line in first if "daily" in line]
    # opened at 02:00 (gave up: retries 0), reminded at 08:00, 14:00, 20:00 (±10 min ticks)
    assert daily[0].startswith("✖ daily gave up") or daily[0].startswith("✖ daily failed"), daily
    reminders = [line for line in daily if line.startswith("⏰ Reminder: daily has been failing")]
    assert len(reminders) == 3, daily
    assert "(1 failed run since 02:00, last: server_error)" in reminders[0], reminders
    # what was told when it opened is said as such: its counts were of then
    assert "last: server_error); as last told: " in reminders[0], reminders
    assert not [line for line in lines if line.startswith("⏰ Reminder: quiet")]
    # the next day's 02:00 run failed again: told once that it lasts (every run gives
    # up), between the reminders at 02:00 and 08:00, which say 1 and then 2 failed runs
    later = [line for line in lines[len(first) :] if "daily" in line]
    assert len(later) == 3, later
    assert later[0].startswith("⏰ Reminder: daily") and "(1 failed run since" in later[0]
    assert later[1].startswith("✖ daily has failed 2 runs in a row since yesterday 02:00: ")
    assert later[2].startswith("⏰ Reminder: daily") and "(2 failed runs since" in later[2]


def test_reminders_stop_when_the_incident_closes_and_for_removed_tasks(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    async def scenario() -> list[str]:
        rig = Rig(sqlite_store, clock, home)
        rig.h.add("gone", _unavailable, every="1h", timezone="UTC", retries=0, remind_after="2h")
        await rig.h.run_until(clock.now() + timedelta(hours=1), timedelta(minutes=10))
        sqlite_store.remove_task("gone", clock.now())
        await rig.h.run_until(clock.now() + timedelta(hours=6), timedelta(minutes=10))
        return await rig.lines()

    lines = asyncio.run(scenario())
    assert [line for line in lines if line.startswith("⏰")] == []
    assert all(not i.is_open for i in sqlite_store.incidents("gone"))


# ---- skip streaks: one incident per episode, counts from the slots ------------------------


class Gates:
    """Runs that end when the test says: each call of :meth:`run` waits on a gate of
    its own; :meth:`minute` ticks a minute on and may open the newest gate."""

    def __init__(self) -> None:
        self.gates: list[asyncio.Event] = []

    async def run(self) -> str:
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        return "done"

    async def minute(self, rig: Rig, *, release: bool) -> None:
        rig.clock.advance(timedelta(minutes=1))
        await rig.h.tick(settle=False)
        if rig.h.engine.running:  # let the run begin: it makes its gate
            await until(lambda: bool(self.gates) and not self.gates[-1].is_set())
        if release and self.gates and not self.gates[-1].is_set():
            self.gates[-1].set()
            await rig.h.engine.wait_idle()


def test_a_task_that_always_outlasts_its_period_is_one_skip_incident_not_a_storm(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Runs 4 periods long, every period: skip, skip, skip, run, ... One "skipped"
    message; none when each run ends; one closing message when it fits its period again,
    whose count is the number of skipped slots in the record."""
    gates = Gates()

    async def scenario() -> list[str]:
        rig = Rig(sqlite_store, clock, home)
        rig.h.add("slow", gates.run, every="1m", timezone="UTC", overlap="skip")

        async def minutes(n: int, release_every: int) -> None:
            for minute in range(1, n + 1):
                await gates.minute(rig, release=minute % release_every == 0)

        await minutes(29, release_every=4)
        assert [i.kind for i in sqlite_store.incidents("slow")] == [IncidentKind.SKIP_STREAK]
        quiet = await rig.lines()
        await minutes(5, release_every=1)  # now every run ends within its minute
        return [*quiet, "--", *(await rig.lines())[len(quiet) :]]

    lines = asyncio.run(scenario())
    cut = lines.index("--")
    assert lines[:cut] == [
        "⚠ slow was skipped 3 times in a row: the previous run was still running."
    ], lines
    skipped = [s for s in sqlite_store.slots("slow", limit=1000) if s.status is SlotStatus.SKIPPED]
    assert lines[cut + 1 :] == [f"✔ slow runs on schedule again after {len(skipped)} skipped runs."]
    assert len(skipped) > 10
    [incident] = sqlite_store.incidents("slow")
    assert not incident.is_open and incident.streak == len(skipped)


def test_a_missed_slot_before_a_run_does_not_end_a_skip_streak(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """A daemon restarted (or its database locked) during a skip streak records the
    slots it could not fire `missed`; the run after them is not "a run whose previous
    slot ran too". It was told "✔ runs on schedule again after 14 skipped runs" while the
    task went on skipping, and the streak told again as new a minute later (outside-in
    probe, twice)."""
    gates = Gates()

    async def scenario() -> list[str]:
        rig = Rig(sqlite_store, clock, home)
        rig.h.add("slow", gates.run, every="1m", timezone="UTC", overlap="skip")
        for minute in range(1, 30):
            await gates.minute(rig, release=minute % 4 == 0)
        (running,) = [s for s in sqlite_store.slots("slow", limit=5) if s.status.value == "running"]
        before = sqlite_store.slot_before("slow", running.scheduled_for)
        assert before is not None and before.status is SlotStatus.SKIPPED
        with sqlite_store._tx() as db:  # type: ignore[attr-defined]
            db.execute("UPDATE slots SET status = 'missed' WHERE id = ?", (before.id,))
        for minute in range(30, 42):
            await gates.minute(rig, release=minute % 4 == 0)
        return await rig.lines()

    lines = asyncio.run(scenario())
    assert lines == ["⚠ slow was skipped 3 times in a row: the previous run was still running."]
    streaks = [i for i in sqlite_store.incidents("slow") if i.kind is IncidentKind.SKIP_STREAK]
    assert len(streaks) == 1 and streaks[0].is_open  # one episode, still going


def test_a_run_in_progress_between_skips_breaks_the_streak(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Skipped at 02, 03 behind a long run, the 04 run started and the 05 fire skipped
    behind it: three skips, but not in a row (outside-in probe: told "skipped 4 times in
    a row", and `list` said skipping while the task ran every other period)."""
    gates = Gates()

    async def scenario() -> list[str]:
        rig = Rig(sqlite_store, clock, home)
        rig.h.add("slow", gates.run, every="1m", timezone="UTC", overlap="skip")
        for minute in range(1, 7):
            # the 01 run ends after 3 min, the 04 run after 2
            await gates.minute(rig, release=minute in (3, 5))
        return await rig.lines()

    lines = asyncio.run(scenario())
    statuses = [s.status for s in reversed(sqlite_store.slots("slow", limit=10))]
    assert statuses[:5] == [
        SlotStatus.SUCCEEDED,
        SlotStatus.SKIPPED,
        SlotStatus.SKIPPED,
        SlotStatus.SUCCEEDED,
        SlotStatus.SKIPPED,
    ], statuses
    assert not [line for line in lines if "skipped" in line], lines
    assert IncidentKind.SKIP_STREAK not in {i.kind for i in sqlite_store.incidents("slow")}


def _add_replaced(rig: Rig, command: str) -> None:
    """Task ``slow``, every minute under ``overlap: replace``: a run that outlasts its
    minute is stopped by the next fire."""
    rig.h.add(
        "slow",
        command=command,
        shell=True,
        every="1m",
        timezone="UTC",
        overlap="replace",
        kill_grace="1s",
    )


def _newest(rig: Rig) -> SlotStatus:
    return rig.h.slots("slow")[-1].status


def test_a_task_whose_runs_are_always_replaced_is_told_it_does_not_complete(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """overlap: replace with runs longer than the period: every run is stopped by the
    next fire and none completes. Before, nothing was told and `list` said ok (found by
    an outside-in probe). Now it is one streak, told once and closed when runs finish.
    (A command, not an inline function: an inline call cannot be stopped.)"""

    async def scenario() -> tuple[list[str], str, list[str]]:
        rig = Rig(sqlite_store, clock, home)

        def slow(command: str) -> None:
            _add_replaced(rig, command)

        def newest() -> SlotStatus:
            return _newest(rig)

        async def minute() -> None:
            """A fire: the run in progress is stopped; once its end is recorded, the
            next tick starts the new slot."""
            clock.advance(timedelta(minutes=1))
            await rig.h.tick(settle=False)
            await until(lambda: rig.h.engine.running == 0)
            await rig.h.tick(settle=False)
            await until(lambda: newest() is not SlotStatus.PENDING)

        slow("exec sleep 30")
        clock.advance(timedelta(minutes=1))
        await rig.h.tick(settle=False)
        await until(lambda: newest() is SlotStatus.RUNNING)
        for _ in range(4):  # every run is stopped by the next fire before it ends
            await minute()
        first = await rig.lines()
        rig.h.ticking()
        health = rig.h.service.list_tasks()[0]["health"]
        slow("echo done")  # runs that end within their minute from now on
        await minute()  # the last long one is stopped; its successor finishes
        await rig.h.engine.wait_idle()
        # told as soon as a run finished, not a period later after one more run
        at_once = (await rig.lines())[len(first) :]
        rig.h.ticking()
        health_after = rig.h.service.list_tasks()[0]["health"]
        for _ in range(2):
            await rig.h.engine.wait_idle()
            clock.advance(timedelta(minutes=1))
            await rig.h.tick()
        assert (await rig.lines())[len(first) :] == at_once  # and once
        assert health_after == "ok"
        return first, health, at_once

    first, health, after = asyncio.run(scenario())
    assert first == [
        "⚠ slow has not completed 3 runs in a row: each run was stopped by the next one "
        "before it finished (overlap: replace). Give it a longer period or a shorter run, "
        "or use overlap: skip or queue."
    ], first
    assert health == "skipping"
    stopped = [s for s in sqlite_store.slots("slow", limit=100) if s.status is SlotStatus.CANCELLED]
    assert len(stopped) >= 3
    assert after == [f"✔ slow finishes its runs again after {len(stopped)} unfinished runs."]


def test_a_stop_of_the_daemon_is_not_told_as_a_replaced_task_finishing_again(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """A run of an overlap: replace task that the daemon's stop interrupted did not
    finish by itself: "✔ … finishes its runs again after 11 unfinished runs" came in the
    same second as "⚠ … failed: the daemon stopped while the run was in progress"
    (outside-in probe)."""

    async def scenario() -> tuple[list[str], list[str]]:
        rig = Rig(sqlite_store, clock, home)
        _add_replaced(rig, "exec sleep 30")

        def newest() -> SlotStatus:
            return _newest(rig)

        clock.advance(timedelta(minutes=1))
        await rig.h.tick(settle=False)
        await until(lambda: newest() is SlotStatus.RUNNING)
        for _ in range(4):  # every run is stopped by the next fire before it ends
            clock.advance(timedelta(minutes=1))
            await rig.h.tick(settle=False)
            await until(lambda: rig.h.engine.running == 0)
            await rig.h.tick(settle=False)
            await until(lambda: newest() is SlotStatus.RUNNING)
        first = await rig.lines()
        await rig.h.engine.shutdown(0.05)  # the stop interrupts the run in progress
        return first, (await rig.lines())[len(first) :]

    first, after = asyncio.run(scenario())
    assert any("has not completed 3 runs in a row" in line for line in first), first
    assert not any("finishes its runs again" in line for line in after), after
    assert sqlite_store.slots("slow", limit=100)[0].error_class is ErrorClass.WORKER_LOST


# ---- starvation: a slot free to run that no worker takes ----------------------------------


def test_a_starved_task_is_told_once_naming_the_holders_and_waits_with_one_slot(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    gates: dict[str, asyncio.Event] = {}

    def holder(name: str) -> Any:
        async def run() -> str:
            gates[name] = asyncio.Event()
            await gates[name].wait()
            return "done"

        return run

    async def scenario() -> tuple[list[str], list[str]]:
        rig = Rig(sqlite_store, clock, home)
        rig.h.engine.settings.max_concurrency = 2
        rig.h.add("story", holder("story"), cron="0 * * * *", timezone="UTC")
        rig.h.add("reindex", holder("reindex"), cron="0 * * * *", timezone="UTC")
        clock.advance(timedelta(hours=1))  # 01:00: both long runs start
        await rig.h.tick(settle=False)
        await until(lambda: len(gates) == 2)
        rig.h.add("minutely", lambda: "ok", every="1m", timezone="UTC")
        for _ in range(30):
            clock.advance(timedelta(minutes=1))
            await rig.h.tick(settle=False)
        starved = await rig.lines()
        row = next(t for t in rig.h.service.list_tasks() if t["name"] == "minutely")
        assert row["health"] == "starved", row
        assert row["health_detail"].startswith("waited 2 min for a free worker: all 2"), row
        gates["story"].set()
        await until(lambda: rig.h.engine.running == 1)
        clock.advance(timedelta(seconds=1))
        await rig.h.tick(settle=False)

        def ran() -> bool:
            return any(
                s.status is SlotStatus.SUCCEEDED for s in sqlite_store.slots("minutely", limit=5)
            )

        await until(ran)
        await asyncio.sleep(0.05)  # listeners hear on the loop's next turn
        return starved, (await rig.lines())[len(starved) :]

    starved, after = asyncio.run(scenario())
    assert starved == [
        "⚠ minutely has waited 2 min for a free worker: all 2 workers busy: story for 3 min, "
        "reindex for 3 min. Raise max_concurrency or move the long tasks apart."
    ], starved
    slots = sqlite_store.slots("minutely", limit=100)
    waiting = [s for s in slots if s.status is SlotStatus.PENDING]
    superseded = [s for s in slots if s.status is SlotStatus.SUPERSEDED]
    # one slot waited at any time; each newer fire took the older one's place
    assert len(waiting) <= 1 and len(superseded) >= 28
    assert all("still waiting for a free worker" in (s.reason or "") for s in superseded)
    assert [line for line in after if "minutely" in line] == [
        "✔ minutely got a worker after waiting 29 min 1s."
    ], after


# ---- downtime: one report for all tasks, health until the next run ------------------------


def test_a_daemon_back_after_a_day_sends_one_report_of_what_was_missed(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    async def scenario() -> tuple[list[Message], list[dict[str, Any]], list[dict[str, Any]]]:
        before = Rig(sqlite_store, clock, home)  # the daemon that added the tasks, then died
        before.h.add("hourly", lambda: "ok", cron="0 * * * *", timezone="UTC", catchup="latest")
        before.h.add("heartbeat", lambda: "ok", every="10m", timezone="UTC", catchup="none")
        before.h.add("daily", lambda: "ok", cron="30 2 * * *", timezone="UTC")
        clock.advance(timedelta(days=1, minutes=5))
        rig = Rig(sqlite_store, clock, home)  # started a day later
        for name in ("hourly", "heartbeat", "daily"):
            rig.h.registry.register_callable(f"tests:{name}", lambda: "ok")
        await rig.h.tick()
        for _ in range(4):
            clock.advance(timedelta(seconds=1))
            await rig.h.tick()
        await rig.sender.drain_once()
        rig.h.ticking()
        rows = rig.h.service.list_tasks()
        for name in ("hourly", "heartbeat", "daily"):
            records[name] = [
                s for s in sqlite_store.slots(name, limit=1000) if s.status is SlotStatus.MISSED
            ]
        clock.advance(timedelta(minutes=5))  # heartbeat's 00:10 fire runs on time
        await rig.h.tick()
        rig.h.ticking()
        return list(rig.channel.sent), rows, rig.h.service.list_tasks()

    records: dict[str, list[Any]] = {}
    sent, rows, later = asyncio.run(scenario())
    missed = [m for m in sent if m.event == "missed"]
    assert len(missed) == 1, [m.body for m in sent]
    body = missed[0].body.splitlines()
    total = sum(len(v) for v in records.values())
    assert body[0].startswith(f"⚠ {total} runs of 2 tasks did not run (due between "), body
    assert body[1].startswith(f"• heartbeat: {len(records['heartbeat'])} missed — "), body
    assert "catchup: none" in body[1], body
    hourly = (
        f"• hourly: {len(records['hourly'])} missed — agentcron was not scheduling (stopped, "
        "or stopping)"
    )
    assert body[2].startswith(hourly), body
    assert records["daily"] == []  # its one missed fire ran (catch-up: latest)
    health = {r["name"]: r["health"] for r in rows}
    assert health == {"hourly": "ok", "heartbeat": "missed", "daily": "ok"}, rows
    assert {r["name"]: r["health"] for r in later}["heartbeat"] == "ok"
    # nothing else was told per task, and the missed incident closed without a word
    assert [m.event for m in sent] == ["missed"]


# ---- the empty-output canary watches what should have output ------------------------------


def test_a_task_that_never_prints_is_not_suspicious_unless_its_config_asks(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    async def scenario() -> list[str]:
        rig = Rig(sqlite_store, clock, home)
        rig.h.add("silent", lambda: None, every="1h", timezone="UTC")
        rig.h.add("asked", lambda: None, every="1h", timezone="UTC", expect_output=True)
        rig.h.add("never", lambda: "x", every="1h", timezone="UTC", expect_output=False)
        await rig.h.run_until(clock.now() + timedelta(hours=6), timedelta(hours=1))
        return await rig.lines()

    lines = asyncio.run(scenario())
    assert lines == ["⚠ asked succeeded 3 times in a row without producing anything."], lines
    assert sqlite_store.incidents("silent") == []


def test_a_task_that_used_to_print_is_watched_after_a_restart(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """What the task did before this process started is read from the record."""
    outputs = ["a story", "", "", ""]

    async def scenario() -> list[str]:
        first = Rig(sqlite_store, clock, home)
        first.h.add("story", lambda: outputs.pop(0), every="1h", timezone="UTC")
        await first.h.run_until(clock.now() + timedelta(hours=1), timedelta(hours=1))
        rig = Rig(sqlite_store, clock, home)  # a new process: nothing in memory
        rig.h.registry.register_callable("tests:story", lambda: outputs.pop(0))
        await rig.h.run_until(clock.now() + timedelta(hours=3), timedelta(hours=1))
        return await rig.lines()

    lines = asyncio.run(scenario())
    assert lines == ["⚠ story succeeded 3 times in a row without producing anything."], lines


def test_a_warning_the_task_is_no_longer_watched_for_ends_once(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """A "produced nothing" warning for a task that is no longer watched for output (its
    config now says none is expected; or the incident was opened by an older version's
    rule for a task that never printed: upgrade probe) stayed open for good, and `list`
    said `suspicious` on every run after. It ends at the next run, told once."""

    async def scenario() -> list[str]:
        first = Rig(sqlite_store, clock, home)
        first.h.add("silent", lambda: None, every="1h", timezone="UTC", expect_output=True)
        await first.h.run_until(clock.now() + timedelta(hours=3), timedelta(hours=1))
        rig = Rig(sqlite_store, clock, home)  # restarted with the config changed
        rig.h.add("silent", lambda: None, every="1h", timezone="UTC")
        await rig.h.run_until(clock.now() + timedelta(hours=3), timedelta(hours=1))
        return await first.lines() + await rig.lines()

    lines = asyncio.run(scenario())
    assert lines == [
        "⚠ silent succeeded 3 times in a row without producing anything.",
        "✔ silent is no longer watched for output (it has never printed, or its config "
        "says none is expected): its warning of runs without output ends.",
    ], lines
    assert [i for i in sqlite_store.incidents("silent") if i.is_open] == []


def test_a_batch_of_first_empty_runs_asks_the_record_once(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Fifty tasks end empty runs in one pass after a restart: whether each has printed
    before is one read for the batch, not one per task, and the answer is the same."""
    reads: list[int] = []
    real = sqlite_store.tasks_with_output

    def counted(tasks: Any) -> set[str]:
        reads.append(len(tasks))
        return real(tasks)

    async def scenario() -> list[str]:
        first = Rig(sqlite_store, clock, home)
        for i in range(50):
            first.h.add(
                f"t{i:02d}",
                lambda i=i: "out" if i < 5 else "",
                every="1h",
                timezone="UTC",
                empty_output_streak=1,
            )
        await first.h.run_until(clock.now() + timedelta(hours=1), timedelta(hours=1))
        rig = Rig(sqlite_store, clock, home)  # a new process: nothing in memory
        for i in range(50):
            rig.h.registry.register_callable(f"tests:t{i:02d}", lambda: "")
        sqlite_store.tasks_with_output = counted  # type: ignore[method-assign]
        rig.h.engine.batch_listeners.append(lambda ended: batches.append(len(ended)))
        await rig.h.run_until(clock.now() + timedelta(hours=1), timedelta(hours=1))
        return await rig.lines()

    batches: list[int] = []
    lines = asyncio.run(scenario())
    # each task asked about once, a batch of ends at a time (how the ends of one pass
    # fall into batches depends on the machine's speed), not one by one
    assert sum(reads) == 50 and len(reads) <= len(batches), (reads, batches)
    assert reads == [n for n in batches if n], (reads, batches)
    # the five that printed before are flagged; the 45 that never print are not
    assert sorted(line.split()[1] for line in lines) == [f"t{i:02d}" for i in range(5)], lines


def test_a_lasting_failure_that_turns_permanent_is_told(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Told "still retrying each run" for a passing failure that lasts, the owner must
    hear when it turns into one that retrying will not fix (the key was revoked): once,
    not on every run after."""
    errors = iter(["503 Service Unavailable"] * 5 + ["401 Unauthorized: invalid api key"] * 20)

    def fails() -> Any:
        raise RuntimeError(f"upstream answered HTTP {next(errors)}")

    lines = _flaky(Rig(sqlite_store, clock, home), fails, timedelta(minutes=1))
    assert len(lines) == 3, lines
    assert lines[1].endswith("Still retrying each run."), lines
    assert lines[2].startswith("✖ flaky failed: "), lines
    assert "Retrying will not help" in lines[2], lines


def test_runs_that_each_give_up_are_told_once_as_lasting(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Each run retries and gives up (every 1m, 1 retry after 5 s): the first give-up
    is told, then once that every run since has given up too (retries + 1 = 2 failed
    runs in a row), then nothing more; the probe heard nothing after the first
    give-up over 62 runs."""
    lines = _flaky(
        Rig(sqlite_store, clock, home),
        _unavailable,
        timedelta(minutes=10),
        name="giveup",
        step=timedelta(seconds=5),
        every="1m",
        retries=1,
        first_retry="5s",
    )
    assert len(lines) == 3, lines
    assert lines[0].startswith("⚠ giveup failed: "), lines
    assert lines[1].startswith("✖ giveup gave up after 2 attempts: "), lines
    assert lines[2].startswith("✖ giveup has failed 2 runs in a row since 00:01: "), lines
    assert lines[2].endswith("Next scheduled run: 00:03."), lines


def test_a_task_of_a_period_under_a_minute_is_told_when_starved(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Every 10 s behind one long run at max_concurrency 1: each fire displaced the
    waiting slot, so no waiting slot was ever a minute old, and the task starved for
    good with nothing told and `list` saying ok (outside-in probe)."""
    gate = asyncio.Event()

    async def hog() -> str:
        await gate.wait()
        return "done"

    async def scenario() -> tuple[list[str], str]:
        rig = Rig(sqlite_store, clock, home)
        rig.h.engine.settings.max_concurrency = 1
        rig.h.add("hog", hog, cron="0 * * * *", timezone="UTC")
        clock.advance(timedelta(hours=1))
        await rig.h.tick(settle=False)
        await until(lambda: rig.h.engine.running == 1)
        rig.h.add("small", lambda: "ok", every="10s", timezone="UTC")
        for _ in range(12):  # two minutes
            clock.advance(timedelta(seconds=10))
            await rig.h.tick(settle=False)
        lines = await rig.lines()
        row = next(t for t in rig.h.service.list_tasks() if t["name"] == "small")
        gate.set()
        await rig.h.engine.wait_idle()
        return lines, row["health"]

    lines, health = asyncio.run(scenario())
    assert [line for line in lines if "small" in line] == [
        "⚠ small has waited 1 min 10s for a free worker: 1 worker busy: hog for 1 min 20s. "
        "Raise max_concurrency or move the long tasks apart."
    ], lines
    assert health == "starved"


def test_a_task_removed_and_added_again_starts_with_no_old_incident(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """Removed while failing and put back within the notifier's look for orphans (30 s),
    the task inherited its open incident: its next failure was told as "has failed 2
    runs in a row … Still retrying each run", counting a slot the removal cancelled."""

    async def scenario() -> list[str]:
        rig = Rig(store, clock, home)
        spec = dict(every="10s", timezone="UTC", retries=3, retry_backoff={"base": "20s"})
        rig.h.add("job", _unavailable, **spec)
        clock.advance(timedelta(seconds=10))
        await rig.h.tick()
        assert [i.kind for i in store.incidents("job") if i.is_open] == [IncidentKind.FAILURE]
        store.remove_task("job", clock.now())
        assert not [i for i in store.incidents("job") if i.is_open]
        clock.advance(timedelta(seconds=5))
        rig.h.add("job", _unavailable, **spec)
        clock.advance(timedelta(seconds=10))
        await rig.h.tick()
        return await rig.lines()

    lines = asyncio.run(scenario())
    assert len(lines) == 2, lines
    assert all(line.startswith("⚠ job failed: ") for line in lines), lines


# ---- what a failure's message promises ------------------------------------------------------


def test_a_run_lost_at_a_restart_names_the_fire_that_takes_its_retrys_place(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Both nodes killed during the 00:00:40 run, restarted at 00:01:26: the recovery
    records the run lost (retry at 00:01:50) and the same tick makes the 00:01:20 fire it
    missed, which supersedes that retry. "Retrying at 00:01:50" was told of a retry
    that never ran (outside-in probe)."""
    rig = Rig(sqlite_store, clock, home)
    rig.h.add(
        "slow",
        lambda: "done",
        every="40s",
        timezone="UTC",
        retries=2,
        retry_backoff={"base": "24s", "jitter": 0},
    )
    clock.advance(timedelta(seconds=40))
    now = clock.now()
    made = sqlite_store.materialize("slow", now, now + timedelta(seconds=40), [NewSlot(now)], now)
    assert made is not None
    (claim,) = sqlite_store.claim("a-dead-node", now, now + timedelta(seconds=15), 1)
    clock.advance(timedelta(seconds=46))  # down until 00:01:26; the lease has lapsed

    async def restart() -> list[str]:
        rig.h.engine._last_recover = None  # the recovery runs on this tick
        await rig.h.tick()
        return await rig.lines()

    lines = asyncio.run(restart())
    lost = sqlite_store.get_slot(claim.slot.id)
    assert lost is not None and lost.status is SlotStatus.SUPERSEDED, lost
    assert lines[0].startswith("⚠ slow failed: "), lines
    assert lines[0].endswith("The next scheduled run, due since 00:01:20, tries again now."), lines
    assert lines[1:] == ["✔ slow is running again after 1 failed run (down 46s)."], lines


def test_a_run_stopped_with_its_daemon_while_another_node_runs_is_retried_there(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    rig = Rig(sqlite_store, clock, home)
    rig.notifier.others_running = lambda: True
    release = asyncio.Event()

    async def long_run() -> str:
        await release.wait()
        return "done"

    async def scenario() -> list[str]:
        rig.h.add("slow", long_run, every="1h", timezone="UTC", retries=2)
        clock.advance(timedelta(hours=1))
        await rig.h.tick(settle=False)
        await until(lambda: rig.h.engine.running == 1)
        await rig.h.engine.shutdown(grace=0.01)
        return await rig.lines()

    lines = asyncio.run(scenario())
    assert lines == [
        "⚠ slow failed: the daemon stopped while the run was in progress. "
        "Retrying on another running node (attempt 2 of 3)."
    ], lines


def test_a_missed_incident_is_not_reminded_and_ends_when_the_budget_skips(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Outside-in probe: a restart on a task whose daily budget was used up left its
    `missed` incident open until midnight (its next run), reminded every remind_after
    with the downtime as its false cause, and `list` said `missed`, not `over_budget`.
    Missed runs are told once, in the report; the incident ends, without a word, when
    the schedule fires again, a slot skipped over the budget included."""
    from agentcron.model import NewSlot
    from agentcron.model.incident import Incident, IncidentKind
    from agentcron.policies.budget import REASON_PREFIX

    rig = Rig(sqlite_store, clock, home)
    spec = rig.h.add("capped", lambda: "ok", every="5m", remind_after="1m")
    now = clock.now()
    missed = Incident(
        task="capped", kind=IncidentKind.MISSED, opened_at=now, summary="2 runs not run"
    )
    sqlite_store.save_incidents([missed], [], now)
    clock.advance(timedelta(hours=2))
    rig.notifier.remind(clock.now())
    assert asyncio.run(rig.lines()) == []  # not reminded
    at = clock.now()
    slot = sqlite_store.add_slot(
        "capped", NewSlot(at, SlotStatus.SKIPPED, reason=f"{REASON_PREFIX}task used 3/3"), at
    )
    assert slot is not None
    rig.notifier.on_skipped(spec, slot, at)
    assert sqlite_store.open_incidents("capped") == {}
    assert asyncio.run(rig.lines()) == []  # ended without a word


def test_a_stuck_warning_for_a_run_whose_end_came_first_opens_nothing(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Chaos soak: the watchdog read a run as running, its end was written, and then
    the warning opened a stuck incident that nothing closed (the end had closed
    nothing): `list` and `doctor` said `stuck` for a task whose runs were fine. A
    warning for a slot no longer running is dropped; one for a running slot opens."""
    from agentcron.notify.events import RunStuck

    rig = Rig(sqlite_store, clock, home)
    gate = threading.Event()
    spec = rig.h.add("slow", lambda: gate.wait(10) and "done", every="1h", stuck_after="1m")

    async def scenario() -> None:
        clock.advance(timedelta(hours=1))
        await rig.h.tick(settle=False)
        await until(lambda: rig.h.slots("slow")[-1].status is SlotStatus.RUNNING)
        running = rig.h.slots("slow")[-1]
        warn = RunStuck(
            task="slow",
            at=clock.now(),
            slot_id=running.id,
            running_for=timedelta(minutes=2),
            limit=timedelta(minutes=1),
        )
        gate.set()
        await rig.h.engine.wait_idle()  # its end is written before the warning is told
        rig.notifier.emit(spec, warn)
        assert sqlite_store.open_incidents("slow") == {}
        assert await rig.lines() == []

    asyncio.run(scenario())


def test_a_reminder_while_a_retry_waits_counts_as_the_recovery_then_does(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """every 10m, one retry 5m later; the reminder (32m after the first failure) comes
    while the 00:40 run's retry waits, and that retry succeeds: the reminder does not
    count the 00:40 run as failed, as the recovery just after it does not (the probe
    saw "69 failed runs" 3 ms before "after 68 failed runs")."""
    start = clock.now()

    def until_044() -> str:
        if clock.now() - start < timedelta(minutes=44):
            raise RuntimeError("upstream answered HTTP 503 Service Unavailable")
        return "fine"

    async def scenario() -> list[str]:
        rig = Rig(sqlite_store, clock, home)
        rig.h.add(
            "flaky",
            until_044,
            every="10m",
            timezone="UTC",
            retries=1,
            retry_backoff={"base": "5m", "jitter": 0},
            remind_after="32m",
        )
        await rig.h.run_until(clock.now() + timedelta(minutes=50), timedelta(minutes=1))
        return await rig.lines()

    lines = asyncio.run(scenario())
    [reminder] = [line for line in lines if line.startswith("⏰ Reminder: flaky")]
    assert "(3 failed runs and one being retried since 00:10, last: server_error)" in reminder
    assert lines[-1].startswith("✔ flaky is running again after 3 failed runs"), lines
