"""Which runner executes a task's action.

The python worker pool is started lazily on the first process-isolated python
task, so a daemon with only commands pays no idle worker processes.

A task whose action holds ``${NAME}`` placeholders gets an action that expands
them as the attempt starts (:func:`agentcron.config._env.expand_spec`): the spec
in the database keeps the placeholder, the running command, request or prompt sees
the value. A variable unset by then fails the attempt as a ``config_error``
naming it, rather than running with a hole in its command. agentcron's own words
about a failed attempt (a URL that did not answer) name the placeholder again, not
its value: a credential put in a URL's path (``/hook/${GW_CRED}``) under a name
that does not say it is secret was stored, logged and sent expanded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from agentcron.actions.base import Action, ActionContext, ActionResult
from agentcron.config._env import (
    MissingVariableError,
    PlaceholderError,
    current_environ,
    expand_spec,
    placeholders_by_value,
    spec_needs_expansion,
)
from agentcron.model import TaskSpec
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import FailureInfo

WARM_WORKERS = 4  # python workers started with the pool; more as runs need them


class ActionRegistry:
    def __init__(self, pool_size: int = 2, cwd: str | None = None) -> None:
        self._pool_size = max(1, pool_size)
        self._cwd = cwd
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        self._callables: dict[str, Callable[..., Any]] = {}
        self._cache: dict[str, Action] = {}
        self._inline: dict[str, Action] = {}

    def set_pool_size(self, size: int) -> None:
        """Follow a reloaded ``max_concurrency``: the pool grows to it as runs need
        workers; lowered, the idle workers above it are retired now, busy ones when
        their run ends."""
        self._pool_size = max(1, size)
        if self._pool is not None:
            self._pool.size = self._pool_size
            self._pool.trim()

    def register_callable(self, target: str, func: Callable[..., Any]) -> None:
        """Functions registered from Python code (the decorator) run inline by target name."""
        self._callables[target] = func
        self._inline.pop(target, None)

    async def start(self, specs: list[TaskSpec]) -> None:
        """Pre-start the python pool when a task will need it."""
        if any(s.python is not None and s.isolation == "process" for s in specs):
            await self._ensure_pool()

    async def _ensure_pool(self) -> Any:
        async with self._pool_lock:
            if self._pool is None:
                from agentcron.actions._pool import PythonWorkerPool

                # a few workers started now, the rest (up to the node's max_concurrency)
                # when runs need them: a pool capped at 4 made the fifth of eight python
                # runs wait for a worker, its timeout running (outside-in probe)
                pool = PythonWorkerPool(min(self._pool_size, WARM_WORKERS), cwd=self._cwd)
                await pool.start()
                pool.size = self._pool_size
                self._pool = pool
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def __call__(self, spec: TaskSpec) -> Action:
        action = self._action(spec)
        if spec_needs_expansion(spec):
            return _Expanding(action)
        return action

    def _action(self, spec: TaskSpec) -> Action:
        kind = spec.action_kind
        if kind == "command":
            return self._cached("command", _command)
        if kind == "http":
            return self._cached("http", _http)
        if kind == "llm":
            return self._cached("llm", _llm)
        assert spec.python is not None
        if spec.isolation == "inline":
            # a function registered from code, else the target imported in this process
            action = self._inline.get(spec.python)
            if action is None:
                from agentcron.actions.python_action import InlinePythonAction

                action = InlinePythonAction(func=self._callables.get(spec.python), cwd=self._cwd)
                if spec.python in self._callables:  # an imported target may change: not kept
                    self._inline[spec.python] = action
            return action
        return _PooledPython(self)

    def _cached(self, key: str, make: Callable[[], Action]) -> Action:
        action = self._cache.get(key)
        if action is None:
            action = self._cache[key] = make()
        return action


class _Expanding:
    """Runs ``inner`` with the attempt's spec expanded from the environment and env file."""

    def __init__(self, inner: Action) -> None:
        self._inner = inner

    async def run(self, ctx: ActionContext) -> ActionResult:
        environ = current_environ()
        try:
            spec = expand_spec(ctx.spec, environ)
        except (MissingVariableError, PlaceholderError) as exc:
            return ActionResult(
                ok=False,
                failure=FailureInfo(
                    message=f"cannot run {ctx.task}: {exc}",
                    known_class=ErrorClass.CONFIG_ERROR,
                    action=ctx.spec.action_kind,
                ),
            )
        result = await self._inner.run(replace(ctx, spec=spec))
        if result.failure is None:
            return result
        written = placeholders_by_value(ctx.spec, environ)
        if not written:
            return result
        failure = result.failure
        body = failure.body
        return replace(
            result,
            failure=replace(
                failure,
                message=written(failure.message),
                body=written(body) if body is not None else None,
                # the tail a message quotes, as its first line does: it said
                # "${PLAIN_VALUE}" above "Last lines of output: … plainLEAKval42" (probe)
                output_tail=written(failure.output_tail),
            ),
        )


class _PooledPython:
    """Defers starting the pool until a pooled python action actually runs."""

    def __init__(self, registry: ActionRegistry) -> None:
        self._registry = registry

    async def run(self, ctx: Any) -> Any:
        from agentcron.actions.python_action import PythonAction

        pool = await self._registry._ensure_pool()
        return await PythonAction(pool).run(ctx)


def _command() -> Action:
    from agentcron.actions.command import CommandAction

    return CommandAction()


def _http() -> Action:
    from agentcron.actions.http_action import HttpAction

    return HttpAction()


def _llm() -> Action:
    from agentcron.actions.llm_action import LlmAction

    return LlmAction()
