"""What the tools say names the tool that does it and the argument that is wrong,
in one style: refusals an agent reads and acts on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.service import Defaults, Service
from mcp_rig import agents_config, call, calls, ok, refusal, server_for, unchanged


@pytest.fixture
def service(sqlite_store: Any, clock: FakeClock, home: Path) -> Service:
    return Service(sqlite_store, home, clock, Defaults(timezone="Europe/Berlin"))


def _file_task(service: Service, name: str = "backup") -> None:
    from agentcron.model import TaskSource, TaskSpec

    now = service.clock.now()
    spec = TaskSpec(name=name, every="1h", command=["true"])
    service.store.upsert_task(spec, TaskSource.FILE, now, service.first_fire(spec, now))


def test_updating_a_config_file_task_points_to_pause_task_not_the_file(
    service: Service,
) -> None:
    """It said "defined in the config file; change it there": a person's advice, of a
    file the agent cannot edit."""
    _file_task(service)
    server = server_for(service, agents_config(claude={"change": ["backup"]}))
    check = unchanged(service)
    said = refusal(call(server, "update_task", name="backup", every="2h"))
    assert said == (
        "task 'backup' is defined in the owner's config file: an agent cannot change it "
        "(the owner edits the file). To stop it firing, pause it with pause_task."
    )
    check()
    update, pause = calls(
        server, [("update_task", {"name": "backup"}), ("pause_task", {"name": "backup"})]
    )
    assert "pause it with pause_task" in refusal(update)
    assert ok(pause)["paused"]
