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
import logging
import os
import secrets
import socket
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from agentcron.beats import Sleeper, when_to_wake
from agentcron.clock import Clock, SystemClock
from agentcron.config._env import env_file_generation, has_placeholder
from agentcron.durations import format_duration
from agentcron.faultlog import ESCALATE_AFTER, FaultLog
from agentcron.model import Message, OutboxItem
from agentcron.notify.channels import (
    STILL_SENDING,
    Channel,
    KeyedChannel,
    SendResult,
    SizedChannel,
    channel_for,
    may_have_arrived,
    unanswered,
)
from agentcron.notify.digest import (
    DIGEST_AT,
    DIGEST_MOST,
    LEAST_ROOM,
    digest,
    digest_key,
    oldest,
    sent_with,
    size_sent_with,
)
from agentcron.notify.outbox import idempotency_key
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
# A message sent this long after it was written says so: after a channel outage its
# "Retrying at 20:45" arrived 80 s past that time, beside the recovery, unmarked
LATE_AFTER = timedelta(minutes=2)
# How long a claimed message stays ours: a send's limit plus room for the store
# writes around it and for clocks of different nodes that disagree a little.
CLAIM_FOR = timedelta(seconds=SEND_LIMIT + 60)
# A channel that refused a digest for good gets its messages one by one this long; a
# digest failing within REFUSED_WITHIN of a message that went through alone after the
# last failed digest is taken for such a refusal (see OutboxSender._digest_failed).
NO_DIGEST_FOR = timedelta(hours=1)
REFUSED_WITHIN = timedelta(minutes=10)
# A channel's posts in a minute, at most: beyond, its messages wait and go out together
# (see OutboxSender._within_rate); within, each goes as it comes.
POSTS_PER_MINUTE = 10
CUT_SHORT_KEPT = 1_000  # ids of sends a stop cut short, remembered for its last drain


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


