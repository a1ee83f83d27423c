"""PostgreSQL implementation of :class:`~agentcron.store.base.Store`, for several nodes.

The SQL is :class:`~agentcron.store.sql.SQLStore`'s; this module supplies what only a
server database needs: a connection that comes back after the server dropped it,
migrations that two nodes starting at once cannot run twice (an advisory lock held
for the migrating transaction), and a claim that holds across nodes. SQLite gets
that last property for free from its single writer; here the candidate slots are
row-locked with ``FOR UPDATE SKIP LOCKED`` (two nodes never wait on, nor take, the
same slot) and a task that must not overlap is claimed under a lock on its task
row, so only one node at a time can decide that it is idle.

One connection per store object, guarded by a lock, as with SQLite: the daemon's
event loop and its watchdog thread share it. Transactions are explicit; reads
commit at once so the connection never sits idle inside a transaction.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import lru_cache
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from agentcron.store._conn import Cursor
from agentcron.store._pg_listen import NotifyListener, channel_name
from agentcron.store.errors import StoreError, schema_mismatch
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

# First half of the two-part advisory lock key; the second is the schema's hash, so
# stores in different schemas of one database do not wait for each other.
_MIGRATION_LOCK_CLASS = 0x61637272  # "acrr"
_STATEMENT_TIMEOUT_MS = 30_000  # longer than any statement of ours takes under load
_CONNECT_TIMEOUT_S = 10


@lru_cache(maxsize=512)
def _pg_sql(text: str) -> str:
    """The shared SQL's ``?`` placeholders (it has no literal ``?``) as PostgreSQL's own
    ``$1``, ``$2``…, which psycopg's raw cursors send as they are. With ``%s`` psycopg
    would parse every query on the client, and a bulk statement of thousands of
    placeholders is too long for its cache: milliseconds each time."""
    pieces = text.split("?")
    out = [pieces[0]]
    for number, piece in enumerate(pieces[1:], 1):
        out += (f"${number}", piece)
    return "".join(out)


class _Conn:
    """What :class:`SQLStore` expects of a connection inside a transaction."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, text: str, params: Sequence[Any] = ()) -> Cursor:
        # The protocol declares ``rowcount`` settable; psycopg's is a read-only property.
        return cast(Cursor, self.raw.execute(_pg_sql(text), _text_safe(params)))

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.raw.cursor() as cur:
            cur.executemany(_pg_sql(text), [_text_safe(row) for row in rows])


def _text_safe(params: Sequence[Any]) -> Sequence[Any]:
    """``params`` with NUL characters in text replaced (U+FFFD): PostgreSQL refuses
    them in text, where SQLite keeps them. A command that prints one (binary output,
    a crash dump) put it in its error's tail, and that end was then refused on every
    try, holding the ends of every run behind it as if the database were away."""
    for p in params:  # a plain loop: ~40 ns a parameter, on every statement
        if type(p) is str and "\x00" in p:
            break
    else:
        return params
    return [p.replace("\x00", "\ufffd") if type(p) is str else p for p in params]


