"""`agentcron run` says in its own log when failures would reach no one (outside-in
probe: `validate` and `doctor` warned, but the daemon, the one thing most owners watch,
started and logged failures to itself without a word), at start and when a reload
takes the channels away or gives them back."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agentcron.daemon import Daemon
from harness import until
from test_reload import run_reloading

UNTOLD = "no `notify:` channel: the failures of 1 task(s) (a) are recorded but told to no one"
ALONE = "tasks:\n  a:\n    every: 1h\n    command: [echo, a]\n"
TOLD = "notify: ['json://127.0.0.1:9/hook']\n" + ALONE


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "agentcron.daemon"
        and r.levelno == logging.WARNING
        and "notify:" in r.getMessage()
    ]


@pytest.mark.slow
def test_a_daemon_without_a_channel_says_so_at_start_and_on_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentcron.daemon")
    config = tmp_path / "agentcron.yaml"
    config.write_text(ALONE)

    async def body(daemon: Daemon) -> None:
        await until(lambda: len(_said(caplog)) == 1, timeout=30)
        assert _said(caplog)[0].startswith(UNTOLD)
        config.write_text(TOLD)
        await until(lambda: daemon.config is not None and bool(daemon.config.notify), timeout=30)
        config.write_text(ALONE + "# again\n")
        await until(lambda: len(_said(caplog)) == 2, timeout=30)

    run_reloading(config, body)


@pytest.mark.slow
def test_a_daemon_with_a_channel_says_nothing_of_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentcron.daemon")
    config = tmp_path / "agentcron.yaml"
    config.write_text(TOLD)

    async def body(daemon: Daemon) -> None:
        await until(
            lambda: any("agentcron running" in r.getMessage() for r in caplog.records), timeout=30
        )

    run_reloading(config, body)
    assert _said(caplog) == []


@pytest.mark.slow
def test_a_daemon_without_an_llm_tasks_key_starts_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It starts (its other tasks keep firing) and its log names the variable."""
    caplog.set_level(logging.INFO, logger="agentcron.daemon")
    monkeypatch.delenv("PROBE_UNSET_KEY", raising=False)
    config = tmp_path / "agentcron.yaml"
    config.write_text(
        TOLD + "  story:\n    every: 1h\n    llm: {base_url: 'http://127.0.0.1:9/v1', model: m, "
        "prompt: p, api_key_env: PROBE_UNSET_KEY}\n"
    )

    async def body(daemon: Daemon) -> None:
        await until(
            lambda: any(
                "PROBE_UNSET_KEY is not set here" in r.getMessage() for r in caplog.records
            ),
            timeout=30,
        )

    run_reloading(config, body)
