"""History retention (``keep_history``): what goes, what must stay, on SQLite and PostgreSQL.

Every test plants runs the way the engine records them (a slot claimed, its attempt
finished with an output file, deliveries for successes), at chosen days of a fake
calendar, then prunes at a fixed ``now`` and asserts exactly which rows and files
remain. The PostgreSQL runs skip (with the reason) where no server answers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcron.interfaces.cli import app
from agentcron.model import (
    AttemptOutcome,
    DeliveryStatus,
    Incident,
    IncidentKind,
    Message,
    NewSlot,
    NodeInfo,
    SlotStatus,
    TaskSource,
    TaskSpec,
)
from agentcron.retention import PruneReport, default_keep_history, prune_history, prune_outputs
from agentcron.store.sql import SQLStore
from agentcron.store.sqlite import SQLiteStore
from conftest import PG_DSN, require_pg

DAY0 = datetime(2025, 1, 1, 3, 0, tzinfo=UTC)
NOW = DAY0 + timedelta(days=200)
OWNER = "node-test"
TARGET = ("json://localhost/hook", "json://localhost/hook")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStore]:
    if request.param == "postgres":
        require_pg()
        from agentcron.store.postgres import PostgresStore
        from pg_util import drop_schema, new_schema_name

        schema = new_schema_name()
        s: SQLStore = PostgresStore(PG_DSN, schema=schema)
        try:
            yield s
        finally:
            s.close()
            drop_schema(schema)
    else:
        s = SQLiteStore(tmp_path / "agentcron.db")
        yield s
        s.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    (h / "outputs").mkdir(parents=True)
    return h


def day(n: float) -> datetime:
    return DAY0 + timedelta(days=n)


def add_task(store: SQLStore, name: str, source: TaskSource = TaskSource.API, **kw: Any) -> None:
    spec = TaskSpec(name=name, every="1d", command=["true"], **kw)
    store.upsert_task(spec, source, DAY0, None)


def run(
    store: SQLStore,
    home: Path,
    task: str,
    at: float,
    status: SlotStatus = SlotStatus.SUCCEEDED,
    deliver: bool = False,
) -> int:
    """One run of ``task`` due on day ``at``: claimed, one attempt, finished a minute
    later with an output file (and a delivery when asked). Returns the slot id."""
    when = day(at)
    slot = store.add_slot(task, NewSlot(when), when)
    assert slot is not None
    claims = store.claim(OWNER, when, when + timedelta(hours=1), 10)
    assert [c.slot.id for c in claims] == [slot.id]
    path = home / "outputs" / task / f"{at:g}-s{slot.id}-a1.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"output of day {at}\n")
    outcome = AttemptOutcome(
        ok=status is SlotStatus.SUCCEEDED,
        slot_status=status,
        output_path=str(path),
        deliver_to=(TARGET,) if deliver else (),
    )
    assert store.finish_attempt(
        slot.id, claims[0].attempt.id, OWNER, outcome, when + timedelta(minutes=1)
    )
    return slot.id


def deliver(store: SQLStore, slot_id: int, status: DeliveryStatus) -> None:
    (d,) = store.deliveries(slot_id)
    store.update_delivery(d.id, status, 1, None, None, NOW - timedelta(days=150))


def slot_days(store: SQLStore, task: str) -> list[float]:
    """The days of ``task``'s remaining slots, oldest first."""
    rows = store.slots(task, limit=10_000)
    return sorted(round((s.scheduled_for - DAY0) / timedelta(days=1), 3) for s in rows)


def outputs(home: Path, task: str) -> set[str]:
    folder = home / "outputs" / task
    return {p.name.split("-")[0] for p in folder.iterdir()} if folder.is_dir() else set()


def count(store: SQLStore, table: str) -> int:
    return int(store._q(f"SELECT COUNT(*) FROM {table}")[0][0])


def message(n: int) -> Message:
    return Message(
        title=f"t{n}",
        body="b",
        task="a",
        event="opened",
        incident_kind="failure",
        severity="failure",
    )


