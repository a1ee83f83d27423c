"""Commands die with their daemon, and a run that ended while its daemon was down is
recorded as it ended (issue 17: at most one execution of a slot at a time; finished
work is not redone). Real processes throughout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentcron.actions import _shim
from agentcron.model import Slot, SlotStatus, TaskSpec
from agentcron.orphans import (
    EndRecord,
    ended_run,
    marker_for_output,
    marker_path,
    outcome_of_end,
    started_run,
    sweep_markers,
)
from daemon_proc import DaemonProc, kill_pids_in, wait_for

pytestmark = pytest.mark.slow

SHIM = str(Path(_shim.__file__))


def group_gone(pgid: int) -> bool:
    """No member of the group is left but zombies (which a dead parent leaves to init)."""
    from agentcron.actions.command import group_alive

    return not group_alive(pgid)


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# ---- markers ------------------------------------------------------------------------


def test_marker_written_by_the_launcher_reads_back_with_its_end(tmp_path: Path) -> None:
    home = tmp_path / 'a "home" with \\ and \u00e9'
    path = marker_path(home, 12, 3)
    start = {
        "slot": 12,
        "attempt": 3,
        "host": "node-1",
        "pgid": 4242,
        "pgid_start": 777,
        "daemon_pid": 1,
        "output": str(home / "outputs" / "job" / "x.log"),
        "started_at": 1_700_000_000.25,
    }
    assert _shim.write_marker(str(path), start)  # its folder is made on first use
    run = started_run(home, 12, 3)
    assert run is not None and (run.pgid, run.pgid_start, run.host) == (4242, 777, "node-1")
    assert run.output == start["output"]
    assert ended_run(home, 12, 3) is None  # started, no record of its end

    assert _shim.write_marker(str(path), {**start, "exit_code": 0, "ended_at": 1_700_000_009.5})
    end = ended_run(home, 12, 3)
    assert end is not None and end.exit_code == 0 and end.ended_at == 1_700_000_009.5
    assert end.result_known and not end.orphaned
    assert ended_run(home, 12, 4) is None  # another attempt
    assert list(path.parent.iterdir()) == [path]  # nothing temporary left

    path.write_text('{"slot": 12, "attempt": 3, "pgid"')  # cut short by a crash
    assert ended_run(home, 12, 3) is None and started_run(home, 12, 3) is None


def test_which_ends_are_outcomes_and_which_are_interruptions() -> None:
    def end(**kw: object) -> EndRecord:
        base: dict[str, object] = dict(
            slot_id=1, attempt=1, host=None, pgid=5, pgid_start=None, output=None,
            started_at=None, ended_at=1.0,
        )  # fmt: skip
        return EndRecord(**{**base, **kw})  # type: ignore[arg-type]

    assert end(exit_code=0).result_known
    assert end(exit_code=3).result_known
    assert end(signal=signal.SIGSEGV).result_known
    assert not end(exit_code=0, orphaned=True).result_known  # the daemon died first
    assert not end(signal=signal.SIGTERM).result_known  # stopped by a timeout or a stop
    assert not end(exit_code=128 + signal.SIGKILL).result_known  # a shell's way of saying it
    assert not end().result_known


def test_marker_path_is_found_from_the_runners_output_path(tmp_path: Path) -> None:
    out = tmp_path / "outputs" / "job" / "20260329T030000Z-s7-a2.log"
    assert marker_for_output(out, "job", 7, 2) == tmp_path / "runs" / "7-2.json"
    assert marker_for_output(tmp_path / "job" / "run.log", "job", 7, 2) is None


def test_sweep_removes_markers_of_runs_that_are_over_only(tmp_path: Path) -> None:
    def mark(slot: int, pgid: int, pgid_start: int | None, age: float) -> Path:
        path = marker_path(tmp_path, slot, 1)
        fields = {"slot": slot, "attempt": 1, "pgid": pgid, "pgid_start": pgid_start}
        assert _shim.write_marker(str(path), fields)
        then = time.time() - age
        os.utime(path, (then, then))
        return path

    held = mark(1, 999_999, None, age=600)  # this engine's run: never swept
    fresh = mark(2, 999_999, None, age=1)  # over perhaps, but not for long enough
    old = mark(3, 999_999, None, age=600)
    me = os.getpid()  # a "launcher" that still lives
    living = mark(4, me, _shim.start_ticks(me), age=600)
    assert sweep_markers(tmp_path, {1}, older_than=120) == 1
    assert not old.exists() and held.exists() and fresh.exists() and living.exists()
    assert sweep_markers(tmp_path / "nowhere", set(), older_than=0) == 0


def test_an_end_recorded_while_the_daemon_was_down_becomes_its_outcome(tmp_path: Path) -> None:
    spec = TaskSpec(name="job", every="1h", command=["x"], retries=0)
    when = datetime(2026, 3, 29, 3, 0, tzinfo=UTC)
    slot = Slot(id=7, task="job", scheduled_for=when, status=SlotStatus.RUNNING, attempts=1)
    out = tmp_path / "out.log"
    out.write_text("step 1\nstep 2 failed\n")
    now = datetime(2026, 3, 29, 3, 5, tzinfo=UTC)
    ended = 1_774_753_320.0  # 03:02:00Z
    failed = EndRecord(7, 1, None, 5, None, str(out), None, ended_at=ended, exit_code=3)
    got = outcome_of_end(failed, spec, slot, now, 0.5)
    assert got.outcome.slot_status is SlotStatus.FAILED and got.outcome.exit_code == 3
    assert got.outcome.error == "the command exited with code 3: step 2 failed"
    assert got.outcome.output_path == str(out)
    assert got.details == "step 1\nstep 2 failed"
    assert got.ended_at == datetime(2026, 3, 29, 3, 2, tzinfo=UTC)

    out.write_text("done\n")
    ok = EndRecord(7, 1, None, 5, None, str(out), None, ended_at=ended, exit_code=0)
    got = outcome_of_end(ok, spec, slot, now, 0.5)
    assert got.outcome.ok and got.outcome.slot_status is SlotStatus.SUCCEEDED
    assert not got.outcome.empty_output and got.classification is None

    missing = EndRecord(7, 1, None, 5, None, str(out), None, ended_at=ended, exit_code=127)
    missing = EndRecord(**{**missing.__dict__, "exec_errno": 2})
    got = outcome_of_end(missing, spec, slot, now, 0.5)
    assert got.outcome.error == "the command was not found (exit code 127): command not found: x"


# ---- the launcher with a stand-in daemon ----------------------------------------------

STAND_IN = """
import os, subprocess, sys, threading, time
FENCE = os.environ.get("FENCE", "0")
argv = [sys.executable, "-I", "-S", sys.argv[1], "-1", str(os.getpid()),
        str(threading.get_native_id()), "0.5", FENCE, sys.argv[2], "5", "1", sys.argv[3], "--",
        *sys.argv[4:]]
