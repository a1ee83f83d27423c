"""A daemon whose own log cannot be written says so on the owner's channels.

Outside-in probe: `agentcron run 2>&1 | head -2` left a daemon running whose every log
line went into a pipe with no reader. Python's logging reports a failed write on the
same stream, so nothing was said anywhere: each run's end, retry and recovered fault was
lost, and `health` said ✔. Now a streak of failed writes is told once (and shown on the
node's note), and its end is told with the count of lines lost."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentcron.clock import FakeClock
from agentcron.daemon import Daemon, DaemonOptions
from agentcron.log_fault import LogFault
from agentcron.logs import LogWriter
from agentcron.model import Message
from daemon_proc import DaemonProc, wait_for
from e2e_sink import Sink


class _Stream(io.StringIO):
    """A stream that fails on cue, as a pipe whose reader left does."""

    def __init__(self) -> None:
        super().__init__()
        self.broken: OSError | None = None

    def write(self, text: str) -> int:
        if self.broken is not None:
            raise self.broken
        return super().write(text)


def _record(text: str) -> logging.LogRecord:
    return logging.LogRecord("agentcron.engine", logging.INFO, __file__, 1, text, None, None)


def test_the_writer_counts_lines_it_could_not_write_and_forgets_the_streak_at_a_write() -> None:
    clock = FakeClock(datetime(2026, 6, 1, 10, 0, tzinfo=UTC))
    stream = _Stream()
    writer = LogWriter(stream, now=clock.now)
    writer.handle(_record("first"))
    assert writer.trouble() is None and "first" in stream.getvalue()
    stream.broken = BrokenPipeError(32, "Broken pipe")
    writer.handle(_record("lost one"))
    clock.advance(timedelta(seconds=5))
    writer.handle(_record("lost two"))
    trouble = writer.trouble()
    assert trouble is not None
    assert trouble.since == datetime(2026, 6, 1, 10, 0, tzinfo=UTC)  # the first failure
    assert trouble.error == "BrokenPipeError: [Errno 32] Broken pipe"
    assert (trouble.lost, trouble.lost_before) == (2, 0)
    stream.broken = None
    writer.handle(_record("back"))
    assert writer.trouble() is None and writer.lost == 2
    stream.broken = OSError(28, "No space left on device")
    writer.handle(_record("again"))
    again = writer.trouble()
    assert again is not None and (again.lost, again.lost_before) == (3, 2)


def test_a_bad_log_call_is_not_counted_as_a_broken_log(capsys: pytest.CaptureFixture[str]) -> None:
    writer = LogWriter(_Stream())
    bad = logging.LogRecord("x", logging.INFO, __file__, 1, "%d lines", ("many",), None)
    writer.handle(bad)  # logging's own report of the mistake, on stderr
    assert writer.trouble() is None and writer.lost == 0
    assert "Logging error" in capsys.readouterr().err


def test_a_log_that_cannot_be_written_is_told_once_shown_on_the_node_and_its_end_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(datetime(2026, 6, 1, 10, 0, tzinfo=UTC))
    stream = _Stream()
    mono = [100.0]  # the monotonic clock both read: a wall clock step changes no streak

    def advance(seconds: float) -> None:
        clock.advance(timedelta(seconds=seconds))
        mono[0] += seconds

    writer = LogWriter(stream, now=clock.now, monotonic=lambda: mono[0])
    daemon = Daemon(DaemonOptions(config_path=None, home=tmp_path / "home"), clock)
    told: list[Message] = []
    monkeypatch.setattr(daemon, "_tell_soon", told.append)
    daemon._log_fault = LogFault(
        lambda: writer,
        clock.now,
        daemon._where,
        daemon._today_or_local,
        lambda message: daemon._tell_soon(message),
        daemon._write_config_note,
        told_after=30,
        monotonic=lambda: mono[0],
    )
    daemon._log_fault.check()
    stream.broken = BrokenPipeError(32, "Broken pipe")
    for _ in range(3):
        writer.handle(_record("a run ended"))
    advance(20)
    clock.advance(timedelta(hours=-3))  # the system clock set back: the streak goes on
    daemon._log_fault.check()
    assert told == []  # not yet: a write that fails for a moment is not news
    clock.advance(timedelta(hours=3))
    advance(15)
    daemon._log_fault.check()
    daemon._log_fault.check()
    (message,) = told
    assert message.severity == "failure" and message.incident_kind == "log"
    assert message.body.startswith("⚠ agentcron on ")
    assert "cannot write its log since 10:00:00 (BrokenPipeError: [Errno 32] Broken pipe)" in (
        message.body
    )
    assert "3 lines lost so far" in message.body
    assert "restart the daemon where its output is read" in message.body
    note = daemon.config_note()
    assert note is not None and "its log cannot be written since 10:00:00" in note
    for _ in range(4):
        writer.handle(_record("still lost"))
    advance(120)
    stream.broken = None
    writer.handle(_record("back"))
    daemon._log_fault.check()
    end = told[-1]
    assert len(told) == 2 and end.severity == "recovery"
    assert "writes its log again (it could not from 10:00:00, 2 min 35s; 7 lines were lost)" in (
        end.body
    )
    assert daemon.config_note() is None
    said = [r.getMessage() for r in caplog.records if r.name == "agentcron.daemon"]
    assert [m for m in said if "writes its log again" in m]  # and the log says so itself


def test_a_daemon_whose_output_pipe_lost_its_reader_tells_the_owner(tmp_path: Path) -> None:
    """The real `agentcron run`, its stderr a pipe closed by its reader (`| head`)."""
    with Sink() as sink:
        config = (
            f'notify: ["{sink.url("/owner")}"]\n'
            "tasks:\n  beat:\n    every: 1s\n    command: [echo, beat]\n"
        )
        daemon = DaemonProc(
            tmp_path,
            config,
            {"AGENTCRON_LOG_FAULT_AFTER": "1", "AGENTCRON_WATCHDOG_INTERVAL": "0.5"},
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentcron", "run", "--config", str(daemon.config)],
            cwd=tmp_path,
            env=daemon.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        daemon.proc = proc
        try:
            assert proc.stderr is not None
            proc.stderr.readline()  # the daemon's first line, then the reader leaves
            proc.stderr.close()
            texts = wait_for(
                lambda: [t for t in sink.texts("/owner") if "cannot write its log" in t],
                timeout=60,
                what="the message that the log cannot be written",
            )
            assert "BrokenPipeError" in texts[0] and "lost so far" in texts[0]
            health = daemon.cli("health", check=False)
            assert "its log cannot be written since" in health.stdout, health.stdout
            assert proc.poll() is None  # it goes on scheduling
        finally:
            daemon.stop()
        assert len([t for t in sink.texts("/owner") if "cannot write its log" in t]) == 1


def test_a_full_disk_under_the_log_asks_for_room_not_a_restart() -> None:
    clock = FakeClock(datetime(2026, 6, 1, 10, 0, tzinfo=UTC))
    mono = [0.0]
    stream = _Stream()
    stream.broken = OSError(28, "No space left on device")
    writer = LogWriter(stream, now=clock.now, monotonic=lambda: mono[0])
    told: list[Message] = []
    fault = LogFault(
        lambda: writer, clock.now, lambda: "vm (pid 1)", str, told.append, lambda: None,
        told_after=30, monotonic=lambda: mono[0],
    )  # fmt: skip
    writer.handle(_record("lost"))
    mono[0] += 31
    fault.check()
    (message,) = told
    assert "is full: free room there and the log goes on" in message.body
    assert "restart" not in message.body
