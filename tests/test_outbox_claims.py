"""Each outbox message is sent by one sender (issue 17): claims on both stores, the
sender that lost its claim, and three senders draining one PostgreSQL outbox.

The store tests run on SQLite and PostgreSQL (skipped, with the reason, where no
server answers; each run gets a schema of its own). The reference outbox in memory
must agree with them, so it runs the same rules too.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentcron.clock import FakeClock
from agentcron.model import Message
from agentcron.notify import MemoryOutbox, OutboxSender, SendResult
from agentcron.notify.outbox import idempotency_key
from agentcron.notify.sender import CLAIM_FOR
from agentcron.store.base import OutboxStore
from agentcron.store.sql import SQLStore
from agentcron.store.sqlite import SQLiteStore
from conftest import PG_DSN, require_pg

T0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)

Opener = Callable[[], OutboxStore]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens store objects on one outbox, as separate nodes would (the memory outbox
    has no nodes: every "open" is the same object)."""
    opened: list[SQLStore] = []
    if request.param == "memory":
        box = MemoryOutbox()
        yield lambda: box
        return
    if request.param == "sqlite":

        def open_sqlite() -> OutboxStore:
            opened.append(SQLiteStore(tmp_path / "agentcron.db"))
            return opened[-1]

        yield open_sqlite
    else:
        require_pg()
        from agentcron.store.postgres import PostgresStore
        from pg_util import drop_schema, new_schema_name

        schema = new_schema_name()

        def open_pg() -> OutboxStore:
            opened.append(PostgresStore(PG_DSN, schema=schema))
            return opened[-1]

        try:
            yield open_pg
        finally:
            for store in opened:
                store.close()
            drop_schema(schema)
        return
    for store in opened:
        store.close()


def message(n: int, task: str = "t") -> Message:
    return Message(
        title=f"title {n}",
        body=f"body {n}",
        task=task,
        event="opened",
        incident_kind="failure",
        severity="failure",
    )


def resent(box: OutboxStore) -> dict[str, int]:
    return {h.channel_key: h.resent for h in box.channel_health()}


# ---- the store contract ------------------------------------------------------------------
def test_two_owners_claim_disjoint_heads(opener: Opener) -> None:
    a, b = opener(), opener()
    for n in range(5):
        a.enqueue(f"chat{n}", f"json://h/{n}", message(n), T0)
        a.enqueue(f"chat{n}", f"json://h/{n}", message(10 + n), T0)  # behind each head
    first = a.claim_outbox("a", T0, T0 + MIN, 2)
    rest = b.claim_outbox("b", T0, T0 + MIN, 10)
    assert [i.message.title for i in first] == ["title 0", "title 1"]
    assert [i.message.title for i in rest] == ["title 2", "title 3", "title 4"]
    # Everything due is claimed: neither owner gets more, not even what is queued
    # behind a claimed head (that would break the channel's order).
    assert a.claim_outbox("a", T0, T0 + MIN, 10) == []
    assert b.claim_outbox("b", T0, T0 + MIN, 10) == []
    # `due` is a look, not a claim: it still shows the heads.
    assert len(a.due(T0, 10)) == 5
    # Once a head is sent, its channel's next message is anyone's.
    assert a.mark_sent(first[0].id, T0, "a")
    (nxt,) = b.claim_outbox("b", T0, T0 + MIN, 10)
    assert (nxt.channel_key, nxt.message.title) == ("chat0", "title 10")
    assert resent(a) == {f"chat{n}": 0 for n in range(5)}


