"""A scriptable HTTP server on 127.0.0.1 for end-to-end tests of the ``http`` action.

The daemon under test is a separate process, so the server must be real HTTP on a
real port: each request takes the next scripted :class:`Response` off a queue and
is recorded with the wall-clock and monotonic time it arrived, so a test can check
both the gaps between attempts (monotonic) and that an attempt came no earlier
than a stored ``next_attempt_at`` (wall clock). When the queue is empty the server
answers 500 with a body saying so: a product that sends one request too many then
fails the test visibly instead of hanging it.

Usage::

    with ScriptedServer([Response(429, {"Retry-After": "2"}), Response(200, body="ok")]) as srv:
        url = srv.url("/ping")
        ...
        srv.requests  # list[ReceivedRequest], in arrival order
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

EXHAUSTED_STATUS = 500
EXHAUSTED_BODY = b"e2e_http: no scripted response left for this request"


@dataclass(frozen=True)
class Response:
    """One scripted answer; ``body`` is sent as UTF-8 when it is text."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | bytes = b""

    def payload(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str  # with its query string
    headers: dict[str, str]  # lower-cased names
    body: bytes
    wall_time: float  # time.time() on arrival
    mono_time: float  # time.monotonic() on arrival
    status: int  # what the server answered


class ScriptedServer:
    """A ThreadingHTTPServer on 127.0.0.1:0 answering from a queue of responses."""

    def __init__(self, responses: Iterable[Response] = ()) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Response] = deque(responses)
        self._requests: list[ReceivedRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="e2e-http", daemon=True
        )

    # ---- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> ScriptedServer:
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
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(10)
        self._server.server_close()

    # ---- script and record -----------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, *responses: Response) -> None:
        with self._lock:
            self._queue.extend(responses)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._queue)

    def _next(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        wall, mono = time.time(), time.monotonic()
        with self._lock:
            response = (
                self._queue.popleft()
                if self._queue
                else Response(EXHAUSTED_STATUS, {"Content-Type": "text/plain"}, EXHAUSTED_BODY)
            )
            self._requests.append(
                ReceivedRequest(method, path, headers, body, wall, mono, response.status)
            )
        return response

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                response = server._next(self.command, self.path, headers, body)
                payload = response.payload()
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep pytest output clean

        return Handler