# ---- the scenario ------------------------------------------------------------------------
def plant(store: SQLStore, home: Path) -> dict[str, int]:
    """History of several tasks; keep_history 90d unless said. Returns slot ids of note."""
    ids: dict[str, int] = {}
    # a: old runs go; one old success whose delivery is still pending stays, recent ones stay
    add_task(store, "a")
    for d in range(10):
        run(store, home, "a", d, SlotStatus.SUCCEEDED if d % 2 else SlotStatus.FAILED)
    ids["a_undelivered"] = run(store, home, "a", 10, deliver=True)
    ids["a_delivered"] = run(store, home, "a", 11, deliver=True)
    deliver(store, ids["a_delivered"], DeliveryStatus.DELIVERED)
    for d in (150, 151, 152):
        run(store, home, "a", d)
    # b keeps a long history: nothing of it is old enough
    add_task(store, "b", keep_history="400d")
    for d in range(6):
        run(store, home, "b", d)
    # c keeps a day, but its 3 newest final runs stay whatever their age
    add_task(store, "c", keep_history="1d")
    for d in (195, 196, 197, 198, 199.5):
        run(store, home, "c", d)
    # d stopped succeeding long ago: its last success stays with its 3 newest runs
    add_task(store, "d")
    run(store, home, "d", 0)
    run(store, home, "d", 1)
    for d in (2, 3, 4, 5):
        run(store, home, "d", d, SlotStatus.FAILED)
    # e keeps its 5 newest (empty_output_streak 5), all old
    add_task(store, "e", empty_output_streak=5)
    for d in range(8):
        run(store, home, "e", d)
    # gone: removed from the config; the default keep_history applies
    add_task(store, "gone")
    for d in range(5):
        run(store, home, "gone", d)
    store.remove_task("gone", day(6))
    # keep: keep_history null keeps everything
    add_task(store, "keep", keep_history=None)
    for d in range(4):
        run(store, home, "keep", d)
    # active slots stay whatever their age: one waiting, one running
    store.add_slot("a", NewSlot(day(20)), day(20))
    add_task(store, "busy")
    store.add_slot("busy", NewSlot(day(21)), day(21))
    (busy,) = store.claim("node-busy", day(21), NOW + timedelta(hours=1), 1)
    ids["busy"] = busy.slot.id
    return ids


EXPECTED_DAYS = {
    "a": [10.0, 20.0, 150.0, 151.0, 152.0],
    "b": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
    "c": [197.0, 198.0, 199.5],
    "d": [1.0, 3.0, 4.0, 5.0],
    "e": [3.0, 4.0, 5.0, 6.0, 7.0],
    "gone": [2.0, 3.0, 4.0],
    "keep": [0.0, 1.0, 2.0, 3.0],
    "busy": [21.0],
}
REMOVED_RUNS = 10 + 1 + 2 + 2 + 3 + 2  # a (10 old + the delivered one), c, d, e, gone


def test_prune_removes_exactly_what_is_past_keep_history(store: SQLStore, home: Path) -> None:
    ids = plant(store, home)
    before_attempts = count(store, "attempts")

    report = prune_history(store, home, NOW)

    assert {t: slot_days(store, t) for t in EXPECTED_DAYS} == EXPECTED_DAYS
    assert report.slots == REMOVED_RUNS
    assert report.attempts == REMOVED_RUNS  # one attempt each
    assert count(store, "attempts") == before_attempts - REMOVED_RUNS
    # the delivered delivery went with its slot; the pending one stays with its slot
    assert report.deliveries == 1
    assert [d.slot_id for d in store.deliveries()] == [ids["a_undelivered"]]
    assert store.get_slot(ids["busy"]) is not None
    # output files: those of removed runs are gone, every other one is still there
    assert report.files == REMOVED_RUNS
    for task, days in EXPECTED_DAYS.items():
        assert outputs(home, task) == {f"{d:g}" for d in days if d not in (20.0, 21.0)}
    # the slots of every attempt left still exist (nothing orphaned)
    orphans = store._q("SELECT COUNT(*) FROM attempts WHERE slot_id NOT IN (SELECT id FROM slots)")
    assert orphans[0][0] == 0
    # a second pass finds nothing more
    again = prune_history(store, home, NOW)
    assert again.slots == again.files == again.attempts == 0


