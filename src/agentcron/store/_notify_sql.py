"""The SQL of the notification side: incidents, the outbox, deliveries.

Shared by both stores like :mod:`agentcron.store.sql`, whose :class:`SQLStore`
inherits it; kept apart because it is its own subject (what the owner is told and
what is sent), not the scheduling of slots.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime
from typing import Any

from agentcron.model import (
    AttemptOutcome,
    ChannelHealth,
    Delivery,
    DeliveryStatus,
    Incident,
    Message,
    OutboxItem,
)
from agentcron.model.outbox import CHANNEL_DOWN_MARK
from agentcron.store._conn import Conn
from agentcron.store._rows import (
    DELIVERY_COLUMNS,
    INCIDENT_COLUMNS,
    INCIDENT_COLUMNS_NO_ID,
    OUTBOX_COLUMNS,
    chunks,
    delivery_from_row,
    dt,
    dt_req,
    incident_from_row,
    incident_values,
    outbox_from_row,
    ts,
)

# Each channel's head of line: its oldest message not yet sent nor given up.
_HEADS = (
    "SELECT MIN(id) AS head FROM outbox WHERE sent_at IS NULL AND permanent = 0 "
    "GROUP BY channel_key"
)
_ITEM_COLUMNS = f"{OUTBOX_COLUMNS}, o.resent"
BACK_MARK = "channel_back:"  # meta key prefix: when a channel's first send after failures went


def _owned(owner: str | None) -> tuple[str, tuple[str, ...]]:
    """The compare-and-set of a sender's mark (the row is still its claim) and its
    parameter; nothing for a caller that does not claim."""
    return ("", ()) if owner is None else (" AND claimed_by = ?", (owner,))


def _item(row: Sequence[Any]) -> OutboxItem:
    return replace(outbox_from_row(tuple(row[:-1])), resent=int(row[-1]))


def _take(
    db: Conn, rows: Sequence[tuple[OutboxItem, str | None]], owner: str, claim_until: datetime
) -> list[OutboxItem]:
    """Claim ``rows`` (each with the sender whose claim on it lapsed, if one did) for
    ``owner``: a lapsed claim is taken over, counted in the row's and its channel's
    ``resent``."""
    if not rows:
        return []
    db.executemany(
        "UPDATE outbox SET claimed_by = ?, claim_expires_at = ?, resent = resent + ? WHERE id = ?",
        [(owner, ts(claim_until), int(before is not None), item.id) for item, before in rows],
    )
    over = [item for item, before in rows if before is not None]
    if over:
        db.executemany(
            "UPDATE channels SET resent = resent + 1 WHERE channel_key = ?",
            [(item.channel_key,) for item in over],
        )
    return [
        replace(item, resent=item.resent + 1, taken_over=True) if before is not None else item
        for item, before in rows
    ]


# the unsent messages of the channel ``c`` of the surrounding statement
_UNSENT_OF_C = "o.channel_key = c.channel_key AND o.sent_at IS NULL AND o.permanent = 0"


class NotifySQL:
    """Incidents, outbox and deliveries; the subclass supplies ``_tx`` and ``_q``."""

    # The row-lock clause of the slot claim, which the PostgreSQL store sets.
    _candidate_lock = ""

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    # ---- incidents ---------------------------------------------------------------
    def open_incidents(self, task: str) -> dict[str, Incident]:
        rows = self._q(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE task = ? AND closed_at IS NULL",
            (task,),
        )
        return {r[2]: incident_from_row(r) for r in rows}

    def tasks_with_open_incidents(self, tasks: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(sorted(set(tasks))):
            rows = self._q(
                "SELECT DISTINCT task FROM incidents WHERE closed_at IS NULL "
                f"AND task IN ({', '.join('?' for _ in chunk)})",
                chunk,
            )
            found.update(r[0] for r in rows)
        return found

    def open_incidents_of_kind(self, tasks: Sequence[str], kind: str) -> dict[str, Incident]:
        found: dict[str, Incident] = {}
        for chunk in chunks(sorted(set(tasks))):
            rows = self._q(
                f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE closed_at IS NULL "
                f"AND kind = ? AND task IN ({', '.join('?' for _ in chunk)})",
                (kind, *chunk),
            )
            found.update((r[1], incident_from_row(r)) for r in rows)
        return found

    def tasks_with_output(self, tasks: Sequence[str]) -> set[str]:
        """Those of ``tasks`` that have produced output in a success: one statement per
        500 tasks (a burst of new tasks ends thousands of first runs at once), each task
        one row of ``task_outputs``, however long its history."""
        found: set[str] = set()
        for chunk in chunks(sorted(set(tasks))):
            rows = self._q(
                f"SELECT task FROM task_outputs WHERE task IN ({', '.join('?' for _ in chunk)})",
                chunk,
            )
            found.update(r[0] for r in rows)
        return found

    def incidents(
        self, task: str | None = None, open_only: bool = False, limit: int = 50
    ) -> list[Incident]:
        sql = f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE 1 = 1"
        params: list[Any] = []
        if task is not None:
            sql += " AND task = ?"
            params.append(task)
        if open_only:
            sql += " AND closed_at IS NULL"
        sql += " ORDER BY opened_at DESC, id DESC LIMIT ?"
        params.append(limit)
        return [incident_from_row(r) for r in self._q(sql, params)]

    def removed_untold(self, limit: int = 100) -> list[Incident]:
        rows = self._q(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE closed_by = 'removed' "
            "ORDER BY closed_at, id LIMIT ?",
            (limit,),
        )
        return [incident_from_row(r) for r in rows]

    def tell_removed(
        self,
        incident_ids: Sequence[int],
        messages: Sequence[tuple[str, str, Message]],
        now: datetime,
    ) -> bool:
        with self._tx() as db:
            marked = 0
            for chunk in chunks(list(incident_ids)):
                marked += len(
                    db.execute(
                        "UPDATE incidents SET closed_by = 'removed, told' WHERE closed_by = "
                        f"'removed' AND id IN ({', '.join('?' for _ in chunk)}) RETURNING id",
                        chunk,
                    ).fetchall()
                )
            if not marked:
                return False  # another node told it
            for key, url, message in messages:
                self._enqueue(db, key, url, message, now)
        return True

    def save_incidents(
        self,
        changed: Sequence[Incident],
        messages: Sequence[tuple[str, str, Message]],
        now: datetime,
    ) -> list[Incident]:
        """Write incident changes and enqueue their messages in one transaction, so a
        notice is never lost nor sent for a change that was not recorded."""
        with self._tx() as db:
            saved = _write_incidents(db, changed)
            for key, url, message in messages:
                self._enqueue(db, key, url, message, now)
        return saved

    # ---- outbox (agentcron.notify.outbox.OutboxStore) -----------------------------
    def _enqueue(self, db: Conn, key: str, url: str, message: Message, now: datetime) -> int:
        cur = db.execute(
            "INSERT INTO outbox (channel_key, channel_url, message, created_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?) RETURNING id",
            (key, url, json.dumps(message.to_dict()), ts(now), ts(now)),
        )
        db.execute(
            "INSERT INTO channels (channel_key) VALUES (?) ON CONFLICT (channel_key) DO NOTHING",
            (key,),
        )
        return int(cur.fetchone()[0])

    def enqueue(self, channel_key: str, channel_url: str, message: Message, now: datetime) -> int:
        with self._tx() as db:
            return self._enqueue(db, channel_key, channel_url, message, now)

    def due(self, now: datetime, limit: int) -> list[OutboxItem]:
        rows = self._q(
            f"SELECT {_ITEM_COLUMNS} FROM outbox o JOIN ({_HEADS}) h ON h.head = o.id "
            "WHERE o.next_attempt_at IS NULL OR o.next_attempt_at <= ? "
            "ORDER BY o.created_at, o.id LIMIT ?",
            (ts(now), limit),
        )
        return [_item(r) for r in rows]

    def claim_outbox(
        self, owner: str, now: datetime, claim_until: datetime, limit: int
    ) -> list[OutboxItem]:
        """Read the claimable heads and take them in one transaction. SQLite's write
        lock (``BEGIN IMMEDIATE``) makes that atomic; on PostgreSQL the heads are
        row-locked as they are read, skipping those another node is taking, and the
        conditions on the row are checked again on its newest version, so a head that
        was claimed or sent since this statement's snapshot is left alone."""
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {_ITEM_COLUMNS}, o.claimed_by FROM outbox o "
                f"JOIN ({_HEADS}) h ON h.head = o.id "
                "WHERE o.sent_at IS NULL AND o.permanent = 0 "
                "AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= ?) "
                "AND (o.claimed_by IS NULL OR o.claim_expires_at <= ?) "
                f"ORDER BY o.created_at, o.id LIMIT ?{self._outbox_lock()}",
                (ts(now), ts(now), limit),
            ).fetchall()
            return _take(db, [(_item(r[:-1]), r[-1]) for r in rows], owner, claim_until)

    def claim_outbox_behind(
        self,
        head: OutboxItem,
        owner: str,
        now: datetime,
        claim_until: datetime,
        limit: int,
        at_least: int,
    ) -> list[OutboxItem]:
        """One read of the channel's queue index; on PostgreSQL the rows are locked in
        order as they are read (no SKIP LOCKED: a skipped row would be a gap, and the
        message behind it would go out before it)."""
        lock = " FOR UPDATE OF o" if self._candidate_lock else ""
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {_ITEM_COLUMNS}, o.claim_expires_at, o.claimed_by FROM outbox o "
                "WHERE o.channel_key = ? AND o.id > ? AND o.sent_at IS NULL AND o.permanent = 0 "
                f"ORDER BY o.id LIMIT ?{lock}",
                (head.channel_key, head.id, limit),
            ).fetchall()
            run: list[tuple[OutboxItem, str | None]] = []
            for r in rows:
                if r[-1] is not None and (r[-2] is None or r[-2] > ts(now)):
                    break  # another claim still holds it: the run ends before it
                run.append((_item(r[:-2]), r[-1]))
            if len(run) < at_least:
                return []
            return _take(db, run, owner, claim_until)

    def unclaim_outbox(self, item_ids: Sequence[int], owner: str) -> int:
        if not item_ids:
            return 0
        marks = ", ".join("?" for _ in item_ids)
        with self._tx() as db:
            cur = db.execute(
                "UPDATE outbox SET claimed_by = NULL, claim_expires_at = NULL "
                f"WHERE id IN ({marks}) AND claimed_by = ? AND sent_at IS NULL",
                (*item_ids, owner),
            )
            return int(cur.rowcount)

    def release_claims(self, owners: Sequence[str], now: datetime) -> int:
        """Let the claims of ``owners`` (nodes known dead) on messages and deliveries
        lapse now rather than in minutes: a restarted daemon takes its predecessor's
        unsent messages over at once, where they would hold their channel's queue."""
        if not owners:
            return 0
        marks = ", ".join("?" for _ in owners)
        released = 0
        with self._tx() as db:
            for table, unsettled in (
                ("outbox", "sent_at IS NULL AND permanent = 0"),
                ("deliveries", "status IN ('pending', 'retrying')"),
            ):
                cur = db.execute(
                    f"UPDATE {table} SET claim_expires_at = ? "
                    f"WHERE claimed_by IN ({marks}) AND claim_expires_at > ? AND {unsettled}",
                    (ts(now), *owners, ts(now)),
                )
                released += int(cur.rowcount)
        return released

    def _outbox_lock(self) -> str:
        """Row locks for the claim where the engine has them: the PostgreSQL store
        sets ``_candidate_lock`` for its slot claims; SQLite has neither the syntax
        nor the need (one writer at a time)."""
        return " FOR UPDATE OF o SKIP LOCKED" if self._candidate_lock else ""

    def count_resent(self, item_ids: Sequence[int]) -> None:
        if not item_ids:
            return
        with self._tx() as db:
            for item_id in item_ids:
                row = db.execute(
                    "UPDATE outbox SET resent = resent + 1 WHERE id = ? RETURNING channel_key",
                    (item_id,),
                ).fetchone()
                if row is not None:
                    db.execute(
                        "UPDATE channels SET resent = resent + 1 WHERE channel_key = ?", (row[0],)
                    )

    def mark_sent(self, item_id: int, now: datetime, owner: str | None = None) -> bool:
        owned, params = _owned(owner)
        with self._tx() as db:
            row = db.execute(
                "UPDATE outbox SET sent_at = ? WHERE id = ? AND sent_at IS NULL "
                f"AND permanent = 0{owned} RETURNING channel_key",
                (ts(now), item_id, *params),
            ).fetchone()
            if row is None:
                return False
            # The first send through after failures: when the channel came back. Its
            # return is told by a later look, when more sends may have gone through;
            # read from last_ok_at, the outage lasted until the last of them (probe).
            db.execute(
                "INSERT INTO meta (key, value) SELECT ?, ? FROM channels "
                "WHERE channel_key = ? AND failing_since IS NOT NULL "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (BACK_MARK + row[0], repr(ts(now)), row[0]),
            )
            db.execute(
                "UPDATE channels SET last_ok_at = ?, failing_since = NULL, broken = 0 "
                "WHERE channel_key = ?",
                (ts(now), row[0]),
            )
            return True

    def mark_failed(
        self,
        item_id: int,
        error: str,
        next_attempt_at: datetime | None,
        permanent: bool,
        now: datetime,
        owner: str | None = None,
    ) -> bool:
        owned, params = _owned(owner)
        with self._tx() as db:
            row = db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
                "permanent = ?, claimed_by = NULL, claim_expires_at = NULL "
                f"WHERE id = ? AND sent_at IS NULL AND permanent = 0{owned} "
                "RETURNING channel_key",
                (error, ts(next_attempt_at), int(permanent), item_id, *params),
            ).fetchone()
            if row is None:
                return False
            db.execute(
                "UPDATE channels SET last_error = ?, last_error_at = ?, "
                "failing_since = COALESCE(failing_since, ?), broken = ?, "
                "undeliverable = undeliverable + ? WHERE channel_key = ?",
                (error, ts(now), ts(now), int(permanent), int(permanent), row[0]),
            )
            return True

    def retire_channels(
        self, keep: Sequence[str], move_to: Sequence[tuple[str, str]], now: datetime
    ) -> int:
        """Channels that are no longer configured (not in ``keep``): each unsent message
        of theirs is queued on the ``move_to`` channels (key, url) that do not hold it
        yet, keeping its time written, and given up on the old channel; their rows go,
        so `health` no longer reports them. An owner who replaced a broken channel
        would otherwise never read what it could not take, and be told for good that a
        channel they removed fails. With no ``move_to`` channel, a channel that still
        holds unsent messages is kept as it is. Returns how many messages were moved."""
        kept = set(keep)
        with self._tx() as db:
            gone = [
                r[0]
                for r in db.execute("SELECT channel_key FROM channels").fetchall()
                if r[0] not in kept
            ]
            if not gone:
                return 0
            moved = 0
            for chunk in chunks(gone, 200):
                marks = ", ".join("?" for _ in chunk)
                rows = db.execute(
                    "SELECT id, message, created_at, channel_key FROM outbox WHERE "
                    f"sent_at IS NULL AND permanent = 0 AND channel_key IN ({marks}) ORDER BY id",
                    tuple(chunk),
                ).fetchall()
                if not move_to:
                    # no channel left to take them (`notify: []`): they stay with their
                    # channel, tried as before, until the config names one (probe: they
                    # were given up, and the log said they went through the config's)
                    waiting = {r[3] for r in rows}
                    chunk = [key for key in chunk if key not in waiting]
                    rows = []
                    if not chunk:
                        continue
                    marks = ", ".join("?" for _ in chunk)
                for row_id, message, created_at, _key in rows:
                    for key, url in move_to:
                        if db.execute(
                            "SELECT 1 FROM outbox WHERE channel_key = ? AND message = ? LIMIT 1",
                            (key, message),
                        ).fetchone():
                            continue  # the message went to that channel too
                        db.execute(
                            "INSERT INTO outbox (channel_key, channel_url, message, created_at, "
                            "next_attempt_at) VALUES (?, ?, ?, ?, ?)",
                            (key, url, message, created_at, ts(now)),
                        )
                        db.execute(
                            "INSERT INTO channels (channel_key) VALUES (?) "
                            "ON CONFLICT (channel_key) DO NOTHING",
                            (key,),
                        )
                    db.execute(
                        "UPDATE outbox SET permanent = 1, next_attempt_at = NULL, last_error = ? "
                        "WHERE id = ?",
                        ("its channel was removed from the config", row_id),
                    )
                    moved += 1
                db.execute(f"DELETE FROM channels WHERE channel_key IN ({marks})", tuple(chunk))
                # and its marks in meta, or one per channel ever configured (a token
                # rotated makes a new key) stays for good (soak probe)
                db.execute(
                    f"DELETE FROM meta WHERE key IN ({', '.join('?' for _ in chunk * 2)})",
                    tuple(mark + key for key in chunk for mark in (CHANNEL_DOWN_MARK, BACK_MARK)),
                )
            return moved

    def channel_health(self) -> list[ChannelHealth]:
        rows = self._q(
            "SELECT c.channel_key, c.last_ok_at, c.last_error, c.last_error_at, "
            "(SELECT COUNT(*) FROM outbox o WHERE o.channel_key = c.channel_key "
            " AND o.sent_at IS NULL AND o.permanent = 0), "
            "c.failing_since, c.broken, c.undeliverable, c.resent, "
            f"(SELECT MIN(o.created_at) FROM outbox o WHERE {_UNSENT_OF_C}), "
            f"(SELECT o.claimed_by FROM outbox o WHERE {_UNSENT_OF_C} ORDER BY o.id LIMIT 1), "
            "(SELECT o.claim_expires_at FROM outbox o "
            f"WHERE {_UNSENT_OF_C} ORDER BY o.id LIMIT 1), "
            "(SELECT m.value FROM meta m WHERE m.key = ? || c.channel_key) "
            "FROM channels c ORDER BY c.channel_key",
            (BACK_MARK,),
        )
        return [
            ChannelHealth(
                channel_key=r[0],
                last_ok_at=dt(r[1]),
                last_error=r[2],
                last_error_at=dt(r[3]),
                pending=int(r[4]),
                failing_since=dt(r[5]),
                broken=bool(r[6]),
                undeliverable=int(r[7]),
                resent=int(r[8]),
                waiting_since=dt(r[9]),
                head_claim=(str(r[10]), dt_req(r[11])) if r[10] and r[11] is not None else None,
                back_at=dt(float(r[12])) if r[12] else None,
            )
            for r in rows
        ]

    # ---- deliveries --------------------------------------------------------------
    def _create_deliveries(
        self, db: Conn, slot_id: int, task: str, outcome: AttemptOutcome, now: datetime
    ) -> None:
        for target, key in outcome.deliver_to:
            db.execute(
                "INSERT INTO deliveries (slot_id, task, target, target_key, output_path, status, "
                "next_attempt_at, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?) "
                "ON CONFLICT (slot_id, target) DO NOTHING",
                (slot_id, task, target, key, outcome.output_path, ts(now), ts(now), ts(now)),
            )
        db.execute("UPDATE slots SET delivery_status = 'pending' WHERE id = ?", (slot_id,))

    def due_deliveries(self, now: datetime, limit: int) -> list[Delivery]:
        rows = self._q(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status IN ('pending', 'retrying') "
            "AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
            (ts(now), limit),
        )
        return [delivery_from_row(r) for r in rows]

    def claim_deliveries(
        self, owner: str, now: datetime, claim_until: datetime, limit: int
    ) -> list[Delivery]:
        """Read the due, unclaimed (or lapsed) deliveries and take them in one
        transaction, as :meth:`claim_outbox` does: atomic under SQLite's write lock;
        on PostgreSQL the rows are locked as they are read, skipping those another
        node is taking, and rechecked on their newest version, so a delivery claimed
        or settled since this statement's snapshot is left alone."""
        lock = " FOR UPDATE SKIP LOCKED" if self._candidate_lock else ""
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries "
                "WHERE status IN ('pending', 'retrying') AND next_attempt_at <= ? "
                "AND (claimed_by IS NULL OR claim_expires_at <= ?) "
                f"ORDER BY next_attempt_at, id LIMIT ?{lock}",
                (ts(now), ts(now), limit),
            ).fetchall()
            for chunk in chunks([r[0] for r in rows], 500):
                db.execute(
                    "UPDATE deliveries SET claimed_by = ?, claim_expires_at = ? "
                    f"WHERE id IN ({', '.join('?' for _ in chunk)})",
                    (owner, ts(claim_until), *chunk),
                )
        return [delivery_from_row(r) for r in rows]

    def deliveries(self, slot_id: int | None = None, limit: int = 100) -> list[Delivery]:
        sql = f"SELECT {DELIVERY_COLUMNS} FROM deliveries"
        params: list[Any] = []
        if slot_id is not None:
            sql += " WHERE slot_id = ?"
            params.append(slot_id)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [delivery_from_row(r) for r in self._q(sql, params)]

    def redeliver(
        self, slot_id: int, now: datetime, incidents: Sequence[Incident] = ()
    ) -> list[Delivery]:
        with self._tx() as db:
            rows = db.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, "
                "updated_at = ?, claimed_by = NULL, claim_expires_at = NULL "
                f"WHERE slot_id = ? AND status = 'failed' RETURNING {DELIVERY_COLUMNS}",
                (ts(now), ts(now), slot_id),
            ).fetchall()
            if rows:
                _settle_slot_delivery(db, slot_id)
                _write_incidents(db, incidents)
        return [delivery_from_row(r) for r in rows]

    def update_delivery(
        self,
        delivery_id: int,
        status: DeliveryStatus,
        attempts: int,
        next_attempt_at: datetime | None,
        error: str | None,
        now: datetime,
        owner: str | None = None,
    ) -> bool:
        """Record a delivery attempt, release the row's claim and recompute its slot's
        ``delivery_status``: failed if any target failed for good, retrying/pending
        while any is still trying, else delivered. With ``owner`` it is a
        compare-and-set on the claim (see :func:`_owned`)."""
        owned, params = _owned(owner)
        with self._tx() as db:
            row = db.execute(
                "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, "
                "last_error = ?, updated_at = ?, claimed_by = NULL, claim_expires_at = NULL "
                f"WHERE id = ?{owned} RETURNING slot_id",
                (status.value, attempts, ts(next_attempt_at), error, ts(now), delivery_id, *params),
            ).fetchone()
            if row is None:
                return False
            _settle_slot_delivery(db, row[0])
            return True


