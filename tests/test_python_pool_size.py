"""The python worker pool grows to the node's ``max_concurrency``: it was capped at 4,
so with ``max_concurrency: 8`` the fifth to eighth of eight python runs waited for a
worker, their timeouts running, and were killed as overrunning (outside-in probe)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentcron.actions.base import ActionContext
from agentcron.engine.actions import WARM_WORKERS, ActionRegistry
from agentcron.model.task import TaskSpec

pytestmark = pytest.mark.slow

TESTS_DIR = str(Path(__file__).resolve().parent)


def _ctx(tmp_path: Path, i: int, spec: TaskSpec) -> ActionContext:
    return ActionContext(
        task=spec.name,
        spec=spec,
        slot_id=i,
        attempt=1,
        scheduled_for=datetime(2026, 3, 29, 3, 0, tzinfo=UTC),
        output_path=tmp_path / "out" / f"{i}.log",
        timeout=timedelta(seconds=20),
        kill_grace=timedelta(seconds=0.5),
    )


def test_eight_python_runs_at_max_concurrency_eight_run_at_once(tmp_path: Path) -> None:
    spec = TaskSpec(
        name="nap", every="1h", python="pyactions_sample:nap", kwargs={"seconds": 1.5},
        cwd=TESTS_DIR,
    )  # fmt: skip

    async def scenario() -> tuple[int, int, list[bool]]:
        registry = ActionRegistry(pool_size=8, cwd=TESTS_DIR)
        try:
            await registry.start([spec])
            pool = registry._pool
            warm = len(pool.pids)
            results = await asyncio.gather(
                *(registry(spec).run(_ctx(tmp_path, i, spec)) for i in range(8))
            )
            return warm, len(pool.pids), [r.ok for r in results]
        finally:
            await registry.close()

    warm, grown, ok = asyncio.run(scenario())
    assert warm == WARM_WORKERS  # not eight processes at start
    assert ok == [True] * 8
    assert grown == 8  # one worker per run in progress, none waited for another's end


def test_the_daemon_sizes_its_pool_by_max_concurrency_and_follows_a_reload(
    tmp_path: Path,
) -> None:
    from agentcron.daemon import Daemon, DaemonOptions

    config = tmp_path / "agentcron.yaml"
    task = (
        f'tasks:\n  nap:\n    every: 1h\n    python: "pyactions_sample:nap"\n    cwd: {TESTS_DIR}\n'
    )
    config.write_text("max_concurrency: 8\n" + task)
    daemon = Daemon(DaemonOptions(config_path=config, home=tmp_path / "home"))

    async def scenario() -> tuple[int, int]:
        await daemon.start()
        try:
            assert daemon.registry is not None and daemon.registry._pool is not None
            first = daemon.registry._pool.size
            config.write_text("max_concurrency: 12\n" + task)
            daemon._apply(daemon._load())
            grown = daemon.registry._pool.size
            # lowered below the workers it has: the idle ones above it are retired now
            # (they stayed until each retired by itself: outside-in probe)
            pool = daemon.registry._pool
            assert len(pool.pids) == WARM_WORKERS
            config.write_text("max_concurrency: 2\n" + task)
            daemon._apply(daemon._load())
            deadline = asyncio.get_running_loop().time() + 20
            while len(pool.pids) > 2 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            assert len(pool.pids) == 2, pool.pids
            return first, grown
        finally:
            assert daemon.registry is not None and daemon.store is not None
            await daemon.registry.close()
            daemon.store.close()

    assert asyncio.run(scenario()) == (8, 12)
