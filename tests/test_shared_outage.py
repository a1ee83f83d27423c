"""After a database outage of its own, a node does not take over the runs of other
nodes at once: the outage lapsed their leases too, and they renew as soon as they
reach the database (the soak's PostgreSQL connection cuts had live nodes' finished
runs recorded lost and done again)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from agentcron.clock import FakeClock
from agentcron.engine.actions import ActionRegistry
from agentcron.engine.engine import RENEWAL_GRACE, Engine, EngineSettings
from agentcron.model import ErrorClass, NewSlot, SlotStatus, TaskSource, TaskSpec
from agentcron.store.sqlite import SQLiteStore
from faulty_store import FaultyStore, connection_lost


def test_other_nodes_runs_are_taken_over_only_after_a_renewal_grace(tmp_path: Path) -> None:
    clock = FakeClock()
    inner = SQLiteStore(tmp_path / "a.db")
    store = FaultyStore(inner)
    now = clock.now()
    spec = TaskSpec(name="job", every="1h", command=["true"], retries=2)
    inner.upsert_task(spec, TaskSource.API, now, now + timedelta(hours=1))
    inner.add_slot("job", NewSlot(now), now)
    (theirs,) = inner.claim("other-node", now, now + timedelta(seconds=10), 1)
    engine = Engine(
        store,  # type: ignore[arg-type]
        clock,
        EngineSettings(home=tmp_path / "home", owner="this-node", lease=timedelta(seconds=10)),
        ActionRegistry(pool_size=1),
        rand=lambda: 0.0,
    )

    def status() -> SlotStatus:
        slot = inner.get_slot(theirs.slot.id)
        assert slot is not None
        return slot.status

    async def scenario() -> None:
        store.fail("lapsed", "next_times", "due_heads", "due_tasks", "claim", error=connection_lost)
        clock.advance(timedelta(seconds=15))  # the shared outage outlasts the lease
        await engine.run_pass()
        assert engine.health.outage is not None
        store.clear()
        clock.advance(timedelta(seconds=1))
        await engine.run_pass()  # back: the other node has had no chance to renew
        assert engine.health.outage is None
        assert status() is SlotStatus.RUNNING
        clock.advance(RENEWAL_GRACE + timedelta(seconds=1))  # it never did: it is dead
        await engine.run_pass()

    try:
        asyncio.run(scenario())
        slot = inner.get_slot(theirs.slot.id)
        assert slot is not None and slot.status is SlotStatus.RETRYING
        assert slot.error_class is ErrorClass.WORKER_LOST
    finally:
        inner.close()
