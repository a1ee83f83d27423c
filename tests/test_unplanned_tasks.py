"""A recurring task whose row lost its next fire time is planned again at the start.

An outside-in probe set a task's `next_fire_at` to NULL by hand: the task (every 5 s,
not paused) never ran again in 6.5 minutes, while `list` called it healthy, `doctor`
passed and the watchdog saw nothing: all of them are driven by that column. A daemon
now plans such a task again when it starts, says so in its log, and tells the owner
(what fell due meanwhile never ran)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from agentcron.clock import FakeClock
from agentcron.daemon import Daemon, DaemonOptions
from agentcron.model import Message
from agentcron.store.base import Store
from harness import Harness, running


def test_a_recurring_task_without_a_next_fire_is_planned_again(
    store: Store, clock: FakeClock, home: Path
) -> None:
    h = Harness(store, clock, home)
    h.add("alpha", lambda: None, every="5s")
    h.add("quiet", lambda: None, every="5s", paused=True)
    h.add("once", lambda: None, at=(clock.now() - timedelta(hours=1)).isoformat())
    with store._tx() as db:  # type: ignore[attr-defined]
        db.execute("UPDATE tasks SET next_fire_at = NULL WHERE name = 'alpha'")
    assert store.get_task("alpha").next_fire_at is None  # type: ignore[union-attr]
    h.add("broken", lambda: None, every="5s")
    with store._tx() as db:  # type: ignore[attr-defined]
        db.execute("UPDATE tasks SET next_fire_at = NULL, spec = '{x' WHERE name = 'broken'")
    planned, unreadable = h.service.plan_unplanned()
    assert [name for name, _ in planned] == ["alpha"]  # one bad row keeps no other back
    assert unreadable == ["broken"]
    fire = store.get_task("alpha").next_fire_at  # type: ignore[union-attr]
    assert fire is not None and clock.now() < fire <= clock.now() + timedelta(seconds=5)
    assert h.service.plan_unplanned() == ([], ["broken"])  # once
    assert store.get_task("quiet").next_fire_at is None  # type: ignore[union-attr]


def test_the_daemon_plans_it_at_its_start_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "agentcron.yaml"
    config.write_text("tasks:\n  alpha:\n    every: 1h\n    command: [echo, a]\n")
    options = DaemonOptions(config_path=config, home=tmp_path / "home", shutdown_grace=2)

    async def once(daemon: Daemon) -> None:
        async with running(daemon):
            pass

    asyncio.run(once(Daemon(options)))
    db = sqlite3.connect(tmp_path / "home" / "agentcron.db")
    db.execute("UPDATE tasks SET next_fire_at = NULL")
    db.commit()
    db.close()
    daemon = Daemon(options)
    told: list[Message] = []
    monkeypatch.setattr(daemon, "_tell_soon", told.append)
    with caplog.at_level(logging.WARNING, logger="agentcron.daemon"):
        asyncio.run(once(daemon))
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "task alpha had no next fire time recorded although its schedule has one" in said
    (message,) = [m for m in told if m.incident_kind == "database"]
    assert message.body.startswith("⚠ agentcron on ")
    assert "found in its database: 1 task had no next run recorded although the schedule has" in (
        message.body
    )
    assert "alpha (next at " in message.body and "Planned again from now" in message.body
    db = sqlite3.connect(tmp_path / "home" / "agentcron.db")
    (fire,) = db.execute("SELECT next_fire_at FROM tasks WHERE name = 'alpha'").fetchone()
    db.close()
    assert fire is not None
    caplog.clear()
    again = Daemon(options)
    monkeypatch.setattr(again, "_tell_soon", told.append)
    asyncio.run(once(again))  # planned: the next start has nothing to say
    assert len([m for m in told if m.incident_kind == "database"]) == 1
    assert "no next fire time" not in " ".join(r.getMessage() for r in caplog.records)


def test_rows_that_cannot_be_read_are_told_with_the_way_to_find_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = Daemon(DaemonOptions(config_path=None, home=tmp_path / "home"))
    told: list[Message] = []
    monkeypatch.setattr(daemon, "_tell_soon", told.append)
    daemon._tell_unplanned([], [])
    assert told == []
    daemon._tell_unplanned([], ["broken", "worse"])
    (message,) = told
    assert "2 tasks with no next run recorded cannot be read: broken, worse" in message.body
    assert "`agentcron doctor`" in message.body
