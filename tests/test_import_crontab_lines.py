"""Re-importing a crontab whose lines share a command: each task keeps its own line.

A line is found again by its command and schedule before its command alone, across
all the lines of the file, so a task whose line is still in the file keeps it however
the lines moved; identical lines keep their tasks in the order they stand
(outside-in probe: the first line ever imported kept the bare command key, and
whichever line came first later took that task: the live 01:00 job became 13:00).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agentcron.config import load_config
from cli_rig import Invoke, cli_in

SYNC = "/usr/local/bin/sync.sh"
GONE = "Imported from a crontab before, and not in this file"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    return cli_in(tmp_path, monkeypatch)


def _tab(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "tab"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def _file_tasks(tmp_path: Path) -> dict[str, tuple[str | None, bool]]:
    loaded = load_config(tmp_path / "agentcron.yaml").tasks
    return {name: (task.cron, task.paused) for name, task in loaded.items()}


def _db_tasks(cli: Invoke) -> dict[str, tuple[str, bool]]:
    rows = json.loads(cli("list", "--json"))
    out = {}
    for row in rows:
        spec = json.loads(cli("show", row["name"], "--json"))["spec"]
        out[row["name"]] = (spec["cron"], bool(row["paused"]))
    return out


def test_a_line_added_above_leaves_the_running_task_on_its_schedule(
    cli: Invoke, tmp_path: Path
) -> None:
    cli("import", "crontab", _tab(tmp_path, f"0 1 * * * {SYNC}"), "--apply", "--enable")
    assert _file_tasks(tmp_path) == {"sync": ("0 1 * * *", False)}
    out = cli(
        "import", "crontab", _tab(tmp_path, f"0 13 * * * {SYNC}", f"0 1 * * * {SYNC}"), "--apply"
    )
    assert _file_tasks(tmp_path) == {"sync": ("0 1 * * *", False), "sync-2": ("0 13 * * *", True)}
    assert "): new task sync-2" in out and "): task sync, unchanged" in out
    assert GONE not in out
    # and again, unchanged: nothing moves, nothing is said gone
    before = (tmp_path / "agentcron.yaml").read_bytes()
    out = cli(
        "import", "crontab", _tab(tmp_path, f"0 13 * * * {SYNC}", f"0 1 * * * {SYNC}"), "--apply"
    )
    assert GONE not in out
    assert (tmp_path / "agentcron.yaml").read_bytes() == before


def test_a_task_imported_with_the_bare_command_key_is_found_by_its_schedule(
    cli: Invoke, tmp_path: Path
) -> None:
    """Tasks written by an earlier importer carry the bare command key whatever their
    schedule: they are matched by the schedule they have before by command alone."""
    (tmp_path / "agentcron.yaml").write_text(
        "tasks:\n  sync:\n    cron: '0 1 * * *'\n    timezone: UTC\n"
        f"    command: {SYNC}\n    shell: true\n    paused: false\n"
        "    imported_from: crontab:4dd734148842\n"
    )
    tab = _tab(tmp_path, "CRON_TZ=UTC", f"0 13 * * * {SYNC}", f"0 1 * * * {SYNC}")
    out = cli("import", "crontab", tab, "--apply")
    assert _file_tasks(tmp_path) == {"sync": ("0 1 * * *", False), "sync-2": ("0 13 * * *", True)}
    assert GONE not in out


def test_lines_swapped_in_the_database_update_their_own_tasks(cli: Invoke, tmp_path: Path) -> None:
    tab = _tab(tmp_path, f"0 1 * * * {SYNC}", f"0 13 * * * {SYNC}")
    cli("import", "crontab", tab, "--to", "db", "--apply", "--enable")
    assert _db_tasks(cli) == {"sync": ("0 1 * * *", False), "sync-2": ("0 13 * * *", False)}
    tab = _tab(tmp_path, f"0 13 * * * {SYNC}", f"0 1 * * * {SYNC}")
    out = cli("import", "crontab", tab, "--to", "db", "--apply")
    assert _db_tasks(cli) == {"sync": ("0 1 * * *", False), "sync-2": ("0 13 * * *", False)}
    assert GONE not in out


def test_identical_lines_keep_their_tasks_and_an_unchanged_file_changes_nothing(
    cli: Invoke, tmp_path: Path
) -> None:
    line = "0 2 * * * /usr/bin/backup"
    tab = _tab(tmp_path, line, line)
    cli("import", "crontab", tab, "--apply")
    before = (tmp_path / "agentcron.yaml").read_bytes()
    assert set(_file_tasks(tmp_path)) == {"backup", "backup-2"}
    out = cli("import", "crontab", tab, "--apply")
    assert re.search(r"# crontab line 1 \(crontab:\w+-\w+\): task backup, unchanged\n", out)
    assert re.search(r"# crontab line 2 \(crontab:\w+-\w+-2\): task backup-2, unchanged\n", out)
    assert GONE not in out
    assert (tmp_path / "agentcron.yaml").read_bytes() == before
    # three identical lines, then one removed: one task said gone, the others kept
    cli("import", "crontab", _tab(tmp_path, line, line, line), "--apply")
    assert set(_file_tasks(tmp_path)) == {"backup", "backup-2", "backup-3"}
    data = json.loads(cli("import", "crontab", _tab(tmp_path, line, line), "--json"))
    assert sorted(t["name"] for t in data["tasks"]) == ["backup", "backup-2"]
    assert [t["name"] for t in data["not_in_source"]] == ["backup-3"]
