"""The silent-failure detectors with a fake clock (PRODUCT.md §7, §8; seeds/002).

The seed's heartbeat went quiet for 35 hours and nobody was told: the schedule
stopped firing, and before that it "succeeded" five times without a model call.
Here the real engine, notifier and watchdog share one SQLite store and a fake
clock, the way the daemon wires them, and each detector must open exactly one
incident, send exactly one message, and close it with the right words.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.model import Incident, IncidentKind, Message, Slot, SlotStatus, TaskSpec
from agentcron.notify import OutboxSender
from agentcron.notify.notifier import Notifier
from agentcron.store.base import Store
from agentcron.watchdog.watchdog import MIN_OVERDUE, Watchdog, overdue_limit
from fake_openai import FakeOpenAI, completion
from harness import Harness, until
from notify_rig import HOOK, RecordingChannel


class Rig:
    """A Harness wired like the daemon: engine -> notifier -> outbox, plus a watchdog."""

    def __init__(self, store: Store, clock: FakeClock, home: Path) -> None:
        self.h = Harness(store, clock, home)
        self.store, self.clock = store, clock
        self.notifier = Notifier(store, clock, [HOOK], "UTC")
        self.h.engine.batch_listeners.append(self.notifier.on_finished_many)  # as the daemon
        self.h.engine.slot_listeners.append(self._on_recorded_slot)
        self.channel = RecordingChannel()
        self.sender = OutboxSender(store, channel_factory=lambda _url: self.channel, clock=clock)
        self.watchdog = self.new_watchdog()

    def new_watchdog(self, **loop: Any) -> Watchdog:
        """A watchdog as a restarted daemon has it: nothing remembered in memory;
        ``loop``: what it is told of the loop (``last_tick``, ``monotonic``, …)."""
        return Watchdog(
            self.store,
            self.clock,
            self.notifier.emit,
            period_of=self.h.service.period,
            count_fires=self.h.service.count_fires,
            **loop,
        )

    def _on_recorded_slot(self, spec: TaskSpec, slot: Slot) -> None:
        if slot.status is SlotStatus.SKIPPED:
            self.notifier.emit_skip(spec, slot, self.clock.now())

    async def messages(self) -> list[Message]:
        """Everything the owner has been sent so far (drains the durable outbox)."""
        await self.sender.drain_once()
        return list(self.channel.sent)

    def incidents(self, task: str) -> list[Incident]:
        return sorted(self.store.incidents(task), key=lambda i: i.opened_at)


def _first_lines(messages: list[Message]) -> list[str]:
    return [m.body.splitlines()[0] for m in messages]


def _ok() -> str:
    return "done"


# ---- overdue: the seed's 35 hours of silence ---------------------------------------------


def test_overdue_opens_once_when_the_loop_stops_firing_and_closes_on_the_next_run(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    async def scenario() -> None:
        rig = Rig(sqlite_store, clock, home)
        spec = rig.h.add("heartbeat", _ok, every="10m", timezone="UTC")
        assert overdue_limit(spec, rig.h.service.period(spec)) == timedelta(minutes=20)
        clock.advance(timedelta(minutes=10))  # 00:10, the first slot runs
        await rig.h.tick()
        assert [s.status for s in rig.h.slots("heartbeat")] == [SlotStatus.SUCCEEDED]

        # The loop stops ticking (the seed's wedged busy flag); the watchdog does not.
        clock.advance(timedelta(minutes=29, seconds=59))  # 00:39:59, due since 00:20
        assert rig.watchdog.check_once().overdue == []
        assert rig.incidents("heartbeat") == []
        clock.advance(timedelta(seconds=2))  # 00:40:01: more than 2 periods past due
        assert rig.watchdog.check_once().overdue == ["heartbeat"]
        [incident] = rig.incidents("heartbeat")
        assert incident.kind is IncidentKind.OVERDUE and incident.is_open
        assert incident.streak == 3  # 00:20, 00:30 and 00:40 did not run
        assert _first_lines(await rig.messages()) == [
            "⚠ heartbeat has not run since 00:10 (3 runs missed) although the daemon is alive."
        ]

        # Later checks, and a restarted watchdog, count it; they do not tell again.
        clock.advance(timedelta(seconds=5))
        assert rig.watchdog.check_once().overdue == []
        clock.advance(timedelta(seconds=5))
        rig.watchdog.check_once()
        rig.new_watchdog().check_once()
        assert len(rig.incidents("heartbeat")) == 1
        assert len(await rig.messages()) == 1
        assert set(sqlite_store.open_incidents("heartbeat")) == {"overdue"}

        # The loop ticks again: the newest missed fire runs, the incident closes.
        await rig.h.tick()
        slots = rig.h.slots("heartbeat")
        assert [s.status for s in slots] == [
            SlotStatus.SUCCEEDED,
            SlotStatus.MISSED,
            SlotStatus.MISSED,
            SlotStatus.SUCCEEDED,
        ]
        [closed] = rig.incidents("heartbeat")
        assert not closed.is_open
        sent = _first_lines(await rig.messages())
        assert sent[1:] == ["✔ heartbeat is running again after 3 missed runs."]
        assert sqlite_store.open_incidents("heartbeat") == {}

    asyncio.run(scenario())


def test_a_frozen_process_is_not_told_overdue_before_its_loop_passes_again(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """SIGSTOP holds the loop and the watchdog alike. Resumed, the watchdog looked
    before the loop's first pass: "⚠ heartbeat has not run since … although the daemon
    is alive", then its recovery in the same second (outside-in probe). The freeze is
    told as such; overdue needs a loop that passed since the deadline and fired
    nothing, which it still tells."""
    mono = {"now": 1000.0, "pass": 1000.0}

    def advance(delta: timedelta) -> None:
        clock.advance(delta)
        mono["now"] += delta.total_seconds()

    async def loop_pass(rig: Rig) -> None:
        mono["pass"] = mono["now"]  # a pass begins: the loop's pulse ...
        await rig.h.engine.run_pass()  # ... and its tick ends

    async def scenario() -> list[str]:
        rig = Rig(sqlite_store, clock, home)
        rig.h.add("heartbeat", _ok, every="10m", timezone="UTC")
        watchdog = rig.new_watchdog(
            last_tick=lambda: mono["pass"],
            monotonic=lambda: mono["now"],
            stall_after=30.0,
            last_full_pass=lambda: rig.h.engine.last_full_pass,
        )
        advance(timedelta(minutes=10))
        await loop_pass(rig)  # 00:10 ran
        await rig.h.engine.wait_idle()
        advance(timedelta(minutes=45))  # frozen: neither the loop nor the watchdog ran
        mono["pass"] = mono["now"]  # resumed: the loop's first pass has begun, not ended
        assert watchdog.check_once().overdue == []
        await loop_pass(rig)  # ... and it records what came due
        await rig.h.engine.wait_idle()
        assert watchdog.check_once().overdue == []
        # a loop that passes but fires nothing (the seed's wedged flag) is still told
        advance(timedelta(minutes=26))
        mono["pass"] = mono["now"]
        rig.h.engine._good_pass_began = clock.now()  # a pass that fired nothing ended
        assert watchdog.check_once().overdue == ["heartbeat"]
        return _first_lines(await rig.messages())

    lines = asyncio.run(scenario())
    assert lines == [
        "⚠ heartbeat has not run since 00:50 (3 runs missed) although the daemon is alive."
    ], lines


def test_the_recovery_message_counts_every_run_the_silence_missed(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    async def scenario() -> None:
        rig = Rig(sqlite_store, clock, home)
        rig.h.add("heartbeat", _ok, every="10m", timezone="UTC")
        clock.advance(timedelta(minutes=10))
        await rig.h.tick()  # 00:10 ran; due next at 00:20
        # The watchdog keeps looking every few seconds while the loop is wedged; here
        # once a minute from 00:40:01 (detection) to 01:50:01.
        clock.advance(timedelta(minutes=30, seconds=1))
        for _ in range(71):
            rig.watchdog.check_once()
            clock.advance(timedelta(minutes=1))
        assert len(await rig.messages()) == 1
        await rig.h.tick()  # 01:51:01: fires 00:20 .. 01:50 were due, 01:50 runs late
        missed = [s for s in rig.h.slots("heartbeat") if s.status is SlotStatus.MISSED]
        assert len(missed) == 9
        closing = _first_lines(await rig.messages())[-1]
        # 9 recorded missed and one run late: either count is honest, 3 is not.
        assert closing in (
            "✔ heartbeat is running again after 9 missed runs.",
            "✔ heartbeat is running again after 10 missed runs.",
        ), closing

    asyncio.run(scenario())


def test_a_task_that_keeps_firing_is_never_overdue(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    async def scenario() -> None:
        rig = Rig(sqlite_store, clock, home)
        rig.h.add("heartbeat", _ok, every="1m", timezone="UTC")
        for _ in range(30):
            clock.advance(timedelta(minutes=1))
            await rig.h.tick()
            rig.watchdog.check_once()
        assert rig.incidents("heartbeat") == []
        assert await rig.messages() == []
        # The floor: a 1-minute task is overdue only after 5 minutes, not 2.
        clock.advance(MIN_OVERDUE)
        assert rig.watchdog.check_once().overdue == []
        clock.advance(timedelta(minutes=1, seconds=1))
        assert rig.watchdog.check_once().overdue == ["heartbeat"]

    asyncio.run(scenario())


# ---- empty successes: the seed's 0/0-token canary ----------------------------------------


def test_three_empty_successes_in_a_row_open_one_suspicious_incident(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    outputs = ["", "story", "", "", "", "", "a story again"]

    def quiet() -> str:
        return outputs.pop(0)

    async def scenario() -> None:
        rig = Rig(sqlite_store, clock, home)
        rig.h.add("quiet", quiet, every="1h", timezone="UTC", empty_output_streak=3)
        for _ in range(4):  # "", "story", "", "": no three in a row yet
            await rig.h.run_until(clock.now() + timedelta(hours=1), timedelta(hours=1))
        assert rig.incidents("quiet") == []
        await rig.h.run_until(clock.now() + timedelta(hours=1), timedelta(hours=1))
        [incident] = rig.incidents("quiet")
        assert incident.kind is IncidentKind.SUSPICIOUS and incident.is_open
        assert _first_lines(await rig.messages()) == [
            "⚠ quiet succeeded 3 times in a row without producing anything."
        ]
        await rig.h.run_until(clock.now() + timedelta(hours=1), timedelta(hours=1))  # 4th
        assert len(await rig.messages()) == 1
        assert len(rig.incidents("quiet")) == 1
        await rig.h.run_until(clock.now() + timedelta(hours=1), timedelta(hours=1))
        assert _first_lines(await rig.messages())[1:] == ["✔ quiet produced output again."]
        assert sqlite_store.open_incidents("quiet") == {}
        assert outputs == []

    asyncio.run(scenario())


def test_a_burst_of_clean_runs_reads_incidents_once_and_still_announces_recovery(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Forty runs end in one pass of the loop; one of their tasks was failing. Its
    recovery is announced, and the clean ones cost no per-run incident read."""
    failing = [True]

    def flaky() -> str:
        if failing[0]:
            raise ValueError("bad input")
        return "fixed"

    async def scenario() -> tuple[list[str], list[str]]:
        rig = Rig(sqlite_store, clock, home)
        rig.h.engine.settings.max_concurrency = 50
        rig.h.add("flaky", flaky, every="1h", timezone="UTC", retries=0)
        for i in range(39):
            rig.h.add(f"clean{i:02d}", _ok, every="1h", timezone="UTC")
        await rig.h.run_until(clock.now() + timedelta(hours=1), timedelta(hours=1))
        assert set(sqlite_store.open_incidents("flaky")) == {"failure"}
        failing[0] = False
        reads: list[str] = []
        original = sqlite_store.open_incidents

        def counting(task: str) -> Any:
            reads.append(task)
            return original(task)

        sqlite_store.open_incidents = counting  # type: ignore[method-assign]
        await rig.h.run_until(clock.now() + timedelta(hours=1), timedelta(hours=1))
        return reads, _first_lines(await rig.messages())

    reads, lines = asyncio.run(scenario())
    assert reads == ["flaky"]
    assert len(lines) == 2 and lines[1].startswith("✔ flaky")
    assert sqlite_store.open_incidents("flaky") == {}


