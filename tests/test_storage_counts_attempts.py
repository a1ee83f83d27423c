"""The end of a storage incident counts what it counted: failed attempts, not runs
(outside-in probe: one run that failed two attempts read "2 runs of 1 task (d) failed
meanwhile")."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import agentcron.engine.runner as runner_module
from agentcron.clock import FakeClock
from agentcron.home import hostname
from agentcron.store.base import Store
from test_told_once import Rig

SCOPE = f"home:{hostname()}"


def test_one_run_failing_two_attempts_is_told_as_two_attempts_not_two_runs(
    sqlite_store: Store, clock: FakeClock, home: Path, monkeypatch: Any
) -> None:
    full = [True]
    monkeypatch.setattr(runner_module, "_disk_full", lambda _path: full[0])
    rig = Rig(sqlite_store, clock, home)
    # one fire in the test's span; its retry comes at once (exit 120: a full disk)
    rig.h.add("d", command=["sh", "-c", "exit 120"], every="1h", retries=3)

    async def scenario() -> list[str]:
        clock.advance(timedelta(hours=1))
        await rig.h.run_until(clock.now() + timedelta(seconds=40), timedelta(seconds=1))
        slots = rig.h.slots("d")
        assert len(slots) == 1, slots  # one run
        full[0] = False
        now = clock.now()
        rec = rig.store.get_task("d")
        assert rec is not None
        spec = rec.spec.model_copy(update={"command": ["echo", "ok"]})
        rig.store.upsert_task(spec, rec.source, now, now + timedelta(seconds=1))
        await rig.h.run_until(clock.now() + timedelta(seconds=60), timedelta(seconds=1))
        return await rig.lines()

    lines = asyncio.run(scenario())
    [incident] = rig.store.incidents(SCOPE)
    assert incident.failed_runs >= 2  # attempts: the one run was retried
    [closed] = [line for line in lines if line.startswith("✔ agentcron writes runs' files")]
    assert f"{incident.failed_runs} attempts at runs of 1 task (d) failed meanwhile" in closed
    assert "runs of 1 task (d) failed meanwhile" not in closed.replace("attempts at runs", "")
