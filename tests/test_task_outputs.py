"""Whether a task has produced output before (what the empty-output canary watches by
default) is one row per task, written with the run's end: asked after a restart, it
must not walk the task's history (25 ms for 10,000 runs, on the loop, per task), and
it must not be forgotten when retention deletes the run that printed."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agentcron.clock import FakeClock
from agentcron.store.base import Store
from agentcron.store.migrations import SCHEMA_VERSION
from agentcron.store.sqlite import SQLiteStore
from harness import Harness


def _run_printer_and_silent(store: Store, clock: FakeClock, home: Path) -> None:
    outputs = ["a story", "", ""]
    h = Harness(store, clock, home)
    h.add("printer", lambda: outputs.pop(0), every="1h", timezone="UTC")
    h.add("silent", lambda: None, every="1h", timezone="UTC")
    asyncio.run(h.run_until(clock.now() + timedelta(hours=3), timedelta(hours=1)))


def _forget_history(store: Store, task: str) -> None:
    """Delete a task's runs as retention does (its attempts first)."""
    with store._tx() as db:  # type: ignore[attr-defined]
        db.execute(
            "DELETE FROM attempts WHERE slot_id IN (SELECT id FROM slots WHERE task = ?)", (task,)
        )
        db.execute("DELETE FROM slots WHERE task = ?", (task,))


def test_a_success_with_output_is_remembered_past_its_history(
    store: Store, clock: FakeClock, home: Path
) -> None:
    _run_printer_and_silent(store, clock, home)
    assert store.had_output("printer") and not store.had_output("silent")
    assert store.tasks_with_output(["printer", "silent", "nobody"]) == {"printer"}
    _forget_history(store, "printer")
    assert store.had_output("printer")  # the run that printed is gone, the fact is not
    assert store.tasks_with_output(["printer", "silent"]) == {"printer"}


def test_the_question_reads_no_history(
    sqlite_store: SQLiteStore, clock: FakeClock, home: Path
) -> None:
    _run_printer_and_silent(sqlite_store, clock, home)
    said: list[str] = []
    sqlite_store._db.set_trace_callback(said.append)
    try:
        sqlite_store.had_output("silent")
        sqlite_store.tasks_with_output(["printer", "silent"])
    finally:
        sqlite_store._db.set_trace_callback(None)
    assert len(said) == 2, said
    for statement in said:
        assert "task_outputs" in statement and "slots" not in statement, statement
        assert "attempts" not in statement, statement


def test_opening_an_older_database_fills_the_record_from_its_history(home: Path) -> None:
    """Migration 16: the tasks whose kept history has a success with output, once."""
    path = home / "agentcron.db"
    store = SQLiteStore(path)
    clock = FakeClock(datetime(2026, 6, 1, tzinfo=UTC))
    _run_printer_and_silent(store, clock, home)
    with store._tx() as db:  # as version 15 had it
        db.execute("DROP TABLE task_outputs")
        db.execute("ALTER TABLE incidents DROP COLUMN told")  # as migration 17 adds it
        db.execute("DROP INDEX incidents_removed")  # and 18
        db.execute("ALTER TABLE incidents DROP COLUMN closed_by")
        db.execute("DROP INDEX audit_at")  # and 19
        db.execute("DROP INDEX incidents_task")  # and 20
    store.set_meta("schema_version", "15")
    store.close()
    again = SQLiteStore(path)
    try:
        assert again.tasks_with_output(["printer", "silent"]) == {"printer"}
        version = again.get_meta("schema_version")
    finally:
        again.close()
    assert version == str(SCHEMA_VERSION)
    rows = sqlite3.connect(path).execute("SELECT task FROM task_outputs").fetchall()
    assert rows == [("printer",)]  # filled once, nothing twice


def test_an_end_recorded_after_the_daemon_died_counts_too(store: Store) -> None:
    """A run its launcher saw through while the daemon was down is recorded by the next
    daemon (record_unwatched_end), not by a finish: its output is remembered all the
    same, and an empty one is not."""
    from agentcron.model import AttemptOutcome, NewSlot, SlotStatus, TaskSource, TaskSpec

    at = datetime(2026, 6, 1, tzinfo=UTC)
    empty_of = {"printer": False, "silent": True}
    for name in empty_of:
        spec = TaskSpec(name=name, every="1h", command=["true"])
        store.upsert_task(spec, TaskSource.API, at, at + timedelta(hours=1))  # at recorded
        store.add_slot(name, NewSlot(at), at)
    for claim in store.claim("dead-node", at, at + timedelta(minutes=1), 2):
        lapsed = store.get_slot(claim.slot.id)
        assert lapsed is not None
        empty = empty_of[claim.slot.task]
        ended = AttemptOutcome(ok=True, slot_status=SlotStatus.SUCCEEDED, empty_output=empty)
        assert store.record_unwatched_end(lapsed, ended, at + timedelta(minutes=5))
    assert store.tasks_with_output(["printer", "silent"]) == {"printer"}
