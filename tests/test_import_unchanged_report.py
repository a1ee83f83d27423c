"""A re-import says which tasks it leaves as they are, into the config file and into the
database, on a dry run and with ``--apply`` (the report said "updates task X" for a
task it did not touch, and an unchanged file was rewritten, its mtime moved, so a
running daemon read it again for nothing)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cli_rig import Invoke, cli_in

LINES = ("0 1 * * * /usr/local/bin/sync.sh", "0 3 * * 1 /usr/bin/backup --full")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    return cli_in(tmp_path, monkeypatch)


def _tab(tmp_path: Path, *lines: str) -> str:
    (tmp_path / "tab").write_text("".join(line + "\n" for line in lines))
    return "tab"  # the CLI runs in tmp_path, whose name holds the test's (and "unchanged")


@pytest.mark.parametrize("to", ["file", "db"])
def test_an_unchanged_reimport_says_nothing_changes(cli: Invoke, tmp_path: Path, to: str) -> None:
    tab = _tab(tmp_path, *LINES)
    first = cli("import", "crontab", tab, "--to", to, "--apply")
    assert "new task sync" in first and "unchanged" not in first.replace(str(tmp_path), "")
    for apply in ([], ["--apply"]):
        out = cli("import", "crontab", tab, "--to", to, *apply)
        assert "updates task" not in out
        assert "task sync, unchanged" in out and "task backup, unchanged" in out
        done = "was" if apply else "would be"
        assert f"2 task(s) from {tab}, already in " in out
        assert f"as they would be written: nothing {done} changed" in out
        data = json.loads(cli("import", "crontab", tab, "--to", to, "--json", *apply))
        assert [t["unchanged"] for t in data["tasks"]] == [True, True]


@pytest.mark.parametrize("to", ["file", "db"])
def test_a_changed_line_is_an_update_and_the_rest_are_said_unchanged(
    cli: Invoke, tmp_path: Path, to: str
) -> None:
    cli("import", "crontab", _tab(tmp_path, *LINES), "--to", to, "--apply")
    tab = _tab(tmp_path, LINES[0], "FOO=bar", LINES[1])  # backup's env changes
    out = cli("import", "crontab", tab, "--to", to)
    assert "updates task backup" in out and "task sync, unchanged" in out
    assert "(1 of them already there as written, left unchanged)" in out
    data = json.loads(cli("import", "crontab", tab, "--to", to, "--json"))
    assert {t["name"]: t["unchanged"] for t in data["tasks"]} == {"backup": False, "sync": True}


def test_an_unchanged_reimport_leaves_the_config_file_untouched(
    cli: Invoke, tmp_path: Path
) -> None:
    tab = _tab(tmp_path, *LINES)
    cli("import", "crontab", tab, "--apply")
    config = tmp_path / "agentcron.yaml"
    os.utime(config, ns=(1_000_000_000, 1_000_000_000))
    before = config.stat()
    cli("import", "crontab", tab, "--apply")
    after = config.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
