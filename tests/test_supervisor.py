"""The supervisor: a part that fails is restarted with backoff and told once; one that
keeps failing ends the daemon non-zero; one that ran well again is told recovered."""

from __future__ import annotations

import asyncio

from agentcron.supervisor import EXIT_GAVE_UP, PartFailure, Supervisor
from harness import until


def _supervisor(**kw: object) -> tuple[Supervisor, list[PartFailure], list[str]]:
    failures: list[PartFailure] = []
    recovered: list[str] = []

    async def on_failure(f: PartFailure) -> None:
        failures.append(f)

    async def on_recovery(part: str) -> None:
        recovered.append(part)

    options: dict[str, object] = {
        "max_failures": 3,
        "window": 60.0,
        "backoff_first": 0.01,
        "backoff_max": 0.05,
        "healthy_after": 0.2,
        "stop_grace": 0.2,
    }
    options.update(kw)
    sup = Supervisor(on_failure=on_failure, on_recovery=on_recovery, **options)  # type: ignore[arg-type]
    return sup, failures, recovered


def test_a_part_that_fails_once_is_restarted_told_once_and_then_recovered() -> None:
    sup, failures, recovered = _supervisor()
    starts = {"n": 0}

    async def flaky() -> None:
        starts["n"] += 1
        if starts["n"] == 1:
            raise OSError("disk full")
        await asyncio.Event().wait()  # runs until cancelled

    async def scenario() -> int:
        stop = asyncio.Event()
        sup.add("sender", flaky)
        main = asyncio.create_task(sup.run(stop))
        await until(lambda: recovered == ["sender"], timeout=10)
        stop.set()
        return await main

    assert asyncio.run(scenario()) == 0
    assert starts["n"] == 2
    assert [(f.part, f.error, f.restart_in is not None) for f in failures] == [
        ("sender", "OSError: disk full", True)
    ]
    assert sup.restarts == {"sender": 1}


def test_a_part_that_returns_early_counts_as_failed() -> None:
    sup, failures, _ = _supervisor(max_failures=2)

    async def quits() -> None:
        return None

    async def scenario() -> int:
        stop = asyncio.Event()
        sup.add("watcher", quits)
        return await sup.run(stop)

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == EXIT_GAVE_UP
    assert failures[0].error == "it ended without being asked to stop"
    assert failures[-1].restart_in is None


def test_giving_up_stops_the_other_parts() -> None:
    sup, failures, _ = _supervisor()
    seen: list[str] = []

    async def broken() -> None:
        raise RuntimeError("boom")

    async def steady() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            seen.append("steady ended")

    async def scenario() -> int:
        stop = asyncio.Event()
        sup.add("broken", broken)
        sup.add("steady", steady)
        return await sup.run(stop)

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == EXIT_GAVE_UP
    assert seen == ["steady ended"]
    assert sup.gave_up is not None and sup.gave_up.part == "broken"
    assert [f.restart_in is None for f in failures] == [False, True]  # told twice, not thrice


def test_failures_outside_the_window_do_not_add_up() -> None:
    now = {"t": 0.0}
    sup, failures, _ = _supervisor(window=10.0, healthy_after=1000.0, monotonic=lambda: now["t"])
    starts = {"n": 0}

    async def rarely() -> None:
        starts["n"] += 1
        now["t"] += 20.0  # each failure comes well after the window of the last
        if starts["n"] <= 4:
            raise RuntimeError("now and then")
        await asyncio.Event().wait()

    async def scenario() -> int:
        stop = asyncio.Event()
        sup.add("part", rarely)
        main = asyncio.create_task(sup.run(stop))
        await until(lambda: starts["n"] == 5, timeout=10)
        stop.set()
        return await main

    assert asyncio.run(scenario()) == 0
    assert sup.gave_up is None
    assert len(failures) == 1  # one message for the run of failures, not one each
