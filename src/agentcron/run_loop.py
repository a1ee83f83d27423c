"""Running the daemon's event loop to its end, without waiting for ever on what is left.

``asyncio.run`` ends by cancelling every task still pending and waiting, with no limit,
until each has ended. A task that will not end when cancelled (an inline ``async def``
that catches the cancellation and goes on, as an outside-in probe wrote one) held the
process there for good after "agentcron stopped", until the service manager killed it.
Here the tasks left over are cancelled and given a few seconds; those that will not
end are named in the log and left behind, and the loop is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

LEFTOVERS_GRACE = 5.0  # seconds the tasks left at the end have to end once cancelled

log = logging.getLogger("agentcron.daemon")


def run_to_end(main: Coroutine[Any, Any, T], leftovers_grace: float = LEFTOVERS_GRACE) -> T:
    """``asyncio.run(main)``, but the tasks left when ``main`` returns get
    ``leftovers_grace`` seconds to end once cancelled, not for ever."""
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            _end_leftovers(loop, leftovers_grace)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _end_leftovers(loop: asyncio.AbstractEventLoop, grace: float) -> None:
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not pending:
        return
    for task in pending:
        task.cancel()
    _, stuck = loop.run_until_complete(asyncio.wait(pending, timeout=grace))
    for task in pending:
        if task in stuck or task.cancelled():
            continue
        error = task.exception()
        if error is not None:  # as asyncio.run reports one: said, not raised
            log.error("a task left at the stop failed: %r", error, exc_info=error)
    if stuck:
        names = sorted(task.get_name() for task in stuck)
        log.error(
            "%d task(s) would not end when cancelled at the stop and are left behind: %s",
            len(stuck),
            ", ".join(names[:10]) + (" …" if len(names) > 10 else ""),
        )
