"""A run held by a daemon on another machine, or on this one by a process that still
lives, is taken over a lease later than one whose process on this machine is gone: the
other machine's daemon, restarted by its service manager after a kill -9, records from
its launcher's marker how a run that finished meanwhile ended, and a frozen one does
when it thaws. Taken over at once, that finished run would be run a second time (issue
17 §2; outside-in probe, SIGSTOP)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import timedelta
from pathlib import Path

from agentcron.clock import FakeClock
from agentcron.engine.actions import ActionRegistry
from agentcron.engine.engine import Engine
from agentcron.engine.settings import EngineSettings
from agentcron.home import hostname
from agentcron.model import ErrorClass, NewSlot, NodeInfo, SlotStatus, TaskSource, TaskSpec
from agentcron.store.sqlite import SQLiteStore

LEASE = timedelta(seconds=10)


def _scenario(tmp_path: Path, host: str, pid: int = 1) -> list[SlotStatus]:
    """The other node's slot status after 11 s, 19 s and 21 s of silence."""
    clock = FakeClock()
    store = SQLiteStore(tmp_path / "a.db")
    now = clock.now()
    store.register_node(
        NodeInfo(
            node_id="far-node", host=host, pid=pid, home="/far", started_at=now, heartbeat_at=now
        )
    )
    spec = TaskSpec(name="job", every="1h", command=["true"], retries=2)
    store.upsert_task(spec, TaskSource.API, now, now + timedelta(hours=1))
    store.add_slot("job", NewSlot(now), now)
    (theirs,) = store.claim("far-node", now, now + LEASE, 1)
    engine = Engine(
        store,
        clock,
        EngineSettings(home=tmp_path / "home", owner="this-node", lease=LEASE),
        ActionRegistry(pool_size=1),
        rand=lambda: 0.0,
    )
    seen: list[SlotStatus] = []

    async def run() -> None:
        for wait in (11, 8, 2):
            clock.advance(timedelta(seconds=wait))
            await engine.run_pass()
            slot = store.get_slot(theirs.slot.id)
            assert slot is not None
            seen.append(slot.status)

    try:
        asyncio.run(run())
        slot = store.get_slot(theirs.slot.id)
        assert slot is not None
        if slot.status is SlotStatus.RETRYING:
            assert slot.error_class is ErrorClass.WORKER_LOST
    finally:
        store.close()
    return seen


def test_a_run_on_another_machine_is_left_to_it_for_one_more_lease(tmp_path: Path) -> None:
    assert _scenario(tmp_path, "another-machine") == [
        SlotStatus.RUNNING,
        SlotStatus.RUNNING,
        SlotStatus.RETRYING,
    ]


def test_a_run_of_a_dead_process_on_this_machine_is_taken_over_when_its_lease_lapses(
    tmp_path: Path,
) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait(5)
    seen = _scenario(tmp_path, hostname(), pid=gone.pid)
    assert seen[0] is SlotStatus.RETRYING, seen


def test_a_run_of_a_live_process_on_this_machine_is_left_to_it_for_one_more_lease(
    tmp_path: Path,
) -> None:
    """A node whose process lives (frozen by SIGSTOP, say) may still record its run's
    end when it thaws: it is waited for as a node on another machine is."""
    assert _scenario(tmp_path, hostname(), pid=os.getpid()) == [
        SlotStatus.RUNNING,
        SlotStatus.RUNNING,
        SlotStatus.RETRYING,
    ]
