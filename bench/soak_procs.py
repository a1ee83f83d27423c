"""Processes of the soak: daemons it starts as a user would, and their cleanup.

Every ``agentcron run`` is a real process (``python -m agentcron run --config … --home …
[--db …]``). :func:`kill_everything` ends every daemon the soak started and every process
whose command line names the soak's own folder (the commands of the soak's tasks and their
launchers), one pid at a time: nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STARTED: list[subprocess.Popen[bytes]] = []


class Node:
    """One ``agentcron run`` with its own home; restartable."""

    def __init__(
        self,
        name: str,
        root: Path,
        config: Path,
        db: str | None = None,
        env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
        home: Path | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.db = db
        self.home = home or root / f"home-{name}"
        self.home.mkdir(parents=True, exist_ok=True)
        self.log = root / f"daemon-{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.env.pop("AGENTCRON_HOME", None)
        self.prefix = prefix or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.exits: list[tuple[float, int]] = []  # exits the soak did not cause

    def start(self) -> None:
        cmd = [sys.executable, "-m", "agentcron", "run", "--config", str(self.config)]
        cmd += ["--home", str(self.home)] + (["--db", self.db] if self.db else [])
        with self.log.open("ab") as log:
            log.write(f"\n=== soak: start {self.name} at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.prefix + cmd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the soak, which stops them itself
            )
        STARTED.append(self.proc)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def note_exit(self) -> bool:
        """True (and recorded) when the daemon exited by itself since the last look."""
        if self.proc is not None and self.proc.poll() is not None:
            self.exits.append((time.time(), self.proc.returncode))
            self.proc = None
            return True
        return False

    def kill9(self) -> None:
        if self.alive:
            assert self.proc is not None
            with self.log.open("ab") as log:
                log.write(f"\n=== soak: kill -9 {self.name} at {time.time():.3f}\n".encode())
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self, timeout: float = 30.0) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_everything(root: Path | None) -> None:
    """SIGKILL the daemons the soak started, then the processes that name ``root``."""
    for proc in STARTED:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
    if root is None:
        return
    mark = str(root)
    for _round in range(3):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            if mark in _cmdline(int(entry)):
                found = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry), signal.SIGKILL)
        if not found:
            return
        time.sleep(0.2)
