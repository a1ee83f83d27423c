"""A flood of messages for one channel goes out as digests (agentcron.notify.digest):
every message is in one post, once and in order, and none is lost when the channel
fails, refuses the digest, or the sender is stopped."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentcron.clock import FakeClock
from agentcron.model import Message, OutboxItem, Severity
from agentcron.notify import MemoryOutbox, OutboxSender, SendResult
from agentcron.notify.digest import (
    DIGEST_AT,
    DIGEST_CHARS,
    DIGEST_MOST,
    LINE_CHARS,
    digest,
    digest_key,
)
from agentcron.store.base import OutboxStore
from agentcron.store.sqlite import SQLiteStore

T0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
NO_ANSWER = SendResult(ok=False, error="no answer within 24s: the service may …")


def message(n: int, severity: Severity = "failure", body: str = "") -> Message:
    """Each different (HTTP 4nn): messages alike but for the task's name are one line."""
    return Message(
        title=f"✖ task{n} failed",
        body=body or f"task{n} failed: HTTP {400 + n}. Retrying will not help.\n\nLast lines:\nx",
        task=f"task{n}",
        event="opened",
        incident_kind="failure",
        severity=severity,
    )


def item(n: int, severity: Severity = "failure") -> OutboxItem:
    return OutboxItem(n, "chat", "chat://x", message(n, severity), T0 + timedelta(seconds=n))


class Recording:
    """A channel that answers with the scripted results in turn (then ok) and keeps
    each post it took."""

    def __init__(self, script: list[SendResult] | None = None) -> None:
        self.key = "chat"
        self.script = list(script or [])
        self.posts: list[Message] = []
        self.tries = 0

    async def send(self, msg: Message) -> SendResult:
        self.tries += 1
        result = self.script.pop(0) if self.script else SendResult(ok=True)
        if result.ok:
            self.posts.append(msg)
        return result

    def heads(self) -> list[str]:
        """Each post's title up to its first colon ("12 messages at once", "✖ task1 failed")."""
        return [p.title.split(":")[0] for p in self.posts]

    def told(self) -> list[int]:
        """The message numbers the posts carried, in the order they arrived."""
        numbers: list[int] = []
        for post in self.posts:
            text = post.body if post.event == "digest" else post.title
            numbers += [int(n) for n in re.findall(r"✖ task(\d+) failed", text)]
        return numbers


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> OutboxStore:
    if request.param == "memory":
        return MemoryOutbox()
    return SQLiteStore(tmp_path / "agentcron.db")


def fill(store: OutboxStore, first: int, last: int, at: datetime = T0) -> None:
    for n in range(first, last):
        store.enqueue("chat", "chat://x", message(n), at)


def sender(
    store: OutboxStore, channel: Recording, clock: FakeClock, per_minute: int | None = None
) -> OutboxSender:
    """A sender to ``channel``; with no bound on its posts a minute unless ``per_minute``
    (these tests are of what a digest holds; the bound has its own)."""
    return OutboxSender(
        store, channel_factory=lambda _url: channel, clock=clock, posts_per_minute=per_minute
    )


def unsent(store: OutboxStore) -> int:
    return sum(h.pending for h in store.channel_health())


# ---- the post itself ---------------------------------------------------------------------


def test_a_digest_counts_its_messages_by_kind_and_lists_them_oldest_first() -> None:
    items = [item(1), item(2, "recovery"), item(3, "warning"), item(4)]
    post = digest(items)
    assert post.title == "4 messages at once: 2 failures, 1 warning, 1 recovery"
    assert post.severity == "failure" and post.event == "digest"
    lines = [ln for ln in post.body.splitlines() if ln.startswith("• ")]
    # each message's title and the first line of its body: the whole story in one line
    assert lines[0] == "• ✖ task1 failed: HTTP 401. Retrying will not help."
    assert lines[3] == "• ✖ task4 failed: HTTP 404. Retrying will not help."
    # a body that begins with what its title says is not said twice
    same = OutboxItem(9, "chat", "u", message(9, body="✖ task9 failed: HTTP 401.\n\nx"), T0)
    assert "• ✖ task9 failed: HTTP 401." in digest([same]).body.splitlines()
    assert [re.findall(r"task(\d+)", ln)[0] for ln in lines] == ["1", "2", "3", "4"]
    assert "agentcron incidents" in post.body and "more" not in post.body


