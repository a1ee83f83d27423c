"""The daemon's own pulse for an outside dead man's switch (``heartbeat_url``).

The ping is sent from the scheduler loop, so it proves the loop is alive, not
just the process; a loop that stops ticking stops the pings, and the outside
check (healthchecks.io and the like) raises the alarm even if this machine is
dead. When the daemon itself errs, ``URL/fail`` is pinged from the watchdog
thread, which does not depend on the loop.

Every ping says how it went (:class:`PingResult`), in words for the owner and with
whether the answer looks permanent: a check id that does not exist (404, 410) or
a refused key (401, 403) stays wrong until someone fixes the URL, where a refused
connection, an unknown host name or a 5xx may pass. What is done with a failing
endpoint (telling the owner, ``doctor``) is :mod:`.endpoint`'s.

A configured URL becomes the URL requested in one place, :func:`request_url`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from agentcron.http_client import make_async_client, make_client
from agentcron.redact import redact

log = logging.getLogger("agentcron.pulse")

PING_TIMEOUT = 10.0
# Answers that will not change until the URL or the check is fixed.
PERMANENT_STATUSES = {
    401: "unauthorized: the ping key or URL is refused",
    403: "forbidden: the ping key or URL is refused",
    404: "not found: there is no check at this address, most often a wrong check id or key",
    410: "gone: the check at this address was removed",
}
_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")
_DNS_WORDS = (
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "no address associated with hostname",
    "getaddrinfo failed",
    "[errno -2]",
    "[errno -3]",
    "[errno -5]",
)


class HeartbeatURLError(ValueError):
    """The configured ``heartbeat_url`` cannot be requested as it is."""


def request_url(configured: str) -> str:
    """The URL requested for a configured ``heartbeat_url``: the single place where the
    one becomes the other (both the ping and the ``/fail`` ping go through here).

    Raises :class:`HeartbeatURLError` for a URL that still holds a ``${NAME}``
    placeholder (nothing filled it in) or is not http(s): requesting it would only
    fail in a less helpful way.
    """
    from agentcron.config._env import expand_value

    try:
        url = expand_value(configured).strip()  # ${NAME} from the environment / env_file
    except ValueError as exc:
        raise HeartbeatURLError(f"heartbeat_url: {exc}") from None
    left = _PLACEHOLDER.findall(url)
    if left:
        raise HeartbeatURLError(
            f"heartbeat_url still holds {', '.join(left)}: nothing filled the placeholder "
            "in, so there is no address to ping"
        )
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise HeartbeatURLError(f"heartbeat_url {redact(url)!r} is not an http(s) URL")
    return url


def fail_url(url: str) -> str:
    """The failure endpoint: ``/fail`` goes on the path, before any query string
    (Healthchecks' ``…/ping/KEY/slug?create=1`` becomes ``…/slug/fail?create=1``; put
    after the query it would read as a success ping)."""
    parts = urlsplit(request_url(url))
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/fail"))


@dataclass(frozen=True)
class PingResult:
    """How one ping went. ``error`` is a sentence for the owner; ``permanent`` says the
    answer will not change by itself (404, 410, 401, 403, an unusable URL)."""

    ok: bool
    status: int | None = None
    error: str | None = None
    permanent: bool = False

    def __bool__(self) -> bool:
        return self.ok


def answered(status: int) -> PingResult:
    """The result of an HTTP answer with ``status``."""
    if status < 400:
        return PingResult(ok=True, status=status)
    meaning = PERMANENT_STATUSES.get(status)
    if meaning is not None:
        return PingResult(False, status, f"HTTP {status} ({meaning})", permanent=True)
    if status >= 500:
        return PingResult(False, status, f"HTTP {status} (the service had an error)")
    if status == 429:
        return PingResult(False, status, "HTTP 429 (too many pings: the service is limiting)")
    return PingResult(False, status, f"HTTP {status}")


def failed(exc: BaseException, url: str) -> PingResult:
    """The result of a ping that got no answer, in words: a refused connection, a host
    name that does not resolve, no answer in time."""
    if isinstance(exc, HeartbeatURLError):
        return PingResult(False, None, str(exc), permanent=True)
    chain = _causes(exc)
    text = " ".join(str(e) for e in chain).lower()
    host = urlsplit(url).hostname or "?"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text:
        error = f"connection refused by {host}"
    elif any(word in text for word in _DNS_WORDS):
        error = f"the host name {host} could not be resolved (DNS)"
    elif any("timeout" in type(e).__name__.lower() for e in chain) or "timed out" in text:
        error = f"no answer from {host} within {PING_TIMEOUT:.0f}s"
    else:
        error = f"{type(exc).__name__}: {str(exc).strip() or 'no detail'}"
    return PingResult(False, None, redact(error))


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


async def ping(url: str) -> PingResult:
    """GET the heartbeat URL ("alive")."""
    try:
        target = request_url(url)
        async with make_async_client(PING_TIMEOUT) as client:
            resp = await client.get(target)
        result = answered(resp.status_code)
    except Exception as exc:
        result = failed(exc, url)
    if not result.ok:
        log.warning("heartbeat ping to %s failed: %s", redact(url), result.error)
    return result


def ping_fail_blocking(url: str, why: str) -> PingResult:
    """Tell the dead man's switch the daemon is in trouble (from any thread)."""
    try:
        target = fail_url(url)
        with make_client(PING_TIMEOUT) as client:
            resp = client.post(target, content=why.encode())
        result = answered(resp.status_code)
    except Exception as exc:
        result = failed(exc, url)
    if not result.ok:
        log.warning("failure ping to %s failed: %s", redact(url), result.error)
    return result


async def ping_fail(url: str, why: str) -> PingResult:
    """POST the reason to ``URL/fail`` ("in trouble")."""
    try:
        target = fail_url(url)
        async with make_async_client(PING_TIMEOUT) as client:
            resp = await client.post(target, content=why.encode())
        result = answered(resp.status_code)
    except Exception as exc:
        result = failed(exc, url)
    if not result.ok:
        log.warning("failure ping to %s failed: %s", redact(url), result.error)
    return result
