"""Plans made ahead of a fire instant (engine/planning.py): taken at the instant only
while they still hold exactly, else the tick plans from a fresh read. Fake clock: the
engine prepares when the next fire is within two seconds of a tick."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentcron.engine.engine import COALESCE
from agentcron.engine.planning import Ahead, plan_due
from agentcron.model import SlotStatus, TaskRecord, TaskSource, TaskSpec
from agentcron.schedules.build import build_schedule
from harness import Harness, until

HOUR = timedelta(hours=1)


class Takes:
    """What each attempt to take the plans made ahead gave: a number of plans, or None
    when the tick had to plan afresh."""

    def __init__(self, monkeypatch: Any) -> None:
        self.results: list[int | None] = []
        original = Ahead.take

        def take(ahead: Ahead, *args: Any) -> Any:
            got = original(ahead, *args)
            self.results.append(None if got is None else len(got))
            return got

        monkeypatch.setattr(Ahead, "take", take)


async def _to_just_before(h: Harness) -> None:
    """To 1.5 s before the next hour, where a tick prepares that instant."""
    h.clock.advance(HOUR - timedelta(seconds=1.5))
    await h.tick(settle=False)
    assert h.engine._ahead is not None


def test_plans_made_ahead_are_taken_when_nothing_changed(
    sqlite_store, clock, home, monkeypatch
) -> None:
    calls: list[int] = []
    takes = Takes(monkeypatch)

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home, max_concurrency=10)
        for i in range(3):
            h.add(f"t{i}", lambda i=i: calls.append(i), every="1h")
        await _to_just_before(h)
        h.clock.advance(timedelta(seconds=1.6))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    assert takes.results == [3]  # the instant's tick took the three plans made ahead
    assert sorted(calls) == [0, 1, 2]
    for i in range(3):
        (slot,) = h.slots(f"t{i}")
        assert slot.status is SlotStatus.SUCCEEDED
        assert slot.scheduled_for == datetime(2026, 6, 1, 1, 0, tzinfo=UTC)
        rec = h.store.get_task(f"t{i}")
        assert rec is not None and rec.next_fire_at == datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


def test_a_task_edited_after_the_plans_were_made_runs_as_edited(
    sqlite_store, clock, home, monkeypatch
) -> None:
    got: list[int] = []
    takes = Takes(monkeypatch)

    def record(v: int) -> None:
        got.append(v)

    async def scenario() -> None:
        h = Harness(sqlite_store, clock, home)
        spec = h.add("edited", record, every="1h", kwargs={"v": 1})
        await _to_just_before(h)
        h.clock.advance(timedelta(seconds=0.5))
        changed = spec.model_copy(update={"kwargs": {"v": 2}})
        h.store.upsert_task(changed, TaskSource.API, h.clock.now(), None)
        h.clock.advance(timedelta(seconds=1.1))
        await h.tick()

    asyncio.run(scenario())
    assert got == [2]
    assert takes.results == [None]


def test_tasks_added_or_removed_after_the_plans_were_made(
    sqlite_store, clock, home, monkeypatch
) -> None:
    ran: list[str] = []
    takes = Takes(monkeypatch)

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("kept", lambda: ran.append("kept"), every="1h")
        h.add("gone", lambda: ran.append("gone"), every="1h")
        await _to_just_before(h)
        h.service.remove("gone")
        h.add("late", lambda: ran.append("late"), every="1h")
        h.clock.advance(timedelta(seconds=1.6))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    assert takes.results[0] is None
    assert sorted(ran) == ["kept", "late"]
    assert [s.status for s in h.slots("late")] == [SlotStatus.SUCCEEDED]
    assert h.slots("gone") == []


def test_a_loop_with_a_long_beat_wakes_to_prepare_a_coming_fire(
    sqlite_store, clock, home, monkeypatch
) -> None:
    """The loop wakes just inside the look ahead of a fire it has not prepared, not at
    the fire itself: with a 6 s beat it slept past the window, and a burst due at one
    instant was planned in that instant's own tick."""
    ran: list[int] = []
    takes = Takes(monkeypatch)

    async def scenario() -> list[float]:
        h = Harness(sqlite_store, clock, home, max_concurrency=10)
        h.engine.settings.poll_interval = 6.0
        for i in range(3):
            h.add(f"t{i}", lambda i=i: ran.append(i), every="1h")
        h.clock.advance(HOUR - timedelta(seconds=5))  # the fire is 5 s away
        delays = [await h.engine.run_pass()]
        assert h.engine._ahead is None  # too far ahead to prepare yet
        h.clock.advance(timedelta(seconds=delays[0]))
        delays.append(await h.engine.run_pass())
        assert h.engine._ahead is not None and len(h.engine._ahead.plans) == 3
        h.clock.advance(timedelta(seconds=delays[1]))
        await h.engine.run_pass()
        await h.engine.wait_idle(10)
        return delays

    delays = asyncio.run(scenario())
    assert delays[0] == pytest.approx(5 - 2 + 0.05)  # the look ahead is 2 s
    assert delays[1] == pytest.approx(2 - 0.05 + COALESCE)  # then to the fire, as before
    assert takes.results == [3]
    assert sorted(ran) == [0, 1, 2]


