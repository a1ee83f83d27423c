"""A claim whose transaction waited for the database (a locked table) starts its runs
when they really start: their timeout, their "running too long" warning, their
durations and their leases count from then, not from the pass that waited.

Outside-in probe (three nodes on PostgreSQL, a table locked for 25 s just before a
fire): a 35 s run with ``timeout: 40s`` was killed 32 s after its command started, and
7 s runs were told as "running for 45s, longer than its 30s limit". The waiting is
played here by the fake clock moving inside the claim's transaction.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.model import SlotStatus
from agentcron.store.base import Store
from harness import Harness

WAITED = timedelta(seconds=25)


def test_runs_claimed_by_a_transaction_that_waited_start_when_they_start(
    store: Store, clock: FakeClock, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def long_run() -> str:
        release.wait(30)
        return "done"

    claimed = store.materialize_and_start
    locks = [WAITED]

    def waited(*args: Any, **kwargs: Any) -> Any:
        result = claimed(*args, **kwargs)
        if locks:  # the table was locked: the pass's time is 25 s old
            clock.advance(locks.pop())
        return result

    async def scenario() -> None:
        h = Harness(store, clock, home)
        h.add("long", long_run, every="10m", timezone="UTC", timeout="40s", retries=0)
        monkeypatch.setattr(store, "materialize_and_start", waited)
        clock.advance(timedelta(minutes=10))
        await h.engine.tick()
        began = clock.now()
        [slot] = store.running_slots()
        [attempt] = store.attempts(slot.id)
        assert (slot.started_at, attempt.started_at) == (began, began)
        assert slot.lease_expires_at == began + h.engine.settings.lease
        # 60 s after the pass began, 35 s into the run: within its timeout (and the
        # engine's outer bound of timeout + kill_grace + 10 s) from its real start
        clock.advance(timedelta(seconds=35))
        await h.engine.tick()
        release.set()
        await h.engine.wait_idle(30)
        [done] = [s for s in h.slots("long") if s.id == slot.id]
        assert done.status is SlotStatus.SUCCEEDED, done
        [attempt] = store.attempts(slot.id)
        assert attempt.started_at == began

    try:
        asyncio.run(scenario())
    finally:
        release.set()


def test_a_pass_that_did_not_wait_writes_no_second_stamp(
    store: Store, clock: FakeClock, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The common case costs nothing more: no second write of the start."""
    restamped: list[Any] = []
    monkeypatch.setattr(store, "restamp_started", lambda *a: restamped.append(a))

    async def scenario() -> None:
        h = Harness(store, clock, home)
        h.add("quick", lambda: "ok", every="1m", timezone="UTC")
        clock.advance(timedelta(minutes=1))
        await h.tick()

    asyncio.run(scenario())
    assert restamped == []
    [slot] = store.slots("quick", limit=10)
    assert slot.status is SlotStatus.SUCCEEDED
