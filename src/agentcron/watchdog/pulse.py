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

from agentcron.http_client import make_async_client, make_client
from agentcron.redact import redact

log = logging.getLogger("agentcron.pulse")

PING_TIMEOUT = 10.0


def fail_url(url: str) -> str:
    return url.rstrip("/") + "/fail"


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


async def pulse_forever(url: str, stop: asyncio.Event, interval: float = 60.0) -> None:
    while not stop.is_set():
        await ping(url)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()
