"""The ``http`` action: one request; the response body is the run's output.

The task's ``timeout`` is a deadline for the whole exchange (connecting, sending,
a server that trickles its body), not a per-read limit, so a slow server cannot
stretch a run beyond it. The body streams to the output file; only its start is
held in memory.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2

from agentcron import http_client
from agentcron.actions.base import ActionContext, ActionResult
from agentcron.actions.command import say_duration
from agentcron.actions.output import OUTPUT_MEMORY_CAP, open_output
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import FailureInfo
from agentcron.model.task import HttpSpec

FAILURE_BODY_BYTES = 4096
_SECRET_HEADER = re.compile(r"authorization|cookie|key|token|secret|password", re.IGNORECASE)


class HttpAction:
    """Sends ``spec.http``; success is a status in ``expect``, or any 2xx when it is empty."""

    async def run(self, ctx: ActionContext) -> ActionResult:
        http = ctx.spec.http
        if http is None:
            raise ValueError(f"task {ctx.task!r} has no http request")
        seconds = ctx.timeout.total_seconds()
        secrets = tuple(v for k, v in http.headers.items() if v and _SECRET_HEADER.search(k))
        fd = open_output(ctx.output_file)
        try:
            async with asyncio.timeout(seconds) as scope:
                status, reason, headers, head = await _exchange(http, seconds, fd)
        except asyncio.CancelledError:
            raise
        except TimeoutError as exc:
            if not scope.expired():
                return _transport_failure(exc)
            return ActionResult(
                ok=False,
                failure=FailureInfo(
                    message=_redact(
                        f"timed out after {say_duration(ctx.timeout)} waiting for "
                        f"{http.method} {_without_query(http.url)}",
                        secrets,
                    ),
                    known_class=ErrorClass.TIMEOUT,
                    action="http",
                ),
            )
        except Exception as exc:  # transport errors: refused, reset, TLS, bad redirects
            return _transport_failure(exc)
        finally:
            os.close(fd)

        text = head.decode("utf-8", errors="replace")
        if _succeeded(status, http.expect):
            return ActionResult(ok=True, output=text)
        expected = f" (expected {', '.join(map(str, http.expect))})" if http.expect else ""
        return ActionResult(
            ok=False,
            output=text,
            failure=FailureInfo(
                message=f"HTTP {status} {reason}".rstrip() + expected,
                http_status=status,
                headers={k: _redact(v, secrets) for k, v in headers.items()},
                body=_redact(head[:FAILURE_BODY_BYTES].decode("utf-8", errors="replace"), secrets),
                action="http",
            ),
        )


async def _exchange(
    http: HttpSpec, seconds: float, fd: int
) -> tuple[int, str, dict[str, str], bytes]:
    """Send the request, stream the body to ``fd``; keep the body's first bytes."""
    body: dict[str, Any] = {}
    if isinstance(http.body, str):
        body["content"] = http.body.encode()
    elif http.body is not None:
        body["json"] = http.body
    # Following redirects is what a user pinging a URL means, unless they expect one.
    follow = not any(300 <= code < 400 for code in http.expect)
    # The read timeout sits past the deadline: the deadline decides, with one message.
    timeout = httpx2.Timeout(seconds + 1, connect=min(http_client.CONNECT_TIMEOUT, seconds))
    async with (
        http_client.make_async_client(timeout, follow_redirects=follow) as client,
        client.stream(http.method, http.url, headers=http.headers, **body) as response,
    ):
        head = bytearray()
        async for chunk in response.aiter_bytes():
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
            if len(head) < OUTPUT_MEMORY_CAP:
                head += chunk[: OUTPUT_MEMORY_CAP - len(head)]
        headers = {k.lower(): v for k, v in response.headers.items()}
        return response.status_code, response.reason_phrase, headers, bytes(head)


def _succeeded(status: int, expect: list[int]) -> bool:
    return status in expect if expect else 200 <= status < 300


def _transport_failure(exc: BaseException) -> ActionResult:
    from agentcron.classify.extract import failure_from_exception

    return ActionResult(ok=False, failure=failure_from_exception(exc, action="http"))


def _without_query(url: str) -> str:
    """A URL fit for a message: query strings and user info often carry tokens."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    from agentcron.redact import redact

    return redact(text, secrets=secrets)
