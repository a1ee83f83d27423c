"""A local webhook for end-to-end notification tests.

Apprise's ``json://127.0.0.1:PORT/hook`` posts one JSON object per message here.
The receiver keeps every POST in arrival order, and it can be stopped and started
again on the same port: that is how the tests simulate a chat platform outage
while the daemon keeps the same channel URL.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # SO_REUSEADDR: a restart on the same port must not wait out TIME_WAIT.
    allow_reuse_address = True

    def __init__(self, port: int, hook: WebhookReceiver) -> None:
        self.hook = hook
        super().__init__(("127.0.0.1", port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        hook = self.server.hook
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = {"_raw": raw.decode("utf-8", errors="replace")}
        with hook.lock:
            hook.received.append({"path": self.path, **payload})
        self.send_response(hook.status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class WebhookReceiver:
    """Records JSON POSTs (each with its request ``path`` added) in arrival order.

    ``url`` is the Apprise ``json://`` URL to configure; ``stop()`` closes the
    port (senders get connection refused) and ``start()`` listens on it again.
    """

    def __init__(self, port: int = 0, path: str = "/hook") -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.lock = threading.Lock()
        self.path = path
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self._port}{self.path}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self, attempts: int = 50) -> None:
        """Listen (again) on the same port; retries briefly if the port is still held."""
        if self._server is not None:
            return
        last: OSError | None = None
        for _ in range(attempts):
            try:
                server = _Server(self._port, self)
                break
            except OSError as exc:
                last = exc
                time.sleep(0.1)
        else:
            raise RuntimeError(f"cannot listen on 127.0.0.1:{self._port} again: {last}")
        self._port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(5)

    def messages(self) -> list[dict[str, Any]]:
        """A snapshot of everything received so far."""
        with self.lock:
            return list(self.received)

    def __enter__(self) -> WebhookReceiver:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port() -> int:
    """A port nothing listens on right now (for "connection refused" channels)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
