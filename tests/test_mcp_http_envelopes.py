"""The HTTP endpoint answers a body that is no valid JSON-RPC request in plain words,
as stdio answers such a line (outside-in probe: a batch or ``"jsonrpc": "1.0"`` got
pydantic's "6 validation errors for union[JSONRPCRequest,…] … errors.pydantic.dev");
and, stateless, it answers GET with 405 ``Allow: POST`` (a GET opened an event stream
that never ended, pinging every 15 s)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentcron.clock import FakeClock
from agentcron.interfaces.api.app import ApiSettings, create_app
from agentcron.interfaces.mcp import mount_mcp
from agentcron.service import Defaults, Service
from test_mcp_http import AGENTS, ALICE, BASE, BOB

HEADERS = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
    "Authorization": f"Bearer {ALICE}",
    "Content-Type": "application/json",
}


@pytest.fixture
def web(
    sqlite_store: Any, clock: FakeClock, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("BOB_MCP_TOKEN", BOB)
    service = Service(sqlite_store, home, clock, Defaults(timezone="UTC"))
    app = create_app(lambda: service, ApiSettings(close_service=False))
    mount_mcp(app, AGENTS)
    with TestClient(app, base_url=BASE) as client:
        yield client


@pytest.mark.parametrize(
    ("body", "ident", "words"),
    [
        (
            '[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]',
            None,
            "Invalid request: a batch (a JSON array) is not served",
        ),
        ('{"jsonrpc":"1.0","id":11,"method":"ping"}', 11, 'Invalid request: jsonrpc must be "2.0"'),
        (
            '{"jsonrpc":"2.0","id":9,"method":"tools/list","params":"x"}',
            9,
            "Invalid request: params must be an object (got text)",
        ),
        (
            '{"jsonrpc":"2.0","id":1.5,"method":"ping"}',
            None,
            "Invalid request: id must be a string or a whole number (got a number)",
        ),
    ],
)
def test_a_bad_envelope_is_answered_in_plain_words(
    web: TestClient, body: str, ident: Any, words: str
) -> None:
    answer = web.post("/mcp", content=body, headers=HEADERS)
    assert answer.status_code == 400, answer.text
    said = answer.json()
    assert said["id"] == ident and said["error"]["code"] == -32600
    message = said["error"]["message"]
    assert message.startswith(words), message
    assert message.endswith("nothing was done")
    assert "pydantic" not in message and "validation error" not in message.lower()


def test_a_body_that_is_not_json_is_a_parse_error(web: TestClient) -> None:
    said = web.post("/mcp", content="{bad", headers=HEADERS).json()
    assert said["error"] == {
        "code": -32700,
        "message": "Parse error: the body is not JSON; nothing was done",
    }


def test_a_good_request_still_served_after_the_body_was_read(web: TestClient) -> None:
    body = '{"jsonrpc":"2.0","id":4,"method":"tools/list"}'
    answer = web.post("/mcp", content=body, headers=HEADERS)
    assert answer.status_code == 200 and "tools" in answer.json()["result"]


@pytest.mark.timeout(30)  # before: the GET's stream never ended
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_the_stateless_endpoint_opens_no_stream(web: TestClient, method: str) -> None:
    headers = {**HEADERS, "Accept": "text/event-stream"}
    answer = web.request(method, "/mcp", headers=headers)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert "send each JSON-RPC request as a POST" in answer.json()["error"]["message"]
