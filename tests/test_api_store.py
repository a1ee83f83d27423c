"""The interfaces' store calls (``ApiSQL``) behave the same on SQLite and PostgreSQL:
pause reasons, each task's newest final run and newest success, paged history with
a cursor, incidents open first and acknowledged once, the audit trail, each node's
last tick, and the live counts of /metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentcron.model import (
    AttemptOutcome,
    Message,
    NewSlot,
    NodeInfo,
    SlotStatus,
    TaskSource,
    TaskSpec,
)
from agentcron.model.incident import Incident, IncidentKind
from agentcron.store._api_sql import AuditEntry, SlotQuery
from agentcron.store.sql import SQLStore

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def add(store: SQLStore, name: str) -> None:
    spec = TaskSpec(name=name, every=timedelta(minutes=1), command=["true"])
    store.upsert_task(spec, TaskSource.API, T0, T0 + timedelta(minutes=1))  # slots recorded


def final(store: SQLStore, task: str, at: datetime, status: SlotStatus) -> int:
    slot = store.add_slot(task, NewSlot(at, status, reason="r"), at)
    assert slot is not None
    return slot.id


def run_to_success(store: SQLStore, task: str, at: datetime) -> int:
    slot = store.add_slot(task, NewSlot(at), at)
    assert slot is not None
    (claim,) = [c for c in store.claim("node", at, at + timedelta(minutes=1), 10)]
    outcome = AttemptOutcome(ok=True, slot_status=SlotStatus.SUCCEEDED)
    assert store.finish_attempt(claim.slot.id, claim.attempt.id, "node", outcome, at)
    return slot.id


def test_pause_reason_and_latest_runs(store: SQLStore) -> None:
    add(store, "a")
    add(store, "b")
    ok = run_to_success(store, "a", T0)
    failed = final(store, "a", T0 + timedelta(minutes=1), SlotStatus.FAILED)
    store.add_slot("a", NewSlot(T0 + timedelta(minutes=2)), T0)  # waiting: not "last"
    store.set_pause_reason("b", "maintenance")
    latest = store.task_latest()
    assert latest["a"].last is not None and latest["a"].last.id == failed
    assert latest["a"].last_success is not None and latest["a"].last_success.id == ok
    assert latest["b"].last is None and latest["b"].pause_reason == "maintenance"
    assert set(store.task_latest(["b"])) == {"b"}
    assert store.last_success_times()["a"] == T0


def test_history_pages_with_filters_and_a_cursor(store: SQLStore) -> None:
    add(store, "a")
    ids = [
        final(
            store,
            "a",
            T0 + timedelta(minutes=i),
            SlotStatus.SKIPPED if i % 2 else SlotStatus.MISSED,
        )
        for i in range(7)
    ]
    pages: list[int] = []
    cursor = None
    while True:
        page = store.slots_page(SlotQuery(task="a", limit=3, cursor=cursor))
        pages += [s.id for s in page]
        if len(page) < 3:
            break
        cursor = (page[-1].scheduled_for, page[-1].id)
    assert pages == list(reversed(ids))
    skipped = store.slots_page(SlotQuery(statuses=[SlotStatus.SKIPPED], limit=100))
    assert [s.id for s in skipped] == [ids[5], ids[3], ids[1]]
    window = store.slots_page(
        SlotQuery(since=T0 + timedelta(minutes=2), before=T0 + timedelta(minutes=4), limit=100)
    )
    assert [s.id for s in window] == [ids[3], ids[2]]


def test_incidents_open_first_and_acknowledged_once(store: SQLStore) -> None:
    old, new = store.save_incidents(
        [
            Incident(task="a", kind=IncidentKind.FAILURE, opened_at=T0),
            Incident(task="a", kind=IncidentKind.STUCK, opened_at=T0 + timedelta(minutes=1)),
        ],
        [],
        T0,
    )
    from dataclasses import replace

    store.save_incidents([replace(new, closed_at=T0 + timedelta(minutes=2))], [], T0)
    assert [i.id for i in store.incidents_page()] == [old.id, new.id]
    assert [i.id for i in store.incidents_page(open_only=True)] == [old.id]
    assert [i.id for i in store.incidents_page(kind="stuck")] == [new.id]
    assert old.id is not None
    first = store.acknowledge_incident(old.id, "ana", T0 + timedelta(minutes=5))
    again = store.acknowledge_incident(old.id, "bob", T0 + timedelta(minutes=9))
    assert first is not None and again is not None
    assert (again.acknowledged_by, again.acknowledged_at) == ("ana", T0 + timedelta(minutes=5))
    assert store.acknowledge_incident(424242, "ana", T0) is None


def test_audit_trail_newest_first(store: SQLStore) -> None:
    for i, action in enumerate(("task.create", "task.pause", "task.resume")):
        store.add_audit(
            AuditEntry(
                at=T0 + timedelta(seconds=i),
                actor="ana",
                via="api",
                action=action,
                task="a" if i < 2 else "b",
                before={"paused": False} if i else None,
                after={"paused": True, "reason": "ü"},
            )
        )
    entries = store.audit_entries()
    assert [e.action for e in entries] == ["task.resume", "task.pause", "task.create"]
    assert entries[1].before == {"paused": False} and entries[1].after["reason"] == "ü"
    assert entries[2].before is None and entries[2].at == T0
    assert [e.action for e in store.audit_entries(task="a")] == ["task.pause", "task.create"]
    older = store.audit_entries(before_id=entries[0].id, limit=1)
    assert [e.action for e in older] == ["task.pause"]


def test_ticks_are_kept_per_live_node(store: SQLStore) -> None:
    for node in ("n1", "n2"):
        store.register_node(NodeInfo(node, "h", 1, "/home", T0, T0))
    store.record_tick("n1", T0)
    store.record_tick("n2", T0 + timedelta(seconds=5))
    store.record_tick("n1", T0 + timedelta(seconds=10))
    assert store.last_ticks() == {"n1": T0 + timedelta(seconds=10), "n2": T0 + timedelta(seconds=5)}
    store.stop_node("n2", T0)
    store.prune_records(T0, T0, T0 + timedelta(days=1), T0 - timedelta(days=1))
    assert "n2" not in {n.node_id for n in store.nodes()}
    store.record_tick("n1", T0 + timedelta(seconds=15))  # a gone node's tick goes too
    assert store.last_ticks() == {"n1": T0 + timedelta(seconds=15)}


def test_live_counts(store: SQLStore) -> None:
    add(store, "a")
    store.add_slot("a", NewSlot(T0), T0)
    store.add_slot("a", NewSlot(T0 + timedelta(minutes=1)), T0)
    store.claim("node", T0, T0 + timedelta(minutes=1), 1)
    store.save_incidents([Incident(task="a", kind=IncidentKind.OVERDUE, opened_at=T0)], [], T0)
    message = Message(
        title="t", body="b", task="a", event="opened", incident_kind="overdue", severity="failure"
    )
    store.enqueue("k", "json://x", message, T0 - timedelta(seconds=30))
    counts = store.live_counts()
    assert counts.running == 1 and counts.waiting == {"pending": 1}
    assert counts.open_incidents == {"overdue": 1}
    assert counts.outbox_backlog == 1 and counts.outbox_oldest == T0 - timedelta(seconds=30)
    assert counts.deliveries == {} and store.failed_deliveries() == 0


def test_the_tick_recorder_tidies_other_nodes_entries_every_ten_minutes_not_each_time() -> None:
    """Issue 16: an idle daemon wrote the clean-up statement at every beat."""
    from datetime import UTC, datetime, timedelta

    from agentcron.ticks import TickRecorder

    calls: list[bool] = []

    class Store:
        def record_tick(self, node_id: str, at: datetime, tidy: bool = True) -> None:
            calls.append(tidy)

    recorder = TickRecorder(Store(), "n1")  # type: ignore[arg-type]
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    for seconds in (0, 6, 12, 600, 606):
        recorder(t0 + timedelta(seconds=seconds))
    assert calls == [True, False, False, True, False]
