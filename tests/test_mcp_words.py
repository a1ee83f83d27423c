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


def test_problems_are_located_at_the_argument_in_one_style(service: Service) -> None:
    """update_task said `tasks.agent.claude.job.deliver[0]: …` where schedule_task says
    `deliver[0]: …`; a problem of the whole task said `task: timeout must be positive`,
    and a key's repeated it (`every: every must be at least 1s`)."""
    server = server_for(service, agents_config(claude={"actions": ["command"]}))
    ok(call(server, "schedule_task", name="job", every="1h", command=["true"]))
    check = unchanged(service)
    made = refusal(
        call(server, "schedule_task", name="x", every="1h", command=["true"], deliver=["nope"])
    )
    changed = refusal(call(server, "update_task", name="job", deliver=["nope"]))
    assert made.split(": ", 1)[1] == changed.split(": ", 1)[1], (made, changed)
    assert changed.startswith("task 'agent.claude.job' not accepted: deliver[0]: "), changed
    assert "tasks." not in changed
    said = refusal(call(server, "update_task", name="job", timeout="0s"))
    assert "not accepted: timeout: must be positive" in said, said
    said = refusal(call(server, "schedule_task", name="y", every="0s", command=["true"]))
    assert "every: every" not in said and "every: must" in said, said
    said = refusal(call(server, "schedule_task", name="z", every="1h", command=[]))
    assert "task: command" not in said and "command: " in said, said
    check()


def test_a_task_it_may_only_see_is_said_visible_not_outside(service: Service) -> None:
    """A see-only agent's pause_task of a granted task was told "Give a short name
    (digest) or a full name starting with agent.ro.", as if it had mistyped it."""
    _file_task(service)
    server = server_for(service, agents_config(ro={"see": ["*"]}), name="ro")
    check = unchanged(service)
    said = refusal(call(server, "pause_task", name="backup"))
    assert said.startswith("task 'backup' is visible to you but not yours to change"), said
    assert "Give a short name" not in said
    check()
