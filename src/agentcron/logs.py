"""Daemon logging: every line passes through the one redaction function.

Libraries log too (httpx2 logs each request's full URL, query string and all),
so redaction sits in the formatter of the handler that writes rather than at our own
call sites; a secret in any record is removed before it is written.

Records are formatted, redacted and written on a thread of their own: the daemon
logs a line per finished run, and writing a burst's ten thousand lines from the
scheduler loop (a system call each, then waiting for the GIL) held it about 40 µs a
line. The loop only queues the record. At exit the thread writes what is queued.

The writer also knows when it cannot write: a pipe whose reader is gone, a full disk
under a redirected file. Python's logging would report that on the same broken
stream, so the daemon's log was lost without a word (outside-in probe: `agentcron run
2>&1 | head -2`, and the daemon ran on, logging into nothing). :class:`LogWriter` keeps
the streak for the daemon to tell (:mod:`agentcron.log_fault`).
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import TextIO

from agentcron.controls import shown_text
from agentcron.redact import daemon_secrets, redact, secret_values_from_env


class RedactingFormatter(logging.Formatter):
    """Redacts every line with ``secrets``, or, by default, with the secrets the daemon
    has when the line is written: its environment and the env file of the config it
    loaded (which is read after logging starts, and again on a reload)."""

    def __init__(self, fmt: str, secrets: list[str] | None = None) -> None:
        super().__init__(fmt)
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        secrets = self.secrets if self.secrets is not None else _daemon_secrets()
        # a run's error quoted in a line is the task's text: its terminal escapes went
        # to the terminal of a daemon run in the foreground (outside-in probe)
        return shown_text(redact(super().format(record), secrets))


def _daemon_secrets() -> list[str]:
    from agentcron.config._env import env_file_values

    return [*daemon_secrets(), *secret_values_from_env(env_file_values())]


@dataclass(frozen=True)
class LogTrouble:
    """The log's writes fail since ``since`` (``began`` on the monotonic clock, which a
    clock step does not move; the latest ``error``, its ``errno``); ``lost`` lines in
    all, ``lost_before`` of them before this streak."""

    since: datetime
    began: float
    error: str
    errno: int | None
    lost: int
    lost_before: int


class LogWriter(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the log's lines to a stream and keeps count of the lines it could not."""

    def __init__(
        self,
        stream: TextIO,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(stream)
        self._now = now
        self._monotonic = monotonic
        self._state = threading.Lock()
        self._since: datetime | None = None  # failing since; None while writes work
        self._began = 0.0
        self._error = ""
        self._errno: int | None = None
        self.lost = 0  # lines not written, in all
        self._lost_before = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)  # a bad call's arguments: logging's own report
            return
        try:
            self.stream.write(line + self.terminator)
            self.flush()
        except RecursionError:
            raise
        except Exception as exc:
            with self._state:
                if self._since is None:
                    self._since, self._began = self._now(), self._monotonic()
                    self._lost_before = self.lost
                self.lost += 1
                self._error = f"{type(exc).__name__}: {exc}"
                self._errno = exc.errno if isinstance(exc, OSError) else None
        else:
            if self._since is not None:
                with self._state:
                    self._since = None

    def trouble(self) -> LogTrouble | None:
        """The current streak of failed writes; None while the last write worked."""
        with self._state:
            if self._since is None:
                return None
            return LogTrouble(
                self._since, self._began, self._error, self._errno, self.lost, self._lost_before
            )


_listener: list[QueueListener] = []  # the running writer thread, if any
_writer: list[LogWriter] = []  # and its writer


def log_writer() -> LogWriter | None:
    """The writer of the daemon's log, when :func:`setup_logging` made one (a program
    that runs a Scheduler logs its own way)."""
    return _writer[-1] if _writer else None


def setup_logging(level: int) -> None:
    writer = LogWriter(sys.stderr)
    writer.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    stop_logging()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = QueueListener(records, writer)
    listener.start()
    _listener.append(listener)
    _writer.append(writer)
    root = logging.getLogger()
    root.handlers[:] = [QueueHandler(records)]
    root.setLevel(level)
    # Per-request lines from the HTTP client are noise at INFO and carry full URLs.
    logging.getLogger("httpx2").setLevel(max(level, logging.WARNING))
    logging.getLogger("httpcore2").setLevel(max(level, logging.WARNING))


def stop_logging() -> None:
    """Write what is queued and end the writer thread (also run at exit)."""
    while _listener:
        _listener.pop().stop()
    _writer.clear()


atexit.register(stop_logging)
