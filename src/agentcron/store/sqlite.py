"""SQLite implementation of :class:`~agentcron.store.base.Store`.

One connection per store object, guarded by a lock so the engine loop and the
watchdog thread can share it; WAL mode so CLI processes read while the daemon
writes. Writes that must not interleave with another process (claims,
materialisation) run in ``BEGIN IMMEDIATE`` transactions, which take SQLite's
write lock up front: that is this engine's equivalent of PostgreSQL's row locks.

A file that is already there is first looked at read-only: switching it to WAL
rewrites its header, and someone else's database must come out of a refused open
exactly as it went in. Damage to the file (SQLite's "malformed" and "not a
database") may surface on any query, not only at open, so every query translates
it into one :class:`StoreError` that names the file and the way out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from agentcron.home import private_dirs
from agentcron.store._checkpoints import DEFAULT_PAGES, Checkpointer
from agentcron.store.changes import SocketListener, announce_on_socket, socket_path
from agentcron.store.errors import (
    StoreError,
    damaged_database,
    not_a_database,
    schema_mismatch,
)
from agentcron.store.migrations import (
    APP_ID,
    SCHEMA_VERSION,
    SHOWN_VERSION,
    expected_columns,
    missing_parts,
    recorded_version,
    statements,
)
from agentcron.store.sql import SQLStore
from agentcron.store.upgrade_guard import NODE_ROWS, refuse_upgrade_under_nodes

log = logging.getLogger("agentcron.store")

_MAGIC = b"SQLite format 3\x00"
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


DAEMON_BUSY_TIMEOUT_MS = 2000


class SQLiteStore(SQLStore):
    def __init__(self, path: Path | str, *, create_folder: bool = True) -> None:
        """``create_folder``: make the file's folder when it is missing. The home's own
        database wants that; a path the user typed does not (a typo must not leave a
        tree of folders behind), so :func:`~agentcron.store.open_store` says False."""
        self.path = str(path)
        self._lock = threading.RLock()
        self._checkpointer: Checkpointer | None = None
        if self.path != ":memory:":
            _prepare_folder(Path(self.path), create_folder)
            if not _OPEN_HERE.holds(self.path):
                _inspect_read_only(self.path)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise _cannot_open(self.path, exc) from None
        self._file_id: tuple[int, int] | None = None
        self._file_unseen: str | None = None  # why the file could not be looked at
        if self.path != ":memory:" and not self.path.startswith("file:"):
            with contextlib.suppress(OSError):
                st = os.stat(self.path)
                self._file_id = (st.st_dev, st.st_ino)
        try:
            self._db.execute("PRAGMA busy_timeout = 30000")
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
            _check_structure(self._db, self.path)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise _broken(self.path, exc) or _cannot_open(self.path, exc) from None
        except BaseException:
            self._db.close()
            raise
        _OPEN_HERE.add(self._file_id)

    # ---- plumbing ----------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    # SQLite ends the transaction itself on some errors (corruption,
                    # a full disk); a ROLLBACK then would hide the real error
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                self._translate(exc)
            checkpointer = self._checkpointer
            if checkpointer is not None:
                checkpointer.wrote()  # wakes its thread only after enough changes

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                self._translate(exc)

    def _translate(self, exc: sqlite3.DatabaseError) -> NoReturn:
        """Damage becomes a :class:`StoreError` in words; any other error stays itself."""
        broken = _broken(self.path, exc)
        if broken is None:
            raise exc
        raise broken from exc

    def check_integrity(self) -> None:
        """``PRAGMA quick_check``: finds damaged pages no query has touched yet.

        It reads the whole file (about 0.2 s for 185 MB from a warm cache, more from
        disk), too slow for every CLI call, so ``agentcron doctor`` and each daemon's
        start run it and other commands meet damage only where they read it.
        """
        if self.path == ":memory:":
            return
        problems = [str(r[0]) for r in self._q("PRAGMA quick_check(3)") if r[0] != "ok"]
        if problems:
            lines = [" ".join(p.replace("*** in database main ***", "").split()) for p in problems]
            detail = "; ".join(line[:160] for line in lines)
            raise damaged_database(self.path, f"quick_check found: {detail}")

    def _migrate(self) -> None:
        with self._lock:
            version = _identify(self._db, self.path)
            if 0 < version < SCHEMA_VERSION:
                rows = self._db.execute(NODE_ROWS).fetchall()
                refuse_upgrade_under_nodes(self.path, version, SCHEMA_VERSION, rows)
        for index in range(version, SCHEMA_VERSION):
            with self._tx() as db:
                if _schema_version(db) > index:
                    continue  # another process applied it between our look and our lock
                try:
                    for stmt in statements(index, "sqlite"):
                        db.execute(stmt)
                except sqlite3.OperationalError as exc:
                    if not _about_the_schema(exc):
                        raise
                    raise schema_mismatch(self.path, version, str(exc)) from None
                if index + 1 == SHOWN_VERSION:
                    self.fill_shown(db)
                if index == 0:
                    db.execute("INSERT INTO meta (key, value) VALUES ('app', ?)", (APP_ID,))
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(index + 1),),
                )

    def start_background_work(self) -> None:
        """Checkpoint the write-ahead log on a thread of its own from now on (see
        :mod:`._checkpoints`): for the daemon, whose loop thread writes."""
        if self.path == ":memory:":
            return
        if self._checkpointer is not None:
            if self._checkpointer.fault is None:
                return
            self._checkpointer.stop()  # it failed and handed back: start a new one
        with self._lock:
            self._db.execute("PRAGMA wal_autocheckpoint = 0")
            # The daemon's calls run on its loop thread: waiting 30 s for another
            # process's write lock would freeze the loop (and read as a stall). A
            # short wait fails the tick instead, which backs off, tries again, and
            # is told as the database being unavailable if it lasts.
            self._db.execute(f"PRAGMA busy_timeout = {DAEMON_BUSY_TIMEOUT_MS}")
        self._checkpointer = Checkpointer(
            self.path,
            lambda: self._db.total_changes,
            lambda: self._db.in_transaction,
            self._checkpoint_on_commit,
        )
        self._checkpointer.start()

    def background_fault(self) -> str | None:
        checkpointer = self._checkpointer
        return checkpointer.fault if checkpointer is not None else None

    def write_blocked(self, wait: float) -> bool:
        """Tried on a connection of its own with a short busy wait: the store's own
        waits 30 s, and its other calls wait behind it (a dashboard's action and its
        polls got no answer; an agent's tool, the bare "Error executing tool" after
        30 s). SQLite defers closing this connection's file while the store's holds
        it in this process, so its close drops none of the store's locks."""
        if self.path == ":memory:" or self.path.startswith("file:"):
            return False
        try:
            db = sqlite3.connect(self.path, timeout=wait, isolation_level=None)
        except sqlite3.Error:
            return False
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            said = str(exc).lower()
            return "locked" in said or "busy" in said
        except sqlite3.Error:
            return False
        finally:
            db.close()
        return False

    @property
    def file_id(self) -> tuple[int, int] | None:
        """The (device, inode) of the file this store opened (None: in memory)."""
        return self._file_id

    def file_fault(self) -> str | None:
        """The file this store writes is told apart from what its path now names by
        device and inode: a file moved or deleted under a daemon keeps taking its
        writes (into a moved file, or into a deleted one lost at the daemon's exit)."""
        if self._file_id is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return (
                f"its database file {self.path} was moved or deleted while it runs; "
                "what it records goes into that file wherever it is now, and is lost "
                "when the daemon stops if the file was deleted"
            )
        except OSError as exc:
            # cannot look (a permission, a vanished mount): no claim about the file is
            # made, but the log says so once per cause (asked every few seconds)
            said = f"{type(exc).__name__}: {exc}"
            if said != self._file_unseen:
                self._file_unseen = said
                log.warning("cannot look at the database file %s (%s)", self.path, said)
            return None
        self._file_unseen = None
        if (st.st_dev, st.st_ino) != self._file_id:
            return (
                f"its database file {self.path} was replaced by another file while it "
                "runs; the daemon goes on writing the file it opened, which readers of "
                f"{self.path} no longer see"
            )
        return None

    def _checkpoint_on_commit(self, on: bool) -> None:
        pages = DEFAULT_PAGES if on else 0
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.execute(f"PRAGMA wal_autocheckpoint = {pages}")

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()  # the last connection to close checkpoints what is left
        _OPEN_HERE.discard(self._file_id)
        self._file_id = None  # closed twice: counted once

    def describe(self) -> str:
        return f"sqlite:///{self.path}"

    def announce_change(self) -> None:
        announce_on_socket(self._socket())

    def change_listener(self) -> SocketListener | None:
        path = self._socket()
        return SocketListener(path) if path is not None else None

    def _socket(self) -> Path | None:
        # the file's real path: a --db that names a symlink reaches the daemon that
        # opened the file by another name (its wake-ups were lost: probe), as the
        # database's lock does
        real = self.path if self.path == ":memory:" else os.path.realpath(self.path)
        return socket_path(real)


