"""Daemon logging: every line passes through the one redaction function.

Libraries log too (httpx2 logs each request's full URL, query string and all),
so redaction sits in the formatter of the handler that writes rather than at our own
call sites; a secret in any record is removed before it is written.

Records are formatted, redacted and written on a thread of their own: the daemon
logs a line per finished run, and writing a burst's ten thousand lines from the
scheduler loop (a system call each, then waiting for the GIL) held it about 40 µs a
line. The loop only queues the record. At exit the thread writes what is queued.
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
from logging.handlers import QueueHandler, QueueListener

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
        return redact(super().format(record), secrets)


def _daemon_secrets() -> list[str]:
    from agentcron.config._env import env_file_values

    return [*daemon_secrets(), *secret_values_from_env(env_file_values())]


_listener: list[QueueListener] = []  # the running writer thread, if any


def setup_logging(level: int) -> None:
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    stop_logging()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = QueueListener(records, writer)
    listener.start()
    _listener.append(listener)
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


atexit.register(stop_logging)
