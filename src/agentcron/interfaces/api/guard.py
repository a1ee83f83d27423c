"""Who may talk to the API and the dashboard, and how much: one ASGI middleware in
front of every route.

* **Token.** With ``api.token`` set, every request carries it: ``Authorization:
  Bearer TOKEN`` (scripts, Prometheus) or HTTP Basic with the token as password
  (a browser asks for it once; any user name). Compared in constant time. A token is
  never read from a URL, so none ends up in a log or a browser history.
* **Host.** Without a token (loopback only, the default) the ``Host`` header must
  name this machine (``localhost``, ``127.0.0.1``, ``[::1]``): a web page whose
  domain an attacker points at 127.0.0.1 (DNS rebinding) gets 403.
* **CSRF.** No cookies are read. An unsafe method (POST, PATCH, PUT, DELETE) whose
  ``Origin`` is another site's, or which a browser marks ``Sec-Fetch-Site:
  cross-site``, gets 403; API writes must send JSON (a plain HTML form cannot).
* **Size.** A body larger than ``max_body_bytes`` gets 413 before it is read whole.

It also says who is acting, for the audit trail: ``X-Actor`` when the client names
itself (at most 100 characters), else the client's address; through ``api`` for
paths under ``/api/``, ``dashboard`` otherwise.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from agentcron._service.base import Actor, current_actor

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ACTOR = re.compile(r"[^\w .@:/+(),#-]")  # what an X-Actor may hold (anything else: 400)
ACTOR_MAX = 100
# On every answer unless it says otherwise: no page of the dashboard may be framed by
# another site (a framed "Pause" button clicked through a decoy page would pass the
# Origin check: the form's origin is the dashboard's own), no type is guessed from the
# content, and pages showing a task's state are not kept in shared or browser caches.
SAFE_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def problem_response(
    status: int,
    title: str,
    detail: str,
    kind: str,
    headers: dict[str, str] | None = None,
    field: str | None = None,
) -> JSONResponse:
    return JSONResponse(
        {
            "type": f"urn:agentcron:problem:{kind}",
            "title": title,
            "status": status,
            "detail": detail,
            "field": field,
            "problems": [],
            # the key every problem body has (null: the detail says what to do); these
            # bodies, written before the app's routes, lacked it (outside-in probe)
            "advice": None,
        },
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def _host_name(host: str) -> str:
    """``[::1]:8765`` -> ``::1``, ``localhost:80`` -> ``localhost``.

    Only a whole name is taken out: a header that is not ``name``, ``name:port``,
    ``[address]`` or ``[address]:port`` (``[::1].evil.example``, ``localhost:x``) is
    returned as it is, which names no allowed host."""
    host = host.strip().lower()
    if host.startswith("["):
        close = host.find("]")
        rest = host[close + 1 :] if close > 0 else None
        if rest is not None and (rest == "" or _is_port(rest)):
            return host[1:close]
        return host
    if host.count(":") == 1:
        name, port = host.split(":")
        return name if port.isascii() and port.isdigit() else host
    return host


def _is_port(text: str) -> bool:
    """``:8765``: a colon and digits."""
    return text.startswith(":") and text[1:].isascii() and text[1:].isdigit()


def _netloc(scheme: str, host: str) -> str:
    """A host[:port] with the scheme's default port dropped, for comparisons."""
    host = host.strip().lower()
    default = _DEFAULT_PORTS.get(scheme)
    if default is not None and host.endswith(f":{default}"):
        return host[: -len(f":{default}")]
    return host


def token_matches(authorization: str, token: str) -> bool:
    """Bearer TOKEN, or Basic with TOKEN as the password, compared in constant time."""
    scheme, _, value = authorization.strip().partition(" ")
    given = ""
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        given = decoded.partition(":")[2]
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def _utf8(value: str) -> str:
    """A header as its sender wrote it: HTTP hands headers over as Latin-1, so a UTF-8
    name ("José", "田中") read as is was recorded garbled in the audit trail."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _headers_only(send: Send) -> Send:
    """``send`` that passes a response's start and drops its body (a HEAD's answer)."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.body":
            if message.get("more_body", False):
                return
            message = {"type": "http.response.body", "body": b""}
        await send(message)

    return sending


def _with_safe_headers(message: Message) -> Message:
    """``message`` (a response's start) with :data:`SAFE_HEADERS` it does not set itself."""
    headers = list(message.get("headers", []))
    present = {name.lower() for name, _ in headers}
    headers += [(name, value) for name, value in SAFE_HEADERS if name not in present]
    return {**message, "headers": headers}


