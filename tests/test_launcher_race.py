"""The end of a command and the death of its daemon, close together: a finished run's
end is kept, never thrown away as ``worker_lost`` and the slot run again (the soak's
sqlite-kill scenario found both ways this happened)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.actions import _shim
from agentcron.clock import FakeClock
from agentcron.engine.actions import ActionRegistry
from agentcron.engine.engine import Engine
from agentcron.engine.lapsed import LAUNCHER_WAIT
from agentcron.engine.settings import EngineSettings
from agentcron.model import ErrorClass, SlotStatus, TaskSource, TaskSpec
from agentcron.orphans import ended_run, marker_path, start_time
from agentcron.store.sqlite import SQLiteStore
from daemon_proc import wait_for

pytestmark = pytest.mark.slow

SHIM = str(Path(_shim.__file__))
STAND_IN = """
import os, subprocess, sys, threading, time
argv = [sys.executable, "-I", "-S", sys.argv[1], "-1", str(os.getpid()),
        str(threading.get_native_id()), "2", "0", sys.argv[2], "5", "1", sys.argv[3], "--",
        *sys.argv[4:]]
proc = subprocess.Popen(argv, start_new_session=True)
print(proc.pid, flush=True)
time.sleep(60)
"""


def test_a_command_that_ignores_term_and_exits_0_in_the_grace_keeps_its_success(
    tmp_path: Path,
) -> None:
    ready = tmp_path / "ready"
    marker = tmp_path / "runs" / "5-1.json"
    script = f"trap '' TERM; touch {ready}; sleep 0.5; exit 0"
    parent = subprocess.Popen(
        [sys.executable, "-c", STAND_IN, SHIM, str(marker), "out.log", "sh", "-c", script],
        stdout=subprocess.PIPE,
        text=True,
    )
    pgid = 0
    try:
        assert parent.stdout is not None
        pgid = int(parent.stdout.readline())
        wait_for(lambda: ready.exists(), 10)
        parent.kill()  # the daemon dies while the command still works
        parent.wait(5)
        wait_for(lambda: (e := ended_run(tmp_path, 5, 1)) is not None and e.ended_at, 10)
        end = ended_run(tmp_path, 5, 1)
        assert end is not None and not end.orphaned and end.exit_code == 0
        assert end.result_known
    finally:
        parent.kill()
        parent.wait(5)
        if parent.stdout is not None:
            parent.stdout.close()
        if pgid:
            with_suppressed_kill(pgid)


def with_suppressed_kill(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _lost_run(tmp_path: Path, clock: FakeClock) -> tuple[SQLiteStore, Engine, int]:
    """A slot running under a dead node, and a fresh engine that knows that node dead."""
    store = SQLiteStore(tmp_path / "a.db")
    home = tmp_path / "home"
    spec = TaskSpec(name="job", every="1h", command=["true"], retries=2)
    now = clock.now()
    # next fire an hour away: a retry of this slot is not left to a fire due with it
    store.upsert_task(spec, TaskSource.API, now, now + timedelta(hours=1))
    from agentcron.model import NewSlot

    store.add_slot("job", NewSlot(now), now)
    (claim,) = store.claim("dead-node", now, now + timedelta(minutes=1), 1)
    engine = Engine(
        store,
        clock,
        EngineSettings(home=home, owner="new-node", dead_owners=("dead-node",)),
        ActionRegistry(pool_size=1),
        rand=lambda: 0.0,
    )
    return store, engine, claim.slot.id


def _write_marker(home: Path, slot_id: int, pgid: int, **end: Any) -> None:
    path = marker_path(home, slot_id, 1)
    (home / "out.log").parent.mkdir(parents=True, exist_ok=True)
    (home / "out.log").write_text("done\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = {
        "slot": slot_id,
        "attempt": 1,
        "host": os.uname().nodename,
        "pgid": pgid,
        "pgid_start": start_time(pgid),
        "output": str(home / "out.log"),
        "started_at": time.time(),
        **end,
    }
    path.write_text(json.dumps(fields))


def test_recovery_waits_for_a_live_launcher_then_records_the_end_it_wrote(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    store, engine, slot_id = _lost_run(tmp_path, clock)
    launcher = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        home = tmp_path / "home"
        _write_marker(home, slot_id, launcher.pid)

        async def scenario() -> None:
            await engine.tick()  # the launcher lives, its end is on the way: wait
            slot = store.get_slot(slot_id)
            assert slot is not None and slot.status is SlotStatus.RUNNING
            # the launcher writes the command's end and goes
            _write_marker(home, slot_id, launcher.pid, exit_code=0, ended_at=time.time())
            launcher.kill()
            launcher.wait(5)
            clock.advance(timedelta(seconds=4))  # the next look for lapsed runs
            await engine.tick()
            await engine.wait_idle(10)

        asyncio.run(scenario())
        slot = store.get_slot(slot_id)
        assert slot is not None and slot.status is SlotStatus.SUCCEEDED, slot
    finally:
        launcher.kill()
        launcher.wait(5)
        store.close()


def test_recovery_stops_a_launcher_that_outstays_its_wait(tmp_path: Path) -> None:
    clock = FakeClock()
    store, engine, slot_id = _lost_run(tmp_path, clock)
    launcher = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        _write_marker(tmp_path / "home", slot_id, launcher.pid)

        async def scenario() -> None:
            await engine.tick()
            clock.advance(LAUNCHER_WAIT + timedelta(seconds=1))
            await engine.tick()

        asyncio.run(scenario())
        slot = store.get_slot(slot_id)
        assert slot is not None and slot.status is SlotStatus.RETRYING
        assert slot.error_class is ErrorClass.WORKER_LOST
        assert launcher.wait(10) is not None  # its group was stopped
    finally:
        launcher.kill()
        launcher.wait(5)
        store.close()


def test_an_unreadable_end_does_not_stop_the_scheduler(tmp_path: Path) -> None:
    """A marker whose output cannot be read: the tick goes on (it failed every tick, a
    scheduler down for one bad file), and the command's recorded end stands (retried
    as lost, a finished run would run twice), its output said to be unreadable."""
    clock = FakeClock()
    store, engine, slot_id = _lost_run(tmp_path, clock)
    gone = subprocess.Popen(["true"], start_new_session=True)
    gone.wait(5)
    home = tmp_path / "home"
    _write_marker(home, slot_id, gone.pid, exit_code=0, ended_at=time.time())
    marker = marker_path(home, slot_id, 1)
    marker.write_text(marker.read_text().replace(str(home / "out.log"), str(home)))
    try:
        asyncio.run(engine.tick())  # does not raise
        slot = store.get_slot(slot_id)
        assert slot is not None and slot.status is SlotStatus.SUCCEEDED, slot
        assert slot.error_class is None and slot.output_path is None
    finally:
        store.close()


def _recorded_lost_by_another_node(store: SQLiteStore, clock: FakeClock, slot_id: int) -> None:
    from agentcron.model import AttemptOutcome

    (lapsed,) = store.lapsed(clock.now() + timedelta(minutes=5))
    lost = AttemptOutcome(
        ok=False,
        slot_status=SlotStatus.RETRYING,
        error_class=ErrorClass.WORKER_LOST,
        error="the worker running this slot stopped responding",
        next_attempt_at=clock.now() + timedelta(minutes=10),
    )
    assert store.record_lost(lapsed, lost, clock.now() + timedelta(minutes=5))


def test_a_daemon_back_on_its_host_records_the_real_end_of_a_run_another_node_lost(
    tmp_path: Path,
) -> None:
    """PostgreSQL, several hosts: node a died as its command finished; node b recorded the
    run lost when a's lease lapsed (a's end was on a's disk). When a comes back, the slot
    still waits for its retry: the real end is recorded and the work is not done again."""
    clock = FakeClock()
    store, engine, slot_id = _lost_run(tmp_path, clock)
    _recorded_lost_by_another_node(store, clock, slot_id)
    gone = subprocess.Popen(["true"], start_new_session=True)
    gone.wait(5)
    _write_marker(tmp_path / "home", slot_id, gone.pid, exit_code=0, ended_at=time.time())
    told: list[Any] = []
    engine.listeners.append(told.append)
    clock.advance(timedelta(minutes=6))
    try:

        async def scenario() -> None:
            await engine.tick()
            await asyncio.sleep(0)
            engine._tell_listeners()

        asyncio.run(scenario())
        slot = store.get_slot(slot_id)
        assert slot is not None and slot.status is SlotStatus.SUCCEEDED, slot
        (attempt,) = store.attempts(slot_id)
        assert attempt.status == "succeeded"
        assert [f.slot.id for f in told] == [slot_id] and told[0].outcome.ok
        assert not marker_path(tmp_path / "home", slot_id, 1).exists()
    finally:
        store.close()


def test_a_lost_run_already_retried_is_left_as_it_is(tmp_path: Path) -> None:
    clock = FakeClock()
    store, _engine, slot_id = _lost_run(tmp_path, clock)
    _recorded_lost_by_another_node(store, clock, slot_id)
    # the retry started on the other node: that attempt's result will be the slot's
    (retry,) = store.claim(
        "other-node", clock.now() + timedelta(minutes=11), clock.now() + timedelta(minutes=12), 1
    )
    assert retry.slot.id == slot_id
    gone = subprocess.Popen(["true"], start_new_session=True)
    gone.wait(5)
    _write_marker(tmp_path / "home", slot_id, gone.pid, exit_code=0, ended_at=time.time())
    try:
        assert store.correct_lost_end(slot_id, 1, _ok(), clock.now()) is None
        slot = store.get_slot(slot_id)
        assert slot is not None and slot.status is SlotStatus.RUNNING and slot.attempts == 2
    finally:
        store.close()


def _ok() -> Any:
    from agentcron.model import AttemptOutcome

    return AttemptOutcome(ok=True, slot_status=SlotStatus.SUCCEEDED, exit_code=0)


def test_an_end_written_as_the_launcher_exits_between_the_two_looks_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recovery reads the end (none yet), then asks whether the launcher lives: if the
    launcher wrote the end and exited in between, the second answer is "gone" and the
    run was recorded worker_lost and run again (a short soak found it). The end written
    meanwhile is read and kept."""
    import agentcron.orphans as orphans

    clock = FakeClock()
    store, engine, slot_id = _lost_run(tmp_path, clock)
    home = tmp_path / "home"
    launcher = subprocess.Popen(["true"], start_new_session=True)
    launcher.wait(5)
    _write_marker(home, slot_id, launcher.pid)  # started, no end yet
    alive = orphans.launcher_alive

    def finishes_just_now(at: Path | str, slot: int, attempt: int) -> bool:
        # the launcher ends the command, writes how it ended, and exits
        _write_marker(home, slot_id, launcher.pid, exit_code=0, ended_at=time.time())
        return alive(at, slot, attempt)

    monkeypatch.setattr(orphans, "launcher_alive", finishes_just_now)
    try:

        async def scenario() -> None:
            await engine.tick()
            await engine.wait_idle(10)

        asyncio.run(scenario())
        slot = store.get_slot(slot_id)
        assert slot is not None and slot.status is SlotStatus.SUCCEEDED, slot
        assert [a.number for a in store.attempts(slot_id)] == [1]  # not run again
    finally:
        store.close()


