"""The launcher every ``command`` run starts through: the command dies with its daemon.

Why a launcher: a command in its own process group outlives a daemon that is killed
(kill -9, OOM). On restart, or on another node once the lease lapses, the slot would be
retried while the first command still runs: the same slot executed twice at once. And a
command that finishes while its daemon is dead has nobody to record its end.

So the daemon starts ``python -I -S _shim.py ... -- argv`` as the leader of the run's
new session (the process group the timeout and the cancellation signal, as before).
The launcher

1. asks Linux to send it SIGUSR1 when the daemon's thread that started it dies
   (``prctl(PR_SET_PDEATHSIG)``; Linux sends it when the *thread* that forked the child
   ends, which here is the event-loop thread, so that thread's id is checked too), then
   checks at once that the daemon is still its parent (it may have died while this
   interpreter started);
2. writes the run's marker (slot, attempt, its own pid = the group id, start time)
   under the home, before the command exists, then forks and execs the command;
3. waits for the command, writes the end (exit status, end time) into the marker
   (this process waited for it, so the end is on disk even if the daemon is gone),
   and exits the way the command did (same code, or killed by the same signal), so
   the daemon sees what it would have seen without the launcher;
4. if the daemon dies first: a quarter second for a command that is already ending
   (its end is then its own), else TERM to the group, up to the grace given (at most a
   few seconds) for the command to go, the end marked as ``orphaned``, KILL to the
   group (the launcher included);
5. with a ``fence`` (several nodes share the database): the same when the daemon has
   been stopped (SIGSTOP, state ``T``) for ``fence`` seconds, its lease. Another node
   takes the slot over once the lease has lapsed, and a frozen daemon cannot stop its
   command: left running, the slot ran twice at once (found by a chaos soak).

Signals sent to the group reach the command directly; the launcher blocks and
ignores them (a TERM to the group must not kill the one process that records the
end). Where prctl is not available (not Linux, no ctypes) the launcher checks its
parent once a second instead.

Cost: this file runs with ``-I -S`` and imports only C modules (``_signal`` rather than
``signal``, whose enums cost more than the rest of the start) and ctypes: about 15 ms of
interpreter start in the child and ~8 MB while the command runs. The daemon's side of a
spawn (one fork/exec and one pipe) is what it was.

It must stay importable without side effects and free of agentcron imports: it is run
as a plain script, outside the installed package's import path.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing itself costs ~10 ms to import; mypy knows this name
if TYPE_CHECKING:  # the C module has no stub; the signal module's names type it
    import signal as _signal
    from collections.abc import Callable
else:
    import _signal

DEATH_SIGNAL = _signal.SIGUSR1
# faults of the launcher itself must not be blocked (blocking them is undefined)
_UNBLOCKABLE: set[int] = {
    _signal.SIGKILL,
    _signal.SIGSTOP,
    _signal.SIGSEGV,
    _signal.SIGBUS,
    _signal.SIGFPE,
    _signal.SIGILL,
    _signal.SIGTRAP,
    _signal.SIGSYS,
    _signal.SIGABRT,
}
_PR_SET_PDEATHSIG = 1
_POLL = 1.0  # seconds between parent checks without prctl
SETTLE = 0.25  # seconds a command may take to end on its own once its daemon is gone


def json_value(value: object) -> str:
    """JSON for the few scalar types a marker holds (the json module costs ~10 ms to
    import, a third of this process's start)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch < " " or "\ud800" <= ch <= "\udfff":  # control, or undecodable path byte
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def write_marker(path: str, fields: dict[str, object]) -> bool:
    """Replace the marker at ``path`` atomically (a reader sees the old or the new one)."""
    if not path:
        return False
    body = "{" + ", ".join(f"{json_value(k)}: {json_value(v)}" for k, v in fields.items()) + "}\n"
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)  # HOME/runs
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, body.encode("utf-8", "surrogatepass"))
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        return False  # bookkeeping: the command still runs, the daemon still waits for it
    return True


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, as orphans.start_time reads it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return int(stat[stat.rfind(b")") + 2 :].split()[19])
    except (OSError, IndexError, ValueError):
        return None  # no /proc entry: the marker then carries no start time, and the
        # daemon stops the group by its id alone (it is this process's own group)


