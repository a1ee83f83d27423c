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

6. is the *child subreaper* of what the command starts (``PR_SET_CHILD_SUBREAPER``),
   so a process that left the group (``setsid``, a job of its own under ``set -m``, a
   double fork) is still found: a descendant outside the group. When the group is sent
   TERM (a timeout, a stop) or the daemon dies, such escapees are stopped with it
   (TERM, then KILL within the grace, before the daemon's KILL of the group would end
   the launcher): without that an escapee ran on after its run's timeout, beside the
   retry of the same slot. When the command ends on its own they are named, not
   stopped (``tmux new -d``, ``podman run -d``, ``ssh -f`` detach on purpose), and the
   launcher exits at once: the daemon's wait for the run is the command's. Their
   names go into the marker (``escaped``; ``escaped_stopped`` when they were stopped).

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
_PR_SET_CHILD_SUBREAPER = 36
_POLL = 1.0  # seconds between parent checks without prctl
SETTLE = 0.25  # seconds a command may take to end on its own once its daemon is gone
ESCAPEE_SHARE = 0.8  # of the grace an escapee gets after TERM: KILLed before the daemon's
ESCAPEE_STUCK = 5.0  # seconds past the KILL after which an unkillable escapee is given up
ESCAPEES_NAMED = 5  # in the marker; the rest are counted


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


_libc: list[object] = []  # loaded once: the two prctl calls of a start share it


