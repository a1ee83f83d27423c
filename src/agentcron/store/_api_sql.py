"""Reads and writes the interfaces need beyond the engine's own (pause reasons,
paged run history, incident acknowledgement, the audit trail, cheap counts for
``/metrics``).

Shared by both stores like :mod:`._notify_sql`; the protocol the service relies on
is :class:`ApiStore`. Kept apart from the engine's statements so that the hot path's
SQL stays small and these can grow with the interfaces.

Cost rule: whatever ``/metrics`` or a page of the API reads on every request goes
through a partial index (live rows only) or the ``(task, scheduled_for)`` key with a
``LIMIT``; nothing here walks all history per request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic_core import from_json

from agentcron.model import Slot, SlotStatus, TaskSpec
from agentcron.model.incident import Incident
from agentcron.store._conn import Conn
from agentcron.store._listing import (
    PRESENT_KEYS,
    SHOWN_COLUMNS,
    SHOWN_KEYS,
    SHOWN_SET,
    ListingReader,
    TaskListing,
    spec_digest,
)
from agentcron.store._rows import (
    INCIDENT_COLUMNS,
    SLOT_COLUMNS,
    chunks,
    dt,
    dt_req,
    incident_from_row,
    slot_from_row,
    spec_of,
    ts,
)
from agentcron.store._spec_sql import SpecSQL, field_value
from agentcron.store.errors import NotFound, StoreError

log = logging.getLogger(__name__)

_ACTIVE = "('pending', 'running', 'retrying')"
_TICK_PREFIX = "tick:"


@dataclass(frozen=True)
class AuditEntry:
    """One change made through an interface: who, when, through what, before/after.

    ``before`` and ``after`` are JSON-able values (a task's redacted spec, a paused
    flag and its reason, an incident's acknowledgement); None where there was nothing
    (a task created, a task removed)."""

    at: datetime
    actor: str
    via: str  # cli | api | dashboard | mcp
    action: str  # task.create | task.update | task.delete | task.pause | ...
    task: str | None = None
    before: Any = None
    after: Any = None
    id: int | None = None


@dataclass(frozen=True)
class SlotQuery:
    """A page of run history, newest first (``scheduled_for`` then id, descending).

    ``cursor`` is the ``(scheduled_for, id)`` of the last row of the previous page;
    the page holds rows strictly after it in that order."""

    task: str | None = None
    statuses: Sequence[SlotStatus] = ()
    since: datetime | None = None  # scheduled_for >= since
    before: datetime | None = None  # scheduled_for < before
    cursor: tuple[datetime, int] | None = None
    limit: int = 50


@dataclass(frozen=True)
class TaskLatest:
    """What a task list shows of each task's history: its newest final slot, the
    delivery state of its newest success, and why it was paused."""

    last: Slot | None = None
    last_success: Slot | None = None
    pause_reason: str | None = None


_NOTHING_YET = TaskLatest()  # shared by every task with no final run and no pause reason


@dataclass(frozen=True)
class LiveCounts:
    """The gauges of ``/metrics``, each from a partial index (see the module doc)."""

    running: int = 0
    waiting: dict[str, int] = field(default_factory=dict)  # pending / retrying
    open_incidents: dict[str, int] = field(default_factory=dict)  # by kind
    outbox_backlog: int = 0
    outbox_oldest: datetime | None = None
    deliveries: dict[str, int] = field(default_factory=dict)  # pending / retrying


class ApiStore(Protocol):
    """What the service API reads and writes for the HTTP API, dashboard and metrics."""

    def get_incident(self, incident_id: int) -> Incident | None:
        """One incident by id, open or closed."""
        ...

    def incidents_page(
        self,
        task: str | None = None,
        open_only: bool = False,
        kind: str | None = None,
        limit: int = 50,
    ) -> list[Incident]:
        """Open incidents first (newest first), then closed ones (newest first)."""
        ...

    def acknowledge_incident(self, incident_id: int, by: str, now: datetime) -> Incident | None:
        """Mark an incident seen by ``by`` at ``now``; an incident already acknowledged
        keeps its first acknowledgement. None when there is no such incident."""
        ...

    def set_pause_reason(self, name: str, reason: str | None) -> None:
        """Why the task is paused (None clears it; resuming clears it)."""
        ...

    def task_listing(self) -> list[TaskListing]:
        """Every task by name as a list shows it (:class:`TaskListing`): a few keys of
        each stored spec, read in the database; a whole spec is loaded only when asked."""
        ...

    def smallest_overdue_after(self) -> timedelta | None:
        """The smallest ``overdue_after`` any unpaused task sets (None when none does)."""
        ...

    def task_notify_urls(self) -> list[str]:
        """Every URL the tasks' ``notify`` keys name, once each, first use first."""
        ...

    def task_names(self, source: str | None = None) -> list[str]:
        """Every task's name (of ``source``: file, api, code), sorted; no spec is read."""
        ...

    def task_latest(self, names: Sequence[str] | None = None) -> dict[str, TaskLatest]:
        """For each task (all when ``names`` is None): :class:`TaskLatest`. Two probes
        of the ``(task, scheduled_for)`` key per task, newest first, stopping at the
        first match: a list of 10,000 tasks reads 20,000 index entries, not history."""
        ...

    def slots_page(self, query: SlotQuery) -> list[Slot]:
        """One page of run history; see :class:`SlotQuery`."""
        ...

    def add_audit(self, entry: AuditEntry) -> int:
        """Record one change; returns its id."""
        ...

    def audit_entries(
        self, task: str | None = None, limit: int = 50, before_id: int | None = None
    ) -> list[AuditEntry]:
        """Newest first; ``before_id`` pages back."""
        ...

    def record_tick(self, node_id: str, at: datetime, tidy: bool = True) -> None:
        """Remember when ``node_id``'s scheduler last completed a tick, so that any
        process reading the database can tell a live daemon from a stuck one; with
        ``tidy``, entries of nodes no longer recorded go in the same write."""
        ...

    def last_ticks(self) -> dict[str, datetime]:
        """The last recorded tick of each node."""
        ...

    def live_counts(self) -> LiveCounts:
        """Running and waiting slots, open incidents by kind, the outbox backlog and
        its oldest message, deliveries pending or retrying (partial indexes only)."""
        ...

    def failed_deliveries(self) -> int:
        """Deliveries given up on (status failed) still in history: a count over the
        deliveries table, which no partial index covers; callers cache it."""
        ...

    def last_success_times(self) -> dict[str, datetime]:
        """Per task, when its newest successful run finished (one index probe per
        task); for seeding ``/metrics`` once at start, not per scrape."""
        ...


class ApiSQL(SpecSQL):
    """The SQL behind :class:`ApiStore`, for :class:`~agentcron.store.sql.SQLStore`."""

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    # ---- incidents ---------------------------------------------------------------
    def get_incident(self, incident_id: int) -> Incident | None:
        rows = self._q(f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (incident_id,))
        return incident_from_row(rows[0]) if rows else None

    def incidents_page(
        self,
        task: str | None = None,
        open_only: bool = False,
        kind: str | None = None,
        limit: int = 50,
    ) -> list[Incident]:
        where = ""
        params: list[Any] = []
        if task is not None:
            where += " AND task = ?"
            params.append(task)
        if kind is not None:
            where += " AND kind = ?"
            params.append(kind)
        # Two reads rather than one sort on "is it open": the open ones come from the
        # partial unique index and are few; closed ones only fill what room is left.
        open_rows = self._q(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE closed_at IS NULL{where} "
            "ORDER BY opened_at DESC, id DESC LIMIT ?",
            (*params, limit),
        )
        closed_rows: list[tuple[Any, ...]] = []
        if not open_only and len(open_rows) < limit:
            closed_rows = self._q(
                f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE closed_at IS NOT NULL{where} "
                "ORDER BY opened_at DESC, id DESC LIMIT ?",
                (*params, limit - len(open_rows)),
            )
        return [incident_from_row(r) for r in open_rows + closed_rows]

    def acknowledge_incident(self, incident_id: int, by: str, now: datetime) -> Incident | None:
        with self._tx() as db:
            db.execute(
                "UPDATE incidents SET acknowledged_at = ?, acknowledged_by = ? "
                "WHERE id = ? AND acknowledged_at IS NULL",
                (ts(now), by, incident_id),
            )
            row = db.execute(
                f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)
            ).fetchone()
        return incident_from_row(row) if row is not None else None

    # ---- tasks -------------------------------------------------------------------
    def set_pause_reason(self, name: str, reason: str | None) -> None:
        with self._tx() as db:
            db.execute("UPDATE tasks SET pause_reason = ? WHERE name = ?", (reason, name))

    def task_listing(self) -> list[TaskListing]:
        read = self._key_read(SHOWN_KEYS, PRESENT_KEYS)
        rows = self._key_rows(
            read,
            f"SELECT name, source, paused, next_fire_at, {SHOWN_COLUMNS}, "
            "CASE WHEN shown_of IS NULL THEN {keys} END FROM tasks ORDER BY name",
        )
        return ListingReader(read, self._spec_named).rows(rows)

    def fill_shown(self, db: Conn) -> int:
        """Write the shown columns of every task that lacks them (``db``: the migration's
        transaction that added them); a spec that cannot be read is left as it is, for
        the list to name. Returns how many were filled."""
        reader = ListingReader(self._key_read(SHOWN_KEYS, PRESENT_KEYS), self._spec_named)
        filled = []
        unreadable: list[str] = []
        rows = db.execute("SELECT name, spec FROM tasks WHERE shown_of IS NULL").fetchall()
        for name, text in rows:
            try:
                shown = reader.from_keys(name, reader.read.from_spec(name, text))
                data = from_json(text)
                overdue = field_value(name, "overdue_after", data.get("overdue_after"))
            except (StoreError, ValueError) as exc:
                # damage in the database, not a reason to refuse the upgrade: said here,
                # and named again by every list, show and tick that reads this task
                unreadable.append(name)
                log.warning("upgrading the database: %s; the task is left as it is", exc)
                continue
            filled.append(
                (
                    spec_digest(text),
                    *shown,
                    int(data.get("budget") is not None),
                    None if overdue is None else overdue.total_seconds(),
                    name,
                )
            )
        for part in chunks(filled):
            db.executemany(f"UPDATE tasks SET {SHOWN_SET} WHERE name = ?", part)
        if filled:  # a few seconds for 100,000 tasks: say why this start is slower
            log.info(
                "upgraded the database: copied the listed keys of %d task(s) beside their "
                "specs (once)",
                len(filled),
            )
        if unreadable:
            log.error(
                "upgrading the database: %d task(s) whose stored spec cannot be read: %s; "
                "until they are fixed, the list names them as errors",
                len(unreadable),
                ", ".join(unreadable[:10]) + (" …" if len(unreadable) > 10 else ""),
            )
        return len(filled)

    def _spec_named(self, name: str) -> TaskSpec:
        rows = self._q("SELECT spec FROM tasks WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"task {name!r} was removed while it was being read")
        return spec_of(name, rows[0][0])

    def task_latest(self, names: Sequence[str] | None = None) -> dict[str, TaskLatest]:
        probe = (
            "SELECT t.name, t.pause_reason, "
            "(SELECT s.id FROM slots s WHERE s.task = t.name AND s.status NOT IN "
            f"{_ACTIVE} ORDER BY s.scheduled_for DESC, s.id DESC LIMIT 1), "
            "(SELECT s.id FROM slots s WHERE s.task = t.name AND s.status = 'succeeded' "
            "ORDER BY s.scheduled_for DESC, s.id DESC LIMIT 1) FROM tasks t"
        )
        if names is None:
            heads = self._q(probe)
        else:
            heads = []
            for chunk in chunks(list(names)):
                marks = ", ".join("?" for _ in chunk)
                heads += self._q(f"{probe} WHERE t.name IN ({marks})", chunk)
        ids = sorted({int(i) for row in heads for i in row[2:] if i is not None})
        slots: dict[int, Slot] = {}
        for id_chunk in chunks(ids):
            marks = ", ".join("?" for _ in id_chunk)
            for row in self._q(f"SELECT {SLOT_COLUMNS} FROM slots WHERE id IN ({marks})", id_chunk):
                slot = slot_from_row(row)
                slots[slot.id] = slot
        return {
            str(name): _NOTHING_YET
            if reason is None and last is None and ok is None
            else TaskLatest(
                last=slots.get(int(last)) if last is not None else None,
                last_success=slots.get(int(ok)) if ok is not None else None,
                pause_reason=reason,
            )
            for name, reason, last, ok in heads
        }

    # ---- run history -------------------------------------------------------------
    def slots_page(self, query: SlotQuery) -> list[Slot]:
        sql = f"SELECT {SLOT_COLUMNS} FROM slots WHERE 1 = 1"
        params: list[Any] = []
        if query.task is not None:
            sql += " AND task = ?"
            params.append(query.task)
        if query.statuses:
            sql += f" AND status IN ({', '.join('?' for _ in query.statuses)})"
            params.extend(s.value for s in query.statuses)
        if query.since is not None:
            sql += " AND scheduled_for >= ?"
            params.append(ts(query.since))
        if query.before is not None:
            sql += " AND scheduled_for < ?"
            params.append(ts(query.before))
        if query.cursor is not None:
            at, last_id = query.cursor
            sql += " AND (scheduled_for < ? OR (scheduled_for = ? AND id < ?))"
            params += [ts(at), ts(at), last_id]
        sql += " ORDER BY scheduled_for DESC, id DESC LIMIT ?"
        params.append(query.limit)
        return [slot_from_row(r) for r in self._q(sql, params)]

    # ---- audit -------------------------------------------------------------------
    def add_audit(self, entry: AuditEntry) -> int:
        with self._tx() as db:
            row = db.execute(
                "INSERT INTO audit (at, actor, via, action, task, before, after) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    ts(entry.at),
                    entry.actor,
                    entry.via,
                    entry.action,
                    entry.task,
                    _json_or_none(entry.before),
                    _json_or_none(entry.after),
                ),
            ).fetchone()
        return int(row[0])

    def audit_entries(
        self, task: str | None = None, limit: int = 50, before_id: int | None = None
    ) -> list[AuditEntry]:
        sql = "SELECT id, at, actor, via, action, task, before, after FROM audit WHERE 1 = 1"
        params: list[Any] = []
        if task is not None:
            sql += " AND task = ?"
            params.append(task)
        if before_id is not None:
            sql += " AND id < ?"
            params.append(before_id)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [
            AuditEntry(
                id=int(r[0]),
                at=dt_req(r[1]),
                actor=r[2],
                via=r[3],
                action=r[4],
                task=r[5],
                before=json.loads(r[6]) if r[6] is not None else None,
                after=json.loads(r[7]) if r[7] is not None else None,
            )
            for r in self._q(sql, params)
        ]

    # ---- daemon liveness -----------------------------------------------------------
    def record_tick(self, node_id: str, at: datetime, tidy: bool = True) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                "value = excluded.value",
                (_TICK_PREFIX + node_id, repr(ts(at))),
            )
            if tidy:
                db.execute(
                    "DELETE FROM meta WHERE key LIKE 'tick:%' AND key NOT IN "
                    "(SELECT 'tick:' || node_id FROM nodes)"
                )

    def last_ticks(self) -> dict[str, datetime]:
        rows = self._q("SELECT key, value FROM meta WHERE key LIKE 'tick:%'")
        return {str(k)[len(_TICK_PREFIX) :]: dt_req(float(v)) for k, v in rows}

    # ---- gauges --------------------------------------------------------------------
    def live_counts(self) -> LiveCounts:
        running = self._q("SELECT COUNT(*) FROM slots WHERE status = 'running'")
        waiting = self._q(
            "SELECT status, COUNT(*) FROM slots WHERE status IN ('pending', 'retrying') "
            "GROUP BY status"
        )
        incidents = self._q(
            "SELECT kind, COUNT(*) FROM incidents WHERE closed_at IS NULL GROUP BY kind"
        )
        outbox = self._q(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sent_at IS NULL AND permanent = 0"
        )
        deliveries = self._q(
            "SELECT status, COUNT(*) FROM deliveries WHERE status IN ('pending', 'retrying') "
            "GROUP BY status"
        )
        return LiveCounts(
            running=int(running[0][0]),
            waiting={str(s): int(n) for s, n in waiting},
            open_incidents={str(k): int(n) for k, n in incidents},
            outbox_backlog=int(outbox[0][0]),
            outbox_oldest=dt(outbox[0][1]),
            deliveries={str(s): int(n) for s, n in deliveries},
        )

    def failed_deliveries(self) -> int:
        return int(self._q("SELECT COUNT(*) FROM deliveries WHERE status = 'failed'")[0][0])

    def last_success_times(self) -> dict[str, datetime]:
        rows = self._q(
            "SELECT t.name, (SELECT s.finished_at FROM slots s WHERE s.task = t.name "
            "AND s.status = 'succeeded' ORDER BY s.scheduled_for DESC, s.id DESC LIMIT 1) "
            "FROM tasks t"
        )
        return {str(name): dt_req(at) for name, at in rows if at is not None}


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)
