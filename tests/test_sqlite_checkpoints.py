"""WAL checkpoints off the writer's thread (the daemon's loop never syncs the disk on
commit): the log stays bounded, the writer checkpoints only when the log grows too
long to wait for a quiet moment, a failing checkpointer hands the job back."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agentcron.store._checkpoints import Checkpointer
from agentcron.store.sqlite import SQLiteStore

CHUNK = os.urandom(64 * 1024)


def wait_for(condition: Callable[[], bool], what: str, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


class Writer:
    """A writer connection that does not checkpoint, and records being told to."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA wal_autocheckpoint = 0")
        self.db.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB)")
        self.told: list[bool] = []
        self.lock = threading.Lock()

    def changes(self) -> int:
        return self.db.total_changes

    def writing(self) -> bool:
        return self.db.in_transaction

    def checkpoints(self, on: bool) -> None:
        self.told.append(on)
        with self.lock:
            self.db.execute(f"PRAGMA wal_autocheckpoint = {1000 if on else 0}")

    def burst(self, rows: int = 64) -> None:
        with self.lock:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO blobs (body) VALUES (?)", [(CHUNK,)] * rows)
            self.db.execute("DELETE FROM blobs")  # keep the database itself small
            self.db.execute("COMMIT")


def wal_size(path: Path) -> int:
    return path.with_name(path.name + "-wal").stat().st_size


def test_bursts_with_pauses_keep_the_log_bounded_and_the_writer_never_checkpoints(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.db"
    w = Writer(path)
    cp = Checkpointer(
        str(path), w.changes, w.writing, w.checkpoints, interval=0.01, idle_interval=0.02
    )
    cp.start()
    try:
        for round_ in range(20):  # 20 x 64 x 64 KiB: 80 MiB through the log
            w.burst()
            # the pause: until the checkpointer has copied the burst (a checkpoint taken
            # while the burst's COMMIT still wrote the log copies only the frames before
            # it, and must not be taken for done: the log would never start over)
            wait_for(cp.caught_up, f"the checkpoints to catch up after burst {round_}")
    finally:
        cp.stop()
    # Without checkpoints the log would hold every page written: over 80 MiB. With them
    # it stays a fraction of that; how small depends on when the last checkpoint could
    # catch up on a shared disk (17-30 MiB seen under load, a few MiB when quiet).
    assert wal_size(path) < 48 * 1024 * 1024, wal_size(path)
    assert w.told == []
    assert w.db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)


def test_writes_without_a_pause_hand_checkpoints_back_until_the_log_starts_over(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.db"
    w = Writer(path)
    cp = Checkpointer(
        str(path),
        w.changes,
        w.writing,
        w.checkpoints,
        interval=0.01,
        idle_interval=0.02,
        force_after=64,
        max_pages=2000,
    )
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            w.burst(16)

    def paused_then_wrote() -> bool:
        # the log starts over at the first write after a checkpoint that copied it all
        w.burst(1)
        time.sleep(0.05)
        return w.told[-1:] == [False]

    busy = threading.Thread(target=hammer)
    cp.start()
    try:
        busy.start()
        try:
            wait_for(lambda: w.told[:1] == [True], "the writer to be told to checkpoint")
        finally:
            stop.set()
            busy.join()
        wait_for(paused_then_wrote, "checkpoints taken back once writes paused")
    finally:
        cp.stop()
    assert w.db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)


def test_a_failing_checkpointer_gives_the_job_back(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    w = Writer(path)
    reads = iter([0])

    def changes() -> int:
        return next(reads)  # the second read fails

    cp = Checkpointer(
        str(path), changes, w.writing, w.checkpoints, interval=0.01, idle_interval=0.02
    )
    cp.start()
    try:
        wait_for(lambda: w.told == [True], "the writer to take checkpoints back")
    finally:
        cp.stop()
    assert w.db.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)


def test_the_store_moves_checkpoints_off_its_connection(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "agentcron.db")
    try:
        assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
        store.start_background_work()
        first = store._checkpointer
        store.start_background_work()  # once is enough; a second call changes nothing
        assert store._checkpointer is first
        assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        checkpointer = store._checkpointer
        assert checkpointer is not None and checkpointer._thread.is_alive()
    finally:
        store.close()
    assert not checkpointer._thread.is_alive()
    assert not (tmp_path / "agentcron.db-wal").exists()  # the last close checkpointed it all


def test_a_full_disk_does_not_end_the_checkpointer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Chaos soak: a checkpoint that failed with "database or disk is full" ended the
    thread; the daemon counted each as its upkeep's failure, and after five short
    disk-full spells in ten minutes it exited for good. A full disk is now waited out:
    the thread lives, says it once, and checkpoints again once there is room."""
    from agentcron.store import _checkpoints

    path = tmp_path / "w.db"
    w = Writer(path)
    full = threading.Event()
    full.set()
    real_connect = sqlite3.connect

    class Conn:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def execute(self, sql: str) -> sqlite3.Cursor:
            if "wal_checkpoint" in sql and full.is_set():
                exc = sqlite3.OperationalError("database or disk is full")
                exc.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
                raise exc
            return self.conn.execute(sql)

        def close(self) -> None:
            self.conn.close()

    monkeypatch.setattr(
        _checkpoints.sqlite3, "connect", lambda *a, **k: Conn(real_connect(*a, **k))
    )
    caplog.set_level(logging.WARNING, logger="agentcron.store")
    cp = Checkpointer(
        str(path), w.changes, w.writing, w.checkpoints, interval=0.01, idle_interval=0.02
    )
    cp.start()
    try:
        w.burst()
        wait_for(lambda: cp.disk_full, "a checkpoint to meet the full disk")
        w.burst()
        time.sleep(0.1)
        assert cp.fault is None and cp._thread.is_alive() and cp.checkpoints == 0
        full.clear()
        wait_for(lambda: cp.checkpoints > 0 and not cp.disk_full, "checkpoints again")
    finally:
        cp.stop()
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "the disk is full" in m]) == 1
    assert any("work again" in m for m in said)
    assert w.told == []  # never handed back: the writer's own would meet the same disk