proc = subprocess.Popen(argv, start_new_session=True)
print(proc.pid, flush=True)
time.sleep(60)
"""


@dataclass
class StandIn:
    """A stand-in daemon (``parent``) and the group its launcher leads (``pgid``)."""

    parent: subprocess.Popen[str]
    pgid: int


@contextlib.contextmanager
def stand_in(marker: Path, script: str, fence: str = "0") -> Iterator[StandIn]:
    """Start ``sh -c script`` through the launcher under a stand-in daemon; on leaving,
    the stand-in is let go on (SIGCONT), killed, and the group taken down."""
    parent = subprocess.Popen(
        [sys.executable, "-c", STAND_IN, SHIM, str(marker), "out.log", "sh", "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "FENCE": fence},
    )
    pgid = 0
    try:
        assert parent.stdout is not None
        pgid = int(parent.stdout.readline())
        yield StandIn(parent, pgid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(parent.pid, signal.SIGCONT)
        parent.kill()
        parent.wait(5)
        if parent.stdout is not None:
            parent.stdout.close()
        if pgid:
            kill_group(pgid)


def test_the_launcher_kills_the_group_when_its_parent_dies(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"echo $$ >> {pids}; sleep 30 & echo $! >> {pids}; wait"
    try:
        with stand_in(tmp_path / "runs" / "5-1.json", script) as run:
            wait_for(lambda: len(pids.read_text().split()) == 2 if pids.exists() else False, 10)
            started = started_run(tmp_path, 5, 1)
            assert started is not None and started.pgid == run.pgid
            assert started.pgid_start is not None
            run.parent.kill()
            run.parent.wait(5)
            wait_for(lambda: group_gone(run.pgid), timeout=10, what="the group to be gone")
            end = ended_run(tmp_path, 5, 1)
            assert end is not None and end.orphaned and not end.result_known
    finally:
        kill_pids_in(pids)


def test_with_a_fence_the_command_stops_itself_when_its_daemon_stays_frozen(
    tmp_path: Path,
) -> None:
    """Several nodes (chaos soak): a node stopped (SIGSTOP) past its lease cannot stop
    its command, and another node ran the slot again while the first copy still ran.
    With a fence (the lease) the launcher stops the command itself once its daemon has
    been frozen that long; one frozen for less keeps its command."""
    pids = tmp_path / "pids"
    script = f"echo $$ >> {pids}; sleep 30 & echo $! >> {pids}; wait"
    try:
        with stand_in(tmp_path / "runs" / "5-1.json", script, fence="2") as run:
            wait_for(lambda: len(pids.read_text().split()) == 2 if pids.exists() else False, 10)
            os.kill(run.parent.pid, signal.SIGSTOP)  # a short freeze: the run goes on
            time.sleep(0.8)
            os.kill(run.parent.pid, signal.SIGCONT)
            time.sleep(2.5)
            assert not group_gone(run.pgid) and ended_run(tmp_path, 5, 1) is None
            os.kill(run.parent.pid, signal.SIGSTOP)  # frozen past the fence
            wait_for(lambda: group_gone(run.pgid), timeout=15, what="the command to stop")
            end = ended_run(tmp_path, 5, 1)
            assert end is not None and end.orphaned and not end.result_known
    finally:
        kill_pids_in(pids)


def test_a_command_that_ended_as_its_daemon_died_keeps_its_real_outcome(tmp_path: Path) -> None:
    """The command's end and the daemon's death arrive together (the soak saw slots redone
    this way): the launcher records the command's own end, not an orphan."""
    done = tmp_path / "done"
    go = tmp_path / "go"
    script = f"while [ ! -e {go} ]; do sleep 0.02; done; echo finished > {done}"
    with stand_in(tmp_path / "runs" / "5-1.json", script) as run:
        wait_for(lambda: started_run(tmp_path, 5, 1) is not None, 10)
        os.kill(run.pgid, signal.SIGSTOP)  # the launcher is its group's leader
        go.touch()
        wait_for(lambda: done.exists(), 10)
        time.sleep(0.3)  # the command has exited; its SIGCHLD waits for the launcher
        run.parent.kill()  # and now the daemon dies: the death signal is pending too
        run.parent.wait(5)
        os.kill(run.pgid, signal.SIGCONT)
        wait_for(lambda: group_gone(run.pgid), timeout=10, what="the launcher to end")
        end = ended_run(tmp_path, 5, 1)
        assert end is not None
        assert not end.orphaned and end.exit_code == 0 and end.result_known