def _schema_version(db: sqlite3.Connection, where: str = "the database") -> int:
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return recorded_version(row[0] if row else None, where)
    return 0


def _identify(db: sqlite3.Connection, path: str) -> int:
    """The schema version of an agentcron database (0 for an empty file); a
    :class:`StoreError` for someone else's database or a newer agentcron's. Only reads."""
    tables = {
        r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    }
    if "meta" not in tables:
        if tables - {"sqlite_sequence"}:
            raise StoreError(
                f"{path} is not an agentcron database: it already holds tables "
                f"{sorted(tables)[:5]}. Point --db or --home elsewhere; agentcron has not "
                "changed it."
            )
        return 0
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'app'").fetchone()
    except sqlite3.OperationalError:
        row = None  # a 'meta' table of another shape: someone else's database
    if row is None or row[0] != APP_ID:
        raise StoreError(
            f"{path} is not an agentcron database (foreign 'meta' table). Point --db or "
            "--home elsewhere; agentcron has not changed it."
        )
    version = _schema_version(db, path)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer agentcron (schema {version}, this "
            f"version knows {SCHEMA_VERSION}); upgrade agentcron."
        )
    return version


def _prepare_folder(file: Path, create: bool) -> None:
    folder = file.parent
    if create:
        try:
            # private (0700) from the start, as the daemon makes its home: a CLI command
            # or `agentcron mcp` run first made it 0755, open until a daemon started
            private_dirs(folder)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder {folder} for the database {file}: {exc.strerror or exc}"
            ) from None
    elif not folder.is_dir():
        raise StoreError(
            f"cannot open the database {file}: the folder {folder} does not exist. "
            "agentcron creates no folders for a database path it is given: create it "
            "first or correct the path."
        )
    if file.is_dir():
        raise StoreError(f"{file} is a folder, not a database file; give the path of a file")


