"""A notify channel that cannot send is told through the owner's other channels, once,
and so is its return. With two channels, one down ten minutes, the working one carried
every task's messages and never a word that the other was down (outside-in probe)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.model import Message
from agentcron.notify.channels import channel_key
from agentcron.notify.notifier import Notifier
from agentcron.store.base import Store

A = "json://127.0.0.1:9/a"
B = "json://127.0.0.1:9/b"
NOTE = Message(title="t", body="b", task="x", event="x", incident_kind="x", severity="failure")


def test_a_channel_down_is_told_through_the_other_once_and_its_return(
    store: Store, clock: FakeClock, home: Path
) -> None:
    notifier = Notifier(store, clock, [A, B], "UTC")
    # A fails from 00:00; B works
    item = store.enqueue(channel_key(A), A, NOTE, clock.now())
    store.claim_outbox("sender", clock.now(), clock.now() + timedelta(minutes=3), 10)
    store.mark_failed(item, "connection refused", clock.now(), False, clock.now(), "sender")
    notifier.report_providers(clock.now())
    assert _titles(store, clock) == []  # a minute of failure is not yet news
    clock.advance(timedelta(minutes=4))
    notifier.report_providers(clock.now())
    told = _titles(store, clock)
    assert told == [(B, "⚠ agentcron cannot send through " + channel_key(A))], told
    clock.advance(timedelta(minutes=2))  # later looks, and a new notifier (a restart)
    notifier.report_providers(clock.now())
    Notifier(store, clock, [A, B], "UTC").report_providers(clock.now())
    assert len(_titles(store, clock)) == 1
    # A works again
    claimed = store.claim_outbox("sender", clock.now(), clock.now() + timedelta(minutes=3), 10)
    for one in claimed:
        store.mark_sent(one.id, clock.now(), "sender")
    clock.advance(timedelta(minutes=1))
    notifier.report_providers(clock.now())
    back = [t for t in _titles(store, clock) if t[1].startswith("✔")]
    assert sorted(back) == sorted(
        [(A, f"✔ agentcron sends through {channel_key(A)} again"),
         (B, f"✔ agentcron sends through {channel_key(A)} again")]
    ), back  # fmt: skip


def _titles(store: Store, clock: FakeClock) -> list[tuple[str, str]]:
    """Every message queued about channels, (url, title), sent or not."""
    rows = store._q("SELECT channel_url, message FROM outbox ORDER BY id")  # type: ignore[attr-defined]
    out = []
    for url, text in rows:
        message = json.loads(text)
        if str(message.get("event", "")).startswith("channel_"):
            out.append((url, message["title"]))
    return out


def _fail(store: Store, clock: FakeClock, url: str) -> None:
    """A message to ``url`` whose send failed now."""
    item = store.enqueue(channel_key(url), url, NOTE, clock.now())
    for claimed in store.claim_outbox(
        "sender", clock.now(), clock.now() + timedelta(minutes=3), 10
    ):
        if claimed.id == item:
            store.mark_failed(item, "HTTP 500", clock.now(), False, clock.now(), "sender")
        else:
            store.mark_failed(claimed.id, "HTTP 500", clock.now(), False, clock.now(), "sender")


def test_with_every_channel_down_an_outage_is_told_once_one_works(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """Both down: nobody to tell, and nothing marked told (an outage marked told to no
    one was never told: outside-in probe); A back: B's outage goes through A."""
    notifier = Notifier(store, clock, [A, B], "UTC")
    _fail(store, clock, A)
    _fail(store, clock, B)
    clock.advance(timedelta(minutes=4))
    notifier.report_providers(clock.now())
    assert _titles(store, clock) == []
    for claimed in store.claim_outbox("sender", clock.now(), clock.now(), 10):
        if claimed.channel_url == A:
            store.mark_sent(claimed.id, clock.now(), "sender")
    clock.advance(timedelta(minutes=1))
    notifier.report_providers(clock.now())
    assert (A, f"⚠ agentcron cannot send through {channel_key(B)}") in _titles(store, clock)


