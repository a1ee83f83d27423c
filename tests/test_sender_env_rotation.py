"""A channel whose URL holds a ``${NAME}`` of the env file is built again when the env
file's values change (outside-in probe: a rotated webhook password in the env file was
never used by the running daemon's sender, and messages were held until a restart)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from agentcron.clock import FakeClock
from agentcron.config._env import env_file_values, use_env_file_values
from agentcron.model import Message
from agentcron.notify import MemoryOutbox, OutboxSender, SendResult, channel_key

URL = "json://u:${HOOKPW}@127.0.0.1:9/rot"
PLAIN = "json://127.0.0.1:9/plain"


class _Seen:
    def __init__(self, expanded: str) -> None:
        self.key = expanded
        self.expanded = expanded

    async def send(self, msg: Message) -> SendResult:
        return SendResult(ok=True)


def test_a_rotated_env_file_value_reaches_the_next_send() -> None:
    before = env_file_values()
    built: list[str] = []

    def factory(url: str) -> _Seen:
        expanded = url.replace("${HOOKPW}", env_file_values().get("HOOKPW", "?"))
        built.append(expanded)
        return _Seen(expanded)

    clock = FakeClock(datetime(2026, 12, 4, 23, 49, tzinfo=UTC))
    outbox = MemoryOutbox()
    sender = OutboxSender(outbox, channel_factory=factory, clock=clock)
    message = Message("t", "b", "task", "opened", "failure", "warning")
    try:
        use_env_file_values({**before, "HOOKPW": "old1"})
        for url in (URL, PLAIN):
            outbox.enqueue(channel_key(url), url, message, clock.now())
        asyncio.run(sender.drain_once())
        use_env_file_values({**before, "HOOKPW": "new2"})
        for url in (URL, PLAIN):
            outbox.enqueue(channel_key(url), url, message, clock.now())
        asyncio.run(sender.drain_once())
    finally:
        use_env_file_values(before)
    assert built == [
        "json://u:old1@127.0.0.1:9/rot",
        "json://127.0.0.1:9/plain",
        "json://u:new2@127.0.0.1:9/rot",  # built again; the plain one is kept
    ]
