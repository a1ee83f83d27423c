"""The Store contract, one test body per rule, run against SQLite and PostgreSQL.

The PostgreSQL runs skip (with the reason) where no server answers and fail where
``AGENTCRON_REQUIRE_PG=1`` says one must. Each gets a schema of its own, dropped after.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.model import (
    AttemptOutcome,
    DeliveryStatus,
    ErrorClass,
    Fires,
    Incident,
    IncidentKind,
    Message,
    NewSlot,
    NextTimes,
    NodeInfo,
    SlotStatus,
    StartRoom,
    TaskSource,
    TaskSpec,
)
from agentcron.model.failure import PAUSED_WHILE_RUNNING
from agentcron.notify import MemoryOutbox, OutboxStore
from agentcron.store import StoreError
from agentcron.store.sql import SQLStore
from agentcron.store.sqlite import SQLiteStore
from conftest import PG_DSN, require_pg

T0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
DAY = timedelta(days=1)
OK = AttemptOutcome(ok=True, slot_status=SlotStatus.SUCCEEDED)


class Backend:
    """Opens store objects on one database, as separate nodes or processes would."""

    name: str

    def open(self) -> SQLStore:
        raise NotImplementedError

    def raw(self, statements: Sequence[str]) -> None:
        """Run SQL on the database without a store (to plant foreign or broken state)."""
        raise NotImplementedError

    def cleanup(self) -> None:
        pass


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.path = folder / "agentcron.db"

    def open(self) -> SQLStore:
        return SQLiteStore(self.path)

    def raw(self, statements: Sequence[str]) -> None:
        db = sqlite3.connect(self.path)
        try:
            for stmt in statements:
                db.execute(stmt)
            db.commit()
        finally:
            db.close()


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self) -> None:
        from pg_util import new_schema_name

        self.schema = new_schema_name()

    def open(self) -> SQLStore:
        from agentcron.store.postgres import PostgresStore

        return PostgresStore(PG_DSN, schema=self.schema)

    def raw(self, statements: Sequence[str]) -> None:
        from pg_util import admin_execute

        admin_execute(statements, schema=self.schema)

    def cleanup(self) -> None:
        from pg_util import drop_schema

        drop_schema(self.schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgres":
        require_pg()
        b: Backend = PostgresBackend()
    else:
        b = SQLiteBackend(tmp_path)
    try:
        yield b
    finally:
        b.cleanup()


@pytest.fixture
def store(backend: Backend) -> Iterator[SQLStore]:
    s = backend.open()
    yield s
    s.close()


def spec(name: str, **kw: Any) -> TaskSpec:
    kw.setdefault("every", "60s")
    kw.setdefault("command", ["true"])
    return TaskSpec(name=name, **kw)


def add(store: SQLStore, name: str, nfa: datetime | None = T0 + DAY, **kw: Any) -> TaskSpec:
    s = spec(name, **kw)
    store.upsert_task(s, TaskSource.API, T0, nfa)
    return s


def slot_at(
    store: SQLStore,
    task: str,
    at: datetime,
    status: SlotStatus = SlotStatus.PENDING,
    reason: str | None = None,
) -> int:
    made = store.add_slot(task, NewSlot(at, status, reason), T0)
    assert made is not None
    return made.id


def claim_one(store: SQLStore, owner: str = "n1", now: datetime = T0) -> Any:
    claims = store.claim(owner, now, now + MIN, 1)
    assert len(claims) == 1, claims
    return claims[0]


def retry_at(at: datetime) -> AttemptOutcome:
    return AttemptOutcome(
        ok=False,
        slot_status=SlotStatus.RETRYING,
        error_class=ErrorClass.RATE_LIMITED,
        error="429",
        next_attempt_at=at,
    )


# ---- tasks ---------------------------------------------------------------------------------
def test_upsert_keeps_next_fire_at_unless_the_schedule_changes(store: SQLStore) -> None:
    rec = store.upsert_task(spec("a"), TaskSource.API, T0, T0 + MIN)
    assert (rec.name, rec.source, rec.paused, rec.next_fire_at) == (
        "a",
        TaskSource.API,
        False,
        T0 + MIN,
    )
    again = store.upsert_task(spec("a"), TaskSource.API, T0 + MIN, T0 + 5 * MIN)
    assert again.next_fire_at == T0 + MIN and again.updated_at == T0  # nothing changed at all
    other = store.upsert_task(spec("a", retries=7), TaskSource.API, T0 + MIN, T0 + 5 * MIN)
    assert other.next_fire_at == T0 + MIN and other.spec.retries == 7
    assert other.updated_at == T0 + MIN
    moved = store.upsert_task(spec("a", every="120s"), TaskSource.API, T0, T0 + 9 * MIN)
    assert moved.next_fire_at == T0 + 9 * MIN
    assert moved.spec.every == timedelta(seconds=120)
    assert store.get_task("missing") is None


def test_upsert_many_and_list_tasks_by_name(store: SQLStore) -> None:
    store.upsert_many(
        [(spec("b"), T0), (spec("a"), None), (spec("c", overlap="allow"), T0)], TaskSource.CODE, T0
    )
    tasks = store.list_tasks()
    assert [t.name for t in tasks] == ["a", "b", "c"]
    assert {t.source for t in tasks} == {TaskSource.CODE}
    assert tasks[0].next_fire_at is None and tasks[2].spec.overlap.value == "allow"


def test_sync_file_tasks_adds_changes_removes_and_leaves_api_tasks(store: SQLStore) -> None:
    add(store, "api1")
    nxt = {"a": T0, "b": T0, "c": T0 + MIN}
    assert store.sync_file_tasks([spec("a"), spec("b")], T0, nxt) == (["a", "b"], [], [])
    waiting = slot_at(store, "b", T0)
    assert store.sync_file_tasks([spec("a"), spec("b")], T0, nxt) == ([], [], [])
    added, changed, removed = store.sync_file_tasks([spec("a", retries=1), spec("c")], T0, nxt)
    assert (added, changed, removed) == (["c"], ["a"], ["b"])
    assert [t.name for t in store.list_tasks()] == ["a", "api1", "c"]
    api1 = store.get_task("api1")
    assert api1 is not None and api1.source is TaskSource.API
    gone = store.get_slot(waiting)
    assert gone is not None and gone.status is SlotStatus.CANCELLED
    # A file task taking over an API task's name replaces it.
    _, changed, removed = store.sync_file_tasks(
        [spec("a", retries=1), spec("c"), spec("api1")], T0, nxt
    )
    assert (changed, removed) == (["api1"], [])
    api1 = store.get_task("api1")
    assert api1 is not None and api1.source is TaskSource.FILE


def test_remove_cancels_waiting_slots_and_keeps_history(store: SQLStore) -> None:
    add(store, "t", overlap="allow")
    slot_at(store, "t", T0)
    done = claim_one(store)
    assert store.finish_attempt(done.slot.id, done.attempt.id, "n1", OK, T0)
    retrying = slot_at(store, "t", T0 + MIN)
    c = claim_one(store)
    assert store.finish_attempt(c.slot.id, c.attempt.id, "n1", retry_at(T0 + 2 * MIN), T0)
    pending = slot_at(store, "t", T0 + 2 * MIN)
    assert store.remove_task("t", T0 + 3 * MIN)
    assert store.get_task("t") is None
    by_id = {s.id: s for s in store.slots("t")}
    assert by_id[done.slot.id].status is SlotStatus.SUCCEEDED
    for sid in (retrying, pending):
        assert by_id[sid].status is SlotStatus.CANCELLED
        assert by_id[sid].reason == "task removed"
        assert by_id[sid].finished_at == T0 + 3 * MIN and by_id[sid].next_attempt_at is None
    assert not store.remove_task("t", T0)


def test_set_paused_cancels_waiting_slots_and_hides_the_task_from_due(store: SQLStore) -> None:
    add(store, "t")
    waiting = slot_at(store, "t", T0)
    assert store.set_paused("t", True, T0, None)
    rec = store.get_task("t")
    # the state changes; the stored spec stays as the file or the API gave it
    assert rec is not None and rec.paused and not rec.spec.paused and rec.next_fire_at is None
    slot = store.get_slot(waiting)
    assert slot is not None and (slot.status, slot.reason) == (SlotStatus.CANCELLED, "task paused")
    assert store.due_tasks(T0 + 60 * MIN, 10) == []
    assert store.set_paused("t", False, T0, T0 + MIN)
    rec = store.get_task("t")
    assert rec is not None and not rec.paused and rec.next_fire_at == T0 + MIN
    assert [t.name for t in store.due_tasks(T0 + MIN, 10)] == ["t"]
    assert not store.set_paused("nope", True, T0, None)


def test_due_tasks_earliest_first_with_limit(store: SQLStore) -> None:
    add(store, "late", T0 + 2 * MIN)
    add(store, "early", T0)
    add(store, "mid", T0 + MIN)
    add(store, "future", T0 + 10 * MIN)
    add(store, "never", None)
    add(store, "paused", T0 - MIN, paused=True)
    assert [t.name for t in store.due_tasks(T0 + 2 * MIN, 10)] == ["early", "mid", "late"]
    assert [t.name for t in store.due_tasks(T0 + 2 * MIN, 2)] == ["early", "mid"]
    assert store.due_tasks(T0 - timedelta(seconds=1), 10) == []
    # the heads: the same tasks in the same order, with the fields that tell a change
    for limit in (10, 2):
        full = store.due_tasks(T0 + 2 * MIN, limit)
        assert store.due_heads(T0 + 2 * MIN, limit) == [
            (t.name, t.next_fire_at, t.updated_at) for t in full
        ]
    assert store.due_heads(T0 - timedelta(seconds=1), 10) == []


def test_next_times_are_the_earliest_fire_and_retry(store: SQLStore) -> None:
    assert store.next_times() == NextTimes(None, None)
    assert store.next_times().wakeup is None
    add(store, "t", T0 + 10 * MIN, overlap="allow")
    add(store, "p", T0, paused=True)
    assert store.next_times() == NextTimes(T0 + 10 * MIN, None)
    slot_at(store, "t", T0)
    c = claim_one(store)
    store.finish_attempt(c.slot.id, c.attempt.id, "n1", retry_at(T0 + 3 * MIN), T0)
    assert store.next_times() == NextTimes(T0 + 10 * MIN, T0 + 3 * MIN)
    assert store.next_times().wakeup == T0 + 3 * MIN


def test_next_times_after_leaves_out_slots_waiting_for_room(store: SQLStore) -> None:
    """A slot whose time has come but that the claim could not start waits for room,
    not for time: the loop must not be told to wake for it at once, again and again."""
    add(store, "t", T0 + 10 * MIN)
    slot_at(store, "t", T0)  # pending, due at T0, not started (no room)
    assert store.next_times().wakeup == T0
    assert store.next_times(after=T0 + MIN).wakeup == T0 + 10 * MIN
    add(store, "u", None)
    slot_at(store, "u", T0 - MIN)
    c = store.claim("n1", T0, T0 + MIN, 5)
    assert {x.slot.task for x in c} == {"t", "u"}
    for x in c:
        if x.slot.task == "t":  # back to waiting, as when a run is interrupted
            store.finish_attempt(x.slot.id, x.attempt.id, "n1", retry_at(T0), T0)
        else:
            store.finish_attempt(x.slot.id, x.attempt.id, "n1", retry_at(T0 + 5 * MIN), T0)
    assert store.next_times(after=T0 + MIN).wakeup == T0 + 5 * MIN
    assert store.next_times().wakeup == T0


# ---- slots ---------------------------------------------------------------------------------
def test_materialize_is_a_compare_and_set_and_inserts_each_slot_once(store: SQLStore) -> None:
    add(store, "t", T0)
    made = store.materialize(
        "t",
        T0,
        T0 + 2 * MIN,
        [NewSlot(T0), NewSlot(T0 + MIN, SlotStatus.SKIPPED, "previous run still running")],
        T0,
    )
    assert made is not None
    assert [(s.scheduled_for, s.status) for s in made] == [
        (T0, SlotStatus.PENDING),
        (T0 + MIN, SlotStatus.SKIPPED),
    ]
    assert made[0].finished_at is None and made[1].finished_at == T0
    assert made[1].reason == "previous run still running"
    # Another node with the stale expectation loses and writes nothing.
    assert store.materialize("t", T0, T0 + 5 * MIN, [NewSlot(T0 + 3 * MIN)], T0) is None
    rec = store.get_task("t")
    assert rec is not None and rec.next_fire_at == T0 + 2 * MIN
    assert len(store.slots("t")) == 2
    # An existing slot is not inserted again; the task still advances.
    again = store.materialize("t", T0 + 2 * MIN, None, [NewSlot(T0), NewSlot(T0 + 2 * MIN)], T0)
    assert again is not None and [s.scheduled_for for s in again] == [T0 + 2 * MIN]
    # None is a value like any other for the compare-and-set (a finished one-shot).
    assert store.materialize("t", None, T0 + 9 * MIN, [], T0) == []
    assert store.materialize("nope", T0, T0, [NewSlot(T0)], T0) is None


def test_materialize_and_start_starts_fresh_slots_as_a_claim_would(store: SQLStore) -> None:
    solo = add(store, "solo", T0, overlap="queue")
    many = add(store, "many", T0, overlap="allow")
    busy = add(store, "busy", T0)
    late = add(store, "late", T0)
    extra = add(store, "extra", T0, overlap="allow")
    # a manual run: a waiting fire would be left to the fire due at T0 (see below)
    made = store.add_slot("busy", NewSlot(T0 - MIN, SlotStatus.PENDING, None, "manual"), T0)
    assert made is not None
    held = made.id
    (running,) = store.claim("n2", T0, T0 + MIN, 1)  # another node runs "busy"
    assert running.slot.id == held
    room = StartRoom(owner="n1", lease_until=T0 + 2 * MIN, room=4)
    results, claims = store.materialize_and_start(
        [
            Fires(
                solo,
                T0,
                T0 + 9 * MIN,
                [NewSlot(T0 - MIN, SlotStatus.MISSED, "down"), NewSlot(T0), NewSlot(T0 + MIN)],
            ),
            Fires(many, T0, T0 + 9 * MIN, [NewSlot(T0), NewSlot(T0 + MIN)]),
            Fires(busy, T0, T0 + 9 * MIN, [NewSlot(T0)]),
            Fires(late, T0, T0 + 9 * MIN, [NewSlot(T0), NewSlot(T0 + 5 * MIN)]),
            Fires(extra, T0, T0 + 9 * MIN, [NewSlot(T0)]),
        ],
        T0 + MIN,
        room,
    )
    # Missed stays missed and does not make the task busy; of "solo" (one at a time) the
    # first pending slot starts and the next waits; "many" (allow) starts both; "busy"
    # runs elsewhere, so its slot waits; "late" starts the slot that is due, not the one
    # five minutes ahead; and that fills the room of four, so "extra" waits.
    assert [(c.slot.task, c.slot.scheduled_for) for c in claims] == [
        ("solo", T0),
        ("many", T0),
        ("many", T0 + MIN),
        ("late", T0),
    ]
    assert [[s.status for s in r] for r in results if r is not None] == [
        [SlotStatus.MISSED, SlotStatus.RUNNING, SlotStatus.PENDING],
        [SlotStatus.RUNNING, SlotStatus.RUNNING],
        [SlotStatus.PENDING],
        [SlotStatus.RUNNING, SlotStatus.PENDING],
        [SlotStatus.PENDING],
    ]
    for c in claims:
        # The claim is what the database now holds, attempt row included.
        assert store.get_slot(c.slot.id) == c.slot
        assert c.slot.lease_owner == "n1" and c.slot.lease_expires_at == T0 + 2 * MIN
        assert c.slot.started_at == T0 + MIN and c.slot.attempts == 1
        assert store.attempts(c.slot.id) == [c.attempt]
        assert c.attempt.number == 1 and c.attempt.node == "n1"
    assert claims[0].spec == solo
    # The compare-and-set holds as for materialize: a stale expectation writes nothing.
    again, none = store.materialize_and_start(
        [Fires(solo, T0, T0 + 20 * MIN, [NewSlot(T0 + 2 * MIN)])], T0 + MIN, room
    )
    assert again == [None] and none == []
    assert len(store.slots("solo")) == 3
    # No room: slots are recorded pending, nothing starts.
    add(store, "later", T0)
    results, claims = store.materialize_and_start(
        [Fires(spec("later"), T0, None, [NewSlot(T0)])],
        T0,
        StartRoom(owner="n1", lease_until=T0 + MIN, room=0),
    )
    assert claims == [] and [s.status for s in results[0] or []] == [SlotStatus.PENDING]


def test_finish_many_builds_the_slot_the_database_now_holds(store: SQLStore) -> None:
    """Given the claimed slot, finishing builds the finished slot instead of reading it
    back: it must be exactly what a read returns, whatever the outcome."""
    from agentcron.model import Finish

    outcomes = [
        replace(OK, output_path="/out/a.log", empty_output=True),
        retry_at(T0 + 5 * MIN),
        AttemptOutcome(
            ok=False,
            slot_status=SlotStatus.FAILED,
            error_class=ErrorClass.AUTH,
            error="401",
            explanation="the key was refused",
            extra={"decision": "permanent"},
        ),
        AttemptOutcome(ok=True, slot_status=SlotStatus.SKIPPED, reason="precheck: nothing new"),
        replace(OK, output_path="/out/d.log", deliver_to=(("json://h/x", "json://h/…"),)),
    ]
    claims = []
    for i in range(len(outcomes)):
        add(store, f"t{i}")
        slot_at(store, f"t{i}", T0)
        claims.append(claim_one(store, "n1", T0 + MIN))
    lost = claims[0]
    items = [
        Finish(c.slot.id, c.attempt.id, "n1", o, T0 + 2 * MIN, claimed=c.slot)
        for c, o in zip(claims, outcomes, strict=True)
    ]
    items.append(Finish(lost.slot.id, lost.attempt.id, "intruder", OK, T0, claimed=lost.slot))
    got = store.finish_many(items)
    assert got[-1] is None  # not the lease owner: nothing written
    for c, slot in zip(claims, got[:-1], strict=True):
        assert slot is not None and slot == store.get_slot(c.slot.id)
    attempt = store.attempts(claims[2].slot.id)[0]
    assert (attempt.status, attempt.error_class, attempt.extra["decision"]) == (
        "failed",
        ErrorClass.AUTH,
        "permanent",
    )
    assert store.attempts(claims[0].slot.id)[0].extra == {"empty_output": True}
    assert got[4] is not None and got[4].delivery_status is DeliveryStatus.PENDING


def test_finish_many_sets_a_batch_at_once_and_only_where_the_lease_is_held(
    store: SQLStore,
) -> None:
    """Distinct slots finish in bulk statements: each lease owner is still checked on
    its own, a slot handed over without its claimed copy is read back, and every
    finished slot is what a read returns."""
    from agentcron.model import Finish

    claims = []
    for i in range(305):  # more than one statement's worth
        add(store, f"b{i}")
        slot_at(store, f"b{i}", T0)
    claims = store.claim("n1", T0 + MIN, T0 + 2 * MIN, 305)
    assert len(claims) == 305
    items = [
        Finish(
            c.slot.id,
            c.attempt.id,
            "intruder" if n % 7 == 3 else "n1",
            retry_at(T0 + 9 * MIN) if n % 2 else replace(OK, output_path=f"/out/{n}.log"),
            T0 + 2 * MIN,
            claimed=None if n == 10 else c.slot,
        )
        for n, c in enumerate(claims)
    ]
    got = store.finish_many(items)
    for n, (c, slot) in enumerate(zip(claims, got, strict=True)):
        fresh = store.get_slot(c.slot.id)
        assert fresh is not None
        if n % 7 == 3:
            assert slot is None and fresh.status is SlotStatus.RUNNING, n
            assert store.attempts(c.slot.id)[0].status == "running"
        else:
            assert slot == fresh, n
            assert fresh.status is (SlotStatus.RETRYING if n % 2 else SlotStatus.SUCCEEDED)
            assert fresh.lease_owner is None
    assert got[0] is not None and got[0].output_path == "/out/0.log"


def test_add_slot_is_idempotent_and_keeps_the_trigger(store: SQLStore) -> None:
    add(store, "t")
    first = store.add_slot("t", NewSlot(T0, trigger="manual"), T0)
    assert first is not None and first.trigger == "manual" and first.status is SlotStatus.PENDING
    assert first.created_at == T0 and first.attempts == 0
    assert store.add_slot("t", NewSlot(T0), T0) is None
    assert store.get_slot(first.id) == first
    assert store.get_slot(first.id + 1000) is None


def test_claim_takes_pending_and_due_retries_and_opens_attempts(store: SQLStore) -> None:
    add(store, "a", T0 + DAY, overlap="allow")  # next fires a day later: not due with the retry
    add(store, "b")
    a1 = slot_at(store, "a", T0)
    claims = store.claim("n1", T0 + MIN, T0 + 2 * MIN, 5)
    assert [c.slot.id for c in claims] == [a1]
    c = claims[0]
    assert c.spec == spec("a", overlap="allow")
    assert (
        c.slot.status,
        c.slot.lease_owner,
        c.slot.lease_expires_at,
        c.slot.started_at,
        c.slot.attempts,
    ) == (SlotStatus.RUNNING, "n1", T0 + 2 * MIN, T0 + MIN, 1)
    assert (
        c.attempt.slot_id,
        c.attempt.number,
        c.attempt.status,
        c.attempt.node,
        c.attempt.started_at,
    ) == (a1, 1, "running", "n1", T0 + MIN)
    store.finish_attempt(a1, c.attempt.id, "n1", retry_at(T0 + 5 * MIN), T0 + MIN)
    b1 = slot_at(store, "b", T0 + MIN)
    # The retry is not due yet; the pending slot is.
    assert [c.slot.id for c in store.claim("n2", T0 + 4 * MIN, T0 + 9 * MIN, 5)] == [b1]
    again = store.claim("n2", T0 + 5 * MIN, T0 + 9 * MIN, 5)
    assert [(c.slot.id, c.attempt.number) for c in again] == [(a1, 2)]
    assert again[0].slot.started_at == T0 + MIN  # the slot started with its first attempt
    assert again[0].slot.next_attempt_at is None
    assert [a.number for a in store.attempts(a1)] == [1, 2]
    assert store.claim("n2", T0 + 60 * MIN, T0 + 61 * MIN, 5) == []
    assert store.claim("n2", T0, T0, 0) == []


def test_claim_runs_one_slot_per_task_unless_overlap_allows(store: SQLStore) -> None:
    add(store, "solo", overlap="queue")
    add(store, "many", overlap="allow")
    for i in range(3):
        slot_at(store, "solo", T0 + i * MIN)
        slot_at(store, "many", T0 + i * MIN)
    first = store.claim("n1", T0 + 5 * MIN, T0 + 9 * MIN, 10)
    assert Counter(c.slot.task for c in first) == {"solo": 1, "many": 3}
    solo = next(c for c in first if c.slot.task == "solo")
    assert solo.slot.scheduled_for == T0  # oldest first
    assert store.claim("n2", T0 + 5 * MIN, T0 + 9 * MIN, 10) == []  # another node: still busy
    store.finish_attempt(solo.slot.id, solo.attempt.id, "n1", OK, T0 + 5 * MIN)
    nxt = store.claim("n2", T0 + 5 * MIN, T0 + 9 * MIN, 10)
    assert [(c.slot.task, c.slot.scheduled_for) for c in nxt] == [("solo", T0 + MIN)]


def test_claim_looks_past_a_long_queue_of_one_task(store: SQLStore) -> None:
    """A one-at-a-time task with hundreds of waiting slots (catch-up ``all`` after a long
    downtime) must not hide the slots of other tasks behind its queue."""
    add(store, "heavy", overlap="queue")
    add(store, "light")
    add(store, "many", overlap="allow")
    for i in range(300):
        slot_at(store, "heavy", T0 + i * timedelta(seconds=1))
    late = T0 + 10 * MIN
    light = slot_at(store, "light", late)
    many = [slot_at(store, "many", late + i * timedelta(seconds=1)) for i in range(3)]
    got = store.claim("n1", T0 + 20 * MIN, T0 + 21 * MIN, 10)
    assert [c.slot.task for c in got] == ["heavy", "light", "many", "many", "many"]
    assert [c.slot.id for c in got][1:] == [light, *many]
    assert got[0].slot.scheduled_for == T0  # the oldest of the queue
    assert store.claim("n1", T0 + 20 * MIN, T0 + 21 * MIN, 10) == []  # heavy is running


def test_claim_respects_the_limit_oldest_first(store: SQLStore) -> None:
    add(store, "many", overlap="allow")
    ids = [slot_at(store, "many", T0 + i * MIN) for i in (3, 1, 2, 0)]
    got = store.claim("n1", T0 + 9 * MIN, T0 + 10 * MIN, 2)
    assert [c.slot.id for c in got] == [ids[3], ids[1]]


def test_claims_after_a_full_one_take_the_rest_once_and_leave_busy_tasks_alone(
    store: SQLStore,
) -> None:
    """A claim that fills its room skips the next claim's lock-free look for waiting
    slots: the claims after it must still see exactly what waits, no more."""
    add(store, "solo", overlap="queue")
    add(store, "many", overlap="allow")
    for i in range(3):
        slot_at(store, "solo", T0 + i * MIN)
    many = [slot_at(store, "many", T0 + i * MIN) for i in range(3)]
    first = store.claim("n1", T0 + 9 * MIN, T0 + 10 * MIN, 2)  # fills its room
    assert sorted(c.slot.task for c in first) == ["many", "solo"]
    second = store.claim("n1", T0 + 9 * MIN, T0 + 10 * MIN, 10)
    assert [c.slot.id for c in second] == many[1:]  # solo's next waits for its run
    assert store.claim("n1", T0 + 9 * MIN, T0 + 10 * MIN, 10) == []
    assert store.claim("n1", T0 + 9 * MIN, T0 + 10 * MIN, 10) == []


def test_renew_leases_extends_only_the_owners_running_slots(store: SQLStore) -> None:
    add(store, "t", overlap="allow")
    slot_at(store, "t", T0)
    slot_at(store, "t", T0 + MIN)
    mine = claim_one(store, "n1")
    theirs = claim_one(store, "n2")
    assert store.renew_leases("n1", [mine.slot.id], T0 + MIN, T0 + 7 * MIN) == {mine.slot.id}
    assert store.renew_leases("ghost", [mine.slot.id], T0 + MIN, T0 + 7 * MIN) == set()
    # asking for another node's slot renews nothing: it is not n1's to keep alive
    assert store.renew_leases("n1", [theirs.slot.id], T0 + MIN, T0 + 9 * MIN) == set()
    fresh = store.get_slot(mine.slot.id)
    other = store.get_slot(theirs.slot.id)
    assert fresh is not None and fresh.lease_expires_at == T0 + 7 * MIN
    assert other is not None and other.lease_expires_at == T0 + MIN


def test_renew_leases_leaves_a_run_the_engine_no_longer_holds_to_lapse(store: SQLStore) -> None:
    """Liveness is the set of runs the engine holds, not every running row of the node:
    a run whose end could not be recorded and was dropped must lapse and be recovered."""
    add(store, "t", overlap="allow")
    slot_at(store, "t", T0)
    slot_at(store, "t", T0 + MIN)
    held = claim_one(store, "n1")
    dropped = claim_one(store, "n1")
    assert store.renew_leases("n1", [held.slot.id], T0 + MIN, T0 + 7 * MIN) == {held.slot.id}
    lapsed = store.lapsed(T0 + 3 * MIN)
    assert [s.id for s in lapsed] == [dropped.slot.id]


def test_a_stale_attempt_cannot_finish_a_slot_taken_again(store: SQLStore) -> None:
    """n1's attempt is lost (lease lapsed), the slot is retried and taken by n1 again:
    the first attempt's late result must not be recorded over the second's."""
    add(store, "t", T0 + DAY, retries=3)
    sid = slot_at(store, "t", T0)
    first = claim_one(store, "n1")
    lost = store.lapsed(T0 + 5 * MIN)
    assert [s.id for s in lost] == [sid]
    retry = AttemptOutcome(
        ok=False,
        slot_status=SlotStatus.RETRYING,
        error_class=ErrorClass.WORKER_LOST,
        error="lost",
        next_attempt_at=T0 + 5 * MIN,
    )
    assert store.record_lost(lost[0], retry, T0 + 5 * MIN)
    second = store.claim("n1", T0 + 5 * MIN, T0 + 6 * MIN, 1)
    assert [c.slot.id for c in second] == [sid]
    assert not store.finish_attempt(sid, first.attempt.id, "n1", OK, T0 + 5 * MIN)
    slot = store.get_slot(sid)
    assert slot is not None and slot.status is SlotStatus.RUNNING
    assert store.finish_attempt(sid, second[0].attempt.id, "n1", OK, T0 + 5 * MIN)
    assert store.get_slot(sid).status is SlotStatus.SUCCEEDED  # type: ignore[union-attr]


def test_finish_attempt_is_a_compare_and_set_on_the_lease_owner(store: SQLStore) -> None:
    add(store, "t")
    sid = slot_at(store, "t", T0)
    c = claim_one(store, "n1")
    outcome = AttemptOutcome(
        ok=True,
        slot_status=SlotStatus.SUCCEEDED,
        exit_code=0,
        output_path="outputs/t/1.txt",
        tokens={"total": 12},
        extra={"model": "m"},
        empty_output=False,
    )
    assert not store.finish_attempt(sid, c.attempt.id, "intruder", outcome, T0 + MIN)
    untouched = store.get_slot(sid)
    assert untouched is not None and untouched.status is SlotStatus.RUNNING
    assert store.attempts(sid)[0].finished_at is None
    assert store.finish_attempt(sid, c.attempt.id, "n1", outcome, T0 + MIN)
    done = store.get_slot(sid)
    assert done is not None
    assert (
        done.status,
        done.finished_at,
        done.lease_owner,
        done.lease_expires_at,
        done.output_path,
        done.error_class,
    ) == (SlotStatus.SUCCEEDED, T0 + MIN, None, None, "outputs/t/1.txt", None)
    (attempt,) = store.attempts(sid)
    assert (
        attempt.status,
        attempt.finished_at,
        attempt.exit_code,
        attempt.output_path,
        attempt.tokens,
        attempt.extra,
    ) == (
        "succeeded",
        T0 + MIN,
        0,
        "outputs/t/1.txt",
        {"total": 12},
        {"model": "m", "empty_output": False},
    )
    assert attempt.duration_s == 60.0
    assert not store.finish_attempt(sid, c.attempt.id, "n1", outcome, T0 + 2 * MIN)


def test_a_failed_attempt_records_its_class_and_explanation(store: SQLStore) -> None:
    add(store, "t")
    sid = slot_at(store, "t", T0)
    c = claim_one(store)
    bad = AttemptOutcome(
        ok=False,
        slot_status=SlotStatus.FAILED,
        error_class=ErrorClass.AUTH,
        error="401 from provider",
        explanation="The API key was refused.",
        exit_code=1,
    )
    assert store.finish_attempt(sid, c.attempt.id, "n1", bad, T0 + MIN)
    slot = store.get_slot(sid)
    assert slot is not None
    assert (slot.status, slot.error_class, slot.error) == (
        SlotStatus.FAILED,
        ErrorClass.AUTH,
        "401 from provider",
    )
    (attempt,) = store.attempts(sid)
    assert (attempt.status, attempt.error_class, attempt.explanation) == (
        "failed",
        ErrorClass.AUTH,
        "The API key was refused.",
    )


def test_set_slot_status_only_from(store: SQLStore) -> None:
    add(store, "t")
    sid = slot_at(store, "t", T0)
    assert not store.set_slot_status(
        sid, SlotStatus.SUPERSEDED, "x", T0, only_from=[SlotStatus.RETRYING]
    )
    assert store.set_slot_status(
        sid,
        SlotStatus.SUPERSEDED,
        "newer run",
        T0 + MIN,
        only_from=[SlotStatus.RETRYING, SlotStatus.PENDING],
    )
    slot = store.get_slot(sid)
    assert slot is not None
    assert (slot.status, slot.reason, slot.finished_at) == (
        SlotStatus.SUPERSEDED,
        "newer run",
        T0 + MIN,
    )
    running = slot_at(store, "t", T0 + MIN)
    claim_one(store, "n1")
    assert store.set_slot_status(running, SlotStatus.CANCELLED, "stopped", T0 + 2 * MIN)
    gone = store.get_slot(running)
    assert gone is not None and gone.lease_owner is None
    assert not store.set_slot_status(running + 1000, SlotStatus.CANCELLED, None, T0)


def test_lapsed_and_record_lost_compare_and_set(store: SQLStore) -> None:
    add(store, "t", overlap="allow")
    slot_at(store, "t", T0)
    slot_at(store, "t", T0 + MIN)
    slot_at(store, "t", T0 + 2 * MIN)
    expired = store.claim("dead", T0, T0 + MIN, 1)[0]
    alive = store.claim("alive", T0, T0 + 10 * MIN, 1)[0]
    doomed = store.claim("gone", T0, T0 + 10 * MIN, 1)[0]
    assert [s.id for s in store.lapsed(T0 + MIN)] == []
    assert [s.id for s in store.lapsed(T0 + 2 * MIN)] == [expired.slot.id]
    assert [s.id for s in store.lapsed(T0 + 2 * MIN, ["gone"])] == [expired.slot.id, doomed.slot.id]
    (lost,) = store.lapsed(T0 + 2 * MIN)
    lost_outcome = AttemptOutcome(
        ok=False,
        slot_status=SlotStatus.RETRYING,
        error_class=ErrorClass.WORKER_LOST,
        error="the worker stopped responding",
        next_attempt_at=T0 + 3 * MIN,
    )
    # A snapshot older than a renewal loses the compare-and-set: the worker is alive.
    stale = replace(lost, lease_expires_at=T0 + 30 * MIN)
    assert not store.record_lost(stale, lost_outcome, T0 + 2 * MIN)
    assert store.record_lost(lost, lost_outcome, T0 + 2 * MIN)
    assert not store.record_lost(lost, lost_outcome, T0 + 2 * MIN)  # only once
    slot = store.get_slot(lost.id)
    assert slot is not None
    assert (slot.status, slot.error_class, slot.next_attempt_at, slot.lease_owner) == (
        SlotStatus.RETRYING,
        ErrorClass.WORKER_LOST,
        T0 + 3 * MIN,
        None,
    )
    (attempt,) = store.attempts(lost.id)
    assert (attempt.status, attempt.error_class) == ("failed", ErrorClass.WORKER_LOST)
    # The worker that lost it cannot finish it any more.
    assert not store.finish_attempt(lost.id, expired.attempt.id, "dead", OK, T0 + 2 * MIN)
    assert store.finish_attempt(alive.slot.id, alive.attempt.id, "alive", OK, T0 + 2 * MIN)


def test_slot_listings_and_their_order(store: SQLStore) -> None:
    add(store, "t", overlap="allow")
    add(store, "u")
    ids = {i: slot_at(store, "t", T0 + i * MIN) for i in range(5)}
    slot_at(store, "u", T0 + 10 * MIN)
    claims = store.claim("n1", T0 + 9 * MIN, T0 + 20 * MIN, 3)  # t@0, t@1, t@2
    assert [c.slot.id for c in claims] == [ids[0], ids[1], ids[2]]
    store.finish_attempt(ids[0], claims[0].attempt.id, "n1", OK, T0 + 9 * MIN)
    store.finish_attempt(ids[1], claims[1].attempt.id, "n1", OK, T0 + 9 * MIN)
    store.set_slot_status(ids[3], SlotStatus.SKIPPED, "busy", T0)
    assert [s.id for s in store.slots("t")] == [ids[4], ids[3], ids[2], ids[1], ids[0]]
    assert [s.id for s in store.slots("t", limit=2)] == [ids[4], ids[3]]
    assert [s.task for s in store.slots(limit=1)] == ["u"]
    assert [
        s.id for s in store.slots("t", statuses=[SlotStatus.SUCCEEDED, SlotStatus.SKIPPED])
    ] == [ids[3], ids[1], ids[0]]
    assert [s.id for s in store.active_slots("t")] == [ids[2], ids[4]]
    assert len(store.active_slots()) == 3
    by_task = store.active_slots_of({"t", "nobody"})
    assert {k: [s.id for s in v] for k, v in by_task.items()} == {"t": [ids[2], ids[4]]}
    assert store.active_slots_of([]) == {}
    assert [s.id for s in store.last_slots("t", 2)] == [ids[3], ids[1]]
    last = store.last_success("t")
    assert last is not None and last.id == ids[1]
    assert store.last_success("u") is None


# ---- nodes and meta ------------------------------------------------------------------------
def test_nodes_register_heartbeat_and_stop(store: SQLStore) -> None:
    store.register_node(NodeInfo("a", "host-a", 11, "/home/a", T0, T0))
    store.register_node(NodeInfo("b", "host-b", 22, "/home/b", T0, T0 + MIN))
    assert [n.node_id for n in store.nodes()] == ["b", "a"]  # freshest heartbeat first
    assert store.heartbeat("a", T0 + 2 * MIN) is True
    assert store.heartbeat("gone", T0 + 2 * MIN) is False  # no row: it must register
    store.stop_node("b", T0 + 3 * MIN)
    a, b = sorted(store.nodes(), key=lambda n: n.node_id)
    assert a == NodeInfo("a", "host-a", 11, "/home/a", T0, T0 + 2 * MIN, None)
    assert (b.stopped_at, b.heartbeat_at) == (T0 + 3 * MIN, T0 + 3 * MIN)
    store.register_node(NodeInfo("b", "host-b", 22, "/home/b", T0, T0 + 4 * MIN))
    b = next(n for n in store.nodes() if n.node_id == "b")
    assert b.stopped_at is None and b.heartbeat_at == T0 + 4 * MIN


def test_a_node_keeps_its_config_note_until_cleared_or_stopped(store: SQLStore) -> None:
    store.register_node(NodeInfo("a", "host-a", 11, "/home/a", T0, T0))
    store.register_node(NodeInfo("b", "host-b", 22, "/home/b", T0, T0))
    store.set_config_note("a", "`api:` changed since it started")
    notes = {n.node_id: n.config_note for n in store.nodes()}
    assert notes == {"a": "`api:` changed since it started", "b": None}
    store.heartbeat("a", T0 + MIN)  # a heartbeat leaves it
    assert next(n for n in store.nodes() if n.node_id == "a").config_note is not None
    store.set_config_note("a", None)
    assert all(n.config_note is None for n in store.nodes())
    store.set_config_note("b", "rejected")
    store.stop_node("b", T0 + 2 * MIN)  # a stopped daemon runs no config
    assert all(n.config_note is None for n in store.nodes())


def test_meta_values(store: SQLStore) -> None:
    assert store.get_meta("k") is None
    store.set_meta("k", "1")
    store.set_meta("k", "2")
    assert store.get_meta("k") == "2"
    assert store.get_meta("app") == "agentcron"


# ---- incidents -----------------------------------------------------------------------------
def message(n: int, task: str = "t") -> Message:
    return Message(
        title=f"title {n}",
        body=f"body {n}",
        task=task,
        event="opened",
        incident_kind="failure",
        severity="failure",
    )


def test_a_channel_removed_from_the_config_hands_its_unsent_messages_on_and_is_forgotten(
    store: SQLStore,
) -> None:
    """Probe: a broken channel replaced in the config stayed in `health` as failing for
    good, and what it could not send never reached the channel put in its place."""
    both, only_old, task_own = message(1), message(2), message(3)
    store.save_incidents([], [("old", "json://old", both), ("new", "json://new", both)], T0)
    store.enqueue("old", "json://old", only_old, T0 + MIN)
    store.enqueue("task", "json://task", task_own, T0 + MIN)
    store.mark_failed(store.due(T0 + MIN, 10)[0].id, "refused", T0 + MIN, False, T0 + MIN)
    assert store.retire_channels(["new", "task"], [("new", "json://new")], T0 + 2 * MIN) == 2
    assert [h.channel_key for h in store.channel_health()] == ["new", "task"]
    due = [(i.channel_key, i.message.title, i.created_at) for i in store.due(T0 + 2 * MIN, 10)]
    assert ("task", "title 3", T0 + MIN) in due and ("new", "title 1", T0) in due
    new = store.claim_outbox("n1", T0 + 2 * MIN, T0 + 3 * MIN, 10)
    for item in new:
        store.mark_sent(item.id, T0 + 2 * MIN, "n1")
    # the one only the old channel had comes next on the new one, written when it was
    again = [(i.channel_key, i.message.title, i.created_at) for i in store.due(T0 + 2 * MIN, 10)]
    assert again == [("new", "title 2", T0 + MIN)]
    assert store.retire_channels(["new", "task"], [("new", "json://new")], T0 + 3 * MIN) == 0
    # every channel taken out (`notify: []`): one that holds a message keeps it and is
    # still tried (probe: the message was given up with nowhere to go)
    assert store.retire_channels([], [], T0 + 4 * MIN) == 0
    assert [h.channel_key for h in store.channel_health()] == ["new"]
    assert [i.message.title for i in store.due(T0 + 4 * MIN, 10)] == ["title 2"]


def test_a_channel_retired_takes_its_outage_marks_with_it(store: SQLStore) -> None:
    """Soak probe: the meta marks of a channel's outage and return stayed for good after
    the channel left the config: one pair per channel ever configured (a rotated token
    makes a new key)."""
    from agentcron.model.outbox import CHANNEL_DOWN_MARK
    from agentcron.store._notify_sql import BACK_MARK

    for key in ("old", "kept"):
        store.set_meta(CHANNEL_DOWN_MARK + key, "")
        store.set_meta(BACK_MARK + key, "1.0")
    store.save_incidents([], [("old", "json://old", message(1))], T0)
    store.save_incidents([], [("kept", "json://kept", message(2))], T0)
    store.retire_channels(["kept"], [("kept", "json://kept")], T0 + MIN)
    assert store.get_meta(CHANNEL_DOWN_MARK + "old") is None
    assert store.get_meta(BACK_MARK + "old") is None
    assert store.get_meta(CHANNEL_DOWN_MARK + "kept") == ""
    assert store.get_meta(BACK_MARK + "kept") == "1.0"


def test_incidents_are_saved_with_their_messages_and_one_open_per_kind(store: SQLStore) -> None:
    inc = Incident(
        task="t",
        kind=IncidentKind.FAILURE,
        opened_at=T0,
        failed_runs=1,
        first_error_class=ErrorClass.RATE_LIMITED,
        summary="429",
        slot_id=7,
    )
    (saved,) = store.save_incidents([inc], [("json://k", "json://h/k", message(1))], T0)
    assert saved.id is not None and replace(saved, id=None) == inc
    assert store.open_incidents("t") == {"failure": saved}
    assert [i.message.title for i in store.due(T0, 10)] == ["title 1"]
    bumped = replace(
        saved,
        count=2,
        retries=1,
        last_error_class=ErrorClass.TIMEOUT,
        updated_at=T0 + MIN,
        told=("rate_limited", "auth"),  # what the owner was told of, kept in order
    )
    store.save_incidents([bumped], [], T0 + MIN)
    assert store.open_incidents("t")["failure"] == bumped
    # A second open incident of the same kind is refused, and nothing of that save lands.
    dup = Incident(task="t", kind=IncidentKind.FAILURE, opened_at=T0 + MIN)
    with pytest.raises(Exception) as info:
        store.save_incidents([dup], [("json://k", "json://h/k", message(2))], T0 + MIN)
    assert "unique" in str(info.value).lower()
    assert [i.message.title for i in store.due(T0 + MIN, 10)] == ["title 1"]
    stuck = Incident(task="t", kind=IncidentKind.STUCK, opened_at=T0 + 2 * MIN, since=T0)
    closed = replace(bumped, closed_at=T0 + 3 * MIN)
    store.save_incidents([closed, stuck], [], T0 + 3 * MIN)
    assert set(store.open_incidents("t")) == {"stuck"}
    (reopened,) = store.save_incidents([dup], [], T0 + 4 * MIN)  # allowed once the first closed
    assert [i.kind for i in store.incidents("t")] == [
        IncidentKind.STUCK,
        IncidentKind.FAILURE,
        IncidentKind.FAILURE,
    ]
    open_stuck = store.open_incidents("t")["stuck"]
    assert [i.id for i in store.incidents("t", open_only=True)] == [open_stuck.id, reopened.id]
    assert [i.id for i in store.incidents(open_only=True)] == [open_stuck.id, reopened.id]
    assert len(store.incidents(limit=1)) == 1
    assert store.incidents("other") == []


def test_batch_reads_for_finished_runs(store: SQLStore) -> None:
    """The two reads the notifier makes once per batch of finished runs."""
    add(store, "a")
    add(store, "b")
    add(store, "c")
    for i, status in enumerate(
        [SlotStatus.SUCCEEDED, SlotStatus.FAILED, SlotStatus.SUCCEEDED, SlotStatus.SKIPPED]
    ):
        slot_at(store, "a", T0 + i * MIN, status)
    slot_at(store, "a", T0 + 9 * MIN)  # pending: not final, not counted
    slot_at(store, "b", T0, SlotStatus.SUCCEEDED)
    assert store.last_statuses(["a", "b", "c", "a"], 3) == {
        "a": [SlotStatus.SKIPPED, SlotStatus.SUCCEEDED, SlotStatus.FAILED],
        "b": [SlotStatus.SUCCEEDED],
    }
    assert store.last_statuses([], 3) == {}
    names = [f"t{i}" for i in range(1200)]  # more than one IN list's worth
    assert store.tasks_with_open_incidents([*names, "a", "b"]) == set()
    store.save_incidents([Incident(task="b", kind=IncidentKind.FAILURE, opened_at=T0)], [], T0)
    (stuck,) = store.save_incidents(
        [Incident(task="t1100", kind=IncidentKind.STUCK, opened_at=T0)], [], T0
    )
    assert store.tasks_with_open_incidents([*names, "a", "b"]) == {"b", "t1100"}
    store.save_incidents([replace(stuck, closed_at=T0 + MIN)], [], T0 + MIN)
    assert store.tasks_with_open_incidents([*names, "a", "b"]) == {"b"}


# ---- outbox: the same observable behaviour as MemoryOutbox ---------------------------------
def outbox_story(box: OutboxStore) -> list[Any]:
    """Drive an outbox through outages, a permanent failure and recoveries, noting what
    a sender and `doctor` would see at each step (ids left out: they differ by engine)."""
    seen: list[Any] = []

    def note(now: datetime) -> None:
        seen.append(
            [(i.channel_key, i.message.title, i.attempts, i.last_error) for i in box.due(now, 10)]
        )
        seen.append(
            [
                (
                    h.channel_key,
                    h.pending,
                    h.ok,
                    h.broken,
                    h.undeliverable,
                    h.last_ok_at,
                    h.failing_since,
                    h.last_error,
                )
                for h in box.channel_health()
            ]
        )

    ids = [
        box.enqueue("chat", "tgram://x/1", message(1), T0),
        box.enqueue("mail", "mailto://x", message(2), T0 + MIN),
        box.enqueue("chat", "tgram://x/1", message(3), T0 + MIN),
    ]
    assert ids == sorted(ids) and len(set(ids)) == 3
    note(T0 + MIN)
    box.mark_failed(ids[0], "502 from Telegram", T0 + 5 * MIN, False, T0 + MIN)
    note(T0 + 2 * MIN)  # chat's head is not due: nothing for chat, not even message 3
    box.mark_failed(ids[0], "timeout", T0 + 6 * MIN, False, T0 + 5 * MIN)
    note(T0 + 6 * MIN)
    box.mark_sent(ids[0], T0 + 6 * MIN)
    box.mark_failed(ids[1], "550 no such user", None, True, T0 + 6 * MIN)
    note(T0 + 6 * MIN)  # mail is broken and its message parked; chat moves on to message 3
    box.mark_sent(ids[2], T0 + 7 * MIN)
    box.enqueue("mail", "mailto://x", message(4), T0 + 8 * MIN)
    note(T0 + 8 * MIN)
    (head,) = box.due(T0 + 8 * MIN, 10)
    box.mark_failed(head.id, "later", None, False, T0 + 8 * MIN)
    note(T0 + 8 * MIN)  # a passing failure without a time is due again at once
    return seen


def test_outbox_matches_the_memory_reference(store: SQLStore) -> None:
    seen = outbox_story(store)
    assert seen == outbox_story(MemoryOutbox())
    # The story's key facts, stated once in words a reader can check.
    assert seen[0] == [("chat", "title 1", 0, None), ("mail", "title 2", 0, None)]
    assert seen[2] == [("mail", "title 2", 0, None)]
    assert seen[4] == [("chat", "title 1", 2, "timeout"), ("mail", "title 2", 0, None)]
    assert seen[6] == [("chat", "title 3", 0, None)]
    mail = next(h for h in seen[7] if h[0] == "mail")
    assert mail == ("mail", 0, False, True, 1, None, T0 + 6 * MIN, "550 no such user")
    chat = next(h for h in seen[5] if h[0] == "chat")
    assert chat[5:7] == (None, T0 + MIN)  # failing since the first failure, not the last
    assert seen[8] == [("mail", "title 4", 0, None)]
    assert seen[10] == [("mail", "title 4", 1, "later")]


def test_outbox_due_respects_the_limit_oldest_first(store: SQLStore) -> None:
    for n, key in enumerate(["c", "a", "b"]):
        store.enqueue(key, f"json://h/{key}", message(n), T0 + n * MIN)
    assert [i.channel_key for i in store.due(T0 + 5 * MIN, 2)] == ["c", "a"]
    assert store.due(T0 - MIN, 10) == []


# ---- deliveries ----------------------------------------------------------------------------
def test_deliveries_are_created_on_success_and_aggregate_into_the_slot(store: SQLStore) -> None:
    add(store, "t", overlap="allow")
    targets = (("tgram://secret/1", "tgram://…/1"), ("json://h/hook", "json://h/hook"))
    sid = slot_at(store, "t", T0)
    c = claim_one(store)
    out = AttemptOutcome(
        ok=True, slot_status=SlotStatus.SUCCEEDED, output_path="o/1.txt", deliver_to=targets
    )
    assert store.finish_attempt(sid, c.attempt.id, "n1", out, T0 + MIN)
    slot = store.get_slot(sid)
    assert slot is not None and slot.delivery_status is DeliveryStatus.PENDING
    assert store.due_deliveries(T0, 10) == []
    due = store.due_deliveries(T0 + MIN, 10)
    assert [(d.slot_id, d.task, d.target, d.target_key, d.output_path, d.status) for d in due] == [
        (sid, "t", t, k, "o/1.txt", DeliveryStatus.PENDING) for t, k in targets
    ]
    first, second = due
    store.update_delivery(first.id, DeliveryStatus.DELIVERED, 1, None, None, T0 + MIN)
    store.update_delivery(second.id, DeliveryStatus.RETRYING, 1, T0 + 3 * MIN, "502", T0 + MIN)

    def status() -> DeliveryStatus:
        s = store.get_slot(sid)
        assert s is not None
        return s.delivery_status

    assert status() is DeliveryStatus.RETRYING
    assert [d.id for d in store.due_deliveries(T0 + 2 * MIN, 10)] == []
    (retry,) = store.due_deliveries(T0 + 3 * MIN, 10)
    assert (retry.id, retry.attempts, retry.last_error) == (second.id, 1, "502")
    store.update_delivery(second.id, DeliveryStatus.DELIVERED, 2, None, None, T0 + 3 * MIN)
    assert status() is DeliveryStatus.DELIVERED
    store.update_delivery(second.id, DeliveryStatus.FAILED, 3, None, "gone", T0 + 4 * MIN)
    assert status() is DeliveryStatus.FAILED
    assert [d.id for d in store.deliveries(sid)] == [second.id, first.id]
    assert slot.status is SlotStatus.SUCCEEDED

    # No deliveries for a failed run, nor for a run that is only retrying.
    sid2 = slot_at(store, "t", T0 + MIN)
    c2 = claim_one(store)
    store.finish_attempt(sid2, c2.attempt.id, "n1", replace(retry_at(T0), deliver_to=targets), T0)
    assert store.deliveries(sid2) == []
    s2 = store.get_slot(sid2)
    assert s2 is not None and s2.delivery_status is DeliveryStatus.NONE


# ---- databases that are not ours -----------------------------------------------------------
FOREIGN = [
    # SQLite words this one "not a usable agentcron database": clear, if less precise.
    pytest.param(
        ["CREATE TABLE meta (id INTEGER, data TEXT)"],
        "not (an|a usable) agentcron database",
        id="foreign-meta-columns",
    ),
    pytest.param(
        [
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
            "INSERT INTO meta VALUES ('app', 'grafana')",
        ],
        "not an agentcron database",
        id="foreign-meta-app",
    ),
    pytest.param(["CREATE TABLE invoices (id INTEGER)"], "already holds tables", id="other-tables"),
]


@pytest.mark.parametrize(("statements", "words"), FOREIGN)
def test_a_foreign_database_is_refused_in_words(
    backend: Backend, statements: list[str], words: str
) -> None:
    backend.raw(statements)
    with pytest.raises(StoreError, match=words) as info:
        backend.open()
    assert "Traceback" not in str(info.value)


def test_a_database_from_a_newer_version_is_refused(backend: Backend) -> None:
    s = backend.open()
    s.set_meta("schema_version", "99")
    s.close()
    with pytest.raises(StoreError, match=r"newer agentcron \(schema 99"):
        backend.open()


def test_reopening_keeps_the_data_and_the_schema_version(backend: Backend) -> None:
    s = backend.open()
    add(s, "t")
    version = s.get_meta("schema_version")
    s.close()
    s.close()  # idempotent
    again = backend.open()
    try:
        assert [t.name for t in again.list_tasks()] == ["t"]
        assert again.get_meta("schema_version") == version
    finally:
        again.close()


def test_a_corrupt_sqlite_file_is_refused_in_words(tmp_path: Path) -> None:
    path = tmp_path / "agentcron.db"
    path.write_bytes(random.Random(7).randbytes(8192))
    with pytest.raises(StoreError, match="not a usable agentcron database"):
        SQLiteStore(path)


# ---- concurrency: several store objects on one database ------------------------------------
def run_nodes(backend: Backend, nodes: int, body: Callable[[SQLStore, int], None]) -> None:
    errors: list[BaseException] = []
    stores = [backend.open() for _ in range(nodes)]
    start = threading.Barrier(nodes)

    def run(i: int) -> None:
        try:
            start.wait(30)
            body(stores[i], i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    for s in stores:
        s.close()
    assert not any(t.is_alive() for t in threads), "a node hung"
    if errors:
        raise errors[0]


def test_concurrent_nodes_insert_each_slot_once_and_claim_it_once(backend: Backend) -> None:
    fires = 40
    setup = backend.open()
    add(setup, "solo", T0, overlap="skip")
    add(setup, "many", T0, overlap="allow")
    setup.close()
    end = T0 + (fires - 1) * MIN
    inserted: list[tuple[str, datetime]] = []
    claimed: list[int] = []
    overlaps: list[int] = []
    lock = threading.Lock()

    def node(store: SQLStore, i: int) -> None:
        owner = f"node{i}"
        while True:
            planned = 0
            for name in ("solo", "many"):
                rec = store.get_task(name)
                assert rec is not None
                if rec.next_fire_at is None:
                    continue
                planned += 1
                nxt = rec.next_fire_at + MIN
                made = store.materialize(
                    name,
                    rec.next_fire_at,
                    None if nxt > end else nxt,
                    [NewSlot(rec.next_fire_at)],
                    end,
                )
                with lock:
                    inserted.extend((name, s.scheduled_for) for s in made or [])
            claims = store.claim(owner, end, end + MIN, 3)
            running = [s for s in store.active_slots("solo") if s.status is SlotStatus.RUNNING]
            with lock:
                claimed.extend(c.slot.id for c in claims)
                if len(running) > 1:
                    overlaps.append(len(running))
            for c in claims:
                assert c.attempt.number == 1
                assert store.finish_attempt(c.slot.id, c.attempt.id, owner, OK, end)
            if not planned and not claims and not store.active_slots():
                return

    run_nodes(backend, 4, node)
    expected = [(n, T0 + k * MIN) for n in ("solo", "many") for k in range(fires)]
    assert sorted(inserted) == sorted(expected)
    assert len(claimed) == len(set(claimed)) == 2 * fires
    assert overlaps == []
    check = backend.open()
    try:
        assert len(check.slots(limit=1000, statuses=[SlotStatus.SUCCEEDED])) == 2 * fires
    finally:
        check.close()


# ---- PostgreSQL only -----------------------------------------------------------------------
@pytest.fixture
def pg_schema() -> Iterator[str]:
    require_pg()
    from pg_util import fresh_schema

    with fresh_schema() as schema:
        yield schema


@pytest.mark.postgres
def test_pg_two_nodes_migrating_at_once_both_start(pg_schema: str) -> None:
    from agentcron.store.postgres import PostgresStore

    opened: list[PostgresStore] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(4)

    def start() -> None:
        try:
            gate.wait(10)
            opened.append(PostgresStore(PG_DSN, schema=pg_schema))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        assert len(opened) == 4
        assert opened[0].get_meta("schema_version") == opened[3].get_meta("schema_version")
    finally:
        for s in opened:
            s.close()


@pytest.mark.postgres
def test_pg_claim_skips_slots_and_tasks_another_node_holds(pg_schema: str) -> None:
    import psycopg
    from psycopg import sql

    from agentcron.store.postgres import PostgresStore

    store = PostgresStore(PG_DSN, schema=pg_schema)
    other = psycopg.connect(PG_DSN)
    try:
        add(store, "solo", overlap="skip")
        add(store, "many", overlap="allow")
        solo = slot_at(store, "solo", T0)
        many = [slot_at(store, "many", T0 + i * MIN) for i in range(2)]
        other.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        # Another node is in the middle of claiming: it holds the solo task and one slot.
        other.execute("SELECT 1 FROM tasks WHERE name = 'solo' FOR UPDATE")
        other.execute("SELECT 1 FROM slots WHERE id = %s FOR UPDATE", (many[0],))
        got = store.claim("n1", T0 + 5 * MIN, T0 + 9 * MIN, 10)
        assert [c.slot.id for c in got] == [many[1]]  # neither waited for nor taken
        other.rollback()
        got = store.claim("n1", T0 + 5 * MIN, T0 + 9 * MIN, 10)
        assert sorted(c.slot.id for c in got) == sorted([solo, many[0]])
    finally:
        other.close()
        store.close()


@pytest.mark.postgres
def test_pg_claim_fills_the_room_a_held_task_leaves(pg_schema: str) -> None:
    """Candidates' tasks are asked about a batch at a time: one another node holds is
    refused, and the next candidate takes its place within the same claim."""
    import psycopg
    from psycopg import sql

    from agentcron.store.postgres import PostgresStore

    store = PostgresStore(PG_DSN, schema=pg_schema)
    other = psycopg.connect(PG_DSN)
    try:
        for name in ("held", "next", "last"):
            add(store, name, overlap="skip")
        slot_at(store, "held", T0)
        wanted = slot_at(store, "next", T0 + MIN)
        slot_at(store, "last", T0 + 2 * MIN)
        other.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        other.execute("SELECT 1 FROM tasks WHERE name = 'held' FOR UPDATE")
        got = store.claim("n1", T0 + 5 * MIN, T0 + 9 * MIN, 1)
        assert [c.slot.id for c in got] == [wanted]
        other.rollback()
    finally:
        other.close()
        store.close()


@pytest.mark.postgres
def test_pg_two_nodes_starting_together_add_a_file_task_once(pg_schema: str) -> None:
    """Two daemons with one config start at the same moment: both read "no such task",
    the second one's insert meets the first one's row. It must take that row as the
    task (nothing added, nothing raised), not fail to start."""
    import time

    import psycopg
    from psycopg import sql

    from agentcron.store._rows import schedule_key, spec_json
    from agentcron.store.postgres import PostgresStore

    store = PostgresStore(PG_DSN, schema=pg_schema)
    other = psycopg.connect(PG_DSN)
    watcher = psycopg.connect(PG_DSN, autocommit=True)
    task = spec("tick")
    try:
        other.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        other.execute(  # the other node's start, not committed yet
            "INSERT INTO tasks (name, source, spec, schedule_key, overlap, paused, "
            "next_fire_at, created_at, updated_at) VALUES (%s, 'file', %s, %s, %s, 0, %s, %s, %s)",
            (
                "tick",
                spec_json(task),
                schedule_key(task),
                task.overlap.value,
                T0.timestamp(),
                T0.timestamp(),
                T0.timestamp(),
            ),
        )
        outcome: dict[str, Any] = {}

        def start() -> None:
            try:
                outcome["synced"] = store.sync_file_tasks([task], T0, {"tick": T0})
            except Exception as exc:  # reported below
                outcome["error"] = exc

        node = threading.Thread(target=start)
        node.start()
        deadline = time.monotonic() + 20
        while not watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        ).fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline, "the second insert never waited"
            time.sleep(0.02)
        other.commit()
        node.join(20)
        assert "error" not in outcome, outcome.get("error")
        assert outcome["synced"] == ([], [], [])
        assert [t.name for t in store.list_tasks()] == ["tick"]
    finally:
        other.close()
        watcher.close()
        store.close()


@pytest.mark.postgres
def test_pg_reconnects_once_after_the_server_dropped_the_connection(pg_schema: str) -> None:
    import psycopg

    from agentcron.store.postgres import PostgresStore

    store = PostgresStore(PG_DSN, schema=pg_schema)
    try:
        add(store, "t")

        def drop() -> None:
            pid = store._q("SELECT pg_backend_pid()")[0][0]
            with psycopg.connect(PG_DSN, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

        drop()
        assert [t.name for t in store.list_tasks()] == ["t"]  # a read
        drop()
        store.set_meta("k", "v")  # a transaction
        assert store.get_meta("k") == "v"
        drop()
        assert store.claim("n1", T0, T0 + MIN, 1) == []  # the claim's own transaction
    finally:
        store.close()


@pytest.mark.postgres
def test_pg_errors_name_the_server_and_never_the_password(pg_schema: str) -> None:
    import socket

    from agentcron.store.postgres import PostgresStore, redact_dsn

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreError) as info:
        PostgresStore(f"postgresql://agent:hunter2@127.0.0.1:{port}/prod")
    text = str(info.value)
    assert f"127.0.0.1:{port}/prod" in text and "hunter2" not in text
    assert redact_dsn("postgresql://agent:hunter2@db:5432/prod?sslmode=require&password=x") == (
        "postgresql://agent@db:5432/prod?sslmode=require"
    )
    assert "hunter2" not in redact_dsn("host=db user=agent password=hunter2 dbname=prod")
    store = PostgresStore(PG_DSN, schema=pg_schema)
    try:
        assert store.describe().endswith(f"(schema {pg_schema})")
    finally:
        store.close()


@pytest.mark.postgres
def test_pg_search_path_in_the_dsn_selects_the_schema(pg_schema: str) -> None:
    from agentcron.store.postgres import PostgresStore
    from pg_util import admin_execute, dsn_with_schema

    with pytest.raises(StoreError, match="names no existing schema"):
        PostgresStore(dsn_with_schema(pg_schema))
    admin_execute([], schema=pg_schema)
    store = PostgresStore(dsn_with_schema(pg_schema))
    try:
        add(store, "t")
    finally:
        store.close()
    admin_execute(["SELECT name FROM tasks"], schema=pg_schema)


def test_concurrent_manual_triggers_insert_one_slot_per_instant(backend: Backend) -> None:
    setup = backend.open()
    add(setup, "t")
    setup.close()
    made: list[int] = []
    lock = threading.Lock()

    def node(store: SQLStore, i: int) -> None:
        for k in range(25):
            slot = store.add_slot("t", NewSlot(T0 + k * MIN, trigger="manual"), T0)
            if slot is not None:
                with lock:
                    made.append(slot.id)

    run_nodes(backend, 4, node)
    assert len(made) == len(set(made)) == 25


def test_correct_lost_end_only_while_the_slot_waits_for_its_retry(store: SQLStore) -> None:
    add(store, "t", retries=3)
    sid = slot_at(store, "t", T0)
    claim_one(store, "n1")
    (lapsed,) = store.lapsed(T0 + 5 * MIN)
    lost = AttemptOutcome(
        ok=False,
        slot_status=SlotStatus.RETRYING,
        error_class=ErrorClass.WORKER_LOST,
        error="lost",
        next_attempt_at=T0 + 10 * MIN,
    )
    assert store.record_lost(lapsed, lost, T0 + 5 * MIN)
    assert store.correct_lost_end(sid, 2, OK, T0 + 6 * MIN) is None  # not that attempt
    fixed = store.correct_lost_end(sid, 1, OK, T0 + 6 * MIN)
    assert fixed is not None and fixed.status is SlotStatus.SUCCEEDED
    assert [a.status for a in store.attempts(sid)] == ["succeeded"]
    assert store.correct_lost_end(sid, 1, OK, T0 + 6 * MIN) is None  # once


def test_waiting_slots_of_paused_tasks_are_cancelled(store: SQLStore) -> None:
    """A run in flight when its task was paused ends waiting for a retry that a paused
    task never gets: the soak found such slots left retrying for good."""
    add(store, "paused", retries=3)
    add(store, "live", retries=3)
    sid = slot_at(store, "paused", T0)
    live = slot_at(store, "live", T0)
    c = store.claim("n1", T0, T0 + MIN, 5)
    assert {x.slot.id for x in c} == {sid, live}
    assert store.set_paused("paused", True, T0, None)
    for x in c:  # both runs end waiting for a retry, after the pause
        store.finish_attempt(x.slot.id, x.attempt.id, "n1", retry_at(T0 + 5 * MIN), T0)
    # the paused task's ends failed as it was recorded, saying why no retry follows
    paused = store.get_slot(sid)
    assert paused is not None and paused.status is SlotStatus.FAILED
    assert paused.reason == PAUSED_WHILE_RUNNING and paused.next_attempt_at is None
    assert store.get_slot(live).status is SlotStatus.RETRYING  # type: ignore[union-attr]
    assert store.cancel_waiting_of_paused(T0 + MIN) == 0
    # one left waiting all the same (written by an older version) is cancelled
    with store._tx() as db:
        db.execute("UPDATE slots SET status = 'retrying', next_attempt_at = 0 WHERE id = ?", (sid,))
    assert store.cancel_waiting_of_paused(T0 + MIN) == 1
    paused = store.get_slot(sid)
    assert paused is not None and paused.status is SlotStatus.CANCELLED
    assert paused.reason == "task paused"
    assert store.cancel_waiting_of_paused(T0 + MIN) == 0


def test_a_run_triggered_by_hand_after_a_pause_is_not_cancelled(store: SQLStore) -> None:
    """The probe's case: `pause` then `trigger` said "queued; the daemon starts it within
    a few seconds", and the engine's look cancelled it ("task paused") unrun."""
    add(store, "job", retries=3)
    queued = slot_at(store, "job", T0)
    assert store.set_paused("job", True, T0, None)
    assert store.get_slot(queued).status is SlotStatus.CANCELLED  # type: ignore[union-attr]
    manual = store.add_slot("job", NewSlot(T0 + MIN, SlotStatus.PENDING, trigger="manual"), T0)
    assert manual is not None
    assert store.cancel_waiting_of_paused(T0 + MIN) == 0
    c = store.claim("n1", T0 + MIN, T0 + 2 * MIN, 5)
    assert [x.slot.id for x in c] == [manual.id]


