"""A kept output deleted while its delivery waits: the owner is told how many sends
were really tried, and the recovery does not call that output kept (outside-in probe:
"after 2 attempts" of one send, then "1 delivery gave up meanwhile; the outputs are
kept" of the deleted one)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from agentcron.delivery.worker import DeliveryWorker
from agentcron.model import DeliveryStatus, Incident, Message, TaskSpec
from agentcron.notify import DeliveryFailed, DeliveryRecovered, Event, apply_event, render
from agentcron.notify.channels import SendResult
from harness import Harness

TARGET = "json://127.0.0.1:9/deliver"
ZONE = ZoneInfo("UTC")


class Down:
    async def send(self, msg: Message) -> SendResult:
        return SendResult(ok=False, error="connection refused")


def _events(sqlite_store, clock, home: Path, fail_first: bool) -> tuple[list[Event], int]:
    events: list[Event] = []

    async def scenario() -> int:
        h = Harness(sqlite_store, clock, home)
        h.add("d", lambda: "the daily report", every="1h", deliver=[TARGET])
        clock.advance(timedelta(hours=1))
        await h.tick()

        def emit(_spec: TaskSpec, event: Event) -> None:
            events.append(event)

        worker = DeliveryWorker(sqlite_store, clock, emit=emit, channel_factory=lambda _u: Down())
        (slot,) = h.slots("d")
        if fail_first:
            await worker.drain_once()  # one real send, refused
            clock.advance(timedelta(minutes=2))
        Path(str(slot.output_path)).unlink()
        await worker.drain_once()
        (d,) = sqlite_store.deliveries(slot.id)
        assert d.status is DeliveryStatus.FAILED
        return d.attempts

    return events, asyncio.run(scenario())


def test_a_deleted_output_is_told_with_the_sends_really_tried(
    sqlite_store, clock, home: Path
) -> None:
    events, recorded = _events(sqlite_store, clock, home, fail_first=True)
    final = events[-1]
    assert isinstance(final, DeliveryFailed) and final.gave_up
    assert final.attempts == recorded == 1  # one send; the file found gone is not one
    notice = apply_event({}, final, ZONE).notice
    assert notice is not None
    body = render(notice, ZONE).body
    assert "after 2 attempts" not in body
    assert "the kept output file is gone" in body
    assert "Delivery gave up at once. 1 attempt had been made before it went." in body
    assert "kept at" not in body


def test_a_deleted_output_never_sent_says_none_was_tried(sqlite_store, clock, home: Path) -> None:
    events, recorded = _events(sqlite_store, clock, home, fail_first=False)
    (final,) = events
    assert isinstance(final, DeliveryFailed) and final.attempts == recorded == 0
    notice = apply_event({}, final, ZONE).notice
    assert notice is not None
    body = render(notice, ZONE).body
    assert "0 attempts" not in body and "after" not in body
    assert body.endswith("Delivery gave up at once. None had been made.")


def test_the_recovery_does_not_call_a_deleted_output_kept(sqlite_store, clock, home: Path) -> None:
    events, _ = _events(sqlite_store, clock, home, fail_first=True)
    incidents: dict[str, Incident] = {}
    for event in events:
        transition = apply_event(incidents, event, ZONE)
        for incident in transition.changed:
            incidents[str(incident.kind)] = incident
    assert isinstance(events[-1], DeliveryFailed)
    back = DeliveryRecovered(
        task="d", at=clock.now(), slot_id=99, target_redacted=events[-1].target_redacted
    )
    closed = apply_event(incidents, back, ZONE).notice
    assert closed is not None
    body = render(closed, ZONE).body
    assert "the outputs are kept" not in body, body
    assert "1 delivery gave up meanwhile: its kept output file was gone." in body, body
