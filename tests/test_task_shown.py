"""The keys a task list shows, written beside each spec (the ``shown_*`` columns of
migration 12), on SQLite and PostgreSQL: every writer fills them; a spec changed by
anything else clears them, so the list then reads the spec itself and never shows what
a task no longer says; a database of the version before gets them filled when it is
opened, and a spec there that cannot be read is still named by the list."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.model import TaskSource, TaskSpec
from agentcron.model.budget import Budget
from agentcron.service import Service
from agentcron.store.errors import StoreError
from agentcron.store.migrations import APP_ID, SHOWN_VERSION, statements
from agentcron.store.sql import SQLStore
from conftest import PG_DSN, require_pg

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a store is opened: a SQLite path, or a PostgreSQL schema (dropped after)."""
    if request.param == "sqlite":
        yield str(tmp_path / "agentcron.db")
        return
    require_pg()
    from pg_util import drop_schema, new_schema_name

    schema = new_schema_name()
    try:
        yield f"pg:{schema}"
    finally:
        drop_schema(schema)


def open_store(where: str) -> SQLStore:
    if where.startswith("pg:"):
        from agentcron.store.postgres import PostgresStore

        return PostgresStore(PG_DSN, schema=where[3:])
    from agentcron.store.sqlite import SQLiteStore

    return SQLiteStore(Path(where))


@pytest.fixture
def store(backend: str) -> Iterator[SQLStore]:
    s = open_store(backend)
    yield s
    s.close()


def spec(name: str, **extra: Any) -> TaskSpec:
    return TaskSpec.model_validate(
        {"name": name, "every": "1h", "command": ["true"], "timezone": "Europe/Berlin", **extra}
    )


def shown_of(store: SQLStore) -> dict[str, str | None]:
    return {str(name): of for name, of in store._q("SELECT name, shown_of FROM tasks")}


def listed(store: SQLStore, home: Path) -> list[dict[str, Any]]:
    return Service(store, home, clock=FakeClock(T0)).list_tasks()


def parsed(store: SQLStore, home: Path) -> list[dict[str, Any]]:
    """The list as parsing every whole spec gives it (no daemon here: not firing)."""
    service = Service(store, home, clock=FakeClock(T0))
    not_firing = service.firing().problem
    return [service._task_view(rec, not_firing) for rec in store.list_tasks()]


def hand_edit(store: SQLStore, name: str, **changes: Any) -> None:
    """Rewrite a stored spec as a person (or a tool) with the database open would."""
    rec = store.get_task(name)
    assert rec is not None
    data = json.loads(rec.spec.model_dump_json(by_alias=True)) | changes
    with store._tx() as db:
        db.execute("UPDATE tasks SET spec = ? WHERE name = ?", (json.dumps(data), name))


def test_every_writer_writes_the_shown_keys(store: SQLStore, home: Path) -> None:
    store.upsert_task(spec("one", description="first"), TaskSource.API, T0, T0)
    store.upsert_many([(spec("two", cron="5 4 * * *", every=None), T0)], TaskSource.CODE, T0)
    store.sync_file_tasks([spec("three", http={"url": "https://e.x/"}, command=None)], T0, {})
    assert all(of is not None for of in shown_of(store).values())
    before = shown_of(store)
    # a change through each writer: a new digest with the new spec
    store.upsert_task(spec("one", description="changed"), TaskSource.API, T0, T0)
    store.upsert_many([(spec("two", cron="6 4 * * *", every=None), T0)], TaskSource.CODE, T0)
    store.sync_file_tasks([spec("three", http={"url": "https://e.y/"}, command=None)], T0, {})
    after = shown_of(store)
    assert all(after[n] is not None and after[n] != before[n] for n in before)
    rows = listed(store, home)
    assert rows == parsed(store, home)
    assert [(r["name"], r["schedule"], r["action"], r["description"]) for r in rows] == [
        ("one", "every 1 hour", "command", "changed"),
        ("three", "every 1 hour", "http", None),
        ("two", "6 4 * * *", "command", None),
    ]


def test_tasks_due_at_one_instant_show_it_each_in_its_own_zone(store: SQLStore, home: Path) -> None:
    """The list writes each (next fire, zone) once and reuses it: a task in another
    zone at the same instant gets its own words, and the list is what a task's own
    view says."""
    zones = ["Europe/Berlin", "Asia/Tokyo", "UTC", "Europe/Berlin"]
    store.upsert_many(
        [(spec(f"t{i}", timezone=zone), T0 + timedelta(hours=1)) for i, zone in enumerate(zones)],
        TaskSource.API,
        T0,
    )
    rows = listed(store, home)
    assert [r["next_run"] for r in rows] == [
        "2026-06-01T15:00:00+02:00",
        "2026-06-01T22:00:00+09:00",
        "2026-06-01T13:00:00+00:00",
        "2026-06-01T15:00:00+02:00",
    ]
    assert rows == parsed(store, home)


def test_a_change_that_keeps_the_shown_keys_keeps_them_written(store: SQLStore) -> None:
    store.upsert_task(spec("one"), TaskSource.API, T0, T0)
    first = shown_of(store)["one"]
    store.upsert_task(spec("one", retries=7), TaskSource.API, T0, T0)
    assert shown_of(store)["one"] not in (None, first)