def test_a_lapsed_claim_is_taken_over_and_the_loser_cannot_mark(opener: Opener) -> None:
    a, b = opener(), opener()
    item_id = a.enqueue("chat", "json://h/chat", message(1), T0)
    (mine,) = a.claim_outbox("a", T0, T0 + MIN, 10)
    assert mine.id == item_id and mine.resent == 0
    assert b.claim_outbox("b", T0 + MIN - timedelta(seconds=1), T0 + 2 * MIN, 10) == []
    # a died (or hung) past its claim: b takes the message over, counted as a resend.
    (taken,) = b.claim_outbox("b", T0 + MIN, T0 + 2 * MIN, 10)
    assert (taken.id, taken.resent) == (item_id, 1)
    assert resent(a) == {"chat": 1}
    # a comes back: neither of its marks lands, the row stays b's.
    assert not a.mark_sent(item_id, T0 + MIN, "a")
    assert not a.mark_failed(item_id, "late failure", T0 + 5 * MIN, False, T0 + MIN, "a")
    (still,) = a.due(T0 + MIN, 10)
    assert (still.id, still.attempts, still.last_error) == (item_id, 0, None)
    assert [h.last_ok_at for h in a.channel_health()] == [None]
    assert b.mark_sent(item_id, T0 + MIN, "b")
    assert not b.mark_sent(item_id, T0 + MIN, "b")  # settled once
    assert a.due(T0 + 5 * MIN, 10) == []
    assert [(h.last_ok_at, h.pending, h.resent) for h in a.channel_health()] == [(T0 + MIN, 0, 1)]


def test_a_failure_releases_the_claim_and_a_retry_is_not_a_resend(opener: Opener) -> None:
    a, b = opener(), opener()
    item_id = a.enqueue("chat", "json://h/chat", message(1), T0)
    a.enqueue("chat", "json://h/chat", message(2), T0)
    (head,) = a.claim_outbox("a", T0, T0 + 10 * MIN, 10)
    assert a.mark_failed(head.id, "502", T0 + MIN, False, T0, "a")
    assert b.claim_outbox("b", T0 + MIN - timedelta(seconds=1), T0 + 10 * MIN, 10) == []
    (retry,) = b.claim_outbox("b", T0 + MIN, T0 + 10 * MIN, 10)
    assert (retry.id, retry.attempts, retry.resent, retry.last_error) == (item_id, 1, 0, "502")
    # A permanent failure parks the head and hands the channel's next message out.
    assert b.mark_failed(item_id, "410 gone", None, True, T0 + MIN, "b")
    (after,) = a.claim_outbox("a", T0 + MIN, T0 + 10 * MIN, 10)
    assert after.message.title == "title 2"
    assert [(h.undeliverable, h.resent) for h in a.channel_health()] == [(1, 0)]


def test_a_message_counted_resent_adds_to_its_own_and_its_channels_count(opener: Opener) -> None:
    """``count_resent``: a message that went out again after a send of it that may have
    arrived (cut short by a stop, or unanswered) may be a duplicate, counted once per
    time in its ``resent`` and its channel's, as a taken-over claim is."""
    a = opener()
    one = a.enqueue("chat", "json://h/chat", message(1), T0)
    a.enqueue("chat", "json://h/chat", message(2), T0)
    a.count_resent([one])
    a.count_resent([one, 999_999])  # a message no longer there is passed over
    (head,) = a.claim_outbox("a", T0, T0 + 10 * MIN, 10)
    assert (head.id, head.resent) == (one, 2)
    assert [(h.channel_key, h.resent) for h in a.channel_health()] == [("chat", 2)]


def test_a_retry_after_a_takeover_is_not_a_takeover_again(opener: Opener) -> None:
    """Taken over once (its sender stopped without a word), a message keeps that count,
    but its later retries are plain retries: the sender said "sent again … may arrive
    twice" at every one of them (outside-in probe)."""
    a, b = opener(), opener()
    item_id = a.enqueue("chat", "json://h/chat", message(1), T0)
    (first,) = a.claim_outbox("a", T0, T0 + MIN, 10)
    assert not first.taken_over
    (taken,) = b.claim_outbox("b", T0 + MIN, T0 + 2 * MIN, 10)
    assert (taken.id, taken.resent, taken.taken_over) == (item_id, 1, True)
    assert b.mark_failed(item_id, "connection refused", T0 + 2 * MIN, False, T0 + MIN, "b")
    (retry,) = b.claim_outbox("b", T0 + 2 * MIN, T0 + 3 * MIN, 10)
    assert (retry.id, retry.resent, retry.taken_over) == (item_id, 1, False)
    assert resent(a) == {"chat": 1}


