"""A pool of pre-started python-action worker processes.

Why processes: a python call that hangs or ignores everything can only be stopped
by killing the process it runs in. Why a pool: starting an interpreter and
importing the user's libraries on every run costs more than many runs take. A
worker that times out, dies or is cancelled is killed with its process group and
replaced in the background, so the next run finds a warm worker again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from agentcron.actions._worker import LINE_LIMIT
from agentcron.actions.base import ActionContext, ActionResult
from agentcron.actions.command import (
    group_alive,
    redact_for,
    say_duration,
    signal_name,
    terminate_group,
)
from agentcron.actions.output import read_output, tail_lines
from agentcron.classify.extract import cut
from agentcron.home import private_dirs
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import FailureInfo

log = logging.getLogger(__name__)

_CLOSE_GRACE = 1.0  # seconds a worker gets to exit when the pool closes


class WorkerStartError(RuntimeError):
    """A worker process could not be started or did not report ready."""


class PoolClosed(RuntimeError):
    """The pool was closed (the daemon is stopping) before a worker became free."""


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.calls = 0
        self.cwd: str | None = None  # the project directory whose code it has loaded
        self.stderr_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None


class PythonWorkerPool:
    """Runs ``python: module:function`` tasks in up to ``size`` worker processes.

    ``env`` is the workers' base environment (default: this process's); each call
    adds its task's ``env`` for its duration. ``cwd`` is where workers start and
    what a task without ``cwd`` imports from (default: this process's cwd). A worker
    is recycled after ``max_calls`` calls so state a task leaks cannot accumulate.
    """

    def __init__(
        self,
        size: int = 2,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        *,
        cwd: str | None = None,
        max_calls: int = 200,
        start_timeout: float = 30.0,
    ) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.size = size
        self._python = python
        self._env = _worker_env(env if env is not None else os.environ)
        self._cwd = cwd or os.getcwd()
        self._max_calls = max_calls
        self._start_timeout = start_timeout
        self._idle: deque[_Worker] = deque()
        self._workers: set[_Worker] = set()
        self._slots = 0  # workers alive or being started; never above size
        self._changed = asyncio.Event()  # set whenever a worker or a slot frees up
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """Pids of the live workers, busy or idle."""
        return sorted(w.pid for w in self._workers if w.alive)

    async def start(self) -> None:
        """Start workers up to ``size`` and wait until each is ready."""
        missing = self.size - self._slots
        self._slots += missing
        workers = await asyncio.gather(
            *(self._spawn() for _ in range(missing)), return_exceptions=True
        )
        errors = [w for w in workers if isinstance(w, BaseException)]
        self._slots -= len(errors)
        for w in workers:
            if isinstance(w, _Worker):
                self._make_idle(w)
        if errors:
            raise errors[0]

    async def close(self) -> None:
        """Stop every worker (a busy one too) and refuse further runs."""
        self._closed = True
        background = list(self._background)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        workers = list(self._workers)
        for w in workers:
            if w.proc.stdin is not None:
                w.proc.stdin.close()  # an idle worker exits at EOF
        await asyncio.gather(*(self._stop(w, _CLOSE_GRACE) for w in workers))
        for w in workers:
            self._forget(w)
        self._idle.clear()
        self._changed.set()

    async def __aenter__(self) -> PythonWorkerPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def run(self, ctx: ActionContext) -> ActionResult:
        """Run ``ctx.spec.python`` in a worker; the timeout includes waiting for one."""
        spec = ctx.spec
        if spec.python is None:
            raise ValueError(f"task {ctx.task!r} has no python target")
        cwd = _absolute(spec.cwd) or self._cwd
        if not _is_dir(cwd):
            return _failure(
                ctx, f"working directory does not exist: {cwd}", ErrorClass.CONFIG_ERROR
            )
        request = {
            "target": spec.python,
            "args": spec.args,
            "kwargs": spec.kwargs,
            "output": str(ctx.output_file),
            "cwd": cwd,
            "env": {**spec.env, **ctx.run_env},
        }
        private_dirs(ctx.output_file.parent)
        deadline = asyncio.get_running_loop().time() + ctx.timeout.total_seconds()
        # A worker that is stale, or that was found dead before the call began, is
        # replaced and the call goes to another; after size + 1 of them a fresh one has it.
        for _ in range(self.size + 2):
            result = await self._run_once(ctx, request, deadline)
            if result is not None:
                return result
        return _failure(ctx, "no python worker could take the call", ErrorClass.WORKER_LOST)

    async def _run_once(
        self, ctx: ActionContext, request: dict[str, Any], deadline: float
    ) -> ActionResult | None:
        loop = asyncio.get_running_loop()
        grace = ctx.kill_grace.total_seconds()
        try:
            worker = await asyncio.wait_for(
                self._acquire(request["cwd"]), max(0.0, deadline - loop.time())
            )
        except TimeoutError:
            return _failure(
                ctx,
                f"timed out after {say_duration(ctx.timeout)} waiting for a free python worker",
                ErrorClass.TIMEOUT,
            )
        except (WorkerStartError, PoolClosed) as exc:
            return _failure(ctx, str(exc), ErrorClass.WORKER_LOST)

        worker.calls += 1
        worker.cwd = request["cwd"]
        got_worker = loop.time()
        try:
            started, line = await asyncio.wait_for(
                self._exchange(worker, request), max(0.0, deadline - got_worker)
            )
        except TimeoutError:
            waited = got_worker - (deadline - ctx.timeout.total_seconds())
            spent = _split(waited, loop.time() - got_worker)
            killed = await self._retire(worker, grace)
            how = f"TERM, then KILL after {say_duration(ctx.kill_grace)}" if killed else "TERM"
            return _failure(
                ctx,
                f"timed out after {say_duration(ctx.timeout)}{spent}; killed python worker ({how})",
                ErrorClass.TIMEOUT,
            )
        except asyncio.CancelledError:
            await self._retire(worker, grace)
            raise
        except Exception as exc:  # its answer was unreadable: it cannot take another call
            return await self._unreadable(ctx, worker, exc)

        if not line:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker.proc.wait(), _CLOSE_GRACE)
            returncode = worker.proc.returncode
            await self._retire(worker, 0)  # and whatever it started
            if not started:  # it died before the call (killed while idle): no harm done
                log.warning("python worker %d was found dead (%s)", worker.pid, returncode)
                return None
            if returncode is None:
                return _pipe_closed(ctx, worker.pid)
            return _died(ctx, returncode)
        try:
            response = _parse(line)
        except ValueError as exc:
            return await self._unreadable(ctx, worker, exc)
        if "stale" in response:
            log.info("python worker %d retired: %s", worker.pid, response["stale"])
            await self._retire(worker, _CLOSE_GRACE)
            return None
        await self._release(worker)
        storage = response.get("storage")
        if isinstance(storage, dict):
            # agentcron's own write of the output failed (a full disk): the runner
            # records a fault of the home's storage, retried, not one of the task's
            raise OSError(
                storage.get("errno") or errno.EIO,
                storage.get("strerror") or "the run's output could not be written",
                storage.get("filename"),
            )
        if response.get("ok"):
            return ActionResult(ok=True, output=read_output(ctx.output_file))
        return ActionResult(ok=False, failure=_failure_info(response.get("failure") or {}, ctx))

    async def _unreadable(
        self, ctx: ActionContext, worker: _Worker, exc: Exception
    ) -> ActionResult:
        """A worker whose answer could not be read (too long, not JSON) is out of step
        with the pool: it is killed and replaced, so one odd run never shrinks the pool.
        The worker bounds its own answers, so what broke it is the function writing to
        the worker's pipe: a fault of the task's code, not retried (as a worker lost
        would be, running the function and its side effects again; outside-in probe)."""
        what = cut(f"{type(exc).__name__}: {exc}", 300)
        log.error(
            "python worker %d running %s: its answer could not be read (%s); "
            "the worker was killed and is replaced",
            worker.pid,
            ctx.task,
            what,
        )
        await self._retire(worker, 0)
        return _failure(
            ctx,
            f"the python worker's answer could not be read ({what}): did the function "
            "write to agentcron's pipe (a file descriptor it had not opened)? The worker "
            "was replaced",
            ErrorClass.CODE_ERROR,
        )

    async def _exchange(self, worker: _Worker, request: dict[str, Any]) -> tuple[bool, bytes]:
        """Send one request; return whether the user's code started, and the response
        line (b"" when the worker died). Raises ValueError for an unreadable line."""
        proc = worker.proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            return False, b""
        line = await proc.stdout.readline()
        if line and _parse(line).get("started"):
            return True, await proc.stdout.readline()
        return False, line

    async def _acquire(self, cwd: str) -> _Worker:
        """A worker for a task in ``cwd``, in order of preference: an idle one that has
        loaded code from ``cwd``, an idle one that has loaded none, a new one, any idle
        one (it will find itself stale and be replaced). Most recently used first, as
        it is the warmest."""
        while True:
            if self._closed:
                raise PoolClosed("the python worker pool is closed")
            for dead in [w for w in self._idle if not w.alive]:
                # Killed from outside while idle: reap what it left, then forget it.
                self._idle.remove(dead)
                await self._stop(dead, 0)
                self._forget(dead)
            worker = self._take_idle(cwd)
            if worker is not None:
                return worker
            if self._slots < self.size:
                self._slots += 1
                break
            if self._idle:
                return self._idle.pop()
            # Single-threaded: nothing can change between clear() and wait().
            self._changed.clear()
            await self._changed.wait()
        try:
            return await self._spawn()
        except BaseException:
            self._free_slot()
            raise

    def _take_idle(self, cwd: str) -> _Worker | None:
        for wanted in (cwd, None):
            for worker in reversed(self._idle):
                if worker.cwd == wanted:
                    self._idle.remove(worker)
                    return worker
        return None

    async def _release(self, worker: _Worker) -> None:
        over = len(self._workers) > self.size  # the pool was made smaller meanwhile
        if not worker.alive or self._closed or worker.calls >= self._max_calls or over:
            await self._retire(worker, _CLOSE_GRACE)
            return
        self._make_idle(worker)

    def _make_idle(self, worker: _Worker) -> None:
        self._idle.append(worker)
        self._changed.set()

    async def _retire(self, worker: _Worker, grace: float) -> bool:
        """Stop a worker, free its slot and start a replacement in the background.

        Cancelled meanwhile (a second cancellation of a run), it KILLs at once."""
        try:
            return await self._stop(worker, grace)
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(worker.pid, signal.SIGKILL)
            raise
        finally:
            self._forget(worker)
            if not self._closed and self._slots < self.size:
                self._slots += 1
                task = asyncio.create_task(self._warm_up())
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    def trim(self) -> int:
        """Retire idle workers above ``size`` (a lowered ``max_concurrency``), oldest
        first: they stayed, idle, until each retired by itself (outside-in probe: eight
        after a reload to two). Busy ones go as they come back (see :meth:`_release`).
        Returns how many were retired."""
        extra = min(len(self._idle), len(self._workers) - self.size)
        for _ in range(max(0, extra)):
            worker = self._idle.popleft()
            task = asyncio.create_task(self._retire_quietly(worker))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return max(0, extra)

    async def _retire_quietly(self, worker: _Worker) -> None:
        await self._retire(worker, _CLOSE_GRACE)

    def _forget(self, worker: _Worker) -> None:
        if worker in self._workers:
            self._workers.discard(worker)
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()
            if worker.stderr_task is not None:
                worker.stderr_task.cancel()
            self._free_slot()

    def _free_slot(self) -> None:
        self._slots -= 1
        self._changed.set()

    async def _warm_up(self) -> None:
        """Start a replacement worker (its slot is already reserved) and make it idle."""
        try:
            worker = await self._spawn()
        except WorkerStartError as exc:
            log.error("could not replace a python worker: %s", exc)
            self._free_slot()
            return
        except asyncio.CancelledError:
            self._free_slot()
            raise
        if self._closed:
            await self._stop(worker, 0)
            self._forget(worker)
            return
        self._make_idle(worker)

    async def _stop(self, worker: _Worker, grace: float) -> bool:
        if not worker.alive and not group_alive(worker.pid):
            return False
        return await terminate_group(worker.pid, worker.proc, grace)

    async def _spawn(self) -> _Worker:
        """Start one worker and wait for its ready line (the caller holds a slot for it)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                self._python,
                "-u",
                "-m",
                "agentcron.actions._worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self._cwd,
                env=self._env,
                start_new_session=True,
                limit=LINE_LIMIT,
            )
        except OSError as exc:
            raise WorkerStartError(f"cannot start python worker {self._python}: {exc}") from exc
        assert proc.stdout is not None and proc.stderr is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), self._start_timeout)
            ready = json.loads(line) if line else {}
        except (TimeoutError, ValueError):
            ready = {}
        except BaseException:
            await terminate_group(proc.pid, proc, 0)
            raise
        if not ready.get("ready"):
            await terminate_group(proc.pid, proc, 0)
            err = (await proc.stderr.read()).decode(errors="replace").strip()
            raise WorkerStartError(
                "python worker failed to start" + (f": {err.splitlines()[-1]}" if err else "")
            )
        worker = _Worker(proc)
        worker.stderr_task = asyncio.create_task(_log_stderr(proc.pid, proc.stderr))
        self._workers.add(worker)
        return worker