def test_a_tasks_own_channel_down_is_told_through_the_top_level_one(
    store: Store, clock: FakeClock, home: Path
) -> None:
    own = "json://127.0.0.1:9/own"
    notifier = Notifier(store, clock, [A], "UTC")  # one top-level channel, which works
    _fail(store, clock, own)
    clock.advance(timedelta(minutes=4))
    notifier.report_providers(clock.now())
    assert _titles(store, clock) == [(A, f"⚠ agentcron cannot send through {channel_key(own)}")]
    # it works again and sends its backlog: its return is told too (it was not: the
    # channel, with nothing waiting any more, was no longer looked at; outside-in probe)
    now = clock.now()
    for claimed in store.claim_outbox("sender", now, now + timedelta(minutes=3), 10):
        store.mark_sent(claimed.id, now, "sender")
    clock.advance(timedelta(minutes=1))
    notifier.report_providers(clock.now())
    assert (A, f"✔ agentcron sends through {channel_key(own)} again") in _titles(store, clock)


def _a_down_told(store: Store, clock: FakeClock) -> Notifier:
    """Channel A failing since now, told down through B 4 minutes later."""
    notifier = Notifier(store, clock, [A, B], "UTC")
    began = clock.now()
    item = store.enqueue(channel_key(A), A, NOTE, began)
    store.claim_outbox("sender", began, began + timedelta(minutes=3), 10)
    store.mark_failed(item, "connection refused", began, False, began, "sender")
    clock.advance(timedelta(minutes=4))
    notifier.report_providers(clock.now())
    return notifier


