"""Daemon logging: every line passes through the one redaction function.

Libraries log too (httpx2 logs each request's full URL, query string and all),
so redaction sits in the formatter of the root handler rather than at our own
call sites; a secret in any record is removed before it is written.
"""

from __future__ import annotations

import logging
import os
import sys

from agentcron.redact import redact, secret_values_from_env


class RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: list[str]) -> None:
        super().__init__(fmt)
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


def setup_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s",
            secret_values_from_env(os.environ),
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-request lines from the HTTP client are noise at INFO and carry full URLs.
    logging.getLogger("httpx2").setLevel(max(level, logging.WARNING))
    logging.getLogger("httpcore2").setLevel(max(level, logging.WARNING))
