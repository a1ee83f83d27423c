"""How runs end: the engine's overrun sweep and the group commit of finished runs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from agentcron.engine.finisher import Finisher
from agentcron.model import AttemptOutcome, ErrorClass, Finish, SlotStatus
from harness import Harness, until


def test_a_run_that_outlives_every_bound_is_abandoned_as_a_timeout(
    sqlite_store, clock, home
) -> None:
    """An action that does not end at its timeout (here: an inline call whose own
    timer counts real seconds while the clock is fake) is stopped by the engine's sweep
    and recorded as ``timeout``, not left ``running``."""
    started = asyncio.Event()

    async def hangs() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("hangs", hangs, every="1h", timeout="5m", kill_grace="10s", retries=0)
        h.clock.advance(timedelta(hours=1))
        await h.tick(settle=False)
        await asyncio.wait_for(started.wait(), 10)
        h.clock.advance(timedelta(minutes=5, seconds=19))  # inside 5m + 10s grace + 10s
        await h.tick(settle=False)
        await asyncio.sleep(0)
        assert h.engine.running == 1
        h.clock.advance(timedelta(seconds=2))
        await h.tick(settle=False)
        await h.engine.wait_idle(10)
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("hangs")
    assert slot.status is SlotStatus.FAILED
    assert slot.error_class is ErrorClass.TIMEOUT
    assert "timed out after 5 min" in (slot.error or "")
    assert [f.outcome.error_class for f in h.finished] == [ErrorClass.TIMEOUT]


def test_runs_that_end_together_are_recorded_together(sqlite_store, clock, home) -> None:
    """Twenty runs ending in one pass of the loop: every one recorded, in few commits."""
    batches: list[int] = []
    original = sqlite_store.finish_many

    def counting(items: Any) -> Any:
        batches.append(len(items))
        return original(items)

    sqlite_store.finish_many = counting

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home, max_concurrency=50)
        for i in range(20):
            h.add(f"t{i:02d}", lambda: "out", every="1h")
        h.clock.advance(timedelta(hours=1))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    assert sum(batches) == 20
    assert len(batches) < 20
    for i in range(20):
        (slot,) = h.slots(f"t{i:02d}")
        assert slot.status is SlotStatus.SUCCEEDED
    assert len(h.finished) == 20
    assert all(f.slot.status is SlotStatus.SUCCEEDED for f in h.finished)


class _FlakyStore:
    """finish_many fails whenever slot 13 is in the batch, until ``heal`` is set; with
    ``down`` every write fails (the database itself is away)."""

    def __init__(self) -> None:
        self.written: list[int] = []
        self.calls = 0
        self.heal = False
        self.down = False

    def finish_many(self, items: list[Finish]) -> list[Any]:
        self.calls += 1
        if self.down or (not self.heal and any(i.slot_id == 13 for i in items)):
            raise RuntimeError("disk I/O error")
        self.written.extend(i.slot_id for i in items)
        return [f"slot-{i.slot_id}" for i in items]

    def set_meta(self, key: str, value: str) -> None:
        """The finisher's own small write: refused only when the database is away."""
        if self.down:
            raise RuntimeError("disk I/O error")


def test_one_bad_record_does_not_cost_the_others_theirs_nor_make_an_outage() -> None:
    """The database takes other writes and refuses one record: the others are written
    at once, that one is tried again (a passing refusal lands) without the engine
    taking it for an outage."""
    store = _FlakyStore()
    finisher = Finisher(store, retry_first=0.05)  # type: ignore[arg-type]
    outcome = AttemptOutcome(ok=True, slot_status=SlotStatus.SUCCEEDED)

    async def scenario() -> list[Any]:
        from datetime import UTC, datetime

        now = datetime(2026, 1, 1, tzinfo=UTC)
        calls = [
            asyncio.ensure_future(finisher.finish(Finish(i, i, "n", outcome, now)))
            for i in range(10, 16)
        ]
        await until(lambda: sorted(store.written) == [10, 11, 12, 14, 15])
        assert not calls[3].done()  # its run still waits: the engine keeps holding it
        assert finisher.last_error is None and finisher.failing_since is None
        store.heal = True  # refused once, then taken: nothing is given up
        return await asyncio.gather(*calls)

    results = asyncio.run(scenario())
    assert results == [f"slot-{i}" for i in range(10, 16)]
    assert store.written.count(13) == 1
    assert finisher.failing_since is None and finisher.backlog == 0