def _prctl(option: int, value: int) -> bool:
    """``prctl(option, value)``; False where that is not possible (not Linux, no ctypes)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        if not _libc:
            import ctypes

            _libc.append(ctypes.CDLL(None, use_errno=True))
        return int(_libc[0].prctl(option, value, 0, 0, 0)) == 0  # type: ignore[attr-defined]
    except (OSError, AttributeError):
        return False


def set_death_signal() -> bool:
    """``prctl(PR_SET_PDEATHSIG, DEATH_SIGNAL)``; False where that is not possible."""
    return _prctl(_PR_SET_PDEATHSIG, int(DEATH_SIGNAL))


def set_subreaper() -> bool:
    """``prctl(PR_SET_CHILD_SUBREAPER)``: orphans among the command's descendants become
    this process's children instead of init's; False where that is not possible."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _stat_fields(pid: int | str) -> tuple[str, int, int] | None:
    """State, parent and process group of ``pid`` from /proc; None when it has ended
    since /proc was listed (nothing to look for). Any other failure is raised: the
    scan could then miss what the command left (see :func:`escapees`)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = stat[stat.rfind(b")") + 2 :].split()
    return rest[0].decode("ascii", "replace"), int(rest[1]), int(rest[2])


def children_of(pid: int) -> list[int] | None:
    """The children of ``pid`` (a single-threaded process) from /proc, or None when the
    kernel does not list them (no CONFIG_PROC_CHILDREN) or the list cannot be read:
    nothing is lost then, :func:`escapees` reads all of /proc instead."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as fh:
            return [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return None  # the full scan stands in (see the docstring)


def escapees(me: int, faults: list[str]) -> list[int]:
    """Live descendants of ``me`` outside its process group (the run's group).

    Once the command has ended they are this process's own children (it is their
    subreaper), so an empty list of children settles it without reading every
    process; otherwise all of /proc is read once and the tree walked down from ``me``.
    What cannot be read is added to ``faults`` (the marker says it, the daemon logs
    it): a process that left the group may then have been missed. Off Linux there is
    no /proc to read, and nothing is looked for."""
    if not sys.platform.startswith("linux") or children_of(me) == []:
        return []
    parents: dict[int, list[tuple[int, str, int]]] = {}
    try:
        names = os.listdir("/proc")
    except OSError as exc:
        faults.append(f"/proc: {exc.strerror or exc}")
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            fields = _stat_fields(name)
        except (OSError, IndexError, ValueError) as exc:
            said = getattr(exc, "strerror", None) or repr(exc)
            faults.append(f"/proc/{name}/stat: {said}")
            continue
        if fields is not None:
            state, ppid, pgid = fields
            parents.setdefault(ppid, []).append((int(name), state, pgid))
    found: list[int] = []
    todo = [me]
    while todo:
        for pid, state, pgid in parents.get(todo.pop(), ()):
            todo.append(pid)
            if pgid != me and state not in ("Z", "X"):
                found.append(pid)
    return found


def named(processes: dict[int, str]) -> str:
    """``sleep (pid 4242), sh (pid 4243)``, the first few, the rest counted."""
    shown = [f"{name} (pid {pid})" for pid, name in processes.items()]
    more = len(shown) - ESCAPEES_NAMED
    return ", ".join(shown[:ESCAPEES_NAMED]) + (f" and {more} more" if more > 0 else "")


def process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as fh:
            return fh.read().decode("utf-8", "replace").strip() or "?"
    except OSError:
        return "?"


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
        self.status: int | None = None  # the command's, once reaped
        self.subreaper = False
        self.escaped: dict[int, str] = {}  # pid: name, of what left the group
        self.termed: set[int] = set()
        self.kill_escapees_at: float | None = None  # monotonic, once they were sent TERM
        self.swept = False  # a KILL round found none left: no more looks while it waits
        self.scan_faults = 0  # processes the look for escapees could not read
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
        self.subreaper = set_subreaper()
        if parent_gone(self.parent, self.thread):
            self.end(orphaned=True)  # the daemon died before the command could start
            os._exit(1)
        write_marker(self.marker, self.fields)
        self.spawn(original)
        timeout = None if guarded and self.fence <= 0 else _POLL
        while True:
            # while escapees wait for their KILL, a short look instead of sleeping on
            waiting = self.kill_escapees_at is not None and not self.swept
            signum = self.next_signal(watched, 0.1 if waiting else timeout)
            if signum == _signal.SIGCHLD or signum is None:
                status = self.reaped()
                if status is not None:
                    self.end(status=status)  # the command's own end, on disk first
                    if self.kill_escapees_at is not None:  # the run is being stopped
                        self.stop_escapees(watched)
                    else:
                        self.name_escapees()
                    if self.escaped or self.scan_faults:
                        write_marker(self.marker, self.fields)
                    exit_like(status)
            if signum in (DEATH_SIGNAL, None) and parent_gone(self.parent, self.thread):
                self.orphaned(watched)
            if signum is None and self.fence > 0 and self.parent_frozen():
                self.orphaned(watched)
            if signum == _signal.SIGTERM:
                # the daemon stops the group (a timeout, a stop): what left it goes too,
                # while this process lives to send the KILL (the daemon's own KILL of
                # the group comes after its grace, and would end this process first)
                self.term_escapees()
            elif signum is None:
                self.kill_escapees_if_due()
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
        """The command's status once it has ended, else None. Every child that has
        ended is reaped: as their subreaper this process inherits the command's
        orphans, which would otherwise stay zombies until it exits."""
        while self.status is None or self.subreaper:
            try:
                pid, status = os.waitpid(-1 if self.subreaper else self.child, os.WNOHANG)
            except ChildProcessError:
                return 0 if self.status is None else self.status
            if not pid:
                break
            if pid == self.child:
                self.status = status
        return self.status

    def escapees(self) -> list[int]:
        """:func:`escapees` of this process; what could not be read goes into the
        marker's ``scan_fault`` (the first such, and how many)."""
        faults: list[str] = []
        found = escapees(os.getpid(), faults)
        if faults:
            self.scan_faults += len(faults)
            self.fields.setdefault("scan_fault", faults[0])
            self.fields["scan_faults"] = self.scan_faults
        return found

    def note(self, pid: int, stopped: bool) -> None:
        """Name ``pid`` among what left the group (its latest name: ``setsid`` becomes
        the program it runs), in the fields the marker is written from."""
        self.escaped[pid] = process_name(pid)
        self.fields["escaped"] = named(self.escaped)
        if stopped:
            self.fields["escaped_stopped"] = True

    def name_escapees(self) -> None:
        """The command ended on its own: what it left outside the group is named and
        left running (it may have been detached on purpose)."""
        for pid in self.escapees():
            self.note(pid, stopped=False)

    def term_escapees(self) -> None:
        """The group is being stopped: TERM (and CONT) what left it too; their KILL
        falls due within the grace. Their names are written at once: the daemon's KILL
        of the group may end this process before the command's end is written."""
        if self.kill_escapees_at is not None:
            return
        self.kill_escapees_at = time.monotonic() + self.grace * ESCAPEE_SHARE
        for pid in self.escapees():
            self.note(pid, stopped=True)
            self.termed.add(pid)
            for signum in (_signal.SIGTERM, _signal.SIGCONT):
                _quietly(os.kill, pid, signum)
        if self.escaped or self.scan_faults:
            write_marker(self.marker, self.fields)

    def kill_escapees_if_due(self) -> None:
        if self.kill_escapees_at is None or self.swept or time.monotonic() < self.kill_escapees_at:
            return
        left = self.escapees()
        for pid in left:
            self.note(pid, stopped=True)
            _quietly(os.kill, pid, _signal.SIGKILL)
        # none left: no more reading of every process while a command ignores its TERM
        # for the rest of a long grace (the end's sweep still looks once)
        self.swept = not left

    def stop_escapees(self, watched: set[int]) -> None:
        """The run is being stopped and its command has ended (or the daemon is gone):
        what left the group is stopped, TERM, then KILL once its share of the grace is
        up; unkillable ones (state D) are given up ``ESCAPEE_STUCK`` after the KILL and
        counted in the fields."""
        left = self.escapees()
        if self.kill_escapees_at is None and left:
            self.kill_escapees_at = time.monotonic() + self.grace * ESCAPEE_SHARE
        while left and self.kill_escapees_at is not None:
            now = time.monotonic()
            if now >= self.kill_escapees_at + ESCAPEE_STUCK:
                self.fields["escaped_left"] = len(left)
                break
            for pid in left:
                self.note(pid, stopped=True)
                if now >= self.kill_escapees_at:
                    _quietly(os.kill, pid, _signal.SIGKILL)
                elif pid not in self.termed:
                    self.termed.add(pid)
                    for signum in (_signal.SIGTERM, _signal.SIGCONT):
                        _quietly(os.kill, pid, signum)
            self.next_signal(watched, 0.05)
            self.reaped()
            left = self.escapees()

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
            self.stop_escapees(watched)  # the daemon is gone: nobody watches them
            if self.escaped or self.scan_faults:
                write_marker(self.marker, self.fields)
            exit_like(status)
        me = os.getpid()
        for signum in (_signal.SIGTERM, _signal.SIGCONT):
            _quietly(os.killpg, me, signum)
        self.term_escapees()
        status = self.reaped()
        deadline = time.monotonic() + self.grace
        while status is None and (left := deadline - time.monotonic()) > 0:
            self.next_signal(watched, min(left, 0.1))
            self.kill_escapees_if_due()
            status = self.reaped()
        self.stop_escapees(watched)  # the group's KILL follows
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
