"""A task removed while the owner had been told of its problem (outside-in probe).

Before: its incidents were closed without a word. An owner told "failing, retrying at
14:05" heard nothing more, and an agent that removed a failing task (MCP) hid the
failure. Now the end is told once, saying who removed it when an interface did."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from agentcron._service.base import Actor, acting_as
from agentcron.clock import FakeClock
from agentcron.notify.notifier import Notifier
from agentcron.notify.sender import OutboxSender
from agentcron.store.base import Store
from harness import Harness
from notify_rig import HOOK, RecordingChannel


def _failing_then_removed(
    store: Store, clock: FakeClock, home: Path, *, told: bool, by_agent: bool
) -> list[str]:
    """``flaky`` fails (the owner told, or not, as ``told``), is removed, and the
    daemon ticks on for ten minutes: the messages sent, title and body."""

    async def scenario() -> list[str]:
        h = Harness(store, clock, home)
        notifier = Notifier(store, clock, [HOOK] if told else [], "UTC")
        notifier.attach(h.engine)
        channel = RecordingChannel()
        sender = OutboxSender(store, channel_factory=lambda _url: channel, clock=clock)

        def flaky() -> None:
            raise PermissionError("the API key was revoked")  # permanent: told at once

        h.add("flaky", flaky, every="1h", timezone="UTC", retries=3)
        clock.advance(timedelta(hours=1))
        await h.tick()
        await sender.drain_once()
        assert len(channel.sent) == (1 if told else 0), [m.title for m in channel.sent]
        if by_agent:
            with acting_as(Actor("nightly-agent", "mcp")):
                h.service.remove("flaky")
        else:
            store.remove_task("flaky", clock.now())  # as a file's sync or a program does
        await h.run_until(clock.now() + timedelta(minutes=10), timedelta(seconds=30))
        await sender.drain_once()
        return [f"{m.title}\n{m.body}" for m in channel.sent]

    return asyncio.run(scenario())


def test_an_agent_removing_a_failing_task_is_told_with_its_name(
    store: Store, clock: FakeClock, home: Path
) -> None:
    sent = _failing_then_removed(store, clock, home, told=True, by_agent=True)
    assert len(sent) == 2, sent  # the failure, then its end: once, not per look
    title, body = sent[1].split("\n", 1)
    assert title == "⚠ flaky was removed while failing"
    assert body.startswith("flaky was removed by nightly-agent via mcp while failing (since ")
    assert "1 failed run" in body
    assert "nothing more will be told of it" in body
    assert store.removed_untold() == []


def test_a_failing_task_taken_out_of_its_file_is_told(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """Removed by the store alone, as a config file's sync or a program's start
    removes a task: no interface, no audit entry."""
    sent = _failing_then_removed(store, clock, home, told=True, by_agent=False)
    assert len(sent) == 2, sent
    assert "flaky was removed from its config file or program while failing" in sent[1]


def test_a_problem_never_told_ends_without_a_word(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """No channel: nothing was told, so its end is not told either (and not kept
    waiting to be told)."""
    sent = _failing_then_removed(store, clock, home, told=False, by_agent=True)
    assert sent == []
    assert store.removed_untold() == []
