"""A daemon whose process lives (it holds the home's lock) but neither beats nor ticks:
stopped with SIGSTOP, or hung. `health` and `list` said "no daemon is running … start
it with `agentcron run`", advice that the held lock then refuses (outside-in probe)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentcron.clock import FakeClock
from agentcron.home import hostname
from agentcron.instance_lock import InstanceLock
from agentcron.model import NodeInfo
from agentcron.service import NotFoundError, Service
from agentcron.store.sqlite import SQLiteStore

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def test_a_live_but_silent_daemon_is_said_to_hang_not_to_be_missing(tmp_path: Path) -> None:
    """It registered its node (so it has started) and then went silent."""
    home = tmp_path / "home"
    home.mkdir()
    store = SQLiteStore(home / "agentcron.db")
    lock = InstanceLock(home)
    lock.acquire()  # this process stands for the daemon: alive, holding the lock
    try:
        store.register_node(NodeInfo("n1", hostname(), os.getpid(), str(home), T0, T0))
        store.record_tick("n1", T0)
        later = Service(store, home, FakeClock(T0 + timedelta(minutes=5)))
        status = later.daemon_status()
        assert status["alive"] is False and status["unresponsive_pid"] == os.getpid()
        problem = later.health()["problem"]
        assert f"the daemon (pid {os.getpid()}) is running but not answering" in problem
        assert "start it with" not in problem
    finally:
        lock.release()
        store.close()
    gone = Service(SQLiteStore(home / "agentcron.db"), home, FakeClock(T0 + timedelta(minutes=5)))
    assert gone.daemon_status()["unresponsive_pid"] is None  # no process holds the home
    assert "no daemon is running" in gone.health()["problem"]


def test_a_daemon_that_took_the_lock_moments_ago_is_starting_not_hung(tmp_path: Path) -> None:
    """Between taking the home's lock and its first heartbeat (its database made, its
    migrations run) a daemon was called hung, with advice to stop it (found by review)."""
    home = tmp_path / "home"
    home.mkdir()
    store = SQLiteStore(home / "agentcron.db")
    lock = InstanceLock(home)
    lock.acquire()
    try:
        service = Service(store, home, FakeClock(T0))
        status = service.daemon_status()
        assert status["starting_pid"] == os.getpid() and status["unresponsive_pid"] is None
        problem = service.health()["problem"]
        assert f"the daemon (pid {os.getpid()}) is starting" in problem, problem
        # its config's tasks are not written yet: a task looked up is missing for now
        with pytest.raises(NotFoundError) as missing:
            service.runs("story")
        said = str(missing.value)
        assert said.startswith("no task named 'story'; no tasks are defined yet"), said
        assert f"the daemon (pid {os.getpid()}) is starting and may not have written" in said
        assert list(store.list_tasks()) == []  # nothing was written by asking
    finally:
        lock.release()
        store.close()
    again = SQLiteStore(home / "agentcron.db")
    try:
        with pytest.raises(NotFoundError, match=r"no tasks are defined yet$"):
            Service(again, home, FakeClock(T0)).runs("story")  # no daemon: no such word
    finally:
        again.close()


@pytest.mark.postgres
def test_on_postgresql_this_homes_daemon_is_its_live_node_and_says_its_trouble(
    tmp_path: Path,
) -> None:
    """Chaos soak: with PostgreSQL no home lock is held, so the trouble file was never
    read and `health` on the daemon's own machine said "no daemon is running … start
    it" while it ran and could not use its database; a frozen one the same. This
    home's daemon is the live process of its node row here."""
    from agentcron.store.postgres import PostgresStore
    from agentcron.trouble import TroubleFile
    from conftest import require_pg
    from pg_util import admin_execute, dsn_with_schema, fresh_schema

    require_pg()
    home = tmp_path / "home"
    home.mkdir()
    with fresh_schema() as schema:
        admin_execute([], schema=schema)  # made
        store = PostgresStore(dsn_with_schema(schema))
        said = TroubleFile(home)
        try:
            store.register_node(NodeInfo("n1", hostname(), os.getpid(), str(home), T0, T0))
            store.record_tick("n1", T0)
            later = Service(store, home, FakeClock(T0 + timedelta(minutes=5)))
            status = later.daemon_status()
            assert status["unresponsive_pid"] == os.getpid(), status  # frozen, not gone
            assert "is running but not answering" in later.health()["problem"]
            said.open()
            said.say({"database": True, "since": "12:00:00", "error": "lock timeout"})
            status = later.daemon_status()
            assert status["trouble"] is not None and status["unresponsive_pid"] is None
            problem = later.health()["problem"]
            assert "is running but cannot use its database" in problem, problem
            assert "start it" not in problem
        finally:
            said.close()
            store.close()


def test_a_silent_daemon_of_another_home_on_the_same_file_is_said_to_hang(
    tmp_path: Path,
) -> None:
    """Probe: a daemon run with `--db FILE` frozen by SIGSTOP, seen from another home with
    the same `--db`: "no daemon is running; start it", which its lock on FILE refuses."""
    from agentcron.instance_lock import daemon_lock

    theirs, mine = tmp_path / "theirs", tmp_path / "mine"
    theirs.mkdir()
    mine.mkdir()
    db = tmp_path / "data" / "shared.db"
    db.parent.mkdir()
    store = SQLiteStore(db)
    try:
        with daemon_lock(theirs, str(db)):  # this process stands for their daemon
            store.register_node(NodeInfo("n1", hostname(), os.getpid(), str(theirs), T0, T0))
            store.record_tick("n1", T0)
            later = Service(store, mine, FakeClock(T0 + timedelta(minutes=5)))
            status = later.daemon_status()
            assert status["alive"] is False and status["unresponsive_pid"] == os.getpid()
            problem = later.health()["problem"]
            assert f"the daemon (pid {os.getpid()}) is running but not answering" in problem
    finally:
        store.close()
