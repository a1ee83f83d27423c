"""Sending a digest: many waiting messages of one channel in one post.

What goes in a post, and how it reads, is :mod:`agentcron.notify.digest`; this is how the
outbox sender takes the messages behind a channel's head, sends them as one post, marks
them, and what it does when the channel does not take it: a digest that may have
arrived goes again as it was (same members, same key, by this process or the next
start); one that failed otherwise is followed by the head alone, which tells a channel
that is down from one that refuses such posts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from agentcron.clock import Clock
from agentcron.durations import format_duration
from agentcron.faultlog import FaultLog
from agentcron.model import Message, OutboxItem
from agentcron.model.outbox import rate_limited
from agentcron.notify.channels import (
    STILL_SENDING,
    Channel,
    SendResult,
    SizedChannel,
    may_have_arrived,
)
from agentcron.notify.digest import (
    DIGEST_MOST,
    LEAST_ROOM,
    digest,
    digest_key,
    oldest,
    sent_with,
    size_sent_with,
)
from agentcron.notify.late import late
from agentcron.notify.outbox import CUT_SHORT_KEPT
from agentcron.redact import redact
from agentcron.store.base import OutboxStore

log = logging.getLogger("agentcron.notify.sender")

# A channel that refused a digest for good gets its messages one by one this long; a
# digest failing within REFUSED_WITHIN of a message that went through alone after the
# last failed digest is taken for such a refusal (see DigestSending._digest_failed).
NO_DIGEST_FOR = timedelta(hours=1)
REFUSED_WITHIN = timedelta(minutes=10)


class DigestSending:
    """The digest part of :class:`agentcron.notify.sender.OutboxSender`, which supplies
    the store, the clock, the claims and the single sends this part uses."""

    owner: str
    stopping_since: datetime | None
    _store: OutboxStore
    _clock: Clock
    _claim_for: timedelta
    _faults: FaultLog
    _unrecorded: dict[int, tuple[OutboxItem, SendResult]]
    _cut_short: set[int]

    def _channel(self, url: str) -> Channel:
        raise NotImplementedError

    async def _send_now(
        self, item: OutboxItem, post: tuple[Message, str] | None = None
    ) -> SendResult:
        raise NotImplementedError

    async def _send_single(self, item: OutboxItem) -> int:
        raise NotImplementedError

    def _record(self, item: OutboxItem, result: SendResult) -> int:
        raise NotImplementedError

    def _lost_claim(self, item: OutboxItem) -> None:
        raise NotImplementedError

    def _count_sent_again(self, items: Sequence[OutboxItem], result: SendResult) -> None:
        raise NotImplementedError

    def _init_digests(self, digest_at: int | None) -> None:
        if digest_at is not None and digest_at < 2:
            raise ValueError("digest_at must be at least 2 (or None: no digests)")
        self._digest_at = digest_at
        # channels that get no digest until a time; heads whose digest may have arrived,
        # with its size (sent again as it was); channels whose digest failed, whose next
        # head goes alone; and channels whose digest failed though a message went
        # through alone since (since when)
        self._no_digest: dict[str, datetime] = {}
        self._digest_of: dict[int, int] = {}
        self._alone: set[str] = set()
        self._refused: dict[str, datetime] = {}

    def _went_alone(self, item: OutboxItem, result: SendResult) -> None:
        """A message sent alone: through, after a digest that failed, it shows the
        channel takes messages; the next digest tells whether it refuses digests."""
        if item.channel_key in self._alone and result.ok:
            self._alone.discard(item.channel_key)
            self._refused[item.channel_key] = self._clock.now()

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
        self._count_sent_again(items, result)
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
        if rate_limited(result.error):
            # the service asked for fewer posts, not for smaller ones: tried again as a
            # digest after its backoff. Sent alone instead, a channel answering 429 to
            # every other post got its messages one post each, six minutes for sixty
            # (outside-in probe)
            return self._record(head, result)
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
