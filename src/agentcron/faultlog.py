"""Logging a fault that repeats, without drowning the log.

A part that retries every second through a database outage would log a
traceback a second (the chaos soak counted 5,411 in 30 s). :class:`FaultLog`
logs the first failure of a streak with its traceback, then one line every few
minutes while it lasts, and one line when the part works again, so the journal
says when it began, that it went on, and when it ended.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

REPEAT_EVERY = 300.0  # seconds between reminders while a streak lasts
# A part that fails on its own this long hands the fault to the supervisor (which
# tells the owner and restarts it) instead of retrying quietly for ever.
ESCALATE_AFTER = 60.0


class FaultLog:
    def __init__(
        self,
        log: logging.Logger,
        what: str,
        repeat_every: float = REPEAT_EVERY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.what = what  # "outbox drain", "node heartbeat", …
        self.repeat_every = repeat_every
        self._monotonic = monotonic
        self.failures = 0
        self.last_error: BaseException | None = None  # the streak's latest failure
        self._since = 0.0
        self._logged = 0.0

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def lasted(self) -> float:
        """Seconds since the streak's first failure (0 when there is none)."""
        return self._monotonic() - self._since if self.failures else 0.0

    def failed(self, exc: BaseException) -> None:
        now = self._monotonic()
        first = self.failures == 0
        if first:  # before the count: a reader on another thread sees a whole streak
            self._since = self._logged = now
        self.last_error = exc
        self.failures += 1
        if first:
            self.log.error(
                "%s failed; trying again (logged once, then every %.0f min while it lasts)",
                self.what,
                self.repeat_every / 60,
                exc_info=exc,
            )
        elif now - self._logged >= self.repeat_every:
            self._logged = now
            self.log.error(
                "%s still failing: %d failures in %.0fs, latest %s: %s",
                self.what,
                self.failures,
                now - self._since,
                type(exc).__name__,
                exc,
            )

    def ok(self) -> None:
        if self.failures:
            self.log.warning(
                "%s works again after %d failure(s) in %.0fs",
                self.what,
                self.failures,
                self._monotonic() - self._since,
            )
        self.failures = 0
        self.last_error = None

    async def run_pass(
        self,
        work: Callable[[], Awaitable[object]],
        hold: Callable[[], bool],
        escalate_after: float = ESCALATE_AFTER,
    ) -> None:
        """One pass of a part's loop: ``work()`` unless ``hold()`` says the database is
        known to be away (each try would wait out its busy timeout, for nothing). A
        failure is logged as a streak; one that lasts ``escalate_after`` while the
        database is not known to be away is this part's own fault and is raised, so the
        supervisor tells the owner, restarts the part, and ends the daemon if that
        keeps happening."""
        try:
            if not hold():
                await work()
        except Exception as exc:
            self.failed(exc)
            if self.lasted() >= escalate_after and not hold():
                self.ok()
                raise
        else:
            self.ok()
