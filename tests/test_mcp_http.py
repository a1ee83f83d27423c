"""The ``/mcp`` endpoint in the daemon's web app, in process (FastAPI's test client,
plain JSON-RPC posts): the bearer token says which agent calls and so which
namespace and bounds apply; no token or an unknown one is a 401 before MCP; the
``X-Agentcron-Slot`` header marks a call from inside a scheduled run; the app's
guard still checks the Host; an unset ``token_env`` stops the mount."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentcron.clock import FakeClock
from agentcron.config.agents import AgentsConfig
from agentcron.interfaces.api.app import ApiSettings, create_app
from agentcron.interfaces.mcp import mount_mcp
from agentcron.service import Defaults, Service

ALICE = "alice-token-0123456789"
BOB = "bob-token-0123456789ab"
BASE = "http://127.0.0.1:8765"
HOOK = {"url": "https://hooks.example.com/ping"}
AGENTS = AgentsConfig.model_validate(
    {"clients": {"alice": {"token": ALICE}, "bob": {"token_env": "BOB_MCP_TOKEN"}}}
)


@pytest.fixture
def service(sqlite_store: Any, clock: FakeClock, home: Path) -> Service:
    return Service(sqlite_store, home, clock, Defaults(timezone="UTC"))


@pytest.fixture
def web(service: Service, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("BOB_MCP_TOKEN", BOB)
    app = create_app(lambda: service, ApiSettings(close_service=False))
    mount_mcp(app, AGENTS)
    with TestClient(app, base_url=BASE) as client:
        yield client


def rpc(
    web: TestClient,
    tool: str,
    token: str | None,
    headers: dict[str, str] | None = None,
    **args: Any,
) -> Any:
    sent = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
        **({"Authorization": f"Bearer {token}"} if token else {}),
        **(headers or {}),
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": args},
    }
    return web.post("/mcp", json=body, headers=sent)


def result_of(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def test_the_token_says_which_agent_calls(web: TestClient, service: Service) -> None:
    made = result_of(rpc(web, "schedule_task", ALICE, name="job", every="1h", http=HOOK))
    assert not made.get("isError") and made["structuredContent"]["name"] == "agent.alice.job"
    result_of(rpc(web, "schedule_task", BOB, name="job", every="2h", http=HOOK))
    alice = result_of(rpc(web, "list_tasks", ALICE))["structuredContent"]
    bob = result_of(rpc(web, "list_tasks", BOB))["structuredContent"]
    assert [t["name"] for t in alice["tasks"]] == ["agent.alice.job"]
    assert [t["name"] for t in bob["tasks"]] == ["agent.bob.job"]
    assert alice["limits"]["agent"] == "alice" and bob["limits"]["agent"] == "bob"
    refused = result_of(rpc(web, "cancel_task", BOB, name="agent.alice.job"))
    assert refused["isError"]
    assert "outside your namespace agent.bob.*" in refused["content"][0]["text"]
    assert [(e["actor"], e["via"]) for e in service.audit("agent.alice.job")] == [("alice", "mcp")]
    assert [(e["actor"], e["via"]) for e in service.audit("agent.bob.job")] == [("bob", "mcp")]


def test_no_known_token_no_mcp(web: TestClient, service: Service) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer someone-elses-token-0000"},
        {"Authorization": "Basic YWxpY2U6YWxpY2UtdG9rZW4tMDEyMzQ1Njc4OQ=="},  # right token, Basic
        {"Authorization": f"Bearer {ALICE}x"},
    ):
        answer = rpc(web, "schedule_task", None, headers, name="x", every="1h", http=HOOK)
        assert answer.status_code == 401, headers
        assert answer.headers["www-authenticate"] == 'Bearer realm="agentcron-mcp"'
        assert answer.json()["type"] == "urn:agentcron:problem:unauthorized"
    assert service.list_tasks() == [] and service.audit() == []


def test_a_call_from_inside_a_run_says_so_in_a_header(web: TestClient) -> None:
    inside = rpc(
        web, "schedule_task", ALICE, {"X-Agentcron-Slot": "12"}, name="x", every="1h", http=HOOK
    )
    refused = result_of(inside)
    assert refused["isError"]
    said = refused["content"][0]["text"]
    # the header it sent is named, not the variable the stdio server reads
    assert "you run inside a scheduled run (the X-Agentcron-Slot header was sent)" in said
    assert "AGENTCRON_SLOT" not in said
    limits = result_of(rpc(web, "list_tasks", ALICE, {"X-Agentcron-Slot": "12"}))
    assert limits["structuredContent"]["limits"]["inside_run"] is True


def test_the_apps_guard_still_checks_the_host(web: TestClient) -> None:
    answer = rpc(web, "list_tasks", ALICE, {"Host": "rebound.example.com"})
    assert answer.status_code == 403 and answer.json()["type"].endswith("forbidden-host")


def test_an_unset_token_env_stops_the_mount(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOB_MCP_TOKEN", raising=False)
    app = create_app(lambda: service, ApiSettings(close_service=False))
    with pytest.raises(ValueError, match=r"agents.clients.bob.token_env: BOB_MCP_TOKEN is not set"):
        mount_mcp(app, AGENTS)


def test_agents_get_in_when_the_api_has_a_token_too(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOB_MCP_TOKEN", BOB)
    app = create_app(
        lambda: service, ApiSettings(token="the-api-token-0123456789", close_service=False)
    )
    mount_mcp(app, AGENTS)
    with TestClient(app, base_url=BASE) as web:
        assert rpc(web, "list_tasks", "the-api-token-0123456789").status_code == 401
        result_of(rpc(web, "list_tasks", ALICE))
