"""The durable outbox: outages delay messages, never lose or reorder them."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agentcron.clock import FakeClock
from agentcron.model import ErrorClass, Incident, Message
from agentcron.notify import (
    AttemptFailed,
    Event,
    MemoryOutbox,
    OutboxSender,
    RunSucceeded,
    SendResult,
    TaskOverdue,
    apply_event,
    channel_for,
    render,
)

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)


class Webhook(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Hook)
        self.received: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


class _Hook(BaseHTTPRequestHandler):
    server: Webhook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    yield server
    server.stop()


def message(n: int, task: str = "story") -> Message:
    return Message(
        title=f"title {n}",
        body=f"body {n}",
        task=task,
        event="opened",
        incident_kind="failure",
        severity="warning",
    )


class FakeChannel:
    """Answers with the scripted results in turn (then ok) and records what it got."""

    def __init__(self, key: str, script: list[SendResult | Exception] | None = None) -> None:
        self.key = key
        self.script = list(script or [])
        self.sent: list[Message] = []

    async def send(self, msg: Message) -> SendResult:
        outcome = self.script.pop(0) if self.script else SendResult(ok=True)
        if isinstance(outcome, Exception):
            raise outcome
        if outcome.ok:
            self.sent.append(msg)
        return outcome


def incident_messages(events: list[Event]) -> list[Message]:
    """Run events through the incident machine and render the notices, per task."""
    open_by_task: dict[str, dict[str, Incident]] = {}
    rendered = []
    for event in events:
        open_ = open_by_task.setdefault(event.task, {})
        transition = apply_event(open_, event, BERLIN)
        for incident in transition.changed:
            if incident.is_open:
                open_[incident.kind] = incident
            else:
                open_.pop(incident.kind, None)
        if transition.notice is not None:
            rendered.append(render(transition.notice, BERLIN, secrets=["hunter2-env-secret"]))
    return rendered


def three_incidents() -> list[Event]:
    at = START
    return [
        AttemptFailed(
            task="story",
            at=at,
            slot_id=1,
            scheduled_for=at,
            attempt=1,
            max_attempts=4,
            error_class=ErrorClass.RATE_LIMITED,
            explanation="the model provider is rate-limiting requests (HTTP 429)",
            retry_at=at + timedelta(minutes=7),
        ),
        AttemptFailed(
            task="reindex",
            at=at + timedelta(minutes=1),
            slot_id=2,
            scheduled_for=at,
            attempt=1,
            max_attempts=4,
            error_class=ErrorClass.AUTH,
            explanation="the provider rejected the API key (HTTP 401)",
            env_hint="REINDEX_TOKEN",
            details="Authorization: Bearer sk-live-abcdefghijklmnop0123\nusing hunter2-env-secret",
        ),
        TaskOverdue(
            task="heartbeat",
            at=at + timedelta(minutes=2),
            due_since=at - timedelta(hours=3),
            missed=3,
            last_run=at - timedelta(hours=4),
        ),
        RunSucceeded(task="story", at=at + timedelta(minutes=8), slot_id=1, attempts=2),
        RunSucceeded(task="heartbeat", at=at + timedelta(minutes=9), slot_id=4),
        RunSucceeded(task="reindex", at=at + timedelta(days=1), slot_id=3),
    ]


@pytest.mark.slow
def test_outage_delays_messages_and_delivers_each_once_in_order(webhook: Webhook) -> None:
    port = webhook.port
    url = f"json://127.0.0.1:{port}/hook"
    key = channel_for(url).key
    webhook.stop()  # the chat platform is down

    messages = incident_messages(three_incidents())
    assert len(messages) == 6
    clock = FakeClock(START + timedelta(days=1))
    outbox = MemoryOutbox()
    for msg in messages:
        outbox.enqueue(key, url, msg, clock.now())
    sender = OutboxSender(outbox, clock=clock)

    assert asyncio.run(sender.drain_once()) == 0
    [health] = outbox.channel_health()
    assert (health.channel_key, health.pending, health.failing_since, health.broken) == (
        key,
        6,
        clock.now(),
        False,
    )
    assert (
        health.last_error == "A Connection error occurred sending JSON notification to 127.0.0.1."
    )
    first, *rest = [item for item, _ in outbox.items()]
    assert first.attempts == 1 and first.next_attempt_at == clock.now() + timedelta(seconds=5)
    assert all(item.attempts == 0 for item in rest)  # only the head of line was tried

    server = Webhook(port)  # the platform is back
    try:
        assert asyncio.run(sender.drain_once()) == 0  # still backing off
        assert server.received == []
        clock.advance(timedelta(seconds=6))
        assert asyncio.run(sender.drain_once()) == 6
        assert asyncio.run(sender.drain_once()) == 0
    finally:
        server.stop()

    assert [(p["title"], p["message"].splitlines()[0]) for p in server.received] == [
        (
            "⚠ story failed",
            "⚠ story failed: the model provider is rate-limiting requests (HTTP 429). "
            "Retrying at 02:07 (attempt 2 of 4).",
        ),
        (
            "✖ reindex failed",
            "✖ reindex failed: the provider rejected the API key (HTTP 401). "
            "Retrying will not help — check REINDEX_TOKEN.",
        ),
        (
            "⚠ heartbeat is overdue",
            "⚠ heartbeat has not run since yesterday 22:00 (3 runs missed) although the "
            "daemon is alive.",
        ),
        ("✔ story recovered", "✔ story recovered after 1 retry."),
        ("✔ heartbeat is running again", "✔ heartbeat is running again after 3 missed runs."),
        (
            "✔ reindex recovered",
            "✔ reindex is running again after 1 failed run (down 1 day).",
        ),
    ]
    [health] = outbox.channel_health()
    assert (health.pending, health.failing_since, health.last_ok_at) == (0, None, clock.now())
    assert [state for _, state in outbox.items()] == ["sent"] * 6


@pytest.mark.slow
def test_secrets_never_reach_the_webhook(webhook: Webhook) -> None:
    url = f"json://127.0.0.1:{webhook.port}/hook"
    outbox = MemoryOutbox()
    clock = FakeClock(START)
    for msg in incident_messages(three_incidents()[1:2]):
        outbox.enqueue(channel_for(url).key, url, msg, clock.now())
    assert asyncio.run(OutboxSender(outbox, clock=clock).drain_once()) == 1
    [payload] = webhook.received
    text = json.dumps(payload, ensure_ascii=False)
    assert "sk-live" not in text and "hunter2" not in text
    assert payload["message"].splitlines()[-2:] == [
        "Authorization: [REDACTED]",
        "using [REDACTED]",
    ]


def test_backoff_grows_to_a_minute_and_never_gives_up() -> None:
    """A minute at most between tries: the head of a channel's queue holds the rest, and
    a backoff grown to 30 min kept a channel that was back silent (chaos probe)."""
    clock = FakeClock(START)
    failing = FakeChannel("flaky", [SendResult(ok=False, error="502 Bad Gateway")] * 8)
    outbox = MemoryOutbox()
    outbox.enqueue("flaky", "flaky://", message(1), clock.now())
    sender = OutboxSender(outbox, channel_factory=lambda url: failing, clock=clock)
    waits = []
    for _ in range(8):
        [item] = outbox.due(clock.now(), 10)
        assert asyncio.run(sender.drain_once()) == 0
        [(after, state)] = outbox.items()
        assert state == "pending" and after.attempts == item.attempts + 1
        assert after.next_attempt_at is not None
        waits.append(after.next_attempt_at - clock.now())
        clock.set(after.next_attempt_at)
    assert waits == [timedelta(seconds=5), timedelta(seconds=15)] + [timedelta(minutes=1)] * 6
    assert asyncio.run(sender.drain_once()) == 1
    (sent,) = failing.sent  # as written, with how late it went out
    assert sent.body.startswith(message(1).body + "\n\n(sent 6 min 20s after")


def test_one_failing_channel_does_not_hold_up_another_and_order_is_kept_per_channel() -> None:
    clock = FakeClock(START)
    slow = FakeChannel("slow", [SendResult(ok=False, error="timeout"), RuntimeError("plugin bug")])
    fast = FakeChannel("fast")
    channels = {"slow://": slow, "fast://": fast}
    outbox = MemoryOutbox()
    for n in range(3):
        outbox.enqueue("slow", "slow://", message(n), clock.now())
        outbox.enqueue("fast", "fast://", message(n), clock.now())
    sender = OutboxSender(outbox, channel_factory=channels.__getitem__, clock=clock)

    assert asyncio.run(sender.drain_once()) == 3
    assert fast.sent == [message(0), message(1), message(2)]
    assert slow.sent == []
    clock.advance(5)
    assert asyncio.run(sender.drain_once()) == 0  # the channel raised: kept, rescheduled
    health = {h.channel_key: h for h in outbox.channel_health()}
    assert health["slow"].last_error == "RuntimeError: plugin bug"
    assert health["slow"].pending == 3 and health["slow"].failing_since == START
    clock.advance(15)
    assert asyncio.run(sender.drain_once()) == 3
    assert slow.sent == [message(0), message(1), message(2)]


def test_a_permanent_failure_parks_the_message_where_doctor_sees_it() -> None:
    clock = FakeClock(START)
    outbox = MemoryOutbox()
    bad = channel_for("nosuchservice://x")
    good = FakeChannel("good")
    outbox.enqueue(bad.key, "nosuchservice://x", message(1), clock.now())
    outbox.enqueue("good", "good://", message(2), clock.now())
    factory = {"nosuchservice://x": bad, "good://": good}.__getitem__
    sender = OutboxSender(outbox, channel_factory=factory, clock=clock)
    assert asyncio.run(sender.drain_once()) == 1
    assert asyncio.run(sender.drain_once()) == 0
    health = {h.channel_key: h for h in outbox.channel_health()}
    broken = health[bad.key]
    assert (broken.broken, broken.undeliverable, broken.pending, broken.ok) == (True, 1, 0, False)
    assert broken.last_error == (
        "no notification service is called nosuchservice:// (is the URL misspelt?)"
    )
    assert health["good"].ok and good.sent == [message(2)]


def test_run_forever_sends_when_woken_and_stops_when_told() -> None:
    clock = FakeClock(START)
    outbox = MemoryOutbox()
    channel = FakeChannel("chat")
    sender = OutboxSender(outbox, channel_factory=lambda url: channel, clock=clock)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run_forever(stop, interval=60))
        await asyncio.sleep(0)
        outbox.enqueue("chat", "chat://", message(1), clock.now())
        sender.wake()
        deadline = asyncio.get_running_loop().time() + 10
        while not channel.sent and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert channel.sent == [message(1)]


def test_memory_outbox_hands_out_only_the_head_of_each_channel() -> None:
    outbox = MemoryOutbox()
    first = outbox.enqueue("a", "a://", message(1), START)
    outbox.enqueue("a", "a://", message(2), START)
    other = outbox.enqueue("b", "b://", message(3), START + timedelta(seconds=1))
    assert [i.id for i in outbox.due(START + timedelta(seconds=1), 10)] == [first, other]
    assert [i.id for i in outbox.due(START, 10)] == [first]
    assert [i.id for i in outbox.due(START + timedelta(seconds=1), 1)] == [first]
    outbox.mark_failed(first, "down", START + timedelta(minutes=1), False, START)
    assert [i.id for i in outbox.due(START + timedelta(seconds=1), 10)] == [other]


def test_an_answer_the_database_cannot_take_is_recorded_when_it_can_and_sent_once() -> None:
    """Disk full between the channel's OK and mark_sent (found by the soak): the message
    is not left for its claim to lapse (which held the channel's later messages back
    for three minutes and sent it twice); it is recorded as soon as the database works,
    before anything else is claimed."""
    from faulty_store import FaultyStore, io_error

    clock = FakeClock(START)
    outbox = FaultyStore(MemoryOutbox())
    channel = FakeChannel("chat")
    sender = OutboxSender(outbox, channel_factory=lambda url: channel, clock=clock)  # type: ignore[arg-type]
    for n in (1, 2, 3):
        outbox.enqueue("chat", "chat://", message(n), clock.now())
    outbox.fail("mark_sent", error=io_error, times=2)

    async def scenario() -> None:
        assert await sender.drain_once() == 0  # sent, not recorded
        with pytest.raises(Exception, match="disk I/O error"):
            await sender.drain_once()  # still cannot record: nothing new is claimed
        assert outbox.calls["claim_outbox"] == 1
        assert await sender.drain_once() == 3  # recorded, then the rest in order

    asyncio.run(scenario())
    assert channel.sent == [message(1), message(2), message(3)]
    assert outbox.due(clock.now() + timedelta(hours=1), 10) == []


def test_a_message_sent_long_after_it_was_written_says_how_late_it_is() -> None:
    """Outside-in probe: after a channel outage the backlog came in order and once,
    but "Retrying at 20:45:02" arrived 80 s past that time, beside the recovery, with
    nothing to say it was late. One sent 2 min or more after it was written now says
    so on a last line; one sent in time is as written."""
    clock = FakeClock(START)
    outbox = MemoryOutbox()
    down = FakeChannel("hook", [SendResult(ok=False, error="HTTP 500")])
    sender = OutboxSender(outbox, channel_factory=lambda _u: down, clock=clock)
    note = Message(
        title="t",
        body="⚠ flaky failed. Retrying at 01:01.",
        task="flaky",
        event="opened",
        incident_kind="failure",
        severity="warning",
    )
    outbox.enqueue("hook", "json://h/hook", note, clock.now())
    assert asyncio.run(sender.drain_once()) == 0  # the channel is down
    clock.advance(timedelta(minutes=5))
    assert asyncio.run(sender.drain_once()) == 1
    (late,) = down.sent
    first, *rest = late.body.split("\n\n")
    assert first == note.body
    assert rest == ["(sent 5 min after it was written: it could not go out sooner)"]
    outbox.enqueue("hook", "json://h/hook", note, clock.now())
    clock.advance(timedelta(seconds=30))
    asyncio.run(sender.drain_once())
    assert down.sent[-1].body == note.body  # in time: as written


@pytest.mark.slow
def test_a_send_given_up_on_is_not_sent_again_while_it_may_still_go_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A webhook slow to answer: the sender stopped waiting, recorded a failure, and its
    retry posted the message again while the first post was still under way, which
    then went out too (two copies; outside-in probe of a stop with a hanging channel:
    up to three). The retry now waits for the first post's answer, and its late OK
    counts as the message sent."""
    from agentcron.notify import channels
    from agentcron.notify.channels import STILL_SENDING, AppriseChannel, unanswered
    from e2e_sink import Sink

    monkeypatch.setattr(channels, "_GRACE", 0.0)  # stop waiting after the 1 s deadline
    clock = FakeClock(START)
    outbox = MemoryOutbox()
    outbox.enqueue("hook", "json://hook", message(1), clock.now())
    errors: list[str | None] = []

    def last_error() -> str | None:
        return outbox.due(clock.now() + timedelta(hours=1), 1)[0].last_error

    with Sink() as sink:
        sink.hold("/hook", 1)
        channel = AppriseChannel(sink.url("/hook"), timeout=1.0)
        sender = OutboxSender(
            outbox,
            channel_factory=lambda _url: channel,
            clock=clock,
            backoff=[timedelta(seconds=1)],
        )

        async def scenario() -> int:
            assert await sender.drain_once() == 0  # no answer within the deadline
            errors.append(last_error())
            clock.advance(timedelta(seconds=2))
            assert await sender.drain_once() == 0  # the first post still waits
            errors.append(last_error())
            sink.release()
            for _ in range(200):  # until the first post's answer is in
                clock.advance(timedelta(seconds=2))
                if delivered := await sender.drain_once():
                    return delivered
                await asyncio.sleep(0.05)
            return 0

        with caplog.at_level("WARNING", logger="agentcron"):
            delivered = asyncio.run(scenario())
        posts = sink.posts
    assert errors == [unanswered(1), STILL_SENDING]
    assert delivered == 1  # the late OK of the first post
    assert len(posts) == 1, posts
    assert outbox.due(clock.now() + timedelta(hours=1), 10) == []
    assert "was sent again" not in caplog.text


