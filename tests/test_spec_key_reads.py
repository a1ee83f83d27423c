"""Stored specs read by key in the database (store/_spec_sql.py) give what parsing
each whole spec gave, on SQLite and PostgreSQL: the task list (same rows, same words,
same health), each task's retention settings and the smallest ``overdue_after``; a
stored spec that cannot be read is an error naming the task, never skipped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.model import (
    AttemptOutcome,
    ErrorClass,
    NewSlot,
    NodeInfo,
    SlotStatus,
    TaskSource,
    TaskSpec,
)
from agentcron.model.incident import Incident, IncidentKind
from agentcron.retention import keep_rule, keep_rules
from agentcron.service import NotFoundError, Service
from agentcron.store.errors import StoreError
from agentcron.store.sql import SQLStore
from agentcron.watchdog.limits import OverdueLimits

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


SPECS: list[dict[str, Any]] = [
    {"name": "cron-utc", "cron": "5 4 * * *", "timezone": "UTC", "command": ["true"]},
    {"name": "cron-zone", "cron": "0 9 * * 1-5", "timezone": "Europe/Berlin", "python": "m:f"},
    {"name": "every", "every": "90m", "command": "echo hi", "shell": True, "keep_history": None},
    {"name": "every-anchor", "every": "2d", "anchor": "2030-01-01T01:01:00", "command": ["x"]},
    {"name": "at-aware", "at": "2026-06-01T10:00:00+02:00", "http": {"url": "https://e.x/"}},
    {"name": "at-naive", "at": "2026-07-01T10:00:00", "timezone": "Asia/Tokyo", "command": ["a"]},
    {
        "name": "llm",
        "every": "1h",
        "llm": {"base_url": "https://api.x/v1", "model": "m", "prompt": "p" * 5000},
        "description": "Writes a story, 'quoted' and ünïcödé",
        "keep_history": "2d",
        "empty_output_streak": 7,
    },
    {"name": "overdue-set", "every": "1m", "command": ["true"], "overdue_after": "8s"},
    {"name": "overdue-small", "every": "1m", "command": ["true"], "overdue_after": "0.5s"},
    {"name": "paused", "every": "1m", "command": ["true"], "paused": True, "overdue_after": "2s"},
    {"name": "stuck", "every": "1h", "command": ["true"], "stuck_after": "10m"},
    {"name": "retrying", "every": "1h", "command": ["true"], "retries": 4},
    {"name": "failed", "cron": "*/5 * * * *", "command": ["true"]},
    {"name": "incident", "every": "1h", "command": ["true"]},
    {"name": "late", "cron": "0 * * * *", "command": ["true"]},
]


def fill(store: SQLStore) -> None:
    for raw in SPECS:
        spec = TaskSpec.model_validate(raw)
        nxt = None if spec.paused else T0 + timedelta(hours=1)
        if spec.name in ("late", "overdue-set"):
            nxt = T0 - timedelta(hours=3)  # due long ago, no slot: overdue
        store.upsert_task(spec, TaskSource.FILE if "cron" in raw else TaskSource.API, T0, nxt)
    store.set_paused("paused", True, T0, None)
    store.set_pause_reason("paused", "maintenance")
    # a scheduler ticks (on another host): with none, no task would be `ok`
    store.register_node(NodeInfo("n1", "elsewhere", 1, "/other", T0, T0))
    store.record_tick("n1", T0)
    # a run in progress for an hour (stuck), one waiting for its retry, one that failed
    early = T0 - timedelta(hours=1)
    store.add_slot("stuck", NewSlot(early), early)
    assert len(store.claim("node", early, T0 + timedelta(hours=1), 10)) == 1
    store.add_slot("retrying", NewSlot(T0 - timedelta(minutes=5)), T0)
    for claim in store.claim("node", T0, T0 + timedelta(hours=1), 10):
        if claim.slot.task == "retrying":
            outcome = AttemptOutcome(
                ok=False,
                slot_status=SlotStatus.RETRYING,
                error_class=ErrorClass.TIMEOUT,
                next_attempt_at=T0 + timedelta(minutes=1),
            )
            store.finish_attempt(claim.slot.id, claim.attempt.id, "node", outcome, T0)
    store.add_slot("failed", NewSlot(T0 - timedelta(minutes=5), SlotStatus.FAILED, "boom"), T0)
    skips = Incident(task="incident", kind=IncidentKind.SKIP_STREAK, opened_at=T0, summary="3 x")
    store.save_incidents([skips], [], T0)


def set_spec(store: SQLStore, name: str, text: str) -> None:
    with store._tx() as db:
        db.execute("UPDATE tasks SET spec = ? WHERE name = ?", (text, name))


def edit(store: SQLStore, name: str, **changes: Any) -> None:
    """Rewrite one stored spec's JSON (keys set, or dropped when the value is ...)."""
    rec = store.get_task(name)
    assert rec is not None
    data = json.loads(rec.spec.model_dump_json(by_alias=True))
    for key, value in changes.items():
        if value is ...:
            data.pop(key)
        else:
            data[key] = value
    set_spec(store, name, json.dumps(data))


