"""Changes made by other processes are announced to the daemon, which acts at once
instead of finding them on its beat (issue 16: a longer beat is what makes an idle
daemon cheap). See agentcron.store.changes."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from agentcron.beats import next_beat
from agentcron.model import SlotStatus
from agentcron.service import Service
from agentcron.store.changes import SocketListener, announce_on_socket, socket_path
from agentcron.store.sqlite import SQLiteStore
from harness import until

CONFIG = """\
tasks:
  job:
    every: 1d
    command: ["true"]
"""
BEAT = 60.0  # the daemons' beat here: no look of theirs can explain a prompt start


def _long_beat(**more: Any) -> dict[str, Any]:
    return dict(
        poll_interval=BEAT,
        reload_interval=BEAT,
        stall_after=4 * BEAT,
        watchdog_interval=BEAT,
        heartbeat_interval=BEAT,
        shutdown_grace=2,
        tune_gc=False,
        **more,
    )


async def _away_from_a_beat() -> None:
    """Wait until the daemon's next beat is at least 15 s off, so only an announcement
    can make it act within the test's few seconds."""
    loop = asyncio.get_running_loop()
    while next_beat(loop.time(), BEAT) - loop.time() < 15.0:
        await asyncio.sleep(0.5)


def _manual_runs(store: Any) -> list[SlotStatus]:
    return [s.status for s in store.slots("job") if s.trigger == "manual"]


def test_a_trigger_from_another_process_runs_at_once_on_a_long_beat(tmp_path: Path) -> None:
    """The CLI's service (its own store, no daemon of its own) records a manual run:
    the daemon, whose beat is a minute, starts it within seconds."""
    from agentcron.daemon import Daemon, DaemonOptions

    config = tmp_path / "agentcron.yaml"
    config.write_text(CONFIG)
    home = tmp_path / "home"
    d = Daemon(DaemonOptions(config_path=config, home=home, **_long_beat()))

    async def scenario() -> None:
        main = asyncio.create_task(d.run())
        cli = None
        try:
            await until(lambda: d.engine is not None and d.engine.passes >= 1, timeout=30)
            cli = Service(SQLiteStore(home / "agentcron.db"), home)
            await _away_from_a_beat()
            passes = d.engine.passes if d.engine else 0
            loop = asyncio.get_running_loop()
            began = loop.time()
            await asyncio.to_thread(cli.trigger, "job")
            await until(lambda: _manual_runs(cli.store) == [SlotStatus.SUCCEEDED], timeout=10)
            assert loop.time() - began < 10 < next_beat(began, BEAT) - began
            assert d.engine is not None and d.engine.passes > passes
        finally:
            d.stop_event.set()
            await asyncio.wait_for(main, 60)
            if cli is not None:
                cli.close()

    asyncio.run(scenario())
    path = socket_path(str(home / "agentcron.db"))
    assert path is not None and not path.exists()  # the daemon removed its socket


def test_announcing_with_no_daemon_does_nothing_and_costs_no_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "agentcron.db.wake"
    with caplog.at_level(logging.DEBUG, logger="agentcron.changes"):
        announce_on_socket(path)  # no file: no daemon ever listened there
        path.write_text("")  # a plain file where the socket would be: nobody bound
        announce_on_socket(path)
        announce_on_socket(None)  # an in-memory database
    assert caplog.records == []  # nothing went wrong: nothing said
    assert socket_path(":memory:") is None and socket_path("file:x?mode=memory") is None


def test_an_announcement_that_fails_for_another_reason_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not "no daemon" nor "told already": the change then waits for the daemon's beat,
    and the log says why."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="agentcron.changes"):
        announce_on_socket(blocker / "agentcron.db.wake")  # ENOTDIR
    assert "cannot tell the daemon at" in caplog.text and "within its beat" in caplog.text


def test_the_socket_is_reached_from_a_path_too_long_for_an_address_and_replaces_a_stale_one(
    tmp_path: Path,
) -> None:
    deep = tmp_path.joinpath(*["d" * 40] * 4)
    deep.mkdir(parents=True)
    db = deep / "agentcron.db"
    path = socket_path(str(db))
    assert path is not None and len(str(path)) > 108
    import socket

    from agentcron.store.changes import _address

    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with _address(path) as address:
        stale.bind(address)
    stale.close()  # left behind by a daemon that died
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    heard: list[int] = []

    async def main() -> None:
        listener = SocketListener(path)
        listener.start(lambda: heard.append(1))
        try:
            assert stat.S_ISSOCK(os.stat(path).st_mode)
            for _ in range(50):  # more than the socket's queue holds: never blocks
                announce_on_socket(path)
            await until(lambda: len(heard) >= 1, timeout=10)
            await asyncio.sleep(0.1)
            assert len(heard) < 50  # a batch of announcements is heard as one or a few
            count = len(heard)
            SQLiteStore(db).announce_change()  # the store announces on the same socket
            await until(lambda: len(heard) > count, timeout=10)
        finally:
            listener.close()
        assert not path.exists()

    asyncio.run(main())


