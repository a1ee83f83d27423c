"""A scheduler with a fake clock and in-process actions, for engine tests that run in
milliseconds. Only the clock is fake: the store, the engine and the runner are real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agentcron.clock import FakeClock
from agentcron.engine.actions import ActionRegistry
from agentcron.engine.engine import Engine
from agentcron.engine.settings import EngineSettings
from agentcron.model import Finished, NodeInfo, Slot, TaskSource, TaskSpec
from agentcron.service import Service
from agentcron.store.base import Store


class Harness:
    def __init__(
        self,
        store: Store,
        clock: FakeClock,
        home: Path,
        max_concurrency: int = 4,
        rand: float = 0.0,
        owner: str = "test-node",
    ) -> None:
        self.store = store
        self.clock = clock
        self.home = home
        self.registry = ActionRegistry(pool_size=1)
        self.engine = Engine(
            store,
            clock,
            EngineSettings(home=home, owner=owner, max_concurrency=max_concurrency),
            self.registry,
            rand=lambda: rand,
        )
        self.service = Service(store, home, clock)
        self.finished: list[Finished] = []
        self.engine.listeners.append(self.finished.append)

    def add(self, name: str, func: Callable[..., Any] | None = None, **spec: Any) -> TaskSpec:
        if func is not None:
            target = f"tests:{name}"
            self.registry.register_callable(target, func)
            spec.setdefault("python", target)
            spec.setdefault("isolation", "inline")
        task = TaskSpec(name=name, **spec)
        now = self.clock.now()
        self.store.upsert_task(task, TaskSource.API, now, self.service.first_fire(task, now))
        return task

    async def tick(self, settle: bool = True) -> None:
        """One tick; with ``settle``, keep ticking (as the daemon does when a run ends)
        until nothing more starts at this instant."""
        report = await self.engine.tick()
        while settle:
            await self.engine.wait_idle(10)
            if report.started == 0:
                break
            report = await self.engine.tick()

    async def run_until(self, until: datetime, step: timedelta) -> None:
        """Tick every ``step`` of fake time up to ``until``, letting runs finish each time."""
        while self.clock.now() < until:
            self.clock.advance(min(step, until - self.clock.now()))
            await self.tick()

    def ticking(self) -> None:
        """Record that a daemon's scheduler ticked just now (node ``n1``, on another
        host: no process here is asked about): until one ticks, the service calls no
        task ``ok``, but ``not_firing``."""
        now = self.clock.now()
        self.store.register_node(NodeInfo("n1", "elsewhere", 1, "/other", now, now))
        self.store.record_tick("n1", now)

    def slots(self, task: str) -> list[Slot]:
        return sorted(self.store.slots(task, limit=10000), key=lambda s: s.scheduled_for)


async def until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01
) -> None:
    """Wait for a condition with a generous deadline instead of a fixed sleep."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not met within the deadline")
        await asyncio.sleep(interval)


def run_scheduler_until(sched: Any, *conditions: Callable[[], bool], timeout: float = 30.0) -> None:
    """Run the Scheduler ``sched`` (its ``run_async``) until each of ``conditions`` holds
    in turn, each within ``timeout``; then stop it and wait for its end."""

    async def scenario() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(sched.run_async(stop))
        try:
            for condition in conditions:
                await until(condition, timeout=timeout)
        finally:
            stop.set()
            await asyncio.wait_for(runner, 30)

    asyncio.run(scenario())


def _fine() -> str:
    return "fine"


def ran_alpha(store: Store, clock: FakeClock, home: Path) -> Harness:
    """A harness whose task ``alpha`` (every 5 min) has run twice: records for the API
    tests to reach (run 1 exists)."""
    h = Harness(store, clock, home)
    h.add("alpha", _fine, every="5m", retries=0)
    asyncio.run(h.run_until(clock.now() + timedelta(minutes=10), timedelta(minutes=5)))
    return h


@asynccontextmanager
async def running(daemon: Any, within: float = 30) -> AsyncIterator[None]:
    """A :class:`~agentcron.daemon.Daemon` run in a task for the block, once its engine
    and parts are up; stopped and awaited at its end."""
    main = asyncio.create_task(daemon.run())
    try:
        await until(lambda: daemon.engine is not None and daemon.supervisor is not None, within)
        yield
    finally:
        daemon.request_stop()
        await main


def stat_failing(monkeypatch: Any, module: Any, path: Path, error: OSError) -> None:
    """``module.os.stat`` raises ``error`` for ``path`` (and only it) for the test."""
    import os

    real = os.stat

    def failing(what: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if str(what) == str(path):
            raise error
        return real(what, *args, **kwargs)

    monkeypatch.setattr(module.os, "stat", failing)