def test_a_digest_too_long_to_list_shows_the_failures_and_counts_the_rest() -> None:
    items = [item(n, "recovery" if n % 2 else "failure") for n in range(1, 201)]
    post = digest(items)
    assert len(post.body) <= DIGEST_CHARS
    shown = [int(n) for n in re.findall(r"• ✖ task(\d+)", post.body)]
    assert shown and all(n % 2 == 0 for n in shown)  # failures before recoveries
    assert shown == sorted(shown)  # and in time order
    more = re.search(r"… and (\d+) more \((.+)\)\.", post.body)
    assert more is not None, post.body
    assert int(more.group(1)) == 200 - len(shown)
    assert more.group(2) == f"{100 - len(shown)} failures, 100 recoveries"


def test_a_digest_fits_the_room_its_channel_gives_and_long_lines_are_cut() -> None:
    items = [item(n) for n in range(1, 30)]
    assert len(digest(items, room=900).body) <= 900
    long = OutboxItem(1, "chat", "u", message(1, body="y" * 5_000), T0)
    (line,) = [ln for ln in digest([long]).body.splitlines() if ln.startswith("• ")]
    assert len(line) == LINE_CHARS and line.endswith("…")


def test_a_name_that_ends_a_sentence_is_still_the_tasks() -> None:
    """Twelve tasks whose failures end with their own name ("boom error in d07.") were
    listed one per line in every digest (outside-in probe)."""
    alike = [
        OutboxItem(
            n,
            "chat",
            "u",
            replace(
                message(n, body=f"✖ d{n:02} failed: boom in d{n:02}. Retrying will not help."),
                title=f"✖ d{n:02} failed",
                task=f"d{n:02}",
            ),
            T0,
        )
        for n in range(1, 13)
    ]
    lines = [ln for ln in digest(alike).body.splitlines() if ln.startswith("• ")]
    names = ", ".join(f"d{n:02}" for n in range(2, 13))
    assert lines == [
        f"• ✖ d01 failed: boom in d01. Retrying will not help. The same for {names}."
    ], lines
    # a longer name that begins with it (a task d01.backup) is still not d01's: these
    # two name other tasks, so they are not alike
    other = [
        OutboxItem(
            20 + n,
            "c",
            "u",
            replace(
                message(20 + n, body=f"✖ d{n} failed: see d{n}.backup."),
                title=f"✖ d{n} failed",
                task=f"d{n}",
            ),
            T0,
        )
        for n in (1, 2)
    ]
    lines = [ln for ln in digest(other).body.splitlines() if ln.startswith("• ")]
    assert len(lines) == 2, lines


def test_messages_alike_but_for_the_task_are_one_line_naming_each() -> None:
    """Forty tasks refused by one expired key: one line, not forty."""
    alike = [
        OutboxItem(
            n,
            "chat",
            "u",
            message(n, body=f"✖ job-{n} failed: HTTP 401. Then run `agentcron trigger job-{n}`."),
            T0,
        )
        for n in range(40)
    ]
    alike = [
        replace(i, message=replace(i.message, title=f"✖ job-{i.id} failed", task=f"job-{i.id}"))
        for i in alike
    ]
    other = OutboxItem(41, "chat", "u", message(41, "recovery"), T0)
    lines = [ln for ln in digest([*alike, other]).body.splitlines() if ln.startswith("• ")]
    names = ", ".join(sorted(f"job-{n}" for n in range(1, 40)))  # sorted, to find one
    assert lines == [
        f"• ✖ job-0 failed: HTTP 401. Then run `agentcron trigger job-0`. The same for {names}.",
        "• ✖ task41 failed: HTTP 441. Retrying will not help.",
    ]
    # a name that is part of another word is not taken for the task's
    a = OutboxItem(
        1,
        "c",
        "u",
        replace(message(1, body="✖ a failed: a bad answer."), title="✖ a failed", task="a"),
        T0,
    )
    b = OutboxItem(
        2,
        "c",
        "u",
        replace(message(2, body="✖ b failed: a bad answer."), title="✖ b failed", task="b"),
        T0,
    )
    lines = [ln for ln in digest([a, b]).body.splitlines() if ln.startswith("• ")]
    assert lines == ["• ✖ a failed: a bad answer.", "• ✖ b failed: a bad answer."]


