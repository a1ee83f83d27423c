"""Run a real `agentcron` daemon in a subprocess for end-to-end tests, and clean up after it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class DaemonProc:
    def __init__(
        self, folder: Path, config_text: str, extra_env: dict[str, str] | None = None
    ) -> None:
        self.folder = folder
        self.home = folder / "home"
        self.config = folder / "agentcron.yaml"
        self.config.write_text(config_text)
        self.env = {
            **os.environ,
            "AGENTCRON_HOME": str(self.home),
            # an outage's end is told after 30 s of working ticks; tests wait 1 s
            "AGENTCRON_RECOVERY_HOLD": "1",
            # A 2 s beat, as before issue 16's 6 s: the beat bounds only what is not
            # announced (a lost announcement, an edited file, the heartbeat), and these
            # tests wait on such looks; the 6 s default is what the in-process tests of
            # the beat run (test_change_announcements, test_idle_wakeups).
            "AGENTCRON_BEAT": "2",
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "daemon.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agentcron", "run", "--config", str(self.config)],
                cwd=self.folder,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [sys.executable, "-m", "agentcron", *args, "--config", str(self.config)],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"agentcron {' '.join(args)} failed: {res.stderr}\n{res.stdout}")
        return res

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def daemon_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout}s (last value: {last!r})")


def kill_pids_in(path: Path) -> None:
    """Kill processes whose pids a test script wrote to a file (orphans of a killed daemon)."""
    if not path.exists():
        return
    for line in path.read_text().split():
        try:
            os.killpg(int(line), signal.SIGKILL)
        except (ProcessLookupError, ValueError, PermissionError):
            with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
                os.kill(int(line), signal.SIGKILL)
