"""Telling the owner when agentcron's own machinery is what failed.

Ordinary messages go through the outbox, which lives in the database and is
drained by a sender on the scheduler loop. Neither can be counted on when the
database is away, the loop is wedged or the sender is the part that died, so
these messages go straight to each channel from the caller's thread, with a
bounded wait; a channel that cannot be reached gets the message through the
outbox later, if the outbox can be written. What neither path can deliver is
logged, so it is at least in the journal.

Messages that are in the outbox already (an overdue task, a stuck run, noticed by
the watchdog while the loop is stalled) take the other direct path: the
:class:`StandInSender` drains the outbox from the watchdog's thread. It claims
each message before sending it and marks it sent after, as the loop's sender
does, so the loop's sender, once it runs again, finds the message sent (or still
claimed, mid-send) and never sends it a second time; only a channel's oldest
message is ever claimed, so the order per channel holds across both senders.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from agentcron.clock import Clock
from agentcron.model import Message
from agentcron.redact import redact
from agentcron.store.base import OutboxStore

from .channels import Channel, channel_for, channel_key
from .sender import OutboxSender, default_owner

log = logging.getLogger("agentcron.notify")

DIRECT_TIMEOUT = 20.0  # seconds per channel: a stuck channel must not hold the caller


def daemon_message(
    title: str, body: str, kind: str, *, ok: bool = False, warning: bool = False
) -> Message:
    """A message about the daemon itself (no task): ``kind`` names the condition, so a
    channel or a filter can tell a database outage from a stalled loop. ``warning``:
    a problem that may pass by itself (severity ``warning`` rather than ``failure``)."""
    return Message(
        title=f"agentcron: {title}",
        body=body,
        task="",
        event="recovered" if ok else kind,
        incident_kind=kind,
        severity="recovery" if ok else ("warning" if warning else "failure"),
    )


def tell_owner_directly(
    targets: Sequence[str],
    message: Message,
    enqueue: Callable[[str, str, Message, datetime], object] | None = None,
    now: Callable[[], datetime] | None = None,
    channel_factory: Callable[[str], Channel] = channel_for,
) -> int:
    """Send ``message`` to every target now, from this thread; returns how many took it.

    Blocking (it runs its own event loop): call it from a thread, or through
    ``asyncio.to_thread`` on the loop. A target that fails is handed to ``enqueue``
    (the outbox) when given, and that failing too is logged, never raised.
    """
    sent = 0
    for target in targets:
        channel = channel_factory(target)
        try:
            result = asyncio.run(asyncio.wait_for(channel.send(message), DIRECT_TIMEOUT))
            ok, error = result.ok, result.error
        except Exception as exc:  # a channel bug or a timeout: the next path tries
            ok, error = False, f"{type(exc).__name__}: {exc}"
        if ok:
            sent += 1
            continue
        log.warning(
            "could not tell the owner through %s (%s): %s",
            channel.key,
            redact(str(error)),
            message.title,
        )
        if enqueue is None or now is None:
            continue
        try:
            enqueue(channel_key(target), target, message, now())
        except Exception as exc:
            log.error(
                "could not queue %r for %s either (%s); it is only in this log:\n%s",
                message.title,
                channel.key,
                redact(str(exc)),
                redact(message.body),
            )
    if not targets:  # the log is all there is: at ERROR, kept by a program's quiet logging
        log.error("no notify channel configured; %s:\n%s", message.title, redact(message.body))
    return sent


class StandInSender:
    """Sends the outbox from a thread while the loop's own sender cannot (the loop is
    stalled). Blocking: each :meth:`drain` runs its own event loop, on the caller's
    thread. Claims are taken as ``owner`` (``HOST:PID:RANDOM:watchdog`` by default),
    so the journal and a take-over tell its sends from the loop sender's."""

    def __init__(
        self,
        store: OutboxStore,
        clock: Clock,
        *,
        owner: str | None = None,
        channel_factory: Callable[[str], Channel] = channel_for,
    ) -> None:
        self.owner = owner or f"{default_owner()}:watchdog"
        self._sender = OutboxSender(
            store, channel_factory=channel_factory, clock=clock, owner=self.owner
        )

    def drain(self) -> int:
        """Send every message due now (each channel in order); returns how many were
        delivered. A channel that fails is retried with the outbox's backoff, by
        whichever sender runs first."""
        return asyncio.run(self._sender.drain_once())
