"""A home's database truncated to zero bytes is refused, not made anew.

Outside-in probe: with `agentcron.db` emptied (a restore or a copy gone wrong) in a
home whose `outputs/` held the files of its runs, `agentcron list` made a new schema in
the file and said "no tasks yet", and a daemon began a new history in its place: the
old one was lost without a word. SQLite takes an empty file for a new database."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcron.interfaces.cli import app
from agentcron.store import StoreError, check_database, open_store


def _home_with_runs(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / "outputs" / "story").mkdir(parents=True)
    (home / "outputs" / "story" / "20261201T020000Z-s1-a1.log").write_text("once upon\n")
    (home / "agentcron.db").write_bytes(b"")
    return home


def _outputs_unreadable(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """``home/outputs`` cannot be listed (a permission), as the store sees it."""
    import agentcron.store as store_module

    real = store_module.os.scandir

    def refused(path: object) -> object:
        if str(path) == str(home / "outputs"):
            raise PermissionError(13, "Permission denied")
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(store_module.os, "scandir", refused)


@pytest.mark.parametrize("command", [["list"], ["health"], ["doctor"]])
def test_commands_refuse_an_emptied_database_and_leave_it_as_it_is(
    tmp_path: Path, command: list[str]
) -> None:
    home = _home_with_runs(tmp_path)
    result = CliRunner().invoke(app, ["--home", str(home), *command])
    assert result.exit_code != 0, result.output
    said = " ".join(result.output.split())
    assert "is empty (0 bytes)" in said and "holds files of runs it recorded" in said, said
    assert "Restore it from a backup" in said and ".empty" in said
    assert (home / "agentcron.db").stat().st_size == 0  # nothing written


def test_a_daemon_refuses_it_before_its_first_write(tmp_path: Path) -> None:
    home = _home_with_runs(tmp_path)
    with pytest.raises(StoreError, match="is empty"):
        check_database(None, home)  # what `agentcron run` does before it starts
    with pytest.raises(StoreError, match="is empty"):
        open_store(None, home, daemon=True)
    assert (home / "agentcron.db").stat().st_size == 0
    config = tmp_path / "agentcron.yaml"
    config.write_text("tasks:\n  story:\n    every: 1h\n    command: [echo, a]\n")
    result = CliRunner().invoke(app, ["--home", str(home), "run", "--config", str(config)])
    assert result.exit_code != 0 and "cannot start" in result.output, result.output
    assert (home / "agentcron.db").stat().st_size == 0


def test_an_empty_file_in_a_home_without_runs_is_a_new_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "outputs" / "story").mkdir(parents=True)  # a task folder, no run's file yet
    (home / "agentcron.db").write_bytes(b"")
    result = CliRunner().invoke(app, ["--home", str(home), "list"])
    assert result.exit_code == 0, result.output
    assert (home / "agentcron.db").stat().st_size > 0


def test_a_database_named_by_path_is_left_to_its_owner(tmp_path: Path) -> None:
    """Only the home's own file is judged by the home's runs: a `--db` path may be a new
    database for a home that ran with another."""
    home = _home_with_runs(tmp_path)
    other = tmp_path / "other.db"
    other.write_bytes(b"")
    result = CliRunner().invoke(app, ["--home", str(home), "--db", str(other), "list"])
    assert result.exit_code == 0, result.output


def test_a_database_file_that_cannot_be_looked_at_is_not_opened_blind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agentcron.store as store_module
    from harness import stat_failing

    home = _home_with_runs(tmp_path)
    db = home / "agentcron.db"
    stat_failing(monkeypatch, store_module, db, PermissionError(13, "Permission denied"))
    with pytest.raises(StoreError, match=r"cannot look at the database .*Permission denied"):
        open_store(None, home)
    monkeypatch.undo()
    assert db.stat().st_size == 0  # nothing written


def test_an_empty_database_beside_outputs_that_cannot_be_read_is_not_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home_with_runs(tmp_path)
    _outputs_unreadable(monkeypatch, home)
    with pytest.raises(StoreError, match=r"cannot be read \(Permission denied\)"):
        open_store(None, home)
    monkeypatch.undo()
    assert (home / "agentcron.db").stat().st_size == 0


def test_a_deleted_database_beside_runs_is_made_anew_but_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Deleted, with the files of its runs left in outputs/: a reset on purpose as often
    as a mistake, so a new database is made, but the log says what was lost. A first
    start (no runs kept) says nothing."""
    import logging

    caplog.set_level(logging.WARNING, logger="agentcron.store")
    home = _home_with_runs(tmp_path)
    (home / "agentcron.db").unlink()
    open_store(None, home).close()
    (said,) = [r.getMessage() for r in caplog.records if r.name == "agentcron.store"]
    assert "does not exist" in said and "holds files of runs" in said, said
    assert (home / "agentcron.db").stat().st_size > 0
    caplog.clear()
    fresh = tmp_path / "fresh"
    open_store(None, fresh).close()
    assert [r for r in caplog.records if r.name == "agentcron.store"] == []


def test_a_missing_database_beside_unreadable_outputs_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home_with_runs(tmp_path)
    (home / "agentcron.db").unlink()
    _outputs_unreadable(monkeypatch, home)
    with pytest.raises(StoreError, match=r"does not exist, and .* cannot be read"):
        open_store(None, home)
    assert not (home / "agentcron.db").exists()  # nothing made
