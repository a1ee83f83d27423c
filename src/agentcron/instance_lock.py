"""One daemon per home on SQLite: a second ``agentcron run`` refuses to start.

Two daemons on one SQLite home would both schedule the same tasks, write into the
same outputs folder and each take the other's runs for lost ones of a dead
predecessor; nobody asked for that, so the second one stops at the door and names
the first. The lock is ``fcntl.flock`` on ``HOME/daemon.lock``: the kernel drops it
when its holder dies, however it dies, so a daemon killed with ``kill -9`` leaves no
lock a successor must clean up; the file only says who holds it (pid, host, start
time), written after the lock is taken.

The file is never deleted: a process that opened it just before an unlink would lock
an orphaned inode while a third locks the new file, and both would believe they are
alone. On release its contents are emptied instead.

Two homes can name one SQLite file (``--db /data/agentcron.db``, or another home's
``agentcron.db``): a daemon therefore also locks ``DB.daemon.lock`` beside its
database, so the second of them is refused too, naming the first and its home.

With PostgreSQL several daemons sharing one database is the point (see "Several nodes
on PostgreSQL" in the README), so no lock is taken there, even for two of them started
with the same home folder on one host.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agentcron.home import hostname

log = logging.getLogger("agentcron.lock")

LOCK_FILE = "daemon.lock"


class InstanceLockError(Exception):
    """The home's daemon lock cannot be taken."""


class DaemonAlreadyRunning(InstanceLockError):
    """Another live process holds the home's daemon lock."""

    def __init__(self, message: str, holder: Holder) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class Holder:
    """What the lock file says about the process holding it (None: not written yet)."""

    pid: int | None
    host: str | None
    started_at: str | None
    # the process's start in clock ticks since boot (/proc), which no clock step moves
    start_ticks: int | None = None
    home: str | None = None  # the holder's home (a database's lock is not in it)
    # the (device, inode) of the database file the holder writes (a database's lock)
    database_file: tuple[int, int] | None = None

    def starting(self, within: float = 60.0) -> bool:
        """Whether the lock was taken within ``within`` seconds (or says nothing yet): a
        daemon that holds it may still be making its database and first tick."""
        if self.started_at is None:
            return True
        try:
            began = datetime.fromisoformat(self.started_at)
        except ValueError:
            return False
        if began.tzinfo is None:
            began = began.astimezone()
        return (datetime.now(UTC) - began).total_seconds() < within


