"""The service's advice, said by each interface in its own terms: the CLI names a
command, the API a route (and names the act in its problem body), MCP a tool, the
dashboard a page or a button. The service wrote CLI commands into its refusals; MCP
rewrote some of them by text replacement, and the API and the dashboard showed
"`agentcron runs` lists them" to a client and a browser."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agentcron.clock import FakeClock
from agentcron.interfaces.api.app import ApiSettings, create_app
from agentcron.interfaces.cli import app as cli_app
from agentcron.interfaces.dashboard import build_router
from agentcron.model import TaskSource, TaskSpec
from agentcron.service import Service, ServiceError
from harness import Harness
from mcp_rig import agents_config, call, ok, server_for

SAME = {"Origin": "http://testserver"}  # the dashboard's own origin, for its forms
NOT_RUNNING = "the daemon is not running: the run starts when it does"


def fine() -> str:
    return "all good"


def at_past_message(service: Service) -> str:
    """The refusal of a one-shot whose time has passed, before its advice (the clock is
    the harness's, in UTC)."""
    now = service.clock.now().isoformat(timespec="minutes")
    return (
        f"at 2026-05-01T10:00+00:00 is in the past (now {now}): a one-shot runs once "
        "at a time to come"
    )


ONCE = {"at": "2026-05-01T10:00", "timezone": "UTC", "command": ["true"]}
FILED = (
    "task 'filed' is defined in the config file; delete it there (the daemon drops it on reload)"
)


@pytest.fixture
def harness(sqlite_store: Any, clock: FakeClock, home: Path) -> Harness:
    """One task with a run, one task from the config file; no daemon runs."""
    h = Harness(sqlite_store, clock, home)
    h.add("alpha", fine, every="10m", retries=0)
    spec = TaskSpec(name="filed", every=timedelta(hours=1), command=["true"])
    h.store.upsert_task(spec, TaskSource.FILE, clock.now(), None)
    asyncio.run(h.run_until(clock.now() + timedelta(minutes=10), timedelta(minutes=5)))
    return h


def refusal_of(action: Callable[[], Any]) -> ServiceError:
    with pytest.raises(ServiceError) as refused:
        action()
    return refused.value


def test_the_service_says_the_problem_and_carries_the_advice_as_data(harness: Harness) -> None:
    from agentcron.service import Act

    service = harness.service
    past = refusal_of(lambda: service.add_task("once", ONCE))
    assert str(past) == at_past_message(service)
    assert past.advice is not None and (past.advice.act, past.advice.task) == (Act.TRIGGER, None)
    filed = refusal_of(lambda: service.remove("filed"))
    assert str(filed) == FILED
    assert filed.advice is not None and filed.advice.as_dict() == {
        "action": "pause",
        "task": "filed",
    }
    run = refusal_of(lambda: service.run_detail(999))
    assert str(run) == "no run with id 999"
    assert run.advice is not None and run.advice.act is Act.LIST_RUNS
    incident = refusal_of(lambda: service.incident(999))
    assert str(incident) == "no incident with id 999"
    assert incident.advice is not None and incident.advice.act is Act.LIST_INCIDENTS
    note = service.trigger_note("alpha")
    assert note.text == NOT_RUNNING
    assert note.advice is not None and note.advice.act is Act.START_DAEMON
    for said in (str(past), str(filed), str(run), str(incident), note.text):
        assert "agentcron" not in said


def test_every_act_is_worded_by_every_interface_and_named_by_the_api_schema() -> None:
    from typing import get_args

    from agentcron.interfaces.api.problems import API_WORDS
    from agentcron.interfaces.cli_words import CLI_WORDS
    from agentcron.interfaces.dashboard._views import DASHBOARD_WORDS
    from agentcron.interfaces.mcp._core import TOOL_WORDS
    from agentcron.interfaces.schemas import AdviceView
    from agentcron.service import Act

    for wording in (CLI_WORDS, API_WORDS, TOOL_WORDS, DASHBOARD_WORDS):
        assert set(wording) == set(Act)
    for wording in (API_WORDS, TOOL_WORDS, DASHBOARD_WORDS):
        assert not any("agentcron" in words for words in wording.values())
    assert set(get_args(AdviceView.model_fields["action"].annotation)) == {a.value for a in Act}


# ---- CLI ------------------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    (tmp_path / "agentcron.yaml").write_text(
        "timezone: UTC\ntasks:\n  filed:\n    every: 1h\n    command: [echo, x]\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        """What the command prints (stderr too), one space between words; with
        ``--json``, its output as it is."""
        result = runner.invoke(cli_app, list(args))
        assert result.exit_code == code, (result.stdout, result.stderr)
        if "--json" in args:
            return result.stdout
        return " ".join((result.stdout + result.stderr).split())

    return run


def test_the_cli_says_the_command(cli: Callable[..., str]) -> None:
    past = json.loads(cli("add", "once", "--at", "2020-01-01T10:00", "--json", "--", "x", code=1))
    assert past["error"].startswith("at 2020-01-01T10:00+00:00 is in the past (now ")
    assert past["error"].endswith(
        "a one-shot runs once at a time to come; `agentcron trigger` runs a task now"
    )
    assert f"{FILED}; or stop it firing with `agentcron pause filed`" in cli(
        "remove", "filed", code=1
    )
    assert "no run with id 999; `agentcron runs` lists them" in cli("logs", "999", code=1)
    assert "no incident with id 999; `agentcron incidents` lists them" in cli(
        "incidents", "999", code=1
    )
    said = cli("trigger", "filed")
    assert f"{NOT_RUNNING}; `agentcron run` starts the daemon)" in said, said
    listed = cli("list")
    assert "nothing is firing; `agentcron run` starts the daemon" in listed, listed
    health = cli("health", code=1)
    assert "nothing is firing; `agentcron run` starts the daemon" in health, health
    data = json.loads(cli("health", "--json", code=1))
    assert data["advice"] == {"action": "start_daemon", "task": None}


# ---- API ------------------------------------------------------------------------------
@pytest.fixture
def api(harness: Harness) -> Iterator[TestClient]:
    app = create_app(lambda: harness.service, ApiSettings(close_service=False))
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        yield client


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return dict(response.json())


def test_the_api_says_the_route_and_names_the_act(api: TestClient, harness: Harness) -> None:
    body = problem(
        api.post(
            "/api/v1/tasks",
            json={"name": "once", "at": "2026-05-01T10:00", "timezone": "UTC", "command": ["x"]},
        ),
        422,
    )
    assert body["detail"] == (
        f"{at_past_message(harness.service)}; POST /api/v1/tasks/{{name}}/trigger runs a task now"
    )
    assert body["advice"] == {"action": "trigger", "task": None}
    body = problem(api.delete("/api/v1/tasks/filed"), 409)
    assert body["detail"] == f"{FILED}; or stop it firing with POST /api/v1/tasks/filed/pause"
    assert body["advice"] == {"action": "pause", "task": "filed"}
    body = problem(api.get("/api/v1/runs/999"), 404)
    assert body["detail"] == "no run with id 999; GET /api/v1/runs lists them"
    assert body["advice"] == {"action": "list_runs", "task": None}
    body = problem(api.get("/api/v1/incidents/999"), 404)
    assert body["detail"] == "no incident with id 999; GET /api/v1/incidents lists them"
    assert body["advice"] == {"action": "list_incidents", "task": None}
    body = problem(api.get("/api/v1/tasks/nope"), 404)
    assert body["advice"] is None  # no advice: none said, none named
    run = api.post("/api/v1/tasks/alpha/trigger").json()
    assert run["note"] == (
        f"{NOT_RUNNING}; the daemon is started on its own machine: no endpoint starts it"
    )
    # JSON the CLI's --json shares: the sentence, and the act as data (no words of a door)
    health = api.get("/api/v1/health").json()
    assert (
        health["problem"] == "no daemon is running (no scheduler has ticked yet): nothing is firing"
    )
    assert health["advice"] == {"action": "start_daemon", "task": None}


# ---- MCP ------------------------------------------------------------------------------
def tool_error(action: Callable[[], Any]) -> str:
    """What an agent is told when the service refuses ``action`` in a tool."""
    from mcp.server.mcpserver.exceptions import ToolError

    from agentcron.interfaces.mcp._core import answers

    with pytest.raises(ToolError) as told, answers():
        action()
    return str(told.value)


def test_mcp_says_the_tool(harness: Harness) -> None:
    service = harness.service
    past = tool_error(lambda: service.add_task("once", ONCE))
    assert past == f"{at_past_message(service)}; trigger_task runs a task now"
    assert tool_error(lambda: service.remove("filed")) == (
        f"{FILED}; or stop it firing with pause_task"
    )
    assert tool_error(lambda: service.run_detail(999)) == "no run with id 999; list_runs lists them"
    assert tool_error(lambda: service.incident(999)) == (
        "no incident with id 999; incidents are the owner's to read: no tool lists them"
    )
    # through the tools themselves: get_run says it in its own words; a trigger's note
    server = server_for(service, agents_config(claude={"change": ["alpha"]}))
    from mcp_rig import refusal

    assert refusal(call(server, "get_run", run_id=999)) == (
        "no run with id 999; list_runs shows yours"
    )
    run = ok(call(server, "trigger_task", name="alpha"))
    assert run["note"] == f"{NOT_RUNNING}; the daemon's owner starts it: no tool can"


# ---- dashboard ------------------------------------------------------------------------
@pytest.fixture
def dashboard(harness: Harness) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.service = harness.service
    app.include_router(build_router())
    with TestClient(app) as client:
        yield client


def test_the_dashboard_says_the_page_or_the_button(dashboard: TestClient, harness: Harness) -> None:
    page = dashboard.get("/runs/999")
    assert page.status_code == 404
    assert "no run with id 999; each task&#39;s page lists its runs" in page.text, page.text
    output = dashboard.get("/runs/999/output")
    assert output.text == "no run with id 999; each task's page lists its runs\n"
    ack = dashboard.post("/incidents/999/ack", data={"back": "incidents"}, headers=SAME)
    assert ack.status_code == 404
    assert "Not acknowledged: no incident with id 999; the Incidents page lists them" in ack.text, (
        ack.text
    )
    ran = dashboard.post(
        "/tasks/alpha/run", data={"back": "task"}, headers={**SAME, "HX-Request": "true"}
    )
    assert (
        f"{NOT_RUNNING}; the daemon is started on its own machine, not from this dashboard."
        in ran.text
    ), ran.text
    for text in (page.text, output.text, ack.text, ran.text):
        assert "`agentcron" not in text.replace("Start one with `agentcron run`", "")
    # neither is a change the dashboard makes; said in its words should one reach it
    from agentcron.interfaces.dashboard._views import DASHBOARD_WORDS

    service = harness.service
    past = refusal_of(lambda: service.add_task("once", ONCE))
    assert past.words(DASHBOARD_WORDS) == (
        f"{at_past_message(service)}; a task's Run now button runs it now"
    )
    assert refusal_of(lambda: service.remove("filed")).words(DASHBOARD_WORDS) == (
        f"{FILED}; or stop it firing with the Pause button on its page"
    )