def test_the_list_is_what_parsing_every_spec_gave(store: SQLStore, home: Path) -> None:
    fill(store)
    service = Service(store, home, clock=FakeClock(T0))
    listed = service.list_tasks()
    whole = [service._task_view(rec) for rec in store.list_tasks()]  # every spec parsed
    assert listed == whole
    health = {row["name"]: row["health"] for row in listed}
    assert health["stuck"] == "stuck" and health["retrying"] == "retrying"
    assert health["late"] == "overdue" and health["overdue-set"] == "overdue"
    assert health["failed"] == "failing" and health["incident"] == "skipping"
    assert health["paused"] == "paused" and health["cron-utc"] == "ok"
    assert {r["schedule"] for r in listed} >= {
        "every 1 hour 30 min",
        "at 2026-06-01T10:00:00+02:00",
    }
    assert service.list_tasks(text="ÜNÏCÖDÉ") == [r for r in whole if r["name"] == "llm"]
    assert service.list_tasks(source="file") == [r for r in whole if r["source"] == "file"]
    assert service.list_tasks(health="overdue,paused") == [
        r for r in whole if r["health"] in ("overdue", "paused")
    ]


def test_a_quiet_task_in_the_list_parses_no_spec(store: SQLStore) -> None:
    fill(store)
    rows = {r.name: r for r in store.task_listing()}
    assert rows["cron-utc"]._spec is None  # loaded only when read
    assert rows["cron-utc"].spec == store.get_task("cron-utc").spec  # type: ignore[union-attr]


def test_retention_settings_and_the_smallest_limit_match_the_parsed_specs(
    store: SQLStore,
) -> None:
    fill(store)
    # a spec written before these keys existed: their defaults, as parsing gives
    edit(store, "every-anchor", keep_history=..., empty_output_streak=..., overdue_after=...)
    records = store.list_tasks()
    assert store.keep_settings() == {
        r.name: (r.spec.keep_history, r.spec.empty_output_streak) for r in records
    }
    assert store.keep_settings()["every"] == (None, 3)  # explicit null: keep all
    assert store.keep_settings()["every-anchor"] == (timedelta(days=90), 3)
    assert keep_rules(store, T0) == {r.name: keep_rule(r.spec, T0) for r in records}
    unpaused = [r.spec.overdue_after for r in records if not r.paused and r.spec.overdue_after]
    assert store.smallest_overdue_after() == min(unpaused) == timedelta(seconds=0.5)
    limits = OverdueLimits(store, lambda spec: timedelta(minutes=1))
    assert limits.smallest(T0) == timedelta(seconds=1)  # the floor, as before


def test_no_limit_set_reads_as_none(store: SQLStore) -> None:
    store.upsert_task(
        TaskSpec(name="a", every=timedelta(minutes=1), command=["true"]), TaskSource.API, T0, T0
    )
    assert store.smallest_overdue_after() is None
    assert store.task_listing()[0].action_kind == "command"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "task 'broken'"),
        ('{"name": "broken", "every": "soon", "command": ["x"]}', "every: Value error"),
        ('{"name": "broken", "every": 60, "timezone": "Mars/Base", "command": ["x"]}', "Mars"),
        ('{"name": "broken", "every": 60}', "no action"),
        ('{"name": "broken", "command": ["x"]}', "exactly one schedule"),
        ('{"name": "broken", "every": 60, "command": ["x"], "description": 5}', "description"),
    ],
)
def test_a_bad_stored_spec_in_a_listed_key_names_the_task(
    store: SQLStore, home: Path, text: str, words: str
) -> None:
    fill(store)
    add_broken(store, text)
    with pytest.raises(StoreError, match="task 'broken'") as caught:
        Service(store, home, clock=FakeClock(T0)).list_tasks()
    assert words in str(caught.value)


