"""A channel that has not failed but whose queue nothing moves (outside-in probe).

A stop left a claim on a channel's first message: the restarted daemon sent nothing
for three minutes while `health` and `doctor` called the channel ok. A message that
waits past two minutes on a channel that has not failed now makes the channel not ok,
saying what holds it."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path

from rich.console import Console

from agentcron.clock import FakeClock
from agentcron.interfaces import render
from agentcron.model import Message, NodeInfo
from agentcron.service import Service
from agentcron.store.base import Store

MESSAGE = Message(title="t", body="b", task="", event="x", incident_kind="x", severity="failure")


def _channel(service: Service) -> dict[str, object]:
    [channel] = service.health()["channels"]
    return channel


def test_a_claim_that_holds_the_queue_makes_the_channel_not_ok(
    store: Store, clock: FakeClock, home: Path
) -> None:
    service = Service(store, home, clock)
    now = clock.now()
    store.register_node(NodeInfo("node-a", "elsewhere", 1, "/h", now, now))
    store.enqueue("k", "json://127.0.0.1:9/x", MESSAGE, now)
    store.enqueue("k", "json://127.0.0.1:9/x", MESSAGE, now)
    store.claim_outbox("node-a", now, now + timedelta(minutes=3), 10)
    clock.advance(timedelta(seconds=30))
    assert _channel(service)["ok"] is True  # a send under way: not yet a problem
    clock.advance(timedelta(minutes=2))
    store.heartbeat("node-a", clock.now())  # it beats: its send is under way
    channel = _channel(service)
    assert channel["ok"] is False
    held = str(channel["held"])
    assert held.startswith("2 message(s) waiting for 2 min 30s, none sent: a send by node-a")
    assert "holds the channel until 00:03:00 UTC" in held
    out = StringIO()
    render.health(Console(file=out, width=300), service.health())
    assert f"✖ channel k: {held}" in out.getvalue()
    assert render.untold(service.health()) == ["k"]  # `health` exits 2
    checks = {c["name"]: c for c in service.doctor_checks()}
    assert checks["channel k"]["status"] == "fail" and checks["channel k"]["message"] == held


def test_messages_no_sender_takes_are_said_too(store: Store, clock: FakeClock, home: Path) -> None:
    service = Service(store, home, clock)
    store.enqueue("k", "json://127.0.0.1:9/x", MESSAGE, clock.now())
    clock.advance(timedelta(minutes=5))
    channel = _channel(service)
    assert channel["ok"] is False
    assert str(channel["held"]).endswith(
        "none sent: no daemon is sending them (is one running, and its sender working?)"
    )
    store.claim_outbox("node-b", clock.now(), clock.now() + timedelta(minutes=3), 10)
    item = store.due(clock.now() + timedelta(minutes=10), 10)[0]
    store.mark_sent(item.id, clock.now())
    assert _channel(service)["ok"] is True  # sent: nothing waits


def test_a_claim_a_dead_node_left_is_said_to_lapse(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """The node killed with -9 mid-send: "a send … that has not ended" was not true
    (outside-in probe)."""
    service = Service(store, home, clock)
    now = clock.now()
    store.enqueue("k", "json://127.0.0.1:9/x", MESSAGE, now)
    store.claim_outbox("gone-node", now, now + timedelta(minutes=3), 10)
    clock.advance(timedelta(minutes=2, seconds=10))
    held = str(_channel(service)["held"])
    assert held == (
        "1 message(s) waiting for 2 min 10s, none sent: gone-node, which no longer runs, left "
        "a claim on the first one that holds the channel until 00:03:00 UTC, when it lapses"
    )


def test_doctor_does_not_promise_retries_while_no_daemon_runs(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """A failing channel with no daemon: "they will be retried" was not so until one
    runs (outside-in probe)."""
    service = Service(store, home, clock)
    item = store.enqueue("k", "json://127.0.0.1:9/x", MESSAGE, clock.now())
    store.mark_failed(item, "connection refused", clock.now(), False, clock.now())
    checks = {c["name"]: c for c in service.doctor_checks()}
    assert checks["channel k"]["message"].endswith(
        "1 message(s) waiting, retried once a daemon runs (none does now)"
    )


def test_a_channel_that_sends_slower_than_messages_come_is_not_said_unsent(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """Outside-in probe: with a service refusing every other post (429) the daemon sent
    one message every 12 s, and `health` said "none sent: no daemon is sending them (is
    one running …?)", sending the operator after a daemon that was fine."""
    service = Service(store, home, clock)
    for _ in range(3):
        store.enqueue("k", "json://127.0.0.1:9/x", MESSAGE, clock.now())
    clock.advance(timedelta(minutes=2, seconds=30))
    (first,) = store.claim_outbox("node-b", clock.now(), clock.now() + timedelta(minutes=3), 1)
    store.mark_sent(first.id, clock.now(), "node-b")
    clock.advance(timedelta(seconds=10))
    channel = _channel(service)
    assert channel["ok"] is False  # a backlog for minutes is still worth a word
    held = str(channel["held"])
    assert held.startswith("2 message(s) waiting, the oldest for 2 min 40s"), held
    assert "they go out slower than they come (the last went out at 00:02:30 UTC)" in held
    assert "no daemon is sending" not in held
