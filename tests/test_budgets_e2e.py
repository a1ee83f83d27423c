"""Daily budgets on a real daemon (issue 14 §4): a task with `runs_per_day: 3` firing
every second runs three times; every later slot is recorded skipped with the reason;
the owner's webhook hears of it exactly once; `list`, `show` and `runs` say so, and the
database holds the day's usage. A config reload that raises the budget lets it run again.
"""

from __future__ import annotations

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


def _config(hook: str, runs: int) -> str:
    return f"""\
timezone: UTC
notify: ["{hook}"]
budget: {{runs_per_day: 1000}}
tasks:
  ping:
    every: 1s
    command: ["{PY}", "-c", "print('pong')"]
    budget: {{runs_per_day: {runs}}}
"""


def _db(d: DaemonProc, sql: str) -> Any:
    with sqlite3.connect(d.home / "agentcron.db") as db:
        return db.execute(sql).fetchall()


def _budget_messages(hook: WebhookReceiver) -> list[str]:
    return [
        str(m.get("message", ""))
        for m in hook.messages()
        if "Daily budget used up" in str(m.get("message", ""))
    ]


def test_a_real_daemon_skips_over_budget_tells_once_and_shows_usage(tmp_path: Path) -> None:
    with WebhookReceiver() as hook:
        d = DaemonProc(tmp_path, _config(hook.url, 3), extra_env={"COLUMNS": "200"})
        d.start()
        try:
            wait_for(lambda: _budget_messages(hook), timeout=60, what="the budget message")
            wait_for(
                lambda: _db(d, "SELECT COUNT(*) FROM slots WHERE status = 'skipped'")[0][0] >= 4,
                timeout=60,
                what="several skipped slots",
            )
            time.sleep(2)  # more skips: nothing more is told
            messages = _budget_messages(hook)
            assert len(messages) == 1, messages
            assert messages[0].startswith(
                "⏸ Daily budget used up: task ping spent 3/3 runs today (runs used up)"
            ), messages
            statuses = [
                s for (s,) in _db(d, "SELECT status FROM slots WHERE task = 'ping' ORDER BY id")
            ]
            assert statuses[:3] == ["succeeded"] * 3, statuses
            assert set(statuses[3:]) <= {"skipped", "running", "pending"}, statuses
            reasons = _db(d, "SELECT reason, attempts FROM slots WHERE status = 'skipped'")
            assert all(
                r.startswith("over budget: task ping used 3/3 runs today") and n == 0
                for r, n in reasons
            ), reasons
            assert _db(d, "SELECT scope, runs FROM budget_usage ORDER BY scope") == [
                ("global", 3),
                ("task:ping", 3),
            ]
            [row] = d.json("list")
            assert row["health"] == "over_budget", row
            assert row["health_detail"].startswith("over budget: task ping used 3/3 runs")
            assert [(b["scope"], b["runs"], b["used_up"]) for b in row["budget"]] == [
                ("task:ping", 3, "runs"),
                ("global", 3, None),
            ]
            table = d.cli("list").stdout
            assert "over budget" in table and "3/3 runs" in table, table
            assert "all tasks together: 3/1,000 runs" in table, table
            shown = d.cli("show", "ping").stdout
            assert "task ping: 3/3 runs" in shown and "resets" in shown, shown
            runs = d.json("runs", "ping", "--limit", "50")
            assert any(
                r["status"] == "skipped" and r["reason"].startswith("over budget:") for r in runs
            )
            # the owner raises the budget: the task runs again (a reload, no restart)
            d.config.write_text(_config(hook.url, 6))
            wait_for(
                lambda: (
                    _db(d, "SELECT runs FROM budget_usage WHERE scope = 'task:ping'")[0][0] >= 6
                ),
                timeout=60,
                what="three more runs after the reload",
            )
        finally:
            d.stop()
    assert "Traceback" not in d.daemon_log()