def test_a_socket_that_cannot_be_bound_is_logged_and_the_daemon_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A folder that is not there (the database's folder renamed away under the
    daemon): the bind fails whoever runs it."""

    async def main() -> None:
        listener = SocketListener(tmp_path / "gone" / "agentcron.db.wake")
        listener.start(lambda: None)
        listener.close()

    with caplog.at_level(logging.WARNING, logger="agentcron.changes"):
        asyncio.run(main())
    assert "cannot listen for changes at" in caplog.text


# ---- PostgreSQL ---------------------------------------------------------------------
@pytest.mark.postgres
def test_nodes_on_postgresql_hear_each_others_changes_and_not_another_schemas(
    tmp_path: Path,
) -> None:
    from agentcron.store.postgres import PostgresStore
    from conftest import require_pg
    from pg_util import admin_execute, dsn_with_schema, fresh_schema

    require_pg()
    with fresh_schema() as schema, fresh_schema() as other:
        admin_execute([], schema=schema)
        admin_execute([], schema=other)
        here = PostgresStore(dsn_with_schema(schema))
        there = PostgresStore(dsn_with_schema(schema))
        elsewhere = PostgresStore(dsn_with_schema(other))
        heard: list[int] = []

        async def main() -> None:
            listener = here.change_listener()
            listener.start(lambda: heard.append(1))
            try:
                await until(listener.connected.is_set, timeout=20)
                await until(lambda: len(heard) >= 1, timeout=10)  # asked to look once
                count = len(heard)
                elsewhere.announce_change()
                await asyncio.sleep(0.5)
                assert len(heard) == count  # another schema's change is not ours
                there.announce_change()
                await until(lambda: len(heard) > count, timeout=10)
            finally:
                listener.close()
            assert not listener.connected.is_set()

        try:
            asyncio.run(main())
        finally:
            for store in (here, there, elsewhere):
                store.close()


@pytest.mark.postgres
def test_a_node_on_postgresql_runs_another_nodes_trigger_at_once_on_a_long_beat(
    tmp_path: Path,
) -> None:
    from agentcron.daemon import Daemon, DaemonOptions
    from agentcron.store.postgres import PostgresStore
    from conftest import require_pg
    from pg_util import admin_execute, dsn_with_schema, fresh_schema

    require_pg()
    config = tmp_path / "agentcron.yaml"
    config.write_text(CONFIG)
    with fresh_schema() as schema:
        admin_execute([], schema=schema)
        url = dsn_with_schema(schema)
        d = Daemon(
            DaemonOptions(config_path=config, home=tmp_path / "home", db_url=url, **_long_beat())
        )

        async def scenario() -> None:
            main = asyncio.create_task(d.run())
            other = None
            try:
                await until(lambda: d.engine is not None and d.engine.passes >= 1, timeout=30)
                listener: Any = d._changes
                assert listener is not None
                await until(listener.connected.is_set, timeout=20)
                other = Service(PostgresStore(url), tmp_path / "other")
                await _away_from_a_beat()
                loop = asyncio.get_running_loop()
                began = loop.time()
                await asyncio.to_thread(other.trigger, "job")
                await until(lambda: _manual_runs(other.store) == [SlotStatus.SUCCEEDED], timeout=10)
                assert loop.time() - began < 10 < next_beat(began, BEAT) - began
            finally:
                d.stop_event.set()
                await asyncio.wait_for(main, 60)
                if other is not None:
                    other.close()

        asyncio.run(scenario())


# ---- a longer beat --------------------------------------------------------------------
@pytest.mark.parametrize(("late", "freeze"), [(2.5, True), (0.2, False)])
def test_a_pass_that_begins_well_past_its_wake_up_counts_as_a_freeze(
    sqlite_store: Any, clock: Any, home: Path, late: float, freeze: bool
) -> None:
    """With a 6 s beat, "no pass for three beats" finds only freezes over 18 s: a pass
    that begins more than a second after its sleep was to end finds a shorter one (its
    sweep then waits for the ends of commands that exited meanwhile)."""
    import time

    from harness import Harness

    h = Harness(sqlite_store, clock, home)
    h.engine.settings.poll_interval = 6.0

    async def main() -> None:
        now = time.monotonic()
        h.engine.health.last_pass = now - 4.0  # one beat and a bit: not three
        h.engine._wake_due = now - late
        await h.engine.run_pass()

    asyncio.run(main())
    assert (h.engine._held.sweep_not_before is not None) is freeze
    assert h.engine._wake_due is None


def test_a_socket_removed_under_the_daemon_is_bound_again_and_a_plain_file_is_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Probe: `rm agentcron.db.wake` under a running daemon lost every announcement
    after it without a word; and a regular file at that path was deleted at start."""
    path = tmp_path / "agentcron.db.wake"
    heard: list[int] = []

    async def main() -> None:
        listener = SocketListener(path)
        listener.start(lambda: heard.append(1))
        try:
            listener.keep()  # nothing to mend
            path.unlink()
            announce_on_socket(path)
            await asyncio.sleep(0.1)
            assert heard == []  # lost: nobody listens at the path any more
            listener.keep()
            assert stat.S_ISSOCK(os.stat(path).st_mode)
            announce_on_socket(path)
            await until(lambda: heard == [1], timeout=10)
        finally:
            listener.close()

    with caplog.at_level(logging.WARNING, logger="agentcron.changes"):
        asyncio.run(main())
    assert "was removed; listening there again" in caplog.text
    path.write_text("mine")

    async def plain() -> None:
        listener = SocketListener(path)
        listener.start(lambda: None)
        listener.close()

    with caplog.at_level(logging.WARNING, logger="agentcron.changes"):
        asyncio.run(plain())
    assert path.read_text() == "mine"
    assert "a file that is not a socket is there" in caplog.text