def test_marks_without_an_owner_still_work_for_callers_that_do_not_claim(
    opener: Opener,
) -> None:
    box = opener()
    item_id = box.enqueue("chat", "json://h/chat", message(1), T0)
    box.claim_outbox("a", T0, T0 + MIN, 10)
    assert box.mark_sent(item_id, T0, None)
    assert not box.mark_sent(item_id, T0, None)
    assert not box.mark_failed(item_id, "x", None, True, T0)
    assert not box.mark_sent(999_999, T0)


# ---- senders -----------------------------------------------------------------------------
class CueChannel:
    """Fails while ``failing`` is set, blocks while ``hold`` is clear; records every
    message it was handed (with its idempotency key) and every one it delivered."""

    def __init__(self, key: str = "cue") -> None:
        self.key = key
        self.failing = False
        self.hold = asyncio.Event()
        self.hold.set()
        self.handed: list[tuple[str, str | None]] = []
        self.delivered: list[str] = []

    async def send(self, msg: Message) -> SendResult:
        return await self.send_keyed(msg, None)

    async def send_keyed(self, msg: Message, idempotency_key: str | None) -> SendResult:
        self.handed.append((msg.title, idempotency_key))
        await self.hold.wait()
        if self.failing:
            return SendResult(ok=False, error="503 on cue")
        self.delivered.append(msg.title)
        return SendResult(ok=True)


def test_a_failure_on_cue_keeps_the_order_and_backs_off(opener: Opener) -> None:
    box = opener()
    clock = FakeClock(T0)
    channel = CueChannel()
    for n in range(3):
        box.enqueue("cue", "cue://", message(n), T0)
    sender = OutboxSender(box, channel_factory=lambda _url: channel, clock=clock, owner="n1")
    channel.failing = True
    assert asyncio.run(sender.drain_once()) == 0
    assert [t for t, _ in channel.handed] == ["title 0"]  # only the head was tried
    (head,) = box.due(T0 + timedelta(seconds=5), 10)
    assert (head.message.title, head.attempts, head.next_attempt_at) == (
        "title 0",
        1,
        T0 + timedelta(seconds=5),
    )
    channel.failing = False
    clock.advance(timedelta(seconds=4))
    assert asyncio.run(sender.drain_once()) == 0  # still backing off, for every sender
    other = OutboxSender(box, channel_factory=lambda _url: channel, clock=clock, owner="n2")
    assert asyncio.run(other.drain_once()) == 0
    clock.advance(timedelta(seconds=1))
    assert asyncio.run(other.drain_once()) == 3
    assert channel.delivered == ["title 0", "title 1", "title 2"]
    assert [h.resent for h in box.channel_health()] == [0]


def test_a_sender_that_dies_mid_send_is_taken_over_with_the_same_key(opener: Opener) -> None:
    """The one duplicate window left: the message went out, the sender died before
    recording it. The resend waits for the claim to lapse, is counted, and carries
    the same idempotency key."""
    box = opener()
    clock = FakeClock(T0)
    channel = CueChannel()
    item_id = box.enqueue("cue", "cue://", message(1), T0)
    (stored,) = box.due(T0, 10)
    dying = OutboxSender(box, channel_factory=lambda _url: channel, clock=clock, owner="dying")
    taker = OutboxSender(box, channel_factory=lambda _url: channel, clock=clock, owner="taker")

    async def scenario() -> None:
        channel.hold.clear()  # the send hangs ...
        task = asyncio.create_task(dying.drain_once())
        while not channel.handed:
            await asyncio.sleep(0)
        task.cancel()  # ... and the process dies with it
        with pytest.raises(asyncio.CancelledError):
            await task
        channel.hold.set()
        assert await taker.drain_once() == 0  # the claim stands
        clock.advance(CLAIM_FOR - timedelta(seconds=1))
        assert await taker.drain_once() == 0
        clock.advance(timedelta(seconds=1))
        assert await taker.drain_once() == 1

    asyncio.run(scenario())
    key = idempotency_key(stored)
    assert channel.handed == [("title 1", key), ("title 1", key)]
    assert key.startswith(f"agentcron-{item_id}-")
    assert channel.delivered == ["title 1"]
    assert [(h.pending, h.resent) for h in box.channel_health()] == [(0, 1)]


