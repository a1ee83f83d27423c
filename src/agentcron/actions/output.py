"""Where a run's output lives on disk, and how to read it back cheaply.

Every attempt writes to its own file under ``HOME/outputs/TASK/``. The file is the
complete record; what travels in memory (the action result, a failure's tail) is a
bounded excerpt of it, so a run that prints gigabytes cannot exhaust the daemon.

Output files are 0600 in 0700 folders, and once the attempt has ended the runner
removes secrets from the file (:func:`redact_file`), so what is kept is what any
later reader may see, whatever their environment.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from agentcron.home import PRIVATE_FILE_MODE, private_dirs
from agentcron.model.task import TASK_NAME
from agentcron.redact import line_secrets, redact

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
    if not TASK_NAME.fullmatch(task):
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


def home_of_output(path: Path | str) -> str:
    """The home an output file of :func:`output_file_name` is in (``HOME`` of
    ``HOME/outputs/TASK/FILE``; a task's name holds no ``/``)."""
    return str(path).rsplit("/outputs/", 1)[0]


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
        return os.open(path, flags, PRIVATE_FILE_MODE)
    except FileNotFoundError:
        private_dirs(os.path.dirname(os.fspath(path)))
        return os.open(path, flags, PRIVATE_FILE_MODE)


def write_output(path: str | os.PathLike[str], text: str) -> None:
    """Write a whole output (an llm completion) as a private file."""
    fd = open_output(path)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


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


# --- Redaction of a kept file ------------------------------------------------------

REDACT_CHUNK = 1024 * 1024  # text redacted at once; one regex call holds the GIL
_REDACT_MAX_CARRY = 8 * REDACT_CHUNK  # a line longer than this is cut where it stands
# A line ending like this may go on with its value on the next line ("password:",
# "Authorization: Bearer"); a piece is not cut after it.
_CONTINUES = re.compile(rb"(?:[:=]|\b(?:bearer|basic|token|bot|apikey|digest))\Z", re.IGNORECASE)
_BLANK = b" \t\r\n\f\v"
_TEMP_SUFFIX = ".redacting"


def redact_file(path: str | os.PathLike[str], secrets: Sequence[str]) -> bool:
    """Remove ``secrets`` and secret shapes from the file at ``path``; True if it changed.

    The file is read in pieces of about :data:`REDACT_CHUNK` cut at line ends, so a
    large output costs memory for one piece and time in proportion to its size. A
    cut never falls after a line whose value may follow on the next one, and a
    secret that spans lines (a PEM key) is also looked for line by line, so cutting
    hides nothing. Bytes that are not UTF-8 are kept as they were. A file with
    nothing to remove is not written; one with something is replaced whole (a new
    0600 file renamed over it), so a reader never sees half of each.
    """
    values = line_secrets(secrets)
    target = os.fspath(path)
    temp = target + _TEMP_SUFFIX
    out: int | None = None
    done = 0  # bytes of the original handled so far
    try:
        with open(target, "rb") as f:
            carry = b""
            while True:
                data = f.read(REDACT_CHUNK)
                buffer = carry + data
                if not buffer:
                    break
                cut = len(buffer) if not data else _safe_cut(buffer)
                if cut == 0:  # no place to cut yet: read on
                    carry = buffer
                    continue
                piece, carry = buffer[:cut], buffer[cut:]
                text = piece.decode("utf-8", errors="surrogateescape")
                clean = redact(text, values)
                if clean != text and out is None:
                    out = _start_copy(target, temp, done)
                if out is not None:
                    _write_all(out, clean.encode("utf-8", errors="surrogateescape"))
                done += len(piece)
                if not data and not carry:
                    break
        if out is None:
            return False
        os.close(out)
        out = None
        os.replace(temp, target)
        return True
    finally:
        if out is not None:
            os.close(out)
            with contextlib.suppress(OSError):
                os.unlink(temp)


def _safe_cut(buffer: bytes) -> int:
    """Where ``buffer`` may be cut: just after a line end whose line does not go on
    (see :data:`_CONTINUES`); 0 when there is none yet and the buffer may grow."""
    end = len(buffer)
    while True:
        at = buffer.rfind(b"\n", 0, end)
        if at == -1:
            break
        last = at  # just past the last non-blank byte before this line end
        while last > 0 and buffer[last - 1] in _BLANK:
            last -= 1
        if not _CONTINUES.search(buffer[max(0, last - 16) : last]):
            return at + 1
        end = last  # the line ends between here and ``at`` all follow the same text
    if len(buffer) < _REDACT_MAX_CARRY:
        return 0
    # Pages without a safe line end: cut at the last line end, else at a space, else
    # anywhere (a secret across that one point may survive; kept files are 0600).
    for sep in (b"\n", b" "):
        at = buffer.rfind(sep)
        if at != -1:
            return at + 1
    return len(buffer)


def _start_copy(target: str, temp: str, done: int) -> int:
    """A new private file holding the first ``done`` bytes of ``target`` unchanged."""
    out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    try:
        with open(target, "rb") as src:
            left = done
            while left:
                block = src.read(min(left, REDACT_CHUNK))
                if not block:
                    break
                _write_all(out, block)
                left -= len(block)
    except BaseException:
        os.close(out)
        raise
    return out


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