def test_a_message_sent_again_after_a_send_a_stop_cut_short_counts_as_resent() -> None:
    """A stop cut a slow send short ("not sent again: an earlier send … may still go
    out"); the next daemon sent it again, the service got it twice under one key, and
    `resent` stayed 0 where the README says such resends are counted (outside-in
    probe). A send that is refused, or the late answer of the first send in the same
    process, is no second copy and is not counted."""
    from agentcron.notify.channels import STILL_SENDING

    clock = FakeClock(START)
    outbox = MemoryOutbox()
    counted = []
    for n, answer in enumerate(
        [SendResult(ok=True), SendResult(ok=False, error="HTTP 500"), None], start=1
    ):
        item = outbox.enqueue(f"hook{n}", f"json://hook{n}", message(n), clock.now())
        # the stopping sender had it claimed and recorded the send it gave up on
        outbox.claim_outbox("old", clock.now(), clock.now() + timedelta(minutes=3), 10)
        outbox.mark_failed(item, STILL_SENDING, clock.now(), False, clock.now(), "old")
        script: list[SendResult | Exception] = [answer] if answer is not None else []
        channel = FakeChannel(f"hook{n}", script)
        if answer is None:  # the first send's late answer, in the process that made it

            async def late(msg: Message, channel: FakeChannel = channel) -> SendResult:
                return SendResult(ok=True, earlier=True)

            channel.send = late  # type: ignore[method-assign]
        sender = OutboxSender(outbox, channel_factory=lambda _url, c=channel: c, clock=clock)
        clock.advance(timedelta(seconds=5))
        asyncio.run(sender.drain_once())
        (health,) = [h for h in outbox.channel_health() if h.channel_key == f"hook{n}"]
        counted.append(health.resent)
    assert counted == [1, 0, 0]