def test_the_run_behind_a_head_is_taken_whole_or_not_at_all(opener: Opener) -> None:
    """What a digest takes with its head (agentcron.notify.digest): the channel's next
    messages in order, up to a live claim; nothing below ``at_least``."""
    a, b = opener(), opener()
    ids = [a.enqueue("chat", "json://h/chat", message(n), T0) for n in range(6)]
    a.enqueue("other", "json://h/other", message(99), T0)
    (head, _other) = a.claim_outbox("a", T0, T0 + 3 * MIN, 10)
    assert head.id == ids[0]
    assert a.claim_outbox_behind(head, "a", T0, T0 + 3 * MIN, 10, at_least=6) == []
    assert b.claim_outbox("b", T0, T0 + 3 * MIN, 10) == []  # nothing was taken by that
    run = a.claim_outbox_behind(head, "a", T0, T0 + 3 * MIN, 3, at_least=2)
    assert [i.id for i in run] == ids[1:4]  # the limit, in order; not the other channel
    # a live claim ends the run: the digest behind it stops short, keeping the order
    rest = b.claim_outbox_behind(head, "b", T0, T0 + 3 * MIN, 10, at_least=1)
    assert rest == []
    assert a.mark_sent(head.id, T0, "a")
    # lapsed claims are taken over and counted, as a lapsed head is
    later = T0 + 4 * MIN
    (head2,) = [i for i in b.claim_outbox("b", later, later + 3 * MIN, 10) if i.id in ids]
    assert head2.id == ids[1] and head2.taken_over
    run2 = b.claim_outbox_behind(head2, "b", later, later + 3 * MIN, 10, at_least=1)
    assert [i.id for i in run2] == ids[2:]
    assert [i.taken_over for i in run2] == [True, True, False, False]
    assert resent(b)["chat"] == 3  # the head and the two behind it


def test_idempotency_keys_differ_between_rows_and_outboxes() -> None:
    one, two = MemoryOutbox(), MemoryOutbox()
    a = one.enqueue("chat", "json://h", message(1), T0)
    one.enqueue("chat", "json://h", message(2), T0)
    two.enqueue("chat", "json://h", message(3), T0)  # the same id in another outbox
    keys = [idempotency_key(i) for i, _ in [*one.items(), *two.items()]]
    assert len(set(keys)) == 3
    assert all(k.startswith("agentcron-") for k in keys)
    (first, _), *_ = one.items()
    assert first.id == a and idempotency_key(first) == keys[0]


# ---- three nodes on PostgreSQL -------------------------------------------------------------
class Counting:
    """A channel shared by every sender: counts each message it delivers."""

    def __init__(self) -> None:
        self.key = "counting"
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.order: dict[str, list[int]] = {}
        self.posts = 0

    async def send(self, msg: Message) -> SendResult:
        await asyncio.sleep(0.001)  # let the other senders interleave
        with self.lock:
            self.posts += 1
            # a digest stands for its members: each of their lines is counted
            titles = (
                [ln[2:].split(":")[0] for ln in msg.body.splitlines() if ln.startswith("• ")]
                if msg.event == "digest"
                else [msg.title]
            )
            for title in titles:
                self.counts[title] += 1
                self.order.setdefault(title_task(title), []).append(int(title.split()[1]))
        return SendResult(ok=True)


def title_task(title: str) -> str:
    return f"chat{int(title.split()[1]) % 10}"


