"""`agentcron run` reloads its config; a broken new version is rejected and the last good
config keeps running (PRODUCT.md §11)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agentcron.daemon import Daemon, DaemonOptions
from harness import until

GOOD = "tasks:\n  a:\n    every: 1s\n    command: [echo, a]\n"
BROKEN_YAML = "tasks:\n  a: [unclosed\n"
BAD_CRON = 'tasks:\n  a:\n    cron: "61 * * * *"\n    command: [echo, a]\n'
NEW = "tasks:\n  b:\n    every: 1s\n    command: [echo, b]\n"


@pytest.mark.slow
def test_broken_reload_keeps_old_tasks_running_then_good_reload_applies(tmp_path: Path) -> None:
    config = tmp_path / "agentcron.yaml"
    config.write_text(GOOD)
    daemon = Daemon(
        DaemonOptions(
            config_path=config,
            home=tmp_path / "home",
            reload_interval=0.1,
            poll_interval=0.5,  # reload_interval is at least one beat
            shutdown_grace=2,
        )
    )

    def runs(task: str) -> int:
        assert daemon.store is not None
        return len(daemon.store.slots(task, limit=1000))

    async def scenario() -> None:
        main = asyncio.create_task(daemon.run())
        try:
            await until(lambda: daemon.store is not None and runs("a") >= 1, timeout=30)
            assert cli_notes(tmp_path) == [None]
            config.write_text(BROKEN_YAML)
            await until(lambda: daemon.rejected_config is not None, timeout=30)
            assert "invalid YAML" in (daemon.rejected_config or "")
            # `agentcron health`, another process's view of the database, says so too
            (note,) = cli_notes(tmp_path)
            assert note is not None and "was rejected" in note and "invalid YAML" in note
            config.write_text(BAD_CRON + "\n# edited\n")
            await until(lambda: "tasks.a.cron" in (daemon.rejected_config or ""), timeout=30)
            assert daemon.store is not None
            assert [t.name for t in daemon.store.list_tasks()] == ["a"]
            before = runs("a")
            await until(lambda: runs("a") >= before + 2, timeout=30)  # still firing
            config.write_text(NEW)
            await until(
                lambda: (
                    daemon.store is not None
                    and [t.name for t in daemon.store.list_tasks()] == ["b"]
                ),
                timeout=30,
            )
            await until(lambda: runs("b") >= 1, timeout=30)
            assert daemon.rejected_config is None
            assert cli_notes(tmp_path) == [None]
        finally:
            daemon.stop_event.set()
            await asyncio.wait_for(main, 30)

    asyncio.run(scenario())


class Queued(list[Any]):
    """The messages a daemon's store queues, as they are saved; while ``refusing``,
    the database refuses them (locked), as a write would fail in an outage."""

    def __init__(self, store: Any, *, refusing: bool = False) -> None:
        super().__init__()
        self.refusing = refusing
        save = store.save_incidents

        def saving(changed: Any, messages: Any, now: Any) -> Any:
            if self.refusing:
                import sqlite3

                raise sqlite3.OperationalError("database is locked")
            self.extend(m[2] for m in messages)
            return save(changed, messages, now)

        store.save_incidents = saving


def run_reloading(config: Path, body: Callable[[Daemon], Awaitable[None]]) -> None:
    """Run a daemon on ``config`` (home beside it, the file looked at every 0.1 s),
    ``body`` once it has loaded it, then stop it."""
    daemon = Daemon(
        DaemonOptions(
            config_path=config,
            home=config.parent / "home",
            reload_interval=0.1,
            poll_interval=0.5,  # reload_interval is at least one beat
        )
    )

    async def scenario() -> None:
        main = asyncio.create_task(daemon.run())
        try:
            await until(lambda: daemon.config is not None, timeout=30)
            await body(daemon)
        finally:
            daemon.stop_event.set()
            await asyncio.wait_for(main, 30)

    asyncio.run(scenario())


def said(hook: Any, word: str) -> list[str]:
    """The webhook's messages (Apprise json://) that mention ``word``."""
    return [m.get("message", "") for m in hook.messages() if word in str(m)]


