"""The "database unavailable" messages word a time of the same day as messages do: the
time alone (outside-in probe: "since 2026-12-04 22:24:50 UTC" of a time minutes before,
where the README has "since 02:03:10"); another day's keeps its date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentcron.clock import FakeClock
from agentcron.daemon import Daemon, DaemonOptions
from agentcron.engine.health import Outage
from agentcron.engine.settings import TickReport
from agentcron.model import Message

SINCE = datetime(2026, 12, 4, 22, 24, 50, tzinfo=UTC)


def _told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, now: datetime) -> list[Message]:
    daemon = Daemon(DaemonOptions(config_path=None, home=tmp_path / "home"), FakeClock(now))
    told: list[Message] = []
    monkeypatch.setattr(daemon, "_tell_soon", told.append)
    outage = Outage(since=SINCE, failures=3, error="database is locked", database=True)
    daemon._outage_began(outage)
    daemon._outage_ended(outage, now, TickReport())
    return told


def test_a_time_of_the_same_day_is_said_without_its_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    began, ended = _told(tmp_path, monkeypatch, SINCE + timedelta(minutes=3))
    assert "since 22:24:50 on " in began.body, began.body
    assert "(since 22:24:50)." in ended.body, ended.body
    assert "2026-12-04" not in began.body + ended.body


def test_a_time_of_another_day_keeps_its_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    began, _ended = _told(tmp_path, monkeypatch, SINCE + timedelta(hours=3))
    assert "since 2026-12-04 22:24:50 UTC on " in began.body, began.body
