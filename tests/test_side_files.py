"""The small files and looks outside the database (the lock's process start, the
daemon's trouble file, the database file's identity): what is a normal absence stays
quiet, what is a failure to look is said, never taken silently for "all is well"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentcron.instance_lock import _start_ticks
from agentcron.store.sqlite import SQLiteStore
from agentcron.trouble import SIZE, TROUBLE_FILE, TroubleFile, read_trouble


def test_the_start_of_a_process_that_has_ended_is_none_without_a_word(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert _start_ticks(os.getpid()) is not None
    assert _start_ticks(2**22 + 12345) is None  # no such process: nothing to compare
    assert caplog.text == ""


def test_a_start_that_cannot_be_read_is_said(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refused(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refused)
    assert _start_ticks(os.getpid()) is None
    assert "cannot read the start of process" in caplog.text
    assert "Permission denied" in caplog.text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: "42 (x) garbage")
    assert _start_ticks(os.getpid()) is None
    assert "from '42 (x) garbage'" in caplog.text


def test_a_trouble_file_absent_or_blank_is_nothing_said_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert read_trouble(tmp_path, os.getpid(), kept=False) is None  # not made yet
    trouble = TroubleFile(tmp_path)
    trouble.open()  # made at full size, all blank
    assert (tmp_path / TROUBLE_FILE).stat().st_size == SIZE
    assert read_trouble(tmp_path, os.getpid()) is None
    trouble.say({"since": "10:00", "error": "locked", "database": True})
    assert read_trouble(tmp_path, os.getpid()) == {
        "since": "10:00",
        "error": "locked",
        "database": True,
    }
    assert read_trouble(tmp_path, os.getpid() + 1) is None  # another process's word
    trouble.close()
    assert read_trouble(tmp_path, os.getpid()) is None
    assert caplog.text == ""


def test_a_trouble_file_missing_under_a_daemon_that_has_started_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Made first thing at the daemon's start: missing later, it was deleted under the
    daemon or could not be made, and a database trouble would go unseen by `health`."""
    assert read_trouble(tmp_path, 4242) is None
    assert "the daemon (pid 4242) keeps no" in caplog.text
    assert "a database trouble it meets would not be seen here" in caplog.text


def test_a_trouble_file_that_cannot_be_read_is_said_not_taken_for_no_trouble(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / TROUBLE_FILE).write_bytes(b'{"pid": 1, "trou')  # torn or damaged
    assert read_trouble(tmp_path, 1) is None
    assert "cannot read" in caplog.text and "a database trouble would not be seen" in caplog.text
    caplog.clear()
    (tmp_path / TROUBLE_FILE).unlink()
    (tmp_path / TROUBLE_FILE).mkdir()  # unreadable as a file
    assert read_trouble(tmp_path, 1) is None
    assert "a database trouble would not be seen" in caplog.text


def test_a_database_file_that_cannot_be_looked_at_is_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(tmp_path / "agentcron.db")
    try:
        assert store.file_fault() is None and caplog.text == ""
        real_stat = os.stat

        def refused(path: object, *args: object, **kwargs: object) -> os.stat_result:
            if str(path) == store.path:
                raise PermissionError(13, "Permission denied", str(path))
            return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "stat", refused)
        assert store.file_fault() is None  # no claim made about the file ...
        assert store.file_fault() is None
        said = [r for r in caplog.records if "cannot look at the database file" in r.message]
        assert len(said) == 1 and "Permission denied" in said[0].message  # ... but said once
        monkeypatch.setattr(os, "stat", real_stat)
        assert store.file_fault() is None
    finally:
        store.close()


def test_a_live_pid_whose_start_cannot_be_read_is_believed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where /proc cannot show the holder's start (hidden by hidepid, or no /proc) the
    live pid is believed, as the lock says; before, an unreadable start counted as
    another process, and the CLI took a running daemon for none. A start that differs
    is another process that got a dead daemon's pid."""
    import agentcron.instance_lock as lock_module
    from agentcron.instance_lock import InstanceLock, running_daemon

    lock = InstanceLock(tmp_path)
    lock.acquire()
    try:
        assert running_daemon(tmp_path) is not None
        monkeypatch.setattr(lock_module, "_start_ticks", lambda _pid: None)
        holder = running_daemon(tmp_path)
        assert holder is not None and holder.pid == os.getpid()
        monkeypatch.setattr(lock_module, "_start_ticks", lambda _pid: 1)
        assert running_daemon(tmp_path) is None
    finally:
        lock.release()


def _trouble_of(tmp_path: Path, pid: int) -> None:
    said = {"pid": pid, "since": "19:59:08", "error": "connection refused", "database": True}
    (tmp_path / TROUBLE_FILE).write_text(json.dumps({"pid": pid, "trouble": said}).ljust(SIZE))


