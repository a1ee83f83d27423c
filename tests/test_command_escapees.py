"""Processes that leave a command's process group (``setsid``, a job of its own under
``set -m``, a double fork) are found by the launcher, their subreaper: stopped with the
run when it times out, is stopped, or its daemon dies (before, such a process ran on
beside the retry of the same slot), and named, but left running, when the command ends
on its own (``tmux new -d`` and the like detach on purpose). Real processes throughout."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agentcron.actions import _shim
from agentcron.actions.base import ActionContext, ActionResult
from agentcron.actions.command import CommandAction
from agentcron.model import ErrorClass
from agentcron.orphans import ended_run
from daemon_proc import kill_pids_in, wait_for
from test_action_command import alive, make_ctx, read_pids

pytestmark = pytest.mark.slow

SHIM = str(Path(_shim.__file__))


def home_ctx(tmp_path: Path, **kw: Any) -> ActionContext:
    """A context whose output lies where a daemon puts it (``HOME/outputs/TASK/``), so
    the launcher keeps a marker the action reads back."""
    ctx = make_ctx(tmp_path, **kw)
    out = tmp_path / "outputs" / "job" / "run.log"
    out.parent.mkdir(parents=True)
    return dataclasses.replace(ctx, output_path=out)


def run_with_log(ctx: ActionContext, caplog: pytest.LogCaptureFixture) -> tuple[ActionResult, str]:
    caplog.set_level(logging.WARNING, logger="agentcron.actions.command")
    result = asyncio.run(CommandAction().run(ctx))
    return result, caplog.text


def settled(pids: list[int]) -> list[int]:
    """Those of ``pids`` still alive a moment after the run (the launcher has exited)."""
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


@pytest.mark.parametrize(
    "script",
    [
        # (the pause: ``setsid`` has become ``sleep`` when it is named)
        "setsid sleep 30 & echo $! > {pids}; sleep 0.2; echo done",
        # a double fork into a session of its own, whose child stays in that session
        "setsid sh -c 'sleep 31 & echo $! >> {pids}; wait' & echo $! >> {pids}; "
        "sleep 0.3; echo done",
    ],
    ids=["setsid", "double-fork"],
)
def test_what_left_the_group_is_named_when_the_command_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, script: str
) -> None:
    pids = tmp_path / "pids"
    try:
        result, logged = run_with_log(
            home_ctx(tmp_path, command=script.format(pids=pids), shell=True), caplog
        )
        assert result.ok and result.output == "done\n"
        found = read_pids(pids)
        assert found and all(alive(p) for p in found)  # detached on purpose, maybe
        assert "left processes running outside its process group" in logged
        assert "sleep (pid " in logged and "They run on" in logged
        end = ended_run(tmp_path, 7, 1)
        assert end is not None and end.exit_code == 0 and end.result_known
        assert end.escaped is not None and "sleep" in end.escaped and not end.escaped_stopped
    finally:
        kill_pids_in(pids)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash for set -m")
def test_a_job_of_its_own_under_set_m_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pids = tmp_path / "pids"
    script = f"set -m; sleep 30 & echo $! > {pids}; sleep 0.2; echo done"
    try:
        result, logged = run_with_log(home_ctx(tmp_path, command=["bash", "-c", script]), caplog)
        assert result.ok
        (job,) = read_pids(pids)
        assert f"sleep (pid {job})" in logged
    finally:
        kill_pids_in(pids)


@pytest.mark.parametrize(
    "script",
    [
        "(trap '' TERM; exec sleep 30) & echo $! > {pids}; sleep 1; echo done",  # in the group
        "setsid sh -c \"trap '' TERM; exec sleep 30\" & echo $! > {pids}; sleep 1; echo done",
    ],
    ids=["stray", "escapee"],
)
def test_a_command_that_ends_in_time_succeeds_whatever_it_left(tmp_path: Path, script: str) -> None:
    """Review: the launcher stopped what the command left before exiting, the daemon
    waited for the launcher, not the command, and a command that ended after 1 s of a
    2 s timeout was recorded timed out (and run again) while its marker said exit 0."""
    pids = tmp_path / "pids"
    ctx = home_ctx(tmp_path, timeout=2.0, grace=2.0, command=script.format(pids=pids), shell=True)
    try:
        result = asyncio.run(CommandAction().run(ctx))
        assert result.ok and result.output == "done\n", result.failure
    finally:
        kill_pids_in(pids)


def test_a_timeout_stops_what_left_the_group_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The case that mattered: the run timed out and was retried while the work it had
    started outside its group ran on."""
    pids = tmp_path / "pids"
    script = f"setsid sh -c \"trap '' TERM; exec sleep 30\" & echo $! > {pids}; sleep 30"
    try:
        result, _ = run_with_log(
            home_ctx(tmp_path, timeout=0.5, grace=1.0, command=script, shell=True), caplog
        )
        failure = result.failure
        assert failure is not None and failure.known_class is ErrorClass.TIMEOUT
        (escapee,) = read_pids(pids)
        assert failure.message == (
            "timed out after 0.5s; killed process group (TERM); also stopped what had "
            f"left the group: sleep (pid {escapee})"
        )
        assert settled([escapee]) == []
    finally:
        kill_pids_in(pids)


