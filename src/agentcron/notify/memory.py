"""An outbox in memory: the reference behaviour of :class:`OutboxStore`.

It ships with the product so tests and experiments need no database, and its
code states the contract the SQL implementations must match.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from agentcron.model import ChannelHealth, Message, OutboxItem


@dataclass
class _Row:
    item: OutboxItem
    state: str = "pending"  # pending | sent | failed (permanently)
    sent_at: datetime | None = None
    claimed_by: str | None = None  # kept once sent: who sent it
    claim_expires_at: datetime | None = None


@dataclass
class _Channel:
    last_ok_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    failing_since: datetime | None = None
    broken: bool = False
    resent: int = 0


class MemoryOutbox:
    """Thread-safe, so a test may read it while the sender runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[int, _Row] = {}
        self._channels: dict[str, _Channel] = {}
        self._next_id = 1

    def enqueue(self, channel_key: str, channel_url: str, message: Message, now: datetime) -> int:
        with self._lock:
            item_id = self._next_id
            self._next_id += 1
            self._rows[item_id] = _Row(
                OutboxItem(
                    id=item_id,
                    channel_key=channel_key,
                    channel_url=channel_url,
                    message=message,
                    created_at=now,
                    next_attempt_at=now,
                )
            )
            self._channels.setdefault(channel_key, _Channel())
            return item_id

    def due(self, now: datetime, limit: int) -> list[OutboxItem]:
        with self._lock:
            return self._due(now)[:limit]

    def _due(self, now: datetime) -> list[OutboxItem]:
        heads: dict[str, OutboxItem] = {}
        for item_id in sorted(self._rows):
            row = self._rows[item_id]
            if row.state == "pending" and row.item.channel_key not in heads:
                heads[row.item.channel_key] = row.item
        ready = [
            item
            for item in heads.values()
            if item.next_attempt_at is None or item.next_attempt_at <= now
        ]
        ready.sort(key=lambda item: (item.created_at, item.id))
        return ready

    def claim_outbox(
        self, owner: str, now: datetime, claim_until: datetime, limit: int
    ) -> list[OutboxItem]:
        with self._lock:
            taken: list[OutboxItem] = []
            for head in self._due(now):
                row = self._rows[head.id]
                if self._held(row, now):
                    continue  # another sender has it
                taken.append(self._take(row, owner, claim_until))
                if len(taken) == limit:
                    break
            return taken

    def claim_outbox_behind(
        self,
        head: OutboxItem,
        owner: str,
        now: datetime,
        claim_until: datetime,
        limit: int,
        at_least: int,
    ) -> list[OutboxItem]:
        with self._lock:
            run: list[_Row] = []
            for item_id in sorted(i for i in self._rows if i > head.id):
                row = self._rows[item_id]
                if row.state != "pending" or row.item.channel_key != head.channel_key:
                    continue
                if self._held(row, now) or len(run) == limit:
                    break  # the run ends before a message another claim holds
                run.append(row)
            if len(run) < at_least:
                return []
            return [self._take(row, owner, claim_until) for row in run]

    @staticmethod
    def _held(row: _Row, now: datetime) -> bool:
        """Whether a live claim holds ``row``."""
        return row.claimed_by is not None and (
            row.claim_expires_at is None or row.claim_expires_at > now
        )

    def _take(self, row: _Row, owner: str, claim_until: datetime) -> OutboxItem:
        """Claim ``row`` for ``owner``; a lapsed claim is taken over (``resent``)."""
        taken_over = row.claimed_by is not None
        if taken_over:
            row.item = replace(row.item, resent=row.item.resent + 1)
            self._channels[row.item.channel_key].resent += 1
        row.claimed_by, row.claim_expires_at = owner, claim_until
        return replace(row.item, taken_over=taken_over)

    def unclaim_outbox(self, item_ids: Sequence[int], owner: str) -> int:
        with self._lock:
            count = 0
            for item_id in item_ids:
                row = self._pending(item_id, owner)
                if row is not None:
                    row.claimed_by, row.claim_expires_at = None, None
                    count += 1
            return count

    def _pending(self, item_id: int, owner: str | None) -> _Row | None:
        """The row, if it still waits to be sent and (given an owner) is claimed by it."""
        row = self._rows.get(item_id)
        if row is None or row.state != "pending":
            return None
        return row if owner is None or row.claimed_by == owner else None

    def count_resent(self, item_ids: Sequence[int]) -> None:
        with self._lock:
            for item_id in item_ids:
                row = self._rows.get(item_id)
                if row is not None:
                    row.item = replace(row.item, resent=row.item.resent + 1)
                    self._channels[row.item.channel_key].resent += 1

    def mark_sent(self, item_id: int, now: datetime, owner: str | None = None) -> bool:
        with self._lock:
            row = self._pending(item_id, owner)
            if row is None:
                return False
            row.state, row.sent_at = "sent", now
            channel = self._channels[row.item.channel_key]
            channel.last_ok_at, channel.failing_since, channel.broken = now, None, False
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
        with self._lock:
            row = self._pending(item_id, owner)
            if row is None:
                return False
            row.item = replace(
                row.item,
                attempts=row.item.attempts + 1,
                next_attempt_at=next_attempt_at,
                last_error=error,
            )
            row.claimed_by, row.claim_expires_at = None, None
            if permanent:
                row.state = "failed"
            channel = self._channels[row.item.channel_key]
            channel.last_error, channel.last_error_at = error, now
            channel.failing_since = channel.failing_since or now
            channel.broken = permanent
            return True

    def channel_health(self) -> list[ChannelHealth]:
        with self._lock:
            return [
                ChannelHealth(
                    channel_key=key,
                    last_ok_at=channel.last_ok_at,
                    last_error=channel.last_error,
                    last_error_at=channel.last_error_at,
                    pending=self._count(key, "pending"),
                    failing_since=channel.failing_since,
                    broken=channel.broken,
                    undeliverable=self._count(key, "failed"),
                    resent=channel.resent,
                    waiting_since=self._waiting_since(key),
                    head_claim=self._head_claim(key),
                )
                for key, channel in sorted(self._channels.items())
            ]

    # ---- for tests and `doctor`-style inspection --------------------------------
    def items(self) -> list[tuple[OutboxItem, str]]:
        """Every item with its state (pending, sent or failed), in enqueue order."""
        with self._lock:
            return [(self._rows[i].item, self._rows[i].state) for i in sorted(self._rows)]

    def _unsent(self, key: str) -> list[_Row]:
        rows = [r for i, r in sorted(self._rows.items()) if r.item.channel_key == key]
        return [r for r in rows if r.state == "pending"]

    def _waiting_since(self, key: str) -> datetime | None:
        return min((r.item.created_at for r in self._unsent(key)), default=None)

    def _head_claim(self, key: str) -> tuple[str, datetime] | None:
        unsent = self._unsent(key)
        head = unsent[0] if unsent else None
        if head is None or head.claimed_by is None or head.claim_expires_at is None:
            return None
        return head.claimed_by, head.claim_expires_at

    def _count(self, key: str, state: str) -> int:
        return sum(
            1 for row in self._rows.values() if row.item.channel_key == key and row.state == state
        )
