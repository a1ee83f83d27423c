"""Stopping the daemon loses no end: every run that ended, the ones the stop itself
interrupted included, reaches every listener before the store closes (issue 16 §7: the
notifier's last batch used to meet a closed database, and a failure that ended at
shutdown was never told)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from agentcron.daemon import Daemon, DaemonOptions
from agentcron.model import Finished
from harness import until

pytestmark = pytest.mark.slow


def test_every_run_ended_by_the_stop_reaches_the_listeners(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = "".join(
        f"  nap{i}:\n    every: 1s\n    python: pyactions_sample:nap\n"
        f"    args: [{0.2 + (i % 5) * 0.5}]\n    isolation: inline\n"
        for i in range(30)
    )
    tasks += "  long:\n    every: 1s\n    python: pyactions_sample:nap\n    args: [30]\n"
    tasks += "    isolation: inline\n"
    config = tmp_path / "agentcron.yaml"
    config.write_text("timezone: UTC\nmax_concurrency: 50\ntasks:\n" + tasks)
    heard: list[Finished] = []
    d = Daemon(
        DaemonOptions(
            config_path=config,
            home=tmp_path / "home",
            shutdown_grace=0.5,  # the longer naps are interrupted by the stop
            final_drain=1.0,
            tune_gc=False,
            extra_listeners=[heard.append],
        )
    )

    async def scenario() -> int:
        runner = asyncio.ensure_future(d.run())

        def long_runs() -> bool:
            try:
                with sqlite3.connect(tmp_path / "home" / "agentcron.db") as db:
                    rows = db.execute(
                        "SELECT COUNT(*) FROM slots WHERE task = 'long' AND status = 'running'"
                    ).fetchone()
            except sqlite3.Error:
                return False
            return bool(rows[0])

        await until(long_runs, timeout=60, interval=0.1)
        await asyncio.sleep(1.5)  # the short naps keep starting and ending
        d._stop()
        return await asyncio.wait_for(runner, 30)

    with caplog.at_level(logging.WARNING):
        assert asyncio.run(scenario()) == 0
    with sqlite3.connect(tmp_path / "home" / "agentcron.db") as db:
        [(ended,)] = db.execute("SELECT COUNT(*) FROM attempts WHERE finished_at IS NOT NULL")
        [(open_,)] = db.execute("SELECT COUNT(*) FROM slots WHERE status = 'running'")
        classes = db.execute(
            "SELECT error_class, status, COUNT(*) FROM attempts GROUP BY 1, 2"
        ).fetchall()
        interrupted = db.execute(
            "SELECT COUNT(*) FROM attempts WHERE error_class = 'worker_lost'"
        ).fetchone()[0]
    assert open_ == 0
    assert interrupted > 0, classes  # the stop really cut runs short
    assert len(heard) == ended, (len(heard), ended)
    assert len({(f.slot.id, f.attempt) for f in heard}) == ended
    problems = [r.getMessage() for r in caplog.records if "listener failed" in r.getMessage()]
    assert problems == [] and "closed database" not in caplog.text