def test_a_digests_key_is_its_members_and_differs_from_any_other() -> None:
    ten = [item(n) for n in range(1, 11)]
    assert digest_key(ten) == digest_key(list(ten))
    assert digest_key(ten) != digest_key(ten[:9])
    assert digest_key(ten[:1]) != digest_key(ten[1:2])


# ---- the sender ---------------------------------------------------------------------------


def test_fewer_than_ten_waiting_go_one_by_one(store: OutboxStore) -> None:
    fill(store, 1, DIGEST_AT)
    channel = Recording()
    assert asyncio.run(sender(store, channel, FakeClock(T0)).drain_once()) == DIGEST_AT - 1
    assert [p.event for p in channel.posts] == ["opened"] * (DIGEST_AT - 1)
    assert channel.told() == list(range(1, DIGEST_AT))


def test_a_flood_goes_out_in_digests_each_message_once_and_in_order(store: OutboxStore) -> None:
    total = DIGEST_MOST + 50
    fill(store, 1, total + 1)
    channel = Recording()
    assert asyncio.run(sender(store, channel, FakeClock(T0)).drain_once()) == total
    assert channel.heads() == [
        f"{DIGEST_MOST} messages at once",
        "50 messages at once",
    ]
    # every member is marked sent: nothing is left to go out again
    assert unsent(store) == 0
    assert asyncio.run(sender(store, channel, FakeClock(T0)).drain_once()) == 0
    assert len(channel.posts) == 2
    # each post lists as many as fit, oldest first, and counts the rest
    for post, held in zip(channel.posts, [DIGEST_MOST, 50], strict=True):
        listed = len(re.findall(r"^• ", post.body, re.MULTILINE))
        more = re.search(r"… and (\d+) more", post.body)
        assert listed + (int(more.group(1)) if more else 0) == held
        assert len(post.body) <= DIGEST_CHARS
    told = channel.told()
    assert told == sorted(told) and told[0] == 1


def test_a_digest_that_fails_for_now_sends_its_head_alone_then_the_rest_as_one(
    store: OutboxStore,
) -> None:
    """Apprise cannot tell a service that is down from one that refuses this post: after
    a failed digest the head goes alone; through, the rest go as a digest again."""
    fill(store, 1, 13)
    clock = FakeClock(T0)
    channel = Recording([SendResult(ok=False, error="HTTP 503")])
    s = sender(store, channel, clock)
    assert asyncio.run(s.drain_once()) == 0
    assert channel.tries == 1 and unsent(store) == 12
    fill(store, 13, 16, clock.now())
    assert asyncio.run(s.drain_once()) == 0  # the head waits out its backoff
    clock.advance(timedelta(seconds=6))
    assert asyncio.run(s.drain_once()) == 15
    assert channel.heads() == [
        "✖ task1 failed",
        "14 messages at once",
    ]
    assert channel.told() == list(range(1, 16))
    assert unsent(store) == 0


def test_a_channel_that_rate_limits_every_other_post_still_gets_digests(
    store: OutboxStore,
) -> None:
    """Outside-in probe: a service answering 429 to every other post took the lone head
    between two refused digests, and the channel got its sixty messages one post each,
    six minutes for all. A 429 asks for fewer posts, not smaller ones: the head is not
    sent alone for it, and the digest goes again after the backoff."""
    fill(store, 1, 30)
    clock = FakeClock(T0)

    class EveryOther(Recording):
        calls = 0

        async def send(self, msg: Message) -> SendResult:
            self.calls += 1
            if self.calls % 2:
                self.tries += 1
                return SendResult(
                    ok=False, error="Failed to send JSON POST notification: error=429."
                )
            return await super().send(msg)

    channel = EveryOther()
    s = sender(store, channel, clock)
    for _ in range(4):
        asyncio.run(s.drain_once())
        clock.advance(timedelta(seconds=20))
    assert channel.told() == list(range(1, 30))
    assert channel.heads() == ["29 messages at once"], channel.heads()
    assert unsent(store) == 0


