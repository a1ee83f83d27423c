"""Group commit for the ends of runs.

When a burst of runs ends in one pass of the event loop, recording each in its own
transaction costs more than the runs themselves (a commit, a lock round trip, a
fresh read of the slot). Runs hand their outcome to :class:`Finisher` and await it;
everything handed in before the loop gets round to the flush is written in one
:meth:`~agentcron.store.base.Store.finish_many` transaction. A lone run waits for
nothing: the flush is the next callback on the loop, not a timer.
"""

from __future__ import annotations

import asyncio
import logging
import time

from agentcron.model import Finish, Slot
from agentcron.store.base import Store

log = logging.getLogger("agentcron.engine")

MAX_BATCH = 500  # a longer transaction would hold SQLite's write lock for CLI writers
RETRY_FIRST = 0.25  # seconds before a failed write is tried again; doubles each time
RETRY_MAX = 10.0


class Finisher:
    """Records ends of runs, together when they come together, and never drops one.

    A write that fails (the database locked past its busy timeout, a lost PostgreSQL
    connection, a full disk) is tried again with backoff until it is recorded; the
    runs wait for it, so the engine keeps holding them (and renewing their leases),
    and listeners hear of each end once it is in the database. A batch that keeps
    failing is split, so one record the database refuses cannot hold up the others.
    """

    def __init__(self, store: Store, retry_first: float = RETRY_FIRST) -> None:
        self._store = store
        self._waiting: list[tuple[Finish, asyncio.Future[Slot | None]]] = []
        self._flush_queued = False
        self._retry_first = retry_first
        self.failing_since: float | None = None  # monotonic; read by tests and health
        self.failures = 0
        self.last_error: Exception | None = None  # while writes fail: the engine's health
        self._retry: asyncio.TimerHandle | None = None  # the next try after a failure

    @property
    def backlog(self) -> int:
        return len(self._waiting)

    async def finish(self, item: Finish) -> Slot | None:
        """Record ``item``; the slot as it now stands, or None when it is no longer ours."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Slot | None] = loop.create_future()
        self._waiting.append((item, future))
        if not self._flush_queued:
            self._flush_queued = True
            loop.call_soon(self._flush)
        # Not shielded, though a run cancelled while its record is queued must still
        # see it written: the flush writes every queued end whoever still waits (a
        # cancelled waiter's future is just not given the slot). A shield would cost
        # each run a second future and a pass of the loop.
        return await future

    def _flush(self) -> None:
        self._flush_queued = False
        waiting, self._waiting = self._waiting, []
        failed: list[tuple[Finish, asyncio.Future[Slot | None]]] = []
        for start in range(0, len(waiting), MAX_BATCH):
            failed += self._write(waiting[start : start + MAX_BATCH])
        if not failed:
            if self.failing_since is not None:
                log.warning(
                    "ends of runs are recorded again after %d failed write(s)", self.failures
                )
            self.failing_since, self.failures, self.last_error = None, 0, None
            return
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        # Tried again before anything handed in since: the oldest ends first.
        self._waiting = failed + self._waiting
        delay = min(RETRY_MAX, self._retry_first * 2 ** min(self.failures - 1, 10))
        if not self._flush_queued:
            self._flush_queued = True
            self._retry = asyncio.get_running_loop().call_later(delay, self._flush)

    def abandon(self) -> int:
        """Drop the ends still waiting to be written (a stop that waits no longer):
        written later, with no one left to hear of them, they would be told to no one.
        Their runs stay running in the database, for the next start to recover."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        waiting, self._waiting = self._waiting, []
        self._flush_queued = False
        return len(waiting)

    def _write(
        self, batch: list[tuple[Finish, asyncio.Future[Slot | None]]]
    ) -> list[tuple[Finish, asyncio.Future[Slot | None]]]:
        """Write ``batch``; what could not be written, to be tried again."""
        try:
            slots = self._store.finish_many([item for item, _ in batch])
        except Exception as exc:
            self.last_error = exc
            if self.failures == 0:  # once per outage, with the cause; then quietly
                log.exception(
                    "could not record the end of %d run(s); trying again until it is recorded",
                    len(batch),
                )
            if len(batch) == 1:
                return batch
            first = self._write_one(batch[0])
            if first and self._write_one(batch[1]):
                return batch  # two alone refused: the database itself, all wait for it
            # One went in alone: some record is refused (the first, perhaps). One at a
            # time, so that one does not keep the others out.
            failed: list[tuple[Finish, asyncio.Future[Slot | None]]] = list(first)
            for pair in batch[1 if not first else 2 :]:
                failed += self._write_one(pair)
            return failed
        for (_, future), slot in zip(batch, slots, strict=True):
            if not future.done():
                future.set_result(slot)
        return []

    def _write_one(
        self, pair: tuple[Finish, asyncio.Future[Slot | None]]
    ) -> list[tuple[Finish, asyncio.Future[Slot | None]]]:
        try:
            slot = self._store.finish_many([pair[0]])[0]
        except Exception:
            return [pair]
        if not pair[1].done():
            pair[1].set_result(slot)
        return []
