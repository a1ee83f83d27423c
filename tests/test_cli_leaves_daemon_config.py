"""A CLI command run from another folder must not change a running daemon's tasks.

`agentcron list --home H` run where another ``agentcron.yaml`` lies (the default
``--config``) brought that file's tasks into the database: the daemon's own tasks were
removed, none of their fires was recorded, nothing was told, and `health` said all was
well (outside-in probe). While a daemon runs, it alone applies its config file; on
PostgreSQL, whose daemons may run on other machines, no command does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from daemon_proc import DaemonProc, wait_for

OWN = """
tasks:
  tick:
    every: 1h
    command: ["true"]
  slow:
    every: 1h
    command: ["true"]
"""
OTHER = """
tasks:
  other:
    every: 1h
    command: ["true"]
"""


def _list_from(folder: Path, home: Path, *extra: str) -> list[str]:
    res = subprocess.run(
        [sys.executable, "-m", "agentcron", "list", "--json", "--home", str(home), *extra],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return sorted(t["name"] for t in json.loads(res.stdout))


@pytest.mark.slow
def test_a_command_from_another_folder_leaves_a_running_daemons_tasks(tmp_path: Path) -> None:
    folder = tmp_path / "daemon"
    folder.mkdir()
    daemon = DaemonProc(folder, OWN)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "agentcron.yaml").write_text(OTHER)
    try:
        daemon.start()
        wait_for(lambda: "agentcron running" in daemon.daemon_log(), what="daemon up")
        assert _list_from(elsewhere, daemon.home) == ["slow", "tick"]
        assert _list_from(elsewhere, daemon.home) == ["slow", "tick"]  # nothing changed
    finally:
        daemon.stop()
    # With no daemon running, the other folder's file is not brought in either: the
    # daemon's tasks came from its own file (their retries would have been cancelled
    # until it started again). The command says why.
    res = subprocess.run(
        [sys.executable, "-m", "agentcron", "list", "--json", "--home", str(daemon.home)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sorted(t["name"] for t in json.loads(res.stdout)) == ["slow", "tick"]
    assert f"tasks come from {daemon.config.resolve()}" in " ".join(res.stderr.split())
    # The daemon's own file, edited while it is stopped, is brought in, as before.
    daemon.config.write_text(OWN + OTHER.removeprefix("\ntasks:\n"))
    assert _list_from(folder, daemon.home) == ["other", "slow", "tick"]


def test_no_command_brings_a_config_into_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentcron.interfaces import cli
    from agentcron.interfaces.cli import _no_daemon_applies_a_config

    # The helper falls back on the root options of the last command the process ran;
    # another test's `--db postgresql://…` in the same worker made SQLite look like it.
    monkeypatch.setattr(cli, "_globals", cli.Globals())
    home = tmp_path / "home"
    assert not _no_daemon_applies_a_config(home, "postgresql://u@h/db")
    assert _no_daemon_applies_a_config(home, None)  # SQLite, no daemon


def test_a_postgresql_error_in_a_command_is_said_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`health` while a table is held locked: its statement was cancelled by the
    timeout, and the monitoring command printed a traceback (outside-in probe)."""
    error = _behind_a_lock(tmp_path, monkeypatch, "list")["error"]
    assert f"QueryCanceled: {CANCELLED}" in error


CANCELLED = "canceling statement due to statement timeout"


def _behind_a_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> Any:
    """``command --json`` whose read of the tasks PostgreSQL cancels (a table held
    locked past the statement's timeout): it exits 1 with no traceback; its JSON."""
    psycopg = pytest.importorskip("psycopg")
    from typer.testing import CliRunner

    from agentcron.interfaces.cli import app
    from agentcron.service import Service

    def cancelled(*_a: object, **_k: object) -> object:
        raise psycopg.errors.QueryCanceled(CANCELLED)

    monkeypatch.setattr(Service, "list_tasks", cancelled)
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), command, "--json"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return json.loads(result.stdout)


def test_a_command_without_the_databases_file_shows_times_in_its_timezone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a folder without the daemon's agentcron.yaml (timezone: Europe/Berlin),
    `next` showed a 06:00 Berlin task as 06:00 UTC and `list --json` said Etc/UTC for
    every task, without a word (outside-in probe). The zone the daemon's file gave is
    recorded with its tasks, and used."""
    from datetime import UTC, datetime

    from typer.testing import CliRunner

    from agentcron.config.nodes import META_KEY, Applied
    from agentcron.interfaces.cli import app
    from agentcron.model import TaskSource, TaskSpec
    from agentcron.store import open_store

    home = tmp_path / "home"
    store = open_store(None, home)
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    spec = TaskSpec(name="daily", cron="0 6 * * *", command=["true"])
    store.upsert_task(spec, TaskSource.FILE, now, datetime(2026, 12, 4, 5, 0, tzinfo=UTC))
    applied = Applied("n1", "host", "/srv/agentcron.yaml", "d", "Europe/Berlin")
    store.set_meta(META_KEY, applied.dumps())
    store.close()
    monkeypatch.chdir(tmp_path)  # no agentcron.yaml here
    result = CliRunner().invoke(app, ["--home", str(home), "next", "daily", "--count", "1"])
    assert result.exit_code == 0, result.output
    assert "06:00 CET" in result.output, result.output
    listed = CliRunner().invoke(app, ["--home", str(home), "list", "--json"])
    assert json.loads(listed.stdout)[0]["timezone"] == "Europe/Berlin", listed.stdout


def test_a_postgresql_error_in_doctor_is_a_fail_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`doctor` while a table is held locked: its statement was cancelled by the
    timeout, and it printed a traceback and no report at all (outside-in probe, three
    nodes on PostgreSQL). It says the database check failed, in words, and exits 1."""
    report = _behind_a_lock(tmp_path, monkeypatch, "doctor")
    [database] = [c for c in report["checks"] if c["name"] == "database"]
    assert database["status"] == "fail", report
    assert f"QueryCanceled: {CANCELLED}" in database["message"]
