"""The daemon's own pulse for an outside dead man's switch (``heartbeat_url``).

The ping is sent from the scheduler loop, so it proves the loop is alive, not
just the process; a loop that stops ticking stops the pings, and the outside
check (healthchecks.io and the like) raises the alarm even if this machine is
dead. When the daemon itself errs, ``URL/fail`` is pinged from the watchdog
thread, which does not depend on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from agentcron.http_client import make_async_client, make_client
from agentcron.redact import redact

log = logging.getLogger("agentcron.pulse")

PING_TIMEOUT = 10.0


def fail_url(url: str) -> str:
    """The failure endpoint: ``/fail`` goes on the path, before any query string
    (Healthchecks' ``…/ping/KEY/slug?create=1`` becomes ``…/slug/fail?create=1``; put
    after the query it would read as a success ping)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/fail"))


async def ping(url: str) -> bool:
    try:
        async with make_async_client(PING_TIMEOUT) as client:
            resp = await client.get(url)
        if resp.status_code >= 400:
            log.warning("heartbeat ping to %s answered HTTP %d", redact(url), resp.status_code)
            return False
        return True
    except Exception as exc:
        log.warning("heartbeat ping to %s failed: %s", redact(url), redact(str(exc)))
        return False


def ping_fail_blocking(url: str, why: str) -> bool:
    """Tell the dead man's switch the daemon is in trouble (from any thread)."""
    try:
        with make_client(PING_TIMEOUT) as client:
            resp = client.post(fail_url(url), content=why.encode())
        return resp.status_code < 400
    except Exception as exc:
        log.warning("failure ping to %s failed: %s", redact(url), redact(str(exc)))
        return False


async def ping_fail(url: str, why: str) -> bool:
    try:
        async with make_async_client(PING_TIMEOUT) as client:
            resp = await client.post(fail_url(url), content=why.encode())
        return resp.status_code < 400
    except Exception as exc:
        log.warning("failure ping to %s failed: %s", redact(url), redact(str(exc)))
        return False


async def pulse_forever(
    url: str,
    stop: asyncio.Event,
    interval: float = 60.0,
    trouble: Callable[[], str | None] = lambda: None,
) -> None:
    """Ping ``url`` every ``interval`` while the scheduler makes progress. ``trouble``
    says why it does not (ticks failing, the loop stalled): then ``URL/fail`` is pinged
    with the reason, so the outside check goes down although the process lives."""
    while not stop.is_set():
        why = trouble()
        if why is None:
            await ping(url)
        else:
            await ping_fail(url, why)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()
