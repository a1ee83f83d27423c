"""At most so many posts a minute to one channel; beyond, messages wait together.

Sent as they came, 200 tasks failing over half a minute made 200 posts on a channel
that was never behind (outside-in probe), and chat services limit a chat to about 20
a minute. A channel that had :data:`POSTS_PER_MINUTE` posts in the last minute has its
messages handed back untouched: they wait, what comes meanwhile waits with them, and
they go out as one digest (:mod:`agentcron.notify.digest`) when the minute allows.
Each sender (each node) counts its own posts.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta

from agentcron.model import OutboxItem

log = logging.getLogger("agentcron.notify.sender")

# A channel's posts in a minute, at most: beyond, its messages wait and go out together;
# within, each goes as it comes.
POSTS_PER_MINUTE = 10


class Pacer:
    """Counts each channel's posts over the last minute (``per_minute``; None: no bound)."""

    def __init__(self, per_minute: int | None = POSTS_PER_MINUTE) -> None:
        if per_minute is not None and per_minute < 1:
            raise ValueError("posts_per_minute must be at least 1 (or None: no bound)")
        self.per_minute = per_minute
        self._posted: dict[str, deque[datetime]] = {}
        self._held: set[str] = set()  # channels held back now (said once a time)

    def held(self, items: Sequence[OutboxItem], now: datetime) -> list[int]:
        """The ids of ``items`` whose channel had its posts for the minute: to wait."""
        cap = self.per_minute
        if cap is None:
            return []
        held: list[int] = []
        for item in items:
            posted = self._posted.get(item.channel_key)
            while posted and now - posted[0] >= timedelta(minutes=1):
                posted.popleft()
            if posted is None or len(posted) < cap:
                continue
            held.append(item.id)
            if item.channel_key not in self._held:
                self._held.add(item.channel_key)
                log.info(
                    "%s had %d posts in the last minute: its messages wait (paced), to "
                    "go out together when the minute allows",
                    item.channel_key,
                    cap,
                    extra={"event": "notify.paced"},
                )
        return held

    def posted(self, key: str, now: datetime) -> None:
        """A post went out to ``key`` at ``now``."""
        if self.per_minute is not None:
            self._posted.setdefault(key, deque()).append(now)
            self._held.discard(key)
