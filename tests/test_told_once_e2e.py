"""Told once, with the record's counts, by a real daemon (issue 12 §1, §2).

A real `agentcron run` with short periods and a local webhook channel: a transient
failure that outlasts its period escalates once (not once per slot, not never); a task
that always outlasts its period is one skip incident, not a storm, and its closing
message counts the skipped slots the database holds.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from daemon_proc import DaemonProc, wait_for
from e2e_webhook import WebhookReceiver

pytestmark = pytest.mark.slow

PY = sys.executable


def _config(hook: str, slow_seconds: float) -> str:
    return f"""\
timezone: UTC
notify: ["{hook}"]
tasks:
  flaky:
    every: 2s
    command: ["{PY}", "-c", "print('upstream 503'); raise SystemExit(75)"]
    retries: 3
    retry_backoff: {{base: 20s, jitter: 0}}
  slow:
    every: 1s
    command: ["{PY}", "-c", "import time; time.sleep({slow_seconds})"]
    overlap: skip
    retries: 0
"""


def _lines(hook: WebhookReceiver, task: str) -> list[str]:
    out = []
    for m in hook.messages():
        first = str(m.get("message", "")).splitlines()[0] if m.get("message") else ""
        if re.match(rf"\W+ {task}\b", m.get("title", "")) or f" {task} " in first:
            out.append(first)
    return out


def _db(d: DaemonProc, sql: str) -> Any:
    with sqlite3.connect(d.home / "agentcron.db") as db:
        return db.execute(sql).fetchall()


def test_a_real_daemon_escalates_a_persisting_failure_once_and_skips_are_one_incident(
    tmp_path: Path,
) -> None:
    with WebhookReceiver() as hook:
        d = DaemonProc(tmp_path, _config(hook.url, 3.5))
        d.start()
        try:
            wait_for(
                lambda: any(x.startswith("✖ flaky has failed") for x in _lines(hook, "flaky")),
                timeout=60,
                what="the escalation",
            )
            wait_for(lambda: _lines(hook, "slow"), timeout=60, what="the skip streak message")
            time.sleep(6)  # several more failed runs and skip cycles: nothing more is told
            flaky, slow = _lines(hook, "flaky"), _lines(hook, "slow")
            assert len(flaky) == 2, flaky
            # every 2s, first retry after 20s: the next fire takes each retry's place
            assert flaky[0].startswith("⚠ flaky failed: ")
            assert "The next scheduled run, at " in flaky[0], flaky[0]
            # a time on the whole minute is said without its seconds ("since 05:55")
            assert re.match(
                r"✖ flaky has failed 4 runs in a row since \d\d:\d\d(:\d\d)?: .+\. "
                r"Still retrying each run\.$",
                flaky[1],
            ), flaky
            assert slow == [
                "⚠ slow was skipped 3 times in a row: the previous run was still running."
            ], slow
            listed = {r["name"]: r for r in d.json("list")}
            assert listed["flaky"]["health"] == "failing", listed["flaky"]
            assert listed["slow"]["health"] == "skipping", listed["slow"]
            # the slow task now fits its period: the streak closes with the record's count
            d.config.write_text(_config(hook.url, 0.05))
            wait_for(lambda: len(_lines(hook, "slow")) == 2, timeout=60, what="the closing")
            closing = _lines(hook, "slow")[1]
            skipped = _db(d, "SELECT COUNT(*) FROM slots WHERE task='slow' AND status='skipped'")
            assert closing == f"✔ slow runs on schedule again after {skipped[0][0]} skipped runs."
            [(failed_runs,)] = _db(
                d, "SELECT failed_runs FROM incidents WHERE task='flaky' AND closed_at IS NULL"
            )
            [(slots_failed,)] = _db(
                d,
                "SELECT COUNT(*) FROM slots WHERE task='flaky' AND attempts > 0 "
                "AND status <> 'succeeded'",
            )
            assert failed_runs == slots_failed or failed_runs == slots_failed - 1  # one may run
        except BaseException:
            print(d.daemon_log()[-6000:])
            raise
        finally:
            d.stop()
