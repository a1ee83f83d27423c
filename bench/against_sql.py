"""Which SQL statements a profiled daemon runs, how often and at what cost, and how
SQLite plans the costly ones.

:class:`StatementLog` stands in for a :class:`~agentcron.store.sqlite.SQLiteStore`'s
connection (``store._db``) for the length of a profile: every ``execute`` and the
fetches of its cursor are timed and counted per statement, told apart by the line of
store code that runs it (the text is shown with placeholder lists folded, so
``IN (?, ?, ?)`` of any length reads as one statement), from whichever thread.
:meth:`StatementLog.plans` then asks ``EXPLAIN QUERY PLAN`` of the costliest ones on
a connection of its own: a ``SCAN`` of ``slots`` or ``attempts`` without an index is
a cost that grows with every run ever recorded.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

_LIST = re.compile(r"\((?:\s*\?\s*,)+\s*\?\s*\)(?:\s*,\s*\((?:\s*\?\s*,)*\s*\?\s*\))*")
_SPACE = re.compile(r"\s+")
HISTORY_TABLES = ("slots", "attempts", "outbox", "incidents", "deliveries", "audit")
_ALIAS = re.compile(rf"(?:FROM|JOIN)\s+({'|'.join(HISTORY_TABLES)})\s+(?:AS\s+)?(\w+)", re.I)
_KEYWORDS = {"WHERE", "JOIN", "LEFT", "INNER", "ON", "ORDER", "GROUP", "LIMIT", "SET", "USING"}
# "SCAN slots" or "SCAN slots AS s" alone: no index, every row ever recorded is read
_BARE_SCAN = re.compile(r"SCAN (\w+)(?: AS (\w+))?")


def statement_key(sql: str) -> str:
    """The statement with whitespace collapsed and placeholder lists folded."""
    return _LIST.sub("(?…)", _SPACE.sub(" ", sql.strip()))


@dataclass
class _Stat:
    calls: int = 0
    seconds: float = 0.0
    threads: set[str] = field(default_factory=set)
    sample: tuple[str, Sequence[Any]] | None = None  # one call, for EXPLAIN


class _Cursor:
    """A cursor whose fetches count towards its statement's time."""

    def __init__(self, cursor: sqlite3.Cursor, stat: _Stat, lock: threading.Lock) -> None:
        self._cursor = cursor
        self._stat = stat
        self._lock = lock

    def _timed(self, name: str) -> Any:
        start = time.perf_counter()
        value = getattr(self._cursor, name)()
        with self._lock:
            self._stat.seconds += time.perf_counter() - start
        return value

    def fetchall(self) -> list[Any]:
        rows: list[Any] = self._timed("fetchall")
        return rows

    def fetchone(self) -> Any:
        return self._timed("fetchone")

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())

    def __getattr__(self, name: str) -> Any:  # rowcount, lastrowid, description …
        return getattr(self._cursor, name)


class StatementLog:
    """``store._db = StatementLog(store._db)``; ``store._db = log.connection`` after."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.stats: dict[str, _Stat] = {}
        self._lock = threading.Lock()
        self.counting = False

    def _stat(self, sql: str, params: Sequence[Any]) -> _Stat:
        key = _call_site()  # cheap: folding a 400-row VALUES list costs 50 µs a call
        if len(sql) < 20:  # BEGIN IMMEDIATE and COMMIT share their `with` line
            key = f"{key} {sql.strip()}"
        with self._lock:
            stat = self.stats.get(key)
            if stat is None:
                stat = self.stats[key] = _Stat(sample=(sql, tuple(params)))
            stat.calls += 1
            stat.threads.add(threading.current_thread().name)
        return stat

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if not self.counting:
            return self.connection.execute(sql, params)
        stat = self._stat(sql, params)
        start = time.perf_counter()
        cursor = self.connection.execute(sql, params)
        with self._lock:
            stat.seconds += time.perf_counter() - start
        return _Cursor(cursor, stat, self._lock)

    def executemany(self, sql: str, rows: Any) -> Any:
        if not self.counting:
            return self.connection.executemany(sql, rows)
        stat = self._stat(sql, ())
        start = time.perf_counter()
        cursor = self.connection.executemany(sql, rows)
        with self._lock:
            stat.seconds += time.perf_counter() - start
        return cursor

    def __getattr__(self, name: str) -> Any:  # in_transaction, total_changes, close …
        return getattr(self.connection, name)

    def report(
        self, per: float, unit: str, path: str | None, top: int = 15
    ) -> list[dict[str, Any]]:
        """The ``top`` statements by time, per ``unit`` (``per`` of them), with SQLite's
        plan for each when ``path`` (the database file) is given."""
        rows = sorted(self.stats.items(), key=lambda kv: -kv[1].seconds)[:top]
        planner = sqlite3.connect(f"file:{path}?mode=ro", uri=True) if path else None
        out = []
        try:
            for key, stat in rows:
                sql = statement_key(stat.sample[0]) if stat.sample else ""
                entry: dict[str, Any] = {
                    "site": key,
                    "statement": sql[:240],
                    "calls_per_" + unit: round(stat.calls / per, 3),
                    "us_per_" + unit: round(1e6 * stat.seconds / per, 1),
                    "us_per_call": round(1e6 * stat.seconds / max(1, stat.calls), 1),
                    "threads": sorted(stat.threads),
                }
                if planner is not None and stat.sample is not None:
                    entry["plan"], entry["scans_history"] = _plan(planner, *stat.sample)
                out.append(entry)
        finally:
            if planner is not None:
                planner.close()
        return out


_HELPERS = {"_q", "_tx", "execute", "executemany"}  # the store's own plumbing


def _call_site() -> str:
    """``file:line(function)`` of the store code that ran the statement: the first
    frame above this module, the store's query helpers and ``contextlib`` (a
    transaction's BEGIN and COMMIT run in ``_tx``'s ``with``)."""
    frame = sys._getframe(3)
    while frame.f_back is not None and (
        frame.f_code.co_name in _HELPERS or frame.f_code.co_filename.endswith("contextlib.py")
    ):
        frame = frame.f_back  # BEGIN and COMMIT: the method that opened the transaction
    path = frame.f_code.co_filename
    short = path.split("/agentcron/", 1)[1] if "/agentcron/" in path else path
    return f"{short}:{frame.f_lineno}({frame.f_code.co_name})"


def _plan(db: sqlite3.Connection, sql: str, params: Sequence[Any]) -> tuple[list[str], bool]:
    """EXPLAIN QUERY PLAN's lines, and whether one walks a history table without an index."""
    if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT", "WITH")):
        return [], False
    try:
        lines = [str(r[3]) for r in db.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()]
    except sqlite3.Error as exc:
        return [f"(no plan: {exc})"], False
    # a table is named by its alias in the plan (`FROM slots s` -> "SCAN s")
    names = {table: table for table in HISTORY_TABLES}
    for table, alias in _ALIAS.findall(sql):
        if alias.upper() not in _KEYWORDS:
            names[alias] = table
    scans = False
    for line in lines:
        bare = _BARE_SCAN.fullmatch(line.strip())
        if bare is not None and names.get(bare.group(2) or bare.group(1)) in HISTORY_TABLES:
            scans = True
    return lines, scans
