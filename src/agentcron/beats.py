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
    now = asyncio.get_running_loop().time()
    when = next_beat(now, every)
    if sooner is not None:
        when = min(when, now + max(0.0, sooner))
    await sleep_until(when, *events)


async def sleep_until(when: float, *events: asyncio.Event) -> None:
    """Sleep until ``when`` on the event loop's clock, or until any of ``events`` is set."""
    if any(e.is_set() for e in events):
        return
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(when):
                if waiters:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                else:
                    await asyncio.Future()  # only the timeout ends it
    finally:
        for waiter in waiters:
            waiter.cancel()
