"""Where agentcron keeps its state: the home folder (database, outputs, logs)."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def resolve_home(explicit: str | Path | None = None) -> Path:
    """``--home``, else ``$AGENTCRON_HOME``, else ``~/.agentcron``."""
    raw = explicit or os.environ.get("AGENTCRON_HOME") or "~/.agentcron"
    return Path(raw).expanduser().resolve()


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
