"""A fake OpenAI-compatible chat-completions server for tests.

It speaks real HTTP on 127.0.0.1 so the product's own HTTP client (and the
``openai`` SDK, to prove the fake is faithful) talk to it exactly as they would to
a provider. Each request consumes one scripted reply: a status, JSON body and
headers; ``HANG`` (hold the connection open without answering until the server
closes); or ``DROP`` (send the headers and part of the body, then close the
socket). An exhausted script answers 500 with a message saying so, so a test that
sends one request too many fails loudly instead of hanging.

Usage::

    script = [openai_error(429, "busy", headers={"Retry-After": "7"}), completion("hi")]
    with FakeOpenAI(script) as fake:
        ... fake.base_url ...      # "http://127.0.0.1:PORT/v1"
        fake.calls, fake.requests  # what the server saw
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

from agentcron.actions.base import ActionContext
from agentcron.model.task import TaskSpec


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP answer."""

    status: int = 200
    body: Any = None  # JSON-serialisable, or str/bytes sent as is
    headers: dict[str, str] = field(default_factory=dict)


HANG: Final = "hang"
DROP: Final = "drop"
# A 200 with a chunked body that keeps coming (a gateway streaming without end), up
# to FLOOD_LIMIT bytes or until the client stops reading; ``fake.flooded`` counts
# the bytes the server managed to send.
FLOOD: Final = "flood"
FLOOD_LIMIT = 64 * 1024 * 1024
# Like DROP, but the socket is reset (TCP RST) mid-body instead of closed.
RESET: Final = "reset"
Scripted = Reply | Literal["hang", "drop", "flood", "reset"]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or the raw text when it is not JSON


def reply(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, body=body, headers=dict(headers or {}))


def completion(
    text: str | None,
    *,
    prompt_tokens: int = 12,
    completion_tokens: int = 34,
    usage: bool = True,
    model: str = "fake-model",
    usage_body: dict[str, Any] | None = None,
    finish_reason: str = "stop",
) -> Reply:
    """A 200 chat completion shaped like OpenAI's (all fields the SDK requires).

    ``usage_body`` replaces the ``usage`` object as given (another provider's field
    names); ``finish_reason`` is why the model stopped (``length``, ``content_filter``).
    """
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
    }
    if usage_body is not None:
        body["usage"] = usage_body
    elif usage:
        body["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return Reply(status=200, body=body)


def openai_error(
    status: int,
    message: str,
    *,
    type_: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """An error in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return Reply(status=status, body=body, headers=dict(headers or {}))


def anthropic_error(status: int, type_: str, message: str) -> Reply:
    """An error in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``."""
    return Reply(
        status=status, body={"type": "error", "error": {"type": type_, "message": message}}
    )


class FakeOpenAI:
    """The server; a context manager that starts it on enter and stops it on exit."""

    def __init__(self, script: Iterable[Scripted] = ()) -> None:
        self._script: deque[Scripted] = deque(script)
        self._lock = threading.Lock()
        self._release = threading.Event()  # lets HANG handlers finish at shutdown
        self.requests: list[RecordedRequest] = []
        self.flooded = 0  # bytes of FLOOD bodies sent
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def add(self, *items: Scripted) -> None:
        with self._lock:
            self._script.extend(items)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _next(self, request: RecordedRequest) -> Scripted:
        with self._lock:
            self.requests.append(request)
            if self._script:
                return self._script.popleft()
        return reply(500, {"error": {"message": "fake server: no scripted reply left"}})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace")
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw
                headers = {k.lower(): v for k, v in self.headers.items()}
                item = fake._next(RecordedRequest("POST", self.path, headers, body))
                if item == HANG:
                    fake._release.wait()
                    self.close_connection = True
                elif item == DROP:
                    self._drop()
                elif item == FLOOD:
                    self._flood()
                elif item == RESET:
                    self._reset()
                else:
                    assert isinstance(item, Reply)
                    self._send(item)

            def _send(self, item: Reply) -> None:
                if isinstance(item.body, bytes):
                    payload = item.body
                elif isinstance(item.body, str):
                    payload = item.body.encode()
                else:
                    payload = json.dumps(item.body).encode()
                self.send_response(item.status)
                names = {k.lower() for k in item.headers}
                if "content-type" not in names:
                    self.send_header("Content-Type", "application/json")
                for name, value in item.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _flood(self) -> None:
                """A chunked body of spaces that ends only at FLOOD_LIMIT or when the
                client hangs up."""
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b" " * 65536
                frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
                self.close_connection = True
                try:
                    while fake.flooded < FLOOD_LIMIT and not fake._release.is_set():
                        self.wfile.write(frame)
                        with fake._lock:
                            fake.flooded += len(chunk)
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass  # the client stopped reading

            def _reset(self) -> None:
                """Promise a body, send a fragment of it, then reset the connection."""
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "4096")
                self.end_headers()
                self.wfile.write(b'{"id": "chatcmpl-fake", "choices": [{"mess')
                self.wfile.flush()
                self.close_connection = True
                linger = struct.pack("ii", 1, 0)  # close at once with RST
                with contextlib.suppress(OSError):
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.connection.close()

            def _drop(self) -> None:
                """Promise a body, send a fragment of it, then close the socket."""
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "4096")
                self.end_headers()
                self.wfile.write(b'{"id": "chatcmpl-fake", "choices": [{"mess')
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

        return Handler


def story_spec(base_url: str, **llm: Any) -> TaskSpec:
    """A daily ``story`` task calling ``base_url`` (model ``m``, prompt ``x``), with
    the ``llm`` keys given beside."""
    section = {"base_url": base_url, "model": "m", "prompt": "x", **llm}
    return TaskSpec.model_validate({"name": "story", "every": "1d", "llm": section})


def ctx_for(spec: TaskSpec, folder: Path, timeout: float = 10.0) -> ActionContext:
    """The context of attempt 1 of ``spec``'s run due 2026-03-01 02:00 UTC, its output
    kept in ``folder``."""
    return ActionContext(
        task=spec.name,
        spec=spec,
        slot_id=1,
        attempt=1,
        scheduled_for=datetime(2026, 3, 1, 2, 0, tzinfo=UTC),
        output_path=folder / "a1.md",
        timeout=timedelta(seconds=timeout),
        kill_grace=timedelta(seconds=1),
    )
