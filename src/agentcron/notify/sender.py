"""Sends what is in the outbox, patiently.

The sender is its own asyncio task. Channel I/O runs in threads and
subprocesses with timeouts (see :mod:`agentcron.notify.channels`), so a hung
chat platform costs this task a few seconds and the scheduler nothing. A failed
send reschedules that channel's head-of-line message with backoff (5 s, 15 s,
1 min, 5 min, 15 min, then every 30 min) and never drops it; a permanent failure
parks it where :meth:`OutboxStore.channel_health` shows it.

Several senders may drain one outbox (one per node, and a restarted daemon next to
the claims its dead predecessor left). Each claims what it sends under its own
``owner`` name and marks it with a compare-and-set on that claim, so a message is
sent by one of them; see :mod:`agentcron.notify.outbox` for the one window left.
A claim lasts ``claim_for``, longer than a send may take (``SEND_LIMIT``), so only
a sender that died (or hung past every limit) loses its claim.

Store calls are synchronous: they are short local writes, and the SQLite store
must be used from the thread that owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from agentcron.beats import Sleeper, when_to_wake
from agentcron.clock import Clock, SystemClock
from agentcron.config._env import env_file_generation, has_placeholder
from agentcron.faultlog import ESCALATE_AFTER, FaultLog
from agentcron.model import Message, OutboxItem
from agentcron.notify.channels import (
    STILL_SENDING,
    UNANSWERED,
    Channel,
    KeyedChannel,
    SendResult,
    channel_for,
    may_have_arrived,
    unanswered,
)
from agentcron.notify.digest import DIGEST_AT
from agentcron.notify.digest_sender import DigestSending
from agentcron.notify.late import late
from agentcron.notify.outbox import CUT_SHORT_KEPT, idempotency_key
from agentcron.notify.pacing import POSTS_PER_MINUTE, Pacer
from agentcron.redact import redact
from agentcron.store.base import OutboxStore

log = logging.getLogger(__name__)

# Then every minute for as long as it takes: the head of a channel's queue holds every
# message behind it, and a backoff that grew to 30 min kept a channel that was back
# silent for minutes (a chaos probe: 13 messages, the "node not heard from" among them,
# waited 5 min after the channel answered again). One call a minute to a channel that
# fails costs nothing beside that.
DEFAULT_BACKOFF: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(seconds=15),
    timedelta(minutes=1),
)
# A guard for channels that do not bound their own sends.
SEND_LIMIT = 120.0
# How long a claimed message stays ours: a send's limit plus room for the store
# writes around it and for clocks of different nodes that disagree a little.
CLAIM_FOR = timedelta(seconds=SEND_LIMIT + 60)
# A message written wakes the sender, which waits this long before it sends, so what the
# same moment writes (many tasks failing at once) goes out together.
GATHER = 1.0
# ... and, while messages keep coming within GATHER of each other, up to this long in all:
# 200 failures written over 1.5 s (runs ending 8 at a time) went as 10 posts in 0.3 s,
# spending the channel's posts for the minute, and the last 49 a minute later (probe).
GATHER_AT_MOST = 5.0


@runtime_checkable
class OutboxPeek(Protocol):
    """A store that can say, with a read, whether a message may be claimed now (the SQL
    stores can; a store without it is drained on every look)."""

    def outbox_waiting(self, now: datetime) -> bool: ...


def default_owner() -> str:
    """A sender name unique to this process and this sender: host and pid say where
    it ran; the random part keeps a restarted process with a reused pid (or a second
    sender in one process) from passing for the first."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class OutboxSender(DigestSending):
    def __init__(
        self,
        store: OutboxStore,
        channel_factory: Callable[[str], Channel] = channel_for,
        clock: Clock | None = None,
        backoff: Sequence[timedelta] = DEFAULT_BACKOFF,
        batch: int = 50,
        owner: str | None = None,
        claim_for: timedelta = CLAIM_FOR,
        digest_at: int | None = DIGEST_AT,
        posts_per_minute: int | None = POSTS_PER_MINUTE,
        gather: float = GATHER,
    ) -> None:
        if not backoff:
            raise ValueError("backoff needs at least one delay")
        if claim_for <= timedelta(seconds=SEND_LIMIT):
            raise ValueError(f"claim_for must outlast a send ({SEND_LIMIT:g}s)")
        self._init_digests(digest_at)  # see .digest_sender
        self._pacer = Pacer(posts_per_minute)
        self.gather = gather  # seconds a wake waits for the rest of its moment's messages
        self.owner = owner or default_owner()
        self._claim_for = claim_for
        self._store = store
        self._peek = store if isinstance(store, OutboxPeek) else None  # asked once
        self._factory = channel_factory
        self._clock: Clock = clock or SystemClock()
        self._backoff = tuple(backoff)
        self._batch = batch
        self._channels: dict[str, Channel] = {}
        self._env_generation = env_file_generation()  # the env file the channels saw
        self._wake = asyncio.Event()
        self._faults = FaultLog(log, "outbox drain")  # a database outage: logged once
        # answers of channels that the database could not record yet, by outbox id
        self._unrecorded: dict[int, tuple[OutboxItem, SendResult]] = {}
        # messages whose send a cancellation (a stop) cut short, by outbox id
        self._cut_short: set[int] = set()
        # set when the daemon's stop begins: from then on only what was written since
        # (and sends the stop cut short) is begun, by every drain (see drain_once)
        self.stopping_since: datetime | None = None

    def delay_after(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed send of one message."""
        return self._backoff[min(max(attempts, 1), len(self._backoff)) - 1]

    def cut_short(self) -> list[int]:
        """The messages whose send a cancellation (a stop) cut short, by outbox id."""
        return sorted(self._cut_short)

    def wake(self) -> None:
        """Drain now instead of at the next interval (call after enqueueing; from
        another thread use ``loop.call_soon_threadsafe(sender.wake)``)."""
        self._wake.set()

    async def drain_once(
        self, written_since: datetime | None = None, written_before: datetime | None = None
    ) -> int:
        """Send every due head-of-line message, channels in parallel, each channel in
        order (after a success its next message is sent in the same call). Returns
        how many were delivered. Each message is claimed first; one another sender
        holds is left to it. A round that delivers nothing ends the call, so a short
        backoff cannot keep it retrying a dead channel.

        ``written_since`` (a stop's last drain; :attr:`stopping_since` for every drain
        once the stop began): the messages written since then, and those whose send the
        stop cut short (they hold their channel), are sent; a channel whose head-of-line
        message is another is handed back untouched. A stop began a backlog message's
        send after "stopping", cut it short, and the next start sent it again
        (outside-in probe).

        ``written_before``: a message written after then is left for the next drain (a
        wake's, after its gather), not sent alone as soon as the message before it went:
        a moment's messages written while its first were being sent went one by one."""
        delivered = self._settle_unrecorded()
        while True:
            now = self._clock.now()
            items = self._store.claim_outbox(self.owner, now, now + self._claim_for, self._batch)
            if written_before is not None and self.stopping_since is None:
                # a time further ahead is another clock's (a node's that runs ahead):
                # not left, or a trickle of wakes would hold it for as long as it lasts
                ahead = written_before + timedelta(seconds=GATHER_AT_MOST)
                later = [i.id for i in items if written_before < i.created_at <= ahead]
                if later:
                    self._store.unclaim_outbox(later, self.owner)
                    items = [i for i in items if i.id not in later]
            since = written_since or self.stopping_since
            if since is not None:
                cut = self._cut_short
                left = [i.id for i in items if i.created_at < since and i.id not in cut]
                if left:  # handed back untouched: not "taken over" at the next start
                    self._store.unclaim_outbox(left, self.owner)
                items = [i for i in items if i.id not in left]
            else:  # beyond a channel's posts for the minute: it waits (see .pacing)
                held = self._pacer.held(items, now)
                if held:
                    self._store.unclaim_outbox(held, self.owner)
                    items = [i for i in items if i.id not in held]
            if not items:
                return delivered
            sent = sum(await asyncio.gather(*(self._send(item) for item in items)))
            delivered += sent
            if not sent:
                return delivered

    async def run_forever(
        self,
        stop: asyncio.Event,
        interval: float = 1.0,
        hold: Callable[[], bool] = lambda: False,
        escalate_after: float = ESCALATE_AFTER,
    ) -> None:
        """Drain until ``stop`` is set; a failing store or channel is logged, not fatal.
        While ``hold()`` says the database is known to be away, no drain is tried: each
        try would wait out the busy timeout on the loop's thread, for nothing.

        A wake (a message enqueued here) drains :attr:`gather` seconds later. Otherwise
        the sender looks on the daemon's beat (``interval``, see :mod:`agentcron.beats`)
        for what announces itself to nobody: a retry whose time came, a claim that lapsed, a message
        another process or node enqueued. That look is a read; the claim, a write, is
        made only when something waits."""
        woken = True  # the first pass drains whatever a previous daemon left
        sleeper = Sleeper(stop, self._wake)
        try:
            while not stop.is_set():
                gathered = self._clock.now() if woken and self.gather > 0 else None
                work = (
                    functools.partial(self.drain_once, written_before=gathered)
                    if woken
                    else self._look
                )
                await self._faults.run_pass(work, hold, escalate_after)
                await sleeper.until(when_to_wake(interval))
                woken = self._wake.is_set()
                if woken and self.gather > 0 and self.stopping_since is None:
                    # the messages of one moment are written over a few hundred ms (30
                    # recoveries at once went as 4 posts, the first alone: probe), or
                    # longer when runs end a few at a time; they are let gather, for
                    # as long as they keep coming (see GATHER_AT_MOST), to go out
                    # together (see .digest)
                    await self._gather(stop)
                self._wake.clear()
        finally:
            sleeper.close()

    async def _gather(self, stop: asyncio.Event) -> None:
        """Wait :attr:`gather` seconds, and again while a message came meanwhile, up to
        :data:`GATHER_AT_MOST` in all."""
        loop = asyncio.get_running_loop()
        until = loop.time() + max(self.gather, GATHER_AT_MOST)
        while (left := until - loop.time()) > 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(self.gather, left))
            if stop.is_set() or not self._wake.is_set():
                return  # quiet for a gather: the moment is over

    async def _look(self) -> int:
        """The periodic look: drain only when the store says something is claimable."""
        peek = self._peek
        if peek is not None and not self._unrecorded and not peek.outbox_waiting(self._clock.now()):
            return 0
        return await self.drain_once()

    def _channel(self, url: str) -> Channel:
        generation = env_file_generation()
        if generation != self._env_generation:
            # a channel's URL is expanded when it is built: one whose variable the env
            # file changed (a rotated webhook password) kept sending with the old value
            # until a restart, its messages held (outside-in probe)
            self._env_generation = generation
            for written in [u for u in self._channels if has_placeholder(u)]:
                del self._channels[written]
        channel = self._channels.get(url)
        if channel is None:
            channel = self._channels[url] = self._factory(url)
        return channel

    async def _send(self, item: OutboxItem) -> int:
        behind = self._waiting_behind(item)
        if behind:
            return await self._send_digest(item, behind)
        return await self._send_single(item)

    async def _send_single(self, item: OutboxItem) -> int:
        try:
            result = await self._send_now(item)
            self._went_alone(item, result)
        except asyncio.CancelledError:
            if len(self._cut_short) >= CUT_SHORT_KEPT:
                self._cut_short.clear()  # a bound: a stop cuts a few at most
            self._cut_short.add(item.id)
            raise
        # Only a claim taken over: ``resent`` counts all of them, and a plain retry of
        # a message taken over once was said to be "sent again" at every attempt. Not
        # when the channel did not send it (its earlier send is still under way).
        if item.taken_over and result.error != STILL_SENDING:
            log.warning(
                "notification %d to %s was sent again: the sender that had it stopped "
                "without saying whether it went out (it may arrive twice)",
                item.id,
                item.channel_key,
                extra={"event": "notify.resent", "task": item.message.task},
            )
        self._count_sent_again([item], result)
        try:
            return self._record(item, result)
        except Exception as exc:
            # The channel answered but the database did not take the answer (disk full,
            # locked, connection lost). Our claim still hides the message from other
            # senders, so it is recorded as soon as the database works again, before
            # anything else is claimed: not left for the claim to lapse, which would
            # hold its channel's later messages back for minutes and send it twice.
            self._unrecorded[item.id] = (item, result)
            self._faults.failed(exc)
            return 0

    def _count_sent_again(self, items: Sequence[OutboxItem], result: SendResult) -> None:
        """Count in ``resent`` the messages of this send that went out again after a send
        of theirs that may have arrived (no answer in time, or cut short by a stop: the
        next daemon sent it as a plain retry, uncounted; outside-in probe). A claim taken
        over was counted when it was taken."""
        if result.earlier or not (result.ok or (result.error or "").startswith(UNANSWERED)):
            return  # refused, not sent (STILL_SENDING), or the first send's late answer
        again = [i for i in items if not i.taken_over and may_have_arrived(i.last_error)]
        if not again:
            return
        log.warning(
            "%d notification(s) to %s went out again after a send that may have arrived "
            "(they may arrive twice, under the same idempotency key)",
            len(again),
            again[0].channel_key,
            extra={"event": "notify.resent"},
        )
        try:
            self._store.count_resent([i.id for i in again])
        except Exception as exc:  # the count only: the sends are recorded as usual
            log.warning("could not count %d resent notification(s): %s", len(again), exc)

    async def _send_now(
        self, item: OutboxItem, post: tuple[Message, str] | None = None
    ) -> SendResult:
        """Send ``item``; or, given, ``post`` (a digest standing for ``item`` and the
        messages behind it, with its idempotency key) in its place."""
        try:
            channel = self._channel(item.channel_url)
            if post is None:
                message, key = as_sent(item, self._clock.now()), idempotency_key(item)
            else:
                message, key = post
            async with asyncio.timeout(SEND_LIMIT):
                if isinstance(channel, KeyedChannel):
                    result = await channel.send_keyed(message, key)
                else:
                    result = await channel.send(message)
        except TimeoutError:
            result = SendResult(ok=False, error=unanswered(SEND_LIMIT))
        except Exception as exc:  # a channel's bug must not lose the message
            result = SendResult(ok=False, error=redact(f"{type(exc).__name__}: {exc}"))
        if result.ok:
            self._pacer.posted(item.channel_key, self._clock.now())
        return result

    def _settle_unrecorded(self) -> int:
        """Record the answers the database could not take before; raises while it
        still cannot (nothing new is claimed meanwhile)."""
        delivered = 0
        for item_id, (item, result) in list(self._unrecorded.items()):
            delivered += self._record(item, result)
            del self._unrecorded[item_id]
        return delivered

    def _record(self, item: OutboxItem, result: SendResult) -> int:
        now = self._clock.now()
        if result.ok:
            if not self._store.mark_sent(item.id, now, self.owner):
                self._lost_claim(item)
                return 0
            log.info(
                "notification sent to %s",
                item.channel_key,
                extra={"event": "notify.sent", "task": item.message.task},
            )
            return 1
        error = redact(result.error or "unknown error")
        attempts = item.attempts + 1
        if result.permanent:
            if not self._store.mark_failed(item.id, error, None, True, now, self.owner):
                self._lost_claim(item)
                return 0
            log.error(
                "notification to %s cannot be delivered: %s",
                item.channel_key,
                error,
                extra={"event": "notify.undeliverable", "task": item.message.task},
            )
            return 0
        retry_at = now + self.delay_after(attempts)
        if not self._store.mark_failed(item.id, error, retry_at, False, now, self.owner):
            self._lost_claim(item)
            return 0
        log.warning(
            "notification to %s failed (attempt %d), retrying at %s: %s",
            item.channel_key,
            attempts,
            retry_at.isoformat(),
            error,
            extra={"event": "notify.send_failed", "task": item.message.task},
        )
        return 0

    def _lost_claim(self, item: OutboxItem) -> None:
        """Our claim lapsed during the send and another sender took the message over
        (or it was settled meanwhile): what we learnt is theirs to record now."""
        log.warning(
            "notification %d to %s was taken over by another sender while this one "
            "sent it (its claim of %s lapsed); it may arrive twice",
            item.id,
            item.channel_key,
            self._claim_for,
            extra={"event": "notify.claim_lost", "task": item.message.task},
        )


def as_sent(item: OutboxItem, now: datetime) -> Message:
    """``item``'s message as sent at ``now``, with a last line saying how late it goes
    out when it waited long (a channel outage, a daemon that was down): see
    :func:`agentcron.notify.late.late`."""
    return late(item.message, item.created_at, now)
