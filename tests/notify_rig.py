"""A channel that records what the outbox sender hands it, for in-process tests of
what the owner is told (shared by the notification, watchdog and overdue tests)."""

from __future__ import annotations

from agentcron.model import Message
from agentcron.notify import SendResult

HOOK = "json://127.0.0.1:9/hook"


class RecordingChannel:
    """Records every message sent to it, in order, and accepts them all."""

    key = HOOK

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def send(self, msg: Message) -> SendResult:
        self.sent.append(msg)
        return SendResult(ok=True)
