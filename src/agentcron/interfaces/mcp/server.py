"""The MCP server: agentcron's tools with descriptions that tell a model exactly
what each accepts and refuses.

One :class:`~mcp.server.mcpserver.MCPServer` per transport: the stdio server is
built for one caller (``agentcron mcp --agent NAME``); the HTTP endpoint's server
has none and reads the caller from each request (:mod:`.http`).
"""

from __future__ import annotations

import difflib
import json
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import ToolAnnotations
from pydantic import ValidationError

from agentcron.config.agents import AgentsConfig
from agentcron.interfaces.mcp.arguments import refusal
from agentcron.interfaces.mcp.failures import failure
from agentcron.interfaces.mcp.policy import Caller
from agentcron.interfaces.mcp.stdio import bad_call_params, unanswerable_id, unreadable_line
from agentcron.interfaces.mcp.tools import Tools
from agentcron.service import Service

INSTRUCTIONS = """\
agentcron runs tasks on a schedule and never fails silently: every fire is a recorded run.
Your tasks live in your namespace (list_tasks shows it and your limits); give a short
name and it becomes NAMESPACE.NAME. Schedules: cron (5 fields, or @hourly/@daily...),
every (30m, 2h, 1d) or at (one time, ISO 8601; without an offset it is read in the
task's timezone). Times you get back are ISO 8601 with the offset of the task's zone.
A refused call says which limit stopped it; change the request rather than retrying it.
"""

_NAME = (
    "name: your task's short name ('digest') or its full name ('agent.you.digest'); a task "
    "outside your namespace only when the owner granted it to you."
)
_SCHEDULE = (
    "Exactly one schedule: cron (5 fields: minute hour day-of-month month day-of-week, "
    "or @hourly, @daily, @weekly, @monthly, @yearly), every (a duration: 30s, 15m, 2h, 1d; "
    "fires on a fixed grid) or at (one time: ISO 8601 such as 2026-06-01T08:00, read in "
    "timezone, or with an offset, 2026-06-01T08:00+02:00). timezone: an IANA name "
    "(Europe/Berlin); default the owner's. A repeating schedule may not fire more often "
    "than your min_period (list_tasks shows your limits)."
)
_ACTION = (
    "Exactly one action, of the kinds you are allowed (list_tasks: limits.actions): "
    "http {url, method, headers, body, expect}; llm {model: a model profile name from "
    "limits.model_profiles, prompt, system, max_tokens, temperature}, never base_url or "
    "api_key_env (the owner's); command [argv...] and python {function: 'module:function', "
    "args, kwargs} only when granted. No value may contain ${...} (write $${ for a "
    "literal ${)."
)