@pytest.mark.postgres
@pytest.mark.parametrize("digest_at", [None, 3], ids=["one-by-one", "digests"])
def test_three_senders_on_postgres_send_each_of_300_messages_once(digest_at: int | None) -> None:
    """Each message reaches its channel once and in order, sent alone or in a digest
    (:mod:`agentcron.notify.digest`), while messages keep coming in the digest run."""
    require_pg()
    from agentcron.store.postgres import PostgresStore
    from pg_util import fresh_schema

    with fresh_schema() as schema:
        setup = PostgresStore(PG_DSN, schema=schema)
        written = threading.Event()

        def write(first: int, last: int) -> None:
            for n in range(first, last):
                setup.enqueue(f"chat{n % 10}", f"chat://{n % 10}", message(n, f"chat{n % 10}"), T0)

        write(0, 100 if digest_at else 300)
        channel = Counting()
        clock = FakeClock(T0)  # nothing lapses: any repeat would be a claim failing
        errors: list[BaseException] = []
        start = threading.Barrier(4 if digest_at else 3)

        def writer() -> None:
            try:
                start.wait()
                for first in range(100, 300, 20):  # a flood goes on while it is sent
                    write(first, first + 20)
                    time.sleep(0.005)
            except BaseException as exc:
                errors.append(exc)
            finally:
                written.set()

        def node(name: str) -> None:
            store = PostgresStore(PG_DSN, schema=schema)
            try:
                sender = OutboxSender(
                    store,
                    channel_factory=lambda _url: channel,
                    clock=clock,
                    owner=name,
                    batch=4,
                    digest_at=digest_at,
                    posts_per_minute=None,  # a claims test: no bound on posts a minute
                )
                start.wait()
                for _ in range(2000):
                    done = written.is_set()
                    if not asyncio.run(sender.drain_once()):
                        if done and not any(h.pending for h in store.channel_health()):
                            return
                        time.sleep(0.002)
            except BaseException as exc:
                errors.append(exc)
            finally:
                store.close()

        threads = [threading.Thread(target=node, args=(f"n{i}",)) for i in range(3)]
        if digest_at:
            threads.append(threading.Thread(target=writer))
        else:
            written.set()
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        try:
            assert not errors, errors
            assert sum(channel.counts.values()) == 300
            assert set(channel.counts.values()) == {1}
            # Three senders, and still each channel heard its messages in order.
            assert all(sent == sorted(sent) for sent in channel.order.values())
            health = setup.channel_health()
            assert [(h.pending, h.resent) for h in health] == [(0, 0)] * 10
            if digest_at:
                assert channel.posts < 300  # some went out together
        finally:
            setup.close()


def test_a_dead_nodes_claims_are_released_at_once(opener: Opener) -> None:
    """A daemon restarted after kill -9 must not wait out its predecessor's 3-minute
    claims (the soak saw 38 messages held behind one): they lapse at once, and the
    take-over counts as a possible resend."""
    a, b = opener(), opener()
    if not isinstance(a, SQLStore):
        pytest.skip("the memory outbox has no nodes")
    first = a.enqueue("chat", "json://h/chat", message(1), T0)
    a.enqueue("chat", "json://h/chat", message(2), T0)
    (mine,) = a.claim_outbox("dead-node", T0, T0 + 3 * MIN, 10)
    assert mine.id == first
    assert b.claim_outbox("new-node", T0, T0 + 3 * MIN, 10) == []  # held by the dead one
    assert b.release_claims(["other-node"], T0) == 0  # only the dead node's claims
    assert b.release_claims(["dead-node"], T0) == 1
    (taken,) = b.claim_outbox("new-node", T0, T0 + 3 * MIN, 10)
    assert (taken.id, taken.resent) == (first, 1)
    assert b.release_claims(["dead-node"], T0) == 0  # nothing of it left


def test_health_json_counts_each_channels_messages_sent_again(tmp_path: Path) -> None:
    """`resent` (messages that may have arrived twice) was only a metric: `health
    --json`, the API and the dashboard now show it per channel."""
    import json

    from typer.testing import CliRunner

    from agentcron.interfaces.cli import app

    home = tmp_path / "home"
    home.mkdir()
    store = SQLiteStore(home / "agentcron.db")
    try:
        store.enqueue("chat", "json://h/chat", message(1), T0)
        store.claim_outbox("dead", T0, T0 + MIN, 10)
        (taken,) = store.claim_outbox("alive", T0 + 2 * MIN, T0 + 5 * MIN, 10)
        assert taken.taken_over
    finally:
        store.close()
    result = CliRunner().invoke(app, ["--home", str(home), "health", "--json"])
    (channel,) = json.loads(result.stdout)["channels"]
    assert (channel["channel"], channel["resent"]) == ("chat", 1), channel
