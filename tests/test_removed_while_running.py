"""A task removed while one of its runs is going (found by an outside-in probe).

Before: an attempt that failed transiently left its slot ``retrying`` for good (claims
read the task's row, which is gone), shown so by ``history`` with a retry time that
never came, and the owner was told of a retry and advised to "trigger the task again",
which is impossible. Now the slot ends failed in the transaction that records the
attempt, its reason says why, and nothing is told of a task that no longer exists."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.model import Finished, NewSlot, Slot, SlotStatus
from agentcron.model.failure import PAUSED_WHILE_RUNNING, REMOVED_WHILE_RUNNING
from agentcron.notify.notifier import Notifier
from agentcron.notify.sender import OutboxSender
from agentcron.store.base import Store
from harness import Harness, until
from notify_rig import HOOK, RecordingChannel


def _remove_mid_run(
    store: Store,
    clock: FakeClock,
    home: Path,
    error: type[Exception],
    change: str = "remove",
    **spec: Any,
) -> tuple[Harness, Slot, list[str]]:
    """One run of ``gone`` that raises ``error`` after its task was removed (or, with
    ``change="pause"``, paused); the ticks of the next ten minutes: the harness, the
    run's slot as recorded (its only one), and the first lines of every message sent."""

    async def scenario() -> tuple[Harness, list[str]]:
        h = Harness(store, clock, home)
        notifier = Notifier(store, clock, [HOOK], "UTC")
        notifier.attach(h.engine)
        channel = RecordingChannel()
        sender = OutboxSender(store, channel_factory=lambda _url: channel, clock=clock)
        release = asyncio.Event()
        calls: list[int] = []

        async def work() -> str:
            calls.append(1)
            await release.wait()
            raise error("the service answered HTTP 503")

        h.add("gone", work, every="1m", timezone="UTC", **spec)
        h.add("kept", work, every="1h", timezone="UTC")  # a neighbour that stays
        clock.advance(timedelta(minutes=1))
        await h.tick(settle=False)
        await until(lambda: calls == [1])
        if change == "pause":
            h.service.pause("gone")
        else:
            store.remove_task("gone", clock.now())
        release.set()
        await h.engine.wait_idle()
        await h.run_until(clock.now() + timedelta(minutes=10), timedelta(seconds=30))
        assert calls == [1], "a removed task's run was retried"
        await sender.drain_once()
        return h, [m.body.splitlines()[0] for m in channel.sent]

    h, lines = asyncio.run(scenario())
    (slot,) = store.slots("gone", limit=10)
    return h, slot, lines


def test_a_transient_failure_after_removal_ends_the_slot_instead_of_a_retry_never_taken(
    store: Store, clock: FakeClock, home: Path
) -> None:
    h, slot, lines = _remove_mid_run(store, clock, home, ConnectionError, retries=3)
    assert slot.status is SlotStatus.FAILED
    assert slot.next_attempt_at is None and slot.finished_at is not None
    assert slot.reason == REMOVED_WHILE_RUNNING
    assert "503" in (slot.error or "")  # what the attempt met is kept
    ended: list[Finished] = [f for f in h.finished if f.spec.name == "gone"]
    assert [f.outcome.slot_status for f in ended] == [SlotStatus.FAILED]
    assert ended[0].outcome.next_attempt_at is None
    assert not [line for line in lines if "gone" in line], lines
    assert not [i for i in store.incidents("gone") if i.is_open]


