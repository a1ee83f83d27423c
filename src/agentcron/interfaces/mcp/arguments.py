"""Arguments of the wrong type, said in agentcron's words.

The SDK checks a tool call's arguments against the tool's signature before the tool
runs, and answers a mismatch with pydantic's own text ("1 validation error for
schedule_taskArguments / timeout / Input should be a valid string [type=string_type,
input_value=-5…] For further information visit https://errors.pydantic.dev/…"):
every other refusal of the tools is one line naming the field. :class:`Server` says
these in the same style, without the values (they are the caller's data), and keeps
pydantic's error as the cause, so the SDK's log still names only the fields.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from pydantic import ValidationError

# arguments that are durations, written as text ('30s', '5m', '1h')
_DURATIONS = frozenset({"timeout", "every", "since", "kill_grace"})
_TYPES = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "missing": "is required",
    "extra_forbidden": "is not an argument of this tool",
}


def refusal(error: ValidationError) -> str:
    """One line naming each wrong argument: ``arguments not accepted: timeout: must be
    text such as '30s' or '5m' (got a number)``."""
    said = [_one(e) for e in error.errors()]
    return "arguments not accepted: " + "; ".join(dict.fromkeys(said))


def _one(e: Any) -> str:
    where = ".".join(str(part) for part in e.get("loc", ()) if part != "")
    kind = str(e.get("type", ""))
    words = _TYPES.get(kind)
    if words is None:
        message = str(e.get("msg", "is not valid"))
        words = message[:1].lower() + message[1:]
    last = where.rsplit(".", 1)[-1]
    if kind == "string_type" and last in _DURATIONS:
        words += " such as '30s' or '5m'"
    if kind not in ("missing", "extra_forbidden"):
        words += f" (got {_kind_of(e.get('input'))})"
    return f"{where or 'arguments'}: {words}"


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class Server(MCPServer):
    """The SDK's server, with wrong arguments said as :func:`refusal` says them, and
    over stdio a line that is no message answered (:func:`unreadable_line`)."""

    async def run_stdio_async(self) -> None:
        lowlevel = getattr(self, "_lowlevel_server", None)
        if lowlevel is None:  # an SDK that moved it: serve as it serves
            await super().run_stdio_async()
            return
        import anyio
        from mcp.server.stdio import stdio_server
        from mcp.shared.message import SessionMessage

        async with stdio_server() as (read_stream, write_stream):
            send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)

            async def screen() -> None:
                async with send:
                    async for item in read_stream:
                        if isinstance(item, Exception):
                            answer = SessionMessage(unreadable_line(item))
                            await write_stream.send(answer)
                            continue
                        await send.send(item)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(screen)
                await lowlevel.run(receive, write_stream, lowlevel.create_initialization_options())
                tasks.cancel_scope.cancel()

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            # the SDK's prefix kept, as on every other refusal of a tool
            raise ToolError(f"Error executing tool {name}: {refusal(cause)}") from cause


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
