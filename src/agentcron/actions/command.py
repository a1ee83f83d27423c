"""The ``command`` action: run a program in its own process group.

The child gets the output file itself as stdout and stderr (no pipe for the daemon
to drain), so output lands on disk as it is written, survives a hung or killed run
and a daemon crash, and a grandchild that keeps the descriptor open cannot make
the daemon wait for an EOF. Each run is the leader of a new session, so a timeout
or a cancellation can signal everything it started at once; only a descendant
that calls ``setsid`` itself escapes that.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from agentcron.actions.base import ActionContext, ActionResult
from agentcron.actions.output import open_output, read_output, tail_lines
from agentcron.durations import format_duration
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import FailureInfo

if TYPE_CHECKING:
    from agentcron.orphans import EndRecord

log = logging.getLogger(__name__)

_POLL = 0.05  # seconds between checks while waiting for a signalled group to go
_REAP_LIMIT = 5.0  # seconds to wait for a SIGKILLed group to be gone
# How long a command whose daemon died gets between TERM and KILL (its kill_grace if
# shorter): a node taking the slot over must not find it still running.
ORPHAN_GRACE = 5.0
_SHIM = str(Path(__file__).with_name("_shim.py"))


class CommandAction:
    """Runs ``spec.command`` (argv list, or a string through ``/bin/sh -c`` with ``shell``)."""

    async def run(self, ctx: ActionContext) -> ActionResult:
        spec = ctx.spec
        if spec.command is None:
            raise ValueError(f"task {ctx.task!r} has no command")
        argv = ["/bin/sh", "-c", spec.command] if isinstance(spec.command, str) else spec.command
        env = {**os.environ, **spec.env, **ctx.run_env}
        cwd = _working_dir(spec.cwd)
        if cwd is not None and not _is_dir(cwd):
            return _spawn_failure(
                f"working directory does not exist: {cwd}", None, ErrorClass.CONFIG_ERROR
            )

        fd = open_output(ctx.output_file)
        status_r, status_w = os.pipe()  # the launcher's word on an exec that failed
        try:
            launch = _launcher(argv, ctx, status_w)
            # what fails to start here is agentcron's launcher, when there is one
            argv_start = (
                _launcher_failure(launch[0]) if launch is not argv else _command_failure(argv[0])
            )
            try:
                proc = await asyncio.create_subprocess_exec(
                    *launch,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=fd,
                    stderr=fd,
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                    pass_fds=(status_w,),
                )
            except OSError as exc:
                if cwd is not None and exc.filename == cwd:  # the working directory's fault
                    return _spawn_failure(
                        f"cannot enter the working directory {cwd}: {exc.strerror or exc}",
                        None,
                        ErrorClass.CONFIG_ERROR,
                    )
                return argv_start(exc)
            finally:
                os.close(fd)  # the child holds its own copies
                os.close(status_w)
            if ctx.on_started is not None:
                ctx.on_started(proc.pid)  # its own session: the pid is the group id
            return await self._wait(proc, ctx, argv, status_r)
        finally:
            os.close(status_r)

    async def _wait(
        self, proc: asyncio.subprocess.Process, ctx: ActionContext, argv: list[str], status: int
    ) -> ActionResult:
        spec = ctx.spec
        grace = ctx.kill_grace.total_seconds()
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + ctx.timeout.total_seconds()
            try:
                await asyncio.wait_for(proc.wait(), timeout=ctx.timeout.total_seconds())
                timed_out = False
            except TimeoutError:
                late = loop.time() - deadline
                timed_out = late < LOOKED_LATE or not await _exited_meanwhile(proc)
        except asyncio.CancelledError:
            await _stop_group(proc, grace)
            _launcher_end(ctx)  # what it stopped outside the group is said
            raise
        if timed_out:
            killed = await _stop_group(proc, grace)
            how = f"TERM, then KILL after {say_duration(ctx.kill_grace)}" if killed else "TERM"
            end = _launcher_end(ctx)
            also = (
                f"; also stopped what had left the group: {end.escaped}"
                if end and end.escaped and end.escaped_stopped
                else ""
            )
            return ActionResult(
                ok=False,
                failure=FailureInfo(
                    message=(
                        f"timed out after {say_duration(ctx.timeout)}; "
                        f"killed process group ({how}){also}"
                    ),
                    output_tail=redact_for(
                        _after_end(tail_lines, ctx.output_file), spec.env, ctx.run_env
                    ),
                    known_class=ErrorClass.TIMEOUT,
                    action="command",
                ),
            )

        if group_alive(proc.pid):
            # The command finished but left members of its group behind (a stray
            # `cmd &`); they belong to this run and must not outlive it.
            log.warning(
                "%s: its command ended but left processes running in its group %d; "
                "killing them (they belong to the run)",
                ctx.task,
                proc.pid,
                extra={"event": "stray_processes_killed", "task": ctx.task, "pgid": proc.pid},
            )
            await _stop_group(proc, grace)

        if proc.returncode in (126, 127):
            failed_exec = _exec_errno(status)
            if failed_exec is not None:
                return exec_failure(argv[0], failed_exec)
        return dataclasses.replace(_result_for(proc.returncode, ctx), ended_at=_ended_at(ctx))


def _launcher(argv: list[str], ctx: ActionContext, status_fd: int) -> list[str]:
    """The argv that starts ``argv`` through the launcher (see ``_shim``), which makes
    the command die with this process's event-loop thread and records its start and
    end beside the home. Without an interpreter to run it (an embedded Python), the
    command is started directly, as before the launcher existed."""
    if not sys.executable:
        return argv
    from agentcron.orphans import marker_for_output

    marker = marker_for_output(ctx.output_path, ctx.task, ctx.slot_id, ctx.attempt)
    grace = min(ctx.kill_grace.total_seconds(), ORPHAN_GRACE)
    return [
        sys.executable,
        "-I",
        "-S",
        _SHIM,
        str(status_fd),
        str(os.getpid()),
        str(threading.get_native_id()),  # the thread that forks: see the shim
        f"{grace:g}",
        f"{ctx.fence.total_seconds():g}",
        str(marker) if marker is not None else "",
        str(ctx.slot_id),
        str(ctx.attempt),
        str(ctx.output_path),
        "--",
        *argv,
    ]


def _exec_errno(status_fd: int) -> int | None:
    """What the launcher wrote when the command could not be executed, else None. Read
    once the launcher has exited, so it never blocks."""
    os.set_blocking(status_fd, False)
    try:
        data = os.read(status_fd, 32)
    except BlockingIOError:
        return None  # nothing written: the exec worked
    except OSError as exc:
        log.warning("could not read the launcher's exec status: %s", exc)
        return None
    return int(data) if data.strip().isdigit() else None


def exec_failure(program: str, errno_value: int) -> ActionResult:
    """The failure of a command that could not be started, as the shell would say it."""
    if errno_value == errno.ENOENT:
        return _spawn_failure(f"command not found: {program}", 127)
    if errno_value == errno.EACCES:
        return _spawn_failure(f"command is not executable: {program}", 126)
    return _spawn_failure(f"cannot execute {program}: {os.strerror(errno_value)}", 126)


def result_for_end(
    returncode: int | None, exec_errno: int | None, ctx: ActionContext
) -> ActionResult:
    """The result of a run whose end was recorded by its launcher while no daemon
    waited for it (``exec_errno``: it could not be started)."""
    argv = ctx.spec.command
    program = (argv if isinstance(argv, str) else argv[0]) if argv else ""
    if exec_errno is not None:
        return exec_failure("/bin/sh" if isinstance(argv, str) else program, exec_errno)
    return _result_for(returncode, ctx)


def _after_end(read: Callable[[Path], str], path: Path) -> str:
    """The output of a command that has ended, read by ``read``; if it cannot be read
    (its folder replaced by a file meanwhile, no permission), a line that says so. The
    command's own end stands: failed as "could not write the run's files", a finished
    run was retried and ran twice (outside-in probe)."""
    try:
        return read(path)
    except OSError as exc:
        log.error("could not read the output %s of a command that ended: %s", path, exc)
        return f"[agentcron could not read the output file {path}: {exc.strerror or exc}]\n"


# A chaos probe's SIGSTOP of a node past its lease was told as "killed by SIGKILL from
# outside agentcron, often the out-of-memory killer": it was the launcher's own fence.
FENCED = (
    "agentcron stopped the command: its daemon was frozen (SIGSTOP, a paused VM) for "
    "longer than its lease, and another node could have taken the run over"
)


def _launcher_end(ctx: ActionContext) -> EndRecord | None:
    """The command's end as its launcher recorded it (None without one), and what had
    left the run's group, which is said here: such a process ran on, untold, after its
    run's end or timeout (outside-in probe; see ``_shim``)."""
    from agentcron.orphans import ended_run, marker_for_output

    marker = marker_for_output(ctx.output_path, ctx.task, ctx.slot_id, ctx.attempt)
    end = ended_run(marker.parent.parent, ctx.slot_id, ctx.attempt) if marker else None
    if end is not None and end.scan_fault:
        log.warning(
            "%s: looking for processes its command left outside its process group, the "
            "launcher could not read %d process(es) (first: %s); one that left the group "
            "may have been missed",
            ctx.task,
            end.scan_faults or 1,
            end.scan_fault,
            extra={"event": "escapee_scan_fault", "task": ctx.task},
        )
    if end is None or not end.escaped:
        return end
    extra = {"event": "escaped_processes", "task": ctx.task, "stopped": end.escaped_stopped}
    if end.escaped_stopped:
        log.warning(
            "%s: stopped with its run what its command had started outside its process "
            "group (setsid, or a job of their own): %s",
            ctx.task,
            end.escaped,
            extra=extra,
        )
    else:
        # said in full once per task and set of programs, then at INFO: a task that
        # starts a daemon on purpose (tmux new -d, ssh -f) does so at every run
        programs = frozenset(re.findall(r"(\S+) \(pid \d+\)", end.escaped))
        first = _ESCAPES_SAID.get(ctx.task) != programs
        _ESCAPES_SAID[ctx.task] = programs
        log.log(
            logging.WARNING if first else logging.INFO,
            "%s: its command ended and left processes running outside its process group "
            "(setsid, a job of their own, a double fork): %s. They run on: agentcron "
            "stops them only when a run times out or is stopped. If they are the run's "
            "work, keep them in its group; if they are to outlive it, start them through "
            "a service manager (systemd-run)",
            ctx.task,
            end.escaped,
            extra=extra,
        )
    if end.escaped_left:
        log.error(
            "%s: %d process(es) its command started outside its process group could not "
            "be stopped, not even with SIGKILL (stuck in the kernel?): among %s",
            ctx.task,
            end.escaped_left,
            end.escaped,
            extra={"event": "escaped_processes_left", "task": ctx.task},
        )
    return end


