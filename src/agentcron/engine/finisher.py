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

from agentcron.engine.health import probe_write
from agentcron.model import Finish, Slot
from agentcron.store.base import Store
from agentcron.store.errors import StoreError, is_database_error

log = logging.getLogger("agentcron.engine")

MAX_BATCH = 500  # a longer transaction would hold SQLite's write lock for CLI writers
RETRY_FIRST = 0.25  # seconds before a failed write is tried again; doubles each time
RETRY_MAX = 10.0
REFUSED_TRIES = (
    3  # refusals of one record, by a database taking other writes, before it is given up
)

_Pair = tuple[Finish, "asyncio.Future[Slot | None]"]


class RecordRefused(StoreError):
    """The database refused the record of one run's end REFUSED_TRIES times while it
    took other writes. ``cause`` is its last refusal: the runner records a plain
    failure that names it in its place (see ``runner.execute``)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"the database refused the record of this run's end: {cause}")
        self.cause = cause


class Finisher:
    """Records ends of runs, together when they come together.

    A write that fails while the database is away (locked past its busy timeout, a
    lost PostgreSQL connection, a full disk: a small write of the finisher's own is
    refused too) is tried again with backoff until it is recorded; the runs wait for
    it, so the engine keeps holding them, and listeners hear of each end once it is in
    the database. When the database takes other writes, the batch is written one end
    at a time, so a record it refuses cannot hold up the others nor pass for an
    outage; one refused REFUSED_TRIES times is given up (:class:`RecordRefused`): its
    runner records a failure that says so instead, or, refused that too, its run is
    recorded lost when its lease lapses (told as any lost run is).
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
        self._refusals: dict[int, int] = {}  # by id of the Finish: refused alone so often

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
        failed: list[_Pair] = []
        away = False
        for start in range(0, len(waiting), MAX_BATCH):
            chunk = waiting[start : start + MAX_BATCH]
            if away:  # not tried: each try would wait out the database's timeout again
                failed += chunk
                continue
            left, away = self._write(chunk)
            failed += left
        if not failed:
            if self.failing_since is not None:
                log.warning(
                    "ends of runs are recorded again after %d failed write(s)", self.failures
                )
            self.failing_since, self.failures, self.last_error = None, 0, None
            return
        if away:
            self.failures += 1
            if self.failing_since is None:
                self.failing_since = time.monotonic()
        else:  # the database takes writes: only records of its own refusing are left
            self.failing_since, self.failures, self.last_error = None, 0, None
        # Tried again before anything handed in since: the oldest ends first.
        self._waiting = failed + self._waiting
        delay = min(RETRY_MAX, self._retry_first * 2 ** min(max(self.failures, 1) - 1, 10))
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
        self._refusals.clear()
        return len(waiting)

    def _write(self, batch: list[_Pair]) -> tuple[list[_Pair], bool]:
        """Write ``batch``: what could not be written, to be tried again, and whether
        the database itself is away (rather than some record of the batch refused)."""
        try:
            slots = self._store.finish_many([item for item, _ in batch])
        except Exception as exc:
            # an error of the database's state (locked, full, I/O, a lost connection)
            # is an outage whatever a small write of ours would say next; one about
            # the data (a value refused) is checked by that write
            if not _about_a_record(exc) or not self._takes_writes():
                self.last_error = exc
                if self.failures == 0:  # once per outage, with the cause; then quietly
                    log.exception(
                        "could not record the end of %d run(s); trying again until it is recorded",
                        len(batch),
                    )
                return batch, True  # the database itself: all wait for it
            # It takes a write of ours: some record of the batch is refused. One at a
            # time, so that one does not keep the others out.
            left = [(pair, error) for pair in batch if (error := self._write_one(pair))]
            return [pair for pair, error in left if not self._refused(pair, error)], False
        for (item, future), slot in zip(batch, slots, strict=True):
            self._refusals.pop(id(item), None)
            if not future.done():
                future.set_result(slot)
        return [], False

    def _takes_writes(self) -> bool:
        """Whether the database takes a small write of ours (a meta row), which tells a
        database that is away from one that refuses some record of a batch."""
        try:
            probe_write(self._store)
        except Exception:
            return False
        return True

    def _refused(self, pair: _Pair, exc: Exception) -> bool:
        """Count one refusal of ``pair``'s record by a database that takes other writes;
        at REFUSED_TRIES it is given up: its run's awaiting ends with
        :class:`RecordRefused`. Returns whether it was given up."""
        item, future = pair
        key = id(item)
        self._refusals[key] = self._refusals.get(key, 0) + 1
        if self._refusals[key] < REFUSED_TRIES:
            return False
        del self._refusals[key]
        log.error(
            "the database refused the record of slot %s's end %d times while taking other "
            "writes (%s); given up",
            item.slot_id,
            REFUSED_TRIES,
            exc,
        )
        if not future.done():
            future.set_exception(RecordRefused(exc))
        return True

    def _write_one(self, pair: _Pair) -> Exception | None:
        """Write one end alone; the error when it was refused."""
        try:
            slot = self._store.finish_many([pair[0]])[0]
        except Exception as exc:
            return exc
        self._refusals.pop(id(pair[0]), None)
        if not pair[1].done():
            pair[1].set_result(slot)
        return None


def _about_a_record(exc: Exception) -> bool:
    """Whether ``exc`` may be about the data written rather than the database's state:
    a value or a constraint refused (DataError, IntegrityError, ProgrammingError of
    the DB-API), or an error of no database at all. Locked, busy, full, I/O and
    connection errors (OperationalError and the like, OSError, timeouts) are not."""
    names = {kind.__name__ for kind in type(exc).__mro__}
    if names & {"DataError", "IntegrityError", "ProgrammingError"}:
        return True
    return not is_database_error(exc)
