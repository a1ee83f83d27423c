"""The SQL both stores share.

Statements are written once, with ``?`` placeholders and standard SQL that SQLite
(3.39+) and PostgreSQL both accept (``ON CONFLICT``, ``RETURNING``,
``IS NOT DISTINCT FROM``, partial indexes); each implementation supplies the
connection, the transaction discipline and, where the engines differ, the claim.
The notification side (incidents, outbox, deliveries) is :mod:`._notify_sql`; the
records a burst builds from what it wrote instead of reading them back, :mod:`._built`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from agentcron.model import (
    Attempt,
    AttemptOutcome,
    Claim,
    DeliveryStatus,
    DueHead,
    Finish,
    Fires,
    IncidentKind,
    NewSlot,
    NextTimes,
    NodeInfo,
    OverlapPolicy,
    Slot,
    SlotStatus,
    StartRoom,
    TaskRecord,
    TaskSource,
    TaskSpec,
)
from agentcron.model.failure import PAUSED_WHILE_RUNNING, REMOVED_WHILE_RUNNING
from agentcron.model.provider import CALL_WAIT_PREFIX, WAITING_PREFIX
from agentcron.store._api_sql import ApiSQL
from agentcron.store._budget_sql import BudgetSQL, add_spend
from agentcron.store._built import (
    Entry,
    as_claimed,
    as_finished,
    attempt_end,
    fresh_claim,
    fresh_slot,
)
from agentcron.store._conn import Conn
from agentcron.store._listing import SHOWN_COLUMNS, SHOWN_SET, shown_row
from agentcron.store._notify_sql import _HEADS as OUTBOX_HEADS
from agentcron.store._notify_sql import NotifySQL
from agentcron.store._provider_sql import ProviderSQL
from agentcron.store._prune_sql import PruneSQL
from agentcron.store._rows import (
    ATTEMPT_COLUMNS,
    SLOT_COLUMNS,
    TASK_COLUMNS,
    attempt_from_row,
    chunks,
    dt,
    dt_req,
    parse_spec,
    schedule_key,
    slot_from_row,
    spec_json,
    spec_of,
    task_from_row,
    ts,
)
from agentcron.store.errors import StoreError, UnreadableRow

log = logging.getLogger("agentcron.store")

CLAIM_PAGES = 4  # pages of candidates one claim reads at most


# A finish is written only by the attempt the slot is running now: one that lost its
# slot and saw it taken again (by another node, or by this one after a lapsed lease)
# was closed as lost when that happened, so its late result cannot overwrite the
# new attempt's.
_CURRENT_ATTEMPT = (
    "EXISTS (SELECT 1 FROM attempts a WHERE a.id = {a} AND a.slot_id = slots.id "
    "AND a.status = 'running')"
)


# a task row's values: its nine columns, then the shown ones
_TASK_MARKS = ", ".join("?" for _ in range(9 + len(SHOWN_COLUMNS.split(","))))


class SQLStore(NotifySQL, PruneSQL, ApiSQL, ProviderSQL, BudgetSQL):
    """Everything but connecting; subclasses define ``_tx`` and ``_q``."""

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # whether a daemon on this store holds its home's lock (SQLite: one per home)
    home_locked = True

    def describe(self) -> str:
        raise NotImplementedError

    # ---- tasks -------------------------------------------------------------------
    def _upsert(
        self,
        db: Conn,
        spec: TaskSpec,
        source: TaskSource,
        now: datetime,
        next_fire_at: datetime | None,
    ) -> str:
        """Returns 'added', 'changed' or 'same'."""
        key = schedule_key(spec)
        body = spec_json(spec)
        for _ in range(3):
            row = db.execute(
                "SELECT spec, schedule_key, source, paused FROM tasks WHERE name = ?",
                (spec.name,),
            ).fetchone()
            if row is not None:
                break
            # ON CONFLICT: another node may add it between our read and this insert
            # (two daemons starting together on one PostgreSQL database with one
            # config); its row is then the one to compare with, read again.
            added = db.execute(
                "INSERT INTO tasks (name, source, spec, schedule_key, overlap, paused, "
                f"next_fire_at, created_at, updated_at, {SHOWN_COLUMNS}) VALUES ({_TASK_MARKS}) "
                "ON CONFLICT (name) DO NOTHING RETURNING name",
                (
                    spec.name,
                    source.value,
                    body,
                    key,
                    spec.overlap.value,
                    int(spec.paused),
                    None if spec.paused else ts(next_fire_at),
                    ts(now),
                    ts(now),
                    *shown_row(spec, body),
                ),
            ).fetchone()
            if added is not None:
                return "added"
        else:
            raise StoreError(f"task {spec.name!r} keeps appearing and vanishing; try again")
        if row[0] == body and row[2] == source.value:
            return "same"
        # `paused` in the spec is what the file (or code) says; the column is the state,
        # which `agentcron pause`/`resume` change. An edit elsewhere in the spec keeps the
        # operator's choice; only a changed `paused:` in the spec overrides it.
        was_paused = bool(row[3])
        stored = _stored_paused(spec.name, row[0])
        paused = was_paused if stored is None or stored == spec.paused else spec.paused
        if paused:
            db.execute("UPDATE tasks SET next_fire_at = NULL WHERE name = ?", (spec.name,))
        elif row[1] != key or was_paused:
            db.execute(
                "UPDATE tasks SET next_fire_at = ? WHERE name = ?", (ts(next_fire_at), spec.name)
            )
        db.execute(
            "UPDATE tasks SET spec = ?, schedule_key = ?, overlap = ?, source = ?, paused = ?, "
            f"updated_at = ?, {SHOWN_SET} WHERE name = ?",
            (
                body,
                key,
                spec.overlap.value,
                source.value,
                int(paused),
                ts(now),
                *shown_row(spec, body),
                spec.name,
            ),
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
        """One statement per task, no read first: registering 100,000 tasks from code
        must take seconds. A task whose schedule is unchanged keeps its grid position."""
        rows = []
        for spec, next_fire_at in items:
            body = spec_json(spec)
            rows.append(
                (
                    spec.name,
                    source.value,
                    body,
                    schedule_key(spec),
                    spec.overlap.value,
                    int(spec.paused),
                    ts(next_fire_at),
                    ts(now),
                    ts(now),
                    *shown_row(spec, body),
                )
            )
        shown_set = ", ".join(f"{c} = excluded.{c}" for c in SHOWN_COLUMNS.split(", "))
        with self._tx() as db:
            db.executemany(
                "INSERT INTO tasks (name, source, spec, schedule_key, overlap, paused, "
                f"next_fire_at, created_at, updated_at, {SHOWN_COLUMNS}) VALUES ({_TASK_MARKS}) "
                f"ON CONFLICT (name) DO UPDATE SET {shown_set}, "
                "next_fire_at = CASE WHEN tasks.schedule_key = excluded.schedule_key "
                "THEN tasks.next_fire_at ELSE excluded.next_fire_at END, "
                "updated_at = CASE WHEN tasks.spec = excluded.spec "
                "AND tasks.source = excluded.source "
                "THEN tasks.updated_at ELSE excluded.updated_at END, "
                "spec = excluded.spec, schedule_key = excluded.schedule_key, "
                "overlap = excluded.overlap, source = excluded.source",
                rows,
            )

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
        rows = self._q(f"SELECT {TASK_COLUMNS} FROM tasks ORDER BY name")
        return [task_from_row(r) for r in rows]

    def count_tasks(self) -> int:
        return int(self._q("SELECT COUNT(*) FROM tasks")[0][0])

    def _remove(self, db: Conn, name: str, now: datetime) -> None:
        db.execute("DELETE FROM tasks WHERE name = ?", (name,))
        db.execute(
            "UPDATE slots SET status = ?, reason = ?, finished_at = ?, next_attempt_at = NULL "
            "WHERE task = ? AND status IN ('pending', 'retrying')",
            (SlotStatus.CANCELLED.value, "task removed", ts(now), name),
        )
        # Its incidents close (left open, a task added again under the name inherited
        # them and escalated on its first failure). Those the owner was told of are
        # marked, and the daemon's notifier tells their end: "removed while failing".
        db.execute(
            "UPDATE incidents SET closed_at = ?, updated_at = ?, closed_by = CASE "
            "WHEN told IS NULL OR told <> '' THEN 'removed' END "
            "WHERE task = ? AND closed_at IS NULL AND kind <> ?",
            (ts(now), ts(now), name, IncidentKind.PROVIDER.value),
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
            # The state only: the stored spec stays as the file or the API gave it, so a
            # later sync of an unchanged file does not undo the operator's pause.
            cur = db.execute(
                "UPDATE tasks SET paused = ?, next_fire_at = ?, updated_at = ? WHERE name = ?",
                (int(paused), ts(next_fire_at), ts(now), name),
            )
            if cur.rowcount != 1:
                return False
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

    def due_heads(self, now: datetime, limit: int) -> list[DueHead]:
        rows = self._q(
            "SELECT name, next_fire_at, updated_at FROM tasks WHERE paused = 0 "
            "AND next_fire_at <= ? ORDER BY next_fire_at LIMIT ?",
            (ts(now), limit),
        )
        return [(name, dt(nfa), dt_req(updated)) for name, nfa, updated in rows]

    def unplanned_tasks(self) -> tuple[list[TaskRecord], list[str]]:
        rows = self._q(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE paused = 0 AND next_fire_at IS NULL "
            "ORDER BY name"
        )
        records, unreadable = [], []
        for row in rows:
            try:
                records.append(task_from_row(row))
            except UnreadableRow:  # one bad row does not keep the others unplanned
                unreadable.append(row[0])
        return records, unreadable

    def plan_again(self, name: str, next_fire_at: datetime) -> bool:
        with self._tx() as db:
            row = db.execute(
                "UPDATE tasks SET next_fire_at = ? WHERE name = ? AND paused = 0 "
                "AND next_fire_at IS NULL RETURNING name",
                (ts(next_fire_at), name),
            ).fetchone()
        return row is not None

    def next_times(self, after: datetime | None = None) -> NextTimes:
        # A waiting slot whose time has come was offered to the claim that just ran:
        # if it is still waiting, it waits for room, and what frees room wakes the
        # loop; counting it here would make the loop poll it without pause.
        waiting = " AND next_attempt_at > ?" if after is not None else ""
        row = self._q(
            "SELECT (SELECT MIN(next_fire_at) FROM tasks WHERE paused = 0), "
            "(SELECT MIN(next_attempt_at) FROM slots "
            f"WHERE status IN ('pending', 'retrying'){waiting})",
            (ts(after),) if after is not None else (),
        )
        fire, retry = row[0] if row else (None, None)
        return NextTimes(
            dt(fire) if fire is not None else None, dt(retry) if retry is not None else None
        )

    # ---- slots -------------------------------------------------------------------
    def _insert_slot(self, db: Conn, task: str, slot: NewSlot, now: datetime) -> Slot | None:
        final = slot.status.is_final
        # a pending slot is due for its first attempt at its own time; claims then read
        # one index in order instead of sorting every waiting slot
        first_attempt = min(slot.scheduled_for, now) if slot.status is SlotStatus.PENDING else None
        row = db.execute(
            "INSERT INTO slots (task, scheduled_for, status, reason, trigger, created_at, "
            "finished_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (task, scheduled_for) DO NOTHING RETURNING id",
            (
                task,
                ts(slot.scheduled_for),
                slot.status.value,
                slot.reason,
                slot.trigger,
                ts(now),
                ts(now) if final else None,
                ts(first_attempt),
            ),
        ).fetchone()
        if row is None:
            return None
        # Built here rather than read back: a burst inserts thousands of these.
        return Slot(
            id=int(row[0]),
            task=task,
            scheduled_for=slot.scheduled_for,
            status=slot.status,
            reason=slot.reason,
            trigger=slot.trigger,
            finished_at=now if final else None,
            next_attempt_at=first_attempt,
            created_at=now,
        )

    def materialize(
        self,
        task: str,
        expected_next_fire_at: datetime | None,
        new_next_fire_at: datetime | None,
        slots: Sequence[NewSlot],
        now: datetime,
    ) -> list[Slot] | None:
        with self._tx() as db:
            entry = (task, expected_next_fire_at, new_next_fire_at, slots, None)
            results, _ = self._record_fires(db, [entry], now, None)
        return results[0]

    def materialize_and_start(
        self, items: Sequence[Fires], now: datetime, start: StartRoom
    ) -> tuple[list[list[Slot] | None], list[Claim]]:
        if not items:
            return [], []
        entries = [
            (i.spec.name, i.expected_next_fire_at, i.new_next_fire_at, i.slots, i.spec)
            for i in items
        ]
        with self._tx() as db:
            return self._record_fires(db, entries, now, start)

    def _record_fires(
        self, db: Conn, entries: Sequence[Entry], now: datetime, start: StartRoom | None
    ) -> tuple[list[list[Slot] | None], list[Claim]]:
        """Advance each task (compare-and-set), decide which fresh slots start, then
        write the slots and first attempts a few hundred rows per statement: a burst
        of thousands would otherwise pay a statement's overhead three times a slot."""
        room = start.room if start is not None else 0
        rows: list[tuple[int, NewSlot, bool]] = []  # (entry, slot, started as recorded)
        won = self._advance_many(db, [(e[0], e[1], e[2]) for e in entries])
        # Read after the compare-and-set: its UPDATE holds each won task's row, so no
        # other node can start one of them now (their claims lock the row first), and
        # what runs is exactly what this read sees.
        busy = self._running_tasks(db) if room > 0 else set()
        for index, (task, _, _, slots, spec) in enumerate(entries):
            if not won[index]:
                continue
            allow = spec is not None and spec.overlap is OverlapPolicy.ALLOW
            for new in slots:
                waiting = new.status is SlotStatus.PENDING
                run = (
                    spec is not None
                    and room > 0
                    and waiting
                    and new.scheduled_for <= now
                    and (allow or task not in busy)
                )
                if run:
                    room -= 1
                if (run or waiting) and not allow:
                    busy.add(task)  # running, or waiting: a later slot waits behind it
                rows.append((index, new, run))
        ids = self._insert_slots(
            db, [(entries[i][0], new, run) for i, new, run in rows], now, start
        )
        first = [(sid, 1) for (_, _, run), sid in zip(rows, ids, strict=True) if run and sid]
        attempts = self._open_attempts(db, first, now, start.owner) if start else {}
        results: list[list[Slot] | None] = [[] if ok else None for ok in won]
        claims: list[Claim] = []
        for (index, new, run), slot_id in zip(rows, ids, strict=True):
            if slot_id is None:
                continue  # recorded already (a slot is recorded once, whoever is first)
            task, spec = entries[index][0], entries[index][4]
            bucket = results[index]
            assert bucket is not None
            if run and start is not None and spec is not None:
                claim = fresh_claim(spec, new, slot_id, attempts[slot_id], now, start)
                claims.append(claim)
                bucket.append(claim.slot)
            else:
                bucket.append(fresh_slot(task, new, slot_id, now))
        return results, claims

    @staticmethod
    def _insert_slots(
        db: Conn, rows: Sequence[tuple[str, NewSlot, bool]], now: datetime, start: StartRoom | None
    ) -> list[int | None]:
        """Insert slots (True: already running under ``start``'s lease, attempt 1),
        several hundred per statement; their ids in order, None where one existed."""
        params: list[tuple[Any, ...]] = []
        for task, new, run in rows:
            if run:
                assert start is not None
                params.append(
                    (
                        task,
                        ts(new.scheduled_for),
                        SlotStatus.RUNNING.value,
                        new.reason,
                        new.trigger,
                        ts(now),
                        None,
                        None,
                        1,
                        start.owner,
                        ts(start.lease_until),
                        ts(now),
                    )
                )
            else:
                first = min(new.scheduled_for, now) if new.status is SlotStatus.PENDING else None
                params.append(
                    (
                        task,
                        ts(new.scheduled_for),
                        new.status.value,
                        new.reason,
                        new.trigger,
                        ts(now),
                        ts(now) if new.status.is_final else None,
                        ts(first),
                        0,
                        None,
                        None,
                        None,
                    )
                )
        found: dict[tuple[str, float], int] = {}
        for chunk in chunks(params, 400):
            values = ", ".join("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" for _ in chunk)
            inserted = db.execute(
                "INSERT INTO slots (task, scheduled_for, status, reason, trigger, created_at, "
                "finished_at, next_attempt_at, attempts, lease_owner, lease_expires_at, "
                f"started_at) VALUES {values} ON CONFLICT (task, scheduled_for) DO NOTHING "
                "RETURNING id, task, scheduled_for",
                [value for row in chunk for value in row],
            ).fetchall()
            for id_, task, when in inserted:
                found[(task, float(when))] = int(id_)
        return [found.get((row[0], float(row[1]))) for row in params]

    @staticmethod
    def _open_attempts(
        db: Conn, numbered: Sequence[tuple[int, int]], now: datetime, owner: str
    ) -> dict[int, int]:
        """Open running attempt rows, (slot, attempt number) each: slot -> attempt id."""
        out: dict[int, int] = {}
        for chunk in chunks(list(numbered), 500):
            values = ", ".join("(?, ?, ?, 'running', ?)" for _ in chunk)
            inserted = db.execute(
                "INSERT INTO attempts (slot_id, number, started_at, status, node) "
                f"VALUES {values} RETURNING id, slot_id",
                [value for sid, number in chunk for value in (sid, number, ts(now), owner)],
            ).fetchall()
            for attempt_id, slot_id in inserted:
                out[int(slot_id)] = int(attempt_id)
        return out

    @staticmethod
    def _running_tasks(db: Conn) -> set[str]:
        """Read inside the claiming transaction: SQLite's write lock makes it hold."""
        # No DISTINCT: with it SQLite walks the whole (task, scheduled_for) index, a
        # cost that grows with every slot ever recorded; without, it reads the few
        # rows of the partial slots_running index.
        return {
            r[0] for r in db.execute("SELECT task FROM slots WHERE status = 'running'").fetchall()
        }

    @staticmethod
    def _advance_many(
        db: Conn, moves: Sequence[tuple[str, datetime | None, datetime | None]]
    ) -> list[bool]:
        """Move each task's next fire on, if no one else did: the compare-and-set that
        keeps two nodes from recording the same fire. A few hundred per statement (on
        PostgreSQL a statement per task is a network round trip per task); one flag
        per move, True where this call won."""
        won: set[str] = set()
        for chunk in chunks(list(moves), 300):
            values = ", ".join(
                "(?, CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION))" for _ in chunk
            )
            rows = db.execute(
                f"WITH v (name, new_next, expected) AS (VALUES {values}) "
                "UPDATE tasks SET next_fire_at = v.new_next FROM v "
                "WHERE tasks.name = v.name AND tasks.next_fire_at IS NOT DISTINCT FROM v.expected "
                "RETURNING tasks.name",
                [
                    value
                    for task, expected, new_next in chunk
                    for value in (task, ts(new_next), ts(expected))
                ],
            ).fetchall()
            won.update(r[0] for r in rows)
        return [task in won for task, _, _ in moves]

    def add_slot(self, task: str, slot: NewSlot, now: datetime) -> Slot | None:
        with self._tx() as db:
            return self._insert_slot(db, task, slot, now)

    # How a dialect makes claims safe against other nodes: a suffix that locks the
    # candidate rows, and a check run for a task that allows one run at a time.
    _candidate_lock = ""
    _claim_filled = False  # the last claim took as many slots as it had room for
    claim_saw_waiting = True  # see RunStore (until a claim has looked: may be)

    def _hold_tasks_of(self, db: Conn, slot_ids: Sequence[int]) -> None:
        """Keep the tasks of these slots from being paused or removed until this
        transaction ends, so that :meth:`_end_retries_not_taken` sees what holds at its
        commit. With one writer at a time (SQLite) nothing else can change them."""

    def _may_start(self, db: Conn, tasks: Sequence[str]) -> set[str]:
        """Which of ``tasks`` (each runs one at a time, none seen running) may start one
        now. With one writer at a time (SQLite) the running-set read at the start holds."""
        return set(tasks)

    def _runnable_waiting(self, now: datetime) -> bool:
        """Whether any slot waits whose time has come: one row of the slots_runnable
        index, no transaction. Every tick claims, and most find nothing (an idle
        daemon, a steady load between fires): they no longer take the write lock."""
        return bool(
            self._q(
                "SELECT 1 FROM slots WHERE status IN ('pending', 'retrying') "
                "AND next_attempt_at <= ? LIMIT 1",
                (ts(now),),
            )
        )

    def claim(self, owner: str, now: datetime, lease_until: datetime, limit: int) -> list[Claim]:
        if limit <= 0:
            return []
        # The look without the write lock is for a tick that finds nothing (an idle
        # daemon); after a claim that filled its room, slots most likely still wait.
        backlog, self._claim_filled = self._claim_filled, False
        if not backlog and not self._runnable_waiting(now):
            self.claim_saw_waiting = False
            return []
        self.claim_saw_waiting = True
        chosen: list[Slot] = []
        with self._tx() as db:
            # Tasks that run one at a time and already run are left out by the page's
            # statement; ``busy`` keeps a task's second waiting slot out of one claim.
            busy: set[str] = set()
            refused: set[str] = set()  # another node holds the task (PostgreSQL)
            for _ in range(CLAIM_PAGES):
                page, full = self._claim_page(db, now, limit - len(chosen), busy, refused)
                # Marked running before the next page is read: its running-task filter
                # then skips the rest of a one-at-a-time task's queue, so a long queue
                # of one task cannot hide every other task's slots.
                for chunk in chunks([slot.id for slot in page], 500):
                    # (a wait for a provider's cooldown is over once the slot runs: its
                    # reason would stay on a run that then succeeded)
                    db.execute(
                        "UPDATE slots SET status = 'running', attempts = attempts + 1, "
                        "lease_owner = ?, lease_expires_at = ?, "
                        "started_at = COALESCE(started_at, ?), next_attempt_at = NULL, "
                        "reason = CASE WHEN reason LIKE ? OR reason LIKE ? THEN NULL "
                        "ELSE reason END "
                        f"WHERE id IN ({', '.join('?' for _ in chunk)})",
                        (
                            owner,
                            ts(lease_until),
                            ts(now),
                            WAITING_PREFIX + "%",
                            CALL_WAIT_PREFIX + "%",
                            *chunk,
                        ),
                    )
                chosen += page
                if len(chosen) >= limit or not full:
                    break
            if not chosen:
                return []
            self._claim_filled = len(chosen) >= limit
            attempts = self._open_attempts(
                db, [(slot.id, slot.attempts + 1) for slot in chosen], now, owner
            )
            specs = self._specs(db, {slot.task for slot in chosen})
        return [
            Claim(
                slot=as_claimed(slot, owner, lease_until, now),
                attempt=Attempt(
                    id=attempts[slot.id],
                    slot_id=slot.id,
                    number=slot.attempts + 1,
                    started_at=now,
                    node=owner,
                ),
                spec=specs[slot.task],
            )
            for slot in chosen
        ]

    def _claim_page(
        self, db: Conn, now: datetime, limit: int, busy: set[str], refused: set[str]
    ) -> tuple[list[Slot], bool]:
        """Runnable slots in order, up to ``limit`` of them, at most one per task that
        runs one at a time (``busy`` is updated); and whether more may lie beyond."""
        fetch = limit * 2 + 16
        skip = sorted(refused)[:500]
        rows = db.execute(
            f"SELECT {', '.join('s.' + c.strip() for c in SLOT_COLUMNS.split(','))}, "
            "t.overlap FROM slots s JOIN tasks t ON t.name = s.task "
            "WHERE s.status IN ('pending', 'retrying') AND s.next_attempt_at <= ? "
            "AND (t.overlap = 'allow' OR s.task NOT IN "
            "(SELECT r.task FROM slots r WHERE r.status = 'running')) "
            # A retry whose task's next fire is due too is left to that fire, which takes
            # its place (supersedes it). Both due at once (a restart after a stop while it
            # waited), the old retry ran first and the newer fire was skipped behind it.
            # So is a fire that waited (it could not start: no room, a database that came
            # and went) when the next is due: started first, it made the newer fire skip
            # behind it and its retry run after it (outside-in probe of a flapping disk).
            # Not catch-up's backlog, recorded over several ticks, nor a manual run.
            # (IS NOT NULL first: a task with no next fire, a one-shot that has fired,
            # made the whole test NULL, and NOT NULL left its slots unclaimed for ever)
            "AND NOT (t.paused = 0 AND t.next_fire_at IS NOT NULL AND t.next_fire_at <= ? "
            "AND (s.status = 'retrying' OR s.trigger = 'schedule')) "
            + (f"AND s.task NOT IN ({', '.join('?' for _ in skip)}) " if skip else "")
            + "ORDER BY s.next_attempt_at, s.scheduled_for, s.id LIMIT ?"
            + self._candidate_lock,
            (ts(now), ts(now), *skip, fetch),
        ).fetchall()
        page: list[Slot] = []
        at = 0
        while at < len(rows) and len(page) < limit:
            # As many candidates as there is room for, their one-at-a-time tasks asked
            # about together (on PostgreSQL two statements, not two per slot); refused
            # ones leave room that the next round fills from further down.
            batch: list[tuple[Any, ...]] = []
            ask: list[str] = []
            while at < len(rows) and len(batch) < limit - len(page):
                row, at = rows[at], at + 1
                if row[17] != "allow":
                    if row[1] in busy or row[1] in refused:
                        continue
                    busy.add(row[1])
                    ask.append(row[1])
                batch.append(row)
            allowed = self._may_start(db, ask) if ask else set()
            for row in batch:
                task = row[1]
                if row[17] != "allow" and task not in allowed:
                    busy.discard(task)
                    refused.add(task)
                    continue
                page.append(slot_from_row(row[:17]))
        return page, len(rows) == fetch

    @staticmethod
    def _specs(db: Conn, names: set[str]) -> dict[str, TaskSpec]:
        """The specs of the tasks whose slots were just claimed (read after choosing,
        so a claim reads each spec once, not once per candidate looked at)."""
        out: dict[str, TaskSpec] = {}
        for chunk in chunks(sorted(names), 500):
            rows = db.execute(
                f"SELECT name, spec FROM tasks WHERE name IN ({', '.join('?' for _ in chunk)})",
                chunk,
            ).fetchall()
            out.update((name, spec_of(name, text)) for name, text in rows)
        return out

    def note_attempt_process(self, attempt_id: int, info: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE attempts SET extra = ? WHERE id = ? AND status = 'running'",
                (json.dumps(info), attempt_id),
            )

    def restamp_started(
        self, owner: str, claims: Sequence[tuple[int, int]], at: datetime, lease_until: datetime
    ) -> None:
        with self._tx() as db:
            for chunk in chunks(sorted(claims), 400):
                marks = ", ".join("?" for _ in chunk)
                db.execute(
                    "UPDATE slots SET started_at = ?, lease_expires_at = ? "
                    f"WHERE lease_owner = ? AND status = 'running' AND id IN ({marks})",
                    (ts(at), ts(lease_until), owner, *(slot for slot, _ in chunk)),
                )
                db.execute(
                    "UPDATE attempts SET started_at = ? "
                    f"WHERE status = 'running' AND id IN ({marks})",
                    (ts(at), *(attempt for _, attempt in chunk)),
                )

    def renew_leases(
        self, owner: str, slot_ids: Collection[int], now: datetime, lease_until: datetime
    ) -> set[int]:
        renewed: set[int] = set()
        with self._tx() as db:
            for chunk in chunks(sorted(slot_ids), 500):
                rows = db.execute(
                    "UPDATE slots SET lease_expires_at = ? "
                    "WHERE lease_owner = ? AND status = 'running' "
                    f"AND id IN ({', '.join('?' for _ in chunk)}) RETURNING id",
                    (ts(lease_until), owner, *chunk),
                ).fetchall()
                renewed.update(int(r[0]) for r in rows)
        return renewed

    def ask_stop(self, slot_id: int, reason: str) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE slots SET stop_asked = ? "
                "WHERE id = ? AND status = 'running' AND stop_asked IS NULL",
                (reason, slot_id),
            )
            return bool(cur.rowcount == 1)

    def stops_asked(self, owner: str) -> dict[int, str]:
        # the running partial index: as many rows as runs in progress, whatever the history
        rows = self._q(
            "SELECT id, stop_asked FROM slots WHERE status = 'running' "
            "AND lease_owner = ? AND stop_asked IS NOT NULL",
            (owner,),
        )
        return {int(slot_id): str(reason) for slot_id, reason in rows}

    def _close_attempt(
        self,
        db: Conn,
        slot_id: int,
        attempt_id: int | None,
        outcome: AttemptOutcome,
        now: datetime,
    ) -> None:
        where = "id = ?" if attempt_id is not None else "slot_id = ? AND status = 'running'"
        db.execute(
            "UPDATE attempts SET finished_at = ?, status = ?, error_class = ?, error = ?, "
            "explanation = ?, exit_code = ?, output_path = COALESCE(?, output_path), tokens = ?, "
            f"extra = ? WHERE {where}",
            (*attempt_end(outcome, now), attempt_id if attempt_id is not None else slot_id),
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
        return self.finish_many([Finish(slot_id, attempt_id, owner, outcome, now)])[0] is not None

    def finish_many(self, items: Sequence[Finish]) -> list[Slot | None]:
        if not items:
            return []
        with self._tx() as db:
            waiting = [i.slot_id for i in items if not i.outcome.slot_status.is_final]
            if waiting:  # before the slots: the order a pause or a removal takes them in
                self._hold_tasks_of(db, waiting)
            slots = self._finish_slots(db, items)
            ours = [(item, slot) for item, slot in zip(items, slots, strict=True) if slot]
            if ours:  # their attempts in one go (nothing to read back)
                db.executemany(
                    "UPDATE attempts SET finished_at = ?, status = ?, error_class = ?, "
                    "error = ?, explanation = ?, exit_code = ?, "
                    "output_path = COALESCE(?, output_path), tokens = ?, extra = ? WHERE id = ?",
                    [(*attempt_end(i.outcome, i.now), i.attempt_id) for i, _ in ours],
                )
                # what they spent, with their end: counted exactly when they are recorded
                add_spend(db, [entry for i, _ in ours for entry in i.spend])
                _note_printed(db, [s.task for i, s in ours if _printed(i.outcome, s.status)])
            for index, (item, slot) in enumerate(zip(items, slots, strict=True)):
                outcome = item.outcome
                if slot is None or not outcome.deliver_to:
                    continue
                if outcome.ok and outcome.slot_status is SlotStatus.SUCCEEDED:
                    self._create_deliveries(db, slot.id, slot.task, outcome, item.now)
                    slots[index] = replace(slot, delivery_status=DeliveryStatus.PENDING)
            if any(slot is not None and not slot.status.is_final for slot in slots):
                self._end_retries_not_taken(db, items, slots)
            return slots

    @staticmethod
    def _end_retries_not_taken(db: Conn, items: Sequence[Finish], slots: list[Slot | None]) -> None:
        """A run whose task was removed while it ran would wait for a retry that no
        claim takes (claims read the task's row); one whose task was paused, for a
        retry the pause cancels without a word. Such slots end here, failed, with the
        reason, in the transaction that records the attempt (a removal or a pause
        cannot slip between). ``slots`` is updated in place."""
        waiting = {s.id: i for i, s in enumerate(slots) if s is not None and not s.status.is_final}
        for chunk in chunks(sorted(waiting), 500):
            marks = ", ".join("?" for _ in chunk)
            for slot_id, reason in db.execute(
                "UPDATE slots SET status = ?, next_attempt_at = NULL, finished_at = ?, "
                "reason = CASE WHEN EXISTS (SELECT 1 FROM tasks t WHERE t.name = slots.task) "
                f"THEN ? ELSE ? END WHERE id IN ({marks}) AND status IN ('pending', 'retrying') "
                "AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.name = slots.task "
                "AND t.paused = 0) RETURNING id, reason",
                (
                    SlotStatus.FAILED.value,
                    ts(items[0].now),
                    PAUSED_WHILE_RUNNING,
                    REMOVED_WHILE_RUNNING,
                    *chunk,
                ),
            ).fetchall():
                index = waiting[int(slot_id)]
                slot = slots[index]
                assert slot is not None
                slots[index] = replace(
                    slot,
                    status=SlotStatus.FAILED,
                    next_attempt_at=None,
                    finished_at=items[index].now,
                    reason=str(reason),
                )

    def _finish_slots(self, db: Conn, items: Sequence[Finish]) -> list[Slot | None]:
        """The slots' half of finishing: a compare-and-set on each lease owner. Slots
        handed over as claimed are set a few hundred per statement and built from what
        was written (a burst ends thousands at once); others are read back one by one."""
        bulk = [i for i in items if i.claimed is not None]
        if len({i.slot_id for i in items}) != len(items):
            bulk = []  # the same slot twice: one at a time, in order, the second loses
        won: set[int] = set()
        for chunk in chunks(bulk, 300):
            values = ", ".join(
                "(CAST(? AS BIGINT), CAST(? AS BIGINT), ?, ?, ?, ?, "
                "CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION), ?, ?)"
                for _ in chunk
            )
            rows = db.execute(
                f"WITH v (id, attempt_id, owner, status, error_class, error, finished_at, "
                f"next_attempt_at, output_path, reason) AS (VALUES {values}) "
                "UPDATE slots SET status = v.status, error_class = v.error_class, "
                "error = v.error, finished_at = v.finished_at, "
                "next_attempt_at = v.next_attempt_at, "
                "output_path = COALESCE(v.output_path, slots.output_path), "
                "reason = COALESCE(v.reason, slots.reason), "
                "lease_owner = NULL, lease_expires_at = NULL FROM v "
                "WHERE slots.id = v.id AND slots.lease_owner = v.owner "
                f"AND slots.status = 'running' AND {_CURRENT_ATTEMPT.format(a='v.attempt_id')} "
                "RETURNING slots.id",
                [
                    value
                    for i in chunk
                    for value in (
                        i.slot_id,
                        i.attempt_id,
                        i.owner,
                        *self._slot_update_params(i.outcome, i.now),
                        i.outcome.reason,
                    )
                ],
            ).fetchall()
            won.update(int(r[0]) for r in rows)
        out: list[Slot | None] = []
        for item in items:
            if not bulk or item.claimed is None:
                out.append(self._finish_slot(db, item))
            elif item.slot_id in won:
                out.append(as_finished(item.claimed, item.outcome, item.now))
            else:
                out.append(None)
        return out

    def _finish_slot(self, db: Conn, item: Finish) -> Slot | None:
        """The slot's half of finishing: a compare-and-set on its lease owner."""
        outcome, now = item.outcome, item.now
        params = (
            *self._slot_update_params(outcome, now),
            outcome.reason,
            item.slot_id,
            item.owner,
            item.attempt_id,
        )
        sql = (
            "UPDATE slots SET status = ?, error_class = ?, error = ?, finished_at = ?, "
            "next_attempt_at = ?, output_path = COALESCE(?, output_path), "
            "reason = COALESCE(?, reason), lease_owner = NULL, lease_expires_at = NULL "
            "WHERE id = ? AND lease_owner = ? AND status = 'running' "
            f"AND {_CURRENT_ATTEMPT.format(a='?')}"
        )
        if item.claimed is None:
            row = db.execute(f"{sql} RETURNING {SLOT_COLUMNS}", params).fetchone()
            return slot_from_row(row) if row is not None else None
        if db.execute(sql, params).rowcount != 1:
            return None
        return as_finished(item.claimed, outcome, now)

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
            "lease_owner = CASE WHEN ? = 1 THEN NULL ELSE lease_owner END WHERE id = ?"
        )
        params: list[Any] = [
            status.value,
            reason,
            ts(now) if status.is_final else None,
            int(status.is_final),
            slot_id,
        ]
        if only_from:
            sql += f" AND status IN ({', '.join('?' for _ in only_from)})"
            params.extend(s.value for s in only_from)
        with self._tx() as db:
            return bool(db.execute(sql, params).rowcount == 1)

    def running_slots(self) -> list[Slot]:
        # No ORDER BY: with it SQLite scans the whole table instead of the partial
        # slots_running index (50 ms at a million slots, every few seconds).
        rows = self._q(f"SELECT {SLOT_COLUMNS} FROM slots WHERE status = 'running'")
        return sorted((slot_from_row(r) for r in rows), key=lambda s: s.id)

    def lapsed(self, now: datetime, dead_owners: Sequence[str] = ()) -> list[Slot]:
        # Every tick asks: read the running slots through their partial index (a few
        # rows) and filter here, rather than letting an OR or an ORDER BY turn the
        # query into a scan of the whole history.
        dead = set(dead_owners)
        cutoff = ts(now)
        assert cutoff is not None
        lapsed = [
            id_
            for id_, expires, owner in self._q(
                "SELECT id, lease_expires_at, lease_owner FROM slots WHERE status = 'running'"
            )
            if (expires is not None and float(expires) < cutoff) or owner in dead
        ]
        if not lapsed:
            return []
        return [
            slot_from_row(r)
            for chunk in chunks(sorted(lapsed))
            for r in self._q(
                f"SELECT {SLOT_COLUMNS} FROM slots WHERE id IN ({', '.join('?' for _ in chunk)}) "
                "AND status = 'running' ORDER BY id",
                chunk,
            )
        ]

    def cancel_waiting_of_paused(self, now: datetime) -> int:
        # Through the partial index of waiting slots: a handful of rows, whatever the
        # history holds; read first, so the look every few seconds takes no write lock.
        # A run triggered by hand after the pause is not cancelled: it was asked for
        # (the pause itself cancelled the runs waiting then, in set_paused).
        waiting_of_paused = (
            "SELECT s.id FROM slots s JOIN tasks t ON t.name = s.task "
            "WHERE s.status IN ('pending', 'retrying') AND t.paused = 1 "
            "AND NOT (s.trigger = 'manual' AND s.attempts = 0)"
        )
        if not self._q(f"{waiting_of_paused} LIMIT 1"):
            return 0
        with self._tx() as db:
            cur = db.execute(
                "UPDATE slots SET status = 'cancelled', reason = 'task paused', "
                f"finished_at = ?, next_attempt_at = NULL WHERE id IN ({waiting_of_paused})",
                (ts(now),),
            )
            return int(cur.rowcount)

    def undo_fires_ahead(self, now: datetime, by: timedelta) -> tuple[int, int]:
        # A slot is recorded when its fire is due: one for a time after now was recorded
        # by a clock that ran ahead. Those that never ran go (their time is still to
        # come: the unique (task, scheduled_for) would keep it from running then);
        # waiting retries come back by the step, not earlier than now.
        with self._tx() as db:
            removed = db.execute(
                "DELETE FROM slots WHERE scheduled_for > ? AND attempts = 0", (ts(now),)
            ).rowcount
            waiting = db.execute(
                "SELECT id, next_attempt_at FROM slots WHERE status IN ('pending', 'retrying') "
                "AND next_attempt_at > ?",
                (ts(now),),
            ).fetchall()
            moved = [(ts(max(now, dt_req(at) - by)), slot_id) for slot_id, at in waiting]
            if moved:
                db.executemany("UPDATE slots SET next_attempt_at = ? WHERE id = ?", moved)
            return int(removed), len(moved)

    def ran_ahead(self, now: datetime) -> dict[str, set[datetime]]:
        out: dict[str, set[datetime]] = {}
        for task, at in self._q(
            "SELECT task, scheduled_for FROM slots WHERE scheduled_for > ?", (ts(now),)
        ):
            out.setdefault(task, set()).add(dt_req(at))
        return out

    # ---- cheap looks before a claim (no transaction) --------------------------------
    def outbox_waiting(self, now: datetime) -> bool:
        """Whether a channel's head-of-line message may be claimed now (what
        :meth:`claim_outbox` would take). The outbox sender asks on its periodic look,
        so an idle daemon does not open a write transaction to find nothing."""
        return bool(
            self._q(
                f"SELECT 1 FROM outbox o JOIN ({OUTBOX_HEADS}) h ON h.head = o.id "
                "WHERE o.sent_at IS NULL AND o.permanent = 0 "
                "AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= ?) "
                "AND (o.claimed_by IS NULL OR o.claim_expires_at <= ?) LIMIT 1",
                (ts(now), ts(now)),
            )
        )

    def outputs_to_keep(self) -> set[str]:
        rows = self._q(
            "SELECT output_path FROM deliveries WHERE status IN ('pending', 'retrying') "
            "AND output_path IS NOT NULL "
            "UNION SELECT s.output_path FROM tasks t JOIN slots s ON s.id = ("
            "SELECT l.id FROM slots l WHERE l.task = t.name AND l.status = 'succeeded' "
            "ORDER BY l.scheduled_for DESC, l.id DESC LIMIT 1) "
            "WHERE s.output_path IS NOT NULL"
        )
        return {str(path) for (path,) in rows}

    def deliveries_held(self) -> tuple[int, int, datetime | None]:
        """How many outputs wait to be delivered, how many of them after a failed
        attempt, and the oldest one's run end (for `doctor`): one read over the
        deliveries still open, a few rows even on a long history."""
        [(waiting, retrying, oldest)] = self._q(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'retrying' THEN 1 ELSE 0 END), 0), "
            "MIN(created_at) FROM deliveries WHERE status IN ('pending', 'retrying')"
        )
        return int(waiting), int(retrying), dt(oldest)

    def deliveries_waiting(self, now: datetime) -> bool:
        """Whether a delivery may be claimed now (see :meth:`outbox_waiting`)."""
        return bool(
            self._q(
                "SELECT 1 FROM deliveries WHERE status IN ('pending', 'retrying') "
                "AND next_attempt_at <= ? AND (claimed_by IS NULL OR claim_expires_at <= ?) "
                "LIMIT 1",
                (ts(now), ts(now)),
            )
        )

    def record_lost(self, slot: Slot, outcome: AttemptOutcome, now: datetime) -> bool:
        with self._tx() as db:
            return self._take_over(db, slot, outcome, now)

    def _take_over(self, db: Conn, slot: Slot, outcome: AttemptOutcome, now: datetime) -> bool:
        """Close a lapsed slot's running attempt with ``outcome``: a compare-and-set on
        its lease owner and expiry as read, so of two nodes recovering one slot, one wins."""
        cur = db.execute(
            "UPDATE slots SET status = ?, error_class = ?, error = ?, finished_at = ?, "
            "next_attempt_at = ?, output_path = COALESCE(?, output_path), "
            "lease_owner = NULL, lease_expires_at = NULL "
            "WHERE id = ? AND status = 'running' AND lease_owner IS NOT DISTINCT FROM ? "
            "AND lease_expires_at IS NOT DISTINCT FROM ?",
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

    def _deliveries_of_success(
        self, db: Conn, slot_id: int, task: str, outcome: AttemptOutcome, now: datetime
    ) -> None:
        """What a success recorded outside :meth:`finish_many` (an end its launcher kept
        while the daemon was down) writes beside it: its deliveries, and that it printed."""
        if outcome.ok and outcome.slot_status is SlotStatus.SUCCEEDED and outcome.deliver_to:
            self._create_deliveries(db, slot_id, task, outcome, now)
        if _printed(outcome, outcome.slot_status):
            _note_printed(db, [task])

    def get_slot(self, slot_id: int) -> Slot | None:
        rows = self._q(f"SELECT {SLOT_COLUMNS} FROM slots WHERE id = ?", (slot_id,))
        return slot_from_row(rows[0]) if rows else None

    def slot_after(self, slot_id: int) -> bool:
        return bool(self._q("SELECT 1 FROM slots WHERE id > ? LIMIT 1", (slot_id,)))

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
        if task is not None:
            rows = self._q(
                f"SELECT {SLOT_COLUMNS} FROM slots WHERE task = ? "
                "AND status IN ('pending', 'running', 'retrying') ORDER BY scheduled_for, id",
                (task,),
            )
        else:
            rows = self._active_rows()
        slots = [slot_from_row(r) for r in rows]
        slots.sort(key=lambda s: (s.scheduled_for, s.id))
        return slots

    def _active_rows(self) -> list[tuple[Any, ...]]:
        """Two reads that each match a partial index, not a scan of all history."""
        return self._q(
            f"SELECT {SLOT_COLUMNS} FROM slots WHERE status IN ('pending', 'retrying')"
        ) + self._q(f"SELECT {SLOT_COLUMNS} FROM slots WHERE status = 'running'")

    def active_slots_of(self, tasks: Collection[str]) -> dict[str, list[Slot]]:
        wanted = tasks if isinstance(tasks, set | frozenset) else set(tasks)
        out: dict[str, list[Slot]] = {}
        if not wanted:
            return out
        for row in self._active_rows():  # only the wanted tasks' rows become records
            if row[1] in wanted:
                slot = slot_from_row(row)
                out.setdefault(slot.task, []).append(slot)
        for slots in out.values():
            slots.sort(key=lambda s: (s.scheduled_for, s.id))
        return out

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

    def last_statuses(self, tasks: Sequence[str], n: int) -> dict[str, list[SlotStatus]]:
        out: dict[str, list[SlotStatus]] = {}
        for chunk in chunks(sorted(set(tasks))):
            rows = self._q(
                "SELECT task, status FROM (SELECT task, status, ROW_NUMBER() OVER "
                "(PARTITION BY task ORDER BY scheduled_for DESC, id DESC) AS rn FROM slots "
                f"WHERE task IN ({', '.join('?' for _ in chunk)}) AND status NOT IN "
                "('pending', 'running', 'retrying')) AS ranked WHERE rn <= ? ORDER BY task, rn",
                (*chunk, n),
            )
            for task, status in rows:
                out.setdefault(task, []).append(SlotStatus(status))
        return out

    def had_output(self, task: str) -> bool:
        return bool(self._q("SELECT 1 FROM task_outputs WHERE task = ?", (task,)))

    def waiting_slots(self, since: datetime, limit: int) -> list[Slot]:
        return [
            slot_from_row(r)
            for r in self._q(
                f"SELECT {SLOT_COLUMNS} FROM slots WHERE status IN ('pending', 'retrying') "
                "AND next_attempt_at <= ? ORDER BY next_attempt_at, scheduled_for, id LIMIT ?",
                (ts(since), limit),
            )
        ]

    def slot_before(self, task: str, scheduled_for: datetime) -> Slot | None:
        rows = self._q(
            f"SELECT {SLOT_COLUMNS} FROM slots WHERE task = ? AND scheduled_for < ? "
            "ORDER BY scheduled_for DESC, id DESC LIMIT 1",
            (task, ts(scheduled_for)),
        )
        return slot_from_row(rows[0]) if rows else None

    def count_slots(self, task: str, statuses: Sequence[SlotStatus], since: datetime) -> int:
        marks = ", ".join("?" for _ in statuses)
        rows = self._q(
            f"SELECT COUNT(*) FROM slots WHERE task = ? AND scheduled_for >= ? "
            f"AND status IN ({marks})",
            (task, ts(since), *(s.value for s in statuses)),
        )
        return int(rows[0][0])

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
                "heartbeat_at = excluded.heartbeat_at, stopped_at = NULL, config_note = NULL",
                (
                    node.node_id,
                    node.host,
                    node.pid,
                    node.home,
                    ts(node.started_at),
                    ts(node.heartbeat_at),
                ),
            )

    def heartbeat(self, node_id: str, now: datetime) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE nodes SET heartbeat_at = ? WHERE node_id = ?", (ts(now), node_id)
            )
            return bool(cur.rowcount)

    def stop_node(self, node_id: str, now: datetime) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE nodes SET stopped_at = ?, heartbeat_at = ?, config_note = NULL "
                "WHERE node_id = ?",
                (ts(now), ts(now), node_id),
            )

    def set_config_note(self, node_id: str, note: str | None) -> None:
        with self._tx() as db:
            db.execute("UPDATE nodes SET config_note = ? WHERE node_id = ?", (note, node_id))

    def nodes(self) -> list[NodeInfo]:
        from agentcron.store._rows import node_from_row

        return [
            node_from_row(r)
            for r in self._q(
                "SELECT node_id, host, pid, home, started_at, heartbeat_at, stopped_at, "
                "config_note FROM nodes ORDER BY heartbeat_at DESC"
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

    def swap_meta(self, key: str, expected: str | None, value: str) -> bool:
        # one statement each way: a second writer's waits for the first's row lock and
        # then finds the value changed (PostgreSQL re-reads the row it waited for)
        with self._tx() as db:
            if expected is None:
                rows = db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING "
                    "RETURNING key",
                    (key, value),
                ).fetchall()
            else:
                rows = db.execute(
                    "UPDATE meta SET value = ? WHERE key = ? AND value = ? RETURNING key",
                    (value, key, expected),
                ).fetchall()
        return bool(rows)

    # ---- runs that ended while no daemon watched them ------------------------------
    def correct_lost_end(
        self, slot_id: int, attempt: int, outcome: AttemptOutcome, now: datetime
    ) -> Slot | None:
        # Only while the slot still waits for the retry that followed the lost attempt
        # (status retrying, worker_lost, no newer attempt): once a retry started, the
        # retry's result is the slot's, and this end is history.
        with self._tx() as db:
            row = db.execute(
                "UPDATE slots SET status = ?, error_class = ?, error = ?, finished_at = ?, "
                "next_attempt_at = ?, output_path = COALESCE(?, output_path) "
                "WHERE id = ? AND status = 'retrying' AND attempts = ? "
                f"AND error_class = 'worker_lost' RETURNING {SLOT_COLUMNS}",
                (*self._slot_update_params(outcome, now), slot_id, attempt),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE attempts SET finished_at = ?, status = ?, error_class = ?, error = ?, "
                "explanation = ?, exit_code = ?, output_path = COALESCE(?, output_path), "
                "tokens = ?, extra = ? WHERE slot_id = ? AND number = ?",
                (*attempt_end(outcome, now), slot_id, attempt),
            )
            slot = slot_from_row(row)
            self._deliveries_of_success(db, slot.id, slot.task, outcome, now)
        return slot

    def record_unwatched_end(self, slot: Slot, outcome: AttemptOutcome, now: datetime) -> bool:
        # The compare-and-set of record_lost (two nodes recovering one slot: one wins),
        # with the deliveries a finish creates, in the same transaction.
        with self._tx() as db:
            if not self._take_over(db, slot, outcome, now):
                return False
            self._deliveries_of_success(db, slot.id, slot.task, outcome, now)
        return True


def _printed(outcome: AttemptOutcome, recorded: SlotStatus) -> bool:
    """Whether an end is a success with output (``recorded``: the slot's status as
    written): what makes the empty-output canary watch its task from then on."""
    return (
        outcome.ok
        and outcome.slot_status is SlotStatus.SUCCEEDED
        and recorded is SlotStatus.SUCCEEDED
        and not outcome.empty_output
    )


def _note_printed(db: Conn, tasks: Sequence[str]) -> None:
    """Remember that ``tasks`` have printed in a success (``task_outputs``, migration 16)."""
    if tasks:
        db.executemany(
            "INSERT INTO task_outputs (task) VALUES (?) ON CONFLICT (task) DO NOTHING",
            [(task,) for task in sorted(set(tasks))],
        )


def _stored_paused(name: str, text: str) -> bool | None:
    """The ``paused`` of a task's stored spec; None when it cannot be read (changed
    outside agentcron): the spec being applied then replaces it, and the task keeps its
    pause state. One bad stored spec made every command that applies the config file
    print a traceback, and `agentcron run` refuse to start (outside-in probe)."""
    try:
        return parse_spec(text).paused
    except ValueError as exc:  # a ValidationError, or JSON that is not
        log.warning(
            "task %r: its stored spec could not be read (%s); replaced by the one applied",
            name,
            str(exc).splitlines()[0],
        )
        return None
