"""One daemon per SQLite home (issue 11, item 9): a second start refuses and names the
first; a first that died (even by kill -9) leaves nothing in a successor's way."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentcron import Scheduler
from agentcron.instance_lock import (
    LOCK_FILE,
    DaemonAlreadyRunning,
    InstanceLock,
    daemon_lock,
)
from agentcron.store import StoreError
from daemon_proc import DaemonProc, wait_for

CONFIG = """
tasks:
  idle:
    every: 1h
    command: ["true"]
"""


def lock_pid(home: Path) -> int | None:
    try:
        return int(json.loads((home / LOCK_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


# ---- the lock itself ------------------------------------------------------------------------
def test_a_second_lock_on_one_home_is_refused_naming_the_holder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = InstanceLock(home)
    first.acquire()
    try:
        assert lock_pid(home) == os.getpid()
        with pytest.raises(DaemonAlreadyRunning) as caught:
            InstanceLock(home).acquire()
        assert caught.value.holder.pid == os.getpid()
        message = str(caught.value)
        assert f"pid {os.getpid()}" in message
        assert str(home) in message and "already running" in message
        # the holder is this very process: not "stop it first (kill PID)" (probe)
        assert "this process" in message and "kill" not in message
    finally:
        first.release()
    assert (home / LOCK_FILE).read_text() == ""  # names no process once released
    again = InstanceLock(home)
    again.acquire()  # free again
    assert again.held
    again.release()


def test_a_stale_lock_file_is_taken_over(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / LOCK_FILE).write_text(json.dumps({"pid": 999_999_999, "started_at": "x"}))
    lock = InstanceLock(home)
    lock.acquire()  # the file is there, but nobody holds the flock
    try:
        assert lock_pid(home) == os.getpid()
    finally:
        lock.release()


def test_only_sqlite_homes_are_locked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with daemon_lock(home, "postgresql://u@h/db") as lock:
        assert lock is None
    assert not home.exists()  # nothing created for PostgreSQL
    with daemon_lock(home, str(tmp_path / "other.db")) as lock:
        assert lock is not None and lock.held
        with pytest.raises(DaemonAlreadyRunning), daemon_lock(home, None):
            pass
    assert not lock.held
    with pytest.raises(StoreError, match="notaurl"), daemon_lock(home, "notaurl"):
        pass


def test_two_homes_naming_one_sqlite_file_cannot_both_hold_it(tmp_path: Path) -> None:
    """Two homes, one ``--db``: each home's lock was free, and both daemons ran on the
    one file as two nodes of a store made for one."""
    shared = tmp_path / "data" / "agentcron.db"
    shared.parent.mkdir()
    one, two = tmp_path / "one", tmp_path / "two"
    with daemon_lock(one, str(shared)) as lock:
        assert lock is not None and lock.held
        with pytest.raises(DaemonAlreadyRunning) as caught, daemon_lock(two, str(shared)):
            pass
        message = str(caught.value)
        assert f"already runs on the database {shared} (pid {os.getpid()}, home {one})" in message
        assert "use PostgreSQL for several nodes" in message
        assert not InstanceLock(two).held  # the refused one let go of its own home
        with daemon_lock(two, None):  # its own database is its own
            pass
    with daemon_lock(two, f"sqlite:///{shared}"):  # free again once the first let go
        pass
    # another home's own database named outright is refused too
    refused = pytest.raises(DaemonAlreadyRunning, match=f"home {one}")
    with daemon_lock(one, None), refused, daemon_lock(two, str(one / "agentcron.db")):
        pass


def test_a_python_api_scheduler_refuses_while_another_daemon_holds_the_home(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    held = InstanceLock(home)
    held.acquire()
    try:
        sched = Scheduler(home=home)
        sched.add("idle", command=["true"], every="1h")
        with pytest.raises(DaemonAlreadyRunning, match=f"pid {os.getpid()}"):
            asyncio.run(asyncio.wait_for(sched.run_async(asyncio.Event()), 30))
        assert not (home / "agentcron.db").exists()  # refused before opening anything
    finally:
        held.release()


# ---- real daemons ---------------------------------------------------------------------------
@pytest.mark.slow
def test_second_daemon_refuses_and_a_third_takes_over_after_kill9(tmp_path: Path) -> None:
    first = DaemonProc(tmp_path, CONFIG)
    third = DaemonProc(tmp_path, CONFIG)
    third.log = tmp_path / "third.log"
    try:
        first.start()
        assert first.proc is not None
        wait_for(lambda: "agentcron running" in first.daemon_log(), what="first daemon up")
        assert lock_pid(first.home) == first.proc.pid

        started = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "agentcron", "run", "--config", str(first.config)],
            cwd=tmp_path,
            env=first.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert time.monotonic() - started < 20  # refuses at once, does not hang
        assert "Traceback" not in second.stderr
        assert f"pid {first.proc.pid}" in second.stderr
        assert "already running" in second.stderr
        assert first.proc.poll() is None  # the first runs on, undisturbed
        assert lock_pid(first.home) == first.proc.pid

        first.kill9()
        third.start()
        assert third.proc is not None
        wait_for(lambda: "agentcron running" in third.daemon_log(), what="third daemon up")
        assert lock_pid(third.home) == third.proc.pid
        assert third.proc.poll() is None
    finally:
        first.stop()
        third.stop()


@pytest.mark.slow
def test_a_daemon_of_another_home_on_the_same_database_refuses(tmp_path: Path) -> None:
    shared = tmp_path / "shared.db"
    config = tmp_path / "agentcron.yaml"
    config.write_text(CONFIG)

    def run(home: str) -> list[str]:
        where = ["--home", str(tmp_path / home), "--db", str(shared)]
        return [sys.executable, "-m", "agentcron", "run", "--config", str(config), *where]

    log = tmp_path / "first.log"
    with log.open("wb") as out:
        first = subprocess.Popen(run("a"), cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "agentcron running" in log.read_text(), what="first daemon up")
        second = subprocess.run(run("b"), cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert "Traceback" not in second.stderr
        assert f"already runs on the database {shared} (pid {first.pid}" in second.stderr
        assert first.poll() is None  # the first runs on, undisturbed
    finally:
        first.terminate()
        first.wait(30)


def test_a_lock_record_whose_pid_now_names_another_process_is_not_a_running_daemon(
    tmp_path: Path,
) -> None:
    """A daemon killed with -9 leaves its pid in the file; after a reboot that pid may
    name another process, which must not be taken for the daemon (a CLI would then
    refuse to make a database, or believe its trouble file). The process's start in
    clock ticks tells them apart (a wall-clock time would move with an NTP step)."""
    import json
    import os

    from agentcron.home import hostname
    from agentcron.instance_lock import LOCK_FILE, _start_ticks, running_daemon

    home = tmp_path / "home"
    home.mkdir()
    mine = _start_ticks(os.getpid())
    assert mine is not None

    def record(**extra: object) -> None:
        data = {"pid": os.getpid(), "host": hostname(), "started_at": "x", **extra}
        (home / LOCK_FILE).write_text(json.dumps(data))

    record(start_ticks=mine)
    holder = running_daemon(home)
    assert holder is not None and holder.pid == os.getpid()
    record(start_ticks=mine + 12345)  # the pid, but another process's start
    assert running_daemon(home) is None
    record()  # a record without ticks (an older agentcron): the pid is believed
    assert running_daemon(home) is not None
