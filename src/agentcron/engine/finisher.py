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

from agentcron.model import Slot
from agentcron.store.base import Finish, Store

log = logging.getLogger("agentcron.engine")

MAX_BATCH = 500  # a longer transaction would hold SQLite's write lock for CLI writers


class Finisher:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._waiting: list[tuple[Finish, asyncio.Future[Slot | None]]] = []
        self._flush_queued = False

    async def finish(self, item: Finish) -> Slot | None:
        """Record ``item``; the slot as it now stands, or None when it is no longer ours."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Slot | None] = loop.create_future()
        self._waiting.append((item, future))
        if not self._flush_queued:
            self._flush_queued = True
            loop.call_soon(self._flush)
        # Shielded: a run cancelled while its record is queued must still see it
        # written (the flush does not look at who is still waiting).
        return await asyncio.shield(future)

    def _flush(self) -> None:
        self._flush_queued = False
        waiting, self._waiting = self._waiting, []
        for start in range(0, len(waiting), MAX_BATCH):
            self._write(waiting[start : start + MAX_BATCH])

    def _write(self, batch: list[tuple[Finish, asyncio.Future[Slot | None]]]) -> None:
        try:
            slots = self._store.finish_many([item for item, _ in batch])
        except Exception as exc:
            if len(batch) > 1:
                for pair in batch:  # one bad record must not cost the others theirs
                    self._write([pair])
                return
            log.exception("could not record the end of slot %s", batch[0][0].slot_id)
            if not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return
        for (_, future), slot in zip(batch, slots, strict=True):
            if not future.done():
                future.set_result(slot)