class Server(MCPServer):
    """The SDK's server, with wrong arguments said as :func:`refusal` says them, and
    over stdio a line that is no message answered (:func:`unreadable_line`), as is a
    tools/call whose params are malformed (:func:`bad_call_params`)."""

    async def run_stdio_async(self) -> None:
        lowlevel = getattr(self, "_lowlevel_server", None)
        if lowlevel is None:  # an SDK that moved it: serve as it serves
            await super().run_stdio_async()
            return
        import anyio
        from mcp.server.stdio import stdio_server
        from mcp.shared.message import SessionMessage
        from mcp_types import JSONRPCNotification, JSONRPCRequest

        lines = _Lines()
        async with stdio_server(stdin=cast(Any, lines)) as (read_stream, write_stream):
            send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)

            async def screen() -> None:
                async with send:
                    async for item in read_stream:
                        # the SDK makes one item of each line, in order
                        line = lines.read.popleft() if lines.read else ""
                        if isinstance(item, Exception):
                            answer = SessionMessage(unreadable_line(line))
                            await write_stream.send(answer)
                            continue
                        refused = None
                        if isinstance(item.message, JSONRPCNotification):
                            refused = unanswerable_id(line)
                        elif (
                            isinstance(item.message, JSONRPCRequest)
                            and item.message.method == "tools/call"
                        ):
                            refused = bad_call_params(line)
                        if refused is not None:
                            await write_stream.send(SessionMessage(refused))
                            continue
                        await send.send(item)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(screen)
                await lowlevel.run(receive, write_stream, lowlevel.create_initialization_options())
                tasks.cancel_scope.cancel()

    async def _unknown_arguments(self, name: str, arguments: dict[str, Any]) -> str:
        for tool in await super().list_tools():
            if tool.name == name:
                known = list(tool.input_schema.get("properties") or {})
                return _not_arguments(arguments or {}, known)
        return ""  # an unknown tool: the SDK says so

    async def list_tools(self) -> Any:
        """The tools, each input schema closed (``additionalProperties: false``): an
        argument that is not one of the tool's is refused, not ignored (see call_tool)."""
        listed = await super().list_tools()
        for tool in listed:
            schema = dict(tool.input_schema)
            schema["additionalProperties"] = False
            tool.input_schema = schema
        return listed

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        # The SDK's argument models ignore a key they do not know: an agent that wrote
        # `timout` or `retries` was told its task was scheduled, without either.
        size = len(json.dumps(arguments or {}, ensure_ascii=False, default=str).encode())
        if size > MAX_ARGUMENTS_BYTES:  # as the HTTP transport's 413: stdio had no bound
            raise ToolError(
                f"Error executing tool {name}: arguments not accepted: {size} bytes, more "
                f"than the {MAX_ARGUMENTS_BYTES} a call may carry"
            )
        unknown = await self._unknown_arguments(name, arguments)
        if unknown:
            raise ToolError(f"Error executing tool {name}: arguments not accepted: {unknown}")
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError as exc:
            # a failure no tool expects (a locked database, a bug): said by its class,
            # never the SDK's bare "Error executing tool NAME" (see .failures)
            cause = exc.__cause__
            while isinstance(cause, UnexpectedToolError) and cause.__cause__ is not None:
                cause = cause.__cause__
            said = failure(name, cause if cause is not None else exc)
            raise ToolError(f"Error executing tool {name}: {said}") from exc
        except ToolError as exc:
            cause = exc.__cause__
            if not isinstance(cause, ValidationError):
                raise
            # the SDK's prefix kept, as on every other refusal of a tool
            raise ToolError(f"Error executing tool {name}: {refusal(cause)}") from cause


MAX_ARGUMENTS_BYTES = 1024 * 1024  # a tool call's arguments, as JSON (the API's body bound)


class _Lines:
    """stdin's lines as the SDK's reader iterates them (UTF-8, undecodable bytes
    replaced, as it reads them itself), each also kept until the server pairs it with
    the item the SDK made of it: its parser drops an ``id`` it cannot use, and a
    refused line's error does not always hold the line."""

    def __init__(self) -> None:
        import io
        import sys

        import anyio

        self._text = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
        self._file = anyio.wrap_file(self._text)
        self.read: deque[str] = deque()

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        line = await self._file.readline()
        if not line:
            raise StopAsyncIteration
        self.read.append(line)
        return line


def _not_arguments(given: dict[str, Any], known: list[str]) -> str:
    """``timout: is not an argument of this tool (did you mean 'timeout'?)``, one per key
    of ``given`` that is not in ``known`` ("" when all are)."""
    said = []
    for key in sorted(set(given) - set(known)):
        near = difflib.get_close_matches(key, known, n=1)
        if near:
            hint = f" (did you mean {near[0]!r}?)"
        else:
            hint = f" (it takes {', '.join(known)})" if known else " (it takes none)"
        said.append(f"{key[:100]}: is not an argument of this tool{hint}")
    return "; ".join(said)