def test_with_postgresql_away_health_and_doctor_say_what_the_homes_daemon_says(
    tmp_path: Path,
) -> None:
    """PostgreSQL unreachable: `health` printed only "cannot connect to PostgreSQL" and
    `doctor` had no daemon line, while the node's daemon had written since when it
    waited for its database (outside-in probe; on PostgreSQL no home lock names it).
    Believed only while its writer is a live agentcron process: a file left by one
    killed with -9 names a process that is gone, or another program."""
    home = tmp_path / "home"
    home.mkdir()
    away = "postgresql://postgres@127.0.0.1:1/test"  # nothing listens on port 1
    env = {**os.environ, "AGENTCRON_HOME": str(home)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agentcron", *args, "--db", away],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
        )

    said = "is running but cannot use its database since 19:59:08 (connection refused)"
    daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "agentcron"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _trouble_of(home, daemon.pid)
        health, doctor = cli("health"), cli("doctor")
        _trouble_of(home, other.pid)  # not agentcron: a pid reused
        assert said not in cli("health").stderr
    finally:
        for proc in (daemon, other):
            proc.kill()
            proc.wait(10)
    assert health.returncode == 1, health.stderr
    assert "cannot connect to PostgreSQL" in health.stderr
    assert f"the daemon (pid {daemon.pid}) {said}" in " ".join(health.stderr.split())
    assert doctor.returncode == 1
    assert f"✖ daemon: the daemon (pid {daemon.pid}) {said}" in " ".join(doctor.stdout.split())
    _trouble_of(home, daemon.pid)  # killed since: its word is not believed
    assert said not in cli("health").stderr


def test_the_trouble_file_of_a_home_without_a_lock_is_read_as_the_lock_holders_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """For `health` with PostgreSQL out of reach: no file or a blank one is no word,
    quietly (a daemon of this home runs elsewhere, or has cleared it at its stop); a
    file that cannot be read is said, not taken for "no trouble" without a word."""
    from agentcron.trouble import trouble_of_live_writer

    assert trouble_of_live_writer(tmp_path) is None  # no file
    (tmp_path / TROUBLE_FILE).write_bytes(b" " * SIZE)  # made at start, cleared at stop
    assert trouble_of_live_writer(tmp_path) is None
    assert caplog.text == ""
    (tmp_path / TROUBLE_FILE).write_bytes(b'{"pid": 1, "trou')  # torn or damaged
    assert trouble_of_live_writer(tmp_path) is None
    assert "a database trouble would not be seen" in caplog.text
    caplog.clear()
    (tmp_path / TROUBLE_FILE).write_text(json.dumps({"trouble": {"since": "10:00"}}))
    assert trouble_of_live_writer(tmp_path) is None
    assert "no writer's pid" in caplog.text


def test_a_writer_that_is_another_users_process_is_asked_by_its_command_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """kill(pid, 0) refused with EPERM means the process exists (another user's): it is
    then judged by its command line, without a word; a process that does not exist is
    no writer at all."""
    import agentcron.trouble as trouble

    def refused(pid: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", refused)
    own = os.getpid()  # this process's command line is pytest's, not agentcron's
    with caplog.at_level("WARNING"):
        assert trouble._agentcron_process(own) is False
    monkeypatch.setattr(Path, "read_bytes", lambda self: b"python\0-m\0agentcron\0run\0")
    assert trouble._agentcron_process(own) is True
    assert caplog.records == []

    def gone(pid: int, sig: int) -> None:
        raise ProcessLookupError(3, "No such process")

    monkeypatch.setattr(os, "kill", gone)
    assert trouble._agentcron_process(own) is False


def test_the_span_of_an_outage_left_is_read_only_when_the_file_says_it_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The next daemon gives missed slots the outage as their reason from what the
    file says. A file of an older daemon (no UTC start) gives no span without a word:
    nothing is wrong with it. A start it cannot read gives none either, and is logged
    (a damaged or hand-edited file); the reason falls back to the stop."""
    from datetime import UTC, datetime

    from agentcron.trouble import outage_span

    said = {"since_utc": "2026-12-05T10:00:00+00:00", "error": "locked", "database": True}
    assert outage_span(said) == (datetime(2026, 12, 5, 10, tzinfo=UTC), "locked", True)
    assert outage_span(None) is None
    assert outage_span({"since": "2026-12-05 10:00:00 UTC", "told": True}) is None
    assert caplog.records == []
    assert outage_span({**said, "since_utc": "yesterday"}) is None
    assert outage_span({**said, "since_utc": "2026-12-05T10:00:00"}) is None  # no zone
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 2 and "'yesterday', not a time with its offset" in warned[0], warned
