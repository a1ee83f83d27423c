"""The durable outbox: the contract between notifying and sending.

A notification is written to the outbox in the same breath as the incident that
caused it, and sent later by :class:`agentcron.notify.sender.OutboxSender`. So a
channel outage (or a daemon restart in the middle of one) delays messages and
never loses them, and sending never holds up the scheduler.

Ordering is per channel: only a channel's oldest unsent message (its head of
line) is ever handed out, so "story failed" cannot arrive after "story
recovered" on the same chat, while one broken channel does not hold up others.

Each message is sent by one sender. Several nodes (and, after a restart, a
new process) may drain one outbox, so a sender first *claims* what it is about
to send (:meth:`OutboxStore.claim_outbox`): the claim is taken atomically, hides
the row from every other sender until it lapses, and the sender's
``mark_sent`` / ``mark_failed`` only land while the row is still its own. A
sender that dies mid-send leaves its claim to lapse; the row then goes out again.
That is the one duplicate window left (a crash between the channel's answer and
the mark), and each such resend is counted (``ChannelHealth.resent``); the
message carries the same :func:`idempotency_key` both times, so a receiver that
honours it can drop the repeat.

Implementations: :class:`agentcron.notify.memory.MemoryOutbox` (tests, quick
experiments) and the SQL stores. All times are aware UTC datetimes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from agentcron.notify.messages import Message


@dataclass(frozen=True)
class OutboxItem:
    """One message for one channel. ``attempts`` counts failed sends so far;
    ``resent`` how often it was handed out again because a sender's claim on it
    lapsed with neither a success nor a failure recorded (each may be a duplicate)."""

    id: int
    channel_key: str
    channel_url: str
    message: Message
    created_at: datetime
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    resent: int = 0


def idempotency_key(item: OutboxItem) -> str:
    """The key a receiver can deduplicate on: the same for every send of one outbox
    row (retries, and a resend after a sender died), different for any other row.

    The row id alone would repeat across databases (a second deployment, a fresh
    one after a reset) posting to the same endpoint, so a digest of what the row
    holds is appended; nothing in it is secret (the message is already redacted
    and the URL is left out)."""
    content = json.dumps(
        [item.channel_key, item.created_at.isoformat(), item.message.to_dict()],
        sort_keys=True,
        ensure_ascii=False,
    )
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    return f"agentcron-{item.id}-{digest}"


@dataclass(frozen=True)
class ChannelHealth:
    """What ``doctor`` says about a channel.

    ``failing_since`` is the first failure since the last success (None when the
    channel works or was never tried); ``broken`` is true when the last failure
    was permanent (the URL can never work as it is); ``undeliverable`` counts the
    messages given up for that reason, which stay visible here. ``resent`` counts
    the messages sent again after a sender's claim lapsed (possible duplicates).
    """

    channel_key: str
    last_ok_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    pending: int
    failing_since: datetime | None
    broken: bool = False
    undeliverable: int = 0
    resent: int = 0

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
        first, at most ``limit``. A look only: claims are ignored and nothing is
        taken; senders use :meth:`claim_outbox`."""
        ...

    def claim_outbox(
        self, owner: str, now: datetime, claim_until: datetime, limit: int
    ) -> list[OutboxItem]:
        """Take what :meth:`due` would list, minus the items another live claim holds,
        for ``owner`` until ``claim_until``: atomically, so two senders never get the
        same item while a claim stands. A channel whose head is claimed has nothing
        to give (its next message waits for the head: order is kept across senders).
        An item whose previous claim lapsed without a mark is taken over and its
        ``resent`` (and its channel's) goes up by one."""
        ...

    def mark_sent(self, item_id: int, now: datetime, owner: str | None = None) -> bool:
        """The item was delivered: it leaves the queue and its channel is healthy.

        With ``owner``, only if the item is still claimed by ``owner`` (a sender
        whose claim was taken over changes nothing); without, unconditionally (for
        callers that do not claim). True when something was written."""
        ...

    def mark_failed(
        self,
        item_id: int,
        error: str,
        next_attempt_at: datetime | None,
        permanent: bool,
        now: datetime,
        owner: str | None = None,
    ) -> bool:
        """A send failed: count the attempt and record ``error`` on the item and its
        channel (``failing_since`` keeps its first value). A passing failure is due
        again at ``next_attempt_at``; a permanent one is never handed out again but
        stays counted in the channel's ``undeliverable``. The claim is released (a
        retry is not a resend). ``owner`` as for :meth:`mark_sent`."""
        ...

    def channel_health(self) -> list[ChannelHealth]:
        """Every channel that has had a message, by key."""
        ...
