"""A delivery given up says until when its output is kept.

Outside-in probe: "it is kept at PATH" was told of outputs that `keep_outputs` removed a
minute later, and `agentcron redeliver` then found nothing. The message now says when
retention removes the file (its age past the task's `keep_outputs`, as retention judges
it), and how to send it again."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentcron.delivery.worker import DeliveryWorker
from agentcron.model import DeliveryStatus, Message, TaskSpec
from agentcron.notify import DeliveryFailed, Event
from agentcron.notify.channels import SendResult
from harness import Harness

TARGET = "json://127.0.0.1:9/deliver"


class Down:
    async def send(self, msg: Message) -> SendResult:
        return SendResult(ok=False, error="connection refused")


def _given_up(sqlite_store, clock, home: Path, **task: object) -> tuple[DeliveryFailed, Path]:
    events: list[Event] = []

    async def scenario() -> Path:
        h = Harness(sqlite_store, clock, home)
        h.add("d", lambda: "the daily report", every="1h", deliver=[TARGET], **task)
        clock.advance(timedelta(hours=1))
        await h.tick()
        (slot,) = h.slots("d")
        path = Path(str(slot.output_path))
        written = datetime(2026, 6, 1, 1, 0, tzinfo=UTC).timestamp()
        os.utime(path, (written, written))

        def emit(_spec: TaskSpec, event: Event) -> None:
            events.append(event)

        worker = DeliveryWorker(sqlite_store, clock, emit=emit, channel_factory=lambda _u: Down())
        for _ in range(4):
            await worker.drain_once()
            clock.advance(timedelta(minutes=1))
        (d,) = sqlite_store.deliveries(slot.id)
        assert d.status is DeliveryStatus.FAILED
        return path

    path = asyncio.run(scenario())
    final = events[-1]
    assert isinstance(final, DeliveryFailed) and final.gave_up
    return final, path


def test_a_given_up_delivery_says_when_keep_outputs_removes_its_file(
    sqlite_store, clock, home: Path
) -> None:
    final, path = _given_up(sqlite_store, clock, home, keep_outputs="2d", delivery_backoff=["1s"])
    assert final.output_path == str(path)
    assert final.kept_until == datetime(2026, 6, 3, 1, 0, tzinfo=UTC)


def test_a_task_that_keeps_its_outputs_says_no_end(sqlite_store, clock, home: Path) -> None:
    final, _ = _given_up(sqlite_store, clock, home, keep_outputs=None, delivery_backoff=["1s"])
    assert final.output_path is not None and final.kept_until is None


def test_an_output_gone_or_unreadable_is_said_so_in_the_log_not_promised_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agentcron.delivery import worker

    spec = TaskSpec(name="d", every="1h", command=["true"], keep_outputs="2d")
    with caplog.at_level(logging.WARNING, logger="agentcron"):
        assert worker._kept(spec, str(tmp_path / "gone.log"), 7) == (None, None)
    assert "the output of slot 7" in caplog.text and "is gone" in caplog.text
    there = tmp_path / "there.log"
    there.write_text("x")

    def refused(path: object, *args: object, **kwargs: object) -> os.stat_result:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(worker.os, "stat", refused)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agentcron"):
        assert worker._kept(spec, str(there), 8) == (str(there), None)
    assert "cannot look at the output of slot 8" in caplog.text
