"""Agents schedule work for a real daemon, over both transports of the MCP server.

* stdio: ``python -m agentcron.interfaces.mcp`` (what ``agentcron mcp`` runs) started
  as a subprocess by the SDK's own stdio client, as Claude Desktop starts it;
* streamable HTTP: the daemon's web app (``create_app``) with ``mount_mcp`` at
  ``/mcp``, served by uvicorn on a thread, driven by the SDK's HTTP client with the
  agent's bearer token.

Each agent schedules a command a couple of seconds ahead; a real ``agentcron run``
daemon on the same database runs it; the agent reads the run and its output back
through the tools. The audit trail is asserted from the database and from
``agentcron audit``; the in-run refusal from a real process environment.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from agentcron.config.agents import AgentsConfig
from daemon_proc import DaemonProc, wait_for
from mcp_rig import ok, refusal

pytestmark = pytest.mark.slow

TOKEN = "web-agent-token-0123456789"
DAEMON_CONFIG = "timezone: UTC\n"  # no tasks of its own: it runs what the agents add
MCP_CONFIG = f"""
timezone: UTC
agents:
  clients:
    claude:
      actions: [command, http]
    web:
      token: {TOKEN}
      actions: [command]
"""
FINAL = {"succeeded", "failed", "skipped", "missed", "cancelled", "expired"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    folder = tmp_path_factory.mktemp("mcp-e2e")
    (folder / "mcp.yaml").write_text(MCP_CONFIG)
    proc = DaemonProc(folder, DAEMON_CONFIG, extra_env={"AGENTCRON_SHUTDOWN_GRACE": "2s"})
    proc.start()
    try:
        wait_for(lambda: _running(proc), timeout=60, interval=0.2, what="the daemon to start")
        yield proc
    finally:
        proc.stop()


def _running(proc: DaemonProc) -> bool:
    if proc.proc is not None and proc.proc.poll() is not None:
        raise AssertionError(f"the daemon exited: {proc.daemon_log()[-2000:]}")
    return "agentcron running as" in proc.daemon_log()


def _soon(seconds: float = 2.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")


async def _schedule_and_see_it_run(client: Client, name: str, text: str) -> dict[str, Any]:
    """Schedule ``echo text`` shortly, wait (through list_runs) for the daemon to run
    it, and return the run as get_run shows it."""
    made = ok(
        await client.call_tool(
            "schedule_task",
            {"name": name, "at": _soon(), "command": ["echo", text], "description": "e2e"},
        )
    )
    assert made["next_run"] is not None and made["paused"] is False
    deadline = anyio.current_time() + 40
    while True:
        runs = ok(await client.call_tool("list_runs", {"task": name}))["runs"]
        if runs and runs[0]["status"] in FINAL:
            break
        assert anyio.current_time() < deadline, f"no finished run of {name}: {runs}"
        await anyio.sleep(0.25)
    assert runs[0]["status"] == "succeeded", runs
    run: dict[str, Any] = ok(await client.call_tool("get_run", {"run_id": runs[0]["id"]}))
    return run


def _audit_rows(home: Path, task: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(home / "agentcron.db") as db:
        rows = db.execute(
            "SELECT actor, via, action FROM audit WHERE task = ? ORDER BY id", (task,)
        ).fetchall()
    return [tuple(r) for r in rows]


def test_an_agent_over_stdio_schedules_a_task_the_daemon_runs(daemon: DaemonProc) -> None:
    def server(**env: str) -> StdioServerParameters:
        return StdioServerParameters(
            command=sys.executable,
            args=[
                "-m",
                "agentcron.interfaces.mcp",
                "--config",
                str(daemon.folder / "mcp.yaml"),
                "--home",
                str(daemon.home),
                "--agent",
                "claude",
            ],
            env=env or None,
            cwd=daemon.folder,
        )

    async def scenario() -> tuple[dict[str, Any], str, dict[str, Any]]:
        async with Client(server()) as client:
            run = await _schedule_and_see_it_run(client, "hello", "hello from an agent")
        # the same server started by a process inside a scheduled run
        async with Client(server(AGENTCRON_SLOT="42")) as inside:
            refused = refusal(
                await inside.call_tool(
                    "schedule_task", {"name": "more", "every": "1h", "command": ["true"]}
                )
            )
            limits = ok(await inside.call_tool("list_tasks", {}))["limits"]
        return run, refused, limits

    run, refused, limits = anyio.run(scenario)
    assert run["task"] == "agent.claude.hello" and run["attempts"] == 1
    assert run["attempts_detail"][0]["exit_code"] == 0
    assert run["output_tail"].strip() == "hello from an agent"
    assert refused.startswith("you run inside a scheduled run (AGENTCRON_SLOT is set)")
    assert limits["inside_run"] is True and limits["may_schedule"] is False

    assert _audit_rows(daemon.home, "agent.claude.hello") == [("claude", "mcp", "task.create")]
    assert _audit_rows(daemon.home, "agent.claude.more") == []
    shown = daemon.json("audit", "agent.claude.hello")
    assert [(e["actor"], e["via"], e["action"]) for e in shown] == [
        ("claude", "mcp", "task.create")
    ]
    assert shown[0]["after"]["command"] == ["echo", "hello from an agent"]


def test_an_agent_over_http_schedules_a_task_the_daemon_runs(daemon: DaemonProc) -> None:
    import uvicorn

    from agentcron.interfaces.api.app import ApiSettings, create_app
    from agentcron.interfaces.mcp import mount_mcp
    from agentcron.service import Defaults, Service
    from agentcron.store import open_store

    agents = AgentsConfig.model_validate(
        {"clients": {"web": {"token": TOKEN, "actions": ["command"]}}}
    )
    app = create_app(
        lambda: Service(open_store(None, daemon.home), daemon.home, defaults=Defaults("UTC")),
        ApiSettings(),
    )
    mount_mcp(app, agents)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="mcp-http", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=20, what="uvicorn up")
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/mcp"

        async def scenario() -> tuple[dict[str, Any], str, list[int]]:
            async with (
                httpx2.AsyncClient(
                    headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
                ) as http,
                Client(streamable_http_client(url, http_client=http)) as client,
            ):
                run = await _schedule_and_see_it_run(client, "ping", "pong over http")
            async with (
                httpx2.AsyncClient(
                    headers={"Authorization": f"Bearer {TOKEN}", "X-Agentcron-Slot": "7"},
                    timeout=30,
                ) as http,
                Client(streamable_http_client(url, http_client=http)) as inside,
            ):
                refused = refusal(await inside.call_tool("trigger_task", {"name": "ping"}))
            statuses = []
            async with httpx2.AsyncClient(timeout=10) as bare:
                body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
                for headers in ({}, {"Authorization": "Bearer not-the-token-at-all"}):
                    answer = await bare.post(url, json=body, headers=headers)
                    statuses.append(answer.status_code)
                    assert answer.headers["www-authenticate"].startswith("Bearer")
            return run, refused, statuses

        run, refused, statuses = anyio.run(scenario)
    finally:
        server.should_exit = True
        thread.join(10)
    assert run["task"] == "agent.web.ping" and run["output_tail"].strip() == "pong over http"
    assert refused.startswith("you run inside a scheduled run")
    assert statuses == [401, 401]
    assert _audit_rows(daemon.home, "agent.web.ping") == [("web", "mcp", "task.create")]
    shown = daemon.json("audit", "agent.web.ping")
    assert [(e["actor"], e["via"]) for e in shown] == [("web", "mcp")]
