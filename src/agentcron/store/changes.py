"""Telling a store's daemons that something they act on changed, so they need not look.

A daemon learns most of what it must do from itself: its fires and retries are timers,
a run's end and a change made through its own API wake its loop. What other processes
write (``agentcron trigger`` or ``resume`` from a shell, the MCP server over stdio,
another node's API on PostgreSQL) it used to find only by looking, on every beat of its
loop; an idle daemon paid for those looks whether or not anybody changed anything
(issue 16). A change is now announced when it is written, and the daemon's beat only
bounds how long an announcement that was lost goes unseen:

* SQLite: a datagram socket beside the database file (``DB.wake``), bound by the
  daemon that holds the database's lock. Announcing sends it one byte, never waits,
  and does nothing when no daemon listens. A path too long for a socket address is
  reached through ``/proc/self/fd`` of its folder.
* PostgreSQL: ``NOTIFY`` on a channel named for the database's schema, heard by a
  thread of each daemon that holds a ``LISTEN`` connection of its own (see
  :mod:`agentcron.store._pg_listen`).

An announcement says only "look": what changed is read from the database as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

log = logging.getLogger("agentcron.changes")

SUFFIX = ".wake"
# what an announcement meets when nothing is wrong: no socket (no daemon ever bound one
# there), a socket nobody is bound to (its daemon stopped), a full queue (told already)
_NOBODY_OR_TOLD = frozenset(
    {errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS}
)
_MAX_ADDRESS = 100  # bytes of a socket path (sun_path holds 108 with its NUL)


class ChangeListener(Protocol):
    """A daemon's ear for changes other processes announce."""

    def start(self, on_change: Callable[[], None]) -> None:
        """Begin listening, on the running event loop; ``on_change`` is called on it,
        at most once per batch of announcements."""
        ...

    def close(self) -> None:
        """Stop listening. Idempotent."""
        ...

    def keep(self) -> None:
        """Mend the ear if it was taken away (called on the daemon's beat)."""
        ...


def socket_path(db_path: str) -> Path | None:
    """Where the daemon of the SQLite file ``db_path`` listens (None: an in-memory or
    URI database has no folder to listen in)."""
    if db_path == ":memory:" or db_path.startswith("file:"):
        return None
    return Path(db_path + SUFFIX)


@contextlib.contextmanager
def _address(path: Path) -> Iterator[str]:
    """``path`` as a socket address: itself, or when too long, the same file reached
    through an open descriptor of its folder (Linux's ``/proc/self/fd``)."""
    text = os.fsdecode(path)
    if len(os.fsencode(text)) <= _MAX_ADDRESS or not hasattr(os, "O_PATH"):
        yield text
        return
    folder = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{folder}/{path.name}"
    finally:
        os.close(folder)


def _mode(path: Path) -> int | None:
    """The file mode of what is at ``path`` (not followed), or None when nothing is."""
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None  # nothing there: the answer asked for, not a fault (the caller says)


def announce_on_socket(path: Path | None) -> None:
    """Tell the daemon listening at ``path``, if there is one, to look. Never waits:
    a full queue means it has been told already; no socket, or nobody bound to it,
    means no daemon runs, and the next one to start reads everything anyway."""
    if path is None:
        return
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, _address(path) as to:
            sock.setblocking(False)
            sock.sendto(b".", to)
    except OSError as exc:
        if exc.errno in _NOBODY_OR_TOLD:
            return
        # the daemon, if one runs, sees the change on its beat instead of at once
        log.warning(
            "cannot tell the daemon at %s of this change (%s): it sees it within its beat",
            path,
            exc.strerror or exc,
        )


class SocketListener:
    """The SQLite daemon's side: a datagram socket read by the event loop itself, so
    listening costs no thread and no wake-up until something is announced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inode: int | None = None
        self._on_change: Callable[[], None] | None = None

    def start(self, on_change: Callable[[], None]) -> None:
        """Bind the socket; a file left by a daemon that died is replaced (this daemon
        holds the database's lock, so no live daemon listens there). A socket that
        cannot be bound (a read-only folder) is logged: changes made elsewhere are then
        seen on the daemon's beat, seconds later, and nothing else is lost."""
        self._on_change = on_change
        self._loop = asyncio.get_running_loop()
        self._bind()

    def _bind(self) -> bool:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            there = _mode(self.path)
            if there is not None:
                if not stat.S_ISSOCK(there):
                    # not ours to delete (a socket left by a dead daemon is)
                    raise OSError(errno.EEXIST, "a file that is not a socket is there")
                os.unlink(self.path)
            with _address(self.path) as address:
                sock.bind(address)
            st = os.stat(self.path)
            # whoever may write the database may wake its daemon
            try:
                db = os.stat(str(self.path)[: -len(SUFFIX)])
                os.chmod(self.path, (db.st_mode & 0o666) | 0o600)
            except OSError as exc:  # its owner's changes are still heard at once
                log.warning(
                    "cannot give %s the database's permissions (%s): other users' changes "
                    "are seen within the daemon's beat",
                    self.path,
                    exc.strerror or exc,
                )
            self._inode = st.st_ino
        except OSError as exc:
            sock.close()
            log.warning(
                "cannot listen for changes at %s (%s): a trigger or resume from another "
                "process is seen within one beat of the daemon instead of at once",
                self.path,
                exc.strerror or exc,
            )
            return False
        self._sock = sock
        assert self._loop is not None
        self._loop.add_reader(sock.fileno(), self._readable)
        return True

    def keep(self) -> None:
        """Bind again when the socket file was removed or replaced under the daemon (a
        clean-up script, a restore of the folder): announcements were lost without a
        word, every change then seen only on the beat (probe). Called on the beat."""
        if self._sock is None or self._loop is None:
            return
        try:
            if os.stat(self.path).st_ino == self._inode:
                return
            what = "replaced"
        except FileNotFoundError:
            what = "removed"
        except OSError as exc:  # it cannot be looked at: bound afresh all the same
            what = f"out of sight ({exc.strerror or exc})"
        log.warning("the socket %s was %s; listening there again", self.path, what)
        self._drop()
        self._bind()

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        while True:  # every announcement queued: one look answers them all
            try:
                if not sock.recv(64):
                    break
            except BlockingIOError:
                break  # drained
            except OSError as exc:
                log.warning("reading the socket %s: %s", self.path, exc.strerror or exc)
                break
        if self._on_change is not None:
            self._on_change()

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
        sock.close()

    def close(self) -> None:
        held = self._sock is not None
        self._drop()
        # the file is removed only while it is still this daemon's: a successor that
        # started before this one finished closing has bound a socket of its own there
        if not held:
            return
        try:
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            return  # already gone: nothing is left to remove (its removal was said by keep)
        except OSError as exc:  # left behind: the next daemon replaces it
            log.warning("cannot remove the socket %s: %s", self.path, exc.strerror or exc)