# the programs last said of each task's runs that left processes outside their group
_ESCAPES_SAID: dict[str, frozenset[str]] = {}


def _ended_at(ctx: ActionContext) -> float | None:
    """When the command ended, as its launcher recorded it (None without one): a daemon
    frozen or held by a locked table saw the end later, and recorded "finished after
    running for 1 min" for a 20 s run (outside-in probe)."""
    end = _launcher_end(ctx)
    return end.ended_at if end is not None else None


def _stopped_by_launcher(ctx: ActionContext) -> bool:
    from agentcron.orphans import stopped_by_its_launcher

    return stopped_by_its_launcher(ctx.output_path, ctx.task, ctx.slot_id, ctx.attempt)


def _result_for(returncode: int | None, ctx: ActionContext) -> ActionResult:
    assert returncode is not None
    if returncode == 0:
        output = _after_end(read_output, ctx.output_file)
        return ActionResult(ok=True, output=output, exit_code=0)
    tail = redact_for(_after_end(tail_lines, ctx.output_file), ctx.spec.env, ctx.run_env)
    if returncode < 0:
        signum = -returncode
        if _stopped_by_launcher(ctx):
            return ActionResult(
                ok=False,
                failure=FailureInfo(
                    message=FENCED,
                    signal=signum,
                    output_tail=tail,
                    known_class=ErrorClass.WORKER_LOST,
                    action="command",
                ),
            )
        return ActionResult(
            ok=False,
            failure=FailureInfo(
                message=f"killed by signal {signal_name(signum)}",
                signal=signum,
                output_tail=tail,
                action="command",
            ),
        )
    return ActionResult(
        ok=False,
        exit_code=returncode,
        failure=FailureInfo(
            message=f"exited with code {returncode}",
            exit_code=returncode,
            output_tail=tail,
            action="command",
        ),
    )


