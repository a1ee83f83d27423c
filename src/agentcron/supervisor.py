"""One supervisor for every long-lived part of the daemon.

A part is a coroutine meant to run until the daemon stops: the engine loop, the
outbox sender, the delivery worker, the config watcher, the heartbeat... Left to
itself, a part that raises (or returns) simply ends while the process lives on:
the daemon looks alive and does nothing, the failure this product exists to
prevent. Here a part that ends before the stop is logged with its cause, told to
the owner, and started again after a backoff; a part that keeps failing
(``max_failures`` within ``window``) makes the supervisor give up, so the daemon
exits non-zero and the service manager (systemd's ``Restart=on-failure``) starts
a fresh process. A part that has run well for ``healthy_after`` since its last
failure is told as recovered and its count starts again.

Time (the backoff sleeps and the failure window) comes from injectable
callables, so tests run it in milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("agentcron.supervisor")

EXIT_GAVE_UP = 70  # EX_SOFTWARE: an internal error; systemd restarts on any non-zero


@dataclass
class _Part:
    name: str
    start: Callable[[], Awaitable[None]]
    failures: list[float] = field(default_factory=list)  # monotonic times within the window
    told: bool = False  # the owner was told of the current run of failures
    last_failure: float | None = None


@dataclass(frozen=True)
class PartFailure:
    """What the owner is told: which part, why, and what happens next."""

    part: str
    error: str
    failures: int  # within the window
    restart_in: float | None  # None: the supervisor gave up


class Supervisor:
    def __init__(
        self,
        *,
        on_failure: Callable[[PartFailure], Awaitable[None]] | None = None,
        on_recovery: Callable[[str], Awaitable[None]] | None = None,
        max_failures: int = 5,
        window: float = 600.0,
        backoff_first: float = 1.0,
        backoff_max: float = 60.0,
        healthy_after: float = 120.0,
        stop_grace: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._parts: list[_Part] = []
        self._on_failure = on_failure
        self._on_recovery = on_recovery
        self.max_failures = max_failures
        self.window = window
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self.healthy_after = healthy_after
        self.stop_grace = stop_grace  # parts see the stop event; one that does not is cancelled
        self._monotonic = monotonic
        self.gave_up: PartFailure | None = None
        self.restarts: dict[str, int] = {}

    def add(self, name: str, start: Callable[[], Awaitable[None]]) -> None:
        """Supervise ``start()``, a coroutine that should run until the stop event."""
        self._parts.append(_Part(name, start))
        self.restarts[name] = 0

    async def run(self, stop: asyncio.Event) -> int:
        """Run every part until ``stop`` is set (then wait for them to end) or until
        one fails too often (then stop the others). Returns the exit code: 0, or
        :data:`EXIT_GAVE_UP`."""
        keepers = [
            asyncio.create_task(self._keep(part, stop), name=f"supervise:{part.name}")
            for part in self._parts
        ]
        try:
            await stop.wait()
        finally:
            stop.set()
            done, _pending = await asyncio.wait(keepers, timeout=self.stop_grace)
            for task in keepers:
                if task not in done:
                    task.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
        return EXIT_GAVE_UP if self.gave_up is not None else 0

    async def _keep(self, part: _Part, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await part.start()
            except asyncio.CancelledError:
                if stop.is_set():
                    return
                error = "it was cancelled"
            except Exception as exc:
                if stop.is_set():
                    log.warning("%s failed while stopping: %s", part.name, exc)
                    return
                log.exception("%s failed; restarting it", part.name)
                error = _one_line(exc)
            else:
                if stop.is_set():
                    return
                error = "it ended without being asked to stop"
                log.error("%s ended without being asked to stop; restarting it", part.name)
            now = self._monotonic()
            part.last_failure = now
            part.failures = [t for t in part.failures if now - t < self.window] + [now]
            count = len(part.failures)
            if count >= self.max_failures:
                self.gave_up = PartFailure(part.name, error, count, None)
                log.critical(
                    "%s failed %d times within %.0fs (latest: %s); agentcron exits so that "
                    "its service manager starts it afresh",
                    part.name,
                    count,
                    self.window,
                    error,
                )
                await self._tell(self.gave_up)
                stop.set()
                return
            delay = min(self.backoff_max, self.backoff_first * 2.0 ** (count - 1))
            self.restarts[part.name] += 1
            if not part.told:
                part.told = True
                await self._tell(PartFailure(part.name, error, count, delay))
            with_stop = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait([with_stop], timeout=delay)
            finally:
                with_stop.cancel()
            if not stop.is_set():
                asyncio.get_running_loop().call_later(
                    self.healthy_after, self._check_healthy, part, now
                )

    def _check_healthy(self, part: _Part, failed_at: float) -> None:
        """Called ``healthy_after`` a restart: no failure since means recovered."""
        if part.last_failure != failed_at or not part.told or self.gave_up is not None:
            return
        part.told = False
        part.failures.clear()
        log.warning("%s has run well since its restart", part.name)
        if self._on_recovery is not None:
            task = asyncio.ensure_future(self._on_recovery(part.name))
            task.add_done_callback(_log_task_error)

    async def _tell(self, failure: PartFailure) -> None:
        if self._on_failure is None:
            return
        try:
            await self._on_failure(failure)
        except Exception:
            log.exception("could not tell the owner that %s failed", failure.part)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _log_task_error(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("telling the owner of a recovery failed: %s", task.exception())
