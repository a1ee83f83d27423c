"""Re-importing an unchanged crontab into the database changes nothing and audits
nothing (outside-in probe: every re-import wrote a ``task.replace`` with no change for
each task, five empty rows in ``agentcron audit`` per run); a changed task is still
replaced and audited with its before and after."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcron.interfaces.cli import app

Invoke = Callable[..., str]
LINES = (
    'MAILTO=""',
    "0 1 * * * /usr/local/bin/sync.sh",
    "*/5 * * * * echo hi >> /tmp/x",
    "FOO=bar",
    "0 3 * * 1 /usr/bin/backup --full",
)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "home"))
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output

    return invoke


def _import(cli: Invoke, tmp_path: Path, *lines: str, enable: bool = False) -> None:
    (tmp_path / "tab").write_text("".join(line + "\n" for line in lines))
    cli("import", "crontab", "tab", "--to", "db", "--apply", *(["--enable"] if enable else []))


def _audit(cli: Invoke) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(cli("audit", "--json"))
    return rows


def _tasks(cli: Invoke) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(cli("list", "--json"))
    return rows


def test_an_unchanged_reimport_writes_no_audit_row_and_changes_nothing(
    cli: Invoke, tmp_path: Path
) -> None:
    _import(cli, tmp_path, *LINES)
    assert [r["action"] for r in _audit(cli)] == ["task.create"] * 3
    tasks = _tasks(cli)
    _import(cli, tmp_path, *LINES)
    _import(cli, tmp_path, *LINES, enable=False)
    assert len(_audit(cli)) == 3
    assert _tasks(cli) == tasks


def test_a_task_resumed_since_is_unchanged_by_a_reimport(cli: Invoke, tmp_path: Path) -> None:
    """Imported paused, then resumed: a re-import keeps it running, and says nothing."""
    _import(cli, tmp_path, *LINES)
    cli("resume", "sync")
    before = len(_audit(cli))
    tasks = _tasks(cli)
    _import(cli, tmp_path, *LINES)
    assert len(_audit(cli)) == before
    assert _tasks(cli) == tasks
    assert {t["name"]: t["paused"] for t in tasks}["sync"] is False


def test_a_changed_task_is_replaced_and_audited_alone(cli: Invoke, tmp_path: Path) -> None:
    _import(cli, tmp_path, *LINES)
    changed = [line.replace("FOO=bar", "FOO=baz") for line in LINES]  # backup's env only
    _import(cli, tmp_path, *changed)
    newest = _audit(cli)[0]
    assert len(_audit(cli)) == 4
    assert (newest["action"], newest["task"]) == ("task.replace", "backup")
    # enabling changes each task's paused state: each is replaced, and says so
    _import(cli, tmp_path, *changed, enable=True)
    replaced = [r for r in _audit(cli) if r["action"] == "task.replace"]
    assert sorted(r["task"] for r in replaced) == ["backup", "backup", "echo", "sync"]
    assert all(not t["paused"] for t in _tasks(cli))
