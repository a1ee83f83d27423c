"""The delivery worker on a fake clock: what it sends for runs with and without output."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from agentcron.delivery.worker import DeliveryWorker
from agentcron.model import DeliveryStatus, Message, SlotStatus
from agentcron.notify.channels import SendResult
from harness import Harness

TARGET = "json://127.0.0.1:9/deliver"


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def send(self, msg: Message) -> SendResult:
        self.sent.append(msg)
        return SendResult(ok=True)


def test_a_run_that_said_nothing_is_delivered_as_such_and_keeps_no_file(
    sqlite_store, clock, home: Path
) -> None:
    """An inline call that returns None keeps no output file (none is made per run);
    its delivery still arrives, saying there was no output, and is not a failure."""
    channel = Recorder()

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("quiet", lambda: None, every="1h", deliver=[TARGET])
        h.add("story", lambda: "Once upon a time.", every="1h", deliver=[TARGET])
        h.clock.advance(timedelta(hours=1))
        await h.tick()
        worker = DeliveryWorker(
            sqlite_store, clock, emit=lambda _spec, _event: None, channel_factory=lambda _u: channel
        )
        assert await worker.drain_once() == 2
        return h

    h = asyncio.run(scenario())
    (quiet,) = h.slots("quiet")
    (story,) = h.slots("story")
    assert quiet.status is SlotStatus.SUCCEEDED and quiet.output_path is None
    assert story.output_path is not None and Path(story.output_path).read_text() == (
        "Once upon a time."
    )
    assert not (home / "outputs" / "quiet").exists() or not any(
        (home / "outputs" / "quiet").iterdir()
    )
    bodies = {m.task: m.body for m in channel.sent}
    assert bodies == {"quiet": "(the run produced no output)", "story": "Once upon a time."}
    for slot in (quiet, story):
        (delivery,) = sqlite_store.deliveries(slot.id)
        assert delivery.status is DeliveryStatus.DELIVERED


def test_a_channel_that_raises_counts_an_attempt_and_waits_its_backoff(
    sqlite_store, clock, home: Path
) -> None:
    """A channel's own bug (an exception, not a refusal) is a failed attempt like any
    other: counted, retried after the task's delivery_backoff, not every second."""

    class Broken:
        async def send(self, msg: Message) -> SendResult:
            raise KeyError("chat_id")

    async def scenario() -> list[tuple[DeliveryStatus, int, object]]:
        h = Harness(sqlite_store, clock, home)
        h.add("story", lambda: "text", every="1h", deliver=[TARGET], delivery_backoff=["5m"])
        clock.advance(timedelta(hours=1))
        await h.tick()
        worker = DeliveryWorker(
            sqlite_store, clock, emit=lambda _s, _e: None, channel_factory=lambda _u: Broken()
        )
        (slot,) = h.slots("story")
        seen = []
        for _ in range(3):  # a second later: not due again; 5 minutes later: once more
            await worker.drain_once()
            (d,) = sqlite_store.deliveries(slot.id)
            seen.append((d.status, d.attempts, d.last_error))
            clock.advance(timedelta(seconds=1))
        clock.advance(timedelta(minutes=5))
        await worker.drain_once()
        (d,) = sqlite_store.deliveries(slot.id)
        seen.append((d.status, d.attempts, d.last_error))
        return seen

    seen = asyncio.run(scenario())
    assert seen[:3] == [(DeliveryStatus.RETRYING, 1, "KeyError: 'chat_id'")] * 3, seen
    assert seen[3] == (DeliveryStatus.FAILED, 2, "KeyError: 'chat_id'"), seen


def test_an_answer_the_database_refuses_once_is_recorded_and_not_sent_again(
    clock, home: Path
) -> None:
    """Sent, then the database locked when the answer is written: the write is tried
    again within the claim, instead of the claim lapsing and the output going twice."""
    from agentcron.store.sqlite import SQLiteStore
    from faulty_store import FaultyStore

    store = FaultyStore(SQLiteStore(home / "agentcron.db"))
    channel = Recorder()

    async def scenario() -> Harness:
        h = Harness(store, clock, home)  # type: ignore[arg-type]
        h.add("story", lambda: "report", every="1h", deliver=[TARGET])
        clock.advance(timedelta(hours=1))
        await h.tick()
        worker = DeliveryWorker(
            store, clock, emit=lambda _s, _e: None, channel_factory=lambda _u: channel
        )
        worker.record_backoff = (0.01,)
        store.fail("update_delivery", times=1)
        assert await worker.drain_once() == 1
        clock.advance(timedelta(minutes=10))  # long past any claim
        await worker.drain_once()
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("story")
    (delivery,) = store.deliveries(slot.id)
    assert delivery.status is DeliveryStatus.DELIVERED
    assert [m.body for m in channel.sent] == ["report"]


