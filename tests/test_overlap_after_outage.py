"""A run whose end could not be written yet does not make the next fire a skip.

Outside-in probe: the database was locked (or the disk full, or the daemon frozen) as a
run of an ``overlap: skip`` task ended; its slot stayed ``running`` in the record while
the end waited, the next fire was recorded skipped "the previous run (slot N) was still
running", and catch-up ran nothing. The new slot now waits for that end to be written,
then runs.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.model import SlotStatus
from harness import Harness, until

CALLS: list[str] = []


def quick() -> str:
    CALLS.append("run")
    return "done"


def test_the_next_fire_waits_for_an_end_the_database_holds_back(
    sqlite_store: Any, clock: FakeClock, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(sqlite_store, clock, home)
    h.add("job", quick, every="1m", overlap="skip", retries=0)
    locked = [True]
    real = sqlite_store.finish_many

    def finish_many(items: Any) -> Any:
        if locked[0]:
            raise sqlite3.OperationalError("database is locked")
        return real(items)

    monkeypatch.setattr(sqlite_store, "finish_many", finish_many)
    CALLS.clear()

    async def scenario() -> None:
        clock.advance(timedelta(minutes=1))
        await h.engine.tick()  # the run starts and ends; its end cannot be written
        await until(lambda: CALLS == ["run"] and h.engine.running == 1, timeout=10)
        await until(lambda: any(r.finishing for r in h.engine._runs.values()), timeout=10)
        clock.advance(timedelta(minutes=1))
        await h.engine.tick()  # the next fire: its slot must wait, not be skipped
        statuses = [s.status for s in h.slots("job")]
        assert SlotStatus.SKIPPED not in statuses, h.slots("job")
        locked[0] = False  # the database is back: the held end is written
        await h.engine.wait_idle(10)
        await h.tick()
        await h.engine.wait_idle(10)

    asyncio.run(scenario())
    assert [s.status for s in h.slots("job")] == [SlotStatus.SUCCEEDED, SlotStatus.SUCCEEDED]
    assert CALLS == ["run", "run"]