def _command_failure(command: str) -> Callable[[OSError], ActionResult]:
    """The task's own command could not be started (no launcher in between)."""

    def failure(exc: OSError) -> ActionResult:
        short = _out_of_resources(exc)
        if short is not None:
            return short
        if isinstance(exc, FileNotFoundError):
            return _spawn_failure(f"command not found: {command}", 127)
        if isinstance(exc, PermissionError):
            return _spawn_failure(f"command is not executable: {command}", 126)
        # e.g. ENOEXEC: a script without a #! line
        return _spawn_failure(f"cannot execute {command}: {exc.strerror or exc}", 126)

    return failure


def _launcher_failure(interpreter: str) -> Callable[[OSError], ActionResult]:
    """agentcron's launcher (its own Python, which then starts the command) could not
    be started: the task's command never ran, and is not to blame. Said as agentcron's
    setup problem (permanent: a retry meets the same interpreter)."""

    def failure(exc: OSError) -> ActionResult:
        short = _out_of_resources(exc)
        if short is not None:
            return short
        return _spawn_failure(
            f"agentcron could not start its command launcher ({interpreter}): "
            f"{exc.strerror or exc}. The task's command did not run; the daemon's user "
            "must be able to run agentcron's Python (its folder's permissions, a venv "
            "under another user's home)",
            None,
            ErrorClass.CONFIG_ERROR,
        )

    return failure