def test_a_channel_that_takes_one_message_but_not_a_digest_gets_them_one_by_one(
    store: OutboxStore,
) -> None:
    """A 400 for a post too long is answered again at every retry: the refused digest
    held the channel for good (outside-in probe). Refused twice, with a message gone
    through alone between, digests stop for that channel and none is lost."""
    fill(store, 1, 14)
    clock = FakeClock(T0)

    class RefusesLongPosts(Recording):
        async def send(self, msg: Message) -> SendResult:
            if msg.event == "digest":
                self.tries += 1
                return SendResult(ok=False, error="Bad Request - body too long. error=400")
            return await super().send(msg)

    channel = RefusesLongPosts()
    s = sender(store, channel, clock)
    for _ in range(4):
        asyncio.run(s.drain_once())
        clock.advance(timedelta(seconds=6))
    assert channel.told() == list(range(1, 14))
    assert all(p.event != "digest" for p in channel.posts)
    assert channel.tries == 13 + 2  # two digests refused, then one by one
    assert unsent(store) == 0


def test_a_digest_refused_for_good_sends_each_on_its_own_and_loses_none(
    store: OutboxStore,
) -> None:
    fill(store, 1, 13)
    channel = Recording([SendResult(ok=False, permanent=True, error="HTTP 400: too long")])
    s = sender(store, channel, FakeClock(T0))
    assert asyncio.run(s.drain_once()) == 0
    assert unsent(store) == 12  # none given up: the refusal was of the digest
    assert asyncio.run(s.drain_once()) == 12
    assert [p.event for p in channel.posts] == ["opened"] * 12
    assert channel.told() == list(range(1, 13))


def test_a_stopping_sender_sends_no_digest_of_the_backlog(store: OutboxStore) -> None:
    fill(store, 1, 13)
    clock = FakeClock(T0)
    channel = Recording()
    s = sender(store, channel, clock)
    clock.advance(timedelta(seconds=1))
    s.stopping_since = clock.now()
    store.enqueue("other", "chat://x", message(99), clock.now())
    assert asyncio.run(s.drain_once()) == 1  # only what the stop wrote
    assert channel.told() == [99]
    assert unsent(store) == 12


def test_a_sender_without_digests_sends_each(store: OutboxStore) -> None:
    fill(store, 1, 31)
    channel = Recording()
    s = OutboxSender(
        store,
        channel_factory=lambda _u: channel,
        clock=FakeClock(T0),
        digest_at=None,
        posts_per_minute=None,
    )
    assert asyncio.run(s.drain_once()) == 30
    assert len(channel.posts) == 30
    with pytest.raises(ValueError, match="digest_at"):
        OutboxSender(store, digest_at=1)


def test_a_late_digest_says_how_late_its_oldest_message_is(store: OutboxStore) -> None:
    fill(store, 1, 13)
    clock = FakeClock(T0 + timedelta(minutes=14))
    channel = Recording()
    asyncio.run(sender(store, channel, clock).drain_once())
    (post,) = channel.posts
    assert post.body.endswith(
        "(sent 14 min after the oldest was written: they could not go out sooner)"
    )


class Keyed(Recording):
    def __init__(self, script: list[SendResult] | None = None) -> None:
        super().__init__(script)
        self.keys: list[str] = []

    async def send_keyed(self, msg: Message, key: str) -> SendResult:
        self.keys.append(key)
        return await self.send(msg)


def test_a_retried_digest_carries_the_same_key(store: OutboxStore) -> None:
    fill(store, 1, 13)
    clock = FakeClock(T0)
    channel = Keyed([SendResult(ok=False, error="no answer within 24s")])
    s = OutboxSender(store, channel_factory=lambda _u: channel, clock=clock)
    asyncio.run(s.drain_once())
    clock.advance(timedelta(seconds=6))
    asyncio.run(s.drain_once())
    assert len(channel.keys) == 2 and channel.keys[0] == channel.keys[1]
    assert channel.told() == list(range(1, 13))