def test_dry_run_counts_the_same_and_changes_nothing(store: SQLStore, home: Path) -> None:
    plant(store, home)
    tables = ("slots", "attempts", "deliveries", "outbox", "incidents", "nodes")
    before = {t: count(store, t) for t in tables}
    files = sorted(p for p in (home / "outputs").rglob("*") if p.is_file())

    dry = prune_history(store, home, NOW, dry_run=True, batch=4)

    assert {t: count(store, t) for t in tables} == before
    assert sorted(p for p in (home / "outputs").rglob("*") if p.is_file()) == files
    real = prune_history(store, home, NOW, batch=4)
    assert dry.dry_run and not real.dry_run
    assert (dry.slots, dry.attempts, dry.deliveries, dry.files) == (
        real.slots,
        real.attempts,
        real.deliveries,
        real.files,
    )
    assert real.slots == REMOVED_RUNS


def test_batches_smaller_than_the_history_remove_all_of_it(store: SQLStore, home: Path) -> None:
    add_task(store, "many")
    for d in range(23):
        run(store, home, "many", d)
    run(store, home, "many", 150)

    report = prune_history(store, home, NOW, batch=5)

    # 23 old runs, 5 per transaction: 5 batches; the newest 3 final runs stay
    assert report.batches == 5
    assert report.slots == 21
    assert slot_days(store, "many") == [21.0, 22.0, 150.0]
    assert outputs(home, "many") == {"21", "22", "150"}


def test_store_batches_are_committed_one_by_one(store: SQLStore, home: Path) -> None:
    from agentcron.store._prune_sql import KeepRule

    add_task(store, "many")
    for d in range(12):
        run(store, home, "many", d)
    rule = KeepRule(cutoff=NOW - timedelta(days=90), keep_last=1)
    sizes = []
    for done in store.prune_slots({}, rule, batch=4):
        sizes.append(done.slots)
        # what was yielded is already gone for any reader
        assert len(store.slots("many", limit=100)) == 12 - sum(sizes)
    assert sizes == [4, 4, 3]


def test_default_keep_history_from_config_governs_removed_tasks(
    store: SQLStore, home: Path
) -> None:
    add_task(store, "gone")
    for d in range(6):
        run(store, home, "gone", d)
    store.remove_task("gone", day(7))

    kept = prune_history(store, home, NOW, default_keep=timedelta(days=365))
    assert kept.slots == 0
    forever = prune_history(store, home, NOW, default_keep=None)
    assert forever.slots == 0
    pruned = prune_history(store, home, NOW, default_keep=timedelta(days=90))
    assert pruned.slots == 3
    assert slot_days(store, "gone") == [3.0, 4.0, 5.0]


def test_outbox_incidents_and_nodes(store: SQLStore, home: Path) -> None:
    old, recent = day(50), NOW - timedelta(days=10)
    sent_old = store.enqueue("k", "json://x", message(1), old)
    store.mark_sent(sent_old, old)
    given_up = store.enqueue("k", "json://x", message(2), old)
    store.mark_failed(given_up, "bad", None, True, old)
    queued_old = store.enqueue("k", "json://x", message(3), old)
    sent_recent = store.enqueue("k", "json://x", message(4), recent)
    store.mark_sent(sent_recent, recent)

    incident = Incident(task="a", kind=IncidentKind.FAILURE, opened_at=old)
    closed_old, open_old, closed_recent = store.save_incidents(
        [
            replace(incident, closed_at=old),
            replace(incident, kind=IncidentKind.OVERDUE),
            replace(incident, closed_at=recent),
        ],
        [],
        old,
    )

    def node(node_id: str, beat: datetime, stopped: bool) -> None:
        store.register_node(NodeInfo(node_id, "h", 1, str(home), beat, beat))
        if stopped:
            store.stop_node(node_id, beat)

    node("stopped-2d", NOW - timedelta(days=2), True)
    node("stopped-1h", NOW - timedelta(hours=1), True)
    node("silent-8d", NOW - timedelta(days=8), False)
    node("silent-8d-holding-a-run", NOW - timedelta(days=8), False)
    node("alive", NOW - timedelta(seconds=5), False)
    add_task(store, "t")
    store.add_slot("t", NewSlot(NOW), NOW)
    assert store.claim("silent-8d-holding-a-run", NOW, NOW + timedelta(minutes=1), 1)

    dry = prune_history(store, home, NOW, dry_run=True)
    assert (dry.outbox, dry.incidents, dry.nodes) == (2, 1, 2)
    report = prune_history(store, home, NOW, batch=1)
    assert (report.outbox, report.incidents, report.nodes) == (2, 1, 2)

    left = {int(r[0]) for r in store._q("SELECT id FROM outbox")}
    assert left == {queued_old, sent_recent}
    assert {i.id for i in store.incidents(limit=10)} == {open_old.id, closed_recent.id}
    assert closed_old.id not in {i.id for i in store.incidents(limit=10)}
    assert {n.node_id for n in store.nodes()} == {
        "stopped-1h",
        "silent-8d-holding-a-run",
        "alive",
    }