def test_a_socket_already_gone_at_close_is_no_fault(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removed before the daemon closes (by hand, or a rebind's loser): nothing is
    left to remove, nothing is said; one that cannot be removed is said."""
    (tmp_path / "agentcron.db").write_bytes(b"")  # whose permissions the socket takes
    path = tmp_path / "agentcron.db.wake"

    async def gone() -> None:
        listener = SocketListener(path)
        listener.start(lambda: None)
        path.unlink()
        listener.close()

    with caplog.at_level(logging.DEBUG, logger="agentcron.changes"):
        asyncio.run(gone())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not path.exists()

    def refused(target: object) -> None:
        raise PermissionError(13, "Permission denied", str(target))

    async def stuck() -> None:
        listener = SocketListener(path)
        listener.start(lambda: None)
        with monkeypatch.context() as m:
            m.setattr(os, "unlink", refused)
            listener.close()

    with caplog.at_level(logging.WARNING, logger="agentcron.changes"):
        asyncio.run(stuck())
    assert f"cannot remove the socket {path}: Permission denied" in caplog.text


def test_a_database_named_through_a_symlink_reaches_its_daemon(tmp_path: Path) -> None:
    """Probe: `--db LINK` to the daemon's file announced on LINK.wake, which nobody
    hears: each change waited for the daemon's beat."""
    real = tmp_path / "data" / "agentcron.db"
    real.parent.mkdir()
    SQLiteStore(real).close()
    link = tmp_path / "link.db"
    link.symlink_to(real)
    heard: list[int] = []

    async def main() -> None:
        listener = SQLiteStore(real).change_listener()
        assert listener is not None
        listener.start(lambda: heard.append(1))
        try:
            store = SQLiteStore(link)
            store.announce_change()
            store.close()
            await until(lambda: heard == [1], timeout=10)
        finally:
            listener.close()

    asyncio.run(main())


@pytest.mark.postgres
def test_a_listener_whose_connection_is_killed_says_so_in_a_line_and_listens_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Probe: each pg_terminate_backend of the listener was an ERROR with a traceback."""
    import psycopg

    from agentcron.store.postgres import PostgresStore
    from conftest import PG_DSN, require_pg
    from pg_util import admin_execute, dsn_with_schema, fresh_schema

    require_pg()
    with fresh_schema() as schema:
        admin_execute([], schema=schema)
        store = PostgresStore(dsn_with_schema(schema))
        heard: list[int] = []

        async def main() -> None:
            listener = store.change_listener()
            listener.start(lambda: heard.append(1))
            try:
                await until(listener.connected.is_set, timeout=20)
                with psycopg.connect(PG_DSN, autocommit=True) as admin:
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'agentcron listener' AND query LIKE %s",
                        (f"%{listener.channel}%",),
                    )
                await until(lambda: not listener.connected.is_set(), timeout=20)
                await until(listener.connected.is_set, timeout=20)
                count = len(heard)
                store.announce_change()
                await until(lambda: len(heard) > count, timeout=10)
            finally:
                listener.close()

        try:
            with caplog.at_level(logging.INFO, logger="agentcron.changes"):
                asyncio.run(main())
        finally:
            store.close()
    assert "the connection that listens for changes is lost" in caplog.text
    assert "listening for changes again" in caplog.text
    assert "Traceback" not in caplog.text and not any(
        r.levelno >= logging.ERROR for r in caplog.records
    )
