"""A fire missed while agentcron ran (a stalled loop, a frozen machine) says so; only
fires from before the daemon started blame downtime (the soak saw a 6 s machine stall
recorded as "the daemon was not running")."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from agentcron.model import SlotStatus, TaskSource, TaskSpec
from harness import Harness


def _missed_reasons(h: Harness, task: str) -> list[str]:
    return [s.reason or "" for s in h.slots(task) if s.status is SlotStatus.MISSED]


def test_fires_missed_during_a_stall_are_not_called_downtime(
    sqlite_store: Any, clock: Any, home: Path
) -> None:
    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("t", lambda: "x", every="1m", catchup="latest")
        h.clock.advance(timedelta(minutes=1))
        await h.tick()
        h.clock.advance(timedelta(minutes=10))  # the loop did not tick for 10 minutes
        await h.tick()
        return h

    h = asyncio.run(scenario())
    reasons = _missed_reasons(h, "t")
    assert len(reasons) == 9, reasons
    assert all("agentcron was running but its scheduler was late" in r for r in reasons)
    assert not any("not running" in r for r in reasons)


def test_fires_from_before_the_daemon_started_are_downtime(
    sqlite_store: Any, clock: Any, home: Path
) -> None:
    spec = TaskSpec(name="t", every="1m", catchup="none", command=["true"])
    start = clock.now()
    sqlite_store.upsert_task(spec, TaskSource.API, start, start + timedelta(minutes=1))
    clock.advance(timedelta(minutes=10))  # nothing ran meanwhile

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)  # the daemon starts now
        await h.tick()
        return h

    h = asyncio.run(scenario())
    reasons = _missed_reasons(h, "t")
    expected = "agentcron was not scheduling (stopped, or stopping); catchup: none"
    assert reasons and all(r == expected for r in reasons)


def test_fires_missed_during_a_stall_the_watchdog_saw_say_when_it_was(
    sqlite_store: Any, clock: Any, home: Path
) -> None:
    """With the watchdog's record of the stall, the reason gives its times."""
    from agentcron.watchdog.stalls import LoopStall

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("t", lambda: "x", every="1m", catchup="latest")
        h.clock.advance(timedelta(minutes=1))
        await h.tick()
        stall = LoopStall(began=h.clock.now(), ended=h.clock.now() + timedelta(minutes=10))
        h.engine.stall_reason = lambda at, zone: stall.reason(zone) if stall.covers(at) else None
        h.clock.advance(timedelta(minutes=10))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    reasons = _missed_reasons(h, "t")
    assert len(reasons) == 9, reasons
    assert all(
        r.startswith("the scheduler loop was stalled from 00:01:00 to 00:11:00") for r in reasons
    ), reasons