def _held_by_a_node_here(
    tmp_path: Path, clock: FakeClock, pid: int
) -> tuple[SQLiteStore, Engine, int, Path]:
    """A slot running under node ``a`` of this machine (its own home, process ``pid``),
    and node ``b``'s engine beside it on the same database (PostgreSQL's two nodes on
    one host, in SQLite)."""
    from agentcron.home import hostname
    from agentcron.model import NewSlot, NodeInfo

    store = SQLiteStore(tmp_path / "shared.db")
    a_home = tmp_path / "a"
    now = clock.now()
    store.upsert_task(
        TaskSpec(name="job", every="1h", command=["true"], retries=2),
        TaskSource.API,
        now,
        now + timedelta(hours=1),  # the slot of now is recorded: the next fire is ahead
    )
    store.register_node(NodeInfo("a", hostname(), pid, str(a_home), now, now))
    store.add_slot("job", NewSlot(now), now)
    (claim,) = store.claim("a", now, now + timedelta(minutes=1), 1)
    engine = Engine(
        store,
        clock,
        EngineSettings(home=tmp_path / "b", owner="b"),
        ActionRegistry(pool_size=1),
        rand=lambda: 0.0,
    )
    return store, engine, claim.slot.id, a_home


def test_a_frozen_node_on_this_machine_keeps_its_run_for_a_lease_more(tmp_path: Path) -> None:
    """Outside-in probe (PostgreSQL, two nodes on one host): node a was SIGSTOPped for
    80 s while its command ran and succeeded; node b took the run over as worker_lost at
    60 s and ran it again. A node whose process lives is given a lease more."""
    clock = FakeClock()
    store, engine, slot_id, _ = _held_by_a_node_here(tmp_path, clock, os.getpid())
    try:
        clock.advance(timedelta(seconds=61))  # a's lease lapsed: a is frozen, not dead
        asyncio.run(engine.tick())
        slot = store.get_slot(slot_id)
        assert slot is not None and slot.status is SlotStatus.RUNNING, slot
        clock.advance(timedelta(seconds=60))  # frozen two leases: taken over
        asyncio.run(engine.tick())
        slot = store.get_slot(slot_id)
        assert slot is not None and slot.status is SlotStatus.RETRYING, slot
        (attempt,) = store.attempts(slot_id)
        assert attempt.error_class is ErrorClass.WORKER_LOST
    finally:
        store.close()


