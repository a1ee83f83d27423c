"""Serving the web app from inside the daemon: uvicorn on a thread of its own.

The scheduler and the API share nothing but the database: the app has its own
event loop (on its own thread) and its own database connection, so a slow or
failing request never delays a tick, and a scheduler that is stuck does not take
the API down with it (its health endpoint then says so, from the database).

The listening socket is bound here, before uvicorn starts, so a port in use is an
``OSError`` with the address in it rather than uvicorn ending the thread. The
daemon supervises the server with :meth:`ApiServer.keep_serving`: a server that
cannot start or that stopped is started again with a growing pause, its owner
told once, and scheduling goes on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable

log = logging.getLogger("agentcron.api")

RETRY_FIRST = 5.0  # seconds before starting a failed server again, doubling
RETRY_MAX = 300.0


class ApiStartError(Exception):
    """The server could not start; the message says where and why."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one)."""
    infos = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    if not infos:  # pragma: no cover - getaddrinfo raises instead
        raise OSError(f"cannot resolve {host}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class ApiServer:
    """One uvicorn server for ``app`` on a daemon thread; ``start`` and ``stop``
    block the caller for at most their timeouts."""

    def __init__(self, app: object, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.address: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None
        self._server: object | None = None
        self._error: BaseException | None = None
        self._stopping = False

    @property
    def url(self) -> str:
        host, port = self.address or (self.host, self.port)
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def start(self, timeout: float = 15.0) -> tuple[str, int]:
        """Bind, start serving, and return the bound (host, port)."""
        import uvicorn

        try:
            sock = bind(self.host, self.port)
        except OSError as exc:
            raise ApiStartError(f"cannot listen on {self.host}:{self.port}: {exc}") from None
        config = uvicorn.Config(
            self.app,  # type: ignore[arg-type]
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_keep_alive=5,
            timeout_graceful_shutdown=3,
            limit_concurrency=200,
            server_header=False,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._error = None
        self._stopping = False

        def serve() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # SystemExit when the app's startup failed
                self._error = exc
            finally:
                sock.close()

        thread = threading.Thread(target=serve, name="agentcron-api", daemon=True)
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            self.stop(1.0)
            why = repr(self._error) if self._error is not None else "it did not start in time"
            raise ApiStartError(
                f"the HTTP API on {self.host}:{self.port} did not start: {why} "
                "(the log above says more)"
            )
        host, port = sock.getsockname()[:2]
        self.address = (str(host), int(port))
        return self.address

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        server = self._server
        if server is not None:
            server.should_exit = True  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(timeout)

    async def keep_serving(
        self, stop: asyncio.Event, tell: Callable[[str, bool], None], check_every: float = 1.0
    ) -> None:
        """Serve until ``stop``: start, and start again after a pause whenever the
        server could not start or has stopped. ``tell(text, ok)`` reaches the owner:
        once when serving fails (``ok`` False), once when it works again."""
        pause = RETRY_FIRST
        failing = False
        while not stop.is_set():
            if not self.alive():
                try:
                    await asyncio.to_thread(self.start)
                except ApiStartError as exc:
                    log.error("%s; scheduling goes on, trying again in %.0fs", exc, pause)
                    if not failing:
                        failing = True
                        tell(f"{exc}. Scheduling goes on without it; retrying.", False)
                    await _sleep_or_stop(stop, pause)
                    pause = min(RETRY_MAX, pause * 2)
                    continue
                log.info(
                    "HTTP API listening on %s (API %s/api/v1, docs %s/api/v1/docs, "
                    "metrics %s/metrics, dashboard %s/)",
                    self.url,
                    self.url,
                    self.url,
                    self.url,
                    self.url,
                )
                if failing:
                    failing = False
                    pause = RETRY_FIRST
                    tell(f"the HTTP API serves again on {self.url}", True)
            await _sleep_or_stop(stop, check_every)
            if not stop.is_set() and not self.alive() and not self._stopping:
                log.error("the HTTP API server stopped (%r); starting it again", self._error)
                if not failing:
                    failing = True
                    tell(f"the HTTP API on {self.url} stopped ({self._error!r}); restarting", False)
        await asyncio.to_thread(self.stop)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
