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
from typing import Any

from agentcron.model import OutboxItem

# How many ids of sends a stop cut short a sender remembers (for the stop's last drain,
# which sends them again): a stop cuts a few at most.
CUT_SHORT_KEPT = 1_000


def idempotency_key(item: OutboxItem) -> str:
    """The key a receiver can deduplicate on: the same for every send of one outbox
    row (retries, and a resend after a sender died), different for any other row.

    The row id alone would repeat across databases (a second deployment, a fresh
    one after a reset) posting to the same endpoint, so a digest of what the row
    holds is appended; nothing in it is secret (the message is already redacted
    and the URL is left out)."""
    return stable_key(
        str(item.id), [item.channel_key, item.created_at.isoformat(), item.message.to_dict()]
    )


def stable_key(row: str, parts: list[Any]) -> str:
    """``agentcron-ROW-DIGEST``: a row's id and a digest of what it holds (``parts``,
    nothing secret), the same on every send of that row (see :func:`idempotency_key`;
    a delivery of an output is keyed the same way)."""
    content = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    return f"agentcron-{row}-{digest}"
