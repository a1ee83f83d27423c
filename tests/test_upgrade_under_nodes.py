"""No schema upgrade under a node of an older agentcron that still runs on the database.

Outside-in probe (two versions on one database): `agentcron health --db PATH` of the new
version upgraded the database of an older daemon running on it and said ✔; a new daemon
of another home did the same beside it; and a new PostgreSQL node upgraded the schema
under an older node, which went on without a word (the new node then did none of the
work). Whoever opens a database of an older schema first looks in its nodes table."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcron.interfaces.cli import app
from agentcron.store import StoreError, open_store
from agentcron.store.migrations import APP_ID, SCHEMA_VERSION, statements
from agentcron.store.upgrade_guard import LIVE_WITHIN
from conftest import PG_DSN, require_pg
from pg_util import admin_execute, drop_schema, dsn_with_schema, new_schema_name

OLDER = SCHEMA_VERSION - 1
OTHER_HOST = "build-7.example"


def _older(dialect: str) -> list[str]:
    """A database as the version before this one left it: its tables and its meta."""
    return [s for i in range(OLDER) for s in statements(i, dialect)] + [
        f"INSERT INTO meta (key, value) VALUES ('app', '{APP_ID}')",
        f"INSERT INTO meta (key, value) VALUES ('schema_version', '{OLDER}')",
    ]


def _node(node_id: str, host: str, pid: int, heard_ago: float, stopped: bool = False) -> str:
    now = time.time()
    stopped_at = str(now - heard_ago) if stopped else "NULL"
    return (
        "INSERT INTO nodes (node_id, host, pid, home, started_at, heartbeat_at, stopped_at) "
        f"VALUES ('{node_id}', '{host}', {pid}, '/srv/agentcron', {now - 3600}, "
        f"{now - heard_ago}, {stopped_at})"
    )


def _sqlite_older(path: Path, *nodes: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        for stmt in [*_older("sqlite"), *nodes]:
            db.execute(stmt)


def _sqlite_version(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        (value,) = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(value)


def test_a_command_naming_the_file_refuses_to_upgrade_it_under_a_running_node(
    tmp_path: Path,
) -> None:
    db = tmp_path / "shared.db"
    _sqlite_older(db, _node(f"{OTHER_HOST}:4242:ab12cd34", OTHER_HOST, 4242, heard_ago=3))
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "--db", str(db), "health"])
    assert result.exit_code != 0, result.output
    said = " ".join(result.output.split())
    assert f"is at schema {OLDER} and an older agentcron still runs on it" in said, said
    assert f"node {OTHER_HOST}:4242:ab12cd34 (host {OTHER_HOST}, pid 4242" in said
    assert "Nothing was changed" in said and "Stop every node of the older version" in said
    assert _sqlite_version(db) == OLDER


def test_a_daemon_of_another_home_refuses_it_too(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    _sqlite_older(db, _node("n1", OTHER_HOST, 4242, heard_ago=10))
    with pytest.raises(StoreError, match="an older agentcron still runs on it"):
        open_store(str(db), tmp_path / "home2", daemon=True)
    assert _sqlite_version(db) == OLDER


@pytest.mark.parametrize(
    "node",
    [
        _node("gone", OTHER_HOST, 4242, heard_ago=LIVE_WITHIN + 5),  # not heard from since
        _node("stopped", OTHER_HOST, 4242, heard_ago=1, stopped=True),  # stopped cleanly
        _node("dead", socket.gethostname(), 2**22 + 7, heard_ago=1),  # killed, this machine
    ],
)
def test_nodes_that_no_longer_run_do_not_hold_the_upgrade_back(tmp_path: Path, node: str) -> None:
    db = tmp_path / "shared.db"
    _sqlite_older(db, node)
    open_store(str(db), tmp_path / "home").close()
    assert _sqlite_version(db) == SCHEMA_VERSION


@pytest.mark.postgres
def test_a_new_postgresql_node_refuses_to_upgrade_under_an_older_one() -> None:
    require_pg()
    schema = new_schema_name()
    try:
        admin_execute([*_older("postgresql"), _node("old-a", OTHER_HOST, 4242, 2)], schema)
        with pytest.raises(StoreError) as refused:
            open_store(dsn_with_schema(schema), Path("/nonexistent-home"), daemon=True)
        said = str(refused.value)
        assert said.startswith("PostgreSQL at ") and "still runs on it: node old-a" in said
        admin_execute(["UPDATE nodes SET stopped_at = heartbeat_at"], schema)
        open_store(dsn_with_schema(schema), Path("/nonexistent-home"), daemon=True).close()
        import psycopg

        with psycopg.connect(PG_DSN, options=f"-csearch_path={schema}") as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert row is not None and int(row[0]) == SCHEMA_VERSION
    finally:
        drop_schema(schema)


def test_a_nodes_row_that_cannot_be_read_stops_the_upgrade_naming_it(tmp_path: Path) -> None:
    """Whether that node runs is not known: the upgrade is not made blind under it."""
    db = tmp_path / "shared.db"
    _sqlite_older(
        db,
        "INSERT INTO nodes (node_id, host, pid, home, started_at, heartbeat_at, stopped_at) "
        f"VALUES ('n9', '{OTHER_HOST}', 4242, '/srv', 0, 'soon', NULL)",
    )
    with pytest.raises(StoreError) as refused:
        open_store(str(db), tmp_path / "home")
    said = str(refused.value)
    assert "its nodes row 'n9' cannot be read" in said and "heartbeat 'soon'" in said, said
    assert "Nothing was changed" in said
    assert _sqlite_version(db) == OLDER