def test_the_launcher_starts_nothing_when_its_parent_is_already_gone(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    marker = tmp_path / "runs" / "6-1.json"
    argv = [sys.executable, "-I", "-S", SHIM, "-1", "1", "0", "0.5", "0", str(marker), "6", "1"]
    argv.append("x")
    # pid 1 is not its parent: the daemon that started it died before it could look
    res = subprocess.run([*argv, "--", "sh", "-c", f"touch {ran}"], timeout=10, check=False)
    assert res.returncode == 1 and not ran.exists()
    end = ended_run(tmp_path, 6, 1)
    assert end is not None and end.orphaned


def test_the_launcher_exits_as_its_command_did(tmp_path: Path) -> None:
    def launch(*command: str) -> int:
        argv = [sys.executable, "-I", "-S", SHIM, "-1", str(os.getpid())]
        argv += [str(threading.get_native_id()), "1", "0", "", "1", "1", "x", "--", *command]
        return subprocess.run(argv, timeout=10, check=False).returncode

    assert launch("sh", "-c", "exit 4") == 4
    assert launch("sh", "-c", "kill -TERM $$") == -signal.SIGTERM
    assert launch("agentcron-no-such-program-xyz") == 127


# ---- a real daemon ---------------------------------------------------------------------

CONFIG = """
tasks:
  long:
    every: 1d
    command: ["sh", "-c", "echo START $$ >> {pids}; sleep 30; echo END $$ >> {pids}"]
    kill_grace: 1s
    retries: 2
    retry_backoff: {{base: 1s, jitter: 0}}
"""


def start_long_run(d: DaemonProc, pids: Path) -> int:
    """Trigger ``long`` and wait until its command runs; returns the command's pid."""
    d.start()
    wait_for(
        lambda: d.cli("trigger", "long", check=False).returncode == 0,
        what="daemon up and the run triggered",
    )
    line = wait_for(lambda: pids.exists() and pids.read_text().strip(), what="command started")
    return int(line.split()[1])


def test_kill9_of_the_daemon_takes_its_command_group_down(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    d = DaemonProc(tmp_path, CONFIG.format(pids=pids))
    pgid = 0
    try:
        pid = start_long_run(d, pids)
        pgid = os.getpgid(pid)
        d.kill9()
        wait_for(lambda: group_gone(pgid), timeout=10, what="the command's group to be gone")
        assert "END" not in pids.read_text()
        (marker,) = (d.home / "runs").glob("*.json")
        slot_id, attempt = (int(x) for x in marker.stem.split("-"))
        end = ended_run(d.home, slot_id, attempt)
        assert end is not None and end.orphaned
    finally:
        d.stop()
        if pgid:
            kill_group(pgid)
        kill_pids_in(pids)


def test_a_run_that_ended_while_the_daemon_was_down_is_recorded_not_retried(
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    d = DaemonProc(tmp_path, CONFIG.format(pids=pids))
    pgid = 0
    try:
        pid = start_long_run(d, pids)
        pgid = os.getpgid(pid)
        d.kill9()
        wait_for(lambda: group_gone(pgid), timeout=10, what="the command's group to be gone")
        # What the launcher writes when a command ends on its own while no daemon
        # watches (with prctl the command dies with the daemon; without it, or in the
        # instant between the command's end and the daemon recording it, it does not).
        (marker,) = (d.home / "runs").glob("*.json")
        slot_id, attempt = (int(x) for x in marker.stem.split("-"))
        run = started_run(d.home, slot_id, attempt)
        assert run is not None and run.output is not None
        Path(run.output).write_text("finished while the daemon was down\n")
        fields = {
            "slot": slot_id,
            "attempt": attempt,
            "host": run.host,
            "pgid": run.pgid,
            "pgid_start": run.pgid_start,
            "output": run.output,
            "started_at": run.started_at,
            "exit_code": 0,
            "orphaned": False,
            "ended_at": time.time(),
        }
        assert _shim.write_marker(str(marker), fields)

        d.start()
        done = wait_for(
            lambda: [r for r in d.json("runs", "long") if r["status"] == "succeeded"],
            timeout=20,
            what="the run recorded as it ended",
        )
        assert len(d.json("runs", "long")) == 1
        assert done[0]["attempts"] == 1  # not retried
        detail = d.json("logs", str(done[0]["id"]))
        assert "finished while the daemon was down" in detail["output"]
        assert pids.read_text().count("START") == 1  # ran once, and was not redone
        wait_for(lambda: not marker.exists(), timeout=10, what="the marker to be removed")
    finally:
        d.stop()
        if pgid:
            kill_group(pgid)
        kill_pids_in(pids)


def test_recording_an_unwatched_end_is_a_compare_and_set_with_deliveries(tmp_path: Path) -> None:
    from dataclasses import replace
    from datetime import timedelta

    from agentcron.model import AttemptOutcome, NewSlot, TaskSource
    from agentcron.store.sqlite import SQLiteStore

    t0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
    store = SQLiteStore(tmp_path / "agentcron.db")
    try:
        spec = TaskSpec(name="t", every="1h", command=["true"])
        store.upsert_task(spec, TaskSource.API, t0, t0 + timedelta(hours=1))  # t0 recorded
        made = store.add_slot("t", NewSlot(t0, SlotStatus.PENDING, None), t0)
        assert made is not None
        store.claim("dead", t0, t0 + timedelta(minutes=1), 1)
        (lost,) = store.lapsed(t0 + timedelta(minutes=2))
        ok = AttemptOutcome(
            ok=True,
            slot_status=SlotStatus.SUCCEEDED,
            exit_code=0,
            output_path=str(tmp_path / "out.log"),
            deliver_to=(("json://localhost/hook", "json://localhost"),),
        )
        ended = t0 + timedelta(seconds=30)
        stale = replace(lost, lease_expires_at=t0 + timedelta(minutes=30))  # renewed since
        assert not store.record_unwatched_end(stale, ok, ended)
        assert store.record_unwatched_end(lost, ok, ended)
        assert not store.record_unwatched_end(lost, ok, ended)  # only once, by one node
        assert not store.record_lost(lost, ok, ended)
        slot = store.get_slot(made.id)
        assert slot is not None
        assert (slot.status, slot.finished_at, slot.lease_owner) == (
            SlotStatus.SUCCEEDED,
            ended,
            None,
        )
        (attempt,) = store.attempts(made.id)
        assert (attempt.status, attempt.exit_code) == ("succeeded", 0)
        (delivery,) = store.deliveries(made.id)
        assert delivery.target == "json://localhost/hook"
    finally:
        store.close()


def test_an_unreadable_marker_is_said_and_counts_as_no_end(tmp_path: Path, caplog: Any) -> None:
    """A marker cut short by a crash of the machine: the run has no known end (it is
    retried as lost), and the log names the file; a missing marker says nothing."""
    import logging

    path = marker_path(tmp_path, 9, 1)
    path.parent.mkdir(parents=True)
    path.write_text('{"slot": 9, "attempt": 1, "pgid": 12')  # cut short
    with caplog.at_level(logging.WARNING, logger="agentcron.orphans"):
        assert ended_run(tmp_path, 9, 1) is None
        assert ended_run(tmp_path, 10, 1) is None  # no marker at all
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and str(path) in messages[0] and "cannot be read" in messages[0]


def test_a_group_whose_launcher_died_with_its_daemon_is_still_stopped() -> None:
    """Launcher and daemon killed together (the OOM killer, ``pkill -9 python3``): the
    command lives on in the group, reparented. The recovery must stop it all the same,
    or the retry runs beside it, the slot twice at once (outside-in probe)."""
    from agentcron.orphans import start_time, stop_group

    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, time; c = subprocess.Popen(['sleep', '60']); "
            "print(c.pid, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pgid = launcher.pid
    try:
        assert launcher.stdout is not None
        command = int(launcher.stdout.readline())
        assert start_time(command) is not None
        started = start_time(pgid)
        os.kill(pgid, signal.SIGKILL)
        launcher.wait(10)
        assert not group_gone(pgid)  # the command outlived its launcher
        assert stop_group(pgid, started)
        wait_for(lambda: group_gone(pgid), timeout=10, what="the orphaned command to be gone")
    finally:
        kill_group(pgid)
        if launcher.stdout is not None:
            launcher.stdout.close()


def test_a_group_id_now_led_by_another_process_is_left_alone() -> None:
    """A recorded group whose ID now leads another process (the ID was reused) is not
    ours: nothing is killed."""
    from agentcron.orphans import start_time, stop_group

    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        started = start_time(other.pid)
        assert started is not None
        assert not stop_group(other.pid, started - 1)  # recorded: an earlier process
        assert other.poll() is None
    finally:
        other.kill()
        other.wait(10)
