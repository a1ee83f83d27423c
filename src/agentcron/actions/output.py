"""Where a run's output lives on disk, and how to read it back cheaply.

Every attempt writes to its own file under ``HOME/outputs/TASK/``. The file is the
complete record; what travels in memory (the action result, a failure's tail) is a
bounded excerpt of it, so a run that prints gigabytes cannot exhaust the daemon.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from agentcron.model.task import TASK_NAME

OUTPUT_MEMORY_CAP = 1024 * 1024  # bytes of output an ActionResult carries at most
TAIL_LINES = 20
TAIL_MAX_BYTES = 64 * 1024


def output_file_name(
    home: Path,
    task: str,
    scheduled_for: datetime,
    attempt: int,
    suffix: str = ".log",
    *,
    slot_id: int | None = None,
) -> str:
    """The output file of one attempt: ``HOME/outputs/TASK/20260329T030000Z-s42-a1.log``.

    The name starts with the slot's UTC time in a fixed-width basic ISO form, so a
    plain directory listing sorts chronologically, and carries no ``:`` (not allowed
    on every filesystem). The slot id keeps two slots of the same instant (a manual
    trigger beside a scheduled one) apart; the attempt keeps retries apart. A naive
    ``scheduled_for`` is taken to be UTC.
    """
    if not TASK_NAME.match(task):
        raise ValueError(f"invalid task name for an output path: {task!r}")
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    when = scheduled_for.replace(tzinfo=UTC) if scheduled_for.tzinfo is None else scheduled_for
    u = when.astimezone(UTC)
    stamp = f"{u.year:04d}{u.month:02d}{u.day:02d}T{u.hour:02d}{u.minute:02d}{u.second:02d}Z"
    slot = f"-s{slot_id}" if slot_id is not None else ""
    return f"{output_folder(home, task)}/{stamp}{slot}-a{attempt}{suffix}"


def output_folder(home: Path | str, task: str) -> str:
    """Where a task's output files go (made by the first write, or ahead of a burst)."""
    return f"{home}/outputs/{task}"


def open_output(path: str | os.PathLike[str]) -> int:
    """Create (or truncate) an output file and return a raw fd opened for appending.

    ``O_APPEND`` matters: a child process and its grandchildren all write through
    the same file description, and appending keeps their lines from overwriting
    each other. The fd is also readable, so the writer can look at what is there.
    The folder is made only when the open says it is missing: one system call per
    run in the usual case, not a walk up the path.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(os.fspath(path)), exist_ok=True)
        return os.open(path, flags, 0o644)


def read_output(path: Path, max_bytes: int = OUTPUT_MEMORY_CAP) -> str:
    """The start of an output file, at most ``max_bytes``, marked when cut short."""
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        return ""
    if len(data) <= max_bytes:
        return data.decode("utf-8", errors="replace")
    text = data[:max_bytes].decode("utf-8", errors="ignore")
    return f"{text}\n[... {size - max_bytes} more bytes in {path}]\n"


def tail_lines(path: Path, n: int = TAIL_LINES, max_bytes: int = TAIL_MAX_BYTES) -> str:
    """The last ``n`` lines of a file, reading no more than its last ``max_bytes``."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            # One byte before the window tells whether its first line is whole.
            start = max(0, size - max_bytes - 1)
            f.seek(start)
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        return ""
    if start > 0:
        cut = data.find(b"\n")
        # No newline at all in the window: a fragment of one long line beats nothing.
        data = data[cut + 1 :] if 0 <= cut < len(data) - 1 else data[1:]
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-n:]) if n > 0 else ""