def build_server(
    service: Callable[[], Service], agents: AgentsConfig, caller: Caller | None = None
) -> MCPServer:
    """The server; ``service`` is called per tool call (the HTTP app makes its service
    when it starts), ``caller`` is the stdio agent (None: from each HTTP request)."""
    from agentcron import __version__

    server: MCPServer = Server(
        "agentcron",
        title="agentcron scheduler",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    tools = Tools(service, agents, caller)
    read = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    def write(destructive: bool = False, idempotent: bool = False) -> ToolAnnotations:
        return ToolAnnotations(
            read_only_hint=False,
            destructive_hint=destructive,
            idempotent_hint=idempotent,
            open_world_hint=False,
        )

    server.add_tool(
        tools.list_tasks,
        name="list_tasks",
        title="List your tasks",
        description="Your tasks (and those the owner granted you) with schedule, next run, "
        "last result and health, and your limits: namespace, max_tasks, min_period, allowed "
        "actions, model profiles, and whether you may schedule from where you run.",
        annotations=read,
    )
    server.add_tool(
        tools.get_task,
        name="get_task",
        title="Show one task",
        description=f"One task: its definition (secrets removed), the next fires resolved "
        f"in its zone (DST notes included) and its five newest runs. {_NAME}",
        annotations=read,
    )
    server.add_tool(
        tools.schedule_task,
        name="schedule_task",
        title="Schedule a new task",
        description="Create a task in your namespace and return it with its next fires "
        f"resolved. name: a short name (letters, digits, '_', '-'). {_SCHEDULE} {_ACTION} "
        "deliver: Apprise URLs that receive each successful run's output. paused: create "
        "it paused. timeout: a duration (default 1h). Refused: a name that exists already, "
        "more tasks than your max_tasks, a forbidden action, too short a period, and any "
        "scheduling from inside a scheduled run unless the owner allowed it.",
        annotations=write(),
    )
    server.add_tool(
        tools.update_task,
        name="update_task",
        title="Change a task",
        description="Change some keys of one of your tasks; keys you leave out stay. A "
        "new schedule (cron, every or at) replaces the old one, a new action the old one; "
        f"deliver: [] removes delivery, description: '' removes it. {_NAME} The same "
        f"rules as schedule_task: {_SCHEDULE} {_ACTION} Tasks from the owner's config "
        "file cannot be changed (only paused).",
        annotations=write(idempotent=True),
    )
    server.add_tool(
        tools.pause_task,
        name="pause_task",
        title="Pause a task",
        description="Stop a task firing until resume_task; a run in progress finishes, "
        f"waiting ones are cancelled. reason: one line, kept and shown. {_NAME}",
        annotations=write(idempotent=True),
    )
    server.add_tool(
        tools.resume_task,
        name="resume_task",
        title="Resume a task",
        description="Let a paused task fire again, from now on (fires due while it was "
        f"paused are not made up). {_NAME}",
        annotations=write(idempotent=True),
    )
    server.add_tool(
        tools.cancel_task,
        name="cancel_task",
        title="Cancel (delete) a task",
        description="Delete one of your tasks for good; its run history stays readable "
        f"with list_runs. Tasks from the owner's config file cannot be. {_NAME}",
        annotations=write(destructive=True),
    )
    server.add_tool(
        tools.trigger_task,
        name="trigger_task",
        title="Run a task now",
        description="Start one run of a task now, besides its schedule. Returns the run at "
        "once (its id and status 'pending') and never waits for it: read it later with "
        f"get_run. {_NAME}",
        annotations=write(),
    )
    server.add_tool(
        tools.redeliver_run,
        name="redeliver_run",
        title="Deliver a run's output again",
        description="Send again, from the kept file, a run's output whose delivery gave "
        "up (a target fixed since): its deliveries that failed for good start again from "
        "their first attempt, and the run is returned with them pending; how they end is "
        "told to the owner as any delivery's. Refused, with the reason, when a delivery "
        "is still trying, every target was reached, the task had no deliver targets, or "
        "the kept file is gone. Only runs of tasks you may change.",
        annotations=write(),
    )
    server.add_tool(
        tools.list_runs,
        name="list_runs",
        title="List runs",
        description="Runs, newest first: of one task (task), or, without task, of the "
        "tasks you have now (those list_tasks shows). A cancelled task's runs are kept "
        "but left out of that list, which reads the history of each task you have (an "
        "agent granted every task reads all history, so gets them too): ask for them "
        "with task set to its name, as cancel_task returned it. "
        "status: one or more of pending, running, retrying, succeeded, failed, skipped, "
        "missed, superseded, cancelled, expired, comma-separated. limit: 1-100 (20).",
        annotations=read,
    )
    server.add_tool(
        tools.get_run,
        name="get_run",
        title="Show one run",
        description="One run by id: its status, every attempt (error class, explanation, "
        "exit code, what to do about it, model tokens) and the last 4000 characters of "
        "its output, secrets redacted.",
        annotations=read,
    )
    server.add_tool(
        tools.next_runs,
        name="next_runs",
        title="Upcoming fires",
        description="The next fire times of a task (count 1-50, default 5) after start "
        "(ISO 8601; without an offset it is read in the task's zone; default now), each "
        "as UTC and as local time with a note when DST moved or doubled it. The start "
        f"is echoed back resolved. {_NAME}",
        annotations=read,
    )
    return server
