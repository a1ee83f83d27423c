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
import contextlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from agentcron.actions._inline_threads import InlineThreads
from agentcron.actions._pool import PythonWorkerPool
from agentcron.actions._worker import append_result, resolve_target, result_text
from agentcron.actions.base import ActionContext, ActionResult
from agentcron.actions.command import say_duration
from agentcron.actions.output import OUTPUT_MEMORY_CAP, open_output
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import FailureInfo


class PythonAction:
    """Runs a task's ``python`` target with the isolation its spec asks for."""

    def __init__(self, pool: PythonWorkerPool) -> None:
        self._pool = pool

    async def run(self, ctx: ActionContext) -> ActionResult:
        if ctx.spec.isolation == "inline":
            return await InlinePythonAction().run(ctx)
        return await self._pool.run(ctx)


class InlinePythonAction:
    """Calls a function in the daemon process: ``func``, or else the spec's target."""

    def __init__(self, func: Callable[..., Any] | None = None) -> None:
        self._func = func

    async def run(self, ctx: ActionContext) -> ActionResult:
        spec = ctx.spec
        seconds = ctx.timeout.total_seconds()
        try:
            async with asyncio.timeout(seconds) as scope:
                func = self._func or await _in_thread(_importer(spec.python, spec.cwd), ctx.task)
                if inspect.iscoroutinefunction(func):
                    text = await _in_thread(
                        _keep(await func(*spec.args, **spec.kwargs), ctx), ctx.task
                    )
                else:
                    value = await _in_thread(
                        lambda: _call_and_keep(func, spec.args, spec.kwargs, ctx), ctx.task
                    )
                    text = (
                        await _in_thread(_keep(await value, ctx), ctx.task)
                        if inspect.isawaitable(value)
                        else value
                    )
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if isinstance(exc, TimeoutError) and scope.expired():
                return ActionResult(
                    ok=False,
                    failure=FailureInfo(
                        message=(
                            f"timed out after {say_duration(ctx.timeout)}; an inline call "
                            "cannot be killed and may still be running in the daemon"
                        ),
                        known_class=ErrorClass.TIMEOUT,
                        action="python",
                    ),
                )
            from agentcron.classify.extract import failure_from_exception

            return ActionResult(ok=False, failure=failure_from_exception(exc, action="python"))
        return ActionResult(ok=True, output=_cap(str(text)), kept=True)


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


def _keep(value: Any, ctx: ActionContext) -> Callable[[], str]:
    """Writing the output file is blocking work: done in the call's thread, not the loop."""
    return lambda: _write_output(result_text(value), ctx)


def _call_and_keep(
    func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], ctx: ActionContext
) -> Any:
    value = func(*args, **kwargs)
    if inspect.isawaitable(value):
        return value  # an async result from a sync-looking callable: awaited on the loop
    return _write_output(result_text(value), ctx)


def _write_output(text: str, ctx: ActionContext) -> str:
    fd = open_output(ctx.output_path)
    try:
        append_result(fd, text)
    finally:
        os.close(fd)
    return text


_THREADS = InlineThreads()


async def _in_thread(call: Callable[[], Any], task: str) -> Any:
    """Run ``call`` on an inline thread (see :mod:`._inline_threads`), await its result."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, exc: BaseException | None) -> None:
        if future.done():
            return  # the caller gave up (timeout, cancellation)
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)

    def body() -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            value = call()
        except BaseException as exc:  # handed to the awaiting coroutine
            error = exc
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(settle, value, error)

    _THREADS.submit(body, loop)
    return await future


def _cap(text: str) -> str:
    if len(text) <= OUTPUT_MEMORY_CAP:
        return text
    return text[:OUTPUT_MEMORY_CAP] + "\n[... output cut; the output file has all of it]\n"
