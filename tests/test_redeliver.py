"""Delivering a run's kept output again, by hand, once its delivery gave up.

An outside-in probe found no way to send an output whose delivery gave up but to copy
the kept file by hand. ``agentcron redeliver RUN_ID`` (and ``POST
/api/v1/runs/{run_id}/redeliver``) queue the deliveries that gave up again; the
delivery worker sends them from the kept file and tells the end, as for any other.
Everything else is refused with the reason, and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agentcron.clock import FakeClock
from agentcron.delivery.worker import DeliveryWorker
from agentcron.interfaces.api.app import ApiSettings, create_app
from agentcron.interfaces.cli import app as cli_app
from agentcron.model import DeliveryStatus, Message
from agentcron.notify.channels import SendResult
from agentcron.notify.events import DeliveryFailed, DeliveryRecovered
from agentcron.service import ConflictError, NotFoundError
from agentcron.store.base import Store
from harness import Harness

TARGET = "json://127.0.0.1:9/deliver"


class Switch:
    """A channel that refuses while ``down``."""

    def __init__(self) -> None:
        self.down = True
        self.sent: list[Message] = []

    async def send(self, msg: Message) -> SendResult:
        if self.down:
            return SendResult(ok=False, error="HTTP 500 from the chat service")
        self.sent.append(msg)
        return SendResult(ok=True)


def _given_up(store: Store, clock: FakeClock, home: Path) -> tuple[Harness, Switch, list[Any]]:
    """``story`` ran once and its delivery gave up after its one retry."""
    channel, told = Switch(), []

    async def scenario() -> Harness:
        h = Harness(store, clock, home)
        h.add("story", lambda: "Once upon a time.", every="1d", deliver=[TARGET],
              delivery_backoff=["1m"])  # fmt: skip
        clock.advance(timedelta(days=1))
        await h.tick()
        worker = _worker(store, clock, channel, told)
        await worker.drain_once()
        clock.advance(timedelta(minutes=1))
        await worker.drain_once()
        return h

    h = asyncio.run(scenario())
    return h, channel, told


def _worker(store: Store, clock: FakeClock, channel: Switch, told: list[Any]) -> DeliveryWorker:
    return DeliveryWorker(
        store,
        clock,
        emit=lambda _spec, event: told.append(event),
        channel_factory=lambda _u: channel,
    )


def test_a_delivery_that_gave_up_is_sent_again_from_the_kept_file_and_its_end_told(
    store: Store, clock: FakeClock, home: Path
) -> None:
    h, channel, told = _given_up(store, clock, home)
    (slot,) = h.slots("story")
    (delivery,) = store.deliveries(slot.id)
    assert delivery.status is DeliveryStatus.FAILED and delivery.attempts == 2
    assert isinstance(told[-1], DeliveryFailed) and told[-1].gave_up
    channel.down = False  # the owner fixed the target
    view = h.service.redeliver(slot.id)
    assert [d["status"] for d in view["deliveries"]] == ["pending"]
    assert store.get_slot(slot.id).delivery_status is DeliveryStatus.PENDING  # type: ignore[union-attr]
    assert asyncio.run(_worker(store, clock, channel, told).drain_once()) == 1
    assert [m.body for m in channel.sent] == ["Once upon a time."]
    assert isinstance(told[-1], DeliveryRecovered) and told[-1].attempts == 1
    (delivery,) = store.deliveries(slot.id)
    assert delivery.status is DeliveryStatus.DELIVERED
    assert store.get_slot(slot.id).delivery_status is DeliveryStatus.DELIVERED  # type: ignore[union-attr]
    [entry] = [a for a in h.service.audit() if a["action"] == "run.redeliver"]
    assert entry["task"] == "story"
    # delivered now: asked again, it says so and changes nothing
    with pytest.raises(ConflictError, match="was delivered to every target"):
        h.service.redeliver(slot.id)


def test_a_redelivery_whose_incident_cannot_be_written_is_not_queued(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """The delivery's incident learns of the redelivery in the same transaction: queued
    first and refused the incident's write after, the command reported an error for a
    redelivery that was on its way, and its next give-up would have gone untold."""
    import sqlite3

    from agentcron.model import Incident, IncidentKind

    h, _channel, _told = _given_up(sqlite_store, clock, home)
    (slot,) = h.slots("story")
    gave_up = Incident(
        task="story", kind=IncidentKind.DELIVERY, opened_at=clock.now(), escalated=True, streak=1
    )  # as the notifier opens it on the give-up (not wired here)
    sqlite_store.save_incidents([gave_up], [], clock.now())
    db = sqlite3.connect(home / "agentcron.db")
    db.execute(
        "CREATE TRIGGER refuse BEFORE UPDATE ON incidents "
        "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
    )
    db.commit()
    with pytest.raises(sqlite3.DatabaseError, match="disk I/O error"):
        h.service.redeliver(slot.id)
    (delivery,) = sqlite_store.deliveries(slot.id)
    assert delivery.status is DeliveryStatus.FAILED  # nothing queued: the error is true
    assert not [a for a in h.service.audit() if a["action"] == "run.redeliver"]
    db.execute("DROP TRIGGER refuse")
    db.commit()
    db.close()
    view = h.service.redeliver(slot.id)
    assert [d["status"] for d in view["deliveries"]] == ["pending"]
    (incident,) = sqlite_store.incidents("story")
    assert incident.is_open and not incident.escalated  # its next give-up is told


def test_what_cannot_be_delivered_again_is_refused_with_the_reason(
    store: Store, clock: FakeClock, home: Path
) -> None:
    h, _channel, _told = _given_up(store, clock, home)
    (slot,) = h.slots("story")
    with pytest.raises(NotFoundError, match="no run with id 999"):
        h.service.redeliver(999)
    h.add("plain", lambda: "x", every="1d")
    clock.advance(timedelta(days=1))
    asyncio.run(h.tick())
    (plain,) = h.slots("plain")
    with pytest.raises(ConflictError, match="had no `deliver` targets"):
        h.service.redeliver(plain.id)
    assert slot.output_path is not None
    Path(slot.output_path).unlink()  # removed by hand
    with pytest.raises(ConflictError, match="is gone"):
        h.service.redeliver(slot.id)
    (delivery,) = store.deliveries(slot.id)
    assert delivery.status is DeliveryStatus.FAILED  # nothing changed


def test_a_delivery_still_trying_needs_no_help(store: Store, clock: FakeClock, home: Path) -> None:
    async def scenario() -> Harness:
        h = Harness(store, clock, home)
        h.add("story", lambda: "text", every="1d", deliver=[TARGET], delivery_backoff=["1h"])
        clock.advance(timedelta(days=1))
        await h.tick()
        await _worker(store, clock, Switch(), []).drain_once()
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("story")
    with pytest.raises(ConflictError, match=r"is still being delivered .*next attempt at"):
        h.service.redeliver(slot.id)


def test_the_cli_and_the_api_redeliver_alike(tmp_path: Path) -> None:
    from agentcron.clock import SystemClock
    from agentcron.store.sqlite import SQLiteStore

    home = tmp_path / "home"
    home.mkdir()
    store = SQLiteStore(home / "agentcron.db")
    try:
        clock = FakeClock(SystemClock().now() - timedelta(days=1))
        h, _channel, _told = _given_up(store, clock, home)
        (slot,) = h.slots("story")
    finally:
        store.close()
    runner = CliRunner()
    done = runner.invoke(cli_app, ["--home", str(home), "redeliver", str(slot.id)])
    assert done.exit_code == 0, done.output
    assert f"run {slot.id} of story: its output is queued again for " in done.output
    assert "it is sent when agentcron runs" in done.output  # no daemon here
    again = runner.invoke(cli_app, ["--home", str(home), "redeliver", str(slot.id), "--json"])
    assert again.exit_code == 1
    assert "is still being delivered" in json.loads(again.stdout)["error"]
    store = SQLiteStore(home / "agentcron.db")
    try:
        from agentcron.service import Service

        service = Service(store, home)
        app = create_app(lambda: service, ApiSettings(close_service=False, dashboard=False))
        with TestClient(app, base_url="http://127.0.0.1") as client:
            answer = client.post(f"/api/v1/runs/{slot.id}/redeliver")
            assert answer.status_code == 409, answer.text
            assert "is still being delivered" in answer.json()["detail"]
            assert client.post("/api/v1/runs/424242/redeliver").status_code == 404
            store.update_delivery(  # gave up again
                store.deliveries(slot.id)[0].id, DeliveryStatus.FAILED, 2, None, "HTTP 500",
                SystemClock().now(),
            )  # fmt: skip
            answer = client.post(f"/api/v1/runs/{slot.id}/redeliver")
            assert answer.status_code == 200, answer.text
            assert [d["status"] for d in answer.json()["deliveries"]] == ["pending"]
    finally:
        store.close()


def test_the_owner_hears_how_each_redelivery_ends(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Wired as the daemon wires them (worker -> notifier -> outbox). The give-up is
    told; a redelivery that gives up again is told again (it was only counted in the
    open incident: outside-in probe); the one that arrives closes the incident, told,
    without counting its own run among the deliveries that "gave up meanwhile"."""
    from agentcron.model import IncidentKind
    from agentcron.notify import OutboxSender
    from agentcron.notify.notifier import Notifier
    from notify_rig import HOOK, RecordingChannel

    notifier = Notifier(sqlite_store, clock, [HOOK], "UTC")
    owner = RecordingChannel()
    sender = OutboxSender(sqlite_store, channel_factory=lambda _url: owner, clock=clock)
    target = Switch()

    async def scenario() -> list[str]:
        h = Harness(sqlite_store, clock, home)
        h.add("story", lambda: "text", every="1d", deliver=[TARGET], delivery_backoff=["1m"])
        clock.advance(timedelta(days=1))
        await h.tick()
        worker = DeliveryWorker(
            sqlite_store, clock, emit=notifier.emit, channel_factory=lambda _u: target
        )

        async def attempts() -> None:
            await worker.drain_once()
            clock.advance(timedelta(minutes=1))
            await worker.drain_once()

        await attempts()  # gives up
        (slot,) = h.slots("story")
        assert [i.kind for i in sqlite_store.incidents("story")] == [IncidentKind.DELIVERY]
        h.service.redeliver(slot.id)
        await attempts()  # the target is still down: gives up again
        target.down = False
        h.service.redeliver(slot.id)
        await worker.drain_once()
        await sender.drain_once()
        return [m.body for m in owner.sent]

    bodies = asyncio.run(scenario())
    heads = [b[:40] for b in bodies]
    assert heads == [
        "⚠ story's output could not be delivered ",
        "✖ story's output could not be delivered ",
        "✖ story's output could not be delivered ",
        "✔ story's output was delivered to json:/",
    ], bodies
    assert "gave up meanwhile" not in bodies[-1], bodies[-1]
    assert not any(i.is_open for i in sqlite_store.incidents("story"))