def test_an_open_incident_keeps_the_slot_it_points_to(store: SQLStore, home: Path) -> None:
    add_task(store, "a")
    pointed = run(store, home, "a", 0, SlotStatus.FAILED)
    for d in range(1, 6):
        run(store, home, "a", d, SlotStatus.FAILED)
    store.save_incidents(
        [Incident(task="a", kind=IncidentKind.OVERDUE, opened_at=day(0), slot_id=pointed)],
        [],
        day(0),
    )
    prune_history(store, home, NOW)
    assert slot_days(store, "a") == [0.0, 3.0, 4.0, 5.0]


def test_every_statement_uses_an_index_on_sqlite(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read prune makes (dry run: the same reads as a real pass, without the
    writes) and the selects inside its deletes, explained on a planted database: no
    table of history is scanned whole, nothing is sorted."""
    store = SQLiteStore(tmp_path / "plan.db")
    try:
        plant(store, home)
        seen: list[tuple[str, tuple[Any, ...]]] = []
        real_q = store._q

        def spy(sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
            seen.append((sql, tuple(params)))
            return real_q(sql, params)

        monkeypatch.setattr(store, "_q", spy)
        prune_history(store, home, NOW, dry_run=True)
        monkeypatch.undo()
        removable = (
            "SELECT id FROM slots WHERE id IN (?, ?) AND status NOT IN "
            "('pending', 'running', 'retrying')"
        )
        seen += [
            (removable, (1, 2)),
            (
                "SELECT id FROM outbox WHERE (sent_at IS NOT NULL OR permanent = 1) "
                "AND created_at < ? LIMIT ?",
                (1.0, 5),
            ),
            (
                "SELECT id FROM incidents WHERE closed_at IS NOT NULL AND closed_at < ? LIMIT ?",
                (1.0, 5),
            ),
            (
                "SELECT id FROM incidents WHERE task = ? AND opened_at < ? "
                "AND closed_at IS NOT NULL AND closed_at < ? LIMIT ?",
                ("a", 1.0, 1.0, 5),
            ),
        ]
        history = ("slots", "attempts", "deliveries", "outbox", "incidents")
        for sql, params in seen:
            if "FROM tasks" in sql:
                continue  # list_tasks: one row per task, read whole by design
            plan = [str(r[3]) for r in store._q(f"EXPLAIN QUERY PLAN {sql}", params)]
            for step in plan:
                assert step not in {f"SCAN {t}" for t in history}, (sql, plan)
                assert "TEMP B-TREE" not in step, (sql, plan)
        assert len(seen) > 20
    finally:
        store.close()


def test_keep_history_is_validated_and_defaults_to_90_days() -> None:
    from agentcron.config.errors import ConfigError
    from agentcron.config.loader import validate_task_mapping

    assert TaskSpec(name="t", every="1h", command=["true"]).keep_history == timedelta(days=90)
    spec = validate_task_mapping("t", {"every": "1h", "command": ["true"]}, {"keep_history": "2w"})
    assert spec.keep_history == timedelta(days=14)
    with pytest.raises(ConfigError, match="keep_history must be at least 1h"):
        validate_task_mapping("t", {"every": "1h", "command": ["true"], "keep_history": "10m"})
    with pytest.raises(ConfigError, match="not a duration"):
        validate_task_mapping("t", {"every": "1h", "command": ["true"], "keep_history": "soon"})
    assert default_keep_history(None) == timedelta(days=90)
    assert default_keep_history({"keep_history": "30d"}) == timedelta(days=30)
    assert default_keep_history({"keep_history": None}) is None


def test_keep_outputs_pruning_still_works_beside_history(home: Path, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "o.db")
    try:
        add_task(store, "a", keep_outputs="1d")
        run(store, home, "a", 0)
        run(store, home, "a", 1)
        stale = NOW.timestamp() - 2 * 86400
        for path in (home / "outputs" / "a").iterdir():
            os.utime(path, (stale, stale))
        assert prune_outputs(home, store.get_task, set(), now=NOW.timestamp()) == 2
        # history pruning then finds the rows' files already gone and says so
        assert prune_history(store, home, NOW, default_keep=timedelta(days=90)).files == 0
    finally:
        store.close()


def test_keep_outputs_leaves_pending_deliveries_the_newest_success_and_what_links_lead_to(
    store: SQLStore, home: Path, tmp_path: Path
) -> None:
    """Outside-in probe: with ``keep_outputs`` past, the newest success's file went
    (``context: previous`` then ran with none, health ok); files of pending deliveries
    went once 10,000 newer delivery rows hid them; and a task folder that was a link
    led the pruning to a file outside the home."""
    add_task(store, "a", keep_outputs="1d")
    undelivered = run(store, home, "a", 0, deliver=True)  # pending, whatever its age
    run(store, home, "a", 1)
    newest = run(store, home, "a", 2)  # context: previous hands this one on
    run(store, home, "a", 3, SlotStatus.FAILED)
    elsewhere = tmp_path / "mine"
    elsewhere.mkdir()
    precious = elsewhere / "precious.txt"
    precious.write_text("not agentcron's")
    add_task(store, "linked", keep_outputs="1d")
    (home / "outputs" / "linked").symlink_to(elsewhere, target_is_directory=True)
    stale = NOW.timestamp() - 30 * 86400
    for path in [*(home / "outputs" / "a").iterdir(), precious]:
        os.utime(path, (stale, stale))
    keep = store.outputs_to_keep()
    paths = {sid: store.get_slot(sid).output_path for sid in (undelivered, newest)}  # type: ignore[union-attr]
    assert keep == set(paths.values()), keep
    assert prune_outputs(home, store.get_task, keep, now=NOW.timestamp()) == 2
    left = {str(p) for p in (home / "outputs" / "a").iterdir()}
    assert left == set(paths.values())
    assert precious.read_text() == "not agentcron's"
    deliver(store, undelivered, DeliveryStatus.DELIVERED)
    assert store.outputs_to_keep() == {paths[newest]}


def test_report_shape() -> None:
    report = PruneReport(dry_run=True, slots=2, files=1)
    assert report.total == 3
    assert set(report.as_dict()) == {
        "dry_run",
        "slots",
        "attempts",
        "deliveries",
        "files",
        "outbox",
        "incidents",
        "nodes",
        "audit",
        "batches",
        "unremoved",
    }


# ---- the CLI -----------------------------------------------------------------------------
CONFIG = """
defaults: {keep_history: 30d}
tasks:
  story: {every: 1d, command: ["true"]}
"""


def test_cli_prune_dry_run_then_prune(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    monkeypatch.setenv("AGENTCRON_HOME", str(home))
    (tmp_path / "agentcron.yaml").write_text(CONFIG)
    store = SQLiteStore(home / "agentcron.db")
    try:
        add_task(store, "story", TaskSource.FILE, keep_history="30d")  # the file's task
        # runs 100 and more days before the real now: past the file's 30 days
        recent = datetime.now(UTC) - timedelta(days=100)
        for n in range(5):
            when = recent + timedelta(days=n)
            slot = store.add_slot("story", NewSlot(when, SlotStatus.FAILED), when)
            assert slot is not None
    finally:
        store.close()
    runner = CliRunner()

    dry = runner.invoke(app, ["prune", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["slots"] == 2 and json.loads(dry.output)["dry_run"] is True
    text = runner.invoke(app, ["prune", "--dry-run"])
    assert text.exit_code == 0, text.output
    assert "would remove" in text.output and "2  runs" in text.output

    done = runner.invoke(app, ["prune", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["slots"] == 2
    again = runner.invoke(app, ["prune", "--dry-run", "--json"])
    assert json.loads(again.output)["slots"] == 0
    # a pruned run's id says so (it read like a wrong number); one never used does not
    gone = runner.invoke(app, ["logs", "1"])
    assert gone.exit_code == 1 and "no run with id 1 any more" in gone.output, gone.output
    assert "keep_history" in gone.output
    never = runner.invoke(app, ["logs", "99"])
    assert "no run with id 99; `agentcron runs` lists them" in never.output


def test_a_file_retention_cannot_delete_is_named_by_prune_and_told_once_by_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside-in probe: an output file that could not be deleted (an immutable file)
    was only logged: `prune` exited 0 and counted it as if gone, the run's row went
    and the file stayed for good, and the daemon told no one."""
    import asyncio

    from agentcron.daemon import Daemon, DaemonOptions

    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    monkeypatch.setenv("AGENTCRON_HOME", str(home))
    (tmp_path / "agentcron.yaml").write_text('notify: ["json://127.0.0.1:9/owner"]\n' + CONFIG)
    store = SQLiteStore(home / "agentcron.db")
    try:
        add_task(store, "story", TaskSource.FILE, keep_history="30d")  # the file's task
        for n in range(5):  # 100 days and more ago, each with an output file
            run(store, home, "story", -100 + n)
    finally:
        store.close()
    stuck = sorted((home / "outputs" / "story").iterdir())[0]
    unlink = Path.unlink

    def refuse(self: Path, missing_ok: bool = False) -> None:
        if self == stuck:
            raise PermissionError(1, "Operation not permitted", str(self))
        unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    done = CliRunner().invoke(app, ["prune"])
    assert done.exit_code == 1, done.output
    assert "1 output file(s) could not be deleted" in done.stderr
    assert f"{stuck}: Operation not permitted" in done.stderr
    assert stuck.exists()

    daemon = Daemon(DaemonOptions(config_path=tmp_path / "agentcron.yaml", home=home))
    queued: list[str] = []

    async def scenario() -> None:
        await daemon.start()
        try:
            assert daemon.store is not None
            save = daemon.store.save_incidents

            def noted(changed: Any, messages: Any, now: Any) -> Any:
                queued.extend(m[2].body for m in messages)
                return save(changed, messages, now)

            daemon.store.save_incidents = noted  # type: ignore[method-assign]
            daemon._tell_unremoved([f"{stuck}: Operation not permitted"])
            daemon._tell_unremoved([f"{stuck}: Operation not permitted"])  # once
        finally:
            await daemon.close()

    asyncio.run(scenario())
    (told,) = queued
    assert "could not delete 1 output file(s) past their retention" in told
    assert str(stuck) in told


def test_cli_prune_refuses_an_invalid_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "home"))
    (tmp_path / "agentcron.yaml").write_text("defaults: {keep_history: 5m}\ntasks: {}\n")
    result = CliRunner().invoke(app, ["prune"])
    assert result.exit_code == 1
    assert "keep_history" in result.output


