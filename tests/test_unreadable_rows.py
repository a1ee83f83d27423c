"""A row of the database that agentcron cannot read is said, named, as such.

An outside-in probe changed one value of one row by hand (a run's status 'exploded',
an incident's kind 'martian', a node's pid 'abc', a time 'yesterday', tokens that are
not JSON) and got a Python traceback from `runs`, `list`, `show`, `doctor` and
`incidents`, for every task; the API answered "try again in a few seconds" (503) or
"an unexpected error" (500), and the dashboard a JSON body. Now each names the row
and what is wrong with it, and says it was changed outside agentcron; nothing is
written. A stored spec that cannot be read is replaced by the config file's when the
file is applied (one bad spec made `agentcron run` refuse to start)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agentcron.clock import FakeClock
from agentcron.interfaces.api.app import ApiSettings, create_app
from agentcron.interfaces.cli import app as cli_app
from agentcron.service import Service
from agentcron.store.sqlite import SQLiteStore
from harness import Harness

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _home_with_history(tmp_path: Path) -> Path:
    """A home whose database has a task, a failed run, an incident and a node."""
    home = tmp_path / "home"
    home.mkdir()
    store = SQLiteStore(home / "agentcron.db")
    try:
        clock = FakeClock(T0)
        h = Harness(store, clock, home)

        def broken() -> None:
            raise RuntimeError("disk full")

        h.add("alpha", broken, every="1h", retries=0)
        clock.advance(timedelta(hours=1))
        asyncio.run(h.tick())
        from agentcron.model import Incident, IncidentKind, NodeInfo

        store.save_incidents(
            [Incident(task="alpha", kind=IncidentKind.FAILURE, opened_at=clock.now())],
            [],
            clock.now(),
        )
        store.register_node(
            NodeInfo(node_id="n1", host="h", pid=1, home=str(home), started_at=clock.now(),
                     heartbeat_at=clock.now())
        )  # fmt: skip
    finally:
        store.close()
    return home


def _corrupt(home: Path, statement: str) -> str:
    db = sqlite3.connect(home / "agentcron.db")
    db.execute(statement)
    db.commit()
    db.close()
    return hashlib.md5((home / "agentcron.db").read_bytes()).hexdigest()


INVALID = "is not a valid"
CASES = [
    ("UPDATE slots SET status = 'exploded'", ["runs"], f"run 1 ('exploded' {INVALID} SlotStatus)"),
    ("UPDATE slots SET error_class = 'alien'", ["logs", "1"], f"run 1 ('alien' {INVALID} Error"),
    ("UPDATE slots SET finished_at = 'yesterday'", ["show", "alpha"], "run 1 (could not convert"),
    ("UPDATE attempts SET tokens = '{oops'", ["logs", "1"], "attempt 1 (Expecting property name"),
    ("UPDATE incidents SET kind = 'martian'", ["incidents"], f"incident 1 ('martian' {INVALID}"),
    ("UPDATE nodes SET pid = 'abc'", ["health"], "node 'n1' (invalid literal for int()"),
    ("UPDATE tasks SET next_fire_at = 1e300", ["list"], "task 'alpha' ("),
]  # fmt: skip


@pytest.mark.parametrize(("statement", "command", "said"), CASES)
def test_a_row_that_cannot_be_read_is_named_not_a_traceback(
    tmp_path: Path, statement: str, command: list[str], said: str
) -> None:
    home = _home_with_history(tmp_path)
    before = _corrupt(home, statement)
    result = CliRunner().invoke(cli_app, ["--home", str(home), *command, "--json"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    error = json.loads(result.stdout)["error"]
    assert "the database has a row agentcron cannot read: " in error
    assert said in error, error
    assert "changed outside agentcron" in error
    assert hashlib.md5((home / "agentcron.db").read_bytes()).hexdigest() == before


def test_the_api_and_the_dashboard_name_the_row_and_do_not_say_try_again(tmp_path: Path) -> None:
    home = _home_with_history(tmp_path)
    _corrupt(home, "UPDATE slots SET status = 'exploded'")
    store = SQLiteStore(home / "agentcron.db")
    try:
        service = Service(store, home)
        app = create_app(lambda: service, ApiSettings(close_service=False))
        with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
            answer = c.get("/api/v1/runs/1")
            assert answer.status_code == 500, answer.text
            body = answer.json()
            assert body["type"] == "urn:agentcron:problem:database-row"
            assert "run 1 ('exploded' is not a valid SlotStatus)" in body["detail"]
            assert "Retry-After" not in answer.headers
            page = c.get("/runs/1", headers={"Accept": "text/html"})
            assert page.status_code == 500
            assert page.headers["content-type"].startswith("text/html")
            assert "is not a valid SlotStatus" in page.text and "Unreadable data" in page.text
    finally:
        store.close()


def test_a_dashboard_page_while_the_database_is_away_is_a_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home_with_history(tmp_path)
    store = SQLiteStore(home / "agentcron.db")
    try:
        service = Service(store, home)

        def away(*_a: object, **_k: object) -> object:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(Service, "run_detail", away)
        app = create_app(lambda: service, ApiSettings(close_service=False))
        with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
            page = c.get("/runs/1", headers={"Accept": "text/html"})
            assert page.status_code == 503 and page.headers["Retry-After"] == "5"
            assert page.headers["content-type"].startswith("text/html")
            assert "could not be read or written just now" in page.text
            assert c.get("/api/v1/runs/1").json()["type"].endswith(":database")  # JSON there
    finally:
        store.close()


def test_a_stored_spec_that_cannot_be_read_is_replaced_by_the_files(tmp_path: Path) -> None:
    home, args = _file_task(tmp_path)
    runner = CliRunner()
    first = runner.invoke(cli_app, [*args, "list", "--json"])
    assert first.exit_code == 0, first.output
    _corrupt(home, "UPDATE tasks SET spec = '{not json' WHERE name = 'gamma'")
    again = runner.invoke(cli_app, [*args, "list", "--json"])
    assert again.exit_code == 0, again.output
    assert [t["name"] for t in json.loads(again.stdout)] == ["gamma"]
    # healed by the command before: read without the file, it is readable
    bare = runner.invoke(cli_app, ["--home", str(home), "show", "gamma", "--json"])
    assert bare.exit_code == 0, bare.output


def test_a_paused_task_whose_stored_spec_cannot_be_read_stays_paused(tmp_path: Path) -> None:
    """Replacing the unreadable spec by the file's must not undo the owner's pause (the
    file says nothing of it): a paused task ran again (review)."""
    home, args = _file_task(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli_app, [*args, "pause", "gamma"]).exit_code == 0
    _corrupt(home, "UPDATE tasks SET spec = '{not json' WHERE name = 'gamma'")
    again = runner.invoke(cli_app, [*args, "list", "--json"])
    assert again.exit_code == 0, again.output
    (gamma,) = json.loads(again.stdout)
    assert gamma["paused"] is True, gamma


def _file_task(tmp_path: Path) -> tuple[Path, list[str]]:
    """A config file with one task, ``gamma``; the home and the CLI's options for both."""
    folder = tmp_path / "cfg"
    folder.mkdir()
    config = folder / "agentcron.yaml"
    config.write_text('tasks:\n  gamma:\n    cron: "0 3 * * *"\n    command: ["true"]\n')
    home = tmp_path / "home"
    return home, ["--home", str(home), "--config", str(config)]