def test_a_spec_changed_by_hand_is_listed_as_it_now_says(store: SQLStore, home: Path) -> None:
    store.upsert_task(spec("one"), TaskSource.API, T0, T0)
    store.upsert_task(spec("two"), TaskSource.API, T0, T0)
    hand_edit(
        store,
        "one",
        timezone="Asia/Tokyo",
        description="by hand",
        budget={"runs_per_day": 5},
    )
    assert shown_of(store)["one"] is None and shown_of(store)["two"] is not None
    rows = {r["name"]: r for r in listed(store, home)}
    assert rows["one"]["timezone"] == "Asia/Tokyo" and rows["one"]["description"] == "by hand"
    assert [b["runs_per_day"] for b in rows["one"]["budget"]] == [5]
    assert list(rows.values()) == parsed(store, home)
    # agentcron's own next write of it writes the keys again
    store.upsert_task(spec("one", description="again"), TaskSource.API, T0, T0)
    assert shown_of(store)["one"] is not None
    assert listed(store, home) == parsed(store, home)


def test_a_budget_of_its_own_is_listed_whether_known_from_the_columns_or_not(
    store: SQLStore, home: Path
) -> None:
    store.upsert_task(spec("own", budget=Budget(runs_per_day=3)), TaskSource.API, T0, T0)
    store.upsert_task(spec("none"), TaskSource.API, T0, T0)
    assert {r.name: r.budgeted for r in store.task_listing()} == {"none": False, "own": True}
    rows = {r["name"]: r["budget"] for r in listed(store, home)}
    assert rows["none"] == [] and [b["runs_per_day"] for b in rows["own"]] == [3]


# ---- a database written by the version before ------------------------------------
def old_database(where: str, specs: dict[str, str]) -> None:
    """A database at the version before migration 12, holding tasks as that version
    wrote them (``specs``: name -> stored text)."""
    dialect = "postgresql" if where.startswith("pg:") else "sqlite"
    stmts = [s for i in range(SHOWN_VERSION - 1) for s in statements(i, dialect)]
    stmts += [
        f"INSERT INTO meta (key, value) VALUES ('app', '{APP_ID}')",
        f"INSERT INTO meta (key, value) VALUES ('schema_version', '{SHOWN_VERSION - 1}')",
    ]
    rows = [
        (name, "api", text, "k", "skip", 0, T0.timestamp() + 3600, T0.timestamp(), T0.timestamp())
        for name, text in specs.items()
    ]
    insert = (
        "INSERT INTO tasks (name, source, spec, schedule_key, overlap, paused, next_fire_at, "
        "created_at, updated_at) VALUES ({})"
    )
    if dialect == "sqlite":
        with sqlite3.connect(where) as db:
            for stmt in stmts:
                db.execute(stmt)
            db.executemany(insert.format(", ".join("?" * 9)), rows)
        return
    import psycopg

    from pg_util import admin_execute

    admin_execute(stmts, schema=where[3:])
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{where[3:]}"')
        with conn.cursor() as cur:
            cur.executemany(insert.format(", ".join(["%s"] * 9)), rows)


def test_opening_a_database_of_the_version_before_fills_the_shown_keys(
    backend: str, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = {n: spec(n, description=f"task {n}").model_dump_json() for n in ("a", "b", "c")}
    old_database(backend, good)
    with caplog.at_level("INFO", logger="agentcron.store._api_sql"):
        store = open_store(backend)
    assert "copied the listed keys of 3 task(s)" in caplog.text
    try:
        assert all(of is not None for of in shown_of(store).values())
        assert len(shown_of(store)) == 3
        assert listed(store, home) == parsed(store, home)
    finally:
        store.close()


def test_a_spec_that_cannot_be_read_stays_unfilled_and_is_named_by_the_list(
    backend: str, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    specs = {"a": spec("a").model_dump_json(), "broken": '{"name": "broken", "every": 60}'}
    old_database(backend, specs)
    with caplog.at_level("WARNING", logger="agentcron.store._api_sql"):
        store = open_store(backend)  # the rest of the database opens and is filled
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert any(lvl == "WARNING" and "task 'broken'" in m and "no action" in m for lvl, m in said)
    assert any(lvl == "ERROR" and "1 task(s)" in m and "broken" in m for lvl, m in said), said
    try:
        assert shown_of(store) == {"a": shown_of(store)["a"], "broken": None}
        assert shown_of(store)["a"] is not None
        with pytest.raises(StoreError, match=r"task 'broken'.*no action"):
            listed(store, home)
    finally:
        store.close()


def test_the_smallest_overdue_after_is_read_from_copies_and_from_hand_edited_specs(
    store: SQLStore,
) -> None:
    store.upsert_task(spec("a", overdue_after="30s"), TaskSource.API, T0, T0)
    store.upsert_task(spec("b", overdue_after="10s", paused=True), TaskSource.API, T0, T0)
    store.upsert_task(spec("c"), TaskSource.API, T0, T0)
    assert store.smallest_overdue_after() == timedelta(seconds=30)  # b is paused
    hand_edit(store, "c", overdue_after=12.5)  # its copy is cleared: read from its spec
    assert store.smallest_overdue_after() == timedelta(seconds=12.5)
    hand_edit(store, "a", overdue_after=None)
    hand_edit(store, "c", overdue_after="soon")
    with pytest.raises(StoreError, match=r"task 'c'.*overdue_after"):
        store.smallest_overdue_after()


def test_a_database_of_the_version_before_gets_its_overdue_after_copied(backend: str) -> None:
    old_database(
        backend,
        {
            "a": spec("a", overdue_after="45s").model_dump_json(),
            "b": spec("b").model_dump_json(),
        },
    )
    store = open_store(backend)
    try:
        assert all(of is not None for of in shown_of(store).values())
        copies = dict(store._q("SELECT name, shown_overdue_after FROM tasks"))
        assert copies == {"a": 45.0, "b": None}
        assert store.smallest_overdue_after() == timedelta(seconds=45)
    finally:
        store.close()