def test_a_keep_history_beyond_the_calendar_keeps_everything(store: SQLStore, home: Path) -> None:
    add_task(store, "a", keep_history="1000000w")
    for d in range(5):
        run(store, home, "a", d)
    report = prune_history(store, home, NOW, default_keep=timedelta(weeks=1_000_000))
    assert report.total == 0
    assert slot_days(store, "a") == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_the_audit_trail_is_pruned_with_the_history(store: SQLStore, home: Path) -> None:
    """Soak probe: nothing removed audit entries, and each `agentcron prune` (or a
    trigger by an agent on a schedule) added one for good. They follow the
    `keep_history` of `defaults:` (90 days by default), as closed incidents do."""
    from agentcron.store._api_sql import AuditEntry

    for age in (200, 120, 91, 89, 1):
        store.add_audit(AuditEntry(NOW - timedelta(days=age), "me", "cli", "task.trigger", "a"))
    dry = prune_history(store, home, NOW, dry_run=True)
    assert dry.audit == 3 and len(store.audit_entries(limit=100)) == 5
    report = prune_history(store, home, NOW)
    assert report.audit == 3 and report.as_dict()["audit"] == 3
    kept = sorted((NOW - e.at).days for e in store.audit_entries(limit=100))
    assert kept == [1, 89]
    assert prune_history(store, home, NOW, default_keep=None).audit == 0  # None keeps all
    if isinstance(store, SQLiteStore):
        plan = " ".join(
            str(r[-1])
            for r in store._q("EXPLAIN QUERY PLAN SELECT id FROM audit WHERE at < ? LIMIT 5", (0,))
        )
        assert "audit_at" in plan, plan  # not a scan of the whole trail