def test_zero_token_completions_count_as_empty_runs(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """The seed's smoking gun: fires that "ran" with 0 input / 0 output tokens."""
    script = [completion("OK", prompt_tokens=0, completion_tokens=0) for _ in range(5)]

    async def scenario(base_url: str) -> None:
        rig = Rig(sqlite_store, clock, home)
        llm = {"base_url": base_url, "model": "fake-model", "prompt": "heartbeat"}
        rig.h.add("agent", every="1h", timezone="UTC", llm=llm, retries=0, remind_after="90m")
        for _ in range(3):
            await rig.h.run_until(clock.now() + timedelta(hours=1), timedelta(hours=1))
        assert [s.status for s in rig.h.slots("agent")] == [SlotStatus.SUCCEEDED] * 3
        [incident] = rig.incidents("agent")
        assert incident.kind is IncidentKind.SUSPICIOUS
        # the answers had text: the words say what is wrong, not "produced nothing"
        # (outside-in probe: "without producing anything" beside kept outputs)
        assert _first_lines(await rig.messages()) == [
            "⚠ agent succeeded 3 times in a row with its model reporting 0 completion "
            "tokens, although its answers had text: the provider's token counts look "
            "wrong, so a tokens_per_day budget counts less than it spends."
        ]
        # and so do `list`, `doctor` and the reminder, which read its summary (they
        # said "3 successes in a row without output": outside-in probe)
        assert incident.summary == (
            "3 successes in a row with its model reporting 0 completion tokens although "
            "its answers had text"
        )
        for _ in range(2):
            await rig.h.run_until(clock.now() + timedelta(hours=1), timedelta(hours=1))
        rig.notifier.remind(clock.now())  # the daemon's housekeeping (not wired here)
        [reminder] = [m for m in _first_lines(await rig.messages()) if "Reminder" in m]
        assert reminder.startswith("⏰ Reminder: agent has had its model report 0 completion "), (
            reminder
        )
        assert "producing nothing" not in reminder and "without output" not in reminder

    with FakeOpenAI(script) as fake:
        asyncio.run(scenario(fake.base_url))
        assert len(fake.requests) == 5


def test_empty_answers_are_told_as_producing_nothing(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    script = [completion("", prompt_tokens=5, completion_tokens=0) for _ in range(3)]

    async def scenario(base_url: str) -> None:
        rig = Rig(sqlite_store, clock, home)
        llm = {"base_url": base_url, "model": "fake-model", "prompt": "heartbeat"}
        rig.h.add("agent", every="1h", timezone="UTC", llm=llm, retries=0)
        for _ in range(3):
            await rig.h.run_until(clock.now() + timedelta(hours=1), timedelta(hours=1))
        assert [i.kind for i in rig.incidents("agent")] == [IncidentKind.SUSPICIOUS]
        assert _first_lines(await rig.messages()) == [
            "⚠ agent succeeded 3 times in a row without producing anything."
        ]

    with FakeOpenAI(script) as fake:
        asyncio.run(scenario(fake.base_url))


# ---- skip streak: a run that holds the task ----------------------------------------------


@pytest.mark.parametrize("skips", [3, 4])
def test_a_skip_streak_opens_one_incident_naming_the_reason(
    sqlite_store: Store, clock: FakeClock, home: Path, skips: int
) -> None:
    async def scenario() -> None:
        rig = Rig(sqlite_store, clock, home)
        release = asyncio.Event()

        async def slow() -> str:
            await release.wait()
            return "finally"

        rig.h.add("slow", slow, every="1m", timezone="UTC", overlap="skip")
        clock.advance(timedelta(minutes=1))
        await rig.h.tick(settle=False)
        await until(lambda: rig.h.engine.running == 1)
        for n in range(1, skips + 1):
            clock.advance(timedelta(minutes=1))
            await rig.h.tick(settle=False)
            assert rig.h.slots("slow")[-1].status is SlotStatus.SKIPPED
            if n < 3:
                assert rig.incidents("slow") == []
        [incident] = rig.incidents("slow")
        assert incident.kind is IncidentKind.SKIP_STREAK and incident.is_open
        assert _first_lines(await rig.messages()) == [
            "⚠ slow was skipped 3 times in a row: the previous run was still running."
        ]
        release.set()
        await rig.h.engine.wait_idle()
        # the run that held the task ended, but its next slot was skipped: still open
        assert rig.incidents("slow")[0].is_open
        assert len(await rig.messages()) == 1

    asyncio.run(scenario())


def test_the_skip_recovery_message_counts_every_skipped_slot(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    async def scenario() -> None:
        rig = Rig(sqlite_store, clock, home)
        release = asyncio.Event()

        async def slow() -> str:
            await release.wait()
            return "finally"

        rig.h.add("slow", slow, every="1m", timezone="UTC", overlap="skip")
        clock.advance(timedelta(minutes=1))
        await rig.h.tick(settle=False)
        await until(lambda: rig.h.engine.running == 1)
        for _ in range(5):
            clock.advance(timedelta(minutes=1))
            await rig.h.tick(settle=False)
        release.set()
        await rig.h.engine.wait_idle()
        for _ in range(2):  # two runs in a row: the schedule holds again
            clock.advance(timedelta(minutes=1))
            await rig.h.tick()
        skipped = [s for s in rig.h.slots("slow") if s.status is SlotStatus.SKIPPED]
        assert len(skipped) == 5
        assert _first_lines(await rig.messages())[-1] == (
            "✔ slow runs on schedule again after 5 skipped runs."
        )

    asyncio.run(scenario())


# ---- stuck: a run that never returns ------------------------------------------------------


def test_a_stuck_run_is_reported_once_and_other_tasks_keep_firing(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    async def scenario() -> None:
        rig = Rig(sqlite_store, clock, home)
        release = asyncio.Event()

        async def wedged() -> str:
            await release.wait()
            return "out at last"

        rig.h.add("wedged", wedged, every="1h", timezone="UTC", stuck_after="10m", timeout="2h")
        clock.advance(timedelta(hours=1))  # 01:00: it fires and never returns
        await rig.h.tick(settle=False)
        await until(lambda: rig.h.engine.running == 1)
        [slot] = rig.h.slots("wedged")
        assert slot.status is SlotStatus.RUNNING
        rig.h.add("beat", _ok, every="1m", timezone="UTC")  # from 01:01, every minute

        reports = []
        for _ in range(25):  # 25 minutes of a hung run; the watchdog looks each minute
            clock.advance(timedelta(minutes=1))
            await rig.h.tick(settle=False)
            await until(lambda: rig.h.slots("beat")[-1].status is SlotStatus.SUCCEEDED)
            reports.append(rig.watchdog.check_once().stuck)
        assert reports[:10] == [[]] * 10  # 01:01 .. 01:10: not longer than 10 min yet
        assert reports[10:] == [[slot.id]] + [[]] * 14
        rig.new_watchdog().check_once()  # a restarted daemon's watchdog: counted only

        [incident] = rig.incidents("wedged")
        assert incident.kind is IncidentKind.STUCK and incident.slot_id == slot.id
        assert _first_lines(await rig.messages()) == [
            "⏳ wedged has been running for 11 min, longer than its 10 min limit for a warning."
        ]
        beats = rig.h.slots("beat")
        assert len(beats) == 25 and all(s.status is SlotStatus.SUCCEEDED for s in beats)
        assert rig.incidents("beat") == []

        release.set()
        await rig.h.engine.wait_idle()
        assert rig.h.slots("wedged")[0].status is SlotStatus.SUCCEEDED
        assert _first_lines(await rig.messages())[1:] == [
            "✔ wedged finished after running for 25 min."
        ]
        assert sqlite_store.open_incidents("wedged") == {}
        assert rig.watchdog.check_once().stuck == []

    asyncio.run(scenario())


def test_runs_always_slower_than_stuck_after_are_told_once_as_a_habit(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Every run takes 8 minutes against a stuck_after of 3: the first two runs are
    told (a warning and its end each), the third says that long runs are no longer told
    one by one, then nothing; a run that ends sooner ends the habit. The probe got two
    messages a run, every run."""

    async def scenario() -> list[str]:
        rig = Rig(sqlite_store, clock, home)
        lengths = iter([8] * 6 + [1] + [8] * 2)  # minutes of each run

        async def slow() -> str:
            minutes = next(lengths)
            target = clock.now() + timedelta(minutes=minutes)
            await until(lambda: clock.now() >= target, timeout=30)
            return "done"

        rig.h.add("slow", slow, every="1h", timezone="UTC", stuck_after="3m", timeout="30m")
        clock.advance(timedelta(minutes=59))
        for _ in range(9):  # nine hourly runs, the watchdog looking each minute
            for _ in range(10):  # HH:00 (the fire) to HH:09
                clock.advance(timedelta(minutes=1))
                await rig.h.tick(settle=False)
                for _ in range(5):
                    await asyncio.sleep(0.01)  # the run sees the clock
                rig.watchdog.check_once()
            await rig.h.engine.wait_idle()
            clock.advance(timedelta(minutes=50))
        return _first_lines(await rig.messages())

    lines = asyncio.run(scenario())
    habit = [line for line in lines if "times in a row" in line]
    assert habit == [
        "⏳ slow has run longer than its 3 min limit for a warning 3 times in a row (this run: "
        "4 min so far). Such runs are no longer told one by one until one ends sooner: raise "
        "`stuck_after` if this is how long it takes; a run that reaches its timeout (30 min) "
        "is still told."
    ], lines
    warnings = [line for line in lines if line.startswith("⏳ slow has been running")]
    ends = [line for line in lines if line.startswith("✔ slow finished")]
    # runs 1, 2 told each; 3 told as a habit; 4-6 not; 7 short; 8, 9 told again
    assert len(warnings) == 4 and len(ends) == 4, lines
    assert len(lines) == 9, lines


def test_a_stuck_run_whose_notice_cannot_be_written_is_told_at_the_next_check(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    async def scenario() -> None:
        rig = Rig(sqlite_store, clock, home)
        release = asyncio.Event()

        async def wedged() -> str:
            await release.wait()
            return "out at last"

        failures = [OSError("disk I/O error")]

        def emit(spec: TaskSpec, event: object) -> object:
            if failures:
                raise failures.pop()
            return rig.notifier.emit(spec, event)  # type: ignore[arg-type]

        dog = Watchdog(
            sqlite_store,
            clock,
            emit,
            period_of=rig.h.service.period,
            count_fires=rig.h.service.count_fires,
        )
        rig.h.add("wedged", wedged, every="1h", timezone="UTC", stuck_after="10m", timeout="2h")
        clock.advance(timedelta(hours=1))
        await rig.h.tick(settle=False)
        await until(lambda: rig.h.engine.running == 1)
        [slot] = rig.h.slots("wedged")
        clock.advance(timedelta(minutes=11))
        assert dog.check_once().stuck == []  # its notice could not be written
        assert dog.check_once().stuck == [slot.id]  # so it is told now, not never
        assert dog.check_once().stuck == []
        assert _first_lines(await rig.messages()) == [
            "⏳ wedged has been running for 11 min, longer than its 10 min limit for a warning."
        ]
        release.set()
        await rig.h.engine.wait_idle()

    asyncio.run(scenario())


def test_a_run_that_ended_while_its_end_cannot_be_written_is_not_told_stuck(
    tmp_path: Path, clock: FakeClock, home: Path
) -> None:
    """The database away while a run ends: its end waits in the finisher and the slot
    stays `running` in the database. The owner was told "⏳ slow has been running for
    1 min…", then "✔ slow finished" 17 ms later (outside-in probe, PostgreSQL outage)."""
    from agentcron.store.sqlite import SQLiteStore
    from faulty_store import FaultyStore

    store = FaultyStore(SQLiteStore(tmp_path / "agentcron.db"))

    async def scenario() -> None:
        rig = Rig(store, clock, home)  # type: ignore[arg-type]
        engine = rig.h.engine
        dog = rig.new_watchdog(
            owner=engine.settings.owner,
            ended_here=engine.ending_slots,
            last_full_pass=clock.now,  # the loop passes all along
        )
        rig.h.add("slow", _ok, every="1h", timezone="UTC", stuck_after="1m", timeout="10m")
        store.fail("finish_many", "set_meta", times=1_000)  # its end cannot be written
        clock.advance(timedelta(hours=1))
        await rig.h.tick(settle=False)
        await until(lambda: engine.ending_slots() != set(), timeout=30)
        clock.advance(timedelta(minutes=5))
        assert dog.check_once().stuck == []  # ended, though the database says running
        [slot] = rig.h.slots("slow")
        assert slot.status is SlotStatus.RUNNING
        store.fail("finish_many", "set_meta", times=0)
        await until(lambda: rig.h.slots("slow")[0].status is SlotStatus.SUCCEEDED, timeout=30)
        assert dog.check_once().stuck == []
        assert [m for m in _first_lines(await rig.messages()) if "⏳" in m] == []

    try:
        asyncio.run(scenario())
    finally:
        store.close()


def test_a_run_is_told_stuck_only_once_its_node_has_looked_since_it_crossed_the_limit(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """A node frozen (SIGSTOP) while its runs end: the other nodes told each of them
    "⏳ … has been running for 1 min" although their commands had ended a minute
    before, then "✔ … finished" once the node was resumed (outside-in probe, three
    nodes on PostgreSQL). A run is now told stuck once its node, alive after the run
    crossed its stuck_after, still holds it: another node by its heartbeat, this one
    by a pass of its loop."""
    from agentcron.model import NewSlot, NodeInfo

    rig = Rig(sqlite_store, clock, home)
    passed = [clock.now()]
    dog = rig.new_watchdog(owner="here", last_full_pass=lambda: passed[0])
    rig.h.add("there", _ok, every="1h", timezone="UTC", stuck_after="10m", timeout="2h")
    rig.h.add("own", _ok, every="1h", timezone="UTC", stuck_after="10m", timeout="2h")
    now = clock.now()
    for node in ("elsewhere", "here"):
        sqlite_store.register_node(NodeInfo(node, "host", 1, "/h", now, now))
    for task, owner in (("there", "elsewhere"), ("own", "here")):
        assert sqlite_store.add_slot(task, NewSlot(scheduled_for=now), now) is not None
        [claim] = sqlite_store.claim(owner, now, now + timedelta(hours=3), 1)
        assert claim.spec.name == task
    clock.advance(timedelta(minutes=11))
    assert dog.check_once().stuck == []  # neither node has looked since 00:10
    sqlite_store.heartbeat("elsewhere", clock.now())
    [there] = rig.h.slots("there")
    assert dog.check_once().stuck == [there.id]
    passed[0] = clock.now()
    [own] = rig.h.slots("own")
    assert dog.check_once().stuck == [own.id]
    assert dog.check_once().stuck == []


def test_a_stuck_after_shorter_than_the_checks_interval_is_still_seen(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """stuck_after 3s, timeout 6s, checks every 5 s: the 3 s in which a run is stuck fell
    between two checks on every run, and none was ever told (outside-in probe). The
    next stuck check now comes when a running slot would pass its stuck_after."""

    async def scenario() -> None:
        rig = Rig(sqlite_store, clock, home)
        release = asyncio.Event()

        async def slow() -> str:
            await release.wait()
            return "done"

        dog = rig.watchdog  # its checks every 5 s (the default interval)
        assert dog.interval == 5.0
        rig.h.add("slow", slow, every="1h", timezone="UTC", stuck_after="3s", timeout="6s")
        clock.advance(timedelta(hours=1))
        await rig.h.tick(settle=False)
        await until(lambda: rig.h.engine.running == 1)
        [slot] = rig.h.slots("slow")
        assert dog.run_due().stuck == []  # just started
        assert 3.0 <= dog.checks_wait() < 3.2  # not the 5 s interval
        clock.advance(timedelta(seconds=3.1))
        assert dog.run_due().stuck == [slot.id]
        assert _first_lines(await rig.messages()) == [
            "⏳ slow has been running for 3s, longer than its 3s limit for a warning."
        ]
        release.set()
        await rig.h.engine.wait_idle()

    asyncio.run(scenario())


# ---- the loop itself ---------------------------------------------------------------------


def test_a_loop_that_stops_ticking_is_reported_once_per_stall(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    last_tick = [time.monotonic()]
    stalls: list[float] = []
    rig = Rig(sqlite_store, clock, home)
    dog = Watchdog(
        sqlite_store,
        clock,
        rig.notifier.emit,
        period_of=rig.h.service.period,
        count_fires=rig.h.service.count_fires,
        last_tick=lambda: last_tick[0],
        on_stall=stalls.append,
    )
    assert dog.check_once().loop_stalled is False
    last_tick[0] = time.monotonic() - 31  # the loop has been silent for 31 s
    assert dog.check_once().loop_stalled is True
    assert dog.check_once().loop_stalled is True
    assert len(stalls) == 1 and stalls[0] > 30
    last_tick[0] = time.monotonic()  # it ticks again
    assert dog.check_once().loop_stalled is False
    last_tick[0] = time.monotonic() - 60  # and wedges again: a second report
    dog.check_once()
    assert len(stalls) == 2


def test_a_downtimes_catch_up_in_chunks_is_not_told_overdue(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Outside-in probe: after a 3-day downtime the first pass recorded one chunk of a
    minutely task's backlog (2,000 fires), and the watchdog took it for a pass that had
    recorded everything due: 20 tasks were told "has not run since … although the
    daemon is alive", then "running again", beside the one report of missed runs. A
    pass that leaves a backlog does not count as one that looked."""

    async def scenario() -> tuple[list[str], int, int]:
        rig = Rig(sqlite_store, clock, home)
        rig.h.add("minutely", _ok, every="1m", timezone="UTC", catchup="all", catchup_window="4d")
        engine = rig.h.engine
        watchdog = rig.new_watchdog(
            last_full_pass=lambda: engine.last_full_pass,
            last_caught_up=lambda: engine.last_caught_up_pass,
        )
        clock.advance(timedelta(minutes=1))
        await engine.run_pass()
        await engine.wait_idle()
        clock.advance(timedelta(days=3))  # down for three days
        passes = 0
        overdue_while = 0
        while True:
            await engine.run_pass()
            passes += 1
            if engine.last_caught_up_pass == engine.last_full_pass:
                break
            overdue_while += len(watchdog.check_once().overdue)
            assert passes < 10
        await engine.wait_idle()
        overdue_while += len(watchdog.check_once().overdue)
        return _first_lines(await rig.messages()), passes, overdue_while

    lines, passes, overdue = asyncio.run(scenario())
    assert passes >= 2  # the backlog took several passes
    assert overdue == 0
    assert not [line for line in lines if "although the daemon is alive" in line], lines


def test_a_backlog_that_never_ends_does_not_hold_the_overdue_check_for_good(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Review: with more tasks due than a tick plans on every tick, the last pass that
    left no backlog would never move, and no task would ever be told overdue."""
    from agentcron.engine.engine import BACKLOG_AT_MOST

    engine = Harness(sqlite_store, clock, home).engine
    start = clock.now()
    engine._backlog_since = start
    engine._good_pass_began = start + timedelta(minutes=1)
    assert engine.last_caught_up_pass is None  # a backlog since the start: held
    engine._good_pass_began = start + BACKLOG_AT_MOST + timedelta(seconds=1)
    assert engine.last_caught_up_pass == engine._good_pass_began  # not for good
