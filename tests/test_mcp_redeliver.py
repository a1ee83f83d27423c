"""redeliver_run: an agent sends again the output of a run whose delivery gave up.

The CLI, the API and the dashboard could; an agent, which reads a run's failures with
get_run, could neither see that its output was never delivered nor send it again.
get_run now shows each delivery, and redeliver_run does what ``agentcron redeliver``
does, as the agent (audited ``via mcp``), within its bounds."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.delivery.worker import DeliveryWorker
from agentcron.model import DeliveryStatus, Message
from agentcron.notify.channels import SendResult
from agentcron.service import Service
from harness import Harness
from mcp_rig import agents_config, call, ok, refusal, server_for

TARGET = "json://127.0.0.1:9/deliver"


class Down:
    """A delivery target that refuses every post."""

    async def send(self, msg: Message) -> SendResult:
        return SendResult(ok=False, error="HTTP 500 from the chat service")


def _gave_up(store: Any, clock: FakeClock, home: Path) -> Harness:
    """``agent.claude.story`` and ``backup`` ran once each and their deliveries gave up."""

    async def scenario() -> Harness:
        h = Harness(store, clock, home)
        for name in ("agent.claude.story", "backup"):
            h.add(name, lambda: "Once upon a time.", every="1d", deliver=[TARGET],
                  delivery_backoff=["1m"])  # fmt: skip
        clock.advance(timedelta(days=1))
        await h.tick()
        worker = DeliveryWorker(
            store, clock, emit=lambda _s, _e: None, channel_factory=lambda _u: Down()
        )
        await worker.drain_once()
        clock.advance(timedelta(minutes=1))
        await worker.drain_once()
        return h

    return asyncio.run(scenario())


def test_an_agent_sees_a_delivery_that_gave_up_and_sends_it_again(
    sqlite_store: Any, clock: FakeClock, home: Path
) -> None:
    h = _gave_up(sqlite_store, clock, home)
    (story,) = h.slots("agent.claude.story")
    server = server_for(h.service, agents_config())
    detail = ok(call(server, "get_run", run_id=story.id))
    (delivery,) = detail["deliveries"]
    assert delivery["target"] == TARGET and delivery["status"] == "failed"
    assert delivery["attempts"] == 2 and "HTTP 500" in delivery["last_error"]

    again = ok(call(server, "redeliver_run", run_id=story.id))
    assert again["id"] == story.id and [d["status"] for d in again["deliveries"]] == ["pending"]
    (entry,) = [a for a in h.service.audit() if a["action"] == "run.redeliver"]
    assert (entry["actor"], entry["via"], entry["task"]) == ("claude", "mcp", story.task)
    # asked again while it is on its way: refused with the service's reason
    said = refusal(call(server, "redeliver_run", run_id=story.id))
    assert "is still being delivered" in said and "it needs no help" in said


def test_an_agent_cannot_redeliver_what_is_not_its_own(
    sqlite_store: Any, clock: FakeClock, home: Path
) -> None:
    h = _gave_up(sqlite_store, clock, home)
    (backup,) = h.slots("backup")
    hidden = server_for(h.service, agents_config())
    assert refusal(call(hidden, "redeliver_run", run_id=backup.id)) == (
        f"no run with id {backup.id}; list_runs shows yours"
    )  # a run of a task it cannot see is not there for it
    assert refusal(call(hidden, "redeliver_run", run_id=424242)).startswith("no run with id")
    reader = server_for(h.service, agents_config(claude={"see": ["backup"]}))
    said = refusal(call(reader, "redeliver_run", run_id=backup.id))
    assert "visible to you but not yours to change" in said
    (delivery,) = sqlite_store.deliveries(backup.id)
    assert delivery.status is DeliveryStatus.FAILED  # nothing changed
    assert not [a for a in h.service.audit() if a["action"] == "run.redeliver"]


def test_a_failure_after_the_redelivery_was_queued_says_so_and_where_to_look(
    sqlite_store: Any, clock: FakeClock, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = _gave_up(sqlite_store, clock, home)
    (story,) = h.slots("agent.claude.story")
    queue = Service.redeliver

    def then_fails(service: Service, run_id: int) -> dict[str, Any]:
        queue(service, run_id)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Service, "redeliver", then_fails)
    said = refusal(call(server_for(h.service, agents_config()), "redeliver_run", run_id=story.id))
    assert "was made before the failure" in said
    assert f"get_run({story.id}) shows it as it is now; do not repeat the call" in said
