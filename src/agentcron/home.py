"""Where agentcron keeps its state: the home folder (database, outputs, logs).

The home holds what tasks printed and what went wrong with them, so it is private to
the user the daemon runs as: the home and its ``outputs`` and ``runs`` folders are
0700, kept output files 0600 (see :mod:`agentcron.actions.output`). Secrets are
removed from output when it is written, but a run still in progress writes its
output raw, and the modes are what keeps that from other users of the machine.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# The folders under the home that hold run output and run markers.
PRIVATE_FOLDERS = ("outputs", "runs")


def resolve_home(explicit: str | Path | None = None) -> Path:
    """``--home``, else ``$AGENTCRON_HOME``, else ``~/.agentcron``."""
    raw = explicit or os.environ.get("AGENTCRON_HOME") or "~/.agentcron"
    return Path(raw).expanduser().resolve()


def private_dirs(path: str | os.PathLike[str]) -> None:
    """Make ``path`` and its missing parents, each new one 0700 (``os.makedirs``
    gives parents the default mode, 0755 under the usual umask)."""
    missing: list[str] = []
    current = os.path.abspath(os.fspath(path))
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR_MODE)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
            # made meanwhile by another writer (a burst's runs share a task folder)


def secure_home(home: str | os.PathLike[str]) -> list[str]:
    """Make the home private, creating it if needed; returns the folders it tightened.
    Never raises: a home that cannot be made private is logged, not fatal.

    Only group and other permissions are taken away, so a home the user made
    stricter (0500) stays as it is. A folder whose mode cannot be changed (another
    owner) is logged and left: the daemon can still run, and the log says why the
    home is not private. The task folders under ``outputs`` are tightened too; the
    files in them are not visited (there may be a great many, and a 0700 folder
    already keeps them from other users).
    """
    root = Path(home)
    folders = [root, *(root / name for name in PRIVATE_FOLDERS)]
    for folder in folders:
        try:
            private_dirs(folder)
        except OSError as exc:  # the writes that need it will say what is wrong
            log.warning("could not make the folder %s: %s", folder, exc.strerror or exc)
            return []
    try:
        with os.scandir(root / "outputs") as entries:
            folders += [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError as exc:
        log.warning("could not list %s to make it private: %s", root / "outputs", exc)
    tightened = [str(folder) for folder in folders if _tighten(folder)]
    if tightened:
        log.info("made %d folder(s) of the home private (0700): %s", len(tightened), tightened[0])
    return tightened


def _tighten(folder: Path) -> bool:
    try:
        mode = stat.S_IMODE(os.stat(folder).st_mode)
        private = mode & ~0o077
        if private == mode:
            return False
        os.chmod(folder, private)
    except OSError as exc:
        log.warning("could not make %s private (0700): %s", folder, exc.strerror or exc)
        return False
    return True


def cannot_write(folder: Path) -> str | None:
    """Why a file cannot be made in ``folder`` (an existing folder of the home), or
    None when one can: a real write, since a read-only mount or a file in the folder's
    place shows only then (and ``os.access`` says yes to root whatever the mode)."""
    probe = folder / f".agentcron-write-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    try:
        probe.unlink()
    except OSError as exc:  # made but not removable: the folder still takes files
        log.warning("could not remove the write probe %s: %s", probe, exc)
    return None


def hostname() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