def test_a_permanent_failure_after_removal_is_recorded_and_not_told(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """No "fix the error, then trigger the task again" about a task that is gone."""
    _, slot, lines = _remove_mid_run(store, clock, home, ValueError, retries=0)
    assert slot.status is SlotStatus.FAILED
    assert slot.reason is None  # failed on its own account; no retry was due
    assert not [line for line in lines if "gone" in line], lines


def test_a_lapsed_run_of_a_removed_task_ends_instead_of_staying_running(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """Its worker died (a daemon killed mid-run) and its task was removed before the
    lease lapsed: the slot was skipped by every recovery and stayed ``running`` for
    good, read again on every look."""
    h = Harness(store, clock, home)
    h.add("gone", lambda: "out", every="1d", timezone="UTC")
    now = clock.now()
    assert store.add_slot("gone", NewSlot(now, trigger="manual"), now) is not None
    (claim,) = store.claim("a-dead-node", now, now + timedelta(seconds=30), 1)
    store.remove_task("gone", clock.now())
    clock.advance(timedelta(minutes=5))  # the dead node's lease has lapsed

    async def recover() -> None:
        h.engine._last_recover = None  # the recovery runs on this tick
        await h.engine.tick()

    asyncio.run(recover())
    ended = store.get_slot(claim.slot.id)
    assert ended is not None and ended.status is SlotStatus.FAILED, ended
    assert REMOVED_WHILE_RUNNING in (ended.error or "")
    assert ended.lease_owner is None and ended.finished_at is not None
    assert [s.id for s in store.running_slots()] == []
    assert not [f for f in h.finished if f.slot.id == claim.slot.id]  # nothing told


@pytest.mark.parametrize(
    ("exit_code", "status"), [(0, SlotStatus.SUCCEEDED), (3, SlotStatus.FAILED)]
)
def test_a_lapsed_run_of_a_removed_task_ends_as_its_launcher_recorded(
    store: Store, clock: FakeClock, home: Path, exit_code: int, status: SlotStatus
) -> None:
    """Its daemon died, the command finished meanwhile and its launcher wrote how: a
    success was recorded failed ("the worker stopped responding") because the task
    was removed before the lease lapsed."""
    import json

    from agentcron.orphans import marker_path

    h = Harness(store, clock, home)
    h.add("gone", lambda: "out", every="1d", timezone="UTC")
    now = clock.now()
    assert store.add_slot("gone", NewSlot(now, trigger="manual"), now) is not None
    (claim,) = store.claim("a-dead-node", now, now + timedelta(seconds=30), 1)
    output = home / "out.log"
    output.write_text("done\n")
    marker = marker_path(home, claim.slot.id, 1)
    marker.parent.mkdir(parents=True, exist_ok=True)
    ended_at = now + timedelta(seconds=10)
    marker.write_text(
        json.dumps(
            {
                "slot": claim.slot.id,
                "attempt": 1,
                "pgid": 999_999_999,  # long gone
                "output": str(output),
                "started_at": now.timestamp(),
                "ended_at": ended_at.timestamp(),
                "exit_code": exit_code,
            }
        )
    )
    store.remove_task("gone", clock.now())
    clock.advance(timedelta(minutes=5))  # the dead node's lease has lapsed

    async def recover() -> None:
        h.engine._last_recover = None
        await h.engine.tick()

    asyncio.run(recover())
    ended = store.get_slot(claim.slot.id)
    assert ended is not None and ended.status is status, ended
    assert ended.finished_at == ended_at and ended.output_path == str(output)
    if status is SlotStatus.FAILED:
        assert ended.error == f"exited 3 while its daemon was down; {REMOVED_WHILE_RUNNING}"
    assert not marker.exists()  # its end is recorded: the marker is done with
    assert not [f for f in h.finished if f.slot.id == claim.slot.id]  # nothing told


def test_opening_a_database_ends_the_retries_such_runs_left_waiting(home: Path) -> None:
    """Migration 14: a database written before the fix may hold such slots; they end
    as they would now, once, and nothing else changes."""
    from agentcron.store.sqlite import SQLiteStore

    path = home / "agentcron.db"
    store = SQLiteStore(path)
    clock = FakeClock(datetime(2026, 6, 1, tzinfo=UTC))
    h = Harness(store, clock, home)
    for name in ("gone", "kept"):
        h.add(name, lambda: "out", every="1d", timezone="UTC")
        at = clock.now()
        store.add_slot(name, NewSlot(at, trigger="manual"), at)
    with store._tx() as db:  # as the code before left them: retrying, task gone
        db.execute("UPDATE slots SET status = 'retrying', next_attempt_at = 1.9e9")
        db.execute("DELETE FROM tasks WHERE name = 'gone'")
        db.execute("ALTER TABLE slots DROP COLUMN stop_asked")  # as version 13 had it
        db.execute("DROP TABLE task_outputs")
        db.execute("ALTER TABLE incidents DROP COLUMN told")
        db.execute("DROP INDEX incidents_removed")
        db.execute("ALTER TABLE incidents DROP COLUMN closed_by")
        db.execute("DROP INDEX audit_at")
        db.execute("DROP INDEX incidents_task")
    store.set_meta("schema_version", "13")
    store.close()
    again = SQLiteStore(path)
    try:
        (gone,) = again.slots("gone", limit=10)
        (kept,) = again.slots("kept", limit=10)
        assert gone.status is SlotStatus.FAILED and gone.next_attempt_at is None
        assert gone.reason == REMOVED_WHILE_RUNNING
        assert kept.status is SlotStatus.RETRYING  # its task is there: its retry comes
    finally:
        again.close()


def test_a_transient_failure_after_a_pause_says_it_is_not_retried(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """Before: "Retrying at …", then the pause cancelled that retry without a word, and
    after `resume` the list said `retrying` while nothing was (outside-in probe)."""
    h, slot, lines = _remove_mid_run(store, clock, home, ConnectionError, change="pause", retries=3)
    assert slot.status is SlotStatus.FAILED and slot.next_attempt_at is None
    assert slot.reason == PAUSED_WHILE_RUNNING
    told = [line for line in lines if "gone" in line]
    assert told == [
        "⚠ gone failed: the connection to a service the function calls failed: "
        "ConnectionError: the service answered HTTP 503. Not retried: the task is paused."
    ], told
    h.service.resume("gone")
    (row,) = [r for r in h.service.list_tasks() if r["name"] == "gone"]
    assert row["health"] == "failing", row  # not `retrying`: no retry waits
    assert "network" in (row["health_detail"] or ""), row


@pytest.mark.postgres
@pytest.mark.parametrize("change", ["pause", "remove"])
def test_pg_a_pause_or_removal_during_the_ends_record_leaves_no_retry_waiting(
    change: str,
) -> None:
    """PostgreSQL, Read Committed: a pause or a removal committed by another connection
    while a run's end is being recorded was missed both ways (the end saw the task as it
    was; the pause's cancel of waiting slots saw this one running), and the slot was left
    retrying for good (found by review). The end's transaction now share-locks the task
    first: the pause waits for its commit and then finds the retry to cancel."""
    import threading

    from agentcron.model import AttemptOutcome, ErrorClass, Finish, TaskSource, TaskSpec
    from agentcron.store.postgres import PostgresStore
    from agentcron.store.sql import SQLStore
    from conftest import PG_DSN, require_pg
    from pg_util import fresh_schema

    require_pg()
    now = datetime(2026, 6, 1, tzinfo=UTC)
    with fresh_schema() as schema:
        node = PostgresStore(PG_DSN, schema=schema)
        cli = PostgresStore(PG_DSN, schema=schema)
        try:
            spec = TaskSpec(name="t", command=["true"], every="1h", retries=3)
            node.upsert_task(spec, TaskSource.API, now, now + timedelta(hours=1))
            node.add_slot("t", NewSlot(now, trigger="manual"), now)
            (claim,) = node.claim("node-a", now, now + timedelta(minutes=5), 1)
            other: list[threading.Thread] = []
            real = SQLStore._end_retries_not_taken

            def between(db: Any, items: Any, slots: Any) -> None:
                real(db, items, slots)  # the task is neither paused nor removed yet

                def change_it() -> None:
                    if change == "pause":
                        cli.set_paused("t", True, now, None)
                    else:
                        cli.remove_task("t", now)

                other.append(threading.Thread(target=change_it))
                other[0].start()
                other[0].join(0.5)  # it commits now, or waits for this transaction

            outcome = AttemptOutcome(
                ok=False,
                slot_status=SlotStatus.RETRYING,
                error_class=ErrorClass.NETWORK,
                error="503",
                next_attempt_at=now + timedelta(minutes=1),
            )
            SQLStore._end_retries_not_taken = staticmethod(between)  # type: ignore[method-assign]
            try:
                node.finish_many([Finish(claim.slot.id, claim.attempt.id, "node-a", outcome, now)])
            finally:
                SQLStore._end_retries_not_taken = staticmethod(real)  # type: ignore[method-assign]
            other[0].join(10)
            slot = node.get_slot(claim.slot.id)
            assert slot is not None and slot.status is not SlotStatus.RETRYING, slot
            assert slot.status.is_final and slot.next_attempt_at is None
        finally:
            node.close()
            cli.close()