def test_a_digest_that_may_have_arrived_goes_again_as_it_was(store: OutboxStore) -> None:
    """No answer in time: the retry had the messages written since and another key, so
    a receiver could not drop the repeat, and the new ones hid in "… and N more"
    (outside-in probe). It goes again with the same members and key; the new ones
    follow in a post of their own."""
    fill(store, 1, 13)
    clock = FakeClock(T0)
    channel = Keyed([NO_ANSWER])
    s = OutboxSender(store, channel_factory=lambda _u: channel, clock=clock)
    asyncio.run(s.drain_once())
    fill(store, 13, 25, clock.now())
    clock.advance(timedelta(seconds=6))
    assert asyncio.run(s.drain_once()) == 24
    assert channel.keys[0] == channel.keys[1] != channel.keys[2]
    assert channel.heads() == [
        "12 messages at once",
        "12 messages at once",
    ]
    assert channel.told() == list(range(1, 25))


def test_a_digest_a_stop_cut_short_goes_again_as_it_was_in_the_last_drain(
    store: OutboxStore,
) -> None:
    """A stop during a slow digest sent its head alone with another key and the rest at
    the next start: every message told twice, none counted (outside-in probe). The
    stop's last drain sends the same post with the same key, which a channel still
    sending it recognises (it is not posted twice)."""
    fill(store, 1, 13)
    clock = FakeClock(T0)
    release = asyncio.Event()

    class Slow(Keyed):
        async def send(self, msg: Message) -> SendResult:
            if not self.keys[:-1]:  # the first send hangs until the stop cuts it
                await release.wait()
            return await super().send(msg)

    channel = Slow()
    s = OutboxSender(store, channel_factory=lambda _u: channel, clock=clock, owner="me")

    async def stop_during_the_send() -> int:
        first = asyncio.create_task(s.drain_once())
        while not channel.keys:
            await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        s.stopping_since = clock.now()
        store.unclaim_outbox(s.cut_short(), "me")  # as the daemon's last drain does
        return await s.drain_once(written_since=s.stopping_since)

    assert asyncio.run(stop_during_the_send()) == 12
    assert len(channel.keys) == 2 and channel.keys[0] == channel.keys[1]
    (post,) = channel.posts
    assert post.title.startswith("12 messages at once") and unsent(store) == 0


def test_each_tasks_latest_news_is_listed_before_what_it_replaced() -> None:
    """Failures first hid the recoveries that ended them: at 2 a.m. eight healthy tasks
    read as broken (outside-in probe)."""
    failed = [OutboxItem(n, "c", "u", message(n), T0) for n in range(1, 30)]
    back = [
        OutboxItem(
            100 + n,
            "c",
            "u",
            replace(
                message(n, "recovery", body=f"✔ task{n} recovered after 1 retry."),
                title=f"✔ task{n} recovered",
            ),
            T0,
        )
        for n in range(1, 9)
    ]
    for room in (600, 1_200, 3_000):
        post = digest([*failed, *back], room=room)
        shown = [int(n) for n in re.findall(r"• ✖ task(\d+) failed", post.body)]
        assert shown, post.body
        if any(n <= 8 for n in shown):  # a failure that is over is told with its end
            assert "✔ task1 recovered after 1 retry. The same for task2, " in post.body
    # with room for all but some, the failures still open and the recoveries are
    # listed first; what is left out is of the failures the recoveries ended
    post = digest([*failed, *back], room=1_650)
    shown = [int(n) for n in re.findall(r"• ✖ task(\d+) failed", post.body)]
    assert "✔ task1 recovered" in post.body and set(range(9, 30)) <= set(shown), post.body
    assert "… and " in post.body and "recoveries" not in post.body.splitlines()[-2]


def test_a_digest_fits_the_post_its_channel_takes(store: OutboxStore) -> None:
    """Discord takes 2,000 characters: a digest of 3,000 was refused there."""
    from agentcron.notify.channels import AppriseChannel

    room = AppriseChannel("discord://1234/abcd").post_room(message(1))
    assert room is not None and 1_500 < room < 2_000
    fill(store, 1, 60)

    class Sized(Recording):
        def post_room(self, msg: Message) -> int:
            return 1_000

    channel = Sized()
    asyncio.run(sender(store, channel, FakeClock(T0)).drain_once())
    (post,) = channel.posts
    assert len(post.body) <= 1_000 and "… and " in post.body