def test_a_channels_return_counts_to_its_first_send_and_says_what_still_waits(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """The return read the outage to the minute's look, not to the send that went
    through, and said the held messages were "on their way" after a digest had carried
    them all (outside-in probe)."""
    notifier = _a_down_told(store, clock)
    clock.advance(timedelta(minutes=2))  # 6 min after it began, A takes its message
    for one in store.claim_outbox("sender", clock.now(), clock.now() + timedelta(minutes=3), 10):
        store.mark_sent(one.id, clock.now(), "sender")
    clock.advance(timedelta(seconds=50))  # the look comes later
    notifier.report_providers(clock.now())
    rows = store._q("SELECT message FROM outbox ORDER BY id")  # type: ignore[attr-defined]
    bodies = [json.loads(r[0])["body"] for r in rows if "again" in json.loads(r[0])["title"]]
    assert bodies and all(", 6 min); the messages held for it have gone out." in b for b in bodies)


def test_a_message_written_after_the_return_is_not_one_held_for_it(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """A reminder written in the second the channel came back was counted "1 message(s)
    held for it are on their way", the digest having taken every held one already
    (outside-in probe)."""
    notifier = _a_down_told(store, clock)
    clock.advance(timedelta(minutes=2))
    for one in store.claim_outbox("sender", clock.now(), clock.now() + timedelta(minutes=3), 10):
        if one.channel_key == channel_key(A):
            store.mark_sent(one.id, clock.now(), "sender")
    clock.advance(timedelta(seconds=5))
    store.enqueue(channel_key(A), A, NOTE, clock.now())  # new, not held
    clock.advance(timedelta(seconds=40))
    notifier.report_providers(clock.now())
    bodies = [b for b in _bodies(store, "again") if channel_key(A) in b]
    assert bodies and all("the messages held for it have gone out." in b for b in bodies), bodies


def test_a_send_with_no_answer_is_not_a_channel_that_cannot_take_messages_at_once() -> None:
    """One slow answer to a digest the service did take had `health` say "✖ 1 channel
    cannot take messages" (outside-in probe): an unanswered send counts as failing only
    once it has lasted two minutes; any other error at once."""
    from datetime import UTC, datetime

    from agentcron._service.status import works
    from agentcron.model import ChannelHealth
    from agentcron.notify.channels import unanswered

    now = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)

    def channel(error: str, ago: float) -> ChannelHealth:
        return ChannelHealth(
            channel_key="c", last_ok_at=None, last_error=error,
            last_error_at=now, pending=3, failing_since=now - timedelta(seconds=ago),
            broken=False, undeliverable=0,
        )  # fmt: skip

    slow = unanswered(24) + " (in one post with 11 more)"
    assert works(channel(slow, 30), now)
    assert not works(channel(slow, 150), now)
    assert not works(channel("HTTP 500", 5), now)


def test_the_only_channel_down_is_told_with_its_return(
    store: Store, clock: FakeClock, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The owner's only channel refused for five minutes: nothing could tell of it while
    it lasted, and when it came back neither its outage nor its return was ever said
    (outside-in probe). Its return now says both, once, through it. Meanwhile the log
    says it once at ERROR: a program that logs only errors heard nothing (probe)."""
    notifier = Notifier(store, clock, [A], "UTC")
    began = clock.now()
    _fail(store, clock, A)
    clock.advance(timedelta(minutes=4))
    with caplog.at_level(logging.ERROR, logger="agentcron.notify"):
        notifier.report_providers(clock.now())
        clock.advance(timedelta(minutes=1))
        Notifier(store, clock, [A], "UTC").report_providers(clock.now())  # a restart meanwhile
    assert _titles(store, clock) == []  # nobody to tell through
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(said) == 1 and "and no other channel can: nothing is told" in said[0], said
    for one in store.claim_outbox("sender", clock.now(), clock.now() + timedelta(minutes=3), 10):
        store.mark_sent(one.id, clock.now(), "sender")
    clock.advance(timedelta(minutes=1))
    notifier.report_providers(clock.now())
    notifier.report_providers(clock.now())
    assert _titles(store, clock) == [(A, f"✔ agentcron sends through {channel_key(A)} again")]
    body = _bodies(store, "again")[0]
    assert f"it could not from {began:%H:%M:%S} UTC, 5 min)" in body, body
    assert body.endswith("No channel could take the news of its outage while it lasted."), body


def test_a_channels_return_counts_to_its_first_send_not_its_last(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """Sends after the first one through, before the look, made the outage read longer:
    4 min 51 s read 5 min 20 s, to a reminder sent after it (outside-in probe)."""
    notifier = Notifier(store, clock, [A, B], "UTC")
    _fail(store, clock, A)
    clock.advance(timedelta(minutes=4))
    notifier.report_providers(clock.now())
    clock.advance(timedelta(minutes=1))  # 5 min after it began, A takes its messages
    for one in store.claim_outbox("sender", clock.now(), clock.now() + timedelta(minutes=3), 10):
        store.mark_sent(one.id, clock.now(), "sender")
    clock.advance(timedelta(seconds=29))  # a reminder goes through A before the look
    later = store.enqueue(channel_key(A), A, NOTE, clock.now())
    store.claim_outbox("sender", clock.now(), clock.now() + timedelta(minutes=3), 10)
    store.mark_sent(later, clock.now(), "sender")
    clock.advance(timedelta(seconds=20))
    notifier.report_providers(clock.now())
    bodies = _bodies(store, "again")
    assert bodies and all(", 5 min); the messages held for it have gone out." in b for b in bodies)


def _bodies(store: Store, word: str) -> list[str]:
    rows = store._q("SELECT message FROM outbox ORDER BY id")  # type: ignore[attr-defined]
    return [json.loads(r[0])["body"] for r in rows if word in json.loads(r[0])["title"]]


def _one_failure_logged(
    store: Store, clock: FakeClock, home: Path, caplog: pytest.LogCaptureFixture, **task: Any
) -> list[logging.LogRecord]:
    """The log records of one failed run of task ``feed`` with no top-level channel."""
    import asyncio

    from harness import Harness

    def broken() -> str:
        raise ValueError("the feed is gone")

    h = Harness(store, clock, home)
    Notifier(store, clock, [], "UTC").attach(h.engine)
    h.add("feed", broken, every="1h", retries=0, **task)
    clock.advance(timedelta(hours=1))
    with caplog.at_level(logging.WARNING, logger="agentcron.notify"):
        asyncio.run(h.tick())
    return [r for r in caplog.records if r.getMessage().startswith("✖ feed failed")]


def test_a_failure_with_no_channel_to_go_to_is_logged_at_error(
    store: Store, clock: FakeClock, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Outside-in probe: a program running a Scheduler with no `notify` and its logging
    at ERROR printed nothing for 115 failed runs: each was said at WARNING only. With no
    channel the log is all there is, so it is said at ERROR."""
    lines = _one_failure_logged(store, clock, home, caplog)
    assert lines and all(r.levelno == logging.ERROR for r in lines), lines
    alone = "(no notify channel: told to no one but this log)"
    assert all(r.getMessage().endswith(alone) for r in lines)


def test_a_tasks_own_empty_notify_is_its_choice_and_not_an_error(
    store: Store, clock: FakeClock, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Review: `notify: []` on a task is a choice (schema); its failures are not said
    "told to no one" at ERROR."""
    lines = _one_failure_logged(store, clock, home, caplog, notify=[])
    assert lines and all(r.levelno == logging.WARNING for r in lines), lines