def test_a_database_outage_is_waited_out_logged_once_and_nothing_lost(caplog: Any) -> None:
    """Every write fails for a while: the batch is kept and tried again with backoff
    (not split into single writes each time), logged once; all land when it is back."""
    store = _FlakyStore()
    store.down, store.heal = True, True
    finisher = Finisher(store, retry_first=0.001)  # type: ignore[arg-type]
    outcome = AttemptOutcome(ok=True, slot_status=SlotStatus.SUCCEEDED)

    async def scenario() -> list[Any]:
        from datetime import UTC, datetime

        now = datetime(2026, 1, 1, tzinfo=UTC)
        calls = [
            asyncio.ensure_future(finisher.finish(Finish(i, i, "n", outcome, now)))
            for i in range(20)
        ]
        await until(lambda: finisher.failures >= 5)
        assert store.calls <= 2 * finisher.failures + 2  # a probe, not twenty writes
        store.down = False
        return await asyncio.gather(*calls)

    with caplog.at_level("WARNING", logger="agentcron.engine"):
        results = asyncio.run(scenario())
    assert results == [f"slot-{i}" for i in range(20)]
    assert sorted(store.written) == list(range(20))
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("could not record the end of 20 run(s)")
    assert sum("could not record" in m for m in messages) == 1
    assert messages[-1].startswith("ends of runs are recorded again after")


def test_a_lone_finish_is_written_without_waiting(sqlite_store, clock, home) -> None:
    """No timer: a single run's record is written on the loop's next pass."""

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("solo", lambda: "x", every="1h")
        h.clock.advance(timedelta(hours=1))
        await h.tick(settle=False)
        await until(lambda: h.slots("solo")[0].status is SlotStatus.SUCCEEDED, timeout=10)
        return h

    h = asyncio.run(scenario())
    assert h.slots("solo")[0].status is SlotStatus.SUCCEEDED


def test_outer_limit_counts_the_precheck_and_grace() -> None:
    from agentcron.engine.runner import outer_limit
    from agentcron.model import TaskSpec

    plain = TaskSpec(name="a", every="1h", command=["true"], timeout="5m", kill_grace="10s")
    checked = TaskSpec(
        name="b", every="1h", command=["true"], timeout="5m", kill_grace="10s", precheck="true"
    )
    assert outer_limit(plain) == timedelta(minutes=5, seconds=20)
    assert outer_limit(checked) == timedelta(minutes=10, seconds=20)


def test_a_coming_fire_is_prepared_but_nothing_is_recorded_early(sqlite_store, clock, home) -> None:
    """Two seconds before a fire the engine builds the schedules and output folders of
    the tasks due then; the slots themselves are recorded only when due."""

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        due = clock.now() + timedelta(seconds=10)
        for i in range(3):
            h.add(f"soon{i}", lambda: "x", at=due.isoformat())
        h.add("later", lambda: "x", at=(due + timedelta(hours=1)).isoformat())
        h.clock.advance(timedelta(seconds=5))
        await h.tick()
        assert not (home / "outputs").exists()  # 5 s ahead: not yet
        h.clock.advance(timedelta(seconds=3.5))
        await h.tick()
        folders = home / "outputs"
        await until(lambda: folders.exists() and len(list(folders.iterdir())) == 3)
        assert sorted(p.name for p in folders.iterdir()) == ["soon0", "soon1", "soon2"]
        assert set(h.engine._schedules.entries) == {"soon0", "soon1", "soon2"}
        assert all(h.slots(f"soon{i}") == [] for i in range(3))
        h.clock.advance(timedelta(seconds=1.5))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    for i in range(3):
        (slot,) = h.slots(f"soon{i}")
        assert slot.status is SlotStatus.SUCCEEDED
    assert h.slots("later") == []


def test_the_schedule_cache_is_bounded(sqlite_store, clock, home, monkeypatch) -> None:
    """Schedules are kept per task name; names of removed tasks must not pile up."""
    from agentcron.engine import engine as engine_module
    from agentcron.model import TaskSpec

    monkeypatch.setattr(engine_module, "SCHEDULE_CACHE_LIMIT", 3)
    h = Harness(sqlite_store, clock, home)
    specs = [TaskSpec(name=f"t{i}", every="1h", command=["true"]) for i in range(5)]
    built = [h.engine.schedule_for(s) for s in specs]
    assert len(h.engine._schedules.entries) <= 3
    assert h.engine.schedule_for(specs[4]) is built[4]  # the newest is still cached
    assert h.engine.first_fire(specs[0], clock.now()) is not None  # evicted: rebuilt


def test_an_inline_call_that_returns_after_its_timeout_is_recorded_timed_out(
    sqlite_store: Any, clock: Any, home: Any
) -> None:
    """It cannot be killed; when it finally returns, its success is not believed."""

    def slow() -> str:
        clock.advance(timedelta(minutes=2))  # the call took two minutes of a one-minute timeout
        return "late but fine"

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("slow", slow, every="1h", timeout="1m", retries=0)
        h.clock.advance(timedelta(hours=1))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("slow")
    assert slot.status is SlotStatus.FAILED
    assert slot.error_class is ErrorClass.TIMEOUT
    assert "timed out after 1 min" in (slot.error or ""), slot.error
    assert [f.outcome.ok for f in h.finished] == [False]


def test_an_inline_call_within_its_timeout_succeeds(
    sqlite_store: Any, clock: Any, home: Any
) -> None:
    def quick() -> str:
        clock.advance(timedelta(seconds=30))
        return "in time"

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("quick", quick, every="1h", timeout="1m", retries=0)
        h.clock.advance(timedelta(hours=1))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    assert [s.status for s in h.slots("quick")] == [SlotStatus.SUCCEEDED]