def test_a_channel_gets_ten_posts_a_minute_and_what_comes_beyond_goes_together(
    store: OutboxStore,
) -> None:
    """Sent as they came, 200 tasks failing over half a minute made 200 posts on a
    channel that was never behind (outside-in probe). Ten a minute go as they come;
    beyond, they wait and go as one digest when the minute allows."""
    clock = FakeClock(T0)
    channel = Recording()
    s = sender(store, channel, clock, per_minute=10)
    for n in range(1, 41):  # one every second: never ten waiting at once
        store.enqueue("chat", "chat://x", message(n), clock.now())
        asyncio.run(s.drain_once())
        clock.advance(timedelta(seconds=1))
    assert len(channel.posts) == 10 and unsent(store) == 30
    clock.advance(timedelta(seconds=21))  # a minute after the first post
    assert asyncio.run(s.drain_once()) == 30
    assert len(channel.posts) == 11 and channel.posts[-1].title.startswith("30 messages")
    assert channel.told() == list(range(1, 41))
    # a stop's last drain is not held back: what the stop wrote goes out
    for n in range(41, 52):
        store.enqueue("chat", "chat://x", message(n), clock.now())
    clock.advance(timedelta(seconds=1))
    s.stopping_since = clock.now() - timedelta(seconds=1)
    assert asyncio.run(s.drain_once()) == 11
    with pytest.raises(ValueError, match="posts_per_minute"):
        OutboxSender(store, posts_per_minute=0)


def test_a_message_that_may_have_arrived_alone_goes_again_alone(store: OutboxStore) -> None:
    """Sent alone with no answer, it went again as the head of a digest under another
    key: a service that had taken it showed it three times (outside-in probe)."""
    fill(store, 1, 2)
    clock = FakeClock(T0)
    channel = Keyed([NO_ANSWER])
    s = OutboxSender(store, channel_factory=lambda _u: channel, clock=clock)
    asyncio.run(s.drain_once())
    fill(store, 2, 14, clock.now())
    clock.advance(timedelta(seconds=6))
    assert asyncio.run(s.drain_once()) == 13
    assert channel.keys[0] == channel.keys[1]  # alone, as itself
    assert channel.heads() == [
        "✖ task1 failed",
        "12 messages at once",
    ]
    assert channel.told() == list(range(1, 14))


def test_the_next_start_sends_a_digest_that_may_have_arrived_as_it_was(
    store: OutboxStore,
) -> None:
    """Its members were kept in memory only: a new process built a bigger digest under a
    new key, and the service showed all of them again (outside-in probe). The size is
    kept on its first message."""
    fill(store, 1, 13)
    clock = FakeClock(T0)
    first = Keyed([NO_ANSWER])
    asyncio.run(OutboxSender(store, channel_factory=lambda _u: first, clock=clock).drain_once())
    fill(store, 13, 17, clock.now())
    clock.advance(timedelta(seconds=6))
    again = Keyed()  # the next start: a new sender and channel
    assert (
        asyncio.run(OutboxSender(store, channel_factory=lambda _u: again, clock=clock).drain_once())
        == 16
    )
    assert again.keys[0] == first.keys[0]
    assert again.heads() == [
        "12 messages at once",
        "✖ task13 failed",
        "✖ task14 failed",
        "✖ task15 failed",
        "✖ task16 failed",
    ]
    health = {h.channel_key: h for h in store.channel_health()}["chat"]
    assert health.pending == 0


def _task_message(task: str, title: str, body: str, severity: Severity = "failure") -> Message:
    return Message(
        title=title, body=body, task=task, event="e", incident_kind="failure", severity=severity
    )


