"""The SQL of retention: old history deleted in small batches.

Shared by both stores like :mod:`._notify_sql` (:class:`~agentcron.store.sql.SQLStore`
inherits it). What to keep is decided by the caller (:mod:`agentcron.retention` turns
each task's ``keep_history`` into a :class:`KeepRule`); what may never go is decided
here, in the statements themselves, so no caller can get it wrong:

* a slot still active (pending, running, retrying), or whose delivery is still
  pending or retrying, or that an open incident points to;
* the newest ``keep_last`` final slots of each task and its newest success, whatever
  their age: the streak detectors, `list` and ``context: previous`` read them.

Slots are found through the ``UNIQUE (task, scheduled_for)`` index, one task at a
time, so pruning adds no index that every slot written would have to update. Each
write transaction removes at most ``batch`` slots (with their attempts and
deliveries), so SQLite's write lock is never held for long and the daemon's loop,
which shares the connection, waits a few milliseconds at most.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agentcron.store._rows import ts
from agentcron.store._spec_sql import SpecSQL

BATCH = 500  # slots (or outbox, incident rows) per write transaction
_ACTIVE = "('pending', 'running', 'retrying')"
_UNDELIVERED = "('pending', 'retrying')"
# A slot that may go, given a task: final, delivered (or nothing to deliver), and not
# what an open incident points to. Written out again in the DELETE, so a slot whose
# state changed between the read and the write (another node) is left alone.
_REMOVABLE = (
    f"status NOT IN {_ACTIVE} AND delivery_status NOT IN {_UNDELIVERED} "
    "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.slot_id = slots.id "
    f"AND d.status IN {_UNDELIVERED}) "
    "AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.task = slots.task "
    "AND i.closed_at IS NULL AND i.slot_id = slots.id)"
)


@dataclass(frozen=True)
class KeepRule:
    """How much of one task's history stays.

    ``cutoff``: final slots that ended (or, never started, were due) before it may go;
    None keeps everything. ``keep_last``: the newest final slots kept whatever their age.
    """

    cutoff: datetime | None
    keep_last: int = 1


@dataclass(frozen=True)
class SlotBatch:
    """What one batch removed (or, in a dry run, would remove)."""

    slots: int
    attempts: int
    deliveries: int
    paths: tuple[str, ...]  # output files the removed rows referenced, for the caller


@dataclass(frozen=True)
class PrunedRecords:
    """Rows of the notification side and of the node registry removed (or that would be)."""

    outbox: int
    incidents: int
    nodes: int
    audit: int = 0


class PruneSQL(SpecSQL):
    """History pruning; the subclass supplies ``_tx`` and ``_q``."""

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    # ---- what each task keeps ---------------------------------------------------------
    def keep_settings(self) -> dict[str, tuple[timedelta | None, int]]:
        """Each task's ``keep_history`` and ``empty_output_streak``, read from its stored
        spec by the database (not by parsing 100,000 specs at every retention pass);
        tasks sharing settings share one tuple, each distinct stored pair is validated
        once."""
        read = self._key_read(["keep_history", "empty_output_streak"])
        seen: dict[str, tuple[timedelta | None, int]] = {}
        out: dict[str, tuple[timedelta | None, int]] = {}
        for name, text in self._key_rows(read, "SELECT name, {keys} FROM tasks"):
            pair = seen.get(text) if isinstance(text, str) else None
            if pair is None:
                keep, streak = read.typed(name, text)
                pair = (keep, streak)
                if isinstance(text, str):
                    seen[text] = pair
            out[name] = pair
        return out

    # ---- slots, attempts, deliveries ------------------------------------------------
    def prune_slots(
        self,
        rules: Mapping[str, KeepRule],
        default: KeepRule,
        *,
        dry_run: bool = False,
        batch: int = BATCH,
    ) -> Iterator[SlotBatch]:
        """Remove final slots past their task's rule, with their attempts and deliveries.

        ``rules`` by task name; ``default`` for tasks it does not name (tasks removed
        from the config keep their history as history). A generator: each batch is
        committed before it is yielded, so the caller deletes the files of committed
        removals only. Reads happen between the write transactions, one task's slots
        at a time, in the order of the unique index.
        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        chosen: list[tuple[int, str | None]] = []
        for task, oldest in self._slot_tasks():
            rule = rules.get(task, default)
            cutoff = ts(rule.cutoff)
            if cutoff is None or oldest >= cutoff:
                continue
            bounds = self._keep_bounds(task, max(1, rule.keep_last))
            if bounds is None:
                continue
            newest_kept, last_success = bounds
            upper = min(cutoff, newest_kept)
            after = float(oldest) - 1.0
            while True:
                rows = self._q(
                    "SELECT id, scheduled_for, output_path FROM slots "
                    "WHERE task = ? AND scheduled_for > ? AND scheduled_for < ? "
                    "AND COALESCE(finished_at, scheduled_for) < ? "
                    "AND (status <> 'succeeded' OR scheduled_for < ?) "
                    f"AND {_REMOVABLE} ORDER BY scheduled_for LIMIT ?",
                    (task, after, upper, cutoff, last_success, batch),
                )
                chosen.extend((int(r[0]), r[2]) for r in rows)
                while len(chosen) >= batch:
                    yield self._remove_slots(chosen[:batch], dry_run)
                    del chosen[:batch]
                if len(rows) < batch:
                    break
                after = float(rows[-1][1])
        if chosen:
            yield self._remove_slots(chosen, dry_run)

    def _slot_tasks(self) -> Iterator[tuple[str, float]]:
        """Every task that has slots, with its oldest ``scheduled_for``: one index seek
        per task (a loose index scan), not a read of all history. Tasks removed from
        the config are among them."""
        last = ""
        while True:
            rows = self._q(
                "SELECT task, scheduled_for FROM slots WHERE task > ? "
                "ORDER BY task, scheduled_for LIMIT 1",
                (last,),
            )
            if not rows:
                return
            last = str(rows[0][0])
            yield last, float(rows[0][1])

    def _keep_bounds(self, task: str, keep_last: int) -> tuple[float, float] | None:
        """``scheduled_for`` of the oldest of the task's newest ``keep_last`` final slots
        and of its newest success (only older ones may go); None when the task has no
        more final slots than it keeps."""
        kept = self._q(
            f"SELECT scheduled_for FROM slots WHERE task = ? AND status NOT IN {_ACTIVE} "
            "ORDER BY scheduled_for DESC LIMIT 1 OFFSET ?",
            (task, keep_last - 1),
        )
        if not kept:
            return None
        success = self._q(
            "SELECT scheduled_for FROM slots WHERE task = ? AND status = 'succeeded' "
            "ORDER BY scheduled_for DESC LIMIT 1",
            (task,),
        )
        newest_kept = float(kept[0][0])
        # no success at all: no succeeded slot can be chosen, any bound will do
        return newest_kept, float(success[0][0]) if success else newest_kept

    def _remove_slots(self, chosen: Sequence[tuple[int, str | None]], dry_run: bool) -> SlotBatch:
        ids = [slot_id for slot_id, _ in chosen]
        marks = ", ".join("?" for _ in ids)
        if dry_run:
            attempts = self._q(f"SELECT output_path FROM attempts WHERE slot_id IN ({marks})", ids)
            deliveries = self._q(
                f"SELECT output_path FROM deliveries WHERE slot_id IN ({marks})", ids
            )
            slot_paths = [path for _, path in chosen]
            return _batch(len(ids), slot_paths, attempts, deliveries)
        with self._tx() as db:
            gone = db.execute(
                f"DELETE FROM slots WHERE id IN ({marks}) AND {_REMOVABLE} "
                "RETURNING id, output_path",
                ids,
            ).fetchall()
            if not gone:
                return SlotBatch(0, 0, 0, ())
            gone_ids = [int(r[0]) for r in gone]
            gone_marks = ", ".join("?" for _ in gone_ids)
            attempts = db.execute(
                f"DELETE FROM attempts WHERE slot_id IN ({gone_marks}) RETURNING output_path",
                gone_ids,
            ).fetchall()
            deliveries = db.execute(
                f"DELETE FROM deliveries WHERE slot_id IN ({gone_marks}) RETURNING output_path",
                gone_ids,
            ).fetchall()
        return _batch(len(gone_ids), [r[1] for r in gone], attempts, deliveries)

    # ---- outbox, incidents, nodes -------------------------------------------------
    def prune_records(
        self,
        outbox_before: datetime,
        incidents_before: datetime,
        stopped_nodes_before: datetime,
        silent_nodes_before: datetime,
        *,
        audit_before: datetime | None = None,
        incidents_kept: Mapping[str, datetime | None] | None = None,
        dry_run: bool = False,
        batch: int = BATCH,
    ) -> PrunedRecords:
        """Remove outbox rows sent or given up on, created before ``outbox_before``;
        incidents closed before ``incidents_before``, or, for a task ``incidents_kept``
        names, before the time it gives (None: keep them all); node rows stopped with their last
        sign of life before ``stopped_nodes_before``, or silent since before
        ``silent_nodes_before`` (a node that still holds a running slot stays: its
        lease is how the slot is taken over); audit entries written before
        ``audit_before`` (none without it). Queued messages and open incidents are
        never touched."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        # the WHERE terms repeat those of the partial indexes outbox_done and
        # incidents_closed word for word: the form in which SQLite sees that they apply
        outbox = self._prune_rows(
            "outbox",
            "(sent_at IS NOT NULL OR permanent = 1) AND created_at < ?",
            (ts(outbox_before),),
            dry_run,
            batch,
        )
        if incidents_kept is None:
            incidents = self._prune_rows(
                "incidents",
                "closed_at IS NOT NULL AND closed_at < ?",
                (ts(incidents_before),),
                dry_run,
                batch,
            )
        else:
            incidents = self.prune_incidents(
                incidents_before, incidents_kept, dry_run=dry_run, batch=batch
            )
        nodes_where = (
            "(heartbeat_at < ? OR (stopped_at IS NOT NULL AND heartbeat_at < ?)) "
            "AND NOT EXISTS (SELECT 1 FROM slots s WHERE s.status = 'running' "
            "AND s.lease_owner = nodes.node_id)"
        )
        params = (ts(silent_nodes_before), ts(stopped_nodes_before))
        if dry_run:
            nodes = int(self._q(f"SELECT COUNT(*) FROM nodes WHERE {nodes_where}", params)[0][0])
        else:
            with self._tx() as db:
                nodes = int(db.execute(f"DELETE FROM nodes WHERE {nodes_where}", params).rowcount)
        audit = (
            0
            if audit_before is None
            else self._prune_rows("audit", "at < ?", (ts(audit_before),), dry_run, batch)
        )
        return PrunedRecords(outbox, incidents, max(0, nodes), audit)

    def prune_incidents(
        self,
        default_before: datetime | None,
        kept: Mapping[str, datetime | None],
        *,
        dry_run: bool = False,
        batch: int = BATCH,
    ) -> int:
        """Closed incidents past their own task's cutoff, task by task through the
        (task, opened_at) index: one that closed before the cutoff opened before it.
        A flapping task with a short ``keep_history`` opened ~850 an hour that stayed
        for the 90 days of ``defaults:`` (soak probe)."""
        removed = 0
        for task in self._incident_tasks():
            before = kept.get(task, default_before)  # a named task's None keeps all
            if before is None:
                continue
            where = "task = ? AND opened_at < ? AND closed_at IS NOT NULL AND closed_at < ?"
            params = (task, ts(before), ts(before))
            if not self._q(f"SELECT 1 FROM incidents WHERE {where} LIMIT 1", params):
                continue  # nothing to remove: no write transaction for this task
            removed += self._prune_rows("incidents", where, params, dry_run, batch)
        return removed

    def _incident_tasks(self) -> Iterator[str]:
        """Every task that has incidents: one index seek per task, as for slots."""
        last = ""
        while True:
            rows = self._q(
                "SELECT task FROM incidents WHERE task > ? ORDER BY task LIMIT 1", (last,)
            )
            if not rows:
                return
            last = str(rows[0][0])
            yield last

    def _prune_rows(
        self, table: str, where: str, params: tuple[Any, ...], dry_run: bool, batch: int
    ) -> int:
        if dry_run:
            return int(self._q(f"SELECT COUNT(*) FROM {table} WHERE {where}", params)[0][0])
        removed = 0
        while True:
            with self._tx() as db:
                count = int(
                    db.execute(
                        f"DELETE FROM {table} WHERE id IN "
                        f"(SELECT id FROM {table} WHERE {where} LIMIT ?)",
                        (*params, batch),
                    ).rowcount
                )
            removed += max(0, count)
            if count < batch:
                return removed


def _batch(
    slots: int,
    slot_paths: Sequence[str | None],
    attempts: Sequence[tuple[Any, ...]],
    deliveries: Sequence[tuple[Any, ...]],
) -> SlotBatch:
    paths = {p for p in slot_paths if p}
    paths.update(r[0] for r in attempts if r[0])
    paths.update(r[0] for r in deliveries if r[0])
    return SlotBatch(slots, len(attempts), len(deliveries), tuple(sorted(paths)))