def test_what_an_incident_told_is_kept_as_nothing_not_as_unknown(store: SQLStore) -> None:
    """``told``: () for an incident opened without a word (its end is not told), None for
    one saved before it was kept (read by the older rules)."""
    silent = Incident(task="u", kind=IncidentKind.FAILURE, opened_at=T0, told=())
    older = Incident(task="v", kind=IncidentKind.FAILURE, opened_at=T0)
    store.save_incidents([silent, older], [], T0)
    assert store.open_incidents("u")["failure"].told == ()
    assert store.open_incidents("v")["failure"].told is None


def test_a_fire_that_waited_is_left_to_its_tasks_next_fire_due_with_it(store: SQLStore) -> None:
    """A fire recorded that could not start (no room, a database that came and went)
    and the task's next fire due: the claim leaves it, and the newer fire, recorded
    next, displaces it; it ran first and the newer one was skipped behind it. Not a
    manual run, nor catch-up's backlog, nor a task with no next fire (a one-shot that
    fired: its whole test was NULL, and its retries were never claimed)."""
    add(store, "t", T0 + 10 * MIN)
    waiting = slot_at(store, "t", T0)
    assert store.claim("n1", T0 + 11 * MIN, T0 + 20 * MIN, 5) == []
    manual = store.add_slot("t", NewSlot(T0 + MIN, SlotStatus.PENDING, None, "manual"), T0)
    backlog = store.add_slot("t", NewSlot(T0 + 2 * MIN, SlotStatus.PENDING, None, "catchup"), T0)
    assert manual is not None and backlog is not None
    claimed = store.claim("n1", T0 + 11 * MIN, T0 + 20 * MIN, 5)
    assert [c.slot.id for c in claimed] == [manual.id]
    assert waiting not in {c.slot.id for c in claimed}


