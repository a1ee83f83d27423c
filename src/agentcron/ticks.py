"""Each daemon's last completed tick, written to the database.

A process can be alive while its scheduler is stuck (a blocked loop) or failing (a
database away): its heartbeat says nothing about that. Every few seconds, from
inside a completed tick (the engine's housekeeping runs only while ticks work),
the time is recorded for this node, so the API, the dashboard and ``/metrics`` read
"the scheduler last ticked N seconds ago" from the database, whichever process
serves them, including a stuck daemon's own API thread.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from agentcron.faultlog import FaultLog
from agentcron.store._api_sql import ApiStore

log = logging.getLogger("agentcron.ticks")

RECORD_EVERY = timedelta(seconds=5)
# Entries of nodes no longer recorded are removed this often, not at every record (an
# idle daemon wrote that statement at every beat: issue 16).
TIDY_EVERY = timedelta(minutes=10)


class TickRecorder:
    """``engine.housekeeping.append(TickRecorder(store, node_id))``."""

    def __init__(self, store: ApiStore, node_id: str, every: timedelta = RECORD_EVERY) -> None:
        self.store = store
        self.node_id = node_id
        self.every = every
        self._last: datetime | None = None
        self._tidied: datetime | None = None
        self._faults = FaultLog(log, "recording the scheduler's last tick")
        self.__name__ = "record the last tick"

    def __call__(self, now: datetime) -> None:
        if self._last is not None and now - self._last < self.every:
            return
        tidy = self._tidied is None or now - self._tidied >= TIDY_EVERY
        try:
            self.store.record_tick(self.node_id, now, tidy=tidy)
        except Exception as exc:  # the tick's own reads will meet it too and say so
            self._faults.failed(exc)
            return
        self._faults.ok()
        self._last = now
        if tidy:
            self._tidied = now
