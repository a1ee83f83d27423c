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
