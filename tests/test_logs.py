"""Daemon logging (agentcron/logs.py): records are redacted and written by a thread of
their own, in order, with tracebacks, and all of them are out once logging stops."""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterator

import pytest

from agentcron import logs

SECRET = "sk-live-4f1c2d3e5a6b7c8d9e0f"


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Where the daemon's log goes. Tests set it up themselves: pytest's own capture
    puts its stream back into ``sys.stderr`` when the test body starts."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    monkeypatch.setenv("SERVICE_API_TOKEN", SECRET)
    try:
        yield io.StringIO()
    finally:
        logs.stop_logging()
        root.handlers[:], root.level = saved


def setup(out: io.StringIO, level: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", out)
    logs.setup_logging(level)


def test_lines_are_redacted_written_in_order_and_flushed_at_stop(
    stderr: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(stderr, logging.INFO, monkeypatch)
    log = logging.getLogger("agentcron.test")
    writers: list[str] = []
    original = logs.LogWriter.emit

    def noting(handler: logs.LogWriter, record: logging.LogRecord) -> None:
        writers.append(threading.current_thread().name)
        original(handler, record)

    logs.LogWriter.emit = noting  # type: ignore[method-assign]
    try:
        for i in range(200):
            log.info("line %d calls %s", i, f"https://api.example/v1?key={SECRET}")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("it failed")
        log.debug("below the level")
        logs.stop_logging()
    finally:
        logs.LogWriter.emit = original  # type: ignore[method-assign]
    text = stderr.getvalue()
    lines = [line for line in text.splitlines() if " agentcron.test: " in line]
    assert [line.split("line ")[1].split(" ")[0] for line in lines[:200]] == [
        str(i) for i in range(200)
    ]
    assert SECRET not in text and "[REDACTED]" in text
    assert "it failed" in text and "ValueError: boom" in text and "Traceback" in text
    assert "below the level" not in text
    assert writers and threading.main_thread().name not in writers  # not the caller's thread


def test_setting_up_again_replaces_the_writer(
    stderr: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(stderr, logging.INFO, monkeypatch)
    first = logs._listener[0]
    logging.getLogger("agentcron.test").info("before")
    setup(stderr, logging.WARNING, monkeypatch)
    assert logs._listener != [first] and len(logs._listener) == 1
    assert first._thread is None  # stopped, having written what it had
    assert "before" in stderr.getvalue()
    logging.getLogger("agentcron.test").info("below the new level")
    logging.getLogger("agentcron.test").warning("once")
    logs.stop_logging()
    assert stderr.getvalue().count("once") == 1
    assert "below the new level" not in stderr.getvalue()
