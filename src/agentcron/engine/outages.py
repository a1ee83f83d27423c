"""The engine's own outage: ticks that fail (the database away, a full disk).

A failing tick is logged and tried again with backoff; once the failures have
lasted ``outage_notice_after`` the outage is announced to ``on_outage``. Its end is
held until the database has worked for ``recovery_hold``, a write included, so a
database that comes and goes is one outage told once each way; what the ticks of the
gaps recorded is told with that end. The last outages are kept, for the reasons of
slots recorded missed after them.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from agentcron.clock import Clock
from agentcron.store.base import Store

from . import health
from .health import LoopHealth, Outage
from .settings import EngineSettings, TickReport

log = logging.getLogger("agentcron.engine")

RENEWAL_GRACE = timedelta(seconds=6)  # longer than the longest backoff between failed ticks

# Told when ticks have failed long enough to be news, and when they work again
# (with the report of the first tick that worked).
OutageListener = Callable[[Outage], None]
RecoveryListener = Callable[[Outage, datetime, TickReport], None]


class TickOutages:
    """What the engine's failing and working ticks mean to the owner (see the module)."""

    def __init__(
        self, store: Store, clock: Clock, settings: EngineSettings, loop_health: LoopHealth
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.health = loop_health
        self.on_outage: list[OutageListener] = []
        self.on_recovery: list[RecoveryListener] = []
        # an announced outage that ended, its "available again" held (recovery_hold):
        # (the outage, when ticks worked again, the first tick's report)
        self._healing: tuple[Outage, datetime, TickReport] | None = None
        # what the first ticks of earlier gaps of the held outage recorded: a recovery
        # said "No slot came due meanwhile" after a gap's tick had recorded 63 missed
        self._carried: TickReport | None = None
        # the last outages (outage, when ticks worked again): what kept slots from
        # running, for the reasons of slots recorded missed after them
        self.past: deque[tuple[Outage, datetime]] = deque(maxlen=20)
        # After an outage of our own, other nodes' leases are not taken over until then:
        # a shared outage lapsed theirs too, and they need a renewal to say they live.
        self.recover_after: datetime | None = None

    def settled(self, now: datetime) -> bool:
        """Whether ticks work and have for long enough to take other nodes' runs over."""
        return self.health.outage is None and (
            self.recover_after is None or now >= self.recover_after
        )

    def worked(self, report: TickReport) -> None:
        """A pass whose tick worked: an outage going on ends (its end held, if told)."""
        outage, self.health.outage = self.health.outage, None
        if outage is not None:
            self._recovered(outage, report)

    def healing(self) -> bool:
        return self._healing is not None

    def hold_left(self) -> float:
        """Seconds until the held end of an announced outage may be told: the database
        must work for ``recovery_hold`` (30 s) first, a write included (a full disk lets
        reads, and an idle tick, through), so one that comes and goes is one outage, not
        a message each way. Then :meth:`tell_recovered_if_writes`."""
        assert self._healing is not None
        back_at = self._healing[1]
        return (back_at + self.settings.recovery_hold - self.clock.now()).total_seconds()

    def at_stop(self) -> None:
        """The database worked until the stop: its held end is told if it takes a write."""
        if self._healing is None:
            return
        refused = self.tell_recovered_if_writes()
        if refused is not None:
            # still held, so still told (see :meth:`told`): the daemon keeps it in its
            # trouble file for the next start to tell its end
            log.warning("the database refused a write at the stop (%s): still away", refused)

    def tell_recovered_if_writes(self) -> Exception | None:
        """Tell the held outage's end if the database takes a write (then it is no
        longer held); else the write's error, the outage still held."""
        assert self._healing is not None
        try:
            health.probe_write(self.store)
        except Exception as exc:
            return exc
        (outage, back_at, report), self._healing = self._healing, None
        for listener in self.on_recovery:
            try:
                listener(outage, back_at, report)
            except Exception:
                log.exception("recovery listener failed")
        return None

    def failed(
        self,
        exc: Exception,
        partial: TickReport | None,
        pass_began: datetime,
        good_pass_began: datetime | None,
    ) -> float:
        """A pass failed with ``exc`` after its tick recorded ``partial``; the seconds
        until the next try."""
        now = self.clock.now()
        previous = self.health.outage
        if previous is None and self._healing is not None:
            # back for less than recovery_hold: the outage the owner was told of goes
            # on (its start, its notice), with no "available again" for the gap; what
            # the gap's first tick recorded is told with the end that holds
            previous, _, held = self._healing
            self._healing, self._carried = None, plus(self._carried, held)
        if partial is not None and partial != TickReport():
            # what this failing pass's tick recorded before it failed: "This node had no
            # slot to record" beside its own report of 3 missed runs (outside-in probe)
            self._carried = plus(self._carried, partial)
        # An outage begins when the first failing pass began: a call that waited out
        # a busy timeout before failing was already meeting the fault.
        outage = health.after_failure(previous, exc, pass_began, good_pass_began)
        if health.should_log(outage, now):
            if outage.failures == 1:
                log.exception("tick failed; trying again with backoff")
            else:
                log.error(
                    "ticks have failed since %s (%d in a row), latest: %s",
                    outage.since.isoformat(timespec="seconds"),
                    outage.failures,
                    outage.error,
                )
            outage = replace(outage, logged_at=now)
        if health.should_announce(outage, now, self.settings.outage_notice_after):
            outage = replace(outage, announced=True)
            for listener in self.on_outage:
                try:
                    listener(outage)
                except Exception:
                    log.exception("outage listener failed")
        self.health.outage = outage
        delay = health.backoff(outage.failures)
        if not outage.announced:  # look again when the notice falls due, not after it
            due_in = (outage.since + self.settings.outage_notice_after - now).total_seconds()
            delay = min(delay, max(0.05, due_in))
        return delay

    def told(self) -> Outage | None:
        """The outage the owner was told of and has not yet been told is over: going
        on, or back for less than ``recovery_hold`` (what `health` should say too)."""
        outage = self.health.outage
        if outage is not None and outage.announced:
            return outage
        return self._healing[0] if self._healing is not None else None

    def healing_since(self) -> datetime | None:
        """When ticks worked again after the outage being held (see :meth:`hold_left`), or
        None when none is held."""
        return self._healing[1] if self._healing is not None else None

    def covering(self, at: datetime) -> Outage | None:
        """The outage (going on, or among the last ones) during which ``at`` came due."""
        current = self.health.outage
        if current is not None and current.covers(at):
            return current
        for outage, ended in reversed(self.past):
            if outage.covers(at) and at <= ended:
                return outage
        return None

    def _recovered(self, outage: Outage, report: TickReport) -> None:
        now = self.clock.now()
        self.past.append((outage, now))
        self.recover_after = now + max(self.settings.lease / 3, RENEWAL_GRACE)
        log.warning(
            "ticks work again after %d failure(s) since %s",
            outage.failures,
            outage.since.isoformat(timespec="seconds"),
        )
        if outage.announced:  # told when it has held (hold_left), with every gap's slots
            self._healing = (outage, now, plus(self._carried, report))
        self._carried = None


def plus(carried: TickReport | None, report: TickReport) -> TickReport:
    """Two ticks' reports as one (the counts added)."""
    if carried is None:
        return report
    return TickReport(
        **{
            name: getattr(carried, name) + getattr(report, name)
            for name in TickReport.__dataclass_fields__
        }
    )
