"""A PostgreSQL user that may read agentcron's tables but not write them.

An outside-in probe granted a user SELECT only: `doctor` said ✔ database and exited 0,
and `agentcron run` ended in a raw `psycopg.errors.InsufficientPrivilege` traceback
with no "cannot start:" line. `doctor` now names the tables the user may not write
(read from the catalog, nothing written), and `run` says in one line why it cannot
start, the password never shown."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.postgres


def _role(*grants: str) -> Iterator[str]:
    """A login role given ``grants`` (``{schema}`` and ``{role}`` filled in) on a fresh
    agentcron schema; its DSN, with a password."""
    from conftest import PG_DSN, require_pg

    require_pg()
    from agentcron.store.postgres import PostgresStore
    from pg_util import admin_execute, dsn_with_schema, fresh_schema

    role = f"t_ro_{uuid.uuid4().hex[:8]}"
    with fresh_schema() as schema:
        PostgresStore(PG_DSN, schema=schema).close()
        admin_execute(
            [
                f"CREATE ROLE {role} LOGIN PASSWORD 's3cret-word'",
                f"GRANT USAGE ON SCHEMA {schema} TO {role}",
                *(g.format(schema=schema, role=role) for g in grants),
            ]
        )
        try:
            own = dsn_with_schema(schema)
            yield own.replace("postgres@", f"{role}:s3cret-word@", 1)
        finally:
            admin_execute(
                [f"DROP OWNED BY {role}", f"DROP ROLE {role}"],
            )


@pytest.fixture
def reader_dsn() -> Iterator[str]:
    yield from _role("GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")


@pytest.fixture
def partly_granted_dsn() -> Iterator[str]:
    """Every right on every table but one, which it cannot even see."""
    yield from _role(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
        "GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        "REVOKE ALL ON {schema}.audit FROM {role}",
    )


def test_a_table_the_user_has_no_right_on_is_a_grant_not_damage(
    tmp_path: Path, partly_granted_dsn: str
) -> None:
    """The schema check read information_schema, which lists only what the user has a
    right on: a missing grant was called a damaged database ("restore a backup")."""
    from agentcron.interfaces.doctor import diagnose

    report = diagnose(tmp_path / "agentcron.yaml", tmp_path / "home", partly_granted_dsn)
    (database,) = [c for c in report["checks"] if c["name"] == "database"]
    assert database["status"] == "fail", database
    assert "may not write audit (" in database["message"], database
    assert "do not match the schema version" not in database["message"]


def test_doctor_names_the_tables_a_read_only_user_cannot_write(
    tmp_path: Path, reader_dsn: str
) -> None:
    from agentcron.interfaces.doctor import diagnose

    report = diagnose(tmp_path / "agentcron.yaml", tmp_path / "home", reader_dsn)
    (database,) = [c for c in report["checks"] if c["name"] == "database"]
    assert database["status"] == "fail", database
    assert "may not write attempts, " in database["message"], database
    assert "s3cret-word" not in database["message"]
    assert not report["ok"]


def test_run_says_why_it_cannot_start_in_one_line(tmp_path: Path, reader_dsn: str) -> None:
    from agentcron.interfaces.cli import app

    config = tmp_path / "agentcron.yaml"
    config.write_text("tasks:\n  a:\n    every: 1h\n    command: ['true']\n")
    result = CliRunner().invoke(
        app,
        ["--home", str(tmp_path / "home"), "run", "--config", str(config), "--db", reader_dsn],
    )
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    said = " ".join(result.output.split())
    assert "cannot start: the database " in said
    assert "InsufficientPrivilege: permission denied for table" in said, said
    assert "s3cret-word" not in said and "Traceback" not in said
