"""The soak's network pieces, all on 127.0.0.1: a webhook receiver and a TCP proxy.

:class:`Receiver` takes Apprise ``json://`` posts and records each with its
``Idempotency-Key`` header (``agentcron-<outbox row id>-<hash>``), so the checker can
count messages per outbox row. It can be told to answer 503 for a while (a flaky
channel). :class:`CutProxy` forwards TCP connections to PostgreSQL and can, on cue,
drop every connection and refuse new ones for N seconds, so the shared database
server is never restarted.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    at: float  # time.time()
    key: str | None
    body: Any
    status: int


class Receiver:
    """A threaded HTTP server recording every POST; ``fail_for(s)`` answers 503 for s seconds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.posts: list[Received] = []
        self._fail_until = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace")
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw
                now = time.time()
                with receiver.lock:
                    status = 503 if now < receiver._fail_until else 200
                    receiver.posts.append(
                        Received(now, self.headers.get("Idempotency-Key"), body, status)
                    )
                payload = b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/notify") -> str:
        return f"json://127.0.0.1:{self._server.server_address[1]}{path}"

    def fail_for(self, seconds: float) -> None:
        with self.lock:
            self._fail_until = time.time() + seconds

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.posts)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class CutProxy:
    """Forwards 127.0.0.1:port to ``target``; :meth:`cut` drops everything for a while."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._refuse_until = 0.0
        self._closed = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._listener.settimeout(0.2)
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def cut(self, seconds: float) -> None:
        """Drop every open connection now, and refuse (reset) new ones for ``seconds``."""
        with self._lock:
            self._refuse_until = time.monotonic() + seconds
            conns, self._conns = self._conns, set()
        for conn in conns:
            _hard_close(conn)

    def close(self) -> None:
        self._closed = True
        self.cut(0)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                _hard_close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _hard_close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)
            _hard_close(src)
            _hard_close(dst)


def _hard_close(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), as a network cut or a dead server looks."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv on it
    with contextlib.suppress(OSError):
        sock.close()