def redact_dsn(dsn: str) -> str:
    """The DSN with its password removed, in the form it was given (URL or key=value)."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, hosts = netloc.rsplit("@", 1)
            netloc = f"{userinfo.split(':', 1)[0]}@{hosts}"
        query = urlencode(
            [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"]
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(unparsable PostgreSQL DSN)"
    params.pop("password", None)
    return make_conninfo("", **params)


def _server_name(params: dict[str, Any]) -> str:
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    return f"{host}:{port}/{params.get('dbname') or params.get('user') or '(default database)'}"


class PostgresStore(SQLStore):
    _spec_dialect = "postgresql"  # how stored specs' keys are read (store/_spec_sql.py)
    # several daemons share it, and none holds its home's lock (instance_lock.daemon_lock)
    home_locked = False

    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        self.dsn = dsn
        self.schema = schema
        try:
            self._params: dict[str, Any] = conninfo_to_dict(dsn)
        except psycopg.Error as exc:
            raise StoreError(f"invalid PostgreSQL DSN {redact_dsn(dsn)}: {exc}") from None
        self._params.setdefault("connect_timeout", _CONNECT_TIMEOUT_S)
        self._params.setdefault("application_name", "agentcron")
        # A half-open connection (server gone, packets dropped) must fail a call within
        # seconds, not hang the loop for the kernel's two hours: TCP keepalives notice a
        # silent peer, and the server ends any statement that runs past the limit.
        self._params.setdefault("keepalives", 1)
        self._params.setdefault("keepalives_idle", 10)
        self._params.setdefault("keepalives_interval", 5)
        self._params.setdefault("keepalives_count", 3)
        self._params.setdefault("tcp_user_timeout", _STATEMENT_TIMEOUT_MS)
        options = str(self._params.get("options") or "")
        if "statement_timeout" not in options:
            limit = f"-c statement_timeout={_STATEMENT_TIMEOUT_MS}"
            self._params["options"] = f"{options} {limit}".strip()
        self._password = str(self._params.get("password") or "")
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._closed = False
        self._channel = channel_name(schema)
        self._migrate()

    # ---- plumbing ----------------------------------------------------------------
    def _where(self) -> str:
        return _server_name(self._params) + (f" (schema {self.schema})" if self.schema else "")

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _connection(self) -> psycopg.Connection[Any]:
        """The live connection, opened (again) if there is none."""
        if self._closed:
            raise StoreError("the store was closed")
        if self._conn is not None and not (self._conn.closed or self._conn.broken):
            return self._conn
        self._discard()
        try:
            conn = psycopg.connect(
                **self._params, autocommit=False, cursor_factory=psycopg.RawCursor
            )
        except psycopg.Error as exc:
            reason = self._scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            raise StoreError(
                f"cannot connect to PostgreSQL at {self._where()}: {reason or type(exc).__name__}"
            ) from None
        if self.schema is not None:
            # A session setting, committed so that no later rollback undoes it; the
            # schema itself is created by the migration, under its lock.
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            conn.commit()
        self._conn = conn
        return conn

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _begin(self, stack: ExitStack) -> psycopg.Connection[Any]:
        """Enter a transaction; if the server dropped the connection since its last
        use, open a new one and try once more (nothing was sent in this one yet)."""
        conn = self._connection()
        try:
            stack.enter_context(conn.transaction())
        except psycopg.OperationalError:
            if not (conn.closed or conn.broken):
                raise
            conn = self._connection()
            stack.enter_context(conn.transaction())
        return conn

    @contextmanager
    def _tx(self) -> Iterator[_Conn]:
        with self._lock, ExitStack() as stack:
            yield _Conn(self._begin(stack))

    def _q(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._tx() as db:
            return list(db.execute(text, params).fetchall())

    def _migrate(self) -> None:
        """Bring the schema to :data:`SCHEMA_VERSION` in one transaction (PostgreSQL's DDL
        is transactional), or say in one sentence why this database cannot be used."""
        try:
            with self._tx() as db:
                target = self.schema or db.execute("SELECT current_schema()").fetchone()[0]
                self._channel = channel_name(target)  # see announce_change
                if target is None:
                    raise StoreError(
                        f"PostgreSQL at {self._where()}: the search_path names no existing "
                        "schema to create agentcron's tables in; create it (CREATE SCHEMA …) "
                        "or point the search_path at one"
                    )
                key = int.from_bytes(hashlib.sha256(target.encode()).digest()[:4], signed=True)
                db.execute("SELECT pg_advisory_xact_lock(?, ?)", (_MIGRATION_LOCK_CLASS, key))
                if (
                    self.schema is not None
                    and not db.execute(
                        "SELECT 1 FROM pg_namespace WHERE nspname = ?", (self.schema,)
                    ).fetchone()
                ):
                    db.raw.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
                version = self._schema_version(db, target)
                if 0 < version < SCHEMA_VERSION:
                    rows = db.execute(NODE_ROWS).fetchall()
                    where = f"PostgreSQL at {self._where()}"
                    refuse_upgrade_under_nodes(where, version, SCHEMA_VERSION, rows)
                for index in range(version, SCHEMA_VERSION):
                    for stmt in statements(index, "postgresql"):
                        db.execute(stmt)
                    if index + 1 == SHOWN_VERSION:
                        self.fill_shown(db)
                    if index == 0:
                        db.execute("INSERT INTO meta (key, value) VALUES ('app', ?)", (APP_ID,))
                    db.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (str(index + 1),),
                    )
                self._check_structure(db, target)
        except psycopg.Error as exc:
            self.close()
            raise StoreError(
                f"PostgreSQL at {self._where()} cannot hold agentcron's data: "
                f"{self._scrub(str(exc).strip().splitlines()[0])}"
            ) from None
        except StoreError:
            self.close()
            raise

    def _check_structure(self, db: _Conn, target: str) -> None:
        """Refuse a schema whose tables lack what its version has (dropped by hand): the
        daemon started into an outage it could never end (see store.sqlite)."""
        found: dict[str, set[str]] = {}
        # the catalog, not information_schema, which lists only what this user has a
        # privilege on: a grant problem would be called a damaged database
        for table, column in db.execute(
            "SELECT c.relname, a.attname FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped",
            (target,),
        ).fetchall():
            found.setdefault(table, set()).add(column)
        missing = missing_parts(found)
        if missing:
            raise schema_mismatch(
                f"PostgreSQL at {self._where()}", SCHEMA_VERSION, f"it lacks {missing}"
            )

    def _schema_version(self, db: _Conn, target: str) -> int:
        tables = {
            r[0]
            for r in db.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                (target,),
            ).fetchall()
        }
        if "meta" not in tables:
            if tables:
                raise StoreError(
                    f"PostgreSQL at {self._where()} is not an agentcron database: schema "
                    f"{target!r} already holds tables {sorted(tables)[:5]}. Use another "
                    "database or schema."
                )
            return 0
        foreign = StoreError(
            f"PostgreSQL at {self._where()} is not an agentcron database: schema {target!r} "
            "has a 'meta' table that agentcron did not write. Use another database or schema."
        )
        try:
            rows = dict(
                db.execute(
                    "SELECT key, value FROM meta WHERE key IN ('app', 'schema_version')"
                ).fetchall()
            )
        except psycopg.Error:
            raise foreign from None
        if rows.get("app") != APP_ID:
            raise foreign
        version = recorded_version(rows.get("schema_version"), f"PostgreSQL at {self._where()}")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"PostgreSQL at {self._where()} was written by a newer agentcron (schema "
                f"{version}, this version knows {SCHEMA_VERSION}); upgrade agentcron."
            )
        return version

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._discard()

    def start_background_work(self) -> None:
        """Nothing to move: the server does its own upkeep."""

    def background_fault(self) -> str | None:
        return None

    def file_fault(self) -> str | None:
        return None

    def write_blocked(self, wait: float) -> bool:
        return False  # rows are locked, not the database

    def write_refused(self) -> str | None:
        """The tables of agentcron this connection's user may not write, in words, or
        None: a user granted SELECT only got `doctor`'s ✔ and a daemon that failed with a
        traceback (outside-in probe). Read from the catalog: nothing is written."""
        target = self.schema
        with self._tx() as db:
            if target is None:
                target = db.execute("SELECT current_schema()").fetchone()[0]
            # each privilege asked alone: has_table_privilege with a list is true when
            # any one of them is held
            held = " AND ".join(
                f"has_table_privilege(t.oid, '{p}')"
                for p in ("SELECT", "INSERT", "UPDATE", "DELETE")
            )
            rows = db.execute(
                "SELECT t.relname FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace "
                f"WHERE n.nspname = ? AND ((t.relkind = 'r' AND NOT ({held})) OR "
                "(t.relkind = 'S' AND NOT has_sequence_privilege(t.oid, 'USAGE'))) ORDER BY 1",
                (target,),
            ).fetchall()
        ours = set(expected_columns())
        names = [r[0] for r in rows if r[0] in ours or r[0].endswith("_seq")]
        if not names:
            return None
        user = self._params.get("user") or "this user"
        return (
            f"{user} may not write {', '.join(names[:5])}{' …' if len(names) > 5 else ''} "
            "(it needs SELECT, INSERT, UPDATE and DELETE on agentcron's tables, and USAGE "
            "on their sequences): a daemon would fail at its first write"
        )

    def describe(self) -> str:
        where = redact_dsn(self.dsn)
        return f"{where} (schema {self.schema})" if self.schema else where

    def announce_change(self) -> None:
        """``NOTIFY`` this schema's daemons. What changed is written already: a NOTIFY
        that fails (the server went away just now) is logged, not raised, and the
        daemons find the change on their beat."""
        try:
            self._q("SELECT pg_notify(?, '')", [self._channel])
        except Exception as exc:
            log.warning("could not announce a change to the daemons: %s", self._scrub(str(exc)))

    def change_listener(self) -> NotifyListener:
        return NotifyListener(self._params, self._channel, self.announce_change)

    # ---- the claim across nodes --------------------------------------------------------
    # Candidates another node is claiming are skipped, not waited for.
    _candidate_lock = " FOR UPDATE OF s SKIP LOCKED"

    def _hold_tasks_of(self, db: Any, slot_ids: Sequence[int]) -> None:
        """Under Read Committed a pause or a removal committed between the finishing
        statements and the commit would be missed both ways (its cancel of waiting slots
        saw this one running; the end of retries saw the task as it was): its task rows
        are share-locked first, so the pause or removal waits for this commit."""
        db.execute(
            "SELECT t.name FROM tasks t JOIN slots s ON s.task = t.name "
            "WHERE s.id = ANY(?) ORDER BY t.name FOR SHARE OF t",
            (sorted(set(slot_ids)),),
        ).fetchall()

    def _may_start(self, db: Any, tasks: Sequence[str]) -> set[str]:
        """For tasks that run one at a time: lock their rows (skipping those another node
        holds) and ask again, under the locks, whether one is already running, so two
        nodes cannot each start one. Read Committed gives the second statement a fresh
        snapshot, so it sees a claim committed just before."""
        locked = {
            r[0]
            for r in db.execute(
                "SELECT name FROM tasks WHERE name = ANY(?) FOR UPDATE SKIP LOCKED", (list(tasks),)
            ).fetchall()
        }
        if not locked:
            return locked
        running = {
            r[0]
            for r in db.execute(
                "SELECT DISTINCT task FROM slots WHERE status = 'running' AND task = ANY(?)",
                (sorted(locked),),
            ).fetchall()
        }
        return locked - running

    # ---- dialect fixes for two shared statements ------------------------------------
