"""The watchdog's checks failing while the database works are told, and not logged
once a second.

An outside-in probe put one row agentcron cannot read in the database of a running
daemon: the watchdog's thread caught the failure of every check and went on, logging
its traceback about once a second ("watchdog check failed; continuing", 76 in 76 s),
while no owner heard that runs that hang and tasks that stop firing were no longer
watched, and `health` said ✔. Now its failures are a streak (logged once, then every
few minutes), and a streak that lasts a minute while the database works is told once,
as is its end."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.daemon import WATCHDOG_FAULT_TOLD_AFTER, Daemon, DaemonOptions
from agentcron.model import Message
from agentcron.store.errors import UnreadableRow
from agentcron.store.sqlite import SQLiteStore
from agentcron.watchdog.watchdog import Watchdog
from faulty_store import FaultyStore

BAD_ROW = "the database has a row agentcron cannot read: task 'gamma' (…)"
KEY = "sk-proj-abcdefghijklmnopqrstuvwx"  # a row's text may quote one


def _unreadable() -> Exception:
    return UnreadableRow(BAD_ROW)


def _dog(store: Any, clock: FakeClock) -> Watchdog:
    return Watchdog(
        store,
        clock,
        lambda spec, event: None,
        period_of=lambda spec: None,
        count_fires=lambda spec, a, b: 0,
        interval=0.05,
    )


def test_failing_checks_are_a_streak_logged_once_and_known_to_the_daemon(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(datetime(2026, 6, 1, tzinfo=UTC))
    store = FaultyStore(SQLiteStore(tmp_path / "agentcron.db"))
    dog = _dog(store, clock)
    assert dog.fault() is None
    store.fail("smallest_overdue_after", "due_heads", "running_slots", error=_unreadable)
    dog.start()
    try:
        deadline = time.monotonic() + 10
        while sum(store.failed.values()) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        fault = dog.fault()
        assert fault is not None and isinstance(fault[1], UnreadableRow)
        store.clear("smallest_overdue_after", "due_heads", "running_slots")
        deadline = time.monotonic() + 10
        while dog.fault() is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert dog.fault() is None
    finally:
        dog.stop()
        store.close()
    said = [r.getMessage() for r in caplog.records if r.name == "agentcron.watchdog"]
    assert sum(store.failed.values()) >= 5
    assert not [m for m in said if "continuing" in m], said  # the old line, once a pass
    assert len([m for m in said if "failed; trying again" in m]) == 1, said
    assert [m for m in said if "works again" in m], said


class _Dog:
    """What the daemon reads of its watchdog: whether its checks fail, and since when."""

    def __init__(self) -> None:
        self.now: tuple[float, BaseException] | None = None

    def fault(self) -> tuple[float, BaseException] | None:
        return self.now


def test_checks_that_keep_failing_are_told_once_and_their_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(datetime(2026, 6, 1, 10, 0, 0, tzinfo=UTC))
    daemon = Daemon(DaemonOptions(config_path=None, home=tmp_path / "home"), clock)
    told: list[Message] = []
    monkeypatch.setattr(daemon, "_tell_soon", told.append)
    dog = _Dog()
    daemon.watchdog = dog  # type: ignore[assignment]
    daemon._say_watchdog_fault()
    dog.now = (WATCHDOG_FAULT_TOLD_AFTER - 5, _unreadable())  # a blip: not news
    daemon._say_watchdog_fault()
    assert told == []
    away = [True]
    monkeypatch.setattr(daemon, "_database_away", lambda: away[0])
    dog.now = (WATCHDOG_FAULT_TOLD_AFTER + 1, UnreadableRow(f"{BAD_ROW} {KEY}"))
    daemon._say_watchdog_fault()
    assert told == []  # the database's outage is told, and covers it
    away[0] = False
    daemon._say_watchdog_fault()
    (message,) = told
    assert message.body.startswith("⚠ agentcron's watchdog on ")
    assert "cannot check runs and schedules since 09:58:59 (UnreadableRow: " in message.body
    assert BAD_ROW in message.body
    assert "a run that hangs or a task that stops firing is not told" in message.body
    daemon._say_watchdog_fault()
    assert len(told) == 1  # once
    # what `health`, `doctor`, the API and the dashboard read on the node's row meanwhile
    note = daemon.config_note()
    assert note is not None and "its watchdog cannot check runs and schedules since" in note
    assert KEY not in note and KEY not in message.body and "[REDACTED]" in message.body
    clock.advance(timedelta(minutes=3))
    dog.now = None
    daemon._say_watchdog_fault()
    end = told[-1]
    assert end.severity == "recovery"
    assert daemon.config_note() is None
    assert "checks runs and schedules again (it could not from 09:58:59, 4 min 1s)" in end.body


def test_the_daemons_watch_logs_nothing_more_while_the_checks_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = Daemon(DaemonOptions(config_path=None, home=tmp_path / "home"))
    daemon.watchdog = _Dog()  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING):
        daemon._say_watchdog_fault()
    assert caplog.records == []
