"""The durable outbox: the contract between notifying and sending.

A notification is written to the outbox in the same breath as the incident that
caused it, and sent later by :class:`agentcron.notify.sender.OutboxSender`. So a
channel outage (or a daemon restart in the middle of one) delays messages and
never loses them, and sending never holds up the scheduler.

Ordering is per channel: only a channel's oldest unsent message (its head of
line) is ever handed out, so "story failed" cannot arrive after "story
recovered" on the same chat, while one broken channel does not hold up others.

Implementations: :class:`agentcron.notify.memory.MemoryOutbox` (tests, quick
experiments) and the SQL stores. All times are aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from agentcron.notify.messages import Message


@dataclass(frozen=True)
class OutboxItem:
    """One message for one channel. ``attempts`` counts failed sends so far."""

    id: int
    channel_key: str
    channel_url: str
    message: Message
    created_at: datetime
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class ChannelHealth:
    """What ``doctor`` says about a channel.

    ``failing_since`` is the first failure since the last success (None when the
    channel works or was never tried); ``broken`` is true when the last failure
    was permanent (the URL can never work as it is); ``undeliverable`` counts the
    messages given up for that reason, which stay visible here.
    """

    channel_key: str
    last_ok_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    pending: int
    failing_since: datetime | None
    broken: bool = False
    undeliverable: int = 0

    @property
    def ok(self) -> bool:
        return self.failing_since is None and not self.broken


class OutboxStore(Protocol):
    def enqueue(self, channel_key: str, channel_url: str, message: Message, now: datetime) -> int:
        """Store a message to send as soon as possible; return its id.

        Ids increase with every call, so within a channel they give the order."""
        ...

    def due(self, now: datetime, limit: int) -> list[OutboxItem]:
        """Head-of-line items whose ``next_attempt_at`` is absent or ``<= now``.

        At most one item per channel: the oldest unsent, not permanently failed
        one (if that one is not due yet, the channel has nothing due). Oldest
        first, at most ``limit``."""
        ...

    def mark_sent(self, item_id: int, now: datetime) -> None:
        """The item was delivered: it leaves the queue and its channel is healthy."""
        ...

    def mark_failed(
        self,
        item_id: int,
        error: str,
        next_attempt_at: datetime | None,
        permanent: bool,
        now: datetime,
    ) -> None:
        """A send failed: count the attempt and record ``error`` on the item and its
        channel (``failing_since`` keeps its first value). A passing failure is due
        again at ``next_attempt_at``; a permanent one is never handed out again but
        stays counted in the channel's ``undeliverable``."""
        ...

    def channel_health(self) -> list[ChannelHealth]:
        """Every channel that has had a message, by key."""
        ...
