"""Running the daemon's event loop to its end, without waiting for ever on what is left.

``asyncio.run`` ends by cancelling every task still pending and waiting, with no limit,
until each has ended. A task that will not end when cancelled (an inline ``async def``
that catches the cancellation and goes on, as an outside-in probe wrote one) held the
process there for good after "agentcron stopped", until the service manager killed it.
Here the tasks left over are cancelled and given a few seconds; those that will not
end are named in the log and left behind, and the loop is closed.

The same for the loop's executor (``asyncio.to_thread``: file writes, store reads):
``asyncio.run`` joins its threads without a limit, so one call that never returns (a
file system that stopped answering) held the exit for good. Its threads get the same
few seconds; one still in a call is named with where it waits and left behind, and
:func:`threads_left_behind` tells the caller to end the process past it (the
interpreter's exit would join it too).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

LEFTOVERS_GRACE = 5.0  # seconds the tasks left at the end have to end once cancelled

IO_THREADS = "agentcron-io"  # the name prefix of the loop's executor threads

log = logging.getLogger("agentcron.daemon")

_LOOPS = itertools.count(1)  # each loop's executor threads are named apart


def run_to_end(main: Coroutine[Any, Any, T], leftovers_grace: float = LEFTOVERS_GRACE) -> T:
    """``asyncio.run(main)``, but the tasks left when ``main`` returns get
    ``leftovers_grace`` seconds to end once cancelled, not for ever."""
    loop = asyncio.new_event_loop()
    # a name of its own: another loop's (a second Scheduler of the program) is not waited for
    name = f"{IO_THREADS}-{next(_LOOPS)}"
    executor = ThreadPoolExecutor(thread_name_prefix=name)
    loop.set_default_executor(executor)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            _end_leftovers(loop, leftovers_grace)
            loop.run_until_complete(loop.shutdown_asyncgens())
            _end_executor(executor, name, leftovers_grace)
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


def _end_executor(executor: ThreadPoolExecutor, name: str, grace: float) -> None:
    """Shut the executor down, waiting ``grace`` seconds at most for calls under way."""
    executor.shutdown(wait=False, cancel_futures=True)
    prefix = f"{name}_"  # its threads' names: NAME_0, NAME_1, …
    deadline = time.monotonic() + grace
    for thread in _io_threads(prefix):
        thread.join(max(0.0, deadline - time.monotonic()))
    left = _io_threads(prefix)
    stuck = len(left)
    if not stuck:
        return
    frames = sys._current_frames()
    where = sorted({_where(frames.get(thread.ident or 0)) for thread in left})
    log.error(
        "%d thread(s) of the daemon's loop still in a call %gs after the stop are left "
        "behind (a file system or a call that does not answer), waiting in: %s",
        stuck,
        grace,
        "; ".join(where[:5]) + (" …" if len(where) > 5 else ""),
    )


def threads_left_behind() -> int:
    """Threads of the loop's executor still in a call after :func:`run_to_end`."""
    return len(_io_threads())


def _io_threads(prefix: str = IO_THREADS) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def _where(frame: Any) -> str:
    """Where a thread of the executor waits: the call it was given and, when that is
    not the innermost frame, the function it waits in (file:line each)."""
    if frame is None:
        return "an unknown place"
    inner, given = frame, frame
    while frame is not None:
        back = frame.f_back
        if (
            back is not None
            and back.f_code.co_name == "run"
            and "concurrent" in (back.f_code.co_filename)
        ):
            given = frame  # the function handed to the executor
            break
        frame = back
    said = _frame(given)
    return said if given is inner else f"{said}, in {_frame(inner)}"


def _frame(frame: Any) -> str:
    code = frame.f_code
    return f"{code.co_name} ({code.co_filename}:{frame.f_lineno})"
