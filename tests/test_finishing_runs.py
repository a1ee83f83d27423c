"""A run whose action has ended is only being recorded: nothing stops it then.

A stop past its grace, the overrun sweep and a replace cancel runs in progress. One
that has ended but whose output is still being redacted, or whose end's write is
being retried, must keep its end: cancelled there, a succeeded run stayed `running`
and ran again after its lease as lost, and a failed run's end was written with no
listener told (no incident, no message)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import agentcron.engine.runner as runner
from agentcron.clock import FakeClock
from agentcron.model import SlotStatus
from agentcron.store.sqlite import SQLiteStore
from faulty_store import FaultyStore
from harness import Harness, until

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def ok() -> str:
    return "done"


def boom() -> None:
    raise RuntimeError("task failed")


def rig(tmp_path: Path) -> tuple[Harness, FaultyStore, FakeClock]:
    clock = FakeClock(T0)
    store = FaultyStore(SQLiteStore(tmp_path / "agentcron.db"))
    return Harness(store, clock, tmp_path), store, clock  # type: ignore[arg-type]


def test_a_stop_while_the_output_is_redacted_keeps_the_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = runner.keep_output_private

    async def slow(*args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0.3)  # a large output being redacted on a thread
        await kept(*args, **kwargs)

    monkeypatch.setattr(runner, "keep_output_private", slow)
    h, store, clock = rig(tmp_path)

    async def scenario() -> None:
        h.add("t", ok, every="1m")
        clock.advance(timedelta(minutes=1))
        await h.engine.tick()
        await until(lambda: any(r.finishing for r in h.engine._runs.values()), timeout=30)
        await h.engine.shutdown(0.01)  # the grace is over before the redaction is

    asyncio.run(scenario())
    (slot,) = store.slots("t", limit=10)
    assert slot.status is SlotStatus.SUCCEEDED and slot.lease_owner is None
    assert [f.outcome.slot_status for f in h.finished] == [SlotStatus.SUCCEEDED]


@pytest.mark.parametrize("how", ["stop", "sweep", "replace"])
def test_an_end_being_written_again_is_not_stopped_and_its_listeners_hear_it(
    tmp_path: Path, how: str
) -> None:
    h, store, clock = rig(tmp_path)

    async def scenario() -> None:
        h.add("t", boom, every="1m", retries=0)
        clock.advance(timedelta(minutes=1))
        # the database away for a moment (a write of its own refused too): the finisher
        # tries again after a backoff
        store.fail("finish_many", "set_meta", times=1)
        await h.engine.tick()
        await until(lambda: any(r.finishing for r in h.engine._runs.values()), timeout=30)
        (slot_id, run) = next(iter(h.engine._runs.items()))
        if how == "stop":
            await h.engine.shutdown(0.01)
        elif how == "sweep":
            run.deadline = clock.now() - timedelta(seconds=1)
            h.engine._held._last_sweep = None
            h.engine._held.sweep_overruns(clock.now())
            assert not run.overran
        else:
            assert h.engine.cancel_slot(slot_id, "replaced") is False
        await until(lambda: not h.engine._runs, timeout=30)
        h.engine._tell_listeners()

    asyncio.run(scenario())
    (slot,) = store.slots("t", limit=10)
    assert slot.status is SlotStatus.FAILED
    assert [f.outcome.error for f in h.finished] == [
        "the function raised RuntimeError: task failed"
    ]


def test_a_stop_does_not_wait_past_its_bound_for_an_end_the_database_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import agentcron.engine.engine as engine_module

    monkeypatch.setattr(engine_module, "FINISH_GRACE", 0.3)
    h, store, clock = rig(tmp_path)

    async def scenario() -> None:
        h.add("t", boom, every="1m", retries=0)
        clock.advance(timedelta(minutes=1))
        store.fail("finish_many", "set_meta")  # the database away: every write refused
        await h.engine.tick()
        await until(lambda: any(r.finishing for r in h.engine._runs.values()), timeout=30)
        await asyncio.wait_for(h.engine.shutdown(0.01), 30)
        assert not h.engine._runs

        await asyncio.sleep(1.0)  # the finisher's retries are dropped: nothing lands
        assert h.engine._deps.finisher is not None and h.engine._deps.finisher.backlog == 0

    asyncio.run(scenario())
    assert "1 run(s) did not end within 0.3s of the stop (1 end(s) still waited" in caplog.text
    store.clear("finish_many")
    (slot,) = store.slots("t", limit=10)
    assert slot.status is SlotStatus.RUNNING  # left to the next start's recovery
    assert h.finished == []


def test_a_stopped_command_gets_its_kill_grace_before_the_stop_gives_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound on records comes after the command's own kill_grace: a command that
    takes a while to clean up after TERM is not killed early."""
    import agentcron.engine.engine as engine_module

    monkeypatch.setattr(engine_module, "FINISH_GRACE", 0.3)
    h, store, clock = rig(tmp_path)
    done = tmp_path / "cleaned-up"
    script = f"trap 'sleep 1; touch {done}; exit 0' TERM; sleep 30 & wait"

    async def scenario() -> None:
        h.add("slow_exit", every="1m", command=script, shell=True, kill_grace="5s", retries=0)
        clock.advance(timedelta(minutes=1))
        await h.engine.tick()
        await until(lambda: h.engine.running == 1, timeout=30)
        await asyncio.sleep(0.5)  # the shell has set its trap
        await h.engine.shutdown(0.01)

    asyncio.run(scenario())
    assert done.exists()  # TERM, then its second of cleaning up, not a KILL at 0.3 s
    (slot,) = store.slots("slow_exit", limit=10)
    assert slot.status is not SlotStatus.RUNNING