def _write_incidents(db: Conn, changed: Sequence[Incident]) -> list[Incident]:
    """Insert (id None) or update ``changed`` in the caller's transaction; with ids."""
    saved: list[Incident] = []
    for inc in changed:
        values = incident_values(inc)
        if inc.id is None:
            cur = db.execute(
                f"INSERT INTO incidents ({INCIDENT_COLUMNS_NO_ID}) VALUES "
                f"({', '.join('?' for _ in values)}) RETURNING id",
                values,
            )
            saved.append(replace(inc, id=int(cur.fetchone()[0])))
        else:
            # An acknowledgement made meanwhile (the API, another thread) is kept:
            # this copy was read before it.
            sets = ", ".join(
                f"{c} = COALESCE({c}, ?)" if c.startswith("acknowledged_") else f"{c} = ?"
                for c in (c.strip() for c in INCIDENT_COLUMNS_NO_ID.split(","))
            )
            db.execute(f"UPDATE incidents SET {sets} WHERE id = ?", (*values, inc.id))
            saved.append(inc)
    return saved


def _settle_slot_delivery(db: Conn, slot_id: int) -> None:
    """The slot's ``delivery_status`` from its targets': failed if any failed for good,
    retrying or pending while any is still trying, else delivered."""
    rows = db.execute("SELECT status FROM deliveries WHERE slot_id = ?", (slot_id,)).fetchall()
    states = {r[0] for r in rows}
    for candidate in ("failed", "retrying", "pending", "delivered"):
        if candidate in states:
            db.execute("UPDATE slots SET delivery_status = ? WHERE id = ?", (candidate, slot_id))
            break
