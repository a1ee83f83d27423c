"""After a database outage of its own, a node does not take over the runs of other
nodes at once: the outage lapsed their leases too, and they renew as soon as they
reach the database (the soak's PostgreSQL connection cuts had live nodes' finished
runs recorded lost and done again)."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import pytest

from agentcron.clock import FakeClock
from agentcron.engine.actions import ActionRegistry
from agentcron.engine.engine import Engine
from agentcron.engine.outages import RENEWAL_GRACE
from agentcron.engine.settings import EngineSettings
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


def test_each_nodes_recovery_says_what_it_recorded_not_that_nothing_came_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three nodes through one outage each told its end: one "recorded 13 slot(s) …",
    the other two "No slot came due meanwhile" for the same span (outside-in probe,
    PostgreSQL). A node with peers says what it recorded itself, names them, and says
    which node it is, as its "cannot use its database" did."""
    from datetime import UTC, datetime, timedelta

    from agentcron.daemon import Daemon, DaemonOptions
    from agentcron.engine.health import Outage
    from agentcron.engine.settings import TickReport
    from agentcron.model import Message, NodeInfo
    from agentcron.store.sqlite import SQLiteStore

    since = datetime(2026, 6, 1, 19, 59, 8, tzinfo=UTC)
    now = since + timedelta(minutes=2)
    daemon = Daemon(DaemonOptions(config_path=None, home=tmp_path / "home"))
    store = SQLiteStore(tmp_path / "agentcron.db")
    daemon.store = store
    told: list[Message] = []
    monkeypatch.setattr(daemon, "_tell_soon", told.append)
    outage = Outage(since=since, failures=9, error="connection refused", database=True)
    try:
        daemon._outage_ended(outage, now, TickReport())  # alone on its database
        for node, beat in (
            ("peer", since - timedelta(seconds=4)),
            ("gone", since - timedelta(hours=1)),
        ):
            store.register_node(NodeInfo(node, "host2", 4242, "/h", beat, beat))
        daemon._outage_ended(outage, now, TickReport())
        daemon._outage_ended(outage, now, TickReport(materialized=3, started=1, fresh=1, missed=2))
    finally:
        store.close()
    alone, nothing, some = (m.body for m in told)
    assert "No slot came due meanwhile." in alone and "Other nodes" not in alone
    assert "No slot came due" not in nothing
    assert "This node had no slot to record meanwhile." in nothing
    assert "Other nodes of this database record their own (host2 (pid 4242))." in nothing
    assert "This node's first tick after it recorded 3 slot(s)" in some
    assert f"(pid {os.getpid()}) after 2 min" in alone


def test_a_database_upgraded_under_a_running_daemon_is_told_once_per_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pip install -U agentcron` and any command (or a node upgraded elsewhere on
    PostgreSQL) upgrades the database under a running daemon, which goes on with its old
    code without a word. It now says so, once per newer version, with what to do."""
    from agentcron.daemon import Daemon, DaemonOptions
    from agentcron.model import Message
    from agentcron.store.migrations import SCHEMA_VERSION
    from agentcron.store.sqlite import SQLiteStore

    daemon = Daemon(DaemonOptions(config_path=None, home=tmp_path / "home"))
    store = SQLiteStore(tmp_path / "agentcron.db")
    daemon.store = store
    told: list[Message] = []
    monkeypatch.setattr(daemon, "_tell_soon", told.append)

    def look() -> None:
        daemon._schema_looked = 0.0  # its minute has passed
        daemon._check_schema()

    try:
        look()
        assert told == []  # the version it knows
        store.set_meta("schema_version", str(SCHEMA_VERSION + 1))
        look()
        look()
        store.set_meta("schema_version", str(SCHEMA_VERSION + 2))
        look()
    finally:
        store.close()
    assert len(told) == 2, [m.body for m in told]
    first = told[0].body
    assert f"(schema {SCHEMA_VERSION + 1}; this version knows {SCHEMA_VERSION})" in first
    assert "Restart it with the new version" in first
    assert told[0].severity == "warning"