class _OpenHere:
    """The database files this process has a store open on, by device and inode.

    POSIX record locks belong to the process, not to a descriptor: closing any
    descriptor of a file drops every lock the process holds on it, SQLite's among
    them. A second store on a file already open here (the daemon's HTTP API opens one)
    must therefore not read the file's header with a plain open and close: that took
    the daemon connection's locks away, and the next CLI command, closing its own
    connection, found itself the file's last user and deleted the write-ahead log
    under the daemon. The first store on a file inspected it already."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[int, int], int] = {}

    def holds(self, path: str) -> bool:
        try:
            st = os.stat(path)  # a stat opens nothing
        except OSError:
            return False
        with self._lock:
            return (st.st_dev, st.st_ino) in self._open

    def add(self, key: tuple[int, int] | None) -> None:
        if key is not None:
            with self._lock:
                self._open[key] = self._open.get(key, 0) + 1

    def discard(self, key: tuple[int, int] | None) -> None:
        if key is None:
            return
        with self._lock:
            left = self._open.get(key, 0) - 1
            if left > 0:
                self._open[key] = left
            else:
                self._open.pop(key, None)


_OPEN_HERE = _OpenHere()


def _inspect_read_only(path: str) -> None:
    """Refuse a file that is not ours before anything writes to it.

    The header says whether the file is SQLite at all. The connection that then reads
    its tables is read-only; for a WAL file with no ``-wal`` beside it (nobody has it
    open) it is also ``immutable``, because a read-only open of a WAL file would
    otherwise leave new ``-wal`` and ``-shm`` files next to it.
    """
    file = Path(path)
    try:
        with file.open("rb") as fh:
            header = fh.read(100)
    except FileNotFoundError:
        return  # a new database
    except OSError as exc:
        raise StoreError(f"cannot read the database {path}: {exc.strerror or exc}") from None
    if not header:
        return  # an empty file becomes a new database, as SQLite itself does
    if len(header) < 100 or not header.startswith(_MAGIC):
        raise not_a_database(path, "its first bytes are not SQLite's header")
    wal = header[18] == 2
    uri = file.absolute().as_uri() + "?mode=ro"
    if wal and not Path(path + "-wal").exists():
        uri += "&immutable=1"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=30.0)
    except sqlite3.Error as exc:
        raise _cannot_open(path, exc) from None
    try:
        _identify(db, path)
    except sqlite3.DatabaseError as exc:
        raise _broken(path, exc) or _cannot_open(path, exc) from None
    finally:
        db.close()


def _broken(path: str, exc: sqlite3.DatabaseError) -> StoreError | None:
    """The worded error for a damaged or non-SQLite file; None for any other error."""
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    text = str(exc)
    # "malformed" alone is not damage: SQLite says "malformed JSON" (an ordinary error)
    # of one row's text, and telling the owner to move the whole file aside for it
    # would be the wrong advice
    if code == _SQLITE_CORRUPT or "database disk image is malformed" in text:
        return damaged_database(path, text)
    if code == _SQLITE_NOTADB or "not a database" in text:
        return not_a_database(path, text)
    return None


def _about_the_schema(exc: sqlite3.OperationalError) -> bool:
    """Whether a migration's failure says the tables are not what the recorded version
    says (a column or table there already, or missing), not that the file is busy."""
    text = str(exc)
    return any(w in text for w in ("duplicate column", "already exists", "no such "))


def _check_structure(db: sqlite3.Connection, path: str) -> None:
    """Refuse a database whose tables lack what its schema version has (a table or
    column dropped by hand): `doctor` said ✔ and the daemon started into an outage it
    could never end ("no such table: attempts"; outside-in probe). Only reads."""
    if path == ":memory:":
        return
    tables: dict[str, set[str]] = {}
    for table in expected_columns():
        tables[table] = {r[1] for r in db.execute(f"PRAGMA table_info({table})").fetchall()}
    missing = missing_parts(tables)
    if missing:
        raise schema_mismatch(path, _schema_version(db, path), f"it lacks {missing}")


def _cannot_open(path: str, exc: sqlite3.Error) -> StoreError:
    return StoreError(
        f"{path} is not a usable agentcron database: SQLite cannot open it ({exc}). "
        "Check that this user may read and write the file and its folder."
    )
