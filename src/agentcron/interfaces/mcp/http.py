"""The MCP endpoint of the daemon's web app: streamable HTTP at ``/mcp``.

Each agent sends its own bearer token (``agents.clients.NAME.token`` or
``token_env``); the token says who calls, and the caller's bounds apply to every
tool. A request without a known token gets 401 before the MCP layer sees it. A
request from inside a scheduled run says so with ``X-Agentcron-Slot`` (an agent's
harness passes on its ``AGENTCRON_SLOT``), and is held to ``from_runs``.

The endpoint is stateless (every POST is one exchange, answered as JSON): no
session outlives a request, so a restarted daemon loses nothing an agent holds. A
body that is no valid JSON-RPC message gets a 400 in plain words, as a line of stdio
does (:mod:`.stdio`). Other methods get 405 (``Allow: POST``): a GET opened the SDK's
event stream, which in a stateless endpoint carries nothing but pings and never ends.
The session manager still runs for the app's lifetime: :func:`mount_mcp` wraps the
app's lifespan so it is entered when the app starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ErrorData, JSONRPCError
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentcron.config.agents import AgentsConfig, client_for_token
from agentcron.interfaces.mcp.policy import SLOT_HEADER, Caller
from agentcron.interfaces.mcp.server import build_server
from agentcron.interfaces.mcp.stdio import bad_call_params, unanswerable_id, unreadable_line
from agentcron.interfaces.mcp.tools import CALLER_KEY
from agentcron.service import Service

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]

MCP_PATH = "/mcp"


class McpEndpoint:
    """ASGI app: the agent's token checked, the caller left in the scope, then MCP."""

    def __init__(
        self, manager: StreamableHTTPSessionManager, agents: AgentsConfig, tokens: dict[str, str]
    ) -> None:
        self.manager = manager
        self.agents = agents
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        scheme, _, value = headers.get("authorization", "").strip().partition(" ")
        given = value.strip() if scheme.lower() == "bearer" else ""
        name = client_for_token(self.tokens, given) if given else None
        if name is None:
            await _unauthorized(bool(given))(scope, receive, send)
            return
        in_run = bool(headers.get(SLOT_HEADER, "").strip())
        said = "the X-Agentcron-Slot header was sent"
        scope[CALLER_KEY] = Caller(name, self.agents.clients[name], in_run, said)
        if scope.get("method") != "POST":
            # stateless: no event stream to open (the SDK's GET held one open forever,
            # pinging), no session to end
            await _not_allowed()(scope, receive, send)
            return
        if "json" in headers.get("content-type", "").lower():
            body = await _body(receive)
            refused = _screened(body)
            if refused is not None:
                await refused(scope, receive, send)
                return
            receive = _replay(body, receive)
        await self.manager.handle_request(scope, receive, send)


def _not_allowed() -> JSONResponse:
    error = JSONRPCError(
        jsonrpc="2.0",
        id=None,
        error=ErrorData(
            code=-32600,
            message="Method Not Allowed: this endpoint is stateless (each request is one "
            "exchange, answered as JSON): send each JSON-RPC request as a POST; there is "
            "no event stream to open and no session to end",
        ),
    )
    return JSONResponse(
        error.model_dump(by_alias=True, exclude_unset=True),
        status_code=405,
        headers={"Allow": "POST"},
    )


async def _body(receive: Receive) -> bytes:
    """The whole body (the app's guard bounds it)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives ``body`` once, then what the client sends next."""
    given = False

    async def again() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        message: Message = await receive()
        return message

    return again


def _screened(body: bytes) -> JSONResponse | None:
    """A 400 in plain words for a body that is no valid JSON-RPC message, or a request
    whose id no answer can be addressed to (as stdio answers them: the SDK said the
    first in pydantic's words, "6 validation errors for union[…] … errors.pydantic.dev",
    and accepted the second as a notification); a tools/call whose params are malformed
    answered -32602 saying which (:func:`bad_call_params`); None for a body it may
    serve."""
    import pydantic_core
    from mcp_types import JSONRPCNotification, JSONRPCRequest, jsonrpc_message_adapter

    text = body.decode("utf-8", "replace")
    try:
        message = jsonrpc_message_adapter.validate_python(
            pydantic_core.from_json(body), by_name=False
        )
    except ValueError:  # pydantic's ValidationError is one
        answer = unreadable_line(text, where="/mcp")
    else:
        if isinstance(message, JSONRPCRequest):
            if message.method != "tools/call":
                return None
            # malformed params: an error of the call, answered 200 as the SDK answers
            # the other errors of a request it read (the SDK's was "Invalid request
            # parameters", with nothing of what is wrong)
            refused = bad_call_params(text, where="/mcp")
            if refused is None:
                return None
            return JSONResponse(refused.model_dump(by_alias=True, exclude_unset=True))
        if not isinstance(message, JSONRPCNotification):
            return None
        answer = unanswerable_id(text, where="/mcp")
        if answer is None:
            return None
    return JSONResponse(answer.model_dump(by_alias=True, exclude_unset=True), status_code=400)


def _unauthorized(sent: bool) -> JSONResponse:
    detail = (
        "this token belongs to no agent in agents.clients"
        if sent
        else "send 'Authorization: Bearer TOKEN', the token of an agent in the config's "
        "agents.clients (token or token_env)"
    )
    return JSONResponse(
        {
            "type": "urn:agentcron:problem:unauthorized",
            "title": "Unauthorized",
            "status": 401,
            "detail": detail,
            "field": None,
            "problems": [],
            "advice": None,  # the key every problem body has (the API's)
        },
        status_code=401,
        media_type="application/problem+json",
        headers={"WWW-Authenticate": 'Bearer realm="agentcron-mcp"'},
    )


def mount_mcp(
    app: FastAPI,
    agents: AgentsConfig,
    service: Callable[[], Service] | None = None,
    *,
    path: str = MCP_PATH,
) -> None:
    """Serve the MCP tools at ``path`` of ``app``; its lifespan now also runs the MCP
    session manager. ``service`` defaults to the app's own (``app.state.service``,
    made when the app starts).

    Raises ValueError when a client's ``token_env`` is unset (refuse to start rather
    than serve an agent that cannot get in)."""
    tokens = agents.tokens()

    def app_service() -> Service:
        found: Service = app.state.service
        return found

    server = build_server(service or app_service, agents)
    # The web app's guard checks the Host (loopback mode) and cross-site writes for
    # every path; the SDK's own check would refuse the daemon's other names.
    server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    manager = server.session_manager
    endpoint = McpEndpoint(manager, agents, tokens)
    # first, so that no catch-all route of the dashboard shadows it
    app.router.routes.insert(0, Route(path, endpoint=endpoint, methods=["GET", "POST", "DELETE"]))
    outer = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(started: Any) -> AsyncIterator[Any]:
        async with outer(started) as state, manager.run():
            yield state

    app.router.lifespan_context = lifespan
