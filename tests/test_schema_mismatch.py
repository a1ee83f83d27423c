"""A database whose tables are not what its schema version says is refused, in words.

An outside-in probe dropped a table (`attempts`) or a column (`incidents.closed_by`) of
a SQLite database: `doctor` said ✔ database and the daemon started into an outage it
could never end ("no such table: attempts … agentcron keeps trying"). Edited the
`schema_version` row down, or deleted it, every command said the file could not be
opened and to "check that this user may read and write the file". Each is now one
error naming what does not match; nothing is changed."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcron.interfaces.cli import app as cli_app
from agentcron.store import StoreError
from agentcron.store.migrations import SCHEMA_VERSION
from agentcron.store.sqlite import SQLiteStore

CASES = {
    "table dropped": (["DROP TABLE attempts"], "it lacks the table attempts"),
    "column dropped": (
        ["DROP INDEX incidents_removed", "ALTER TABLE incidents DROP COLUMN closed_by"],
        "it lacks the column incidents.closed_by",
    ),
    "version edited down": (
        [f"UPDATE meta SET value = '{SCHEMA_VERSION - 1}' WHERE key = 'schema_version'"],
        "index incidents_task already exists",
    ),
    "version row deleted": (
        ["DELETE FROM meta WHERE key = 'schema_version'"],
        "already exists",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_database_changed_outside_agentcron_is_refused_naming_what(
    tmp_path: Path, case: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    path = home / "agentcron.db"
    SQLiteStore(path).close()
    statements, said = CASES[case]
    db = sqlite3.connect(path)
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()
    before = hashlib.md5(path.read_bytes()).hexdigest()
    with pytest.raises(StoreError) as caught:
        SQLiteStore(path)
    message = str(caught.value)
    assert "agentcron's tables do not match the schema version the database records" in message
    assert said in message, message
    assert "changed outside agentcron" in message and "may read and write" not in message
    result = CliRunner().invoke(cli_app, ["--home", str(home), "list", "--json"])
    assert result.exit_code == 1
    assert said in json.loads(result.stdout)["error"]
    assert hashlib.md5(path.read_bytes()).hexdigest() == before


def test_a_database_with_more_than_agentcron_made_is_used(tmp_path: Path) -> None:
    """An index or a table of the owner's own beside agentcron's is left alone."""
    path = tmp_path / "agentcron.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE owners_notes (note TEXT)")
    db.execute("ALTER TABLE tasks ADD COLUMN owners_tag TEXT")
    db.commit()
    db.close()
    SQLiteStore(path).close()


def test_a_version_row_that_is_not_a_number_is_said(tmp_path: Path) -> None:
    path = tmp_path / "agentcron.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = 'eighteen' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema_version row holds 'eighteen', not a version"):
        SQLiteStore(path)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("statement", "said"),
    [
        ("DROP TABLE attempts", "it lacks the table attempts"),
        ("UPDATE meta SET value = 'x' WHERE key = 'schema_version'", "holds 'x', not a version"),
    ],
)
def test_postgresql_alike(statement: str, said: str) -> None:
    from conftest import PG_DSN, require_pg

    require_pg()
    from agentcron.store.postgres import PostgresStore
    from pg_util import admin_execute, fresh_schema

    with fresh_schema() as schema:
        PostgresStore(PG_DSN, schema=schema).close()
        admin_execute([statement], schema)
        with pytest.raises(StoreError) as caught:
            PostgresStore(PG_DSN, schema=schema)
        assert said in str(caught.value), str(caught.value)
