"""A FIFO (or socket, or device) where the config file belongs: reading it would block
until someone writes to it. An outside-in probe put one there under a running daemon:
the scheduler loop stopped on the read, and `agentcron health` and `doctor` hung. It is
now refused at once, as a config file that cannot be read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentcron.config import ConfigError
from agentcron.config.loader import load_config
from agentcron.daemon import _stamp


class Blocked(Exception):
    """Not an OSError: the code under test must not take it for a read that failed."""


def _blocked(_signum: int, _frame: object) -> None:
    raise Blocked("blocked reading the FIFO")


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "agentcron.yaml"
    os.mkfifo(path)
    # a test that blocks on the FIFO is stopped here rather than hanging the suite
    old = signal.signal(signal.SIGALRM, _blocked)
    signal.alarm(10)
    try:
        yield path
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_loading_a_fifo_is_a_config_error_at_once(fifo: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(fifo)
    assert "not a regular file" in str(err.value) and str(fifo) in str(err.value)


def test_the_daemons_look_at_a_fifo_does_not_read_it(fifo: Path) -> None:
    stamp = _stamp(fifo)  # returns at once: the alarm would stop a blocked read
    assert stamp is not None and stamp.startswith("unreadable: ")


def test_cli_health_with_a_fifo_config_answers(fifo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = subprocess.run(
        [sys.executable, "-m", "agentcron", "health", "--config", str(fifo), "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "not a regular file" in done.stderr + done.stdout, (done.stdout, done.stderr)


def test_an_env_file_that_is_a_fifo_is_refused_not_read(fifo: Path, tmp_path: Path) -> None:
    """The same for a config's `env_file:` (found by review)."""
    config = tmp_path / "with_env.yaml"
    config.write_text(f"env_file: {fifo}\ntasks: {{}}\n")
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert "not a regular file" in str(err.value)


def test_a_config_file_too_large_to_read_is_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid 150 MB file (comments) held the daemon's loop for two minutes while it
    was parsed, told as a stall with the wrong causes, and `health` as long (outside-in
    probe). A file past the bound is refused as unreadable, its size said, before any
    parsing; the daemon's look at it stamps it so, without reading it whole."""
    from agentcron.config import _env

    monkeypatch.setattr(_env, "MAX_FILE_BYTES", 1000)
    big = tmp_path / "agentcron.yaml"
    big.write_text("tasks: {}\n" + "# padding\n" * 200)
    with pytest.raises(ConfigError) as err:
        load_config(big)
    assert "larger than the 1,000 bytes agentcron reads" in str(err.value), str(err.value)
    assert str(big) in str(err.value)
    stamp = _stamp(big)
    assert stamp is not None and stamp.startswith("unreadable: OSError")
    big.write_text("tasks: {}\n")
    assert load_config(big).tasks == {}


def test_a_file_with_thousands_of_problems_says_the_first_fifty(tmp_path: Path) -> None:
    """One mistake repeated in 100,000 tasks (`command: [true]`, a boolean) made an error
    of 100,000 lines, which a rejected reload sends to the owner's channel whole.
    `agentcron validate` still lists every problem."""
    from typer.testing import CliRunner

    from agentcron.interfaces.cli import app

    config = tmp_path / "agentcron.yaml"
    config.write_text(
        "tasks:\n" + "".join(f"  t{i}:\n    every: 1h\n    command: [true]\n" for i in range(120))
    )
    with pytest.raises(ConfigError) as err:
        load_config(config)
    said = str(err.value).splitlines()
    assert len(said) == 51
    assert said[-1] == "… and 70 more problems (`agentcron validate` lists them all)"
    listed = CliRunner().invoke(app, ["validate", "--config", str(config)])
    assert listed.exit_code == 1
    assert listed.output.count("must be a string") == 120
