"""``agentcron mcp``: the tools for one agent over stdin/stdout, and how the server
knows it was started from inside a scheduled run.

A run gets ``AGENTCRON_SLOT`` in its environment. An agent started by a run (Claude
Code in a ``command`` task) starts this server, but MCP clients pass only a few
variables to the servers they spawn, so the variable is looked for in this process
and in each of its ancestors (``/proc/PID/environ``, Linux); where ``/proc`` is not
there, only this process's environment counts. A line of stdin that is no JSON-RPC
message is answered, not dropped (:func:`unreadable_line`), and so is a request
whose id no answer can be addressed to (:func:`unanswerable_id`); a ``tools/call``
whose params are malformed is answered saying which (:func:`bad_call_params`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentcron.interfaces.mcp.policy import SLOT_ENV

log = logging.getLogger("agentcron.mcp")

_MAX_DEPTH = 64  # ancestors walked at most (a cycle cannot happen; a deep tree can)


def scheduled_run_slot(
    environ: Mapping[str, str] | None = None,
    pid: int | None = None,
    proc: Path = Path("/proc"),
) -> str | None:
    """The slot id of the scheduled run this process descends from, or None."""
    env = os.environ if environ is None else environ
    own = env.get(SLOT_ENV, "").strip()
    if own:
        return own
    current = os.getpid() if pid is None else pid
    for _ in range(_MAX_DEPTH):
        parent = _parent(proc, current)
        if parent is None or parent <= 1:
            return None
        found = _slot_of(proc, parent)
        if found:
            return found
        current = parent
    return None


def _parent(proc: Path, pid: int) -> int | None:
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid …": comm may hold spaces and parentheses
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return None


def _slot_of(proc: Path, pid: int) -> str | None:
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:  # another user's process, or gone
        return None
    marker = f"{SLOT_ENV}=".encode()
    for entry in raw.split(b"\0"):
        if entry.startswith(marker):
            value = entry[len(marker) :].decode("utf-8", "replace").strip()
            return value or None
    return None


def unreadable_line(line: str, where: str = "stdin") -> Any:
    """The JSON-RPC answer to a line of stdin the SDK's parser refused: a parse error
    (id null, -32700) when it is not JSON; otherwise an invalid request (-32600) that
    says what is wrong with it, addressed to its id when it has a usable one (a client
    waits on that id), else to id null. The SDK drops such a line without a word, and
    its client waits forever (outside-in probe). Nothing of the line is echoed: it may
    not even be encodable. ``where``: stdin, or the HTTP endpoint (a POST's body)."""
    from mcp_types import ErrorData, JSONRPCError

    try:
        data = json.loads(line)
    except ValueError:
        what = "line" if where == "stdin" else "body"
        problem = f"Parse error: the {what} is not JSON; nothing was done"
        log.warning("%s: a message that is not JSON was answered with a parse error", where)
        error = ErrorData(code=-32700, message=problem)
        return JSONRPCError(jsonrpc="2.0", id=None, error=error)
    ident = _usable_id(data)
    problem = _what_is_wrong(data)
    log.warning("%s: an invalid request (id %s) was answered: %s", where, _shown_id(ident), problem)
    error = ErrorData(code=-32600, message=f"Invalid request: {problem}; nothing was done")
    return JSONRPCError(jsonrpc="2.0", id=ident, error=error)


def unanswerable_id(line: str, where: str = "stdin") -> Any:
    """The answer to a line the SDK read as a notification (no answer due) although it
    has an ``id`` member, one no answer can be addressed to (null, true, 1.5, an
    object): the SDK ignores the member, and its sender waits forever. JSON-RPC 2.0
    answers a request whose id cannot be determined with id null. None for a line
    without an ``id``: a notification, answered by nothing."""
    try:
        data = json.loads(line)
    except ValueError:
        return None  # not JSON: answered -32700 by unreadable_line, not here
    if not isinstance(data, dict) or "id" not in data:
        return None
    from mcp_types import ErrorData, JSONRPCError

    problem = (
        f"id must be a string or a whole number (got {_kind(data['id'])}), so no answer "
        "can be addressed to this request"
    )
    log.warning("%s: an invalid request (id null) was answered: %s", where, problem)
    error = ErrorData(code=-32600, message=f"Invalid request: {problem}; nothing was done")
    return JSONRPCError(jsonrpc="2.0", id=None, error=error)


def bad_call_params(line: str, where: str = "stdin") -> Any:
    """The answer to a ``tools/call`` request whose params the SDK would refuse as
    -32602 "Invalid request parameters", with ``data`` "" (no word of what is wrong):
    -32602 naming it ("tools/call needs params.name, the tool's name", "params.arguments
    must be an object"), to the request's id. None for any other line (another method,
    params the SDK takes, an envelope :func:`unreadable_line` answers)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None  # not JSON: answered -32700 by unreadable_line, not here
    if not isinstance(data, dict) or data.get("method") != "tools/call":
        return None
    ident = _usable_id(data)
    params = data.get("params")
    if ident is None or (params is not None and not isinstance(params, dict)):
        return None
    problem = _call_params_problem(params or {})
    if problem is None:
        return None
    from mcp_types import ErrorData, JSONRPCError

    log.warning("%s: tools/call (id %s) was refused: %s", where, _shown_id(ident), problem)
    error = ErrorData(code=-32602, message=f"Invalid params: {problem}; nothing was done")
    return JSONRPCError(jsonrpc="2.0", id=ident, error=error)


def _call_params_problem(params: dict[str, Any]) -> str | None:
    """What keeps ``params`` from being a tools/call's, in the keys every protocol
    version has (name, arguments, _meta); None when they are fine (the SDK judges the
    rest)."""
    listed = "tools/list lists them"
    if "name" not in params:
        return f"tools/call needs params.name, the tool's name ({listed})"
    if not isinstance(params["name"], str):
        got = _kind(params["name"])
        return f"params.name must be text, the tool's name (got {got}; {listed})"
    arguments = params.get("arguments")
    if arguments is not None and not isinstance(arguments, dict):
        return (
            "params.arguments must be an object, the tool's arguments by name "
            f"(got {_kind(arguments)})"
        )
    meta = params.get("_meta")
    if meta is not None and not isinstance(meta, dict):
        return f"params._meta must be an object (got {_kind(meta)})"
    return None


def _usable_id(data: Any) -> int | str | None:
    if not isinstance(data, dict):
        return None
    given = data.get("id")
    if isinstance(given, int) and not isinstance(given, bool):
        return given
    if isinstance(given, str) and _encodable(given):
        return given
    return None


def _what_is_wrong(data: Any) -> str:
    """The first thing that keeps ``data`` from being a JSON-RPC 2.0 message."""
    if isinstance(data, list):
        return "a batch (a JSON array) is not served: send each request as a line of its own"
    if not isinstance(data, dict):
        return f"a message is a JSON object (got {_kind(data)})"
    if data.get("jsonrpc") != "2.0":
        got = data.get("jsonrpc")
        shown = repr(got) if isinstance(got, str) and len(got) <= 20 else _kind(got)
        return f'jsonrpc must be "2.0" (got {shown})'
    if "id" in data and _usable_id(data) is None and not isinstance(data["id"], str):
        return f"id must be a string or a whole number (got {_kind(data['id'])})"
    if "method" in data and not isinstance(data["method"], str):
        return f"method must be text (got {_kind(data['method'])})"
    if "method" not in data and "result" not in data and "error" not in data:
        return "it has no method"
    if data.get("params") is not None and not isinstance(data["params"], dict):
        return f"params must be an object (got {_kind(data['params'])})"
    if not _encodable(json.dumps(data, ensure_ascii=False)):
        return (
            "it holds text that is not valid Unicode (a lone UTF-16 surrogate), which "
            "cannot be read"
        )
    return "it is not a JSON-RPC request, notification or response"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number" if isinstance(value, float) else "a whole number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _shown_id(ident: int | str | None) -> str:
    return "null" if ident is None else repr(ident)[:40]


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
