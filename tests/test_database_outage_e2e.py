"""Real processes: another program holds SQLite's write lock for longer than the
outage notice; the daemon keeps running, says once that the database is
unavailable and once that it is back, and schedules again without a restart."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from daemon_proc import DaemonProc, wait_for
from e2e_sink import Sink

pytestmark = pytest.mark.slow

HOLD = 14.0  # longer than the 10 s notice, short enough for CI


def test_a_held_write_lock_is_told_once_when_it_starts_and_once_when_it_ends(
    tmp_path: Path,
) -> None:
    with Sink() as sink:
        d = DaemonProc(
            tmp_path,
            f'notify: ["{sink.url("/owner")}"]\n'
            "tasks:\n  beat:\n    every: 1s\n    command: [echo, beat]\n",
        )
        try:
            d.start()
            # (its tasks are the daemon's to bring in: a command no longer does while
            # a daemon runs)
            wait_for(lambda: "agentcron running" in d.daemon_log(), what="daemon up")
            wait_for(lambda: len(d.json("runs", "beat")) >= 2, what="beats recorded")
            db = sqlite3.connect(d.home / "agentcron.db", isolation_level=None, timeout=30)
            db.execute("BEGIN IMMEDIATE")  # the write lock, as a long migration would hold it
            held_at = time.monotonic()
            told = wait_for(
                lambda: [t for t in sink.texts("/owner") if "database unavailable" in t],
                timeout=HOLD + 20,
                what="outage told",
            )
            took = time.monotonic() - held_at
            while time.monotonic() - held_at < HOLD:
                time.sleep(0.2)
            db.execute("ROLLBACK")
            db.close()
            released = time.time()
            wait_for(
                lambda: [t for t in sink.texts("/owner") if "available again" in t],
                timeout=30,
                what="recovery told",
            )
            wait_for(
                lambda: any(
                    r["status"] == "succeeded"
                    and r["finished_at"] is not None
                    and _epoch(str(r["finished_at"])) > released
                    for r in d.json("runs", "beat", "--limit", "5")
                ),
                what="beats after the lock",
            )
            texts = sink.texts("/owner")
            assert d.proc is not None and d.proc.poll() is None  # still running
        finally:
            d.stop()
    assert len(told) == 1 and "database is locked" in told[0], texts
    assert 10 <= took <= HOLD + 10, took  # after the notice delay, not at the first blip
    assert len([t for t in texts if "database unavailable" in t]) == 1, texts
    assert len([t for t in texts if "available again" in t]) == 1, texts
    assert not [t for t in texts if "scheduler stalled" in t], texts  # not a stall


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()