class Guard:
    """The middleware; ``token`` None means loopback mode (Host checked instead)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        max_body_bytes: int,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.allowed_hosts = {h.lower() for h in (*LOOPBACK_NAMES, *allowed_hosts)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "HEAD":
            # A GET's answer without its body (RFC 9110): uptime monitors ask with HEAD,
            # and every route answered 405.
            scope, send = {**scope, "method": "GET"}, _headers_only(send)
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        client = scope.get("client")
        declared = _utf8(headers.get("x-actor", "")).strip()  # checked by _refusal
        name = declared or (f"client {client[0]}" if client else "client")
        via = "api" if scope["path"].startswith("/api/") else "dashboard"
        token = current_actor.set(Actor(name, via))
        too_large = False
        replaced = False

        async def sized_receive() -> Message:
            nonlocal too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen = scope.setdefault("agentcron.body_bytes", 0) + len(message.get("body", b""))
                scope["agentcron.body_bytes"] = seen
                if seen > self.max_body_bytes:
                    # the app sees the client go away and stops reading; its answer
                    # (an error of its own) is replaced by the 413 below
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if not too_large:
                if message["type"] == "http.response.start":
                    message = _with_safe_headers(message)
                await send(message)
                return
            if not replaced:
                replaced = True
                await self._too_large()(scope, _no_body, send)

        try:
            await self.app(scope, sized_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
            if not replaced:
                await self._too_large()(scope, _no_body, send)
        finally:
            current_actor.reset(token)

    def _too_large(self) -> JSONResponse:
        return problem_response(
            413,
            "Request body too large",
            f"the body is larger than {self.max_body_bytes} bytes",
            "too-large",
        )

    def _refusal(self, scope: Scope, headers: Headers) -> JSONResponse | None:
        path = scope["path"]
        method = scope["method"]
        if self.token is not None:
            # /mcp takes the agents' own tokens (interfaces.mcp checks them), not api.token
            mcp = path == "/mcp" or path.startswith("/mcp/")
            if not mcp and not token_matches(headers.get("authorization", ""), self.token):
                challenge = (
                    'Bearer realm="agentcron"'
                    if path.startswith(("/api/", "/metrics"))
                    else 'Basic realm="agentcron", charset="UTF-8"'
                )
                return problem_response(
                    401,
                    "Unauthorized",
                    "this agentcron API needs its token: send 'Authorization: Bearer TOKEN' "
                    "(the api.token of the daemon's config)",
                    "unauthorized",
                    {"WWW-Authenticate": challenge},
                )
        elif _host_name(headers.get("host", "")) not in self.allowed_hosts:
            return problem_response(
                403,
                "Host not allowed",
                "without api.token the API answers only requests addressed to this machine "
                "(localhost, 127.0.0.1, [::1]); set api.token to serve other names",
                "forbidden-host",
            )
        if method in _UNSAFE:
            origin = headers.get("origin")
            scheme = scope.get("scheme", "http")
            if origin is not None and origin != "null":
                parts = urlsplit(origin)
                if _netloc(parts.scheme, parts.netloc) != _netloc(scheme, headers.get("host", "")):
                    return _cross_site(origin)
            if origin == "null" or headers.get("sec-fetch-site") == "cross-site":
                # the browser's own word wins over an Origin that matches (as the docs say)
                return _cross_site(origin or "another site")
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                return self._too_large()
            bad_actor = _actor_refusal(_utf8(headers.get("x-actor", "")))
            if bad_actor is not None:
                return bad_actor
            if path.startswith("/api/") and _has_body(headers):
                ctype = headers.get("content-type", "").split(";")[0].strip().lower()
                # application/merge-patch+json too (docs/api.md calls PATCH bodies JSON
                # merge patches, and that type was refused): no HTML form sends a
                # +json type, which is what this check is for
                json_type = ctype == "application/json" or (
                    ctype.startswith("application/") and ctype.endswith("+json")
                )
                if not json_type:
                    return problem_response(
                        415,
                        "JSON expected",
                        f"send the body as application/json (got {ctype or 'no content type'})",
                        "unsupported-media-type",
                    )
        return None


def _actor_refusal(actor: str) -> JSONResponse | None:
    """A 400 for an X-Actor the audit trail would not keep as written: it dropped the
    characters it does not take ("ana <b>x</b>" was recorded and told as "ana bx/b")
    and cut it at 100 characters, without a word (outside-in probe)."""
    bad = _ACTOR.search(actor)
    if bad is not None:
        return problem_response(
            400,
            "Bad X-Actor",
            f"X-Actor: {bad.group()!r} cannot be kept in the audit trail; a name holds "
            "letters, digits, spaces and . @ : / + - ( ) , #",
            "bad-request",
            field="X-Actor",
        )
    if len(actor.strip()) > ACTOR_MAX:
        return problem_response(
            400,
            "Bad X-Actor",
            f"X-Actor: {len(actor.strip())} characters; at most {ACTOR_MAX}",
            "bad-request",
            field="X-Actor",
        )
    return None


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "chunked" in headers.get("transfer-encoding", "").lower()


def _cross_site(origin: str) -> JSONResponse:
    return problem_response(
        403,
        "Cross-site request refused",
        f"a change requested from {origin} was refused: only pages served by this "
        "agentcron may change it",
        "cross-site",
    )