def test_a_prepared_or_close_fire_adds_no_wake_up(sqlite_store, clock, home) -> None:
    """Waking to prepare happens once per fire: a fire already planned, or one inside
    the look ahead, is slept to directly (no pass in between, no spin)."""

    async def scenario() -> list[float]:
        h = Harness(sqlite_store, clock, home)
        h.engine.settings.poll_interval = 6.0
        h.add("hourly", lambda: None, every="1h")
        h.clock.advance(HOUR - timedelta(seconds=1.5))
        first = await h.engine.run_pass()  # prepares the fire, then sleeps to it
        h.clock.advance(timedelta(seconds=0.5))
        h.engine._ahead = None  # as if the plans were dropped: inside the window still
        return [first, await h.engine.run_pass()]

    first, second = asyncio.run(scenario())
    assert first == pytest.approx(1.5 + COALESCE)
    assert second == pytest.approx(1.0 + COALESCE)


def test_a_late_tick_plans_afresh(sqlite_store, clock, home, monkeypatch) -> None:
    ran: list[str] = []
    takes = Takes(monkeypatch)

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("every2s", lambda: ran.append("x"), every="2s")
        h.clock.advance(timedelta(seconds=0.5))
        await h.tick(settle=False)  # prepares the fire at 00:00:02
        assert h.engine._ahead is not None
        h.clock.advance(timedelta(seconds=3.7))  # 00:00:04.2: the 00:00:04 fire is due too
        await h.tick()
        return h

    h = asyncio.run(scenario())
    assert takes.results[0] is None
    # both fires recorded, as without plans made ahead: 00:00:02 is 2.2 s late, past its
    # on-time grace (1 s for a 2 s period), so catch-up `latest` runs only 00:00:04
    assert [(s.scheduled_for.second, s.status) for s in h.slots("every2s")] == [
        (2, SlotStatus.MISSED),
        (4, SlotStatus.SUCCEEDED),
    ]
    assert ran == ["x"]


def test_overlap_is_decided_at_the_instant(sqlite_store, clock, home) -> None:
    release = asyncio.Event()
    started: list[str] = []

    async def slow() -> str:
        started.append("run")
        await release.wait()
        return "done"

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("solo", slow, every="1h", overlap="skip")
        await _to_just_before(h)  # planned with nothing running
        h.service.trigger("solo")
        await h.tick(settle=False)
        await until(lambda: started == ["run"])
        h.clock.advance(timedelta(seconds=1.6))
        await h.tick(settle=False)
        release.set()
        await h.engine.wait_idle()
        return h

    h = asyncio.run(scenario())
    slots = h.slots("solo")
    assert [s.trigger for s in slots] == ["manual", "schedule"]
    assert [s.status for s in slots] == [SlotStatus.SUCCEEDED, SlotStatus.SKIPPED]
    assert "overlap: skip" in (slots[1].reason or "")


def _ahead_for(spec: TaskSpec, at: datetime, zone: str | None = None) -> tuple[Ahead, Any]:
    changed = at - timedelta(hours=5)
    rec = TaskRecord(spec.name, spec, TaskSource.API, False, at, changed, changed)
    plan = plan_due(rec, build_schedule(spec, zone), at)
    return Ahead(at, zone, {spec.name: (rec, plan)}), (spec.name, at, changed)


def test_take_refuses_plans_that_no_longer_hold() -> None:
    at = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)
    hourly = TaskSpec(name="h", every="1h", command=["true"])
    ahead, head = _ahead_for(hourly, at)
    assert ahead.take([head], at + timedelta(milliseconds=300), None) is not None
    assert ahead.take([head], at - timedelta(milliseconds=1), None) is None  # too early
    assert ahead.take([head], at + timedelta(seconds=1), None) is None  # a second late
    assert ahead.take([head], at, "Europe/Berlin") is None  # the default zone changed
    name, nfa, changed = head
    assert ahead.take([(name, nfa, changed + timedelta(microseconds=1))], at, None) is None
    assert ahead.take([(name, nfa + HOUR, changed)], at, None) is None
    assert ahead.take([("other", nfa, changed)], at, None) is None

    once = TaskSpec(name="o", at=at, expires="200ms", command=["true"])
    ahead, head = _ahead_for(once, at)
    taken = ahead.take([head], at + timedelta(milliseconds=100), None)
    assert taken is not None and [s.status for s in taken[0].slots] == [SlotStatus.PENDING]
    assert ahead.take([head], at + timedelta(milliseconds=300), None) is None  # expired
