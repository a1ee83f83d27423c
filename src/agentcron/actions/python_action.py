"""The ``python`` action: call ``module:function`` (sync or async) with args and kwargs.

Two isolations. ``process`` (the default) runs the call in a pooled worker process
(see :mod:`agentcron.actions._pool`), which captures everything the call prints
and can be killed at its timeout. ``inline`` runs it in the daemon process: no
process hop, which suits functions registered from Python code and benchmarks,
at a price: the daemon cannot kill a thread, so a sync call that overruns its
timeout is reported as ``timeout`` and left running in its (daemon) thread; prints
are not captured (only the return value is the output); ``env`` and ``cwd`` are
not applied, as both are process-wide (``cwd`` is only added to ``sys.path`` so
the target imports).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import logging
import os
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from agentcron.actions._inline_threads import InlineThreads
from agentcron.actions._pool import PythonWorkerPool
from agentcron.actions._worker import (
    append_result,
    exited_well,
    failure_of,
    keep_traceback,
    resolve_target,
    result_text,
)
from agentcron.actions.base import ActionContext, ActionResult
from agentcron.actions.command import say_duration
from agentcron.actions.loop_holds import Timed, holds_of
from agentcron.actions.output import OUTPUT_MEMORY_CAP, home_of_output, open_output
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import FailureInfo

log = logging.getLogger("agentcron.actions")


class PythonAction:
    """Runs a task's ``python`` target with the isolation its spec asks for."""

    def __init__(self, pool: PythonWorkerPool) -> None:
        self._pool = pool

    async def run(self, ctx: ActionContext) -> ActionResult:
        if ctx.spec.isolation == "inline":
            return await InlinePythonAction().run(ctx)
        return await self._pool.run(ctx)


# The inline async functions running now, by slot: they run on the daemon's own loop,
# and one that blocks (time.sleep, a blocking client in an `async def`) holds every task.
# The watchdog's stall message names them (read from its thread while the loop is stuck).
ON_THE_LOOP: dict[int, str] = {}


def on_the_loop() -> list[str]:
    """The tasks whose async function runs on the daemon's loop now."""
    return sorted(set(list(ON_THE_LOOP.values())))


# Inline sync calls whose run ended (a timeout, a stop) while they went on in their
# thread, by task: the daemon cannot stop a thread, so the task's next run must not
# start a second call beside it (the engine holds it: see still_running_past_its_run).
# An hourly function that hung without a timeout of its own started one more thread
# each hour, each told as a timeout, with overlap: skip promising one at a time.
# Keyed by (home, task): two Schedulers of one program, on two homes, each have their
# own task of a name (outside-in probe: one's hung call held the other's task back).
_LEFT_RUNNING: dict[tuple[str, str], dict[int, datetime]] = {}
_LEFT_LOCK = threading.Lock()


class _CallWatch:
    """One inline call of ``task``, for its run due at ``due``: whether its thread has
    returned, and whether its run ended first."""

    __slots__ = ("done", "due", "key", "ran")

    def __init__(self, home: str, task: str, due: datetime) -> None:
        self.key = (home, task)
        self.due = due
        self.done = True  # until a thread takes the call (an import, a coroutine: no)
        self.ran = False  # whether the call began at all

    def started(self) -> None:
        self.done = False
        self.ran = True

    def ended(self) -> None:
        """From the call's thread, when the call returns or raises."""
        with _LEFT_LOCK:
            self.done = True
            left = _LEFT_RUNNING.get(self.key)
            if left is not None:
                left.pop(id(self), None)
                if not left:
                    del _LEFT_RUNNING[self.key]

    def left(self) -> None:
        """The run is over: a call still going is kept as left running."""
        if self.done:  # the usual case, read without the lock: done is never unset
            return
        with _LEFT_LOCK:
            if not self.done:
                _LEFT_RUNNING.setdefault(self.key, {})[id(self)] = self.due


def still_running_past_its_run(task: str, home: str | None = None) -> datetime | None:
    """The time its run was due of the oldest inline call of ``task`` (of the daemon
    on ``home``; None: of any) still running past its run's end, or None when none is."""
    with _LEFT_LOCK:
        if home is not None:
            left = _LEFT_RUNNING.get((home, task))
            return min(left.values()) if left else None
        dues = [
            d for (_, name), calls in _LEFT_RUNNING.items() if name == task for d in calls.values()
        ]
        return min(dues) if dues else None