def test_a_killed_node_on_this_machine_is_taken_over_with_the_end_its_launcher_wrote(
    tmp_path: Path,
) -> None:
    """Outside-in probe: node a was killed with -9 while its command (which exits 0 on
    TERM) ran; its launcher wrote the success in a's home, and node b, reading its own
    home, recorded the run worker_lost and ran it again."""
    clock = FakeClock()
    gone = subprocess.Popen(["true"], start_new_session=True)
    gone.wait(5)
    store, engine, slot_id, a_home = _held_by_a_node_here(tmp_path, clock, gone.pid)
    _write_marker(a_home, slot_id, gone.pid, exit_code=0, ended_at=time.time())
    try:
        clock.advance(timedelta(seconds=61))  # a's process is gone: at once
        asyncio.run(engine.tick())
        slot = store.get_slot(slot_id)
        assert slot is not None and slot.status is SlotStatus.SUCCEEDED, slot
        (attempt,) = store.attempts(slot_id)
        assert attempt.status == "succeeded"
        assert not marker_path(a_home, slot_id, 1).exists()  # read where a kept it, and gone
    finally:
        store.close()


def test_an_inline_call_lost_with_its_dead_daemon_says_the_process_ended(
    tmp_path: Path,
) -> None:
    """An inline call runs in the daemon's own process: when that process died with it
    (an os._exit in the call, a kill), the record says so instead of "the worker
    stopped responding", which pointed nowhere (outside-in probe)."""
    clock = FakeClock()
    store = SQLiteStore(tmp_path / "a.db")
    spec = TaskSpec(name="inl", every="1h", python="app:job", isolation="inline", retries=0)
    now = clock.now()
    store.upsert_task(spec, TaskSource.API, now, now + timedelta(hours=1))
    from agentcron.model import NewSlot

    store.add_slot("inl", NewSlot(now), now)
    store.claim("dead-node", now, now + timedelta(minutes=1), 1)
    engine = Engine(
        store,
        clock,
        EngineSettings(home=tmp_path / "home", owner="new-node", dead_owners=("dead-node",)),
        ActionRegistry(pool_size=1),
        rand=lambda: 0.0,
    )
    try:
        asyncio.run(engine.tick())
        [slot] = store.slots("inl", limit=5)
        assert slot.error_class is not None and slot.error_class.value == "worker_lost"
        assert slot.error is not None
        assert slot.error.startswith("agentcron's process ended while this inline call was running")
    finally:
        store.close()


