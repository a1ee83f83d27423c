"""SQLite implementation of :class:`~agentcron.store.base.Store`.

One connection per store object, guarded by a lock so the engine loop and the
watchdog thread can share it; WAL mode so CLI processes read while the daemon
writes. Writes that must not interleave with another process (claims,
materialisation) run in ``BEGIN IMMEDIATE`` transactions, which take SQLite's
write lock up front: that is this engine's equivalent of PostgreSQL's row locks.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from agentcron.model import Attempt, Slot, SlotStatus, TaskRecord, TaskSource, TaskSpec
from agentcron.store._rows import (
    ATTEMPT_COLUMNS,
    SLOT_COLUMNS,
    TASK_COLUMNS,
    attempt_from_row,
    schedule_key,
    slot_from_row,
    spec_json,
    task_from_row,
    ts,
)
from agentcron.store.base import AttemptOutcome, Claim, NewSlot, NodeInfo
from agentcron.store.errors import StoreError
from agentcron.store.migrations import APP_ID, MIGRATIONS, SCHEMA_VERSION


class SQLiteStore:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
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
                row = self._db.execute("SELECT value FROM meta WHERE key = 'app'").fetchone()
                if row is None or row[0] != APP_ID:
                    raise StoreError(f"{self.path} is not an agentcron database (foreign 'meta' table)")
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
                for stmt in MIGRATIONS[index]:
                    db.execute(stmt.replace("{pk}", "INTEGER PRIMARY KEY AUTOINCREMENT"))
                if index == 0:
                    db.execute("INSERT INTO meta (key, value) VALUES ('app', ?)", (APP_ID,))
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(index + 1),),
                )

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:  # pragma: no cover - closing twice
                pass

    def describe(self) -> str:
        return f"sqlite:///{self.path}"

    # ---- tasks -------------------------------------------------------------------
    def _upsert(
        self,
        db: sqlite3.Connection,
        spec: TaskSpec,
        source: TaskSource,
        now: datetime,
        next_fire_at: datetime | None,
    ) -> str:
        """Returns 'added', 'changed' or 'same'."""
        key = schedule_key(spec)
        body = spec_json(spec)
        row = db.execute(
            "SELECT spec, schedule_key, source FROM tasks WHERE name = ?", (spec.name,)
        ).fetchone()
        if row is None:
            db.execute(
                "INSERT INTO tasks (name, source, spec, schedule_key, overlap, paused, "
                "next_fire_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.name,
                    source.value,
                    body,
                    key,
                    spec.overlap.value,
                    int(spec.paused),
                    ts(next_fire_at),
                    ts(now),
                    ts(now),
                ),
            )
            return "added"
        if row[0] == body and row[2] == source.value:
            return "same"
        if row[1] != key:
            db.execute(
                "UPDATE tasks SET next_fire_at = ? WHERE name = ?", (ts(next_fire_at), spec.name)
            )
        db.execute(
            "UPDATE tasks SET spec = ?, schedule_key = ?, overlap = ?, source = ?, paused = ?, "
            "updated_at = ? WHERE name = ?",
            (body, key, spec.overlap.value, source.value, int(spec.paused), ts(now), spec.name),
        )
        return "changed"

    def upsert_task(
        self, spec: TaskSpec, source: TaskSource, now: datetime, next_fire_at: datetime | None
    ) -> TaskRecord:
        with self._tx() as db:
            self._upsert(db, spec, source, now, next_fire_at)
        record = self.get_task(spec.name)
        assert record is not None
        return record

    def upsert_many(
        self,
        items: Sequence[tuple[TaskSpec, datetime | None]],
        source: TaskSource,
        now: datetime,
    ) -> None:
        """Bulk insert for the Python API and benchmarks: one transaction for many tasks."""
        with self._tx() as db:
            for spec, next_fire_at in items:
                self._upsert(db, spec, source, now, next_fire_at)

    def sync_file_tasks(
        self, specs: Sequence[TaskSpec], now: datetime, next_fire: dict[str, datetime | None]
    ) -> tuple[list[str], list[str], list[str]]:
        added: list[str] = []
        changed: list[str] = []
        removed: list[str] = []
        names = {s.name for s in specs}
        with self._tx() as db:
            for spec in specs:
                result = self._upsert(db, spec, TaskSource.FILE, now, next_fire.get(spec.name))
                if result == "added":
                    added.append(spec.name)
                elif result == "changed":
                    changed.append(spec.name)
            for (name,) in db.execute(
                "SELECT name FROM tasks WHERE source = ?", (TaskSource.FILE.value,)
            ).fetchall():
                if name not in names:
                    self._remove(db, name, now)
                    removed.append(name)
        return added, changed, removed

    def get_task(self, name: str) -> TaskRecord | None:
        rows = self._q(f"SELECT {TASK_COLUMNS} FROM tasks WHERE name = ?", (name,))
        return task_from_row(rows[0]) if rows else None

    def list_tasks(self) -> list[TaskRecord]:
        return [task_from_row(r) for r in self._q(f"SELECT {TASK_COLUMNS} FROM tasks ORDER BY name")]

    def count_tasks(self) -> int:
        return int(self._q("SELECT COUNT(*) FROM tasks")[0][0])

    def _remove(self, db: sqlite3.Connection, name: str, now: datetime) -> None:
        db.execute("DELETE FROM tasks WHERE name = ?", (name,))
        db.execute(
            "UPDATE slots SET status = ?, reason = ?, finished_at = ?, next_attempt_at = NULL "
            "WHERE task = ? AND status IN ('pending', 'retrying')",
            (SlotStatus.CANCELLED.value, "task removed", ts(now), name),
        )

    def remove_task(self, name: str, now: datetime) -> bool:
        with self._tx() as db:
            if db.execute("SELECT 1 FROM tasks WHERE name = ?", (name,)).fetchone() is None:
                return False
            self._remove(db, name, now)
        return True

    def set_paused(
        self, name: str, paused: bool, now: datetime, next_fire_at: datetime | None
    ) -> bool:
        with self._tx() as db:
            row = db.execute("SELECT spec FROM tasks WHERE name = ?", (name,)).fetchone()
            if row is None:
                return False
            spec = TaskSpec.model_validate_json(row[0]).model_copy(update={"paused": paused})
            db.execute(
                "UPDATE tasks SET paused = ?, spec = ?, next_fire_at = ?, updated_at = ? "
                "WHERE name = ?",
                (int(paused), spec_json(spec), ts(next_fire_at), ts(now), name),
            )
            if paused:
                db.execute(
                    "UPDATE slots SET status = ?, reason = ?, finished_at = ?, "
                    "next_attempt_at = NULL WHERE task = ? AND status IN ('pending', 'retrying')",
                    (SlotStatus.CANCELLED.value, "task paused", ts(now), name),
                )
        return True

    def due_tasks(self, now: datetime, limit: int) -> list[TaskRecord]:
        rows = self._q(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE paused = 0 AND next_fire_at <= ? "
            "ORDER BY next_fire_at LIMIT ?",
            (ts(now), limit),
        )
        return [task_from_row(r) for r in rows]

    def next_wakeup(self) -> datetime | None:
        from agentcron.store._rows import dt

        row = self._q(
            "SELECT MIN(x) FROM ("
            " SELECT MIN(next_fire_at) AS x FROM tasks WHERE paused = 0"
            " UNION ALL SELECT MIN(next_attempt_at) FROM slots WHERE status IN ('pending', 'retrying')"
            ")"
        )
        return dt(row[0][0]) if row and row[0][0] is not None else None

    # ---- slots -------------------------------------------------------------------
    def _insert_slot(
        self, db: sqlite3.Connection, task: str, slot: NewSlot, now: datetime
    ) -> Slot | None:
        final = slot.status.is_final
        cur = db.execute(
            "INSERT INTO slots (task, scheduled_for, status, reason, trigger, created_at, "
            "finished_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task, scheduled_for) DO NOTHING "
            f"RETURNING {SLOT_COLUMNS}",
            (
                task,
                ts(slot.scheduled_for),
                slot.status.value,
                slot.reason,
                slot.trigger,
                ts(now),
                ts(now) if final else None,
            ),
        )
        row = cur.fetchone()
        return slot_from_row(row) if row else None

    def materialize(
        self,
        task: str,
        expected_next_fire_at: datetime | None,
        new_next_fire_at: datetime | None,
        slots: Sequence[NewSlot],
        now: datetime,
    ) -> list[Slot] | None:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE tasks SET next_fire_at = ? WHERE name = ? AND next_fire_at IS ?",
                (ts(new_next_fire_at), task, ts(expected_next_fire_at)),
            )
            if cur.rowcount != 1:
                return None
            inserted = [self._insert_slot(db, task, s, now) for s in slots]
        return [s for s in inserted if s is not None]

    def add_slot(self, task: str, slot: NewSlot, now: datetime) -> Slot | None:
        with self._tx() as db:
            return self._insert_slot(db, task, slot, now)

    def claim(self, owner: str, now: datetime, lease_until: datetime, limit: int) -> list[Claim]:
        if limit <= 0:
            return []
        claims: list[Claim] = []
        with self._tx() as db:
            busy = {
                r[0]
                for r in db.execute(
                    "SELECT DISTINCT task FROM slots WHERE status = 'running'"
                ).fetchall()
            }
            rows = db.execute(
                f"SELECT {', '.join('s.' + c.strip() for c in SLOT_COLUMNS.split(','))}, "
                "t.spec, t.overlap FROM slots s JOIN tasks t ON t.name = s.task "
                "WHERE s.status IN ('pending', 'retrying') "
                "AND (s.next_attempt_at IS NULL OR s.next_attempt_at <= ?) "
                "AND (s.status = 'pending' OR s.next_attempt_at IS NOT NULL) "
                "ORDER BY COALESCE(s.next_attempt_at, s.scheduled_for), s.id LIMIT ?",
                (ts(now), max(limit * 4, 16)),
            ).fetchall()
            for row in rows:
                if len(claims) >= limit:
                    break
                slot = slot_from_row(row[:17])
                spec_text, overlap = row[17], row[18]
                if overlap != "allow":
                    if slot.task in busy:
                        continue
                    busy.add(slot.task)
                number = slot.attempts + 1
                db.execute(
                    "UPDATE slots SET status = 'running', attempts = ?, lease_owner = ?, "
                    "lease_expires_at = ?, started_at = COALESCE(started_at, ?), "
                    "next_attempt_at = NULL WHERE id = ?",
                    (number, owner, ts(lease_until), ts(now), slot.id),
                )
                cur = db.execute(
                    "INSERT INTO attempts (slot_id, number, started_at, status, node) "
                    "VALUES (?, ?, ?, 'running', ?) RETURNING " + ATTEMPT_COLUMNS,
                    (slot.id, number, ts(now), owner),
                )
                attempt = attempt_from_row(cur.fetchone())
                fresh = db.execute(
                    f"SELECT {SLOT_COLUMNS} FROM slots WHERE id = ?", (slot.id,)
                ).fetchone()
                claims.append(
                    Claim(
                        slot=slot_from_row(fresh),
                        attempt=attempt,
                        spec=TaskSpec.model_validate_json(spec_text),
                    )
                )
        return claims

    def renew_leases(self, owner: str, now: datetime, lease_until: datetime) -> int:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE slots SET lease_expires_at = ? WHERE lease_owner = ? AND status = 'running'",
                (ts(lease_until), owner),
            )
            return cur.rowcount

    def _close_attempt(
        self, db: sqlite3.Connection, slot_id: int, attempt_id: int | None, outcome: AttemptOutcome,
        now: datetime,
    ) -> None:
        where = "id = ?" if attempt_id is not None else "slot_id = ? AND status = 'running'"
        db.execute(
            "UPDATE attempts SET finished_at = ?, status = ?, error_class = ?, error = ?, "
            "explanation = ?, exit_code = ?, output_path = COALESCE(?, output_path), tokens = ?, "
            f"extra = ? WHERE {where}",
            (
                ts(now),
                "succeeded" if outcome.ok else "failed",
                outcome.error_class.value if outcome.error_class else None,
                outcome.error,
                outcome.explanation,
                outcome.exit_code,
                outcome.output_path,
                json.dumps(outcome.tokens) if outcome.tokens else None,
                json.dumps({**outcome.extra, "empty_output": outcome.empty_output}),
                attempt_id if attempt_id is not None else slot_id,
            ),
        )

    def _slot_update_params(self, outcome: AttemptOutcome, now: datetime) -> tuple[Any, ...]:
        final = outcome.slot_status.is_final
        return (
            outcome.slot_status.value,
            outcome.error_class.value if outcome.error_class else None,
            outcome.error,
            ts(now) if final else None,
            ts(outcome.next_attempt_at),
            outcome.output_path,
        )

    def finish_attempt(
        self, slot_id: int, attempt_id: int, owner: str, outcome: AttemptOutcome, now: datetime
    ) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE slots SET status = ?, error_class = ?, error = ?, finished_at = ?, "
                "next_attempt_at = ?, output_path = COALESCE(?, output_path), "
                "lease_owner = NULL, lease_expires_at = NULL "
                "WHERE id = ? AND lease_owner = ? AND status = 'running'",
                (*self._slot_update_params(outcome, now), slot_id, owner),
            )
            if cur.rowcount != 1:
                return False
            self._close_attempt(db, slot_id, attempt_id, outcome, now)
        return True

    def set_slot_status(
        self,
        slot_id: int,
        status: SlotStatus,
        reason: str | None,
        now: datetime,
        only_from: Sequence[SlotStatus] = (),
    ) -> bool:
        sql = (
            "UPDATE slots SET status = ?, reason = ?, finished_at = ?, next_attempt_at = NULL, "
            "lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END WHERE id = ?"
        )
        params: list[Any] = [status.value, reason, ts(now) if status.is_final else None,
                             int(status.is_final), slot_id]
        if only_from:
            sql += f" AND status IN ({', '.join('?' for _ in only_from)})"
            params.extend(s.value for s in only_from)
        with self._tx() as db:
            return db.execute(sql, params).rowcount == 1

    def lapsed(self, now: datetime, dead_owners: Sequence[str] = ()) -> list[Slot]:
        sql = f"SELECT {SLOT_COLUMNS} FROM slots WHERE status = 'running' AND (lease_expires_at < ?"
        params: list[Any] = [ts(now)]
        if dead_owners:
            sql += f" OR lease_owner IN ({', '.join('?' for _ in dead_owners)})"
            params.extend(dead_owners)
        sql += ") ORDER BY id"
        return [slot_from_row(r) for r in self._q(sql, params)]

    def record_lost(self, slot: Slot, outcome: AttemptOutcome, now: datetime) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE slots SET status = ?, error_class = ?, error = ?, finished_at = ?, "
                "next_attempt_at = ?, output_path = COALESCE(?, output_path), "
                "lease_owner = NULL, lease_expires_at = NULL "
                "WHERE id = ? AND status = 'running' AND lease_owner IS ? AND lease_expires_at IS ?",
                (
                    *self._slot_update_params(outcome, now),
                    slot.id,
                    slot.lease_owner,
                    ts(slot.lease_expires_at),
                ),
            )
            if cur.rowcount != 1:
                return False
            self._close_attempt(db, slot.id, None, outcome, now)
        return True

    def get_slot(self, slot_id: int) -> Slot | None:
        rows = self._q(f"SELECT {SLOT_COLUMNS} FROM slots WHERE id = ?", (slot_id,))
        return slot_from_row(rows[0]) if rows else None

    def slots(
        self, task: str | None = None, limit: int = 50, statuses: Sequence[SlotStatus] = ()
    ) -> list[Slot]:
        sql = f"SELECT {SLOT_COLUMNS} FROM slots WHERE 1 = 1"
        params: list[Any] = []
        if task is not None:
            sql += " AND task = ?"
            params.append(task)
        if statuses:
            sql += f" AND status IN ({', '.join('?' for _ in statuses)})"
            params.extend(s.value for s in statuses)
        sql += " ORDER BY scheduled_for DESC, id DESC LIMIT ?"
        params.append(limit)
        return [slot_from_row(r) for r in self._q(sql, params)]

    def active_slots(self, task: str | None = None) -> list[Slot]:
        sql = f"SELECT {SLOT_COLUMNS} FROM slots WHERE status IN ('pending', 'running', 'retrying')"
        params: list[Any] = []
        if task is not None:
            sql += " AND task = ?"
            params.append(task)
        return [slot_from_row(r) for r in self._q(sql + " ORDER BY scheduled_for, id", params)]

    def attempts(self, slot_id: int) -> list[Attempt]:
        return [
            attempt_from_row(r)
            for r in self._q(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE slot_id = ? ORDER BY number",
                (slot_id,),
            )
        ]

    def last_slots(self, task: str, n: int) -> list[Slot]:
        return [
            slot_from_row(r)
            for r in self._q(
                f"SELECT {SLOT_COLUMNS} FROM slots WHERE task = ? AND status NOT IN "
                "('pending', 'running', 'retrying') ORDER BY scheduled_for DESC, id DESC LIMIT ?",
                (task, n),
            )
        ]

    def last_success(self, task: str) -> Slot | None:
        rows = self._q(
            f"SELECT {SLOT_COLUMNS} FROM slots WHERE task = ? AND status = 'succeeded' "
            "ORDER BY scheduled_for DESC, id DESC LIMIT 1",
            (task,),
        )
        return slot_from_row(rows[0]) if rows else None

    # ---- nodes -------------------------------------------------------------------
    def register_node(self, node: NodeInfo) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO nodes (node_id, host, pid, home, started_at, heartbeat_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node_id) DO UPDATE SET "
                "heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
                (node.node_id, node.host, node.pid, node.home, ts(node.started_at),
                 ts(node.heartbeat_at)),
            )

    def heartbeat(self, node_id: str, now: datetime) -> None:
        with self._tx() as db:
            db.execute("UPDATE nodes SET heartbeat_at = ? WHERE node_id = ?", (ts(now), node_id))

    def stop_node(self, node_id: str, now: datetime) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE nodes SET stopped_at = ?, heartbeat_at = ? WHERE node_id = ?",
                (ts(now), ts(now), node_id),
            )

    def nodes(self) -> list[NodeInfo]:
        from agentcron.store._rows import dt, dt_req

        return [
            NodeInfo(
                node_id=r[0], host=r[1], pid=int(r[2]), home=r[3], started_at=dt_req(r[4]),
                heartbeat_at=dt_req(r[5]), stopped_at=dt(r[6]),
            )
            for r in self._q(
                "SELECT node_id, host, pid, home, started_at, heartbeat_at, stopped_at FROM nodes "
                "ORDER BY heartbeat_at DESC"
            )
        ]

    # ---- meta --------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._q("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                "value = excluded.value",
                (key, value),
            )
