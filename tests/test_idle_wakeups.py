"""An idle daemon sleeps: its threads and timers wake about once a second in all,
not several times (issue 16), while what must still be seen is seen (the writer's
bursts are checkpointed; see also test_idle_daemon.py)."""

from __future__ import annotations

import time
from pathlib import Path

from agentcron.store.sqlite import SQLiteStore


def _wait_for(condition: object, what: str, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_the_checkpointer_sleeps_through_small_writes_and_wakes_for_a_burst(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "agentcron.db")
    try:
        store.start_background_work()
        cp = store._checkpointer
        assert cp is not None
        _wait_for(lambda: cp._idle, "the thread to wait for the writer")
        # a few rows, like an idle daemon's heartbeat: no wake-up of the thread
        for i in range(5):
            store.set_meta(f"k{i}", "v")
        assert cp._idle and cp.checkpoints == 0
        # a burst past wake_after rows wakes it: checkpointed well before the slow look
        # (30 s), within this test's deadline
        with store._tx() as db:
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, 'x')",
                [(f"b{i}",) for i in range(cp.wake_after + 1)],
            )
        _wait_for(lambda: cp.checkpoints >= 1, "a checkpoint after the burst", deadline=15.0)
    finally:
        store.close()
