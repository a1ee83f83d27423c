"""A home made by the first CLI command is private (0700) from the start, as the
daemon makes it (outside-in probe: `agentcron list` or `agentcron mcp` on a fresh
home made it 0755, open to other users until a daemon started)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cli_rig import cli_in


def test_the_first_cli_command_makes_a_private_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = cli_in(tmp_path, monkeypatch)
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "deep" / "home"))
    old = os.umask(0o022)
    try:
        cli("add", "beat", "--every", "1h", "--", "true")
    finally:
        os.umask(old)
    for folder in (tmp_path / "deep", tmp_path / "deep" / "home"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