class InstanceLock:
    """The daemon lock of one home folder; :meth:`acquire` once, :meth:`release` at exit."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / LOCK_FILE
        self._fd: int | None = None
        self._record: dict[str, object] = {}
        self.database_lock: DatabaseLock | None = None  # the lock beside its database

    def _folder(self) -> Path:
        return self.home

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`DaemonAlreadyRunning` naming the holder.

        Never waits: a daemon started twice should say so at once, not hang.
        """
        if self._fd is not None:
            return
        try:
            self._folder().mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InstanceLockError(
                f"cannot open the daemon lock {self.path}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.holder()
            raise DaemonAlreadyRunning(self._busy_message(holder), holder) from None
        except OSError as exc:  # e.g. a file system without locks
            os.close(fd)
            raise InstanceLockError(
                f"cannot lock {self.path} ({exc.strerror or exc}); put the home on a local "
                "file system"
            ) from None
        self._fd = fd
        self._record = {
            "pid": os.getpid(),
            "host": hostname(),
            "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "start_ticks": _start_ticks(os.getpid()),
            "home": str(self.home),
        }
        try:
            self._write()
        except OSError as exc:
            self.release()
            raise InstanceLockError(
                f"cannot write the daemon lock {self.path}: {exc.strerror or exc}"
            ) from None

    def _write(self) -> None:
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, (json.dumps(self._record) + "\n").encode(), 0)

    def keep(self) -> bool:
        """Take the lock again at its path when its file was removed or replaced while
        held (the home deleted, a cleaner removing "stale" locks): the flock stays on
        the old file, which nobody opens, so a second daemon started, and CLI commands
        made a new empty database beside a running daemon (outside-in probe). A file
        found empty (its last write failed) is written again. True when it was taken
        again; :class:`DaemonAlreadyRunning` when another process took the new file
        first (this lock then still holds the old one)."""
        if self._fd is None:
            return False
        try:
            st: os.stat_result | None = os.stat(self.path)
        except FileNotFoundError:
            st = None  # removed: taken again below, which logs it
        if st is not None:
            held = os.fstat(self._fd)
            if (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino):
                if held.st_size == 0:
                    self._write()  # what says who holds it
                return False
        from agentcron.home import private_dirs

        private_dirs(self._folder())  # a home made again is private, as at the start
        old, self._fd = self._fd, None
        record = self._record
        try:
            self.acquire()
        except BaseException:
            self._fd, self._record = old, record  # still holds the old file's lock
            raise
        os.close(old)
        self._record = record  # its first start, not now: it is not starting
        self._write()
        log.warning("the daemon lock %s was removed while held; taken again", self.path)
        return True

    def release(self) -> None:
        """Empty the file (it must not name a process that has gone) and let go."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor drops the flock

    def holder(self, wait: float = 1.0) -> Holder:
        """Read who holds the lock. The holder writes its record just after locking, so
        an empty file is read again for up to ``wait`` seconds before giving up."""
        end = time.monotonic() + wait
        while True:
            holder = _parse(self.path)
            if holder.pid is not None or time.monotonic() >= end:
                return holder
            time.sleep(0.05)

    def _busy_message(self, holder: Holder) -> str:
        since = f", started {holder.started_at}" if holder.started_at else ""
        who = _who(holder, since)
        if holder.pid == os.getpid() and holder.host in (None, hostname()):
            # a second Scheduler of the same program: "kill PID" named the program itself
            return (
                f"this process (pid {holder.pid}) is already running an agentcron daemon on "
                f"the home {self.home}, another Scheduler of the same program maybe: run one "
                f"per home, or give this one another home. Lock: {self.path}"
            )
        stop = f"stop it first (kill {holder.pid})" if holder.pid else "stop it first"
        return (
            f"another agentcron daemon is already running on the home {self.home} {who}; "
            f"{stop}, or give this one another home (--home). Lock: {self.path}"
        )


class DatabaseLock(InstanceLock):
    """The daemon lock of a SQLite file, beside it: two homes that name one database
    must not both run a daemon on it."""

    def __init__(self, home: Path, database: Path) -> None:
        super().__init__(home)
        self.database = database
        self.path = _database_lock_path(database)

    def _folder(self) -> Path:
        return self.path.parent

    def note_file(self, file_id: tuple[int, int]) -> None:
        """Record the (device, inode) of the database file the daemon writes: a command
        then refuses a file put in its place (see ``store._refuse_replaced_under_daemon``)."""
        if self._fd is None or self._record.get("file") == list(file_id):
            return
        self._record = {**self._record, "file": list(file_id)}
        self._write()

    def _busy_message(self, holder: Holder) -> str:
        who = _who(holder, f", home {holder.home}" if holder.home else "")
        return (
            f"another agentcron daemon already runs on the database {self.database} {who}; "
            "a SQLite database serves one daemon: give this one a database of its own "
            f"(--db), or use PostgreSQL for several nodes. Lock: {self.path}"
        )


def _who(holder: Holder, more: str) -> str:
    """The holder in a refusal: "(pid N on HOST…)", ``more`` after its host."""
    if holder.pid is None:
        return "(its pid is not recorded yet)"
    where = f" on {holder.host}" if holder.host and holder.host != hostname() else ""
    return f"(pid {holder.pid}{where}{more})"


def _parse(path: Path) -> Holder:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Holder(None, None, None)
    if not isinstance(data, dict):
        return Holder(None, None, None)
    pid, host, started = data.get("pid"), data.get("host"), data.get("started_at")
    ticks, home, file = data.get("start_ticks"), data.get("home"), data.get("file")
    return Holder(
        pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        host if isinstance(host, str) else None,
        started if isinstance(started, str) else None,
        ticks if isinstance(ticks, int) and not isinstance(ticks, bool) else None,
        home if isinstance(home, str) else None,
        _file_id(file),
    )


def _file_id(value: object) -> tuple[int, int] | None:
    if isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value):
        return value[0], value[1]
    return None


def keep_locks(lock: InstanceLock | None, database_file: tuple[int, int] | None) -> None:
    """A daemon's home lock and its database's lock taken again if their files were
    removed (see :meth:`InstanceLock.keep`, which logs it), and ``database_file`` noted in
    the database's lock. Each daemon keeps its own locks: a process may run several
    (Schedulers of several homes). Raises :class:`DaemonAlreadyRunning` when a second
    daemon took a removed lock's place."""
    if lock is None:
        return
    lock.keep()
    if lock.database_lock is not None:
        lock.database_lock.keep()
        if database_file is not None:
            lock.database_lock.note_file(database_file)


