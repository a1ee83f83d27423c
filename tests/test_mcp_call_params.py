"""A tools/call whose params are malformed (no name, a name that is not text, arguments
that are not an object) is answered -32602 saying which, over stdio and HTTP, to its
id, and logged; the SDK answered "Invalid request parameters" with data "", nothing
of what was wrong (outside-in probe). A well-formed call is served as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentcron.interfaces.mcp.stdio import bad_call_params
from mcp_rig import stdio_exchange
from test_mcp_http_envelopes import HEADERS, web  # noqa: F401 (the fixture)

NEEDS_NAME = "tools/call needs params.name, the tool's name (tools/list lists them)"
CASES = [
    ({}, NEEDS_NAME),
    (None, NEEDS_NAME),
    ({"arguments": {}}, NEEDS_NAME),
    ({"name": 5}, "params.name must be text, the tool's name (got a whole number;"),
    (
        {"name": "list_tasks", "arguments": [1]},
        "params.arguments must be an object, the tool's arguments by name (got a list)",
    ),
    ({"name": "list_tasks", "arguments": "x"}, "params.arguments must be an object"),
    ({"name": "list_tasks", "_meta": 3}, "params._meta must be an object (got a whole number)"),
]


def call(ident: Any, params: Any) -> str:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": ident, "method": "tools/call"}
    if params is not None:
        message["params"] = params
    return json.dumps(message)


@pytest.mark.parametrize(("params", "words"), CASES)
def test_malformed_params_are_named(params: Any, words: str) -> None:
    answer = bad_call_params(call(7, params))
    assert answer is not None
    said = answer.model_dump(by_alias=True, exclude_unset=True)
    assert said["id"] == 7 and said["error"]["code"] == -32602
    assert said["error"]["message"].startswith(f"Invalid params: {words}")
    assert said["error"]["message"].endswith("; nothing was done")


@pytest.mark.parametrize(
    "line",
    [
        call(7, {"name": "list_tasks"}),
        call(7, {"name": "list_tasks", "arguments": None}),
        call(7, {"name": "nope", "arguments": {}}),  # an unknown tool: the SDK says so
        call(7, "x"),  # an envelope: unreadable_line says it
        call(None, {}),  # an id no answer can go to: unanswerable_id says it
        json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}),
        "{not json",
    ],
)
def test_other_lines_are_left_to_what_answers_them(line: str) -> None:
    assert bad_call_params(line) is None


@pytest.mark.parametrize(("params", "words"), CASES)
def test_over_http(web: TestClient, params: Any, words: str) -> None:  # noqa: F811
    answer = web.post("/mcp", content=call(7, params), headers=HEADERS)
    assert answer.status_code == 200  # an error of the call, as the SDK answers those
    said = answer.json()
    assert said["id"] == 7 and said["error"]["code"] == -32602
    assert said["error"]["message"].startswith(f"Invalid params: {words}")


def test_over_http_a_good_call_is_served(web: TestClient) -> None:  # noqa: F811
    answer = web.post("/mcp", content=call(8, {"name": "list_tasks"}), headers=HEADERS)
    assert answer.status_code == 200
    assert answer.json()["result"]["isError"] is False


def test_over_stdio_each_is_answered_and_the_next_served(tmp_path: Path) -> None:
    by_id, logged = stdio_exchange(
        tmp_path,
        [
            call(2, {}),
            call(3, {"name": "list_tasks", "arguments": [1]}),
            call("four", {"name": 5}),
            call(5, {"name": "list_tasks"}),
        ],
        answers=4,
    )
    assert by_id[2]["error"] == {
        "code": -32602,
        "message": f"Invalid params: {NEEDS_NAME}; nothing was done",
    }
    assert "params.arguments must be an object" in by_id[3]["error"]["message"]
    assert "params.name must be text" in by_id["four"]["error"]["message"]
    assert by_id[5]["result"]["isError"] is False
    assert logged.count("stdin: tools/call (id") == 3, logged
