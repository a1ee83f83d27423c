"""SQLite WAL checkpoints on a thread of their own, for a long-lived writer.

By default SQLite checkpoints from inside a commit: the connection whose commit
pushes the write-ahead log past 1,000 pages copies the log into the database file
and syncs both, there and then. In the daemon that connection is the scheduler
loop's, so a burst's commit could hold the loop for as long as the disk takes to
sync (milliseconds on a quiet disk, seconds on a shared one). The daemon's
connection therefore does not checkpoint (``wal_autocheckpoint = 0``) and this
thread does, on a connection of its own, in PASSIVE mode: it never waits for the
writer or for readers, and copies what is committed.

The log only starts over from its beginning when a write begins after a checkpoint
that copied all of it, so checkpoints are taken when the writer has been quiet for
a moment (mid-burst, the writer's next commit would already be behind it), or after
many changes whatever the writer does. If the log still grows past ``max_pages``
(writes that never pause), or the thread fails, the writer's own checkpoints are
switched back on: SQLite's default, never an unbounded log.

The thread does not poll an idle writer: the writer calls :meth:`Checkpointer.wrote`
after each commit, which wakes the thread once ``wake_after`` rows have changed since
the last checkpoint (a burst, a steady load). The few rows an idle daemon writes (a
heartbeat every few seconds) wait for the slow ``idle_interval`` look instead, so an
idle daemon's checkpoints cost a wake-up every half minute, not several a second.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("agentcron.store")

DEFAULT_PAGES = 1000  # SQLite's own automatic checkpoint threshold


class Checkpointer:
    """Checkpoints ``path`` after the writer's changes. ``changes`` reads the writer
    connection's running count of changed rows and ``writing`` whether it is inside a
    transaction (both cheap, no I/O); ``writer_checkpoints`` switches the writer's own
    automatic checkpoints on (True) or off again."""

    def __init__(
        self,
        path: str,
        changes: Callable[[], int],
        writing: Callable[[], bool],
        writer_checkpoints: Callable[[bool], None],
        *,
        interval: float = 0.25,
        idle_interval: float = 30.0,
        wake_after: int = 500,
        force_after: int = 20_000,
        max_pages: int = 20 * DEFAULT_PAGES,
    ) -> None:
        self.path = path
        self._changes = changes
        self._writing = writing
        self._writer_checkpoints = writer_checkpoints
        self.interval = interval  # between looks while the writer writes
        self.idle_interval = idle_interval  # while it does not (an idle daemon)
        self.wake_after = wake_after  # changed rows that end an idle wait at once
        self.force_after = force_after
        self.max_pages = max_pages
        self.checkpoints = 0  # completed calls, for tests and diagnostics
        self.fault: str | None = None  # why the thread ended, if it failed
        self.disk_full = False  # the last checkpoint found no room: tried again, not ended
        self._handed_back = False
        self._stop = threading.Event()
        self._poke = threading.Event()  # set by wrote(): enough was written to look now
        self._idle = False  # the thread waits for the writer (read by wrote())
        self._done_at = 0  # the writer's change count at the last checkpoint
        self._pages_seen = -1  # the log's length at the last checkpoint, in pages
        self._thread = threading.Thread(target=self._run, name="agentcron-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wrote(self) -> None:
        """The writer committed (called on its thread, cheap): wake an idle thread when
        enough has changed since the last checkpoint for a checkpoint to be worth it."""
        if self._idle and self._changes() - self._done_at >= self.wake_after:
            self._idle = False
            self._poke.set()

    def caught_up(self) -> bool:
        """Whether every change the writer made has been checkpointed (tests, diagnostics)."""
        return self._done_at == self._changes()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._poke.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            # mode=rw: never a new empty file where the database was (moved, deleted)
            conn = sqlite3.connect(
                f"{Path(self.path).absolute().as_uri()}?mode=rw",
                uri=True,
                timeout=30.0,
                isolation_level=None,
            )
        except sqlite3.Error as exc:
            log.exception(
                "cannot open %s for checkpoints; the writer checkpoints itself", self.path
            )
            self._writer_checkpoints(True)
            self.fault = f"{type(exc).__name__}: {exc}"
            return
        try:
            self._loop(conn)
        except Exception as exc:
            log.exception("WAL checkpoints of %s failed; the writer checkpoints itself", self.path)
            self._writer_checkpoints(True)
            self.fault = f"{type(exc).__name__}: {exc}"
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _loop(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA busy_timeout = 30000")
        self._done_at = previous = self._changes()
        wait = self.interval
        while not self._pause(wait):
            now = self._changes()
            quiet, previous = now == previous and not self._writing(), now
            settled = quiet and now == self._done_at and not self._handed_back
            wait = self.idle_interval if settled else self.interval
            if now == self._done_at or (not quiet and now - self._done_at < self.force_after):
                continue
            try:
                _busy, pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.OperationalError as exc:
                if not _disk_full(exc):
                    raise
                # A full disk is the machine's, not this thread's: it ended the thread,
                # and five short disk-full spells within ten minutes made the daemon
                # exit for good as a part that kept failing (chaos soak). What the full
                # disk stops (runs' files, the database's writes) is told by those.
                if not self.disk_full:
                    self.disk_full = True
                    log.warning(
                        "WAL checkpoint of %s failed: the disk is full (%s); tried again "
                        "while it lasts",
                        self.path,
                        exc,
                    )
                wait = self.interval
                continue
            if self.disk_full:
                self.disk_full = False
                log.warning("WAL checkpoints of %s work again: the disk has room", self.path)
            self.checkpoints += 1
            self._bound(int(pages))
            # A writer looks quiet while its COMMIT still writes the log (it is out of
            # its transaction, its changes counted): a checkpoint then copies only the
            # frames committed before, and taken for done it left the rest for good, the
            # log never starting over (it grew by every burst up to max_pages). A quiet
            # writer's changes are done once a checkpoint finds the log as the one
            # before left it, all of it copied.
            whole = quiet and pages == self._pages_seen and copied == pages
            self._pages_seen = pages
            if whole or not quiet:
                self._done_at = now
            # After a quiet writer's changes are copied, sleep until it writes enough
            # (or the slow look); mid-burst, or with the job handed back, look again soon.
            wait = self.idle_interval if whole and not self._handed_back else self.interval

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``; a long (idle) wait ends early when :meth:`wrote` pokes.
        True when the thread is to stop."""
        if seconds < self.idle_interval:
            return self._stop.wait(seconds)
        self._poke.clear()
        self._idle = True
        self._poke.wait(seconds)
        self._idle = False
        return self._stop.is_set()

    def _bound(self, pages: int) -> None:
        """Hand checkpoints back to the writer while the log is too long to wait for a
        quiet moment; take them again once it has started over."""
        too_long = pages >= self.max_pages
        if too_long != self._handed_back:
            self._handed_back = too_long
            if too_long:
                log.info(
                    "the WAL of %s holds %d pages: the writer checkpoints too", self.path, pages
                )
            self._writer_checkpoints(too_long)


def _disk_full(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite failed for want of room (SQLITE_FULL, "database or disk is full")."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_FULL
