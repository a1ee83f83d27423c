"""CLI and HTTP API are two doors to one service: every API operation has its CLI
command and every CLI command its API operation (or a stated reason why it is
local), and the CLI's ``--json`` is byte for byte the API's JSON for the same data."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.main import get_command
from typer.testing import CliRunner

from agentcron.clock import SystemClock
from agentcron.interfaces.api.app import ApiSettings, create_app
from agentcron.interfaces.cli import app as cli_app
from agentcron.model.incident import Incident, IncidentKind
from agentcron.service import Service
from agentcron.store.sqlite import SQLiteStore
from harness import Harness

# API operation -> the CLI command that does the same
PARITY = {
    ("GET", "/api/v1/tasks"): "list",
    ("POST", "/api/v1/tasks"): "add",
    ("GET", "/api/v1/tasks/{name}"): "show",
    ("GET", "/api/v1/tasks/{name}/next_runs"): "next",
    ("PATCH", "/api/v1/tasks/{name}"): "update",
    ("DELETE", "/api/v1/tasks/{name}"): "remove",
    ("POST", "/api/v1/tasks/{name}/pause"): "pause",
    ("POST", "/api/v1/tasks/{name}/resume"): "resume",
    ("POST", "/api/v1/tasks/{name}/trigger"): "trigger",
    ("GET", "/api/v1/runs"): "runs",
    ("GET", "/api/v1/runs/{run_id}"): "logs",
    ("GET", "/api/v1/runs/{run_id}/output"): "logs",  # logs --output
    ("POST", "/api/v1/runs/{run_id}/redeliver"): "redeliver",
    ("GET", "/api/v1/incidents"): "incidents",
    ("GET", "/api/v1/incidents/{incident_id}"): "incidents",  # incidents ID
    ("POST", "/api/v1/incidents/{incident_id}/acknowledge"): "incidents",  # --ack ID
    ("GET", "/api/v1/health"): "health",
    ("GET", "/api/v1/audit"): "audit",
    ("POST", "/api/v1/prune"): "prune",
    ("GET", "/api/v1/schema"): "schema",
    ("POST", "/api/v1/notify/test"): "notify",
}
# CLI commands with no API operation, and why
LOCAL_ONLY = {
    "init": "writes a file in the current folder",
    "run": "is the daemon that serves the API",
    "validate": "reads a local file; on the server it would expand the daemon's secrets",
    "doctor": "checks this machine's config file and database; /api/v1/health is the remote view",
    "import": "reads another scheduler's files on this machine",
    "mcp": "is the MCP server for one agent over stdio; the daemon serves the same tools at /mcp",
    "metrics": "",  # not a command: /metrics is the daemon's own counters
}


def api_operations() -> set[tuple[str, str]]:
    """Every operation the API documents (its OpenAPI document is generated from the
    routes, so a route cannot be left out of it)."""
    app = create_app(lambda: None, ApiSettings())  # type: ignore[arg-type,return-value]
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }


def test_every_api_operation_has_a_cli_command_and_back() -> None:
    commands = set(get_command(cli_app).commands)  # type: ignore[attr-defined]
    operations = api_operations() - {("GET", "/metrics")}
    assert operations == set(PARITY), "API operations without a CLI counterpart"
    assert set(PARITY.values()) <= commands, "CLI commands named in PARITY are missing"
    unaccounted = commands - set(PARITY.values()) - set(LOCAL_ONLY)
    assert not unaccounted, f"CLI commands with no API operation and no reason: {unaccounted}"


# ---- the same JSON through both doors ------------------------------------------------------
def fine() -> str:
    return "all good"


def broken() -> str:
    raise RuntimeError("disk full")


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, TestClient]]:
    """Runs recorded in the home's database, then the CLI (a process's view) and the
    API (a service on its own connection) over that same file."""
    from datetime import UTC, datetime

    from agentcron.clock import FakeClock

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(home))
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    store = SQLiteStore(home / "agentcron.db")
    h = Harness(store, clock, home)
    h.add("alpha", fine, every="5m", retries=0)
    h.add("beta", broken, every="10m", retries=0)
    from datetime import timedelta

    asyncio.run(h.run_until(clock.now() + timedelta(minutes=20), timedelta(minutes=5)))
    h.store.save_incidents(
        [
            Incident(
                task="beta",
                kind=IncidentKind.FAILURE,
                opened_at=clock.now(),
                summary="x",
                escalated=True,
            )
        ],
        [],
        clock.now(),
    )
    store.close()
    runner = CliRunner()

    def cli(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli_app, list(args))
        assert result.exit_code == code, (result.output, result.exception)
        return result.stdout

    def factory() -> Service:
        return Service(SQLiteStore(home / "agentcron.db"), home, SystemClock())

    with TestClient(create_app(factory, ApiSettings()), base_url="http://127.0.0.1") as client:
        yield cli, client


@pytest.mark.parametrize(
    ("cli_args", "path"),
    [
        (["list"], "/api/v1/tasks"),
        (["list", "--health", "failing"], "/api/v1/tasks?health=failing"),
        (["runs", "--limit", "3"], "/api/v1/runs?limit=3"),
        (["runs", "beta", "--status", "failed"], "/api/v1/runs?task=beta&status=failed"),
        (["logs", "1"], "/api/v1/runs/1"),
        (["incidents"], "/api/v1/incidents"),
        (["incidents", "1"], "/api/v1/incidents/1"),
        (["next", "alpha", "-n", "3", "--from", "2026-06-01T00:00Z"], None),
    ],
)
def test_cli_json_is_the_api_json(setup: Any, cli_args: list[str], path: str | None) -> None:
    cli, client = setup
    if path is None:  # next --from: the API's parameter is named from
        path = "/api/v1/tasks/alpha/next_runs?count=3&from=2026-06-01T00:00Z"
    from_cli = json.loads(cli(*cli_args, "--json"))
    assert from_cli == client.get(path).json()
    assert from_cli  # not vacuous


def test_writes_answer_the_same_through_both(setup: Any) -> None:
    cli, client = setup
    by_cli = json.loads(cli("pause", "alpha", "--reason", "upgrade", "--json"))
    by_api = client.get("/api/v1/tasks").json()[0]
    assert by_cli == by_api and by_cli["pause_reason"] == "upgrade"
    resumed = json.loads(cli("resume", "alpha", "--json"))
    assert resumed["paused"] is False
    assert json.loads(cli("show", "alpha", "--json"))["name"] == "alpha"
    assert json.loads(cli("show", "alpha", "--json")) == client.get("/api/v1/tasks/alpha").json()
    audit_cli = json.loads(cli("audit", "alpha", "--json"))
    assert audit_cli == client.get("/api/v1/audit?task=alpha").json()
    assert [e["action"] for e in audit_cli] == ["task.resume", "task.pause"]
    assert {e["via"] for e in audit_cli} == {"cli"}


def test_new_cli_commands_do_what_the_api_does(setup: Any) -> None:
    cli, client = setup
    made = json.loads(
        cli(
            "add", "gamma", "--spec", '{"every": "1h", "command": ["true"], "retries": 2}', "--json"
        )
    )
    assert made["schedule"] == "every 1 hour"
    cli("update", "gamma", "--set", "retries=5", "--set", "description=nightly sync")
    shown = client.get("/api/v1/tasks/gamma").json()
    assert shown["spec"]["retries"] == 5 and shown["description"] == "nightly sync"
    cli("update", "gamma", "--unset", "every", "--set", "cron=0 4 * * *")
    assert client.get("/api/v1/tasks/gamma").json()["schedule"] == "0 4 * * *"
    bad = cli("update", "gamma", "--set", "retries=-1", code=1)
    assert bad == ""  # the error is on stderr
    acked = json.loads(cli("incidents", "--ack", "1", "--json"))
    assert acked["acknowledged_by"] and client.get("/api/v1/incidents/1").json() == acked
    assert json.loads(cli("incidents", "--open", "--json"))[0]["id"] == 1
    first = client.get("/api/v1/runs?task=alpha&limit=1").json()[0]
    assert cli("logs", str(first["id"]), "--output") == "all good"
    since = json.loads(cli("runs", "alpha", "--since", "2h", "--json"))
    assert since and all(r["task"] == "alpha" for r in since)
    runner = CliRunner()
    page = runner.invoke(cli_app, ["runs", "--limit", "2", "--json"])
    assert page.exit_code == 0 and "--cursor " in page.stderr
    cursor = page.stderr.split("--cursor ")[1].split()[0]
    after = json.loads(cli("runs", "--limit", "2", "--cursor", cursor, "--json"))
    api_after = client.get("/api/v1/runs", params={"limit": 2, "cursor": cursor}).json()
    assert after == api_after and after[0]["id"] not in {r["id"] for r in json.loads(page.stdout)}
    health = runner.invoke(cli_app, ["health", "--json"])
    assert health.exit_code == 1  # no daemon ticking: non-zero, for scripts
    assert json.loads(health.stdout)["scheduling"] is False


def test_cli_errors_name_the_option(setup: Any) -> None:
    runner = CliRunner()
    for args, text in [
        (["runs", "--status", "late"], "--status: unknown run status 'late'"),
        (["runs", "--since", "yesterday"], "--since"),
        (["runs", "--cursor", "zzz"], "--cursor"),
        (["incidents", "--kind", "weird"], "--kind"),
        (["incidents", "--ack", "999"], "no incident with id 999"),
        (["pause", "alpha", "--reason", "x" * 501], "--reason: at most 500"),
        (["update", "alpha", "--set", "retries"], "KEY=VALUE"),
        (["update", "alpha"], "nothing to change"),
        (["list", "--health", "grumpy"], "grumpy"),
    ]:
        result = runner.invoke(cli_app, args)
        assert result.exit_code == 1, (args, result.output)
        assert text in result.stderr, (args, result.stderr)
