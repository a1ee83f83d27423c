"""A PostgreSQL daemon's ear for changes announced with ``NOTIFY`` (see
:mod:`agentcron.store.changes`).

``LISTEN`` needs a connection that sits outside any transaction and is read as soon as
a notification arrives, so it gets a connection and a thread of its own: the store's
connection is shared by the loop and the watchdog and is idle between their calls.
The thread blocks in ``notifies()`` and wakes only when something is announced, or
once a minute to see whether it should stop.

When the connection fails (the server restarts, a node's network drops) the thread
connects again with a growing pause and logs the streak once (:class:`FaultLog`).
Nothing is missed for long meanwhile: the daemon's beat still looks, and the first
thing a new connection does is ask the daemon to look once, for what was announced
while nobody listened. That the database itself is away is the loop's outage to tell,
not this thread's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from agentcron.faultlog import FaultLog

log = logging.getLogger("agentcron.changes")

LISTEN_TIMEOUT = 60.0  # seconds a quiet connection is waited on before the stop is checked
RETRY_FIRST = 1.0
RETRY_MAX = 30.0


def channel_name(schema: str | None) -> str:
    """The channel of the daemons of one schema (the one agentcron's tables are in, by
    ``schema`` or by the search_path): stores in different schemas of a database do
    not wake each other. A channel name is an identifier of at most 63 bytes."""
    return "agentcron_changes_" + hashlib.sha256((schema or "").encode()).hexdigest()[:16]


class NotifyListener:
    def __init__(self, params: dict[str, Any], channel: str, poke: Callable[[], None]) -> None:
        self._params = {**params, "application_name": "agentcron listener"}
        self.channel = channel
        self._poke = poke  # announces on the channel: ends the thread's wait at close
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_change: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connected = threading.Event()  # set while LISTEN holds (tests wait on it)

    def start(self, on_change: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_change = on_change
        self._stop.clear()
        self._thread = threading.Thread(target=self._listen, name="agentcron-listen", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread: a pause between connections ends at once; a wait for
        notifications ends with one announced for the purpose (or the minute's timeout,
        if the database cannot take it)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None or thread is threading.current_thread():
            return
        if self.connected.is_set():
            # never raises (a NOTIFY that fails is logged); the database away, the
            # thread's minute-long wait ends it instead
            self._poke()
        thread.join(timeout=2.0)

    def keep(self) -> None:
        """Nothing to mend: the thread connects again by itself."""

    def _changed(self) -> None:
        loop, on_change = self._loop, self._on_change
        if loop is None or on_change is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody to tell
            loop.call_soon_threadsafe(on_change)

    def _listen(self) -> None:
        faults = FaultLog(log, "listening for changes other nodes and processes announce")
        pause = RETRY_FIRST
        lost_at: float | None = None  # since when the connection is lost (one line for it)
        while not self._stop.is_set():
            try:
                with psycopg.connect(**self._params, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.connected.set()
                    faults.ok()
                    if lost_at is not None:
                        log.info(
                            "listening for changes again after %.0fs", time.monotonic() - lost_at
                        )
                        lost_at = None
                    pause = RETRY_FIRST
                    self._changed()  # what was announced while nobody listened
                    while not self._stop.is_set():
                        heard = False
                        for _ in conn.notifies(timeout=LISTEN_TIMEOUT, stop_after=1):
                            heard = True
                        if heard and not self._stop.is_set():
                            self._changed()
            except psycopg.OperationalError as exc:
                # the server went away or ended the connection: said in a line, not a
                # traceback per loss (the database's own outage is the loop's to tell)
                if lost_at is None:
                    lost_at = time.monotonic()
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    secret = str(self._params.get("password") or "")
                    first = first.replace(secret, "***") if secret else first
                    log.warning(
                        "the connection that listens for changes is lost (%s); connecting "
                        "again, and changes made elsewhere are seen on the beat meanwhile",
                        first or type(exc).__name__,
                    )
            except Exception as exc:
                faults.failed(exc)
            finally:
                self.connected.clear()
            self._stop.wait(pause)
            pause = min(RETRY_MAX, pause * 2)
