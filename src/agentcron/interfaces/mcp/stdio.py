"""``agentcron mcp``: the tools for one agent over stdin/stdout, and how the server
knows it was started from inside a scheduled run.

A run gets ``AGENTCRON_SLOT`` in its environment. An agent started by a run (Claude
Code in a ``command`` task) starts this server, but MCP clients pass only a few
variables to the servers they spawn, so the variable is looked for in this process
and in each of its ancestors (``/proc/PID/environ``, Linux); where ``/proc`` is not
there, only this process's environment counts. A line of stdin that is no JSON-RPC
message is answered, not dropped (:func:`unreadable_line`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentcron.interfaces.mcp.policy import SLOT_ENV

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


def unreadable_line(exc: Exception) -> Any:
    """The JSON-RPC answer to a line of stdin that is not a message: a parse error
    (id null) when it is not JSON, else an invalid request to the id it carries (a
    lone UTF-16 surrogate, which Python's json accepts and the SDK's parser does not).
    The SDK drops such a line without a word, and its client waits forever (outside-in
    probe). Nothing of the line is echoed: it may not even be encodable."""
    import json

    from mcp_types import ErrorData, JSONRPCError

    raw: Any = None
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        raw = errors[0].get("input") if errors else None
    ident: int | str | None = None
    if isinstance(raw, str | bytes | bytearray):
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if isinstance(data, dict):
            given = data.get("id")
            if (isinstance(given, int) and not isinstance(given, bool)) or (
                isinstance(given, str) and _encodable(given)
            ):
                ident = given
    if ident is None:
        error = ErrorData(code=-32700, message="Parse error: the line is not a JSON-RPC message")
    else:
        error = ErrorData(
            code=-32600,
            message="Invalid request: it holds text that is not valid JSON-RPC or not valid "
            "Unicode (a lone UTF-16 surrogate); nothing was done",
        )
    return JSONRPCError(jsonrpc="2.0", id=ident, error=error)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
