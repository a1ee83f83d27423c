"""Telling the owner that the daemon's own log cannot be written, and when it can again.

The log is where the daemon says everything it does not send: each run's end, each
retry, each fault it recovered from. When its output is a pipe whose reader is gone or
a file on a full disk, every line is lost, and Python's logging reports that on the
same broken stream: no one heard of it (outside-in probe). A streak of failed writes
that lasts :data:`TOLD_AFTER` is told once on the owner's channels and shown on the
node's note (``health``, ``doctor``, the API, the dashboard); its end is told with the
count of lines lost.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from agentcron.durations import format_duration
from agentcron.logs import LogWriter
from agentcron.model import Message
from agentcron.notify.direct import daemon_message
from agentcron.redact import redact

log = logging.getLogger("agentcron.daemon")

# A write that fails once (a reader busy, a disk that frees a block) is not news; a
# pipe whose reader is gone never comes back, and half a minute is soon enough.
TOLD_AFTER = 30.0


def _advice(number: int | None) -> str:
    """What to do, by why the writes fail: room on a full disk; otherwise (a pipe
    whose reader ended, an output closed) a restart where the output is read."""
    if number in (errno.ENOSPC, errno.EDQUOT):
        try:
            where = os.readlink("/proc/self/fd/2")
        except OSError:
            where = "the file its output is sent to"
        return f"The disk holding {where} is full: free room there and the log goes on."
    return (
        "Its output was closed (a pipe whose reader ended): restart the daemon where "
        "its output is read."
    )


def _lines(count: int) -> str:
    return "1 line" if count == 1 else f"{count:,} lines"


class LogFault:
    """Watches the daemon's log writer; :meth:`check` on the daemon's periodic look."""

    def __init__(
        self,
        writer: Callable[[], LogWriter | None],
        now: Callable[[], datetime],
        where: Callable[[], str],
        when: Callable[[datetime], str],
        tell: Callable[[Message], None],
        note_changed: Callable[[], None],
        told_after: float = TOLD_AFTER,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._writer = writer
        self._now = now
        self._where = where  # "host (pid N)"
        self._when = when  # a time as messages word it
        self._tell = tell
        self._note_changed = note_changed
        self._told_after = told_after
        self._monotonic = monotonic  # the writer's own: a clock step changes no streak
        self.note: str | None = None  # for the node's row while told and not over
        self._told_since: datetime | None = None
        self._lost_before = 0

    def check(self) -> None:
        writer = self._writer()
        trouble = writer.trouble() if writer is not None else None
        if trouble is not None and self._told_since is None:
            if self._monotonic() - trouble.began < self._told_after:
                return
            self._told_since, self._lost_before = trouble.since, trouble.lost_before
            error = redact(trouble.error)[:300]
            began = self._when(trouble.since)
            self.note = f"its log cannot be written since {began} ({error}): what it logs is lost"
            self._note_changed()
            text = (
                f"⚠ agentcron on {self._where()} cannot write its log since {began} "
                f"({error}); {_lines(trouble.lost - trouble.lost_before)} lost so far. "
                "Tasks still run and these messages are still sent, but nothing the "
                "daemon logs (each run's end, each retry, each fault it recovered from) "
                f"is kept while this lasts. {_advice(trouble.errno)}"
            )
            log.error("%s", text)  # for when the stream takes lines again
            self._tell(daemon_message("its log cannot be written", text, "log"))
        elif trouble is None and self._told_since is not None and writer is not None:
            since, self._told_since = self._told_since, None
            self.note = None
            self._note_changed()
            lasted = format_duration(
                timedelta(seconds=round((self._now() - since).total_seconds()))
            )
            text = (
                f"✔ agentcron on {self._where()} writes its log again (it could not from "
                f"{self._when(since)}, {lasted}; {_lines(writer.lost - self._lost_before)} "
                "were lost)."
            )
            log.warning("%s", text)
            self._tell(daemon_message("its log is written again", text, "log", ok=True))
