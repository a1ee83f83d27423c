"""SQLite implementation of :class:`~agentcron.store.base.Store`.

One connection per store object, guarded by a lock so the engine loop and the
watchdog thread can share it; WAL mode so CLI processes read while the daemon
writes. Writes that must not interleave with another process (claims,
materialisation) run in ``BEGIN IMMEDIATE`` transactions, which take SQLite's
write lock up front: that is this engine's equivalent of PostgreSQL's row locks.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentcron.store._checkpoints import DEFAULT_PAGES, Checkpointer
from agentcron.store.errors import StoreError
from agentcron.store.migrations import APP_ID, MIGRATIONS, SCHEMA_VERSION
from agentcron.store.sql import SQLStore


class SQLiteStore(SQLStore):
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._checkpointer: Checkpointer | None = None
        try:
            self._db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA busy_timeout = 30000")
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is not a usable agentcron database ({exc}). "
                "If it is corrupt, move it aside and start again; history in it is not read."
            ) from None

    # ---- plumbing ----------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        with self._lock:
            tables = {
                r[0]
                for r in self._db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                ).fetchall()
            }
            version = 0
            if "meta" in tables:
                try:
                    row = self._db.execute("SELECT value FROM meta WHERE key = 'app'").fetchone()
                except sqlite3.OperationalError:
                    row = None  # a 'meta' table of another shape: someone else's database
                if row is None or row[0] != APP_ID:
                    raise StoreError(
                        f"{self.path} is not an agentcron database (foreign 'meta' table)"
                    )
                vrow = self._db.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()
                version = int(vrow[0]) if vrow else 0
            elif tables - {"sqlite_sequence"}:
                raise StoreError(
                    f"{self.path} is not an agentcron database: it already holds tables "
                    f"{sorted(tables)[:5]}. Point --db or --home elsewhere."
                )
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer agentcron (schema {version}, this "
                    f"version knows {SCHEMA_VERSION}); upgrade agentcron."
                )
        for index in range(version, SCHEMA_VERSION):
            with self._tx() as db:
                if _schema_version(db) > index:
                    continue  # another process applied it between our look and our lock
                for stmt in MIGRATIONS[index]:
                    db.execute(stmt.replace("{pk}", "INTEGER PRIMARY KEY AUTOINCREMENT"))
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
        if self.path == ":memory:" or self._checkpointer is not None:
            return
        with self._lock:
            self._db.execute("PRAGMA wal_autocheckpoint = 0")
        self._checkpointer = Checkpointer(
            self.path,
            lambda: self._db.total_changes,
            lambda: self._db.in_transaction,
            self._checkpoint_on_commit,
        )
        self._checkpointer.start()

    def _checkpoint_on_commit(self, on: bool) -> None:
        pages = DEFAULT_PAGES if on else 0
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.execute(f"PRAGMA wal_autocheckpoint = {pages}")

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()  # the last connection to close checkpoints what is left

    def describe(self) -> str:
        return f"sqlite:///{self.path}"


def _schema_version(db: sqlite3.Connection) -> int:
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0
    return 0
