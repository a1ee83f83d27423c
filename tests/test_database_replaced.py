"""A database made again under a running daemon is told, and the daemon's tasks are
applied to it.

An outside-in probe dropped a PostgreSQL database under a running daemon and made it
again (a CLI command then made agentcron's tables in it): the daemon said the database
was "available again … No slot came due meanwhile", registered its node row again, and
ran nothing from then on, with no tasks, while `health` said ✔. The database now
carries an id of its own; a daemon that finds another (or none) says so and applies
its config file to the new database."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from agentcron.daemon import DATABASE_ID, Daemon, DaemonOptions
from agentcron.model import Message
from harness import running, until


def test_a_database_emptied_and_made_again_under_the_daemon_is_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "agentcron.yaml"
    config.write_text("tasks:\n  alpha:\n    every: 1h\n    command: [echo, a]\n")
    options = DaemonOptions(
        config_path=config, home=tmp_path / "home", shutdown_grace=2, heartbeat_interval=0.2
    )
    daemon = Daemon(options)
    told: list[Message] = []
    monkeypatch.setattr(daemon, "_tell_soon", told.append)

    def tasks() -> list[str]:
        assert daemon.store is not None
        return [t.name for t in daemon.store.list_tasks()]

    async def scenario() -> None:
        async with running(daemon):
            assert daemon.store is not None
            first = daemon.store.get_meta(DATABASE_ID)
            assert first is not None
            db = sqlite3.connect(tmp_path / "home" / "agentcron.db")
            # what a database dropped and made again holds: agentcron's tables, no rows
            db.execute("DELETE FROM meta WHERE key = ?", (DATABASE_ID,))
            db.execute("DELETE FROM tasks")
            db.execute("DELETE FROM nodes")
            db.commit()
            db.close()
            await until(lambda: bool(told), 10)
            await until(lambda: tasks() == ["alpha"], 10)
            again = daemon.store.get_meta(DATABASE_ID)
            assert again is not None and again != first

    asyncio.run(scenario())
    (message,) = told
    assert "its database (" in message.body and "is not the one it started on" in message.body
    assert "The daemon has applied its config file to it again" in message.body
