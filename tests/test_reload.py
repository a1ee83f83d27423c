"""`agentcron run` reloads its config; a broken new version is rejected and the last good
config keeps running (PRODUCT.md §11)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentcron.daemon import Daemon, DaemonOptions
from harness import until

GOOD = "tasks:\n  a:\n    every: 1s\n    command: [echo, a]\n"
BROKEN_YAML = "tasks:\n  a: [unclosed\n"
BAD_CRON = 'tasks:\n  a:\n    cron: "61 * * * *"\n    command: [echo, a]\n'
NEW = "tasks:\n  b:\n    every: 1s\n    command: [echo, b]\n"


@pytest.mark.slow
def test_broken_reload_keeps_old_tasks_running_then_good_reload_applies(tmp_path: Path) -> None:
    config = tmp_path / "agentcron.yaml"
    config.write_text(GOOD)
    daemon = Daemon(
        DaemonOptions(
            config_path=config, home=tmp_path / "home", reload_interval=0.1, shutdown_grace=2
        )
    )

    def runs(task: str) -> int:
        assert daemon.store is not None
        return len(daemon.store.slots(task, limit=1000))

    async def scenario() -> None:
        main = asyncio.create_task(daemon.run())
        try:
            await until(lambda: daemon.store is not None and runs("a") >= 1, timeout=30)
            config.write_text(BROKEN_YAML)
            await until(lambda: daemon.rejected_config is not None, timeout=30)
            assert "invalid YAML" in (daemon.rejected_config or "")
            config.write_text(BAD_CRON + "\n# edited\n")
            await until(lambda: "tasks.a.cron" in (daemon.rejected_config or ""), timeout=30)
            assert daemon.store is not None
            assert [t.name for t in daemon.store.list_tasks()] == ["a"]
            before = runs("a")
            await until(lambda: runs("a") >= before + 2, timeout=30)  # still firing
            config.write_text(NEW)
            await until(
                lambda: (
                    daemon.store is not None
                    and [t.name for t in daemon.store.list_tasks()] == ["b"]
                ),
                timeout=30,
            )
            await until(lambda: runs("b") >= 1, timeout=30)
            assert daemon.rejected_config is None
        finally:
            daemon.stop_event.set()
            await asyncio.wait_for(main, 30)

    asyncio.run(scenario())


@pytest.mark.slow
def test_a_stalled_loop_is_reported_to_the_notify_channels_from_the_watchdog_thread(
    tmp_path: Path,
) -> None:
    from e2e_webhook import WebhookReceiver

    with WebhookReceiver() as hook:
        config = tmp_path / "agentcron.yaml"
        config.write_text(f'notify: ["{hook.url}"]\n' + GOOD)
        daemon = Daemon(DaemonOptions(config_path=config, home=tmp_path / "home"))

        async def scenario() -> None:
            await daemon.start()
            try:
                # what the watchdog thread does when the loop is stuck, from a thread
                await asyncio.to_thread(daemon._loop_stalled, 42.0)
            finally:
                assert daemon.registry is not None and daemon.store is not None
                await daemon.registry.close()
                daemon.store.close()

        asyncio.run(scenario())
        bodies = [m.get("message", "") for m in hook.messages()]  # Apprise json:// format
    assert any("has not ticked for 42s" in b for b in bodies), bodies


AGENT = (
    "agents:\n  clients:\n    bot:\n      token: {token}\n      budget:\n"
    "        runs_per_day: {runs}\n"
)


@pytest.mark.slow
def test_a_reload_that_changes_what_applies_only_at_start_says_so(tmp_path: Path) -> None:
    """`api:` and `agents:` are set up when the daemon starts: a reload that changes
    them applies the rest and tells the owner (log and channels) a restart is needed,
    instead of a quiet "config reloaded" while the old API token still works. A change
    of an agent's budget alone is applied and needs no restart."""
    from e2e_webhook import WebhookReceiver

    first = AGENT.format(token="t" * 20, runs=5)
    with WebhookReceiver() as hook:
        config = tmp_path / "agentcron.yaml"
        head = f'notify: ["{hook.url}"]\napi:\n  enabled: false\n'
        config.write_text(head + first + GOOD)
        daemon = Daemon(
            DaemonOptions(config_path=config, home=tmp_path / "home", reload_interval=0.1)
        )

        def told() -> list[str]:
            return [m.get("message", "") for m in hook.messages() if "restart" in str(m)]

        async def scenario() -> None:
            main = asyncio.create_task(daemon.run())
            try:
                await until(lambda: daemon.config is not None, timeout=30)
                # an agent's budget only: applied, nothing to restart for
                config.write_text(head + AGENT.format(token="t" * 20, runs=9) + GOOD)
                await until(
                    lambda: (
                        daemon.config is not None
                        and daemon.config.agents.clients["bot"].budget is not None
                        and daemon.config.agents.clients["bot"].budget.runs_per_day == 9
                    ),
                    timeout=30,
                )
                assert daemon.restart_needed == []
                # a new agent token and another API port: applied only at a restart
                changed = head.replace("enabled: false", "enabled: false\n  port: 8799")
                config.write_text(changed + AGENT.format(token="u" * 20, runs=9) + GOOD)
                await until(lambda: daemon.restart_needed == ["agents", "api"], timeout=30)
                await until(lambda: len(told()) == 1, timeout=30)
            finally:
                daemon.stop_event.set()
                await asyncio.wait_for(main, 30)

        asyncio.run(scenario())
        body = told()[0]
    assert "`api:` and `agents:`" in body and "take effect only when agentcron restarts" in body
    assert "u" * 20 not in body and "t" * 20 not in body  # no token in the message