def cli_notes(tmp_path: Path) -> list[str | None]:
    """The config notes of the running nodes, as `agentcron health --json` prints them."""
    import json

    from typer.testing import CliRunner

    from agentcron.interfaces.cli import app

    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "health", "--json"])
    assert result.exit_code == 0, result.output
    nodes = json.loads(result.stdout)["nodes"]
    return [n["config_note"] for n in nodes if n["state"] == "running"]


@pytest.mark.slow
def test_a_stalled_loop_is_reported_to_the_notify_channels_from_the_watchdog_thread(
    tmp_path: Path,
) -> None:
    from e2e_webhook import WebhookReceiver

    with WebhookReceiver() as hook:
        config = tmp_path / "agentcron.yaml"
        config.write_text(f'notify: ["{hook.url}"]\n' + GOOD)
        daemon = Daemon(DaemonOptions(config_path=config, home=tmp_path / "home"))

        async def scenario() -> None:
            await daemon.start()
            try:
                # what the watchdog thread does when the loop is stuck, from a thread
                await asyncio.to_thread(daemon._loop_stalled, 42.0)
                # a stall seen only after it (the process was frozen): told as over
                await asyncio.to_thread(daemon._loop_stalled_before, 42.0)
            finally:
                assert daemon.registry is not None and daemon.store is not None
                await daemon.registry.close()
                daemon.store.close()

        asyncio.run(scenario())
        bodies = [m.get("message", "") for m in hook.messages()]  # Apprise json:// format
    assert any("has not ticked for 42s" in b for b in bodies), bodies
    [past] = [b for b in bodies if "did not run for" in b]
    assert "did not run for 42s and runs again: the whole process was held" in past
    assert "restart" not in past


AGENT = (
    "agents:\n  clients:\n    bot:\n      token: {token}\n      budget:\n"
    "        runs_per_day: {runs}\n"
)


@pytest.mark.slow
def test_a_reload_that_changes_what_applies_only_at_start_says_so(tmp_path: Path) -> None:
    """`api:` and `agents:` are set up when the daemon starts: a reload that changes
    them applies the rest and tells the owner (log and channels) a restart is needed,
    instead of a quiet "config reloaded" while the old API token still works. A change
    of an agent's budget alone is applied and needs no restart."""
    import json

    from typer.testing import CliRunner

    from agentcron.interfaces.cli import app
    from e2e_webhook import WebhookReceiver

    first = AGENT.format(token="t" * 20, runs=5)
    with WebhookReceiver() as hook:
        config = tmp_path / "agentcron.yaml"
        head = f'notify: ["{hook.url}"]\napi:\n  enabled: false\n'
        config.write_text(head + first + GOOD)

        def told() -> list[str]:
            return said(hook, "restart")

        async def body(daemon: Daemon) -> None:
            # an agent's budget only: applied, nothing to restart for
            config.write_text(head + AGENT.format(token="t" * 20, runs=9) + GOOD)
            await until(
                lambda: (
                    daemon.config is not None
                    and daemon.config.agents.clients["bot"].budget is not None
                    and daemon.config.agents.clients["bot"].budget.runs_per_day == 9
                ),
                timeout=30,
            )
            assert daemon.restart_needed == []
            # a new agent token and another API port: applied only at a restart
            changed = head.replace("enabled: false", "enabled: false\n  port: 8799")
            config.write_text(changed + AGENT.format(token="u" * 20, runs=9) + GOOD)
            await until(lambda: daemon.restart_needed == ["agents", "api"], timeout=30)
            await until(lambda: len(told()) == 1, timeout=30)
            (note,) = cli_notes(tmp_path)
            assert note == (
                "`agents:` and `api:` changed since it started and apply only at a restart"
            )
            doctor = CliRunner().invoke(
                app,
                ["--home", str(tmp_path / "home"), "doctor", "--config", str(config), "--json"],
            )
            (check,) = [c for c in json.loads(doctor.stdout)["checks"] if "daemon c" in c["name"]]
            assert check["status"] == "warn" and note in check["message"]
            # a task edit with the sections still changed: said once, not again
            config.write_text(changed + AGENT.format(token="u" * 20, runs=9) + NEW)
            await until(lambda: "b" in (daemon.config.tasks if daemon.config else {}), 30)
            # both put back as they were at start: nothing waits for a restart
            config.write_text(head + AGENT.format(token="t" * 20, runs=9) + GOOD)
            await until(lambda: daemon.restart_needed == [], timeout=30)
            assert cli_notes(tmp_path) == [None]
            assert len(told()) == 1

        run_reloading(config, body)
        body = told()[0]
    assert "`agents:` and `api:`" in body and "take effect only when agentcron restarts" in body
    assert "u" * 20 not in body and "t" * 20 not in body  # no token in the message


