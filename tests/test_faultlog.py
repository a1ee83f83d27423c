"""A fault that repeats is logged once with its traceback, then every few minutes, and
its end once: a database outage must not write a traceback per retry."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agentcron.faultlog import FaultLog
from agentcron.notify.memory import MemoryOutbox
from agentcron.notify.sender import OutboxSender
from faulty_store import FaultyStore, locked
from harness import until


def test_a_streak_is_logged_first_then_every_few_minutes_then_its_end(caplog: Any) -> None:
    now = {"t": 0.0}
    faults = FaultLog(logging.getLogger("t"), "the thing", monotonic=lambda: now["t"])
    with caplog.at_level(logging.WARNING, logger="t"):
        for _ in range(100):  # 100 failures over 200 s: one line
            faults.failed(RuntimeError("database is locked"))
            now["t"] += 2.0
        now["t"] += 150.0  # past five minutes since the first line
        faults.failed(RuntimeError("database is locked"))
        faults.ok()
        faults.ok()  # already fine: nothing more
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0][1].startswith("the thing failed; trying again")
    assert caplog.records[0].exc_info is not None
    assert "still failing: 101 failures" in lines[1][1]
    assert lines[2] == ("WARNING", "the thing works again after 101 failure(s) in 350s")


def test_the_outbox_sender_logs_a_failing_store_once(caplog: Any) -> None:
    store = FaultyStore(MemoryOutbox())
    store.fail("claim_outbox", error=locked)
    sender = OutboxSender(store)  # type: ignore[arg-type]

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run_forever(stop, interval=0.01))
        await until(lambda: store.failed["claim_outbox"] >= 20)
        store.clear()
        await until(lambda: store.calls["claim_outbox"] >= store.failed["claim_outbox"] + 2)
        stop.set()
        await task

    with caplog.at_level(logging.WARNING, logger="agentcron"):
        asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert sum("outbox drain failed" in m for m in messages) == 1, messages
    assert sum("outbox drain works again" in m for m in messages) == 1, messages


def test_a_sender_failing_on_its_own_hands_the_fault_to_its_supervisor() -> None:
    """Failing for longer than escalate_after while the database is not known to be
    away is this part's own fault: run_forever raises, so the supervisor tells the
    owner and restarts it; while the database is away it keeps waiting quietly."""
    import pytest

    store = FaultyStore(MemoryOutbox())
    store.fail("claim_outbox", error=locked)

    async def scenario(hold: bool) -> None:
        sender = OutboxSender(store)  # type: ignore[arg-type]
        stop = asyncio.Event()
        task = asyncio.create_task(
            sender.run_forever(stop, interval=0.01, hold=lambda: hold, escalate_after=0.2)
        )
        if hold:
            await asyncio.sleep(0.5)
            assert not task.done()  # the database is away: nothing to escalate
            stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario(hold=True))
    with pytest.raises(Exception, match="database is locked"):
        asyncio.run(scenario(hold=False))