class OutboxSender:
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
    ) -> None:
        if not backoff:
            raise ValueError("backoff needs at least one delay")
        if claim_for <= timedelta(seconds=SEND_LIMIT):
            raise ValueError(f"claim_for must outlast a send ({SEND_LIMIT:g}s)")
        if digest_at is not None and digest_at < 2:
            raise ValueError("digest_at must be at least 2 (or None: no digests)")
        self._digest_at = digest_at  # see agentcron.notify.digest
        if posts_per_minute is not None and posts_per_minute < 1:
            raise ValueError("posts_per_minute must be at least 1 (or None: no bound)")
        self._posts_per_minute = posts_per_minute
        self._posted: dict[str, deque[datetime]] = {}  # each channel's posts, last minute
        self._paced: set[str] = set()  # channels held back by that bound now
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
        # digests (see agentcron.notify.digest): channels that get none until a time;
        # heads whose digest may have arrived, with its size (sent again as it was);
        # channels whose digest failed, whose next head goes alone; and channels whose
        # digest failed though a message went through alone since
        self._no_digest: dict[str, datetime] = {}
        self._digest_of: dict[int, int] = {}
        self._alone: set[str] = set()
        self._refused: dict[str, datetime] = {}  # since when
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

    async def drain_once(self, written_since: datetime | None = None) -> int:
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
        (outside-in probe)."""
        delivered = self._settle_unrecorded()
        while True:
            now = self._clock.now()
            items = self._store.claim_outbox(self.owner, now, now + self._claim_for, self._batch)
            since = written_since or self.stopping_since
            if since is not None:
                cut = self._cut_short
                left = [i.id for i in items if i.created_at < since and i.id not in cut]
                if left:  # handed back untouched: not "taken over" at the next start
                    self._store.unclaim_outbox(left, self.owner)
                items = [i for i in items if i.id not in left]
            else:
                items = self._within_rate(items, now)
            if not items:
                return delivered
            sent = sum(await asyncio.gather(*(self._send(item) for item in items)))
            delivered += sent
            if not sent:
                return delivered

    def _within_rate(self, items: list[OutboxItem], now: datetime) -> list[OutboxItem]:
        """``items`` but those of channels that had :attr:`posts_per_minute` posts in the
        last minute, handed back untouched: they wait, and what comes meanwhile waits
        with them, to go out as one digest when the minute allows. Sent as they came,
        200 tasks failing over half a minute made 200 posts on a channel that was never
        behind (outside-in probe), and chat services limit a chat to 20 a minute."""
        cap = self._posts_per_minute
        if cap is None:
            return items
        held: list[int] = []
        for item in items:
            posted = self._posted.get(item.channel_key)
            while posted and now - posted[0] >= timedelta(minutes=1):
                posted.popleft()
            if posted is None or len(posted) < cap:
                continue
            held.append(item.id)
            if item.channel_key not in self._paced:  # said once a time it is held
                self._paced.add(item.channel_key)
                log.info(
                    "%s had %d posts in the last minute: its messages wait, to go out "
                    "together when the minute allows",
                    item.channel_key,
                    cap,
                    extra={"event": "notify.paced"},
                )
        if held:
            self._store.unclaim_outbox(held, self.owner)
        return [i for i in items if i.id not in held]

    def _posted_now(self, key: str) -> None:
        if self._posts_per_minute is not None:
            self._posted.setdefault(key, deque()).append(self._clock.now())
            self._paced.discard(key)

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

        A wake (a message enqueued here) drains at once. Otherwise the sender looks on
        the daemon's beat (``interval``, see :mod:`agentcron.beats`) for what announces
        itself to nobody: a retry whose time came, a claim that lapsed, a message
        another process or node enqueued. That look is a read; the claim, a write, is
        made only when something waits."""
        woken = True  # the first pass drains whatever a previous daemon left
        sleeper = Sleeper(stop, self._wake)
        try:
            while not stop.is_set():
                work = self.drain_once if woken else self._look
                await self._faults.run_pass(work, hold, escalate_after)
                await sleeper.until(when_to_wake(interval))
                woken = self._wake.is_set()
                self._wake.clear()
        finally:
            sleeper.close()

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
            if item.channel_key in self._alone and result.ok:
                # it takes messages: the digest before was refused, or met an outage;
                # the next one tells which (see _digest_failed)
                self._alone.discard(item.channel_key)
                self._refused[item.channel_key] = self._clock.now()
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

    def _waiting_behind(self, head: OutboxItem) -> list[OutboxItem]:
        """The messages to send in one post with ``head`` (:mod:`.digest`), claimed. A
        digest of ``head`` that may have arrived (no answer, a stop cut it short) is
        sent again with the same members, so its key is the same and a receiver can
        drop the repeat; else up to :data:`DIGEST_MOST`. None while a stop drains (but
        for such a repeat), for a channel that refused digests lately, or right after a
        digest failed (the head goes alone: whether the channel takes messages at all).
        A store that cannot say sends ``head`` alone (and its fault is logged)."""
        now = self._clock.now()
        key = head.channel_key
        again = self._digest_of.get(head.id) or size_sent_with(head.last_error)
        if self._digest_at is None or (self.stopping_since is not None and again is None):
            return []
        if again is None and (
            self._no_digest.get(key, now) > now
            or key in self._alone
            # sent alone with no answer: it goes again as itself, under its own key (in
            # a digest, a service that had taken it showed it twice: outside-in probe)
            or may_have_arrived(head.last_error)
        ):
            return []
        most, least = (again - 1, again - 1) if again else (DIGEST_MOST - 1, self._digest_at - 1)
        try:
            behind = self._store.claim_outbox_behind(
                head, self.owner, now, now + self._claim_for, most, least
            )
        except Exception as exc:
            self._faults.failed(exc)
            return []
        if not behind:
            self._digest_of.pop(head.id, None)
        elif not self._room_for_digests(head):
            self._store.unclaim_outbox([i.id for i in behind], self.owner)
            return []
        return behind

    def _room_for_digests(self, head: OutboxItem) -> bool:
        """Whether ``head``'s channel posts enough for a digest to be worth it: an SMS
        service's 160 characters made a digest of several parts. Remembered: such a
        channel gets none for :data:`NO_DIGEST_FOR`."""
        channel = self._channel(head.channel_url)
        room = channel.post_room(head.message) if isinstance(channel, SizedChannel) else None
        if room is None or room >= LEAST_ROOM:
            return True
        self._no_digest[head.channel_key] = self._clock.now() + NO_DIGEST_FOR
        return False

    async def _send_digest(self, head: OutboxItem, behind: list[OutboxItem]) -> int:
        """Send ``head`` and ``behind`` as one post; see :meth:`_digest_failed` for a
        digest the channel did not take."""
        items = [head, *behind]
        try:
            post = self._digest_post(items)
        except Exception:  # a bug of ours must not hold the messages: one by one, then
            log.exception(
                "could not put %d notifications to %s in one post; they are sent one by one",
                len(items),
                head.channel_key,
            )
            self._refuse_digests(head.channel_key)
            with contextlib.suppress(Exception):
                self._store.unclaim_outbox([i.id for i in behind], self.owner)
            return await self._send_single(head)
        try:
            result = await self._send_now(head, post)
        except asyncio.CancelledError:
            # all of it may be on its way: a stop's last drain (or the next sender)
            # sends the same post again, with the same key (see _waiting_behind)
            self._remember_digest(head, len(items))
            if len(self._cut_short) >= CUT_SHORT_KEPT:
                self._cut_short.clear()
            self._cut_short.update(i.id for i in items)
            raise
        over = [i.id for i in items if i.taken_over]
        if over and result.error != STILL_SENDING:
            log.warning(
                "%d notifications to %s were sent again in one post: the sender that had "
                "them stopped without saying whether they went out (they may arrive twice)",
                len(over),
                head.channel_key,
                extra={"event": "notify.resent"},
            )
        if result.ok:
            self._digest_of.pop(head.id, None)
            self._refused.pop(head.channel_key, None)
            return self._record_digest_sent(items, result)
        try:
            return self._digest_failed(head, behind, result)
        except Exception as exc:
            # the claims lapse (taken over then); the head's answer is kept to record
            self._unrecorded[head.id] = (head, result)
            self._faults.failed(exc)
            return 0

    def _digest_failed(self, head: OutboxItem, behind: list[OutboxItem], result: SendResult) -> int:
        """A digest the channel did not take. It may have arrived (no answer): retried
        as it was, same members, same key. Refused for good: one by one from now on,
        for :data:`NO_DIGEST_FOR`. Otherwise the head is retried alone, with backoff:
        Apprise cannot tell a service's refusal of this post (too long, say: a 400
        answered again at every retry held the channel for good, outside-in probe) from
        a service that is down. A head that then goes through alone shows the channel
        works; if the next digest fails too, the channel gets no digest for a while."""
        key = head.channel_key
        self._store.unclaim_outbox([i.id for i in behind], self.owner)
        if may_have_arrived(result.error):
            # kept on the message too, for the next start: it sends the same members
            # again under the same key, not a new post holding them (outside-in probe)
            self._remember_digest(head, len(behind) + 1)
            noted = sent_with(result.error or "", len(behind) + 1)
            return self._record(head, replace(result, error=noted))
        self._digest_of.pop(head.id, None)
        went_alone = self._refused.pop(key, None)
        if result.permanent or (went_alone and self._clock.now() - went_alone < REFUSED_WITHIN):
            self._store.unclaim_outbox([head.id], self.owner)
            self._refuse_digests(key)
            log.warning(
                "%s did not take %d notifications in one post (%s) though it takes them one "
                "at a time; they are sent one by one for %s",
                key,
                len(behind) + 1,
                redact(result.error or "unknown error"),
                format_duration(NO_DIGEST_FOR),
                extra={"event": "notify.digest_refused"},
            )
            return 0
        self._alone.add(key)
        return self._record(head, result)

    def _remember_digest(self, head: OutboxItem, size: int) -> None:
        if len(self._digest_of) >= CUT_SHORT_KEPT:
            self._digest_of.clear()  # a bound: a few at most wait so
        self._digest_of[head.id] = size

    def _refuse_digests(self, key: str) -> None:
        self._no_digest[key] = self._clock.now() + NO_DIGEST_FOR
        self._refused.pop(key, None)
        self._alone.discard(key)

    def _digest_post(self, items: list[OutboxItem]) -> tuple[Message, str]:
        """The digest of ``items`` as their channel posts it whole, and its key."""
        post = digest(items)
        channel = self._channel(items[0].channel_url)
        room = channel.post_room(post) if isinstance(channel, SizedChannel) else None
        if room is not None:
            post = digest(items, room)
        return late(post, oldest(items), self._clock.now(), "the oldest"), digest_key(items)

    def _record_digest_sent(self, items: list[OutboxItem], result: SendResult) -> int:
        now = self._clock.now()
        sent = 0
        for item in items:
            try:
                if self._store.mark_sent(item.id, now, self.owner):
                    sent += 1
                else:
                    self._lost_claim(item)
            except Exception as exc:  # recorded when the database works again
                self._unrecorded[item.id] = (item, result)
                self._faults.failed(exc)
        log.info(
            "%d notifications sent to %s in one post",
            len(items),
            items[0].channel_key,
            extra={"event": "notify.sent"},
        )
        return sent

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
            self._posted_now(item.channel_key)
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
    """``item``'s message, with a last line saying how late it goes out when it was
    written :data:`LATE_AFTER` or more before ``now`` (a channel outage, a daemon
    that was down): its times and "Retrying at …" may have passed meanwhile."""
    return late(item.message, item.created_at, now)


def late(message: Message, written: datetime, now: datetime, what: str = "") -> Message:
    """``message``, written at ``written``, as sent at ``now`` (see :func:`as_sent`);
    ``what``: of a digest, which of its messages was written then ("the oldest")."""
    by = now - written
    if by < LATE_AFTER:
        return message
    note = (
        f"(sent {format_duration(by)} after {what} was written: they could not go out sooner)"
        if what
        else f"(sent {format_duration(by)} after it was written: it could not go out sooner)"
    )
    return replace(message, body=f"{message.body}\n\n{note}")
