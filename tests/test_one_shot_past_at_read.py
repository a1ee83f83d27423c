"""A one-shot whose time had passed when agentcron first read it from the file (written
while no daemon ran, or with a date already gone) never runs: it is recorded
``expired``, and someone hears of it. Before, the slot was recorded and nothing was
said: the daemon's report of runs that did not happen never saw it (outside-in probe:
an ``at`` task written before its time, read by a daemon started after it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcron.daemon import Daemon
from agentcron.interfaces.cli import app
from agentcron.service import PAST_AT_READ
from e2e_webhook import WebhookReceiver
from harness import until
from test_reload import run_reloading, said

PAST = '  once:\n    at: "2026-01-02T09:00"\n    expires: 2s\n    command: [echo, once]\n'
EVERY = "tasks:\n  a:\n    every: 1h\n    command: [echo, a]\n"


def _runs(home: Path, task: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(app, ["--home", str(home), "runs", task, "--json"])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


@pytest.mark.slow
def test_a_daemon_tells_a_one_shot_expired_at_its_first_read_and_at_a_reload(
    tmp_path: Path,
) -> None:
    with WebhookReceiver() as hook:
        config = tmp_path / "agentcron.yaml"
        head = f'timezone: UTC\nnotify: ["{hook.url}"]\n'
        config.write_text(head + EVERY + PAST)

        async def body(daemon: Daemon) -> None:
            # read at start, before the notifier exists: told once it does
            await until(lambda: len(said(hook, "once")) == 1, timeout=30)
            # a second one-shot added by an edit while the daemon runs
            config.write_text(head + EVERY + PAST + PAST.replace("once", "twice"))
            await until(lambda: len(said(hook, "twice")) == 1, timeout=30)

        run_reloading(config, body)
        first, second = said(hook, "once")[0], said(hook, "twice")[0]
    assert "did not run" in first and "once: 1 expired" in first, first
    assert PAST_AT_READ in first, first
    assert "twice: 1 expired" in second and PAST_AT_READ in second, second
    [run] = _runs(tmp_path / "home", "once")
    assert run["status"] == "expired" and run["reason"] == PAST_AT_READ, run


def test_the_cli_that_records_it_says_so_once(tmp_path: Path) -> None:
    """With no daemon, the first command that reads the file records the slot: that
    command's user is the one who can hear of it, on stderr; the next says nothing."""
    config = tmp_path / "agentcron.yaml"
    config.write_text("timezone: UTC\n" + EVERY + PAST)
    home = tmp_path / "home"
    argv = ["--home", str(home), "--config", str(config), "list", "--json"]
    first = CliRunner().invoke(app, argv)
    assert first.exit_code == 0, first.output
    assert (
        "task once, due 2026-01-02 09:00 UTC: " + PAST_AT_READ + "; recorded expired, it will "
        "not run (`agentcron trigger once` runs it now)"
    ) in " ".join(first.stderr.split()), first.stderr
    again = CliRunner().invoke(app, argv)
    assert again.exit_code == 0 and "once" not in again.stderr, again.stderr
    [run] = _runs(home, "once")
    assert run["status"] == "expired", run


@pytest.mark.slow
def test_what_a_command_recorded_reaches_the_channels_when_a_daemon_runs(tmp_path: Path) -> None:
    """Said only on the command's stderr, a script's `list --json` run before the daemon
    was the only one to hear of it (outside-in probe): the report is queued in the
    outbox too, and the daemon sends it, once."""
    with WebhookReceiver() as hook:
        config = tmp_path / "agentcron.yaml"
        config.write_text(f'timezone: UTC\nnotify: ["{hook.url}"]\n' + EVERY + PAST)
        argv = ["--home", str(tmp_path / "home"), "--config", str(config), "list", "--json"]
        first = CliRunner().invoke(app, argv)
        assert first.exit_code == 0, first.output
        assert "queued for the notify channels" in first.stderr, first.stderr
        again = CliRunner().invoke(app, argv)
        assert "queued" not in again.stderr, again.stderr

        async def body(daemon: Daemon) -> None:
            await until(lambda: len(said(hook, "once")) >= 1, timeout=30)

        run_reloading(config, body)
        told = said(hook, "once")
    assert len(told) == 1, told
    assert "once: 1 expired" in told[0] and PAST_AT_READ in told[0], told


def test_a_dry_run_of_prune_records_nothing(tmp_path: Path) -> None:
    """`prune --dry-run` ("change nothing") brought the file's tasks into the database
    and recorded a past one-shot expired (outside-in probe)."""
    from agentcron.store.sqlite import SQLiteStore

    config = tmp_path / "agentcron.yaml"
    config.write_text("timezone: UTC\n" + EVERY + PAST)
    home = tmp_path / "home"
    argv = ["--home", str(home), "--config", str(config), "prune", "--dry-run"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert "once" not in result.stderr, result.stderr
    store = SQLiteStore(home / "agentcron.db")
    try:
        assert store.get_task("once") is None and store.last_slots("once", 5) == []
    finally:
        store.close()


def test_a_one_shot_moved_to_a_time_already_gone_is_said_too(tmp_path: Path) -> None:
    """Changing an existing one-shot's ``at`` to a past time was applied without a word:
    `list` said ok, and nothing ever ran (outside-in probe)."""
    from agentcron.service import PAST_AT_CHANGED

    config = tmp_path / "agentcron.yaml"
    future = '  once:\n    at: "2099-01-02T09:00"\n    command: [echo, once]\n'
    config.write_text("timezone: UTC\n" + EVERY + future)
    home = tmp_path / "home"
    argv = ["--home", str(home), "--config", str(config), "list", "--json"]
    first = CliRunner().invoke(app, argv)
    assert first.exit_code == 0 and "once" not in first.stderr, first.stderr
    config.write_text("timezone: UTC\n" + EVERY + PAST)  # moved to 2026-01-02 09:00
    moved = CliRunner().invoke(app, argv)
    assert "task once, due 2026-01-02 09:00 UTC: " + PAST_AT_CHANGED in " ".join(
        moved.stderr.split()
    ), moved.stderr
    # another edit of it (its command): that time has its slot already, nothing new
    config.write_text("timezone: UTC\n" + EVERY + PAST.replace("echo, once", "echo, again"))
    again = CliRunner().invoke(app, argv)
    assert "once" not in again.stderr, again.stderr
    [run] = _runs(home, "once")
    assert (run["status"], run["reason"]) == ("expired", PAST_AT_CHANGED), run


def test_a_time_far_from_now_is_said_with_its_year() -> None:
    """A one-shot of 2020 was reported "due at Wed 1 Jan 10:00 UTC", which reads as the
    coming 1 January (outside-in probe)."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from agentcron.notify.messages import _clock

    now = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
    utc = ZoneInfo("UTC")
    assert _clock(datetime(2020, 1, 1, 10, 0, tzinfo=UTC), now, utc) == "Wed 1 Jan 2020 10:00"
    assert _clock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC), now, utc) == "Tue 1 Dec 10:00"
