"""Targets that misbehave towards the worker pool; imported by worker processes from tests/."""

from __future__ import annotations

import gc
import io
import os
import time


def huge_exc() -> None:
    raise ValueError("z" * (20 * 1024 * 1024))


def huge_return() -> str:
    return "y" * (20 * 1024 * 1024)


def garbage_answer() -> None:
    """Writes a line that is not JSON where the worker's answers go."""
    for obj in gc.get_objects():
        if isinstance(obj, io.BufferedWriter) and not obj.closed and obj.fileno() > 2:
            obj.write(b"this is not json\n")
            obj.flush()


def close_fds() -> None:
    os.closerange(3, 256)
    time.sleep(3)


def slow(seconds: float) -> str:
    print("working", flush=True)
    time.sleep(seconds)
    return "done"


def bad_row() -> None:
    print("reading rows", flush=True)
    raise ValueError("bad input row 42")


def fork_both_return() -> str:
    """Returns in the parent and in a forked copy of the worker (probe)."""
    pid = os.fork()
    return f"returned in {'child' if pid == 0 else 'parent'} pid={os.getpid()}"


def fork_child_raises() -> str:
    """The forked copy raises instead of calling os._exit (user code that forgets)."""
    if os.fork() == 0:
        raise RuntimeError("the child went on")
    return "parent"


def slow_fail() -> None:
    time.sleep(0.5)
    raise RuntimeError("deliberate failure")


def spawn_and_hang(marker: str) -> None:
    """Starts a process of its own (in the worker's group), notes both pids, hangs."""
    import subprocess

    child = subprocess.Popen(["sleep", "300"])
    with open(marker, "w") as out:
        out.write(f"{os.getpid()} {child.pid}\n")
    time.sleep(300)


def fork_child_fails_and_wait() -> str:
    """The parent waits for a forked child whose code raises: it must see it fail."""
    pid = os.fork()
    if pid == 0:
        raise RuntimeError("the child's own failure")
    _, status = os.waitpid(pid, 0)
    return f"child exit {os.waitstatus_to_exitcode(status)}"
