"""The CLI as a user in a fresh folder runs it: its home under the test's folder, in
process (Typer's runner), each call checked for its exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcron.interfaces.cli import app

Invoke = Callable[..., str]


def cli_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, joined: bool = False) -> Invoke:
    """``invoke(*args, code=0, input=None)``: the output of ``agentcron ARGS`` run in
    ``tmp_path`` (``input`` on its standard input), asserting its exit code; with
    ``joined``, its words joined by single spaces (as read, whatever the wrapping)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "home"))
    runner = CliRunner()

    def invoke(*args: str, code: int = 0, input: str | None = None) -> str:
        result = runner.invoke(app, list(args), input=input)
        assert result.exit_code == code, (result.output, result.exception)
        return " ".join(result.output.split()) if joined else result.output

    return invoke
