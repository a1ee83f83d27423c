"""The one place agentcron makes outbound HTTP clients.

Every action and channel that talks HTTP gets its client here, so they all send
the same user agent, all have bounded connect and read times, and a test can
replace the transport in one spot.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx2

CONNECT_TIMEOUT = 10.0  # seconds; a host that does not accept within this is down


def agentcron_version() -> str:
    try:
        return version("agentcron")
    except PackageNotFoundError:  # running from a source tree
        return "0"


USER_AGENT = f"agentcron/{agentcron_version()}"


def make_async_client(timeout: float | httpx2.Timeout, **kwargs: Any) -> httpx2.AsyncClient:
    """An ``AsyncClient`` with agentcron's user agent and timeouts.

    A plain number is the read/write/pool timeout; connecting gets at most
    :data:`CONNECT_TIMEOUT` of it. Headers given in ``kwargs`` are added to (and may
    override) the user agent; every other keyword goes to ``AsyncClient`` as is.
    """
    if not isinstance(timeout, httpx2.Timeout):
        timeout = httpx2.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout))
    headers = {"User-Agent": USER_AGENT, **dict(kwargs.pop("headers", None) or {})}
    return httpx2.AsyncClient(timeout=timeout, headers=headers, **kwargs)


def make_client(timeout: float, **kwargs: Any) -> httpx2.Client:
    """The blocking counterpart of :func:`make_async_client`, for threads that must not
    depend on the event loop (the watchdog pinging ``/fail`` while the loop is stuck)."""
    headers = {"User-Agent": USER_AGENT, **dict(kwargs.pop("headers", None) or {})}
    return httpx2.Client(
        timeout=httpx2.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
        headers=headers,
        **kwargs,
    )