def test_a_one_shot_tasks_retry_is_claimed(store: SQLStore) -> None:
    """No next fire (a one-shot that fired): its retry is claimed when due."""
    add(store, "once", None, retries=3)
    sid = slot_at(store, "once", T0)
    first = claim_one(store, "n1")
    assert first.slot.id == sid
    store.finish_attempt(sid, first.attempt.id, "n1", retry_at(T0 + 5 * MIN), T0 + MIN)
    assert [c.slot.id for c in store.claim("n1", T0 + 6 * MIN, T0 + 20 * MIN, 5)] == [sid]


def test_a_retry_due_with_its_tasks_next_fire_is_left_to_that_fire(store: SQLStore) -> None:
    """Both due at once (a restart after a stop while the retry waited): the old retry
    ran first and the newer fire was then skipped behind it (outside-in probe). The
    claim leaves it: the fire, recorded next, supersedes it. A paused task's fire is
    not due; its retries are the pause's to cancel."""
    add(store, "t", T0 + 10 * MIN, retries=3)
    sid = slot_at(store, "t", T0)
    first = claim_one(store, "n1")
    store.finish_attempt(sid, first.attempt.id, "n1", retry_at(T0 + 5 * MIN), T0 + MIN)
    assert store.claim("n1", T0 + 11 * MIN, T0 + 20 * MIN, 5) == []
    assert [c.slot.id for c in store.claim("n1", T0 + 9 * MIN, T0 + 20 * MIN, 5)] == [sid]
