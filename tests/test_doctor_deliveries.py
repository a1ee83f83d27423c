"""`doctor` counts the outputs still waiting to be delivered after a failed attempt:
it named only the given-up ones, and 225 held outputs showed as one incident line
(outside-in probe)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from agentcron.clock import FakeClock
from agentcron.delivery.worker import DeliveryWorker
from agentcron.model import Message
from agentcron.notify.channels import SendResult
from agentcron.service import Service
from agentcron.store.base import Store
from harness import Harness


class _Down:
    async def send(self, msg: Message) -> SendResult:
        return SendResult(ok=False, error="connection refused")


def _check(service: Service) -> dict[str, str] | None:
    return {c["name"]: c for c in service.doctor_checks()}.get("deliveries waiting")


def test_held_deliveries_are_counted_by_doctor(store: Store, clock: FakeClock, home: Path) -> None:
    async def scenario() -> Harness:
        h = Harness(store, clock, home)
        for name in ("story", "digest"):
            h.add(name, lambda: "text", every="1h", deliver=["json://127.0.0.1:9/d"],
                  timezone="UTC")  # fmt: skip
        clock.advance(timedelta(hours=1))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    service = Service(store, home, clock)
    # two outputs wait, none has failed yet, no daemon runs: said, since nothing delivers
    pending = _check(service)
    assert pending is not None and pending["message"] == (
        "2 output(s) wait to be delivered, the oldest since 01:00:00 UTC; delivered once a "
        "daemon runs (none does now)"
    ), pending
    worker = DeliveryWorker(
        store, clock, emit=lambda _s, _e: None, channel_factory=lambda _u: _Down()
    )
    clock.advance(timedelta(seconds=5))
    assert asyncio.run(worker.drain_once()) == 2
    held = _check(service)
    assert held is not None and held["status"] == "warn"
    assert held["message"].startswith(
        "2 output(s) wait to be delivered, 2 of them after a failed attempt, the oldest since "
        "01:00:00 UTC"
    ), held
    assert h.slots("story")  # the runs themselves succeeded and are kept


def test_nothing_is_said_when_no_output_waits(store: Store, clock: FakeClock, home: Path) -> None:
    assert _check(Service(store, home, clock)) is None
