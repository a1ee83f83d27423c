"""Driving the MCP server in process with the SDK's own ``Client``: a session per
batch of calls, results read as structured content or as the refusal a model reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult

from agentcron.config.agents import AgentsConfig
from agentcron.interfaces.mcp import Caller, build_server
from agentcron.service import Service

Step = tuple[str, dict[str, Any]]


def agents_config(**clients: dict[str, Any]) -> AgentsConfig:
    """Two model profiles; ``claude`` (defaults) unless other clients are given."""
    return AgentsConfig.model_validate(
        {
            "models": {
                "small": {
                    "base_url": "https://llm.example.com/v1",
                    "model": "small-1",
                    "api_key_env": "SMALL_KEY",
                    "description": "cheap and quick",
                },
                "big": {"base_url": "https://big.example.com/v1", "model": "big-2"},
            },
            "clients": clients or {"claude": {}},
        }
    )


def server_for(
    service: Service, agents: AgentsConfig, name: str = "claude", in_run: bool = False
) -> MCPServer:
    return build_server(lambda: service, agents, Caller(name, agents.client(name), in_run))


def calls(server: MCPServer, steps: Sequence[Step]) -> list[CallToolResult]:
    """Each call in order, in one client session."""

    async def go() -> list[CallToolResult]:
        async with Client(server) as client:
            return [await client.call_tool(name, args) for name, args in steps]

    return anyio.run(go)


def call(server: MCPServer, tool: str, /, **args: Any) -> CallToolResult:
    return calls(server, [(tool, args)])[0]


def ok(result: CallToolResult) -> Any:
    """The structured result of a call that must have worked."""
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


def refusal(result: CallToolResult) -> str:
    """The message of a call that must have been refused as a tool error."""
    assert result.is_error, result.structured_content
    message = text_of(result)
    assert message.startswith("Error executing tool "), message
    assert "Traceback" not in message
    return message.split(": ", 1)[1]


def text_of(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def tool_names(server: MCPServer) -> list[str]:
    async def go() -> list[str]:
        async with Client(server) as client:
            return [tool.name for tool in (await client.list_tools()).tools]

    return anyio.run(go)


def listed(server: MCPServer) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with Client(server) as client:
            return {tool.name: tool for tool in (await client.list_tools()).tools}

    return anyio.run(go)


def unchanged(service: Service) -> Callable[[], None]:
    """A check that nothing was recorded since now: no task, no audit entry."""
    tasks = [t["name"] for t in service.list_tasks()]
    audit = [e["id"] for e in service.audit(limit=1000)]

    def check() -> None:
        assert [t["name"] for t in service.list_tasks()] == tasks
        assert [e["id"] for e in service.audit(limit=1000)] == audit

    return check


def stdio_exchange(folder: Path, lines: Sequence[str], answers: int) -> tuple[dict[Any, Any], str]:
    """``agentcron mcp --agent bot`` over its stdin and stdout as a raw client speaks to
    it: the handshake, then ``lines``; (the answers by id, the initialize's (1) among
    them, once ``answers`` of ``lines`` are answered; what it logged). Each answer is
    waited for at most 30 s: one that never comes fails, not hangs."""
    import json
    import os
    import select
    import subprocess
    import sys

    (folder / "agentcron.yaml").write_text("agents:\n  clients:\n    bot: {}\n")
    server = subprocess.Popen(
        [sys.executable, "-m", "agentcron", "mcp", "--agent", "bot", "--config", "agentcron.yaml"],
        cwd=folder,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "AGENTCRON_HOME": str(folder / "home")},
    )
    assert server.stdin is not None and server.stdout is not None and server.stderr is not None
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
    handshake = [
        json.dumps(init),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ]
    got: list[Any] = []
    try:
        server.stdin.write(("\n".join([*handshake, *lines]) + "\n").encode())
        server.stdin.flush()
        for _ in range(answers + 1):  # the initialize answer first
            ready, _, _ = select.select([server.stdout], [], [], 30)
            assert ready, "no answer within 30s"
            got.append(json.loads(server.stdout.readline()))
    finally:
        server.stdin.close()
        server.wait(30)
        server.stdout.close()
        logged = server.stderr.read().decode()
        server.stderr.close()
    return {a.get("id"): a for a in got}, logged