def test_closed_incidents_follow_their_own_tasks_keep_history(store: SQLStore, home: Path) -> None:
    """Soak probe: a flapping task opens an incident per failure (about 850 an hour),
    and its closed ones stayed for the 90 days of `defaults:` whatever its own
    `keep_history` said. Each task's closed incidents now follow its own; a task no
    longer in the config follows `defaults:`; open incidents always stay."""
    add_task(store, "short", keep_history="1d")
    add_task(store, "plain")  # 90 days
    add_task(store, "forever", keep_history=None)
    ages = (300, 120, 2, 0.5)

    def plant(task: str, with_open: bool = True) -> None:
        closed = [
            Incident(
                task=task,
                kind=IncidentKind.FAILURE,
                opened_at=NOW - timedelta(days=age, hours=1),
                closed_at=NOW - timedelta(days=age),
            )
            for age in ages
        ]
        still_open = Incident(task=task, kind=IncidentKind.OVERDUE, opened_at=NOW - timedelta(400))
        store.save_incidents([*closed, still_open] if with_open else closed, [], NOW)

    for task in ("short", "plain", "forever", "removed"):
        plant(task)

    def left(task: str) -> list[float | None]:
        return sorted(
            ((NOW - i.closed_at).total_seconds() / 86400 if i.closed_at else -1.0)
            for i in store.incidents(task, limit=100)
        )

    dry = prune_history(store, home, NOW, dry_run=True)
    assert dry.incidents == 3 + 2 + 0 + 2 and len(store.incidents(limit=100)) == 20
    report = prune_history(store, home, NOW)
    assert report.incidents == 7
    assert left("short") == [-1.0, 0.5]
    assert left("plain") == [-1.0, 0.5, 2.0]
    assert left("forever") == [-1.0, 0.5, 2.0, 120.0, 300.0]
    assert left("removed") == [-1.0, 0.5, 2.0]
    # with `defaults:` keeping everything, a task's own keep_history still applies
    plant("short", with_open=False)
    assert prune_history(store, home, NOW, default_keep=None).incidents == 3
    assert left("short") == [-1.0, 0.5, 0.5]
    assert left("plain") == [-1.0, 0.5, 2.0]


def test_a_tasks_incidents_are_read_through_their_index(tmp_path: Path) -> None:
    """The flapping rule reads a task's last incidents at each failure: through the time
    index filtered by task, a quiet task beside 300,000 closed incidents of a flapping
    one took 136 ms, on the loop."""
    store = SQLiteStore(tmp_path / "plan.db")
    try:
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        store.incidents("quiet", limit=50)
        store._db.set_trace_callback(None)
        (select,) = [t for t in statements if "FROM incidents" in t]
        plan = " ".join(str(r[-1]) for r in store._q(f"EXPLAIN QUERY PLAN {select}"))
        assert "incidents_task" in plan and "SCAN incidents" not in plan, plan
    finally:
        store.close()
