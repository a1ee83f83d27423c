"""Staggered fires are planned ahead a window at a time (engine._prepare): one read of
the coming fires serves every tick until the window's end, each tick takes its fires'
plans, and a task's output folder is made once, not on every tick (issue 16: with
fires a millisecond apart the old per-instant preparation cost a read, a plan and a
thread job per fire, and its plans were never taken)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from agentcron.engine.planning import Ahead
from agentcron.model import Finished, SlotStatus
from agentcron.model.provider import ProviderNews, ProviderState
from harness import Harness, until


def test_staggered_fires_take_plans_made_a_window_ahead(
    sqlite_store: Any, clock: Any, home: Any, monkeypatch: Any
) -> None:
    ran: list[str] = []
    takes: list[int | None] = []
    original_take = Ahead.take

    def take(ahead: Ahead, *args: Any) -> Any:
        got = original_take(ahead, *args)
        takes.append(None if got is None else len(got))
        return got

    monkeypatch.setattr(Ahead, "take", take)
    reads: list[int] = []
    folders: list[int] = []

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home, max_concurrency=10)
        for i in range(4):  # fires at .100, .200, .300, .400 of every second
            h.add(
                f"t{i}",
                lambda i=i: ran.append(f"t{i}"),
                every="1s",
                anchor=datetime(2026, 1, 1, 0, 0, 0, (i + 1) * 100_000, tzinfo=UTC),
            )
        real_due, real_folders = h.store.due_tasks, h.engine._make_folders_of

        def due_tasks(now: datetime, limit: int) -> Any:
            got = real_due(now, limit)
            reads.append(len(got))
            return got

        def make_folders(plans: Any) -> None:
            before = len(h.engine._folders_made)
            real_folders(plans)
            folders.append(len(h.engine._folders_made) - before)

        h.store.due_tasks = due_tasks  # type: ignore[method-assign]
        h.engine._make_folders_of = make_folders  # type: ignore[method-assign]
        h.clock.advance(timedelta(milliseconds=50))
        await h.tick(settle=False)  # 00:00:00.050 prepares the coming second
        for _ in range(3):  # three seconds of fires, a tick at each
            for i in range(4):
                h.clock.advance(timedelta(milliseconds=100 if i else 50))
                await h.tick()
            h.clock.advance(timedelta(milliseconds=650))  # to .050 of the next second
            await h.tick(settle=False)
        await h.engine.shutdown(10)  # the last ends recorded before the loop closes
        return h

    h = asyncio.run(scenario())
    assert sorted(ran) == sorted(f"t{i}" for i in range(4) for _ in range(3))
    for i in range(4):
        assert [s.status for s in h.slots(f"t{i}")] == [SlotStatus.SUCCEEDED] * 3
    assert takes == [1] * 12  # every fire's plan made ahead was taken
    # one read of the coming fires per window (a second), none per fire: no fire was
    # planned afresh
    assert reads == [0, 4, 4, 4, 4], reads  # the first tick's (nothing planned yet)
    assert folders[0] == 4 and sum(folders[1:]) == 0  # each task's folder made once


def test_a_batch_bounds_what_one_pass_prepares_but_an_instant_is_prepared_whole(
    sqlite_store: Any, clock: Any, home: Any, monkeypatch: Any
) -> None:
    import agentcron.engine.engine as engine_module

    monkeypatch.setattr(engine_module, "PREPARE_BATCH", 2)
    takes: list[int | None] = []
    original_take = Ahead.take

    def take(ahead: Ahead, *args: Any) -> Any:
        got = original_take(ahead, *args)
        takes.append(None if got is None else len(got))
        return got

    monkeypatch.setattr(Ahead, "take", take)
    ran: list[str] = []

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home, max_concurrency=10)
        for i in range(4):  # staggered: .100 .. .400
            h.add(
                f"s{i}",
                lambda i=i: ran.append(f"s{i}"),
                every="1s",
                anchor=datetime(2026, 1, 1, 0, 0, 0, (i + 1) * 100_000, tzinfo=UTC),
            )
        for i in range(5):  # a burst at .500, more than a batch
            h.add(
                f"b{i}",
                lambda i=i: ran.append(f"b{i}"),
                every="1s",
                anchor=datetime(2026, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC),
            )
        h.clock.advance(timedelta(milliseconds=50))
        await h.tick(settle=False)
        for step in (50, 100, 100, 100, 100):  # .100 .. .500
            h.clock.advance(timedelta(milliseconds=step))
            await h.tick()
        await h.engine.shutdown(10)
        return h

    asyncio.run(scenario())
    assert sorted(ran) == sorted([f"s{i}" for i in range(4)] + [f"b{i}" for i in range(5)])
    assert takes == [1, 1, 1, 1, 5]  # each fire planned ahead; the burst in one piece


def test_a_runs_end_wakes_a_full_engine_at_once_and_a_roomy_one_within_coalesce(
    sqlite_store: Any, clock: Any, home: Any
) -> None:
    """With every place taken, slots may wait for the room a run's end frees: the loop
    ticks at once (a burst at max_concurrency 10 is not held 5 ms per cycle). With
    room to spare, ends close together share one pass a few ms later."""

    async def scenario() -> list[bool]:
        h = Harness(sqlite_store, clock, home, max_concurrency=1)
        seen = []
        h.engine._run_ended(True, True)
        seen.append(h.engine._wake.is_set())
        h.engine._wake.clear()
        h.engine._run_ended(False, False)
        h.engine._run_ended(False, False)  # one timer for both
        seen.append(h.engine._wake.is_set())
        await asyncio.wait_for(h.engine._wake.wait(), 10)
        seen.append(h.engine._end_wake is None)
        return seen

    assert asyncio.run(scenario()) == [True, False, True]


def test_a_run_that_ends_for_good_asks_for_a_pass_only_when_a_slot_waits_for_it(
    sqlite_store: Any, clock: Any, home: Any
) -> None:
    """A pass after a run's end is for what the end may free: a slot queued behind it,
    a retry to plan. A run that ended for good while nothing waits asks for none (a
    steady load of staggered tasks paid a pass for such ends, a quarter of its
    passes); one with a slot queued behind it, or a retry, still asks, and the queued
    slot starts on that pass."""
    release = threading.Event()
    calls: list[str] = []

    def plain() -> str:
        calls.append("plain")
        return "fine"

    def slow() -> str:
        calls.append("slow")
        release.wait(10)
        return "done"

    def flaky() -> str:
        calls.append("flaky")
        raise ConnectionError("connection reset by peer")

    async def ended(h: Harness, task: str, runs: int) -> None:
        await until(lambda: sum(1 for f in h.finished if f.spec.name == task) >= runs)
        await asyncio.sleep(0.05)  # the run's own end: past its record and listeners

    def asked(h: Harness) -> bool:
        return h.engine._wake.is_set() or h.engine._end_wake is not None

    async def first_run_asks(h: Harness, name: str, func: Any, retries: int) -> bool:
        """Add ``name`` and run its first fire to its end: whether the end asked for a pass."""
        h.add(name, func, every="1m", retries=retries)
        clock.advance(timedelta(minutes=1))
        h.engine._wake.clear()
        await h.engine.tick()
        await ended(h, name, 1)
        return asked(h)

    async def scenario() -> dict[str, bool]:
        h = Harness(sqlite_store, clock, home, max_concurrency=4)
        seen: dict[str, bool] = {}
        seen["ended for good, nothing waits"] = await first_run_asks(h, "plain", plain, 0)

        h.add("slow", slow, every="1m", overlap="queue", retries=0)
        clock.advance(timedelta(minutes=1))
        await h.engine.tick()  # slow's first run starts and blocks
        await until(lambda: "slow" in calls)
        await ended(h, "plain", 2)  # or plain's next fire finds it running: skipped
        clock.advance(timedelta(minutes=1))
        await h.engine.tick()  # its next fire is queued behind it
        await ended(h, "plain", 3)
        h.engine._wake.clear()
        if h.engine._end_wake is not None:
            h.engine._end_wake.cancel()
            h.engine._end_wake = None
        release.set()
        await ended(h, "slow", 1)
        seen["a slot queued behind it"] = asked(h)
        await h.engine.tick()
        await until(lambda: calls.count("slow") == 2)
        await h.engine.wait_idle(10)
        h.service.remove("slow")
        h.service.remove("plain")

        seen["a retry to plan"] = await first_run_asks(h, "flaky", flaky, 2)
        await h.engine.shutdown(10)
        return seen

    assert asyncio.run(scenario()) == {
        "ended for good, nothing waits": False,
        "a slot queued behind it": True,
        "a retry to plan": True,
    }


def test_a_provider_answering_again_wakes_the_loop_for_the_slots_that_waited(
    sqlite_store: Any, clock: Any, home: Any
) -> None:
    """The slots that waited for a provider are due the moment it answers: the loop is
    woken for them, not left to a pass some other end or the beat brings."""
    now = clock.now()
    state = ProviderState("api.example", "api.example", now, "HTTP 429", now)

    async def scenario() -> list[bool]:
        h = Harness(sqlite_store, clock, home)
        seen = []
        for news in ([], [ProviderNews("answered", state, "story", now)]):
            h.engine.providers.feedback = lambda ended, at, news=news: news  # type: ignore[method-assign]
            h.engine._wake.clear()
            h.engine._ended.append(cast(Finished, object()))
            h.engine._tell_listeners()
            seen.append(h.engine._wake.is_set())
        return seen

    assert asyncio.run(scenario()) == [False, True]