def add_broken(store: SQLStore, text: str) -> None:
    spec = TaskSpec(name="broken", every=timedelta(minutes=1), command=["x"])
    store.upsert_task(spec, TaskSource.API, T0, T0 + timedelta(hours=1))
    set_spec(store, "broken", text)


@pytest.mark.parametrize(
    ("change", "reader"),
    [
        ({"keep_history": "forever"}, "keep_settings"),
        ({"empty_output_streak": -2}, "keep_settings"),
        ({"overdue_after": [1]}, "smallest_overdue_after"),
    ],
)
def test_a_bad_derived_key_names_the_task(
    store: SQLStore, change: dict[str, Any], reader: str
) -> None:
    fill(store)
    edit(store, "cron-utc", **change)
    key = next(iter(change))
    with pytest.raises(StoreError, match=f"task 'cron-utc'.*{key}"):
        getattr(store, reader)()


def test_a_spec_that_is_not_json_is_named_by_every_key_reader(store: SQLStore) -> None:
    fill(store)
    set_spec(store, "llm", '{"name": "llm", "every": ')
    for reader in (store.keep_settings, store.smallest_overdue_after, store.task_listing):
        with pytest.raises(StoreError, match="task 'llm': its stored spec cannot be read"):
            reader()


def test_a_bad_key_the_list_does_not_show_is_named_when_the_task_is_read(
    store: SQLStore, home: Path
) -> None:
    """The list reads only the keys it shows; the whole spec is still validated by
    every reader of it (show, the engine), with the task's name."""
    fill(store)
    edit(store, "cron-utc", retries="many")
    service = Service(store, home, clock=FakeClock(T0))
    assert len(service.list_tasks()) == len(SPECS)
    with pytest.raises(StoreError, match=r"task 'cron-utc'.*retries"):
        service.show_task("cron-utc")
    with pytest.raises(StoreError, match=r"task 'cron-utc'.*retries"):
        store.list_tasks()


def test_a_spec_the_databases_json_cannot_hold_is_still_read(store: SQLStore, home: Path) -> None:
    """PostgreSQL's jsonb refuses ``\\u0000``, which a command argument may hold: the
    readers fall back to reading the whole spec here, and answer the same."""
    fill(store)
    spec = TaskSpec(name="nul", every=timedelta(hours=2), command=["printf", "a\x00b"])
    store.upsert_task(spec, TaskSource.API, T0, T0 + timedelta(hours=1))
    records = store.list_tasks()
    service = Service(store, home, clock=FakeClock(T0))
    assert service.list_tasks() == [service._task_view(rec) for rec in records]
    assert store.keep_settings()["nul"] == (timedelta(days=90), 3)
    assert store.smallest_overdue_after() == timedelta(seconds=0.5)


def test_notify_urls_and_names_are_what_reading_every_spec_gave(
    store: SQLStore, home: Path
) -> None:
    lists = {"b": ["tgram://1", "ntfy://x"], "a": ["ntfy://x", "mailto://m"], "c": None}
    lists |= {"d": ["mailto://m", "json://h", "json://h"], "e": ["ntfy://x", "mailto://m"]}
    for name, urls in lists.items():
        spec = TaskSpec(name=name, every=timedelta(hours=1), command=["x"], notify=urls)
        store.upsert_task(spec, TaskSource.API, T0, T0)
    expected = ["slack://g"]
    for rec in store.list_tasks():
        for url in rec.spec.notify or []:
            if url not in expected:
                expected.append(url)
    service = Service(store, home, clock=FakeClock(T0))
    assert service.channel_urls(["slack://g"]) == expected
    assert expected == ["slack://g", "ntfy://x", "mailto://m", "tgram://1", "json://h"]
    assert store.task_names() == ["a", "b", "c", "d", "e"]
    with pytest.raises(NotFoundError, match="did you mean 'a'"):
        service.show_task("aa")


def test_with_no_scheduler_what_waits_for_one_is_not_firing(store: SQLStore, home: Path) -> None:
    """A retry, a run said to be in progress and a fire all need a ticking scheduler:
    with none they are not_firing (a run "in progress" died with its daemon); what
    already happened (failed, overdue, paused) keeps its word."""
    fill(store)
    store.stop_node("n1", T0)  # the scheduler that ticked is gone
    service = Service(store, home, clock=FakeClock(T0))
    health = {row["name"]: row["health"] for row in service.list_tasks()}
    assert health["stuck"] == health["retrying"] == health["cron-utc"] == "not_firing"
    assert health["failed"] == "failing" and health["late"] == "overdue"
    assert health["paused"] == "paused"