def test_a_config_note_that_cannot_be_written_is_logged_and_written_at_the_next_look(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The database away when a reload is rejected: the owner was told on the channels,
    the failed write is logged, and the reload loop writes the note at its next pass."""

    class Store:
        def __init__(self) -> None:
            self.fail = True
            self.notes: list[str | None] = []

        def set_config_note(self, node_id: str, note: str | None) -> None:
            if self.fail:
                raise OSError("disk I/O error")
            self.notes.append(note)

    store = Store()
    daemon = Daemon(DaemonOptions(config_path=tmp_path / "agentcron.yaml", home=tmp_path))
    daemon.store = store  # type: ignore[assignment]
    daemon.rejected_config = "agentcron.yaml:2: tasks.a.cron: bad minute 61\nmore"
    daemon._write_config_note()
    assert daemon._note_unwritten and store.notes == []
    assert "could not record the config's state" in caplog.text
    assert "disk I/O error" in caplog.text
    store.fail = False

    async def one_pass() -> None:
        daemon.options.reload_interval = 0.01
        loop = asyncio.create_task(daemon._reload_loop())
        await until(lambda: bool(store.notes), timeout=30)
        daemon.stop_event.set()
        await asyncio.wait_for(loop, 30)

    asyncio.run(one_pass())
    assert not daemon._note_unwritten
    (note,) = store.notes[:1]
    assert note is not None and "bad minute 61" in note and "more" not in note


def test_a_reload_that_fails_midway_is_done_again_at_the_next_look(tmp_path: Path) -> None:
    """The database locked while the new tasks are written: the reload raises (the
    loop logs it) and the next look applies the file, instead of taking it for one
    already applied and never adding the new task."""
    import sqlite3

    config = tmp_path / "agentcron.yaml"
    config.write_text(GOOD)
    daemon = Daemon(
        # written whole before each look: no wait for the file to stand still
        DaemonOptions(config_path=config, home=tmp_path / "home", tune_gc=False, config_settle=0)
    )

    async def scenario() -> None:
        await daemon.start()
        try:
            assert daemon.service is not None and daemon.store is not None
            config.write_text(GOOD + NEW.removeprefix("tasks:\n"))
            sync = daemon.service.sync_file_tasks
            calls: list[int] = []

            def locked_once(tasks: Any) -> Any:
                calls.append(1)
                if len(calls) == 1:
                    raise sqlite3.OperationalError("database is locked")
                return sync(tasks)

            daemon.service.sync_file_tasks = locked_once  # type: ignore[method-assign]
            with pytest.raises(sqlite3.OperationalError):
                daemon.reload_if_changed()
            assert daemon.config is not None and sorted(daemon.config.tasks) == ["a"]
            assert daemon.reload_if_changed() is True
            assert [t.name for t in daemon.store.list_tasks()] == ["a", "b"]
            assert daemon.reload_if_changed() is False  # now it is the file that runs
        finally:
            await daemon.close()

    asyncio.run(scenario())


def test_a_restart_message_that_cannot_be_queued_is_queued_at_the_next_look(
    tmp_path: Path,
) -> None:
    """The node row says a restart is needed even when the message cannot be queued
    (health and doctor read the row); the message goes at the next look at the file."""
    import sqlite3

    config = tmp_path / "agentcron.yaml"
    head = "notify: ['json://127.0.0.1:9/x']\napi:\n  enabled: false\n  port: 8765\n"
    config.write_text(head + GOOD)
    daemon = Daemon(
        # written whole before each look: no wait for the file to stand still
        DaemonOptions(config_path=config, home=tmp_path / "home", tune_gc=False, config_settle=0)
    )

    async def scenario() -> None:
        await daemon.start()
        try:
            store = daemon.store
            assert store is not None
            config.write_text(head.replace("8765", "8766") + GOOD)
            queued = Queued(store, refusing=True)
            with pytest.raises(sqlite3.OperationalError):
                daemon.reload_if_changed()
            (node,) = [n for n in store.nodes() if n.node_id == daemon.node_id]
            assert node.config_note is not None and "`api:` changed" in node.config_note
            queued.refusing = False
            daemon.reload_if_changed()
            assert [m.title for m in queued] == ["agentcron: restart to apply the config"]
            daemon.reload_if_changed()  # told once
            assert len(queued) == 1
        finally:
            await daemon.close()

    asyncio.run(scenario())


def test_a_divergence_message_that_cannot_be_queued_is_queued_when_the_file_is_applied_again(
    tmp_path: Path,
) -> None:
    """Another running node applied other tasks; this node's change to its file is
    written, but the message saying so cannot be queued (the database refuses the
    write). The apply is done again at the next look: its sync finds nothing left to
    change, and the message still goes, once."""
    import sqlite3
    from datetime import UTC, datetime

    from agentcron.config.nodes import META_KEY, Applied
    from agentcron.model import NodeInfo

    # the difference told at once (not after the other node's time to apply it too)
    daemon, config, head = _diverging_daemon(tmp_path, settle=0)

    async def scenario() -> None:
        await daemon.start()
        try:
            store = daemon.store
            assert store is not None
            now = datetime.now(UTC)
            store.register_node(NodeInfo("other", "elsewhere", 7, "/other", now, now))
            other = Applied("other", "elsewhere", "/other/agentcron.yaml", "digest", None)
            store.set_meta(META_KEY, other.dumps())
            config.write_text(head + GOOD + NEW.removeprefix("tasks:\n"))
            queued = Queued(store, refusing=True)
            with pytest.raises(sqlite3.OperationalError):
                daemon.reload_if_changed()
            assert sorted(t.name for t in store.list_tasks()) == ["a", "b"]  # written
            queued.refusing = False
            daemon.reload_if_changed()
            (told,) = [m.body for m in queued]
            assert "/other/agentcron.yaml" in told and "added b" in told, told
            daemon.reload_if_changed()  # told once
            assert len(queued) == 1
        finally:
            await daemon.close()

    asyncio.run(scenario())


def test_a_start_that_fails_midway_records_its_node_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What start made before failing is closed: the node row says stopped (not a
    daemon that seems to run until its heartbeat goes stale) and the store is closed."""
    from agentcron.service import Service
    from agentcron.store.sqlite import SQLiteStore

    def broken(self: Service, tasks: Any) -> Any:
        raise RuntimeError("cannot write the tasks")

    monkeypatch.setattr(Service, "sync_file_tasks", broken)
    config = tmp_path / "agentcron.yaml"
    config.write_text(GOOD)
    daemon = Daemon(
        # written whole before each look: no wait for the file to stand still
        DaemonOptions(config_path=config, home=tmp_path / "home", tune_gc=False, config_settle=0)
    )
    with pytest.raises(RuntimeError, match="cannot write the tasks"):
        asyncio.run(daemon.run())
    store = SQLiteStore(tmp_path / "home" / "agentcron.db")
    try:
        (node,) = store.nodes()
        assert node.node_id == daemon.node_id and node.stopped_at is not None
    finally:
        store.close()


def test_a_node_whose_row_went_missing_registers_again_at_its_heartbeat(tmp_path: Path) -> None:
    """Pruned as silent while its machine slept, or deleted by hand: without its row
    the daemon looks stopped to `health`, the API and the dashboard."""
    config = tmp_path / "agentcron.yaml"
    config.write_text(GOOD)
    daemon = Daemon(
        # written whole before each look: no wait for the file to stand still
        DaemonOptions(config_path=config, home=tmp_path / "home", tune_gc=False, config_settle=0)
    )

    async def scenario() -> None:
        await daemon.start()
        try:
            store = daemon.store
            assert store is not None
            daemon.restart_needed = ["api"]
            with store._tx() as db:  # type: ignore[attr-defined]
                db.execute("DELETE FROM nodes")
            await daemon._beat()
            (node,) = store.nodes()
            assert node.node_id == daemon.node_id and node.stopped_at is None
            assert node.config_note is not None and "`api:`" in node.config_note
        finally:
            await daemon.close()

    asyncio.run(scenario())


@pytest.mark.slow
def test_a_rejected_config_is_told_and_so_is_its_end(tmp_path: Path) -> None:
    from e2e_webhook import WebhookReceiver

    with WebhookReceiver() as hook:
        config = tmp_path / "agentcron.yaml"
        head = f'notify: ["{hook.url}"]\n'
        config.write_text(head + GOOD)

        def told() -> list[str]:
            return said(hook, "config")

        async def body(daemon: Daemon) -> None:
            config.write_text(head + BROKEN_YAML)
            await until(lambda: len(told()) == 1, timeout=30)
            config.write_text(head + NEW)
            await until(lambda: len(told()) == 2, timeout=30)
            config.write_text(head + GOOD)  # another valid change: nothing to end
            await until(lambda: daemon.config is not None and "a" in daemon.config.tasks, 30)

        run_reloading(config, body)
        bodies = told()
    assert len(bodies) == 2, bodies
    assert bodies[0].startswith("✖ The new") and "is invalid" in bodies[0]
    assert bodies[1].startswith(f"✔ {config} is valid again and applied"), bodies[1]


def test_a_file_being_written_is_read_once_it_stands_still(tmp_path: Path) -> None:
    """An editor that writes in place (truncate, then write) was read half-written
    (outside-in probe): the tasks of the part not yet written were removed, their
    waiting retries cancelled and their incidents closed without a word, then added
    back. A changed file is now read once it has not changed for config_settle."""
    import time

    config = tmp_path / "agentcron.yaml"
    config.write_text(GOOD + NEW.removeprefix("tasks:\n"))
    settle = 0.3
    daemon = Daemon(
        DaemonOptions(
            config_path=config, home=tmp_path / "home", tune_gc=False, config_settle=settle
        )
    )

    async def scenario() -> None:
        await daemon.start()
        try:
            store = daemon.store
            assert store is not None
            assert sorted(t.name for t in store.list_tasks()) == ["a", "b"]
            config.write_text(GOOD)  # the first half of an in-place write
            assert daemon.reload_if_changed() is False  # not read while it may change
            assert sorted(t.name for t in store.list_tasks()) == ["a", "b"]
            config.write_text(GOOD + NEW.removeprefix("tasks:\n") + "# edited\n")
            time.sleep(settle * 2)  # ... and then it stood still
            assert daemon.reload_if_changed() is True  # read whole: the same tasks
            assert sorted(t.name for t in store.list_tasks()) == ["a", "b"]
            config.write_text(GOOD)  # a real removal of b, done and left
            assert daemon.reload_if_changed() is False
            time.sleep(settle * 2)
            assert daemon.reload_if_changed() is True
            assert [t.name for t in store.list_tasks()] == ["a"]
        finally:
            await daemon.close()

    asyncio.run(scenario())


def test_a_missing_config_that_becomes_a_directory_or_a_fifo_is_said_each_time(
    tmp_path: Path,
) -> None:
    """Outside-in probe: with the file deleted, a directory and then a FIFO put in its
    place were never looked at (all read as "nothing to read"), and `health` went on
    saying "file not found"."""
    import os

    config = tmp_path / "agentcron.yaml"
    config.write_text(GOOD)
    daemon = Daemon(
        DaemonOptions(config_path=config, home=tmp_path / "home", tune_gc=False, config_settle=0)
    )

    async def scenario() -> None:
        await daemon.start()
        try:
            config.unlink()
            daemon.reload_if_changed()
            assert "not found" in (daemon.rejected_config or "")
            # not "run `agentcron init`": the daemon would apply the example in place of
            # the owner's tasks (probe)
            assert "put it back" in (daemon.rejected_config or "")
            assert "agentcron init" not in (daemon.rejected_config or "")
            config.mkdir()
            daemon.reload_if_changed()
            assert "directory" in (daemon.rejected_config or ""), daemon.rejected_config
            config.rmdir()
            os.mkfifo(config)
            daemon.reload_if_changed()
            assert "FIFO" in (daemon.rejected_config or ""), daemon.rejected_config
            config.unlink()
            config.write_text(GOOD)
            daemon.reload_if_changed()
            assert daemon.rejected_config is None
        finally:
            await daemon.close()

    asyncio.run(scenario())


def _on_a_started_daemon(config: Path, home: Path, check: Callable[[Daemon], None]) -> None:
    """``check`` a daemon started on ``config`` (its parts wired, its loop not running:
    each look is the test's own call), then close it."""
    daemon = Daemon(DaemonOptions(config_path=config, home=home, tune_gc=False, config_settle=0))

    async def scenario() -> None:
        await daemon.start()
        try:
            assert daemon.service is not None and daemon.store is not None
            check(daemon)
        finally:
            await daemon.close()

    asyncio.run(scenario())


def _told(daemon: Daemon) -> list[str]:
    """The messages waiting in the outbox."""
    assert daemon.store is not None
    return [m.message.body for m in daemon.store.due(daemon.clock.now(), 10)]


def test_a_channel_replaced_in_the_config_gets_what_the_old_one_could_not_send(
    tmp_path: Path,
) -> None:
    """Probe: the owner replaced a failing channel; `health` said for good that the
    removed one fails, and the messages it held never reached the new one."""
    from agentcron.model import Message
    from agentcron.notify.channels import channel_key

    old, new = "json://127.0.0.1:9/old", "json://127.0.0.1:9/new"
    config = tmp_path / "agentcron.yaml"
    config.write_text(f"notify: ['{old}']\n" + GOOD)

    def check(daemon: Daemon) -> None:
        assert daemon.service is not None and daemon.store is not None
        said = Message("t", "✖ a failed", "a", "opened", "failure", "failure")
        daemon.store.enqueue(channel_key(old), old, said, daemon.clock.now())
        assert [h["channel"] for h in daemon.service.channel_health()] == [channel_key(old)]
        config.write_text(f"notify: ['{new}']\n" + GOOD)
        assert daemon.reload_if_changed() is True
        health = daemon.service.channel_health()
        assert [(h["channel"], h["pending"]) for h in health] == [(channel_key(new), 1)]
        (item,) = daemon.store.due(daemon.clock.now(), 10)
        assert (item.channel_url, item.message.body) == (new, "✖ a failed")

    _on_a_started_daemon(config, tmp_path / "home", check)


def test_a_file_task_named_as_a_task_added_elsewhere_is_refused_not_taken_over(
    tmp_path: Path,
) -> None:
    """Probe: a file task named as an agent's task took it over without a word (its
    pause kept, the agent then refused as "defined in the config file", and the task
    removed for good once the lines left the file). The file is refused and said."""
    from agentcron.config.errors import ConfigError
    from agentcron.model import TaskSource

    config = tmp_path / "agentcron.yaml"
    notify = "notify: ['json://127.0.0.1:9/x']\n"
    config.write_text(notify + GOOD)
    home = tmp_path / "home"

    def check(daemon: Daemon) -> None:
        assert daemon.service is not None and daemon.store is not None
        daemon.service.add_task("b", {"every": "1h", "command": ["echo", "mine"]})
        config.write_text(notify + GOOD + NEW.removeprefix("tasks:\n"))
        assert daemon.reload_if_changed() is False
        assert daemon.rejected_config is not None
        assert "a task named 'b' was added with `agentcron add`" in daemon.rejected_config
        rec = daemon.store.get_task("b")
        assert rec is not None and rec.source is TaskSource.API
        told = _told(daemon)
        assert any("tasks.b" in body and "take it over" in body for body in told), told

    _on_a_started_daemon(config, home, check)
    # and a daemon does not start on such a file
    with pytest.raises(ConfigError, match="would take it over"):
        _on_a_started_daemon(config, home, lambda daemon: None)


def test_a_changed_env_file_is_applied_and_a_broken_one_is_told(tmp_path: Path) -> None:
    """Probe: the daemon kept the env_file's old values until a restart, and said
    nothing when an edit left a variable the tasks use unset, while `validate`, `list`
    and `doctor` already called the config invalid (and the next start would refuse)."""
    from agentcron.config import _env

    env = tmp_path / "vars.env"
    env.write_text("GREETING=hello\n")
    config = tmp_path / "agentcron.yaml"
    config.write_text(
        "env_file: vars.env\nnotify: ['json://127.0.0.1:9/x']\n"
        "tasks:\n  a:\n    every: 1h\n    command: [echo, 'alpha ${GREETING}']\n"
    )

    def check(daemon: Daemon) -> None:
        assert daemon.reload_if_changed() is False  # nothing changed yet
        env.write_text("GREETING=bye\n")
        daemon.reload_if_changed()
        assert _env.env_file_values()["GREETING"] == "bye"
        assert daemon.rejected_config is None
        env.write_text("OTHER=1\n")
        assert daemon.reload_if_changed() is False
        assert daemon.rejected_config is not None and "GREETING" in daemon.rejected_config
        told = _told(daemon)
        assert any("GREETING" in body for body in told), told

    try:
        _on_a_started_daemon(config, tmp_path / "home", check)
    finally:
        _env.use_env_file_values({})  # the process's env_file values: not for later tests


def test_a_reload_that_changes_only_settings_says_which(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A reload of only ``max_concurrency`` was logged "0 added, 0 changed, 0 removed",
    as if nothing had happened (outside-in probe)."""
    import logging

    config = tmp_path / "agentcron.yaml"
    tasks = "tasks:\n  a:\n    every: 1h\n    command: [echo, a]\n"
    config.write_text("max_concurrency: 4\nnotify: []\n" + tasks)
    caplog.set_level(logging.INFO, logger="agentcron.daemon")

    async def body(daemon: Daemon) -> None:
        config.write_text("max_concurrency: 8\nnotify: ['json://127.0.0.1:9/x']\n" + tasks)
        await until(lambda: daemon.config is not None and daemon.config.max_concurrency == 8)
        assert daemon.engine is not None and daemon.engine.settings.max_concurrency == 8

    run_reloading(config, body)
    assert (
        "config reloaded: 0 tasks added, 0 changed, 0 removed; max_concurrency 4 → 8, "
        "notify changed"
    ) in caplog.text, caplog.text
    assert "127.0.0.1:9" not in caplog.text.split("config reloaded")[-1].splitlines()[0]


def _diverging_daemon(tmp_path: Path, settle: float) -> tuple[Daemon, Path, str]:
    config = tmp_path / "agentcron.yaml"
    head = "notify: ['json://127.0.0.1:9/x']\n"
    config.write_text(head + GOOD)
    daemon = Daemon(
        DaemonOptions(
            config_path=config,
            home=tmp_path / "home",
            tune_gc=False,
            config_settle=0,
            divergence_settle=settle,
        )
    )
    return daemon, config, head


def _other_node_applied(store: Any, digest: str) -> None:
    from datetime import UTC, datetime

    from agentcron.config.nodes import META_KEY, Applied
    from agentcron.model import NodeInfo

    now = datetime.now(UTC)
    store.register_node(NodeInfo("other", "elsewhere", 7, "/other", now, now))
    store.set_meta(META_KEY, Applied("other", "elsewhere", "/o/agentcron.yaml", digest).dumps())


def _apply_a_diverging_change(daemon: Daemon, config: Path, head: str) -> tuple[Any, Queued]:
    """Another live node applied other tasks; this node's file gains task b, applied."""
    store = daemon.store
    assert store is not None
    _other_node_applied(store, "the old tasks")
    config.write_text(head + GOOD + NEW.removeprefix("tasks:\n"))
    queued = Queued(store)
    daemon.reload_if_changed()
    return store, queued


def test_a_change_the_other_node_applies_too_is_not_told(tmp_path: Path) -> None:
    """Chaos soak: every edit of the one config file of a three-node deployment was told
    to the owner as "nodes run different config files" by the first node to apply it,
    though the others applied the same tasks seconds later. A difference the other
    node resolves within the settle is not told."""
    from agentcron.config.nodes import META_KEY, loads

    daemon, config, head = _diverging_daemon(tmp_path, settle=60.0)

    async def scenario() -> None:
        await daemon.start()
        try:
            store, queued = _apply_a_diverging_change(daemon, config, head)
            mine = loads(store.get_meta(META_KEY))
            assert mine is not None and mine.node_id == daemon.node_id
            assert daemon._found_divergence is not None and queued == []  # waiting
            _other_node_applied(store, mine.digest)  # the change reached the other node
            daemon._settle_divergence()
            assert daemon._found_divergence is None and queued == []
        finally:
            await daemon.close()

    asyncio.run(scenario())


def test_a_difference_that_lasts_is_told_once_the_settle_is_over(tmp_path: Path) -> None:
    daemon, config, head = _diverging_daemon(tmp_path, settle=0.3)

    async def scenario() -> None:
        await daemon.start()
        try:
            _, queued = _apply_a_diverging_change(daemon, config, head)
            daemon._settle_divergence()
            assert queued == []  # the other node has 0.3 s to apply the same tasks
            await asyncio.sleep(0.4)
            daemon._settle_divergence()
            (told,) = [m.body for m in queued]
            assert "/o/agentcron.yaml" in told and "added b" in told, told
            assert "elsewhere has not applied the same tasks since" in told
            daemon._settle_divergence()  # told once
            assert len(queued) == 1
        finally:
            await daemon.close()

    asyncio.run(scenario())


def test_a_difference_found_before_a_restart_is_still_told(tmp_path: Path) -> None:
    """Review: the difference waited in memory only. A node restarted inside the settle
    (a service restarted twice by config management) found nothing to change at its
    start, the other node never applied again, and nobody was told."""
    daemon, config, head = _diverging_daemon(tmp_path, settle=0.5)

    async def first() -> None:
        await daemon.start()
        try:
            _apply_a_diverging_change(daemon, config, head)
            assert daemon._found_divergence is not None
        finally:
            await daemon.close()

    asyncio.run(first())
    again, _, _ = _diverging_daemon(tmp_path, settle=0.5)
    config.write_text(head + GOOD + NEW.removeprefix("tasks:\n"))  # the same file

    async def second() -> None:
        await again.start()
        try:
            store = again.store
            assert store is not None
            _other_node_applied_alive(store)
            queued = Queued(store)
            await asyncio.sleep(0.6)
            again._settle_divergence()
            (told,) = [m.body for m in queued]
            assert "added b" in told and "/o/agentcron.yaml" in told, told
        finally:
            await again.close()

    asyncio.run(second())


def _other_node_applied_alive(store: Any) -> None:
    """The other node still runs (its heartbeat fresh); the record is left as it is."""
    from datetime import UTC, datetime

    from agentcron.model import NodeInfo

    now = datetime.now(UTC)
    store.register_node(NodeInfo("other", "elsewhere", 7, "/other", now, now))