def running_daemon(home: Path) -> Holder | None:
    """Who holds the home's daemon lock, when a live process on this machine does.

    Read from the file, never by trying the lock: a reader holding it even for a
    moment would make a daemon starting then refuse to start. The holder writes the
    file after locking and empties it on release; one killed leaves its pid, which is
    then gone, or names another process (its start time in ticks tells them apart)."""
    return _live_holder(home / LOCK_FILE)


def daemon_on_database(database: Path) -> Holder | None:
    """Who holds the lock of a SQLite file named with ``--db`` (a daemon of another
    home may run on it), when a live process on this machine does."""
    return _live_holder(_database_lock_path(database))


def _database_lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".daemon.lock")


def _live_holder(path: Path) -> Holder | None:
    holder = _parse(path)
    if holder.pid is None or (holder.host is not None and holder.host != hostname()):
        return None
    from agentcron.home import pid_alive

    if not pid_alive(holder.pid):
        return None
    now = _start_ticks(holder.pid) if holder.start_ticks is not None else None
    if now is not None and now != holder.start_ticks:
        return None  # another process got the pid of a daemon killed before
    return holder  # (a start that cannot be read: the live pid is believed)


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (/proc/PID/stat's 22nd
    field): with the pid it names one process for good (after a reboot small pids
    come round again). A wall-clock time would not do: a clock stepped by NTP after
    the start moves it. None when it cannot be read: the caller then believes the pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        # Not a fault: no /proc on this system, a /proc that hides other users'
        # processes (hidepid), or the process ended since it was seen alive. The pid
        # is believed, as the first two need; the third is gone at the next look.
        return None
    except OSError as exc:
        log.warning("cannot read the start of process %s (%s); its pid is believed", pid, exc)
        return None
    try:
        return int(stat[stat.rfind(")") + 2 :].split()[19])
    except (ValueError, IndexError):
        log.warning("cannot read the start of process %s from %r; its pid is believed", pid, stat)
        return None


@contextmanager
def daemon_lock(home: Path, db_url: str | None) -> Iterator[InstanceLock | None]:
    """Hold the home's daemon lock for the life of a daemon when its database is
    SQLite; with PostgreSQL yield None and lock nothing (see the module's docstring).

    Raises :class:`~agentcron.store.StoreError` for a ``db_url`` that names no database,
    before anything is created.
    """
    from agentcron.store import parse_db_url

    target = parse_db_url(db_url, home)
    if target.kind != "sqlite":
        yield None
        return
    lock = InstanceLock(home)
    lock.acquire()
    database: DatabaseLock | None = None
    try:
        # (a folder that is missing is refused by the store's opening, in its words)
        path = target.path
        if path is not None and path.parent.is_dir():
            database = DatabaseLock(home, path.resolve())
            database.acquire()
            lock.database_lock = database
        yield lock
    finally:
        if database is not None:
            database.release()
        lock.release()
