"""The daemon's locks are kept at their paths while it runs.

An outside-in probe deleted a running daemon's home (or only its lock files): the
flock stayed on the removed files, which nobody opens again. `health` then made a new
empty database and said no daemon ran, `doctor` said to start one, and the second
daemon ran every task beside the first, each output delivered twice. A daemon now
takes its locks again at their paths within a beat (the home folder made again), so
commands see it and a second daemon is refused; one that got in first is told. And a
database file put in the place of the daemon's is refused by commands: closing it
removed the write-ahead log the daemon still wrote to, and all it recorded after was
lost."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agentcron.daemon import Daemon, DaemonOptions
from agentcron.instance_lock import (
    LOCK_FILE,
    DaemonAlreadyRunning,
    InstanceLock,
    daemon_lock,
    keep_locks,
    running_daemon,
)
from agentcron.model import Message
from agentcron.store import StoreError, open_store
from agentcron.store.sqlite import SQLiteStore
from harness import stat_failing


def test_a_home_deleted_under_the_daemon_gets_its_lock_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with daemon_lock(home, None) as lock:
        assert lock is not None
        before = running_daemon(home)
        assert before is not None and before.pid == os.getpid()
        shutil.rmtree(home)
        assert running_daemon(home) is None  # what commands saw: no daemon
        keep_locks(lock, None)
        with pytest.raises(DaemonAlreadyRunning):
            InstanceLock(home).acquire()  # a second daemon started here; now refused
        after = running_daemon(home)
        assert after is not None and after.started_at == before.started_at  # not "starting"
        assert (home / "agentcron.db.daemon.lock").exists()  # the database's lock too
        assert home.stat().st_mode & 0o777 == 0o700  # made again private
        (home / LOCK_FILE).write_text("")  # a write that failed: the file says nothing
        keep_locks(lock, None)
        assert running_daemon(home) is not None  # written again
    assert (home / LOCK_FILE).read_text() == ""  # released at the end, as ever
    free = InstanceLock(home)
    free.acquire()
    free.release()


def test_a_second_daemon_that_took_a_removed_lock_first_is_said(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = InstanceLock(home)
    first.acquire()
    second = InstanceLock(home)
    try:
        (home / LOCK_FILE).unlink()
        second.acquire()  # started in the gap
        with pytest.raises(DaemonAlreadyRunning):
            first.keep()
        assert first.held  # still holds what it held; released as ever
    finally:
        second.release()
        first.release()


def test_a_database_file_put_in_the_daemons_place_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with daemon_lock(home, None) as lock:
        store = SQLiteStore(home / "agentcron.db")  # the daemon's, as it opens it
        try:
            keep_locks(lock, store.file_id)
            db = home / "agentcron.db"
            shutil.copy(db, tmp_path / "copy.db")
            db.unlink()
            shutil.copy(tmp_path / "copy.db", db)  # the same bytes, another file
            with pytest.raises(StoreError) as caught:
                open_store(None, home)
            said = str(caught.value)
            assert f"the database {db} is not the file the daemon (pid {os.getpid()})" in said
            assert "it was replaced while the daemon runs. Nothing was read" in said
        finally:
            store.close()


def test_a_daemons_file_gone_or_unreadable_at_the_look_is_refused_not_made_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the look for a missing file and the look at which file it is, the file can
    go: opened then, a new empty one would be made beside the daemon. And a file that
    cannot be looked at is not opened blind."""
    import agentcron.store as store_module
    from agentcron.store import _refuse_replaced_under_daemon

    home = tmp_path / "home"
    db = home / "agentcron.db"
    with daemon_lock(home, None) as lock:
        store = SQLiteStore(db)
        try:
            keep_locks(lock, store.file_id)
            gone = FileNotFoundError(2, "No such file or directory", str(db))
            stat_failing(monkeypatch, store_module, db, gone)
            with pytest.raises(StoreError, match=r"is missing, but a daemon .* moved or deleted"):
                _refuse_replaced_under_daemon(db)
            refused = PermissionError(13, "Permission denied", str(db))
            stat_failing(monkeypatch, store_module, db, refused)
            with pytest.raises(StoreError, match=r"cannot look at the database .*Permission"):
                _refuse_replaced_under_daemon(db)
            monkeypatch.undo()
            _refuse_replaced_under_daemon(db)  # its own file: nothing to refuse
        finally:
            store.close()


def test_a_second_daemon_on_the_database_is_told_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = Daemon(DaemonOptions(config_path=None, home=tmp_path / "home"))
    told: list[Message] = []
    monkeypatch.setattr(daemon, "_tell_soon", told.append)

    home = tmp_path / "home"
    with daemon_lock(home, None) as lock:
        daemon.options.lock = lock
        (home / LOCK_FILE).unlink()
        second = InstanceLock(home)
        second.acquire()  # a second daemon started in the gap
        try:
            daemon._keep_locks()
            daemon._keep_locks()
        finally:
            second.release()
    (message,) = told
    assert "its daemon lock was removed while it ran, and another daemon took it" in message.body
    assert f"(pid {os.getpid()}" in message.body and "stop one of them" in message.body


def test_a_running_daemon_whose_home_was_deleted_keeps_a_second_one_out(
    tmp_path: Path,
) -> None:
    """End to end, as the probe did it: `rm -rf home` under a running daemon; `health`
    refuses to make a new database (naming the daemon), and a second `agentcron run` is
    refused, where it started and ran every task twice."""
    import subprocess
    import sys

    from daemon_proc import DaemonProc, wait_for

    config = "tasks:\n  idle:\n    every: 1h\n    command: ['true']\n"
    first = DaemonProc(tmp_path, config, {"AGENTCRON_WATCHDOG_INTERVAL": "1"})
    try:
        first.start()
        assert first.proc is not None
        pid = first.proc.pid
        wait_for(lambda: "agentcron running" in first.daemon_log(), what="daemon up")
        shutil.rmtree(first.home)

        def taken_again() -> bool:
            held = running_daemon(first.home)
            return held is not None and held.pid == pid

        wait_for(taken_again, what="the lock taken again")
        health = first.cli("health", check=False)
        assert health.returncode != 0
        said = " ".join((health.stdout + health.stderr).split())
        assert f"is missing, but a daemon (pid {pid}) is running on the home" in said, said
        assert not (first.home / "agentcron.db").exists()  # nothing made
        second = subprocess.run(
            [sys.executable, "-m", "agentcron", "run", "--config", str(first.config)],
            cwd=tmp_path,
            env=first.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0 and f"pid {pid}" in second.stderr, second.stderr
        assert "the daemon lock" in first.daemon_log() and "taken again" in first.daemon_log()
    finally:
        first.stop()


def test_two_daemons_of_one_process_keep_their_own_locks(tmp_path: Path) -> None:
    """Schedulers of two homes in one program: each notes its own database file in its
    own lock (a shared list of held locks wrote one's file into the other's, and a
    command on a healthy database was refused as "replaced")."""
    from agentcron.instance_lock import daemon_on_database

    one, two = tmp_path / "one", tmp_path / "two"
    with daemon_lock(one, None) as a, daemon_lock(two, None) as b:
        store_a = SQLiteStore(one / "agentcron.db")
        store_b = SQLiteStore(two / "agentcron.db")
        try:
            keep_locks(a, store_a.file_id)
            keep_locks(b, store_b.file_id)
            keep_locks(a, store_a.file_id)
            held_b = daemon_on_database((two / "agentcron.db").resolve())
            assert held_b is not None and held_b.database_file == store_b.file_id
            open_store(None, two).close()  # not refused
        finally:
            store_a.close()
            store_b.close()