def test_what_escapes_an_attempt_is_said_not_left_to_the_garbage_collector(
    sqlite_store, clock, home: Path, caplog
) -> None:
    channel = Recorder()

    async def scenario() -> None:
        h = Harness(sqlite_store, clock, home)
        h.add("story", lambda: "report", every="1h", deliver=[TARGET])
        clock.advance(timedelta(hours=1))
        await h.tick()
        worker = DeliveryWorker(
            sqlite_store, clock, emit=lambda _s, _e: None, channel_factory=lambda _u: channel
        )
        worker.record_backoff = ()

        def broken(*_args: object) -> bool:
            raise OSError("disk I/O error")

        sqlite_store.update_delivery = broken  # type: ignore[method-assign]
        await worker.drain_once()
        await worker.settle(5)

    asyncio.run(scenario())
    assert "the delivery of story (slot" in caplog.text
    assert "failed in agentcron itself; it is tried again when its claim lapses" in caplog.text
    assert "disk I/O error" in caplog.text


def test_a_removed_tasks_delivery_that_gives_up_is_told_once_to_the_top_level_channels(
    sqlite_store, clock, home: Path
) -> None:
    """The task was removed after its run, while its output still waited to be
    delivered: the delivery goes on (default backoff), its retries are only logged,
    and when it gives up the owner hears it once, with where the output is kept; no
    incident is left open for a task that is gone."""
    from agentcron.notify import OutboxSender
    from agentcron.notify.notifier import Notifier
    from notify_rig import HOOK, RecordingChannel

    class Down:
        async def send(self, msg: Message) -> SendResult:
            return SendResult(ok=False, error="HTTP 502 Bad Gateway")

    told = RecordingChannel()

    async def scenario() -> list[DeliveryStatus]:
        h = Harness(sqlite_store, clock, home)
        notifier = Notifier(sqlite_store, clock, [HOOK], "UTC")
        sender = OutboxSender(sqlite_store, channel_factory=lambda _u: told, clock=clock)
        h.add("story", lambda: "Once upon a time.", every="1h", deliver=[TARGET])
        clock.advance(timedelta(hours=1))
        await h.tick()
        assert sqlite_store.remove_task("story", clock.now())
        worker = DeliveryWorker(
            sqlite_store,
            clock,
            notifier.emit,
            channel_factory=lambda _u: Down(),
            removed=notifier.on_removed_delivery,
        )
        seen = []
        for _ in range(10):  # the default backoff's tries, and one more pass
            await worker.drain_once()
            await worker.settle(5)
            (slot,) = h.slots("story")
            (delivery,) = sqlite_store.deliveries(slot.id)
            seen.append(delivery.status)
            await sender.drain_once()
            clock.advance(timedelta(hours=6))
        return seen

    seen = asyncio.run(scenario())
    assert seen[0] is DeliveryStatus.RETRYING and seen[-1] is DeliveryStatus.FAILED
    (message,) = told.sent
    assert message.task == "story" and message.severity == "failure"
    assert message.body.startswith("✖ story's output could not be delivered to "), message.body
    assert "HTTP 502 Bad Gateway" in message.body
    assert "/outputs/story/" in message.body and "was removed after that run" in message.body
    assert sqlite_store.incidents(open_only=True) == []


def test_every_attempt_of_a_delivery_carries_one_idempotency_key(
    sqlite_store, clock, home: Path
) -> None:
    """A worker that dies between the receiver's answer and its record sends the
    delivery again (outside-in probe: the same output posted twice, with no key to
    drop the repeat by, as notifications have). Each delivery now carries one key on
    every attempt; another delivery has another."""

    class Keyed:
        key = TARGET

        def __init__(self) -> None:
            self.keys: list[tuple[str, str | None]] = []
            self.fail_first = True

        async def send(self, msg: Message) -> SendResult:  # pragma: no cover - keyed
            raise AssertionError("a keyed channel is sent keyed")

        async def send_keyed(self, msg: Message, idempotency_key: str | None) -> SendResult:
            self.keys.append((msg.task, idempotency_key))
            if self.fail_first:
                self.fail_first = False
                return SendResult(ok=False, error="HTTP 502")
            return SendResult(ok=True)

    channel = Keyed()

    async def scenario() -> None:
        h = Harness(sqlite_store, clock, home)
        h.add("story", lambda: "Once.", every="1h", deliver=[TARGET], delivery_backoff=["1m"])
        h.add("other", lambda: "Twice.", every="1h", deliver=[TARGET])
        clock.advance(timedelta(hours=1))
        await h.tick()
        worker = DeliveryWorker(
            sqlite_store, clock, emit=lambda _s, _e: None, channel_factory=lambda _u: channel
        )
        await worker.drain_once()
        await worker.settle(5)
        clock.advance(timedelta(minutes=2))
        await worker.drain_once()
        await worker.settle(5)

    asyncio.run(scenario())
    keys: dict[str, set[str | None]] = {}
    for task, key in channel.keys:
        keys.setdefault(task, set()).add(key)
    retried = next(t for t in keys if sum(1 for k in channel.keys if k[0] == t) == 2)
    assert len(keys[retried]) == 1  # one key on both attempts
    (first,) = keys[retried]
    assert first is not None and first.startswith("agentcron-delivery-")
    assert keys["story"] != keys["other"]


