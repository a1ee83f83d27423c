"""What `agentcron import --apply` says when the config as it would be written is
refused: the task and key, never a line of a text that is not on disk.

Applied into a config that does not exist, the refusal read
`agentcron.yaml:10: tasks.backup.env.API_TOKEN: …`: line 10 of a file that was never
written (outside-in probe).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli_rig import Invoke, cli_in

TAB = "API_TOKEN=abc\n0 3 * * * /usr/local/bin/backup.sh\n"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.delenv("API_TOKEN", raising=False)
    return cli_in(tmp_path, monkeypatch, joined=True)


def test_a_refused_apply_into_a_missing_config_gives_no_line_number(
    cli: Invoke, tmp_path: Path
) -> None:
    (tmp_path / "tab").write_text(TAB)
    out = cli("import", "crontab", "tab", "--apply", code=1)
    assert not (tmp_path / "agentcron.yaml").exists()
    assert "agentcron.yaml was not created:" in out and "was not changed" not in out
    assert "agentcron.yaml (not created): tasks.backup.env.API_TOKEN: variable API_TOKEN" in out
    assert not re.search(r"agentcron\.yaml:\d", out), out


def test_a_refused_apply_into_a_config_gives_no_line_of_the_unwritten_text(
    cli: Invoke, tmp_path: Path
) -> None:
    config = tmp_path / "agentcron.yaml"
    config.write_text("tasks: {}\n")
    (tmp_path / "tab").write_text(TAB)
    out = cli("import", "crontab", "tab", "--apply", code=1)
    assert config.read_text() == "tasks: {}\n"
    assert "agentcron.yaml was not changed:" in out
    assert "agentcron.yaml: tasks.backup.env.API_TOKEN: variable API_TOKEN" in out
    assert not re.search(r"agentcron\.yaml:\d", out), out


def test_a_dry_run_into_a_missing_config_names_no_line_of_it(cli: Invoke, tmp_path: Path) -> None:
    (tmp_path / "tab").write_text(TAB)
    out = cli("import", "crontab", "tab")
    assert "would be written to agentcron.yaml" in out
    assert not re.search(r"agentcron\.yaml:\d", out), out