def set_death_signal() -> bool:
    """``prctl(PR_SET_PDEATHSIG, DEATH_SIGNAL)``; False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(DEATH_SIGNAL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def stopped(pid: int) -> bool:
    """Whether ``pid`` is stopped (SIGSTOP, or traced): its state in /proc is T or t."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False  # gone (parent_gone says so) or no /proc: nothing known
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] in (b"T", b"t")


def parent_gone(parent: int, thread: int) -> bool:
    """Whether the daemon (or its thread that started this process) has died."""
    if os.getppid() != parent:
        return True
    tasks = f"/proc/{parent}/task"
    return thread > 0 and os.path.isdir(tasks) and not os.path.exists(f"{tasks}/{thread}")


class Launcher:
    """One run: see the module docstring. ``argv`` is the launcher's own arguments."""

    def __init__(self, argv: list[str]) -> None:
        sep = argv.index("--")
        (status_fd, parent, thread, grace, fence, marker, slot, attempt, output) = argv[:sep]
        self.status_fd = int(status_fd)
        self.parent = int(parent)
        self.thread = int(thread)
        self.grace = float(grace)
        self.fence = float(fence)  # seconds the daemon may be stopped (0: no limit)
        self.frozen_since: float | None = None
        self.marker = marker
        self.command = argv[sep + 1 :]
        self.child = 0
        me = os.getpid()
        self.fields: dict[str, object] = {
            "slot": int(slot),
            "attempt": int(attempt),
            "host": os.uname().nodename,
            "pgid": me,
            "pgid_start": start_ticks(me),
            "daemon_pid": self.parent,
            "output": output,
            "started_at": time.time(),
        }

    def run(self) -> None:
        if self.status_fd >= 0:
            os.set_inheritable(self.status_fd, False)
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)  # an inherited SIG_IGN would reap
        watched = {int(s) for s in _signal.valid_signals()} - _UNBLOCKABLE
        original = _signal.pthread_sigmask(_signal.SIG_BLOCK, watched)
        guarded = set_death_signal()
        if parent_gone(self.parent, self.thread):
            self.end(orphaned=True)  # the daemon died before the command could start
            os._exit(1)
        write_marker(self.marker, self.fields)
        self.spawn(original)
        timeout = None if guarded and self.fence <= 0 else _POLL
        while True:
            signum = self.next_signal(watched, timeout)
            if signum == _signal.SIGCHLD or signum is None:
                status = self.reaped()
                if status is not None:
                    self.end(status=status)
                    exit_like(status)
            if signum in (DEATH_SIGNAL, None) and parent_gone(self.parent, self.thread):
                self.orphaned(watched)
            if signum is None and self.fence > 0 and self.parent_frozen():
                self.orphaned(watched)
            # any other signal was sent to the whole group: the command has it too

    def parent_frozen(self) -> bool:
        """Whether the daemon has been stopped (state T) for ``fence`` seconds."""
        if not stopped(self.parent):
            self.frozen_since = None
            return False
        now = time.monotonic()
        if self.frozen_since is None:
            self.frozen_since = now
        return now - self.frozen_since >= self.fence

    def spawn(self, original_mask: set[int]) -> None:
        """Fork and exec the command; an exec failure is reported and ends the launcher."""
        err_r, err_w = os.pipe()  # close-on-exec: EOF means the exec worked
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child either execs or _exits
            try:
                os.close(err_r)
                for signum in (_signal.SIGPIPE, _signal.SIGXFSZ):  # Python ignores these
                    _signal.signal(signum, _signal.SIG_DFL)
                _signal.pthread_sigmask(_signal.SIG_SETMASK, original_mask)
                os.execvp(self.command[0], self.command)
            except OSError as exc:
                os.write(err_w, str(exc.errno or 0).encode())
            finally:
                os._exit(127)
        os.close(err_w)
        self.child = pid
        self.fields["command_pid"] = pid
        chunks = []
        while chunk := os.read(err_r, 64):
            chunks.append(chunk)
        os.close(err_r)
        if not chunks:
            return
        errno = int(b"".join(chunks) or b"0")
        os.waitpid(pid, 0)
        if self.status_fd >= 0:
            _quietly(os.write, self.status_fd, str(errno).encode())
        self.fields["exec_errno"] = errno
        code = 127 if errno == 2 else 126  # ENOENT; else as a shell says it
        self.end(status=code << 8)
        os._exit(code)

    @staticmethod
    def next_signal(watched: set[int], timeout: float | None) -> int | None:
        if timeout is None:
            return int(_signal.sigwait(watched))
        if hasattr(_signal, "sigtimedwait"):
            info = _signal.sigtimedwait(watched, timeout)
            return None if info is None else int(info.si_signo)
        _signal.setitimer(_signal.ITIMER_REAL, timeout)  # pragma: no cover - not Linux
        signum = int(_signal.sigwait(watched))  # pragma: no cover
        return None if signum == _signal.SIGALRM else signum  # pragma: no cover

    def reaped(self) -> int | None:
        try:
            pid, status = os.waitpid(self.child, os.WNOHANG)
        except ChildProcessError:
            return 0
        return status if pid else None

    def end(self, status: int | None = None, orphaned: bool = False) -> None:
        fields = self.fields
        if status is not None and os.WIFSIGNALED(status):
            fields["signal"] = os.WTERMSIG(status)
        elif status is not None:
            fields["exit_code"] = os.WEXITSTATUS(status)
        fields["orphaned"] = orphaned
        fields["ended_at"] = time.time()
        write_marker(self.marker, fields)

    def orphaned(self, watched: set[int]) -> None:
        """The daemon is gone: stop the group (gently for up to ``grace``), mark, KILL.
        A command that had already ended on its own (its end and the daemon's death
        came together) keeps its real outcome: it is not an orphan, and its slot
        must not be run again (found by the soak)."""
        status = self.reaped()
        settle = time.monotonic() + SETTLE
        while status is None and (left := settle - time.monotonic()) > 0:
            # A command that has done its work may still be exiting (an interpreter's
            # teardown takes tens of ms): a moment before TERM lets it end on its own.
            self.next_signal(watched, min(left, 0.05))
            status = self.reaped()
        if status is not None:
            self.end(status=status)
            exit_like(status)
        me = os.getpid()
        for signum in (_signal.SIGTERM, _signal.SIGCONT):
            _quietly(os.killpg, me, signum)
        status = self.reaped()
        deadline = time.monotonic() + self.grace
        while status is None and (left := deadline - time.monotonic()) > 0:
            self.next_signal(watched, min(left, 0.1))
            status = self.reaped()
        # A command that exits 0 within the grace finished its work (it ignored the TERM
        # or was about to end): a success to keep, not an interruption to run again.
        done = status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        self.end(status=status, orphaned=not done)
        os.killpg(me, _signal.SIGKILL)
        os._exit(1)  # pragma: no cover - the KILL above ends this process


def exit_like(status: int) -> None:
    """Exit as the command did: its code, or death by its signal (no core of our own)."""
    if not os.WIFSIGNALED(status):
        os._exit(os.WEXITSTATUS(status))
    signum = os.WTERMSIG(status)
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, OSError, ValueError):
        pass  # no core-size limit to set here: the only cost is a possible core file
    _quietly(_signal.signal, signum, _signal.SIG_DFL)  # SIGKILL cannot be, nor need be
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, {signum})
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # a signal whose default is not to terminate


def _quietly(call: Callable[..., object], *args: object) -> None:
    """``call(*args)``, ignoring OSError and ValueError (contextlib costs an import)."""
    try:
        call(*args)
    except (OSError, ValueError):
        return  # the process or group is already gone, or the fd already closed


if __name__ == "__main__":
    Launcher(sys.argv[1:]).run()
