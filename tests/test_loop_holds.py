"""An inline ``async def`` that holds the daemon's event loop is named: in a warning when
it happens, and in the reason of every fire that came due meanwhile. Before, the fires
of other tasks were "missed: agentcron was running but its scheduler was late (a
stalled loop or an overloaded machine)", and nothing said which task held the loop
(outside-in probe)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agentcron import Scheduler
from agentcron.actions import loop_holds
from agentcron.actions.loop_holds import Hold, LoopHolds, Timed, holds_of
from agentcron.model import SlotStatus
from agentcron.store.sqlite import SQLiteStore
from harness import run_scheduler_until


def run_timed(coro: Any, holds: LoopHolds, task: str = "t") -> Any:
    async def main() -> Any:
        return await Timed(coro, task, holds)

    return asyncio.run(main())


def test_values_errors_and_cancellation_pass_through() -> None:
    holds = LoopHolds()

    async def returns() -> int:
        await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        return 7

    assert run_timed(returns(), holds) == 7

    async def raises() -> None:
        await asyncio.sleep(0)
        raise KeyError("x")

    with pytest.raises(KeyError):
        run_timed(raises(), holds)

    seen: list[str] = []

    async def waits() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled inside")
            raise

    async def cancel() -> None:
        task = asyncio.create_task(_await(Timed(waits(), "t", holds)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel())
    assert seen == ["cancelled inside"]

    async def caught() -> str:  # a cancellation caught inside goes on as the call says
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "kept going"
        return "not cancelled"

    async def cancel_caught() -> str:
        task = asyncio.create_task(_await(Timed(caught(), "t", holds)))
        await asyncio.sleep(0.01)
        task.cancel()
        return await task

    assert asyncio.run(cancel_caught()) == "kept going"
    assert list(holds.recent) == []  # nothing held the loop


async def _await(awaitable: Any) -> Any:
    return await awaitable


def test_a_step_that_holds_the_loop_is_kept_and_logged_once_a_while(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(loop_holds, "HOLD_NOTED", 0.05)
    caplog.set_level(logging.WARNING, logger="agentcron.actions")
    holds = LoopHolds()

    async def blocks() -> None:
        await asyncio.sleep(0)
        time.sleep(0.08)  # the blocking call inside an async def
        await asyncio.sleep(0)

    before = datetime.now(UTC)
    run_timed(blocks(), holds, task="blocker")
    (hold,) = holds.recent
    assert hold.task == "blocker" and before <= hold.began < hold.ended
    assert 0.07 <= (hold.ended - hold.began).total_seconds() < 1.0
    assert holds.covering(hold.began + timedelta(milliseconds=40)) == hold
    assert holds.covering(hold.ended + timedelta(seconds=1)) is None
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("blocker: its async function held the daemon's event loop for")
    assert "time.sleep" in line
    run_timed(blocks(), holds, task="blocker")  # within LOG_EVERY: counted, not logged
    assert len(holds.recent) == 2 and len(caplog.records) == 1
    monkeypatch.setattr(loop_holds, "LOG_EVERY", 0.0)
    run_timed(blocks(), holds, task="blocker")
    assert "(1 more since the last such line)" in caplog.records[-1].getMessage()


def test_the_reason_names_the_task_and_the_times() -> None:
    began = datetime(2026, 12, 5, 20, 49, 40, tzinfo=UTC)
    hold = Hold("blocker", began, began + timedelta(seconds=6.2))
    assert hold.reason(ZoneInfo("Europe/Paris")) == (
        "the async function of task blocker held agentcron's event loop from 21:49:40 to "
        "21:49:46 CET (6s): a blocking call inside an `async def` (time.sleep, a blocking "
        "client) holds every task while it runs"
    )


def test_each_loop_has_its_own_holds() -> None:
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        assert holds_of(first) is holds_of(first)
        assert holds_of(first) is not holds_of(second)
    finally:
        first.close()
        second.close()


def test_fires_missed_while_an_async_task_held_the_loop_name_it(tmp_path: Path) -> None:
    """The daemon end to end: ``tick`` every second, ``blocker`` an async def that
    sleeps 3 s without awaiting, every 5 s. The ticks due meanwhile are missed, and say why."""
    sched = Scheduler(home=tmp_path / "home")

    async def blocker() -> None:
        time.sleep(3)

    sched.add("blocker", blocker, every="5s", isolation="inline", retries=0)
    sched.add("tick", lambda: None, every="1s", isolation="inline", retries=0)
    db = tmp_path / "home" / "agentcron.db"

    def missed() -> list[str]:
        store = SQLiteStore(db)
        try:
            return [
                s.reason or ""
                for s in store.slots("tick", limit=50)
                if s.status is SlotStatus.MISSED
            ]
        finally:
            store.close()

    run_scheduler_until(
        sched, lambda: db.exists() and bool(_ran(db, "blocker")), lambda: bool(missed())
    )
    reasons = missed()
    assert reasons and all(
        r.startswith("the async function of task blocker held agentcron's event loop from ")
        for r in reasons
    ), reasons


def _ran(db: Path, task: str) -> bool:
    store = SQLiteStore(db)
    try:
        return any(s.status is SlotStatus.SUCCEEDED for s in store.slots(task, limit=5))
    finally:
        store.close()