def test_a_split_output_resends_only_the_parts_not_taken_each_under_its_own_key(
    sqlite_store, clock, home: Path
) -> None:
    """A long output goes out as parts (Telegram takes 4,096 characters a post). Split by
    Apprise in one call, one refused part made every part go again on each retry, and
    no part carried an Idempotency-Key (outside-in probe: parts 1-3 and 5-7 arrived
    twice). Each part is now a post of its own with a key of its own, the same on
    every attempt, and a retry starts from the part refused."""
    from e2e_sink import Sink

    lines = [f"line {n:05d} of the story" for n in range(6000)]
    story = "\n".join(lines) + "\nTHE-END-MARKER"

    with Sink() as sink:
        target = sink.url("/story")

        async def scenario() -> None:
            h = Harness(sqlite_store, clock, home)
            h.add("story", lambda: story, every="1h", deliver=[target], delivery_backoff=["1m"])
            clock.advance(timedelta(hours=1))
            await h.tick()
            sink.fail_titled("/story", "[2/", 1)
            worker = DeliveryWorker(sqlite_store, clock, emit=lambda _s, _e: None)
            await worker.drain_once()
            await worker.settle(30)
            clock.advance(timedelta(minutes=2))
            await worker.drain_once()
            await worker.settle(30)

        asyncio.run(scenario())
        posts = [p for p in sink.posts if p.path == "/story"]
    titles = [p.title for p in posts]
    total = len({t for t in titles})
    assert total >= 5, titles  # ~150,000 characters at ~32,000 a post
    # parts 1 and 2 (refused), then 2 again and the rest: part 1 is not sent twice
    assert titles[:3] == [f"story [1/{total}]", f"story [2/{total}]", f"story [2/{total}]"]
    assert titles[3:] == [f"story [{n}/{total}]" for n in range(3, total + 1)]
    accepted = [p for p in posts if p.status == 200]
    assert "".join(str(p.body["message"]) for p in accepted).endswith("THE-END-MARKER")
    keys = [p.key for p in posts]
    assert all(k is not None and k.startswith("agentcron-delivery-") for k in keys)
    assert keys[1] == keys[2]  # the retried part: the same key on both attempts
    assert len(set(keys)) == total  # one key per part


def test_an_output_longer_than_is_delivered_says_where_the_rest_is(
    sqlite_store, clock, home: Path, monkeypatch
) -> None:
    """Outputs past MAX_BODY characters were cut without a word: the story's end never
    arrived and the delivery was recorded done (outside-in probe). The part delivered
    now ends at a line end and says how long the output is and where it is kept."""
    import agentcron.delivery.worker as worker_module

    monkeypatch.setattr(worker_module, "MAX_BODY", 1000)
    channel = Recorder()
    story = "\n".join(f"line {n:04d}" for n in range(400)) + "\nTHE-END-MARKER"

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("story", lambda: story, every="1h", deliver=[TARGET])
        clock.advance(timedelta(hours=1))
        await h.tick()
        worker = DeliveryWorker(
            sqlite_store, clock, emit=lambda _s, _e: None, channel_factory=lambda _u: channel
        )
        await worker.drain_once()
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("story")
    (message,) = channel.sent
    body, note = message.body.rsplit("\n", 1)
    assert body.endswith("line 0099") and "THE-END-MARKER" not in message.body
    size = Path(str(slot.output_path)).stat().st_size
    assert note == (
        f"[… cut here: only the first 1,000 characters are delivered (the output is "
        f"{size:,} bytes); all of it is kept at {slot.output_path}]"
    )
