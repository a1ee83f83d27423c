"""Failures that are agentcron's process running out of something, not the task's.

A daemon started under ``ulimit -n 64`` failed to start its commands with "Too many
open files", and each was told as the task's own, permanent "misconfigured … Retrying
will not help"; under a memory limit, "can't start new thread" was told as a bug of
agentcron, not retried (outside-in probe). Both pass when the load does: they are
retried as a lost run is, and say whose limit was reached.
"""

from __future__ import annotations

import errno

_ERRNOS = {
    errno.EMFILE: "open files (the daemon's limit: `ulimit -n`, systemd's LimitNOFILE=)",
    errno.ENFILE: "open files (the system's limit: fs.file-max)",
    errno.ENOMEM: "memory",
}
# from fork: out of processes; elsewhere a non-blocking call's "try again", not a limit
_SPAWN_ERRNOS = {
    **_ERRNOS,
    errno.EAGAIN: "processes or memory (the user's process limit, `ulimit -u`, or memory)",
}


def out_of_resources(exc: BaseException, *, spawning: bool = False) -> str | None:
    """What agentcron's process ran out of when ``exc`` was raised (``spawning``: while
    starting a process), or None when it is some other failure: a sentence's object
    ("open files (…)")."""
    known = _SPAWN_ERRNOS if spawning else _ERRNOS
    if isinstance(exc, OSError) and exc.errno in known:
        return known[exc.errno]
    if isinstance(exc, RuntimeError) and "can't start new thread" in str(exc):
        return "threads (memory or the process limit: `ulimit -v`, `ulimit -u`)"
    return None


def resource_words(what: str, exc: BaseException, doing: str) -> str:
    """The run's error: agentcron, not the task, ran out of ``what`` while ``doing``."""
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return (
        f"agentcron ran out of {what} while {doing} ({detail}); this is the daemon's "
        "limit, not the task's fault, and the run is retried as a lost run is"
    )


def send_words(what: str, exc: BaseException) -> str:
    """A send's error when agentcron ran out of ``what`` starting it: the channel is
    not at fault (outside-in probe: `health` named the channel failing with "can't start
    new thread" while the daemon was out of threads)."""
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return (
        f"agentcron ran out of {what} while sending ({detail}); this is the daemon's "
        "limit, not the channel's fault, and the message is sent again later"
    )
