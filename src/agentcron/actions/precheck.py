"""The precheck: a short command that decides whether a slot runs, and with what context.

Protocol (on the precheck's stdout, which is otherwise free-form log text):

- exit 0 and the last non-empty line is ``{"run": false, "reason": "…"}``: the slot
  is skipped and the reason recorded;
- exit 0 and the last non-empty line is ``{"context": "…"}`` (``"run": true`` may
  stand beside it): the task runs, and the llm action sees the context as an
  earlier turn of the conversation;
- exit 0 with any other output (none, plain text, JSON without those keys): the
  task runs without context;
- any other exit, a signal or a timeout: the slot fails like any attempt and is
  classified as usual (exit 75 is transient, a timeout is ``timeout``…).

Only the JSON boolean ``false`` skips: a precheck that cannot say what it means
should not silently stop a task. The precheck runs with the task's env and cwd, in
its own session, with stdout and stderr in anonymous files rather than pipes (so a
grandchild holding them open cannot stall the daemon), under a timeout of the
task's timeout but at most five minutes, and is stopped like a command (TERM, the
task's kill grace, KILL) using the command runner's process-group helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from typing import IO

from agentcron.actions.base import ActionContext
from agentcron.actions.command import group_alive, terminate_group
from agentcron.actions.output import OUTPUT_MEMORY_CAP, TAIL_LINES
from agentcron.durations import format_duration
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import FailureInfo
from agentcron.model.task import TaskSpec
from agentcron.redact import redact, secret_values_from_env

PRECHECK_TIMEOUT_CAP = timedelta(minutes=5)
DEFAULT_SKIP_REASON = "precheck answered run: false"


@dataclass(frozen=True)
class PrecheckOutcome:
    """What the precheck decided. ``failure`` is set (and ``run`` false) when it failed."""

    run: bool
    reason: str | None = None  # why the slot is skipped
    context: str | None = None  # text for the action, see the module docstring
    failure: FailureInfo | None = None


RUN = PrecheckOutcome(run=True)


async def run_precheck(spec: TaskSpec, ctx: ActionContext) -> PrecheckOutcome:
    """Run ``spec.precheck`` (if any) and interpret its answer; never raises for its failures.

    Raises ``asyncio.CancelledError`` when cancelled, after stopping the precheck.
    """
    if spec.precheck is None:
        return RUN
    if isinstance(spec.precheck, str):
        if not spec.shell:
            return _failed(
                "precheck is a string but shell is not true: give an argv list "
                '(["prog", "arg"]) or set shell: true',
                known=ErrorClass.CONFIG_ERROR,
            )
        argv = ["/bin/sh", "-c", spec.precheck]
    elif not spec.precheck:
        return _failed("precheck must not be empty", known=ErrorClass.CONFIG_ERROR)
    else:
        argv = list(spec.precheck)
    env = {**os.environ, **spec.env, **ctx.run_env}
    cwd = _working_dir(spec.cwd)
    if cwd is not None and not await asyncio.to_thread(os.path.isdir, cwd):
        return _failed(f"working directory does not exist: {cwd}", known=ErrorClass.CONFIG_ERROR)
    limit = precheck_timeout(ctx.timeout)
    secrets = tuple(secret_values_from_env({**spec.env, **ctx.run_env}))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError:
            return _failed(f"precheck command not found: {argv[0]}", exit_code=127)
        except PermissionError:
            return _failed(f"precheck command is not executable: {argv[0]}", exit_code=126)
        except OSError as exc:
            return _failed(f"cannot execute precheck {argv[0]}: {exc.strerror or exc}", 126)
        grace = ctx.kill_grace.total_seconds()
        try:
            await asyncio.wait_for(proc.wait(), timeout=limit.total_seconds())
        except TimeoutError:
            killed = await _stop(proc, grace)
            how = f"TERM, then KILL after {format_duration(ctx.kill_grace)}" if killed else "TERM"
            return _failed(
                f"precheck timed out after {format_duration(limit)}; "
                f"killed its process group ({how})",
                known=ErrorClass.TIMEOUT,
                tail=_tail(out, err, secrets),
            )
        except asyncio.CancelledError:
            await _stop(proc, grace)
            raise
        if group_alive(proc.pid):
            await _stop(proc, grace)  # strays of a finished precheck must not outlive it
        returncode = proc.returncode
        assert returncode is not None
        if returncode == 0:
            return interpret(_read_tail(out, OUTPUT_MEMORY_CAP))
        tail = _tail(out, err, secrets)
        if returncode < 0:
            return _failed(
                f"precheck was killed by signal {_signal_name(-returncode)}",
                signum=-returncode,
                tail=tail,
            )
        return _failed(f"precheck exited with code {returncode}", returncode, tail=tail)


def precheck_timeout(task_timeout: timedelta) -> timedelta:
    """A precheck is a quick look, not the work: it gets the task's timeout, at most 5 min."""
    return min(task_timeout, PRECHECK_TIMEOUT_CAP)


def interpret(stdout: str) -> PrecheckOutcome:
    """The decision carried by a successful precheck's stdout (see the module docstring)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return RUN
    try:
        answer = json.loads(lines[-1])
    except ValueError:
        return RUN
    if not isinstance(answer, dict):
        return RUN
    if answer.get("run") is False:
        reason = answer.get("reason")
        return PrecheckOutcome(
            run=False, reason=str(reason) if reason not in (None, "") else DEFAULT_SKIP_REASON
        )
    context = answer.get("context")
    if context is None or context == "":
        return RUN
    if not isinstance(context, str):
        context = json.dumps(context, ensure_ascii=False, indent=2)
    return PrecheckOutcome(run=True, context=context)


async def _stop(proc: asyncio.subprocess.Process, grace: float) -> bool:
    """TERM, grace, KILL the precheck's group; a second cancellation skips the grace."""
    try:
        return await terminate_group(proc.pid, proc, grace)
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise


def _working_dir(cwd: str | None) -> str | None:
    return os.path.expanduser(cwd) if cwd else None


def _failed(
    message: str,
    exit_code: int | None = None,
    *,
    known: ErrorClass | None = None,
    signum: int | None = None,
    tail: str = "",
) -> PrecheckOutcome:
    failure = FailureInfo(
        message=message,
        exit_code=exit_code,
        signal=signum,
        output_tail=tail,
        known_class=known,
        action="precheck",
    )
    return PrecheckOutcome(run=False, failure=failure)


def _read_tail(f: IO[bytes], max_bytes: int) -> str:
    """The last ``max_bytes`` of an anonymous output file, as text."""
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - max_bytes))
    return f.read().decode("utf-8", errors="replace")


def _tail(out: IO[bytes], err: IO[bytes], secrets: tuple[str, ...]) -> str:
    """The last lines of stdout followed by stderr (stderr last: it says why), redacted."""
    lines = [line for f in (out, err) for line in _read_tail(f, 16 * 1024).splitlines()]
    return redact("\n".join(lines[-TAIL_LINES:]), secrets=secrets)


def _signal_name(signum: int) -> str:
    try:
        return f"{signal.Signals(signum).name} ({signum})"
    except ValueError:
        return str(signum)
