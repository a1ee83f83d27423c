"""Over stdio, a line that is JSON but no valid JSON-RPC request is answered with
-32600 Invalid Request saying what is wrong, addressed to its id when it has a usable
one (its client waits on that id), else to id null, and logged; only a line that is
not JSON at all is a parse error (-32700). Outside-in probe: a bad envelope with a
usable id was answered as a parse error to id null, and a request whose id was null,
true, 1.5 or an object got no answer at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentcron.interfaces.mcp.stdio import unanswerable_id, unreadable_line
from mcp_rig import stdio_exchange


@pytest.mark.parametrize(
    ("line", "ident", "words"),
    [
        (
            '{"jsonrpc":"2.0","id":9,"method":"tools/list","params":"x"}',
            9,
            "params must be an object (got text)",
        ),
        ('{"jsonrpc":"1.0","id":11,"method":"ping"}', 11, "jsonrpc must be \"2.0\" (got '1.0')"),
        ('{"jsonrpc":"2.0","id":10,"method":42}', 10, "method must be text (got a whole number)"),
        ('{"jsonrpc":"2.0","id":"a","params":{}}', "a", "it has no method"),
        (
            '[{"jsonrpc":"2.0","id":1,"method":"ping"}]',
            None,
            "a batch (a JSON array) is not served: send each request as a line of its own",
        ),
        (
            '{"jsonrpc":"2.0","id":[1],"method":7}',
            None,
            "id must be a string or a whole number (got a list)",
        ),
    ],
)
def test_a_bad_envelope_is_an_invalid_request_to_its_id(line: str, ident: Any, words: str) -> None:
    answer = unreadable_line(line).model_dump(by_alias=True)
    assert answer["id"] == ident
    assert answer["error"]["code"] == -32600
    assert answer["error"]["message"] == f"Invalid request: {words}; nothing was done"


def test_only_a_line_that_is_not_json_is_a_parse_error() -> None:
    answer = unreadable_line("{bad json\n").model_dump(by_alias=True)
    assert answer["id"] is None and answer["error"]["code"] == -32700


@pytest.mark.parametrize(
    ("raw", "kind"),
    [("null", "null"), ("true", "true or false"), ("1.5", "a number"), ('{"a":1}', "an object")],
)
def test_a_request_whose_id_cannot_be_answered_is_refused_to_id_null(raw: str, kind: str) -> None:
    answer = unanswerable_id(f'{{"jsonrpc":"2.0","id":{raw},"method":"ping"}}')
    assert answer is not None
    said = answer.model_dump(by_alias=True)
    assert said["id"] is None and said["error"]["code"] == -32600
    assert f"id must be a string or a whole number (got {kind})" in said["error"]["message"]
    # a notification has no id member: nothing answers it
    assert unanswerable_id('{"jsonrpc":"2.0","method":"notifications/initialized"}') is None


def test_the_stdio_server_answers_each_and_serves_the_next(tmp_path: Path) -> None:
    by_id, logged = stdio_exchange(
        tmp_path,
        [
            '{"jsonrpc":"2.0","id":9,"method":"tools/list","params":"x"}',
            '{"jsonrpc":"1.0","id":11,"method":"ping"}',
            '{"jsonrpc":"2.0","id":1.5,"method":"ping"}',
            json.dumps({"jsonrpc": "2.0", "id": 12, "method": "tools/list"}),
        ],
        answers=4,
    )
    assert by_id[9]["error"]["code"] == -32600
    assert by_id[11]["error"]["code"] == -32600
    assert by_id[None]["error"]["code"] == -32600
    assert "tools" in by_id[12]["result"]
    assert logged.count("stdin: an invalid request") == 3, logged