# Waiting shorter than this for a worker is not worth a word in a timeout's message.
_WAIT_WORTH_TELLING = 0.5


def _split(waited: float, ran: float) -> str:
    """How a timeout was spent, when part of it went to waiting for a free worker: a
    function stopped after 5 s of its 15 s is not one that overran (probe)."""
    if waited < _WAIT_WORTH_TELLING:
        return ""
    return (
        f": it waited {_seconds(waited)} for a free python worker "
        f"and the function ran {_seconds(ran)}"
    )


def _seconds(value: float) -> str:
    return say_duration(timedelta(seconds=round(value) if value >= 10 else round(value, 1)))


def _parse(line: bytes) -> dict[str, Any]:
    """One protocol line; ValueError when it is not a JSON object."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object: {line[:80]!r}")
    return data


async def _log_stderr(pid: int, stream: asyncio.StreamReader) -> None:
    """Drain what a worker writes to stderr outside of calls (during a call it goes to
    the run's output file), so it can never block on a full pipe."""
    async for line in stream:
        log.warning("python worker %d: %s", pid, line.decode(errors="replace").rstrip())


def _absolute(cwd: str | None) -> str | None:
    return os.path.abspath(os.path.expanduser(cwd)) if cwd else None


def _is_dir(path: str) -> bool:
    return os.path.isdir(path)  # one stat; not worth a thread


def _worker_env(base: Mapping[str, str]) -> dict[str, str]:
    """The workers' environment, with agentcron importable from a source checkout too.

    An installed agentcron needs nothing: putting site-packages on PYTHONPATH would
    move it ahead of the standard library.
    """
    env = dict(base)
    src = Path(__file__).resolve().parents[2]
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if src.name not in ("site-packages", "dist-packages") and str(src) not in paths:
        env["PYTHONPATH"] = os.pathsep.join([str(src), *paths])
    return env


def _failure(ctx: ActionContext, message: str, known: ErrorClass | None) -> ActionResult:
    return ActionResult(
        ok=False,
        failure=FailureInfo(
            message=message,
            known_class=known,
            output_tail=_tail(ctx),
            action="python",
        ),
    )


def _tail(ctx: ActionContext) -> str:
    return redact_for(tail_lines(ctx.output_file), ctx.spec.env, ctx.run_env)


def _died(ctx: ActionContext, returncode: int) -> ActionResult:
    # Ended by a signal the pool did not send: the classifier applies the same rule
    # as to a command (a kill from outside, such as the OOM killer's, is worker_lost
    # and retried; a crash of its own, such as SIGSEGV in a C extension, is
    # code_error). An exit code is the task's own doing and is classified as usual.
    if returncode < 0:
        how, exit_code, sig = f"killed by signal {signal_name(-returncode)}", None, -returncode
    else:
        how, exit_code, sig = f"exit code {returncode}", returncode, None
    return ActionResult(
        ok=False,
        exit_code=exit_code,
        failure=FailureInfo(
            message=f"python worker died ({how})",
            exit_code=exit_code,
            signal=sig,
            output_tail=_tail(ctx),
            action="python",
        ),
    )


def _pipe_closed(ctx: ActionContext, pid: int) -> ActionResult:
    """The worker closed its pipe to the pool but did not exit: the function closed
    file descriptors it had not opened (``os.closerange``), agentcron's among them."""
    log.error(
        "python worker %d running %s closed its pipe to agentcron but did not exit; "
        "it was killed and is replaced",
        pid,
        ctx.task,
    )
    return _failure(
        ctx,
        "the function closed agentcron's pipe to its python worker (did it close file "
        "descriptors it had not opened, such as with os.closerange?), so the worker "
        "stopped answering; the worker was replaced",
        ErrorClass.CODE_ERROR,
    )


def _failure_info(data: dict[str, Any], ctx: ActionContext) -> FailureInfo:
    """Rebuild the worker's FailureInfo, and redact what only the daemon knows is secret."""
    known = data.get("known_class")
    body = data.get("body")
    tail = str(data.get("output_tail") or "")
    return FailureInfo(
        message=redact_for(str(data.get("message") or ""), ctx.spec.env, ctx.run_env),
        exception_types=tuple(data.get("exception_types") or ()),
        exception_module=data.get("exception_module"),
        http_status=data.get("http_status"),
        headers=dict(data.get("headers") or {}),
        body=redact_for(str(body), ctx.spec.env, ctx.run_env) if body is not None else None,
        provider_code=data.get("provider_code"),
        exit_code=data.get("exit_code"),
        signal=data.get("signal"),
        output_tail=redact_for(tail, ctx.spec.env, ctx.run_env) if tail else _tail(ctx),
        known_class=ErrorClass(known) if known else None,
        action="python",
    )
