"""One beat for the daemon's periodic looks, so that an idle daemon wakes once per beat.

The daemon's looks for what no event announces (the engine's look for other
processes' and nodes' work, the config file's ``stat``, the outbox's and the
deliveries' looks, the heartbeat, the supervisor's watchers) each sleep until the next
multiple of their interval on the event loop's clock, not for their interval from
whenever they last ran. The event loop runs every timer due at one instant in one pass,
so duties whose intervals are multiples of the daemon's beat wake the process together,
once per beat, instead of each at its own phase (issue 16: an idle daemon woke 7-9 times
a second, mostly for looks that found nothing).

Events still end a sleep at once (a trigger, a reload, a message enqueued, a run's
end): the beat only bounds how long a change that announces nothing goes unseen.
"""

from __future__ import annotations

import asyncio
import contextlib
import math


def next_beat(now: float, every: float) -> float:
    """The first multiple of ``every`` after ``now`` (both on one clock). The same
    ``every`` gives the same float at every caller, so their timers fall due together."""
    return (math.floor(now / every) + 1.0) * every


def on_beat(interval: float, beat: float) -> float:
    """``interval`` made a multiple of ``beat`` (at least one beat, never longer than
    asked): a duty every 5 s on a 2 s beat looks every 4 s, in step with the beat."""
    if beat <= 0 or interval <= beat:
        return interval if beat <= 0 else beat
    return math.floor(interval / beat) * beat


async def sleep_to_beat(every: float, *events: asyncio.Event, sooner: float | None = None) -> None:
    """Sleep until the next beat of ``every`` seconds, or until ``sooner`` seconds from
    now if that comes first, or until any of ``events`` is set."""
    await sleep_until(when_to_wake(every, sooner), *events)


def when_to_wake(every: float, sooner: float | None = None) -> float:
    """The event loop's time of the next beat of ``every``, or ``sooner`` seconds from
    now if that comes first."""
    now = asyncio.get_running_loop().time()
    when = next_beat(now, every)
    return when if sooner is None else min(when, now + max(0.0, sooner))


async def sleep_until(when: float, *events: asyncio.Event) -> None:
    """Sleep until ``when`` on the event loop's clock, or until any of ``events`` is set."""
    if len(events) > 1:
        sleeper = Sleeper(*events)
        try:
            await sleeper.until(when)
        finally:
            sleeper.close()
        return
    if events and events[0].is_set():
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(when):
            await (events[0].wait() if events else asyncio.get_running_loop().create_future())


class Sleeper:
    """Sleeps of one loop (the engine's, the sender's) on several events: one waiter per
    event lives across the sleeps, so a sleep that times out creates and cancels no task
    (an idle daemon's every beat would otherwise make and drop two tasks per duty)."""

    def __init__(self, *events: asyncio.Event) -> None:
        self._events = events
        self._waiters: list[asyncio.Future[bool] | None] = [None] * len(events)

    async def until(self, when: float) -> None:
        """Sleep until ``when`` (the event loop's clock) or until an event is set."""
        waiters: list[asyncio.Future[bool]] = []
        for i, event in enumerate(self._events):
            waiter = self._waiters[i]
            if waiter is None or waiter.done():
                if event.is_set():
                    return
                waiter = self._waiters[i] = asyncio.ensure_future(event.wait())
            waiters.append(waiter)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(when):
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)

    def close(self) -> None:
        for waiter in self._waiters:
            if waiter is not None:
                waiter.cancel()
        self._waiters = [None] * len(self._events)
