"""What a running daemon says of itself outside its database: that it cannot use it.

`agentcron health`, `doctor`, the API and the dashboard read the database to say
whether anything fires. While the daemon cannot use that database (locked, a full
disk, a server away) they read there a last tick that is merely old, and a heartbeat
the daemon could not write: "no daemon is running; start it" while it runs and waits
for the database. So the daemon also keeps a small file in its home,
``daemon.trouble``, saying since when and why it cannot use its database, and readers
on the same machine believe it while the home's daemon lock is held.

A full disk refuses new blocks: the file is made at the daemon's start at its full
size, and each word is written over it in place, never grown.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("agentcron.trouble")

TROUBLE_FILE = "daemon.trouble"
SIZE = 2048  # bytes, written whole each time (JSON, then spaces)


class TroubleFile:
    """The daemon's side of ``HOME/daemon.trouble``: :meth:`open` at start, :meth:`say`
    a trouble or None when there is none."""

    def __init__(self, home: Path) -> None:
        self.path = home / TROUBLE_FILE
        self._fd: int | None = None
        self._said: dict[str, Any] | None = None

    def open(self) -> None:
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            os.pwrite(self._fd, b" " * SIZE, 0)  # its blocks, while the disk has room
            os.fsync(self._fd)
        except OSError as exc:  # the database's own notices still say it all
            log.warning("cannot keep %s (%s); `health` learns of trouble later", self.path, exc)
            self.close()

    def say(self, trouble: dict[str, Any] | None) -> None:
        """Write ``trouble`` (``since``, ``error``: what readers show), or that there is
        none; nothing when it is what was said last."""
        if self._fd is None or trouble == self._said:
            return
        body = json.dumps({"pid": os.getpid(), "trouble": trouble}).encode()[:SIZE]
        try:
            os.pwrite(self._fd, body.ljust(SIZE), 0)
            self._said = trouble
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)

    def close(self, keep: bool = False) -> None:
        """Stop keeping the file: blank (a stopped daemon has no trouble to tell), or,
        with ``keep``, still saying an outage the owner was told of and not told is over,
        for the next daemon of this home to tell its end (see :func:`told_outage_left`)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if not keep or not (self._said or {}).get("told"):
            with contextlib.suppress(OSError):
                os.pwrite(fd, b" " * SIZE, 0)
        os.close(fd)


def told_outage_left(home: Path) -> dict[str, Any] | None:
    """The outage an earlier daemon of this home told the owner of and stopped (or was
    killed) before it could tell its end: what its file still says, read before the
    next daemon makes the file afresh. Its end was never told (outside-in probe: the
    owner's last word was "will tell you when it works again")."""
    path = home / TROUBLE_FILE
    if not path.exists():
        return None
    said = _said(path)
    trouble = said[1] if said is not None else None
    return trouble if trouble is not None and trouble.get("told") else None


def outage_span(left: dict[str, Any] | None) -> tuple[datetime, str, bool] | None:
    """When the outage of :func:`told_outage_left` began, its error and whether it
    was the database's; None when the file does not say it (an older daemon wrote it:
    nothing wrong, the missed runs' reasons then name the stop only), or says it in a
    form that cannot be read (logged: a damaged or hand-edited file)."""
    if left is None or "since_utc" not in left:
        return None
    raw = str(left["since_utc"])
    try:
        since = datetime.fromisoformat(raw)
    except ValueError:
        since = None
    if since is None or since.tzinfo is None:
        log.warning(
            "%s says an outage began at %r, not a time with its offset; the runs it "
            "missed are said missed for the stop only",
            TROUBLE_FILE,
            raw,
        )
        return None
    return since, str(left.get("error") or "unknown error"), bool(left.get("database"))


def read_trouble(home: Path, pid: int | None, kept: bool = True) -> dict[str, Any] | None:
    """The trouble the home's running daemon (``pid``, the lock's holder) says it has,
    or None: nothing said, or said by another process. ``kept``: the daemon has
    started, so it keeps the file (it makes it first thing); a daemon still starting
    may not have made it yet."""
    path = home / TROUBLE_FILE
    if not path.exists() and not path.is_symlink():
        if kept:  # deleted under the daemon, or it could not make it (its log says why)
            log.warning(
                "the daemon (pid %s) keeps no %s: a database trouble it meets would not "
                "be seen here",
                pid,
                path,
            )
        return None
    said = _said(path)
    if said is None or pid is None or said[0] != pid:
        return None
    return said[1]


def trouble_of_live_writer(home: Path) -> dict[str, Any] | None:
    """What the daemon that wrote this home's file says it cannot do, when that process
    still lives: for a home whose daemon holds no lock (PostgreSQL: nodes on several
    machines), read when the database cannot be opened here to say more. No file is
    no word (a daemon of this home runs elsewhere, or none ever started here); a file
    left by a daemon killed with -9 names a process that is gone, or another program."""
    path = home / TROUBLE_FILE
    if not path.exists() and not path.is_symlink():
        return None
    said = _said(path)
    if said is None or not _agentcron_process(said[0]):
        return None
    return said[1]


def _said(path: Path) -> tuple[int, dict[str, Any] | None] | None:
    """(the writer's pid, its trouble or None) of the trouble file at ``path``; None
    when nothing is said (blank: made at start, or cleared at stop) or the file cannot
    be read, which is logged: a database trouble would then go unseen, not be taken
    for "no trouble" without a word."""
    try:
        text = path.read_bytes()
    except OSError as exc:  # the reader cannot know: said, not taken for "no trouble"
        log.warning("cannot read %s (%s): a database trouble would not be seen", path, exc)
        return None
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:  # written whole each time: a torn read or a damaged file
        log.warning("cannot read %s (%s): a database trouble would not be seen", path, exc)
        return None
    pid = data.get("pid") if isinstance(data, dict) else None
    if not isinstance(pid, int):
        log.warning("cannot read %s (no writer's pid): a database trouble would not be seen", path)
        return None
    trouble = data.get("trouble")
    return pid, trouble if isinstance(trouble, dict) else None


def _agentcron_process(pid: int) -> bool:
    """Whether ``pid`` is a live process running agentcron (its command line says so,
    where ``/proc`` shows it): a pid a stopped daemon left may have been reused."""
    try:
        os.kill(pid, 0)
    except PermissionError:
        pass  # the process exists and is another user's: alive, and asked below
    except OSError:
        return False  # no such process
    proc = Path("/proc")
    if not proc.is_dir():
        return True  # no /proc on this system: alive is all that can be known
    try:
        return b"agentcron" in (proc / str(pid) / "cmdline").read_bytes()
    except FileNotFoundError:
        return False  # it ended since the look above
    except OSError as exc:  # hidden (hidepid), unreadable: its word is not believed
        log.warning("cannot read the command line of process %s (%s)", pid, exc)
        return False