def test_a_command_its_launcher_stopped_ends_when_it_was_stopped(tmp_path: Path) -> None:
    """Its daemon died, its launcher stopped the command 4 s into the run: the run's end
    is that moment, not the restart that found it ("the run that was taking long ended
    after 8s" for a command stopped after 4; outside-in probe)."""
    from agentcron.model import Finished

    clock = FakeClock()
    store, engine, slot_id = _lost_run(tmp_path, clock)
    ended: list[Finished] = []
    engine.listeners.append(ended.append)
    started = store.get_slot(slot_id)
    assert started is not None and started.started_at is not None
    stopped = started.started_at + timedelta(seconds=4)
    try:
        # the launcher is gone (a pid no process has: recycled pids aside, 2**22 + 1)
        _write_marker(
            tmp_path / "home", slot_id, 2**22 + 1, orphaned=True, ended_at=stopped.timestamp()
        )
        clock.advance(timedelta(seconds=8))

        async def scenario() -> None:
            await engine.tick()
            await engine.wait_idle(10)

        asyncio.run(scenario())
        attempts = store.attempts(slot_id)
    finally:
        store.close()
    [finished] = ended
    assert finished.outcome.error is not None and "stopped with it" in finished.outcome.error
    assert finished.finished_at == stopped
    # and as recorded: `logs` said "failed in 81.9s" for a command stopped after 11 s,
    # its end stored when the restart 70 s later found it (outside-in probe)
    assert [a.finished_at for a in attempts] == [stopped]


def test_a_run_of_this_homes_dead_daemon_is_said_to_have_died_with_it() -> None:
    """Outside-in probe: after `kill -9` of the daemon and its workers, the next start
    found the runs at once and said "the worker … stopped responding (its lease lapsed:
    the process died or the machine slept)", a guess where it knew the daemon had died."""
    from agentcron.engine.lapsed import _lost_words
    from agentcron.model import TaskSpec

    pooled = TaskSpec(name="p", every="1h", python="m:f", isolation="process")
    said = _lost_words(pooled, launcher_ended=False, died=True)
    assert said.startswith("the daemon running this slot died (killed or crashed, or"), said
    elsewhere = _lost_words(pooled, launcher_ended=False, died=False)
    assert "its lease lapsed" in elsewhere  # another node's, or not known dead
