"""A local webhook receiver for end-to-end tests: Apprise ``json://`` posts land here.

It stands in for ``deliver:`` targets and ``notify:`` channels at once (tell them
apart by path). It can be told to answer the next N posts to a path with 503, as
a chat platform that is down for a moment would, and it records every post with
the answer it got, so a test can count "received exactly once" and also how many
were turned away. It can also keep one chosen post waiting unanswered, which
freezes a daemon between two delivery attempts long enough to look at it.

Usage::

    with Sink() as sink:
        url = sink.url("/out")        # "json://127.0.0.1:PORT/out"
        sink.fail_next(2, "/out")     # the next two posts to /out get 503
        sink.hold("/out", 2)          # the 2nd post to /out waits for release()
        ... sink.accepted("/out"), sink.rejected("/out"), sink.texts("/notify")
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

HOLD_LIMIT = 60.0  # a forgotten release() must not keep a handler thread forever


@dataclass(frozen=True)
class Post:
    """One POST as the sink saw it; ``status`` is what the sink answered."""

    path: str  # without the query string
    body: Any  # parsed JSON, or the raw text when it is not JSON
    status: int
    key: str | None = None  # its Idempotency-Key header

    @property
    def title(self) -> str:
        return str(self.body.get("title") or "") if isinstance(self.body, dict) else ""

    @property
    def text(self) -> str:
        """Title and message of an Apprise JSON post, for "does it say …" checks."""
        if isinstance(self.body, dict):
            return f"{self.body.get('title') or ''}\n{self.body.get('message') or ''}"
        return str(self.body)


class Sink:
    """The server; a context manager that starts it on enter and stops it on exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fail_left: dict[str, int] = {}
        self._fail_titled: dict[str, tuple[str, int]] = {}
        self._arrived: dict[str, int] = {}  # posts per path so far, held ones included
        self._hold: tuple[str, int] | None = None
        self._holding = threading.Event()  # the chosen post has arrived and waits
        self._release = threading.Event()
        self.posts: list[Post] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        """The Apprise URL that posts JSON to ``path`` (which may carry ``?options``)."""
        return f"json://127.0.0.1:{self.port}{path}"

    def fail_next(self, count: int, path: str) -> None:
        """Answer the next ``count`` posts to ``path`` with 503 (0: accept again)."""
        with self._lock:
            self._fail_left[path] = count

    def fail_titled(self, path: str, words: str, count: int = 1) -> None:
        """Answer the next ``count`` posts to ``path`` whose title holds ``words`` with
        503 (one part of a split message)."""
        with self._lock:
            self._fail_titled[path] = (words, count)

    def hold(self, path: str, number: int) -> None:
        """Keep the ``number``-th post to ``path`` (counting from 1, all posts so far
        included) waiting, unanswered, until :meth:`release`. It is answered, and
        recorded in :attr:`posts`, when released."""
        with self._lock:
            self._hold = (path, number)
            self._holding.clear()
            self._release.clear()

    def wait_held(self, timeout: float = 30.0) -> bool:
        """True once the post chosen by :meth:`hold` has arrived and is waiting."""
        return self._holding.wait(timeout)

    def release(self) -> None:
        self._release.set()

    def accepted(self, path: str) -> list[Post]:
        with self._lock:
            return [p for p in self.posts if p.path == path and p.status == 200]

    def rejected(self, path: str) -> list[Post]:
        with self._lock:
            return [p for p in self.posts if p.path == path and p.status != 200]

    def texts(self, path: str) -> list[str]:
        """The text of every accepted post to ``path``, in arrival order."""
        return [p.text for p in self.accepted(path)]

    def __enter__(self) -> Sink:
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

    def _answer(self, path: str, body: Any, key: str | None = None) -> int:
        with self._lock:
            number = self._arrived[path] = self._arrived.get(path, 0) + 1
            held = self._hold == (path, number)
            if held:
                self._hold = None
        if held:
            self._holding.set()
            self._release.wait(HOLD_LIMIT)
        with self._lock:
            failing = self._fail_left.get(path, 0) > 0
            if failing:
                self._fail_left[path] -= 1
            words, left = self._fail_titled.get(path, ("", 0))
            if left and isinstance(body, dict) and words in str(body.get("title") or ""):
                self._fail_titled[path] = (words, left - 1)
                failing = True
            status = 503 if failing else 200
            self.posts.append(Post(path, body, status, key))
            return status

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

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
                key = self.headers.get("Idempotency-Key")
                status = sink._answer(self.path.split("?", 1)[0], body, key)
                payload = b'{"ok": true}' if status == 200 else b'{"error": "unavailable"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
