"""The hot statements of an idle tick must read their partial indexes, never walk the
history: a daemon's cost must not grow with the slots it has recorded (issue: an
empty claim took 108 ms over 1,000,000 slots while it walked the unique index)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agentcron.store._spec_sql import SMALLEST_OVERDUE, UNSHOWN_UNPAUSED
from agentcron.store.sqlite import SQLiteStore

PARTIAL = ("slots_running", "slots_runnable", "tasks_due", "tasks_overdue_after", "tasks_unshown")


def _plan(db: sqlite3.Connection, sql: str, params: tuple[object, ...] = ()) -> str:
    rows = db.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return " | ".join(str(r[-1]) for r in rows)


def _walks_history(plan: str) -> bool:
    """A step that reads a table whole, or one of its full indexes whole: a cost that
    grows with history. A scan of a partial index reads only the live rows."""
    for step in plan.split(" | "):
        words = step.split()
        table_scan = len(words) >= 2 and words[0] == "SCAN" and words[1] in ("slots", "tasks")
        if table_scan and not any(f"INDEX {name}" in step for name in PARTIAL):
            return True
    return False


@pytest.mark.parametrize(
    ("sql", "params", "index"),
    [
        ("SELECT task FROM slots WHERE status = 'running'", (), "slots_running"),
        (
            "SELECT id, lease_expires_at, lease_owner FROM slots WHERE status = 'running'",
            (),
            "slots_running",
        ),
        (
            "SELECT MIN(next_attempt_at) FROM slots WHERE status IN ('pending', 'retrying') "
            "AND next_attempt_at > ?",
            (0.0,),
            "slots_runnable",
        ),
        (
            "UPDATE slots SET status = 'cancelled' WHERE id IN (SELECT s.id FROM slots s "
            "JOIN tasks t ON t.name = s.task WHERE s.status IN ('pending', 'retrying') "
            "AND t.paused = 1)",
            (),
            "slots_runnable",
        ),
        (
            "SELECT name FROM tasks WHERE paused = 0 AND next_fire_at <= ? "
            "ORDER BY next_fire_at LIMIT 10",
            (0.0,),
            "tasks_due",
        ),
        # the watchdog's smallest overdue_after: the copies' index, then the few tasks
        # without copies through theirs (not every unpaused task's spec)
        (SMALLEST_OVERDUE, (), "tasks_overdue_after"),
        (
            "SELECT MIN(name), json_array(spec -> '$.overdue_after') FROM tasks "
            f"{UNSHOWN_UNPAUSED} GROUP BY json_array(spec -> '$.overdue_after')",
            (),
            "tasks_unshown",
        ),
    ],
)
def test_hot_statements_use_their_partial_indexes(
    tmp_path: Path, sql: str, params: tuple[object, ...], index: str
) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    try:
        db = sqlite3.connect(tmp_path / "a.db")
        # statistics of a long history: the planner must still choose the partial index
        db.execute("ANALYZE")
        plan = _plan(db, sql, params)
        db.close()
    finally:
        store.close()
    assert index in plan, plan
    assert not _walks_history(plan), plan


def test_the_claim_reads_runnable_slots_through_their_index(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    statements: list[str] = []
    try:
        store._db.set_trace_callback(statements.append)
        from datetime import UTC, datetime, timedelta

        now = datetime(2026, 1, 1, tzinfo=UTC)
        assert store.claim("n1", now, now + timedelta(minutes=1), 10) == []
        store._db.set_trace_callback(None)
        db = sqlite3.connect(tmp_path / "a.db")
        for text in statements:
            if text.lstrip().upper().startswith("SELECT"):
                plan = _plan(db, text)
                assert not _walks_history(plan), (text, plan)
        db.close()
    finally:
        store.close()
    assert any("FROM slots" in t for t in statements)  # the claim did read slots


def test_the_old_running_tasks_statement_is_caught(tmp_path: Path) -> None:
    """The check can fail: DISTINCT made SQLite walk the unique index."""
    store = SQLiteStore(tmp_path / "a.db")
    store.close()
    db = sqlite3.connect(tmp_path / "a.db")
    plan = _plan(db, "SELECT DISTINCT task FROM slots WHERE status = 'running'")
    db.close()
    assert _walks_history(plan), plan


def test_the_watchdog_and_notifier_reads_use_indexes(tmp_path: Path) -> None:
    """running_slots (the watchdog, every few seconds), waiting_slots (the starvation
    check), slot_before and count_slots (skip streaks): none walks the history. An
    ORDER BY on running_slots once made SQLite scan every slot ever recorded."""
    from datetime import UTC, datetime

    from agentcron.model import SlotStatus

    store = SQLiteStore(tmp_path / "a.db")
    statements: list[str] = []
    now = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        store._db.set_trace_callback(statements.append)
        store.running_slots()
        store.waiting_slots(now, 20)
        store.slot_before("t", now)
        store.count_slots("t", [SlotStatus.SKIPPED], now)
        store._db.set_trace_callback(None)
        db = sqlite3.connect(tmp_path / "a.db")
        db.execute("ANALYZE")
        selects = [t for t in statements if t.lstrip().upper().startswith("SELECT")]
        for text in selects:
            plan = _plan(db, text)
            assert not _walks_history(plan), (text, plan)
        db.close()
    finally:
        store.close()
    assert len(selects) >= 4, statements