class InlinePythonAction:
    """Calls a function in the daemon process: ``func``, or else the spec's target."""

    def __init__(self, func: Callable[..., Any] | None = None, cwd: str | None = None) -> None:
        self._func = func
        # where a target of a task without ``cwd`` is imported from: the config file's
        # folder, as the worker pool does (an inline task could not import the module
        # beside its config file that the same task imported pooled: outside-in probe)
        self._cwd = cwd
        self._is_coro = func is not None and inspect.iscoroutinefunction(func)

    async def run(self, ctx: ActionContext) -> ActionResult:
        watch = _CallWatch(home_of_output(ctx.output_path), ctx.task, ctx.scheduled_for)
        try:
            return await self._run(ctx, watch)
        finally:  # a timeout or a stop left the call running in its thread: kept
            watch.left()

    async def _run(self, ctx: ActionContext, watch: _CallWatch) -> ActionResult:
        spec = ctx.spec
        seconds = ctx.timeout.total_seconds()
        coro = self._is_coro
        try:
            async with asyncio.timeout(seconds) as scope:
                func = self._func or await _in_thread(_importer(spec.python, spec.cwd or self._cwd))
                coro = self._is_coro if self._func else inspect.iscoroutinefunction(func)
                if coro:
                    out = await _on_the_loop(func(*spec.args, **spec.kwargs), ctx, watch)
                    text = result_text(out)
                else:
                    call = functools.partial(_call, func, spec.args, spec.kwargs)
                    out = await _in_thread(call, watch)
                    if inspect.isawaitable(out):
                        out = result_text(await _on_the_loop(out, ctx, watch))
                    text = out
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if isinstance(exc, TimeoutError) and scope.expired():
                return ActionResult(
                    ok=False,
                    failure=FailureInfo(
                        message=_timed_out(ctx.timeout, watch, coro=coro),
                        known_class=ErrorClass.TIMEOUT,
                        action="python",
                    ),
                )
            exc.__traceback__ = _past_own_frames(exc.__traceback__)
            failure = failure_of(exc)
            return ActionResult(ok=False, failure=failure, kept=_keep_failure(failure, ctx))
        if text:  # no output, no file: an empty file per run would cost a create
            # Outside the call's handling: agentcron's own write failing (a full disk)
            # is the home's storage fault, which the runner records and retries, not
            # the function's permanent error (outside-in probe: "Retrying will not help").
            await _keep(text, ctx)
        return ActionResult(ok=True, output=_cap(text), kept=bool(text))


def _timed_out(timeout: timedelta, watch: _CallWatch, *, coro: bool) -> str:
    """A timed-out inline call's error. "May still be running" was said of an async
    call that had ended: one that blocked the event loop (``time.sleep``) past its
    timeout could not be interrupted, and it returned before the timeout was seen
    (outside-in probe)."""
    limit = say_duration(timeout)
    if not watch.done:
        return (
            f"timed out after {limit}; an inline call cannot be killed and may still be "
            "running in the daemon"
        )
    if not watch.ran and not coro:
        return (
            f"timed out after {limit} before the call began (its function was still being "
            "imported, or every inline thread was busy); the call was not made"
        )
    if coro:
        return (
            f"took longer than its {limit} timeout, holding the daemon's event loop "
            "(an async def that blocks, e.g. time.sleep or a blocking client, holds every "
            "task while it runs); it has ended, and its result was not kept"
        )
    return f"took longer than its {limit} timeout; it has ended, and its result was not kept"