def _out_of_resources(exc: OSError) -> ActionResult | None:
    """A start that failed for want of open files, memory or processes: the daemon's
    limit, retried (see :mod:`agentcron.classify.resources`)."""
    from agentcron.classify.resources import out_of_resources, resource_words

    what = out_of_resources(exc, spawning=True)
    if what is None:
        return None
    words = resource_words(what, exc, "starting the command, which did not run")
    return _spawn_failure(words, None, ErrorClass.WORKER_LOST)


def _spawn_failure(
    message: str, exit_code: int | None, known: ErrorClass | None = None
) -> ActionResult:
    return ActionResult(
        ok=False,
        exit_code=exit_code,
        failure=FailureInfo(
            message=message, exit_code=exit_code, known_class=known, action="command"
        ),
    )


EXIT_SEEN_GRACE = 1.0  # seconds a timed-out command's exit may take to be seen
LOOKED_LATE = 0.25  # seconds past the deadline the timeout fired: the loop was held


async def _exited_meanwhile(proc: asyncio.subprocess.Process) -> bool:
    """Whether a command whose timeout fired late had in fact exited: after the event
    loop was frozen (SIGSTOP, a paused VM, a blocking call) the timeout's timer and the
    child's exit come due together, and the timer runs first. Killed as timed out, a
    run that succeeded in two seconds was recorded failed and run again (found by an
    outside-in probe). Its exit, already waiting to be seen, is given a moment. Asked
    only when the timer fired :data:`LOOKED_LATE` or more after its deadline: on a loop
    that looked in time, a command that exits within the moment still ran past its
    timeout, and is one."""
    try:
        await asyncio.wait_for(proc.wait(), timeout=EXIT_SEEN_GRACE)
    except TimeoutError:
        return False
    return True


async def _stop_group(proc: asyncio.subprocess.Process, grace: float) -> bool:
    """:func:`terminate_group` for a run's group; a cancellation cuts the grace short."""
    try:
        return await terminate_group(proc.pid, proc, grace)
    except asyncio.CancelledError:
        _signal_group(proc.pid, signal.SIGKILL)
        raise


async def terminate_group(pgid: int, proc: asyncio.subprocess.Process, grace: float) -> bool:
    """TERM process group ``pgid``, wait up to ``grace`` seconds for it to empty, then KILL.

    ``proc`` is the group leader, a child of this process, so its exit is only seen
    once asyncio has reaped it. Returns whether KILL was needed. SIGCONT follows the
    TERM so a stopped member can act on it.
    """
    _signal_group(pgid, signal.SIGTERM)
    _signal_group(pgid, signal.SIGCONT)
    deadline = time.monotonic() + grace
    while True:
        if proc.returncode is not None and not group_alive(pgid):
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        await asyncio.sleep(min(_POLL, remaining))
    _signal_group(pgid, signal.SIGKILL)
    # KILL is delivered asynchronously: wait (bounded) until the members are gone,
    # so that "killed" is true when the caller reports it.
    deadline = time.monotonic() + _REAP_LIMIT
    while proc.returncode is None or group_alive(pgid):
        if time.monotonic() >= deadline:  # pragma: no cover - uninterruptible sleep (D state)
            log.error("process group %d survived SIGKILL for %.0fs", pgid, _REAP_LIMIT)
            break
        await asyncio.sleep(0.01)
    return True


def group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` has a member that is not a zombie.

    ``killpg(pgid, 0)`` alone also counts zombies, and an orphaned zombie may never
    be reaped when PID 1 does not reap (as in some containers); on Linux ``/proc``
    tells the two apart.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _live_member_in_proc(pgid)


def _live_member_in_proc(pgid: int) -> bool:
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no /proc: trust killpg, zombies included
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_bytes()
        except OSError:
            continue  # exited while we looked
        # "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def say_duration(delta: timedelta) -> str:
    """``format_duration``, except that a short duration keeps its fraction (``0.5s``)."""
    seconds = delta.total_seconds()
    if seconds < 60 and seconds != int(seconds):
        return f"{round(seconds, 2):g}s"
    return format_duration(delta)


def _working_dir(cwd: str | None) -> str | None:
    return os.path.expanduser(cwd) if cwd else None


def _is_dir(path: str) -> bool:
    return os.path.isdir(path)  # one stat; not worth a thread


def signal_name(signum: int) -> str:
    """``SIGKILL (9)``, or the bare number for a signal Python has no name for."""
    try:
        return f"{signal.Signals(signum).name} ({signum})"
    except ValueError:
        return str(signum)


def redact_for(text: str, *envs: Mapping[str, str]) -> str:
    """``text`` without secret shapes, nor the secret values of the daemon's environment
    (which a command inherits) and of the given ones."""
    from agentcron.redact import daemon_secrets, redact, secret_values_from_env

    extra = [v for env in envs for v in secret_values_from_env(env)]
    return redact(text, secrets=[*daemon_secrets(), *extra])
