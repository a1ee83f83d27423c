"""A start refused says nothing of stopping (outside-in probe: an invalid config logged
"agentcron stopped" above "error: cannot start …", of a daemon that never started)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agentcron.config import ConfigError
from agentcron.daemon import Daemon, DaemonOptions


def test_a_refused_start_does_not_log_that_agentcron_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "agentcron.yaml"
    config.write_text('tasks:\n  a:\n    cron: "61 * * * *"\n    command: [echo, a]\n')
    daemon = Daemon(DaemonOptions(config_path=config, home=tmp_path / "home"))
    with caplog.at_level(logging.INFO, logger="agentcron"), pytest.raises(ConfigError):
        asyncio.run(daemon.run())
    said = [r.getMessage() for r in caplog.records if r.name == "agentcron.daemon"]
    assert "agentcron stopped" not in said, said
    assert "agentcron did not start" in said, said


def test_a_daemon_that_ran_still_logs_that_it_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "agentcron.yaml"
    config.write_text("tasks:\n  a:\n    every: 1h\n    command: [echo, a]\n")
    daemon = Daemon(DaemonOptions(config_path=config, home=tmp_path / "home"))

    async def scenario() -> None:
        await daemon.start()
        await daemon.close()

    with caplog.at_level(logging.INFO, logger="agentcron"):
        asyncio.run(scenario())
    said = [r.getMessage() for r in caplog.records if r.name == "agentcron.daemon"]
    assert said[-1] == "agentcron stopped", said