def test_a_tasks_news_keeps_its_order_in_the_lines_alike() -> None:
    """A second wave of failures folded into the first's line read, oldest first, as two
    recoveries in a row; a task repeating itself was "the same for" itself (probe)."""

    def fail(t: str) -> Message:
        return _task_message(t, f"✖ {t} failed", f"✖ {t} failed: boom")

    def back(t: str) -> Message:
        return _task_message(t, f"✔ {t} recovered", f"✔ {t} recovered.", "recovery")

    wave = [fail("a"), fail("b"), back("a"), back("b"), fail("a"), fail("b"), fail("b")]
    items = [OutboxItem(i, "c", "u", m, T0) for i, m in enumerate(wave, start=1)]
    lines = [ln for ln in digest(items).body.splitlines() if ln.startswith("• ")]
    assert lines == [
        "• ✖ a failed: boom. The same for b.",
        "• ✔ a recovered. The same for b.",
        "• ✖ a failed: boom",
        "• ✖ b failed: boom",  # b failed twice more: told twice, not "the same for b"
        "• ✖ b failed: boom",
    ], lines


def test_a_report_of_runs_that_did_not_run_keeps_its_tasks_in_its_line() -> None:
    report = _task_message(
        "",
        "⚠ 96 runs of 2 tasks did not run",
        "⚠ 96 runs of 2 tasks did not run (due between 05:22 and 05:40 UTC):\n"
        "• a: 90 missed — the daemon was down\n• b: 6 missed — the daemon was down",
        "warning",
    )
    (line,) = [
        ln
        for ln in digest([OutboxItem(1, "c", "u", report, T0)]).body.splitlines()
        if ln.startswith("• ")
    ]
    assert line == (
        "• ⚠ 96 runs of 2 tasks did not run (due between 05:22 and 05:40 UTC): a: 90 "
        "missed — the daemon was down; b: 6 missed — the daemon was down."
    )


def test_a_channel_of_a_few_characters_gets_no_digest(store: OutboxStore) -> None:
    """An SMS service's 160 characters made a digest of several parts."""
    fill(store, 1, 13)

    class Sms(Recording):
        def post_room(self, msg: Message) -> int:
            return -140

    channel = Sms()
    assert asyncio.run(sender(store, channel, FakeClock(T0)).drain_once()) == 12
    assert all(p.event != "digest" for p in channel.posts) and channel.told() == list(range(1, 13))


def test_the_messages_of_one_moment_are_let_gather_and_go_as_one() -> None:
    """Thirty recoveries at once went as four posts, the first alone: the sender woke at
    the first message written while the rest were still being written (probe)."""
    store = MemoryOutbox()
    channel = Recording()
    s = OutboxSender(store, channel_factory=lambda _u: channel, posts_per_minute=None)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(s.run_forever(stop, interval=60))
        await asyncio.sleep(0.05)  # its first look, at start, found nothing
        for n in range(1, 13):  # written over a quarter of a second, each waking it
            store.enqueue("chat", "chat://x", message(n), datetime.now(UTC))
            s.wake()
            await asyncio.sleep(0.02)
        for _ in range(300):
            if channel.posts:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert channel.heads() == ["12 messages at once"]
    assert channel.told() == list(range(1, 13))


def test_messages_that_keep_coming_for_seconds_are_gathered_into_one_post() -> None:
    """Outside-in probe: 200 failures written over 1.5 s (runs ending 8 at a time) went
    as a digest of 124 and then 10 posts within 0.3 s, each sending what came during the
    send before it; the channel's posts for the minute were spent, and the last 49 went
    a minute later. The sender gathers while messages keep coming (up to a few seconds),
    and a drain leaves what is written during it to the next gather."""
    store = MemoryOutbox()
    channel = Recording()
    s = OutboxSender(store, channel_factory=lambda _u: channel, posts_per_minute=None)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(s.run_forever(stop, interval=60))
        await asyncio.sleep(0.05)
        for n in range(1, 41):  # 40 messages over 2.4 s, each waking it
            store.enqueue("chat", "chat://x", message(n), datetime.now(UTC))
            s.wake()
            await asyncio.sleep(0.06)
        for _ in range(800):
            if len(channel.told()) == 40:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert channel.told() == list(range(1, 41))
    # one post; two where a loaded machine held the writer past a gather (the old sender
    # made 25 of them, most single messages)
    heads = channel.heads()
    assert len(heads) <= 2 and all(h.endswith("messages at once") for h in heads), heads
