"""Inline ``async def`` calls that hold the daemon's event loop, timed step by step.

An inline async function runs on the loop that schedules every task. One that blocks
(``time.sleep``, a blocking HTTP client, heavy work between awaits) holds them all:
fires due meanwhile were recorded missed, "agentcron was running but its scheduler was
late (a stalled loop or an overloaded machine)", and nothing named the task (outside-in
probe; the watchdog names the culprit only of a stall of 30 s or more).

So each such call is driven through :class:`Timed`, which times every step the loop
gives it (from one ``await`` that suspends to the next). A step of ``HOLD_NOTED`` or
more is a *hold*: logged (at most once per task per ``LOG_EVERY``, with a count of the
rest), and kept a while, per loop, so that a fire that came due during it is said to
be late because of that task (:meth:`LoopHolds.reason`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import weakref
from collections.abc import Awaitable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agentcron.durations import format_duration
from agentcron.schedules.zones import zone_label

log = logging.getLogger("agentcron.actions")

HOLD_NOTED = 1.0  # seconds one step may hold the loop before it is a hold
LOG_EVERY = 600.0  # seconds between log lines of one task's holds
KEPT = 64  # holds kept per loop, newest last (what a missed fire's reason looks up)


@dataclass(frozen=True)
class Hold:
    task: str
    began: datetime
    ended: datetime

    def reason(self, zone: ZoneInfo) -> str:
        began, ended = self.began.astimezone(zone), self.ended.astimezone(zone)
        lasted = format_duration(timedelta(seconds=round((ended - began).total_seconds())))
        return (
            f"the async function of task {self.task} held agentcron's event loop from "
            f"{began:%H:%M:%S} to {ended:%H:%M:%S} {zone_label(ended, zone.key)} ({lasted}): "
            "a blocking call inside an `async def` (time.sleep, a blocking client) holds "
            "every task while it runs"
        )


class LoopHolds:
    """The recent holds of one loop, and when each task's were last logged."""

    def __init__(self) -> None:
        self.recent: collections.deque[Hold] = collections.deque(maxlen=KEPT)
        self._logged: dict[str, tuple[float, int]] = {}  # task: (monotonic, untold count)

    def noted(self, task: str, seconds: float) -> None:
        ended = datetime.now(UTC)
        self.recent.append(Hold(task, ended - timedelta(seconds=seconds), ended))
        now = time.monotonic()
        last, untold = self._logged.get(task, (None, 0))
        if last is not None and now - last < LOG_EVERY:
            self._logged[task] = (last, untold + 1)
            return
        self._logged[task] = (now, 0)
        since = f" ({untold} more since the last such line)" if untold else ""
        log.warning(
            "%s: its async function held the daemon's event loop for %.1f s without "
            "awaiting%s: no other task could start, end or be scheduled meanwhile. A "
            "blocking call inside an `async def` (time.sleep, requests, a blocking "
            "database client) does this: await an async equivalent, or make it a plain "
            "`def` (run in a thread) or `isolation: process`",
            task,
            seconds,
            since,
            extra={"event": "event_loop_held", "task": task, "seconds": round(seconds, 3)},
        )

    def covering(self, at: datetime) -> Hold | None:
        """The hold during which a fire due at ``at`` came due, or None."""
        for hold in reversed(self.recent):
            if hold.began <= at <= hold.ended:
                return hold
        return None


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopHolds] = (
    weakref.WeakKeyDictionary()
)


def holds_of(loop: asyncio.AbstractEventLoop) -> LoopHolds:
    """The holds of ``loop`` (one daemon's; two embedded daemons run on two loops)."""
    holds = _BY_LOOP.get(loop)
    if holds is None:
        holds = _BY_LOOP[loop] = LoopHolds()
    return holds


class Timed:
    """``await Timed(awaitable, task, holds)`` awaits ``awaitable``, timing each step."""

    __slots__ = ("_awaitable", "_holds", "_task")

    def __init__(self, awaitable: Awaitable[Any], task: str, holds: LoopHolds) -> None:
        self._awaitable = awaitable
        self._task = task
        self._holds = holds

    def __await__(self) -> Generator[Any, Any, Any]:
        inner = self._awaitable.__await__()
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            began = time.monotonic()
            try:
                out = inner.send(sent) if thrown is None else inner.throw(thrown)
            except StopIteration as done:  # re-raised in a generator it would be an error
                self._timed(began)
                return done.value
            except BaseException:
                self._timed(began)
                raise
            self._timed(began)
            sent, thrown = None, None
            try:
                sent = yield out
            except GeneratorExit:
                inner.close()
                raise
            except BaseException as exc:  # thrown in by the task (a cancellation)
                thrown = exc

    def _timed(self, began: float) -> None:
        took = time.monotonic() - began
        if took >= HOLD_NOTED:
            self._holds.noted(self._task, took)
