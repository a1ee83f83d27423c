"""Whether the disk that holds runs' outputs is full, without a system call per run.

A run that succeeded without output, or a command that failed, asks whether its
output may have been lost to a full disk (see :mod:`.runner`). Asking the kernel
each time (``statvfs``) cost a system call per run, a visible share of a burst of
short runs. The answer is kept for at most a second, and only while the disk had
plenty of room when last asked: a disk with less than ``roomy`` bytes free is
asked on every run, so the moment it fills is seen by the next run, as before.
Between "roomy" and "full" lies at least ``roomy`` bytes of writes, which a second
of runs does not make unseen in practice; if it does, the runs of that second are
judged as on a disk with room (an empty output counts as empty) and the next
answer is fresh.

All task output folders are made by agentcron under ``HOME/outputs``: one answer
serves the whole ``outputs`` folder.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("agentcron.engine")

EVERY = 1.0  # seconds an answer "there is room" is kept
ROOMY = 256 * 1024 * 1024  # bytes free above which an answer is kept at all


class DiskRoom:
    """Answers "is the disk holding this output full?"; ``statvfs`` and ``clock``
    (monotonic seconds) are injectable for tests."""

    def __init__(
        self,
        statvfs: Callable[[str], Any] = os.statvfs,
        clock: Callable[[], float] = time.monotonic,
        every: float = EVERY,
        roomy: int = ROOMY,
    ) -> None:
        self._statvfs = statvfs
        self._clock = clock
        self._every = every
        self._roomy = roomy
        self._room_until: dict[str, float] = {}  # outputs folder -> until when it has room
        self._said: set[tuple[str, int | None]] = set()  # (path, errno) logged already

    def full(self, path: str) -> bool:
        """Whether the filesystem holding ``path`` has no room left for ordinary writes
        (False when it cannot be asked: nothing is known to be wrong)."""
        folder = os.path.dirname(path) or "."
        key = os.path.dirname(folder) or folder  # HOME/outputs for HOME/outputs/TASK/FILE
        now = self._clock()
        if self._room_until.get(key, -1.0) > now:
            return False
        stats = self._ask(folder, key)
        if stats is None:
            return False
        free = stats.f_bavail * stats.f_frsize
        if free >= self._roomy:
            self._room_until[key] = now + self._every
        else:
            self._room_until.pop(key, None)
        return bool(stats.f_bavail == 0)

    def free(self, path: str) -> int | None:
        """Bytes free for ordinary writes on the filesystem holding ``path``, asked now
        (None when it cannot be asked)."""
        folder = os.path.dirname(path) or "."
        stats = self._ask(folder, os.path.dirname(folder) or folder)
        return None if stats is None else int(stats.f_bavail * stats.f_frsize)

    def _ask(self, folder: str, key: str) -> Any:
        """``statvfs`` of the output's folder, or of the nearest of its parents that
        exists (a run that wrote nothing may have no folder: asking only the folder
        failed, no answer was kept, and every such run asked again); None when none
        can be asked."""
        for path in dict.fromkeys((folder, key, os.path.dirname(key) or key)):
            try:
                return self._statvfs(path)
            except FileNotFoundError:
                continue  # no such folder yet: not a fault, its parent answers for it
            except OSError as exc:
                # the disk cannot be asked (no permission, an I/O error): runs are judged
                # as on a disk with room, and the log says why, once per path and cause
                said = (path, exc.errno)
                if said not in self._said:
                    self._said.add(said)
                    log.warning(
                        "cannot ask how much room the disk holding %s has (%s): a run "
                        "that kept no output is not checked for a full disk",
                        path,
                        exc.strerror or exc,
                    )
                return None
        return None


PROBE_BYTES = 64 * 1024  # a small output's worth: what a run must be able to write


def takes_writes(outputs: str) -> bool:
    """Whether runs could write their files under ``outputs`` now: the disk has room
    for ordinary writes and a file of :data:`PROBE_BYTES` can be made, written to
    disk and removed there. Asked only while the home's storage incident is open and
    no run of a task it hit is left to show it (see agentcron.notify.storage)."""
    try:
        os.makedirs(outputs, exist_ok=True)
        if os.statvfs(outputs).f_bavail == 0:
            return False
        probe = os.path.join(outputs, f".agentcron-probe-{os.getpid()}")
        try:
            with open(probe, "wb") as fh:
                fh.write(b"\0" * PROBE_BYTES)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            if os.path.exists(probe):
                os.unlink(probe)
    except OSError:
        return False
    return True


FULL = 16 * 1024 * 1024  # bytes free below which a disk counts as full (for `doctor`)


def free_bytes(path: str) -> int:
    """Bytes free for ordinary writes on the filesystem holding ``path``; raises
    ``OSError`` when it cannot be asked (the caller says why)."""
    stats = os.statvfs(path)
    return int(stats.f_bavail * stats.f_frsize)


def say_bytes(count: int) -> str:
    """``340 MiB``, ``1.2 GiB``: a size as a person reads it."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}" if unit == "GiB" else f"{count // scale} {unit}"
    return f"{count} bytes"