def _past_own_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the first frame that is not this module's: the kept output
    of an inline call's failure began with agentcron's own frames (the await, the
    thread's body, the call) before the function's, where a pooled call's did not
    (outside-in probe)."""
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return tb


def _importer(target: str | None, cwd: str | None) -> Callable[[], Callable[..., Any]]:
    if target is None:
        raise ValueError("an inline python action needs a function or a python target")

    def load() -> Callable[..., Any]:
        if cwd:
            path = os.path.abspath(os.path.expanduser(cwd))
            if path not in sys.path:
                sys.path.insert(0, path)
        return resolve_target(target)

    return load


def _call(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """What an inline thread does: the call and, unless it gave an awaitable (awaited
    on the loop), the text of its result. Nothing else, no file I/O: each system
    call a thread makes gives the GIL up, and getting it back from a busy loop is
    what makes a burst of short calls slow."""
    try:
        value = func(*args, **kwargs)
    except SystemExit as exc:
        if not exited_well(exc):
            raise
        value = None
    return value if inspect.isawaitable(value) else result_text(value)


async def _on_the_loop(awaitable: Awaitable[Any], ctx: ActionContext, watch: _CallWatch) -> Any:
    """Await an inline async call as a task of its own, so that its run ends when its
    timeout or a stop comes even if the call will not: one that catches the
    cancellation and goes on (an outside-in probe's ``except CancelledError: pass``)
    kept its run in progress for good, never recorded, the task's next runs skipped
    behind it, and held the daemon's stop. It is asked to stop, and when it does not,
    it is left running as a thread that cannot be stopped is: its task's next runs
    wait for it (see :class:`_CallWatch`)."""
    ON_THE_LOOP[ctx.slot_id] = ctx.task
    name = f"inline call of {ctx.task} (slot {ctx.slot_id})"  # named if left at the stop
    loop = asyncio.get_running_loop()
    timed = Timed(awaitable, ctx.task, holds_of(loop))  # a step that holds the loop is said
    call = loop.create_task(_captured(timed), name=name)
    watch.started()

    def over(_: asyncio.Future[Any]) -> None:
        ON_THE_LOOP.pop(ctx.slot_id, None)
        watch.ended()

    call.add_done_callback(over)
    try:
        await asyncio.wait([call])
    except asyncio.CancelledError:
        call.cancel()
        raise
    value, error = call.result()
    if error is not None:
        raise error  # here, where the run's failure is made of it
    return value


async def _captured(awaitable: Awaitable[Any]) -> tuple[Any, BaseException | None]:
    """The call's value, or what it raised: a task that raises ``SystemExit`` or
    ``KeyboardInterrupt`` would end the event loop itself, not the run."""
    try:
        return await _awaited(awaitable), None
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        return None, exc


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    """``awaitable``'s value; ``sys.exit(0)`` in it is a return (see :func:`exited_well`)."""
    try:
        return await awaitable
    except SystemExit as exc:
        if not exited_well(exc):
            raise
        return None


SMALL_OUTPUT = 64 * 1024  # written on the loop: a page-cache write, cheaper than a thread hop


async def _keep(text: str, ctx: ActionContext) -> None:
    if len(text) <= SMALL_OUTPUT:
        _write_output(text, ctx)
    else:
        await asyncio.to_thread(_write_output, text, ctx)


def _keep_failure(failure: FailureInfo, ctx: ActionContext) -> bool | None:
    """The traceback kept as the run's output, as a worker's is; whether a file is kept
    (None: not known, the runner looks). Written on the loop: a few KiB at most."""
    if not failure.output_tail:
        return None
    try:
        fd = open_output(ctx.output_path)
    except OSError as exc:
        # the failure itself is recorded and told all the same; only its traceback
        # is not kept (a full disk, a folder made unwritable): said in the log
        log.warning(
            "could not keep the traceback of %s's failure in %s: %s",
            ctx.task,
            ctx.output_path,
            exc.strerror or exc,
        )
        return None
    try:
        keep_traceback(fd, failure.output_tail)
    finally:
        os.close(fd)
    return True


def _write_output(text: str, ctx: ActionContext) -> None:
    fd = open_output(ctx.output_path)
    try:
        append_result(fd, text)
    finally:
        os.close(fd)


class _Handoff:
    """Results of inline calls on their way back to one loop.

    A thread that finishes a call queues its result and wakes the loop only when no
    wake-up is pending already: in a burst, one wake-up (one write to the loop's
    self-pipe, one GIL hand-over) carries many results.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly: the handoff is the value of a weak-keyed map keyed by this loop, and a
        # strong reference from value to key would keep every loop ever used alive.
        self._loop = weakref.ref(loop)
        self._items: collections.deque[tuple[asyncio.Future[Any], Any, BaseException | None]]
        self._items = collections.deque()
        self._lock = threading.Lock()
        self._pending = False

    def put(self, future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
        self._items.append((future, value, error))
        with self._lock:
            if self._pending:
                return
            self._pending = True
        loop = self._loop()
        if loop is None:
            return  # the loop is gone: nobody is waiting any more
        with contextlib.suppress(RuntimeError):  # a closed loop: likewise
            loop.call_soon_threadsafe(self._drain)

    def serves(self, loop: asyncio.AbstractEventLoop) -> bool:
        return self._loop() is loop

    def _drain(self) -> None:
        with self._lock:
            self._pending = False
        while self._items:
            future, value, error = self._items.popleft()
            if future.done():
                continue  # the caller gave up (timeout, cancellation)
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)


_handoffs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Handoff] = (
    weakref.WeakKeyDictionary()
)
# The usual case, one loop, asked on each call. It keeps the last handoff (not its
# loop) alive; the map's entry goes with its loop.
_last_handoff: list[_Handoff | None] = [None]


_THREADS = InlineThreads()


async def _in_thread(call: Callable[[], Any], watch: _CallWatch | None = None) -> Any:
    """Run ``call`` on an inline thread (see :mod:`._inline_threads`), await its result;
    ``watch`` hears when the call returns, whether or not anyone still waits."""
    loop = asyncio.get_running_loop()
    handoff = _last_handoff[0]
    if handoff is None or not handoff.serves(loop):
        handoff = _handoffs.get(loop)
        if handoff is None:
            handoff = _handoffs[loop] = _Handoff(loop)
        _last_handoff[0] = handoff
    future: asyncio.Future[Any] = loop.create_future()

    def body() -> None:
        if future.cancelled():
            # its run ended (a timeout, a stop) while the call waited for a thread: not
            # called at all, rather than after its run was recorded ended (and, at a
            # stop, again by the retry: an outside-in probe saw both)
            if watch is not None:
                watch.ended()
            return
        # the watch hears of the end before the awaiting run does: told after, a run
        # that had its result already counted its own call as left running, and the
        # task's next claim was skipped behind it
        try:
            value = call()
        except BaseException as exc:  # handed to the awaiting coroutine
            if watch is not None:
                watch.ended()
            handoff.put(future, None, exc)
        else:
            if watch is not None:
                watch.ended()
            handoff.put(future, value, None)

    if watch is not None:
        watch.started()
    _THREADS.submit(body, loop)
    return await future


def _cap(text: str) -> str:
    if len(text) <= OUTPUT_MEMORY_CAP:
        return text
    return text[:OUTPUT_MEMORY_CAP] + "\n[... output cut; the output file has all of it]\n"