def test_a_stopped_run_stops_what_left_the_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    ctx = home_ctx(tmp_path, command=f"setsid sleep 30 & echo $! > {pids}; sleep 30", shell=True)

    async def scenario() -> None:
        task = asyncio.create_task(CommandAction().run(ctx))
        await asyncio.to_thread(wait_for, lambda: bool(read_pids(pids)), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(scenario())
        assert settled(read_pids(pids)) == []
    finally:
        kill_pids_in(pids)


STAND_IN = """
import os, subprocess, sys, threading, time
argv = [sys.executable, "-I", "-S", sys.argv[1], "-1", str(os.getpid()),
        str(threading.get_native_id()), "0.5", "0", sys.argv[2], "7", "1", "out.log", "--",
        *sys.argv[3:]]
proc = subprocess.Popen(argv, start_new_session=True)
print(proc.pid, flush=True)
time.sleep(60)
"""


def test_what_left_the_group_dies_with_the_daemon(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"setsid sleep 30 & echo $! > {pids}; sleep 30"
    marker = tmp_path / "runs" / "7-1.json"
    parent = subprocess.Popen(
        [sys.executable, "-c", STAND_IN, SHIM, str(marker), "sh", "-c", script],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        int(parent.stdout.readline())
        wait_for(lambda: bool(read_pids(pids)), 10)
        parent.kill()  # the daemon dies
        parent.wait(5)
        (escapee,) = read_pids(pids)
        wait_for(lambda: not alive(escapee), timeout=10, what="the escapee to be stopped")
        end = wait_for(lambda: ended_run(tmp_path, 7, 1), 10)
        assert end.orphaned and end.escaped == f"sleep (pid {escapee})" and end.escaped_stopped
    finally:
        parent.kill()
        parent.wait(5)
        if parent.stdout is not None:
            parent.stdout.close()
        kill_pids_in(pids)


def test_processes_outside_the_run_are_left_alone(tmp_path: Path) -> None:
    """Only the launcher's own descendants are looked at: a process the test started,
    in a session of its own, lives on while a command beside it ends."""
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        argv = [sys.executable, "-I", "-S", SHIM, "-1", str(os.getpid())]
        argv += [str(threading.get_native_id()), "1", "0", "", "1", "1", "x", "--"]
        res = subprocess.run([*argv, "sh", "-c", "exit 3"], timeout=10, check=False)
        assert res.returncode == 3
        assert other.poll() is None
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait(5)


def test_what_the_look_for_escapees_cannot_read_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A process whose /proc entry cannot be read (not one that ended meanwhile) may be
    one that left the group: the look goes on, and the fault is counted and said."""
    me = os.getpid()
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        real = _shim._stat_fields

        def unreadable(pid: int | str) -> tuple[str, int, int] | None:
            if str(pid) == str(child.pid):
                raise PermissionError(13, "Permission denied")
            return real(pid)

        monkeypatch.setattr(_shim, "_stat_fields", unreadable)
        faults: list[str] = []
        assert child.pid not in _shim.escapees(me, faults)
        assert faults == [f"/proc/{child.pid}/stat: Permission denied"]
        gone: list[str] = []
        monkeypatch.setattr(_shim, "_stat_fields", real)
        assert child.pid in _shim.escapees(me, gone) and gone == []
    finally:
        child.kill()
        child.wait(5)
    # the daemon's side: a marker that says so is logged
    marker = tmp_path / "runs" / "7-1.json"
    marker.parent.mkdir()
    marker.write_text(
        '{"slot": 7, "attempt": 1, "pgid": 5, "ended_at": 1.0, "exit_code": 0, '
        '"scan_fault": "/proc/9/stat: Permission denied", "scan_faults": 2}'
    )
    caplog.set_level(logging.WARNING, logger="agentcron.actions.command")
    from agentcron.actions.command import _launcher_end

    _launcher_end(home_ctx(tmp_path, command=["true"]))
    assert "could not read 2 process(es) (first: /proc/9/stat: Permission denied)" in caplog.text
