"""Process groups a dead daemon left running.

A command runs in its own process group, so when its daemon is killed (kill -9,
OOM) the command lives on. When its slot is taken over and retried, the old
group would run beside the new attempt: the same slot executed twice. The
runner records each group with its leader's start time (so a recycled pid is
never mistaken for it), and whoever records the slot as lost stops that group
first, if it is on this machine.
"""

from __future__ import annotations

import contextlib
import os
import signal


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields start after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of stat, counted from the state field (3)
    except (IndexError, ValueError):
        return None


def stop_group(pgid: int, started: int | None) -> bool:
    """SIGKILL the group if its leader is still the process that was recorded."""
    if pgid <= 1 or started is None or start_time(pgid) != started:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
        return True
    return False
