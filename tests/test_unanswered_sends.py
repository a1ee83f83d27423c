"""A send that gets no answer in time is said as such, and a delivery that then arrives
says it may have arrived more than once.

Outside-in probe: a webhook that answered after 30 s took the output on each of four
attempts, while the owner read "could not be delivered: A Connection error occurred"
(Apprise's words for its read timeout) and then "delivered after 4 attempts"."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agentcron.delivery.worker import DeliveryWorker
from agentcron.model import DeliveryStatus, Message
from agentcron.notify.channels import UNANSWERED, AppriseChannel, SendResult, unanswered
from agentcron.notify.events import DeliveryFailed, DeliveryRecovered, Event
from harness import Harness
from test_incidents import Feed, local

MESSAGE = Message(
    title="story", body="Once upon a time.", task="story", event="delivery",
    incident_kind="", severity="info",
)  # fmt: skip


class _Slow(BaseHTTPRequestHandler):
    delay = 2.0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.delay)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_a_read_timeout_is_said_as_no_answer_not_as_a_connection_error(slow_port: int) -> None:
    channel = AppriseChannel(f"json://127.0.0.1:{slow_port}/hook?rto=1")
    result = asyncio.run(channel.send(MESSAGE))
    assert (result.ok, result.error) == (False, unanswered(1)), result
    assert result.error is not None and "may have taken the message" in result.error


def test_a_refused_connection_is_not_said_to_have_no_answer() -> None:
    import socket

    with socket.socket() as free:  # a port nobody listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    result = asyncio.run(AppriseChannel(f"json://127.0.0.1:{port}/hook?rto=5").send(MESSAGE))
    assert not result.ok and UNANSWERED not in (result.error or ""), result


class _LateThenFine:
    """Got no answer in time once, then took it."""

    def __init__(self) -> None:
        self.sends = 0

    async def send(self, msg: Message) -> SendResult:
        self.sends += 1
        if self.sends == 1:
            return SendResult(ok=False, error=unanswered(24))
        return SendResult(ok=True)


def test_a_delivery_after_an_unanswered_attempt_says_it_may_have_arrived_twice(
    sqlite_store, clock, home: Path
) -> None:  # type: ignore[no-untyped-def]
    channel = _LateThenFine()
    events: list[Event] = []

    async def scenario() -> None:
        h = Harness(sqlite_store, clock, home)
        h.add("story", lambda: "text", every="1h", deliver=["json://127.0.0.1:9/d"])
        clock.advance(timedelta(hours=1))
        await h.tick()
        worker = DeliveryWorker(
            sqlite_store,
            clock,
            emit=lambda _spec, event: events.append(event),
            channel_factory=lambda _url: channel,
        )
        assert await worker.drain_once() == 1
        clock.advance(timedelta(minutes=2))
        assert await worker.drain_once() == 1

    asyncio.run(scenario())
    failed, recovered = events
    assert isinstance(failed, DeliveryFailed) and failed.error == unanswered(24)
    assert isinstance(recovered, DeliveryRecovered) and recovered.unanswered_before
    (slot,) = sqlite_store.slots("story")
    (delivery,) = sqlite_store.deliveries(slot.id)
    assert delivery.status is DeliveryStatus.DELIVERED
    # and the owner reads it
    feed = Feed()
    feed([failed])
    closing = feed([recovered])
    [text] = feed.texts(closing)
    assert "after 2 attempts" in text and "may have arrived more than once" in text, text


def test_a_delivery_after_a_refused_attempt_says_nothing_of_twice() -> None:
    feed = Feed()
    feed(
        [
            DeliveryFailed(
                task="story", at=local(10, 2, 6), slot_id=1, target_redacted="json://…",
                error="connection refused", retry_at=local(10, 2, 7),
            )
        ]
    )  # fmt: skip
    closing = feed(
        [DeliveryRecovered(task="story", at=local(10, 2, 9), slot_id=1,
                           target_redacted="json://…", attempts=2)]
    )  # fmt: skip
    assert feed.texts(closing) == ["✔ story's output was delivered to json://… after 2 attempts."]


def test_a_task_removed_while_its_output_could_not_be_delivered_says_delivery_goes_on() -> None:
    """Its deliveries keep going (README): "nothing more will be told of it" was said while
    the output then arrived (outside-in probe)."""
    from agentcron.model.incident import Incident, IncidentKind
    from agentcron.notify.messages import render_removed_task

    now = local(10, 3, 0)
    incident = Incident(
        id=1, task="gone", kind=IncidentKind.DELIVERY, opened_at=local(10, 2, 0),
        updated_at=local(10, 2, 0), summary="could not be delivered",
    )  # fmt: skip
    message = render_removed_task("gone", [incident], None, now, ZoneInfo("UTC"))
    assert "nothing more will be told" not in message.body, message.body
    assert "still waiting to be delivered are still delivered" in message.body, message.body
    assert "one that gives up is told once" in message.body


class _Refusing:
    async def send(self, msg: Message) -> SendResult:
        return SendResult(ok=False, error="connection refused")


def test_a_told_retry_is_looked_at_at_its_time_not_at_the_beat_after(
    sqlite_store, clock, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """ "Retrying at 01:13:33" was followed by the attempt at 01:13:38.7: the worker
    looked only on the daemon's beat (outside-in probe). Its sleep now ends at the
    retry it recorded."""
    import agentcron.delivery.worker as worker_module

    asked: list[float | None] = []

    def when_to_wake(every: float, sooner: float | None = None) -> float:
        asked.append(sooner)
        return asyncio.get_running_loop().time() + 0.01

    monkeypatch.setattr(worker_module, "when_to_wake", when_to_wake)

    async def scenario() -> DeliveryWorker:
        h = Harness(sqlite_store, clock, home)
        h.add("story", lambda: "text", every="1h", deliver=["json://127.0.0.1:9/d"],
              delivery_backoff=["90s", "5m"])  # fmt: skip
        clock.advance(timedelta(hours=1))
        await h.tick()
        worker = DeliveryWorker(
            sqlite_store, clock, emit=lambda _s, _e: None, channel_factory=lambda _u: _Refusing()
        )
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run_forever(stop, interval=6.0))
        deadline = asyncio.get_running_loop().time() + 10
        while (
            not [a for a in asked if a is not None] and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.01)
        stop.set()
        await running
        return worker

    worker = asyncio.run(scenario())
    told = [a for a in asked if a is not None]
    assert told and told[0] == pytest.approx(90.0), asked
    clock.advance(timedelta(seconds=90))
    assert worker._until_next_retry() == 0.0  # its time came: look now
    assert worker._until_next_retry() is None  # and then only the beat


def test_output_that_is_not_utf8_is_delivered_with_a_note(tmp_path: Path) -> None:
    """Latin-1 "café" went out as "caf\ufffd" without a word (outside-in probe)."""
    from agentcron.delivery.worker import _read

    latin = tmp_path / "latin.log"
    latin.write_bytes("café naïve\r\n".encode("latin-1"))
    text = _read(str(latin))
    assert text is not None and text.startswith("caf\ufffd na\ufffdve\n"), text
    assert f"are shown as \ufffd; the kept file at {latin} has them as printed]" in text
    fine = tmp_path / "fine.log"
    fine.write_text("café naïve\n", encoding="utf-8")
    assert _read(str(fine)) == "café naïve\n"


def test_a_kept_file_emptied_after_the_run_is_not_delivered_as_no_output(
    sqlite_store, home: Path
) -> None:  # type: ignore[no-untyped-def]
    """An output emptied by hand before its delivery went out as "(the run produced no
    output)", recorded delivered (outside-in probe). It is a lost output, told as a
    gone one is; a run that printed nothing is still delivered as such."""
    import os

    from agentcron.clock import FakeClock

    start = datetime.now(UTC) - timedelta(hours=1)
    clock = FakeClock(start)  # near the real time: files' times are the real clock's
    sent: list[Message] = []
    events: list[Event] = []

    class Taking:
        async def send(self, msg: Message) -> SendResult:
            sent.append(msg)
            return SendResult(ok=True)

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        target = ["json://127.0.0.1:9/d"]
        h.add("story", lambda: "Once upon a time.", every="1h", deliver=target)
        h.add("quiet", every="1h", command=["true"], deliver=target)
        clock.advance(timedelta(hours=1))
        await h.tick()
        (story,) = h.slots("story")
        assert story.output_path is not None
        Path(story.output_path).write_text("")  # emptied by hand, later
        later = time.time() + 30
        os.utime(story.output_path, (later, later))
        worker = DeliveryWorker(
            sqlite_store, clock, emit=lambda _s, e: events.append(e),
            channel_factory=lambda _u: Taking(),
        )  # fmt: skip
        await worker.drain_once()
        return h

    h = asyncio.run(scenario())
    assert [m.task for m in sent] == ["quiet"], events
    assert sent[0].body == "(the run produced no output)"
    (failed,) = [e for e in events if isinstance(e, DeliveryFailed)]
    assert failed.gave_up and failed.error.startswith(
        "the kept output file is gone (emptied after the run: "
    ), failed.error
    assert " is empty, changed " in failed.error and failed.error.endswith(
        " UTC); nothing left to deliver"
    ), failed.error
    (story,) = h.slots("story")
    (delivery,) = sqlite_store.deliveries(story.id)
    assert delivery.status is DeliveryStatus.FAILED


def test_an_unanswered_attempt_then_a_refused_one_still_warns_at_the_delivery(
    sqlite_store, clock, home: Path
) -> None:  # type: ignore[no-untyped-def]
    answers = iter(
        [
            SendResult(ok=False, error=unanswered(24)),
            SendResult(ok=False, error="HTTP 500"),
            SendResult(ok=True),
        ]
    )

    class Seq:
        async def send(self, msg: Message) -> SendResult:
            return next(answers)

    events: list[Event] = []

    async def scenario() -> None:
        h = Harness(sqlite_store, clock, home)
        h.add("story", lambda: "text", every="1h", deliver=["json://127.0.0.1:9/d"],
              delivery_backoff=["1m", "1m", "1m"])  # fmt: skip
        clock.advance(timedelta(hours=1))
        await h.tick()
        worker = DeliveryWorker(
            sqlite_store, clock, emit=lambda _s, e: events.append(e),
            channel_factory=lambda _u: Seq(),
        )  # fmt: skip
        for _ in range(3):
            assert await worker.drain_once() == 1
            clock.advance(timedelta(minutes=2))

    asyncio.run(scenario())
    _, refused, recovered = events
    assert isinstance(refused, DeliveryFailed) and refused.error == (
        "HTTP 500 (an earlier attempt had no answer within its time and may have arrived)"
    )
    assert isinstance(recovered, DeliveryRecovered) and recovered.unanswered_before


@pytest.mark.slow
def test_a_service_that_answers_late_is_waited_for_longer_the_next_time() -> None:
    """A webhook answering in 25 s took the first message every 90 s for ever and the
    others never left (outside-in probe): each send had no answer within the read
    timeout. After such a send the channel waits twice as long (up to MAX_PATIENCE)."""

    class Late(_Slow):
        delay = 5.0

    server = ThreadingHTTPServer(("127.0.0.1", 0), Late)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # 9 s: Apprise's read timeout stays its own 4 s, under the service's 5 s
        channel = AppriseChannel(f"json://127.0.0.1:{server.server_address[1]}/h", timeout=9.0)

        async def twice() -> tuple[SendResult, SendResult]:
            return await channel.send(MESSAGE), await channel.send(MESSAGE)

        first, second = asyncio.run(twice())
    finally:
        server.shutdown()
        server.server_close()
    assert first.error == unanswered(4.0), first
    assert second.ok, second  # waited 18 s, its read timeout 12 s


def test_a_kept_file_gone_between_its_read_and_its_look_is_lost_not_empty(
    tmp_path: Path,
) -> None:
    """Read as empty, then gone at the look that tells an emptied file from a quiet run:
    it is a lost output too, not a run that printed nothing."""
    from agentcron.delivery.worker import _emptied_since
    from agentcron.model import Delivery

    gone = tmp_path / "gone.log"
    delivery = Delivery(
        id=1, slot_id=1, task="story", target="json://x/y", target_key="json://x/y",
        output_path=str(gone), status=DeliveryStatus.PENDING, created_at=datetime.now(UTC),
    )  # fmt: skip
    said = _emptied_since(delivery)
    assert said is not None and said.startswith(f"{gone} is gone since it was read ("), said


@pytest.mark.slow
def test_the_longer_wait_after_a_late_answer_shrinks_back_when_answers_are_quick() -> None:
    """One slow answer kept the channel's 100 s wait until a restart, holding its queue
    behind each send that hung (outside-in probe): quick answers halve it back."""

    class Quick(_Slow):
        delay = 0.0

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quick)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        channel = AppriseChannel(f"json://127.0.0.1:{server.server_address[1]}/h", timeout=9.0)
        channel._timeout = 36.0  # as after two sends with no answer in time

        async def sends(n: int) -> list[float]:
            waits = []
            for _ in range(n):
                assert (await channel.send(MESSAGE)).ok
                waits.append(channel.patience)
            return waits

        assert asyncio.run(sends(3)) == [18.0, 9.0, 9.0]
    finally:
        server.shutdown()
        server.server_close()
