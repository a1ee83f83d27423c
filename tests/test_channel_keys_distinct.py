"""Channels whose URLs differ only in what their names hide are told apart (outside-in
probe: two webhooks on one host and path with different passwords had one key, so one
outbox queue: the failing one's retries held the working one's messages back, and
``/metrics``, ``health`` and ``doctor`` showed a single channel)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from agentcron.clock import FakeClock
from agentcron.model import Message
from agentcron.notify import MemoryOutbox, OutboxSender, SendResult, channel_key

GOOD = "json://ops:GOODpass@127.0.0.1:18930/hook"
BAD = "json://ops:BADpass@127.0.0.1:18930/hook"
PAIRS = [
    (GOOD, BAD),
    (
        "json://example.com/hook?token=aaaaaaaaaaaaaaaa",
        "json://example.com/hook?token=bbbbbbbbbbbbbbbb",
    ),
    (
        "tgram://111111111:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/4242",
        "tgram://111111111:AAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXsaw/4242",
    ),
    ("command:/usr/local/bin/notify alice", "command:/usr/local/bin/notify bob"),
]
START = datetime(2026, 12, 4, 22, 0, tzinfo=UTC)


def test_urls_that_differ_only_in_hidden_parts_have_their_own_keys() -> None:
    for one, other in PAIRS:
        assert channel_key(one) != channel_key(other), (one, other)
        assert channel_key(one) == channel_key(one)  # stable: the queue is found again


def test_the_keys_still_hold_no_secret_and_a_plain_url_is_its_own_key() -> None:
    for one, other in PAIRS:
        for url in (one, other):
            key = channel_key(url)
            for secret in ("GOODpass", "BADpass", "aaaaaaaa", "AAHdqTcv", "alice", "bob"):
                assert secret not in key, (url, key)
    assert channel_key("json://127.0.0.1:8080/hook") == "json://127.0.0.1:8080/hook"
    assert channel_key("command:/usr/local/bin/notify") == "command:/usr/local/bin/notify"


class _Script:
    """GOOD answers, BAD fails every time (a wrong password)."""

    def __init__(self, url: str) -> None:
        self.key = channel_key(url)
        self.url = url
        self.sent: list[str] = []

    async def send(self, msg: Message) -> SendResult:
        if self.url == BAD:
            return SendResult(ok=False, error="HTTP 500")
        self.sent.append(msg.title)
        return SendResult(ok=True)


def test_a_failing_channel_does_not_hold_back_its_namesake() -> None:
    clock = FakeClock(START)
    outbox = MemoryOutbox()
    channels = {GOOD: _Script(GOOD), BAD: _Script(BAD)}
    sender = OutboxSender(outbox, channel_factory=channels.__getitem__, clock=clock)
    for n in range(3):
        for url in (BAD, GOOD):
            message = Message(f"m{n}", "b", "t", "opened", "failure", "warning")
            outbox.enqueue(channel_key(url), url, message, clock.now())
        asyncio.run(sender.drain_once())
        clock.advance(1)
    assert channels[GOOD].sent == ["m0", "m1", "m2"]
    health = {h.channel_key: h for h in outbox.channel_health()}
    assert len(health) == 2
    assert health[channel_key(GOOD)].ok and not health[channel_key(BAD)].ok
