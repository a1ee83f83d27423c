"""``/metrics`` read with prometheus-client's own parser: after a known sequence of
runs (successes, failures after a retry, missed fires, skips), incidents and queued
messages, every value matches what the database recorded; the gauges read only
partial indexes; database errors of the scheduler are counted once each."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agentcron.clock import FakeClock
from agentcron.engine.health import Outage
from agentcron.interfaces.api.app import ApiSettings, create_app
from agentcron.metrics import Metrics
from agentcron.model import Message
from agentcron.model.incident import Incident, IncidentKind
from agentcron.ticks import TickRecorder
from harness import Harness

FINAL = ("succeeded", "failed", "skipped", "missed", "superseded", "expired", "cancelled")


def fine() -> str:
    return "fine"


def flaky() -> str:
    raise ConnectionError("upstream reset")  # network: transient, retried


def broken() -> str:
    raise RuntimeError("bug")  # code_error: not retried


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def by_label(
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str
) -> dict[tuple[str, ...], float]:
    return {
        tuple(v for _, v in labels): value for (n, labels), value in values.items() if n == name
    }


@pytest.fixture
def world(sqlite_store: Any, clock: FakeClock, home: Path) -> tuple[Harness, Metrics]:
    h = Harness(sqlite_store, clock, home)
    metrics = Metrics()
    metrics.attach(h.engine)
    h.engine.housekeeping.append(TickRecorder(sqlite_store, "test-node"))
    h.store.register_node(
        __import__("agentcron.model.run", fromlist=["NodeInfo"]).NodeInfo(
            "test-node", "host", 1, str(home), clock.now(), clock.now()
        )
    )
    h.add("ok", fine, every="5m", retries=0)
    h.add("flaky", flaky, every="10m", retries=1, retry_backoff={"base": "1s", "jitter": 0})
    h.add("bug", broken, cron="*/15 * * * *", retries=0)
    h.add("lagging", fine, every="5m", retries=0, catchup="latest")
    asyncio.run(h.run_until(clock.now() + timedelta(minutes=30), timedelta(seconds=30)))
    # the daemon was away for an hour: `lagging` and the others record missed fires
    clock.advance(timedelta(hours=1))
    asyncio.run(h.tick())
    asyncio.run(h.run_until(clock.now() + timedelta(minutes=10), timedelta(seconds=30)))
    return h, metrics


def db_rows(h: Harness, sql: str) -> list[tuple[Any, ...]]:
    db: sqlite3.Connection = h.store._db  # type: ignore[attr-defined]
    return db.execute(sql).fetchall()


def test_counters_and_gauges_match_the_database(world: tuple[Harness, Metrics]) -> None:
    h, metrics = world
    now = h.clock.now()
    h.store.save_incidents(
        [
            Incident(task="bug", kind=IncidentKind.FAILURE, opened_at=now),
            Incident(task="ok", kind=IncidentKind.OVERDUE, opened_at=now),
            Incident(task="flaky", kind=IncidentKind.OVERDUE, opened_at=now),
        ],
        [],
        now,
    )
    message = Message(
        title="t", body="b", task="bug", event="opened", incident_kind="failure", severity="failure"
    )
    h.store.enqueue("json://a", "json://a", message, now - timedelta(seconds=90))
    h.store.enqueue("json://a", "json://a", message, now)
    pending = h.service.trigger("ok")  # recorded, not run: waiting
    app = create_app(lambda: h.service, ApiSettings(close_service=False, metrics=metrics))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    values = samples(response.text)

    expected_slots = {  # labels in name order: status, task
        (status, task): n
        for task, status, n in db_rows(
            h, "SELECT task, status, COUNT(*) FROM slots GROUP BY task, status"
        )
        if status in FINAL
    }
    assert {s for s, _ in expected_slots} >= {"succeeded", "failed", "missed"}
    assert by_label(values, "agentcron_slots_total") == expected_slots

    attempts = Counter(  # labels in name order: error_class, task
        {
            (cls or "none", task): n
            for task, cls, n in db_rows(
                h,
                "SELECT s.task, a.error_class, COUNT(*) FROM attempts a JOIN slots s "
                "ON s.id = a.slot_id WHERE a.finished_at IS NOT NULL GROUP BY 1, 2",
            )
        }
    )
    assert {c for c, _ in attempts} >= {"none", "network", "code_error"}
    assert by_label(values, "agentcron_attempts_total") == dict(attempts)
    total_attempts = sum(attempts.values())
    assert values[("agentcron_run_duration_seconds_count", ())] == total_attempts
    per_task = by_label(values, "agentcron_task_run_duration_seconds_count")
    assert sum(per_task.values()) == total_attempts
    scheduled_first = db_rows(
        h,
        "SELECT COUNT(*) FROM attempts a JOIN slots s ON s.id = a.slot_id "
        "WHERE a.number = 1 AND s.trigger IN ('schedule', 'catchup') "
        "AND a.finished_at IS NOT NULL",
    )[0][0]
    assert values[("agentcron_fire_lateness_seconds_count", ())] == scheduled_first

    last_success = {
        task: at
        for task, at in db_rows(
            h,
            "SELECT task, MAX(finished_at) FROM slots WHERE status = 'succeeded' GROUP BY task",
        )
    }
    assert by_label(values, "agentcron_last_success_timestamp_seconds") == {
        (task,): pytest.approx(at) for task, at in last_success.items()
    }
    assert values[("agentcron_runs_in_progress", ())] == 0
    waiting = by_label(values, "agentcron_slots_waiting")
    in_db = dict(
        db_rows(
            h,
            "SELECT status, COUNT(*) FROM slots WHERE status IN ('pending', 'retrying') "
            "GROUP BY status",
        )
    )
    assert in_db.get("pending", 0) >= 1  # the manual run
    assert waiting == {
        ("pending",): in_db.get("pending", 0),
        ("retrying",): in_db.get("retrying", 0),
    }
    assert h.store.get_slot(pending["id"]) is not None
    incidents = by_label(values, "agentcron_open_incidents")
    assert incidents[("failure",)] == 1 and incidents[("overdue",)] == 2
    assert sum(incidents.values()) == 3 and len(incidents) == len(IncidentKind)
    assert values[("agentcron_outbox_backlog", ())] == 2
    assert values[("agentcron_outbox_oldest_age_seconds", ())] == pytest.approx(90)
    assert by_label(values, "agentcron_deliveries") == {
        ("pending",): 0,
        ("retrying",): 0,
        ("failed",): 0,
    }
    tick = h.store.last_ticks()["test-node"]
    assert values[("agentcron_daemon_last_tick_timestamp_seconds", ())] == tick.timestamp()
    assert by_label(values, "agentcron_database_errors_total") == {
        ("api",): 0,
        ("metrics",): 0,
        ("scheduler",): 0,
    }


def test_gauges_read_only_partial_indexes(world: tuple[Harness, Metrics]) -> None:
    """Every statement a scrape runs, captured and explained: none walks the slots,
    attempts or incidents tables, nor a full index of them."""
    h, _ = world
    db: sqlite3.Connection = h.store._db  # type: ignore[attr-defined]
    seen: list[str] = []
    db.set_trace_callback(seen.append)
    try:
        h.service.gauges()
    finally:
        db.set_trace_callback(None)
    statements = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(statements) >= 6
    history = ("slots", "incidents", "outbox", "attempts", "deliveries")
    for sql in statements:
        plan = " | ".join(str(r[-1]) for r in db.execute(f"EXPLAIN QUERY PLAN {sql}"))
        for step in plan.split(" | "):
            words = step.split()
            if words[:1] == ["SCAN"] and words[1] in history:
                assert "USING" in step and "INDEX" in step, (sql, plan)
        partial = (
            "slots_running",
            "slots_runnable",
            "incidents_open",
            "outbox_queue",
            "deliveries_due",
        )
        if any(f"FROM {table}" in sql for table in history):
            assert any(name in plan for name in partial), (sql, plan)


def test_last_success_is_read_once_then_kept_by_the_listeners(
    world: tuple[Harness, Metrics],
) -> None:
    h, metrics = world
    metrics.bind(h.service)
    calls = 0
    real = h.service.last_success_times

    def counted() -> dict[str, datetime]:
        nonlocal calls
        calls += 1
        return real()

    h.service.last_success_times = counted  # type: ignore[method-assign]
    first = by_label(samples(metrics.render().decode()), "agentcron_last_success_timestamp_seconds")
    h.clock.advance(timedelta(minutes=5))
    asyncio.run(h.tick())
    second = by_label(
        samples(metrics.render().decode()), "agentcron_last_success_timestamp_seconds"
    )
    assert calls == 1
    assert second[("ok",)] > first[("ok",)]
    assert second[("ok",)] == pytest.approx(h.store.last_success("ok").finished_at.timestamp())  # type: ignore[union-attr]


def test_scheduler_database_errors_are_counted_once_each() -> None:
    """Sampled at each scrape and told at an outage's start and end: a failure seen
    twice counts once, one never scraped is counted when the outage ends."""
    health = SimpleNamespace(outage=None)
    engine = SimpleNamespace(
        batch_listeners=[], slot_listeners=[], on_outage=[], on_recovery=[], health=health
    )
    metrics = Metrics()
    metrics.attach(engine)  # type: ignore[arg-type]

    def errors() -> float:
        text = metrics.render().decode()
        return by_label(samples(text), "agentcron_database_errors_total")[("scheduler",)]

    since = datetime(2026, 6, 1, tzinfo=UTC)
    health.outage = Outage(since=since, failures=3, error="locked", database=True)
    assert errors() == 3
    assert errors() == 3
    health.outage = Outage(since=since, failures=5, error="locked", database=True)
    assert errors() == 5
    for listener in engine.on_recovery:
        listener(Outage(since=since, failures=7, error="x", database=True), since, None)
    health.outage = None
    assert errors() == 7
    later = since + timedelta(minutes=5)
    health.outage = Outage(since=later, failures=2, error="gone", database=True)
    assert errors() == 9
    health.outage = Outage(since=later, failures=4, error="bug", database=False)
    assert errors() == 9  # not the database's


def test_a_scrape_during_a_database_outage_still_answers(world: tuple[Harness, Metrics]) -> None:
    _, metrics = world

    class Away:
        def gauges(self) -> Any:
            raise sqlite3.OperationalError("database is locked")

        def failed_deliveries(self) -> int:
            return 0

        def last_success_times(self) -> dict[str, datetime]:
            return {}

    metrics.bind(Away())
    values = samples(metrics.render().decode())
    assert by_label(values, "agentcron_database_errors_total")[("metrics",)] == 1
    assert by_label(values, "agentcron_slots_total")  # the counters are still there
    assert ("agentcron_runs_in_progress", ()) not in values


def test_possible_duplicate_messages_are_counted_per_channel(
    world: tuple[Harness, Metrics],
) -> None:
    """A message handed out again after a sender died between the channel's OK and its
    record (issue 17 §3) shows as agentcron_outbox_resent_total, per channel."""
    h, metrics = world
    db: sqlite3.Connection = h.store._db  # type: ignore[attr-defined]
    db.execute(
        "INSERT INTO channels (channel_key, resent) VALUES ('json://hook', 2) "
        "ON CONFLICT (channel_key) DO UPDATE SET resent = 2"
    )
    metrics.bind(h.service)
    got = by_label(samples(metrics.render().decode()), "agentcron_outbox_resent_total")
    assert got == {("json://hook",): 2.0}, got


def test_a_failing_channel_shows_as_down(world: tuple[Harness, Metrics]) -> None:
    """While a channel fails, problems do not reach the owner through it: the one thing
    an outside alert on agentcron must see (it was not on /metrics)."""
    from agentcron.model import Message

    h, metrics = world
    now = h.clock.now()
    message = Message(
        title="t", body="b", task="", event="opened", incident_kind="", severity="info"
    )
    h.store.enqueue("json://hook", "json://hook", message, now)
    metrics.bind(h.service)
    [item] = h.store.claim_outbox("n1", now, now + timedelta(minutes=1), 10)
    h.store.mark_failed(item.id, "connection refused", now + timedelta(seconds=30), False, now)
    got = by_label(samples(metrics.render().decode()), "agentcron_channel_up")
    assert got == {("json://hook",): 0.0}, got
    [item] = h.store.claim_outbox("n1", now + timedelta(minutes=1), now + timedelta(minutes=2), 10)
    h.store.mark_sent(item.id, now + timedelta(minutes=1))
    got = by_label(samples(metrics.render().decode()), "agentcron_channel_up")
    assert got == {("json://hook",): 1.0}, got


def test_a_removed_tasks_last_success_leaves_the_scrape(world: tuple[Harness, Metrics]) -> None:
    """Its series stayed until the daemon restarted, and an alert on its age fired for
    a task that no longer exists (outside-in probe). Removed tasks are looked for every
    PRUNE_EVERY seconds of the scrapes."""
    from agentcron.metrics import PRUNE_EVERY

    h, metrics = world
    now = [1000.0]
    metrics._monotonic = lambda: now[0]
    metrics.bind(h.service)
    name = "agentcron_last_success_timestamp_seconds"
    assert ("ok",) in by_label(samples(metrics.render().decode()), name)
    h.service.remove("ok")
    now[0] += PRUNE_EVERY
    left = by_label(samples(metrics.render().decode()), name)
    assert ("ok",) not in left and ("lagging",) in left


def test_catch_up_runs_count_as_late_fires_and_manual_runs_do_not() -> None:
    """A daemon that stalled shows in the lateness histogram (outside-in probe: catch-up
    runs were left out, and an 82 s stall kept every observation under 0.1 s)."""
    from agentcron.model import SlotStatus, TaskSpec
    from agentcron.model.records import Slot
    from agentcron.model.run import AttemptOutcome, Finished

    metrics = Metrics()
    spec = TaskSpec.model_validate({"name": "t", "every": "10s", "command": ["true"]})
    due = datetime(2026, 12, 4, 22, 18, 50, tzinfo=UTC)
    outcome = AttemptOutcome(ok=True, slot_status=SlotStatus.SUCCEEDED)
    for trigger, late in (("catchup", 82.0), ("manual", 500.0), ("schedule", 0.01)):
        slot = Slot(1, "t", due, SlotStatus.RUNNING, trigger=trigger)
        started = due + timedelta(seconds=late)
        metrics.on_finished(Finished(slot, spec, 1, outcome, None, "", started, started))
    values = samples(generate_latest(metrics.registry).decode())
    assert values[("agentcron_fire_lateness_seconds_count", ())] == 2
    assert values[("agentcron_fire_lateness_seconds_sum", ())] == pytest.approx(82.01)
