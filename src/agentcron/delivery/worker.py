"""Delivering a succeeded run's output, from the kept file, until it arrives.

Delivery is a separate job from running the task: the run is ``succeeded`` the
moment it finishes, and its output file is the source of truth. Each target gets
its own delivery row with a stored next-attempt time, so a chat platform outage
delays the output (``delivery_backoff``, default 60 s, 5 min, 30 min) across
daemon restarts and never makes the task run again. A deleted output file ends
the delivery at once with a reason, rather than retrying something that cannot
succeed.

Several workers may share the deliveries (one per node on PostgreSQL, and a restarted
daemon next to the claims its dead predecessor left). A worker claims a delivery under
its own ``owner`` name before attempting it and records the attempt with a
compare-and-set on that claim, as the outbox sender does
(:mod:`agentcron.notify.sender`): an output is delivered by one node. A claim lasts
``claim_for``, longer than an attempt may take (``SEND_LIMIT``), so only a worker that
died (or hung past every limit) loses it, and then the next claim takes the delivery
over.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

from agentcron.beats import Sleeper, when_to_wake
from agentcron.clock import Clock
from agentcron.faultlog import ESCALATE_AFTER, FaultLog
from agentcron.model import Delivery, DeliveryStatus, Message, TaskSpec
from agentcron.notify.channels import (
    UNANSWERED,
    Channel,
    KeyedChannel,
    SendResult,
    channel_for,
    channel_key,
    message_parts,
    unanswered,
)
from agentcron.notify.events import DeliveryFailed, DeliveryRecovered, Event
from agentcron.notify.messages import OUTPUT_GONE
from agentcron.notify.outbox import stable_key
from agentcron.notify.sender import CLAIM_FOR, SEND_LIMIT, default_owner
from agentcron.redact import redact, secret_values_from_env
from agentcron.store.base import Store

log = logging.getLogger("agentcron.delivery")

DEFAULT_BACKOFF = (timedelta(seconds=60), timedelta(minutes=5), timedelta(minutes=30))
RECORD_BACKOFF = (0.5, 2.0, 8.0, 20.0)  # ~30 s in all, well within a claim (CLAIM_FOR)
MAX_BODY = 200_000  # characters delivered from the kept file, split per channel
PARTS_REMEMBERED = 10_000
EMPTIED_SLACK = 2.0  # seconds after its delivery was made that an empty file may be written


@runtime_checkable
class DeliveryPeek(Protocol):
    """A store that can say, with a read, whether a delivery may be claimed now."""

    def deliveries_waiting(self, now: datetime) -> bool: ...


class DeliveryWorker:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        emit: Callable[[TaskSpec, Event], object],
        channel_factory: Callable[[str], Channel] = channel_for,
        batch: int = 20,
        owner: str | None = None,
        claim_for: timedelta = CLAIM_FOR,
        removed: Callable[[DeliveryFailed], object] | None = None,
    ) -> None:
        """``owner`` names this worker in its claims; the daemon passes its node id (a
        name unique to this process by default). ``claim_for`` must outlast an
        attempt, or a slow but live worker would lose its deliveries to another.
        ``removed`` hears the failures of a delivery whose task was removed since its
        run (there is no spec left to ``emit`` for)."""
        if claim_for <= timedelta(seconds=SEND_LIMIT):
            raise ValueError(f"claim_for must outlast a send ({SEND_LIMIT:g}s)")
        self.owner = owner or default_owner()
        self.claim_for = claim_for
        self.store = store
        self._peek = store if isinstance(store, DeliveryPeek) else None  # asked once
        self.clock = clock
        self.emit = emit
        self.removed = removed
        self.channel_factory = channel_factory
        self.batch = batch
        self._wake = asyncio.Event()
        self._faults = FaultLog(log, "delivery pass")  # a database outage: logged once
        self._inflight: dict[int, asyncio.Task[None]] = {}
        # parts of split outputs taken so far, by delivery id: a retry sends the rest
        self._parts_sent: dict[int, int] = {}
        # seconds between tries of recording an answer the database refused
        self.record_backoff: tuple[float, ...] = RECORD_BACKOFF
        self._away: Callable[[], bool] = lambda: False  # run_forever's hold
        # the retries this worker recorded and told ("Retrying at 01:13:33"), soonest
        # first: each looked at then, not at the beat after it (up to a beat late, an
        # outside-in probe saw); other nodes' retries are found on the beat
        self._retries: list[datetime] = []

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(
        self,
        stop: asyncio.Event,
        interval: float = 1.0,
        hold: Callable[[], bool] = lambda: False,
        escalate_after: float = ESCALATE_AFTER,
    ) -> None:
        """Deliver until ``stop``; no pass while ``hold()`` says the database is away.

        A wake (a run with deliveries ended) claims at once; otherwise the worker looks
        on the daemon's beat (``interval``, see :mod:`agentcron.beats`) for retries
        whose time came, lapsed claims and other nodes' deliveries, with a read first:
        the claim, a write, is made only when something waits."""
        woken = True  # the first pass takes over whatever a previous daemon left
        self._away = hold
        sleeper = Sleeper(stop, self._wake)
        try:
            while not stop.is_set():
                work = (lambda: self.drain_once(wait=False)) if woken else self._look
                await self._faults.run_pass(work, hold, escalate_after)
                await sleeper.until(when_to_wake(interval, self._until_next_retry()))
                woken = self._wake.is_set()
                self._wake.clear()
        finally:
            sleeper.close()

    def _until_next_retry(self) -> float | None:
        """Seconds until the earliest retry recorded here, or None when none waits; a
        retry whose time has come is forgotten (the look then claims it)."""
        now = self.clock.now()
        came = False
        while self._retries and self._retries[0] <= now:
            heapq.heappop(self._retries)
            came = True
        if came:
            return 0.0
        return (self._retries[0] - now).total_seconds() if self._retries else None

    async def _look(self) -> int:
        """The periodic look: claim only when the store says something is due."""
        peek = self._peek
        if peek is not None and not peek.deliveries_waiting(self.clock.now()):
            return 0
        return await self.drain_once(wait=False)

    async def drain_once(self, wait: bool = True) -> int:
        """Claim due deliveries and start each not already under way here; returns
        how many started.

        Each runs as its own task, so one hung target never holds up the others; with
        ``wait`` (tests) the call returns when the ones it started are done. What
        another worker holds is left to it."""
        now = self.clock.now()
        claimed = self.store.claim_deliveries(self.owner, now, now + self.claim_for, self.batch)
        due = [d for d in claimed if d.id not in self._inflight]
        started = []
        for d in due:
            task = asyncio.create_task(self._attempt(d), name=f"deliver:{d.task}:{d.id}")
            self._inflight[d.id] = task
            task.add_done_callback(self._done(d.id))
            started.append(task)
        if wait and started:
            await asyncio.gather(*started, return_exceptions=True)
        return len(started)

    def _done(self, delivery_id: int) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._inflight.pop(delivery_id, None)

        return forget

    async def _attempt(self, delivery: Delivery) -> None:
        """One delivery attempt, as its own task: nothing awaits it, so what escapes
        the attempt is said here (its claim then lapses and it is tried again)."""
        try:
            await self._deliver(delivery)
        except Exception:
            log.exception(
                "the delivery of %s (slot %s) to %s failed in agentcron itself; it is "
                "tried again when its claim lapses",
                delivery.task,
                delivery.slot_id,
                delivery.target_key,
            )

    async def settle(self, within: float) -> None:
        """Wait up to ``within`` seconds for the attempts under way (a stop: their
        answers are recorded before the store closes); the rest are cancelled."""
        tasks = list(self._inflight.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=within)
        for task in pending:
            task.cancel()
        if pending:
            log.warning(
                "%d delivery attempt(s) still under way at the stop; each is tried again "
                "when its claim lapses",
                len(pending),
            )
            await asyncio.gather(*pending, return_exceptions=True)

    async def _record(
        self,
        delivery: Delivery,
        status: DeliveryStatus,
        attempts: int,
        retry_at: datetime | None,
        error: str | None,
    ) -> bool:
        """Record an attempt's answer; False when the claim is no longer ours. A write
        the database refuses is tried again a few times while the claim holds: an
        answer not recorded means the output is sent again when the claim lapses."""
        # within half the claim, and not while the database is known away (each try
        # may wait out a busy timeout on the loop): then the claim lapses and the
        # output is offered again, the one way left
        give_up = time.monotonic() + self.claim_for.total_seconds() / 2
        for tried, delay in enumerate((*self.record_backoff, None)):
            try:
                return self.store.update_delivery(
                    delivery.id, status, attempts, retry_at, error, self.clock.now(), self.owner
                )
            except Exception as exc:
                # the first tries whatever else is said: an outage is declared at the
                # first failed tick, and a lock of two seconds is not worth a resend
                away = tried >= 2 and self._away()
                if delay is None or away or time.monotonic() + delay > give_up:
                    raise
                log.warning(
                    "could not record the delivery of %s to %s (%s); trying again in %gs",
                    delivery.task,
                    delivery.target_key,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _deliver(self, delivery: Delivery) -> None:
        rec = self.store.get_task(delivery.task)
        spec = rec.spec if rec is not None else None
        backoff = tuple(spec.delivery_backoff) if spec is not None else DEFAULT_BACKOFF
        attempts = delivery.attempts + 1
        # No path: the run said nothing (an inline call that returned None keeps no
        # file), which is delivered as such; a path whose file is gone is a loss.
        text = _read(delivery.output_path) if delivery.output_path else ""
        now = self.clock.now()
        emptied = _emptied_since(delivery) if text == "" else None
        if text is None or emptied is not None:
            # given up without a send: the attempts recorded and told are the sends
            # really tried before (it said "after 2 attempts" of one)
            tried = delivery.attempts
            how = f"emptied after the run: {emptied}" if emptied else delivery.output_path
            reason = f"{OUTPUT_GONE} ({how}); nothing left to deliver"
            if not await self._record(delivery, DeliveryStatus.FAILED, tried, None, reason):
                self._lost_claim(delivery)
                return
            self._tell(spec, delivery, reason, tried, gave_up=True, retry_at=None, kept=False)
            return
        # The output is the owner's, but a secret the task printed must not travel on.
        env = {**os.environ, **(spec.env if spec is not None else {})}
        text = redact(text, secret_values_from_env(env))
        message = Message(
            title=f"{delivery.task}",
            body=text if text.strip() else "(the run produced no output)",
            task=delivery.task,
            event="delivery",
            incident_kind="",
            severity="info",
        )
        try:
            channel = self.channel_factory(delivery.target)
            parts = message_parts(channel, message)
            async with asyncio.timeout(SEND_LIMIT):
                result = await self._send_parts(channel, delivery, parts)
        except TimeoutError:
            result = SendResult(ok=False, error=unanswered(SEND_LIMIT))
        except Exception as exc:  # a channel's bug is a failed attempt, not a lost claim
            result = SendResult(ok=False, error=redact(f"{type(exc).__name__}: {exc}"))
        now = self.clock.now()
        if result.ok:
            self._parts_sent.pop(delivery.id, None)
            if not await self._record(delivery, DeliveryStatus.DELIVERED, attempts, None, None):
                self._lost_claim(delivery)
                return
            log.info(
                "delivered output of %s (slot %s) to %s",
                delivery.task,
                delivery.slot_id,
                delivery.target_key,
            )
            if spec is not None:
                self.emit(
                    spec,
                    DeliveryRecovered(
                        task=delivery.task,
                        at=now,
                        slot_id=delivery.slot_id,
                        target_redacted=delivery.target_key,
                        attempts=attempts,
                        targets=tuple(channel_key(url) for url in spec.deliver),
                        unanswered_before=UNANSWERED in (delivery.last_error or ""),
                    ),
                )
            return
        error = result.error or "the channel refused the message"
        if UNANSWERED in (delivery.last_error or "") and UNANSWERED not in error:
            # kept in the record, so that the delivery that arrives in the end still says
            # it may have arrived twice (it said so only when the attempt just before it
            # had no answer: an outside-in probe had one unanswered, one refused, one OK)
            error = f"{error} (an earlier attempt had {UNANSWERED} its time and may have arrived)"
        gave_up = result.permanent or attempts > len(backoff)
        retry_at = None if gave_up else now + backoff[attempts - 1]
        status = DeliveryStatus.FAILED if gave_up else DeliveryStatus.RETRYING
        if gave_up:
            self._parts_sent.pop(delivery.id, None)
        if not await self._record(delivery, status, attempts, retry_at, error):
            self._lost_claim(delivery)
            return
        if retry_at is not None:
            if len(self._retries) >= PARTS_REMEMBERED:
                self._retries.clear()  # a bound: the beat finds them all the same
            heapq.heappush(self._retries, retry_at)
        log.warning(
            "delivery of %s to %s failed (attempt %d): %s",
            delivery.task,
            delivery.target_key,
            attempts,
            error,
        )
        self._tell(spec, delivery, error, attempts, gave_up=gave_up, retry_at=retry_at)

    async def _send_parts(
        self, channel: Channel, delivery: Delivery, parts: list[Message]
    ) -> SendResult:
        """Send the parts not yet taken, in order, each under a key of its own; a part
        refused ends the attempt, and the next attempt starts from it (the parts before
        it are not sent again by this worker)."""
        key = delivery_key(delivery)
        total = len(parts)
        first = self._parts_sent.get(delivery.id, 0) if total > 1 else 0
        result = SendResult(ok=True)
        for number in range(first, total):
            part = parts[number]
            if isinstance(channel, KeyedChannel):
                # the same key on every attempt of this part: one sent again after a
                # worker died mid-send can be dropped by the receiver
                part_key = key if total == 1 else f"{key}.{number + 1}-of-{total}"
                result = await channel.send_keyed(part, part_key)
            else:
                result = await channel.send(part)
            if not result.ok:
                if total > 1:
                    error = result.error or "the channel refused the message"
                    result = replace(result, error=f"part {number + 1} of {total}: {error}")
                break
            if total > 1:
                if len(self._parts_sent) >= PARTS_REMEMBERED:
                    self._parts_sent.clear()  # a bound: deliveries others took over
                self._parts_sent[delivery.id] = number + 1
        return result

    def _lost_claim(self, delivery: Delivery) -> None:
        """Our claim lapsed during the attempt and another worker took the delivery
        over (or it was settled meanwhile): recording and telling are theirs now."""
        log.warning(
            "delivery of %s (slot %s) to %s was taken over by another worker while this "
            "one attempted it (its claim of %s lapsed); it may arrive twice",
            delivery.task,
            delivery.slot_id,
            delivery.target_key,
            self.claim_for,
        )

    def _tell(
        self,
        spec: TaskSpec | None,
        delivery: Delivery,
        error: str,
        attempts: int,
        *,
        gave_up: bool,
        retry_at: datetime | None,
        kept: bool = True,
    ) -> None:
        path, until = delivery.output_path if kept else None, None
        if gave_up and path is not None:
            path, until = _kept(spec, path, delivery.slot_id)
        event = DeliveryFailed(
            task=delivery.task,
            at=self.clock.now(),
            slot_id=delivery.slot_id,
            target_redacted=delivery.target_key,
            error=error,
            attempts=attempts,
            gave_up=gave_up,
            retry_at=retry_at,
            output_path=path,
            kept_until=until,
        )
        if spec is not None:
            self.emit(spec, event)
        elif self.removed is not None:
            self.removed(event)
        else:
            log.warning(
                "delivery of removed task %s (slot %s) failed and nobody listens: %s",
                delivery.task,
                delivery.slot_id,
                error,
            )


def delivery_key(delivery: Delivery) -> str:
    """The idempotency key of one delivery (see agentcron.notify.outbox.stable_key)."""
    created = delivery.created_at.isoformat() if delivery.created_at else None
    return stable_key(f"delivery-{delivery.id}", [delivery.slot_id, delivery.target_key, created])


def _read(path: str) -> str | None:
    """The kept output, its first ``MAX_BODY`` characters and a last line that says
    where the rest is when it is longer (cut without a word, a long story's end was lost
    and its delivery recorded done); None when the file is gone."""
    try:
        text, size, mangled = _read_text(path)
    except OSError:
        return None
    # bytes that are not UTF-8 go out as U+FFFD: said, since the text read is not all
    # the run printed (Latin-1 "café" was delivered as "caf\ufffd" without a word)
    note = (
        f"\n[… some bytes of this output are not UTF-8 text and are shown as \ufffd; the "
        f"kept file at {path} has them as printed]"
        if mangled
        else ""
    )
    if size is None:
        return text + note
    cut = text[:MAX_BODY]
    end = cut.rfind("\n", MAX_BODY // 2)
    cut = cut[:end] if end >= 0 else cut  # at a line end where there is one
    return (
        f"{cut}\n[… cut here: only the first {MAX_BODY:,} characters are delivered (the "
        f"output is {size:,} bytes); all of it is kept at {path}]{note}"
    )


def _emptied_since(delivery: Delivery) -> str | None:
    """The kept file, when it is empty now but was written after the run's end (its
    delivery was made then): the run's output was emptied by hand, and delivering
    "(the run produced no output)" said something untrue of the run (outside-in
    probe). None for a run that printed nothing, whose empty file dates from the run."""
    path, made = delivery.output_path, delivery.created_at
    if path is None or made is None:
        return None
    try:
        changed = os.stat(path).st_mtime
    except OSError as exc:
        # read as empty a moment ago, gone now: as lost as an emptied one (delivered,
        # it would say "(the run produced no output)" of a run that printed)
        return f"{path} is gone since it was read ({exc.strerror or exc})"
    if changed <= made.timestamp() + EMPTIED_SLACK:
        return None
    return f"{path} is empty, changed {datetime.fromtimestamp(changed, UTC):%Y-%m-%d %H:%M:%S} UTC"


def _read_text(path: str) -> tuple[str, int | None, bool]:
    """The first ``MAX_BODY`` + 1 characters of the kept file, its size in bytes when it
    is longer than that (else None), and whether some bytes were not UTF-8."""
    with Path(path).open("rb") as fh:
        data = fh.read(4 * (MAX_BODY + 1))  # at most 4 bytes a character
        size = os.fstat(fh.fileno()).st_size
    try:
        text = data.decode("utf-8")
        mangled = False
    except UnicodeDecodeError as exc:
        # a character cut by the read's end is not a bad byte
        whole = len(data) < 4 * (MAX_BODY + 1) or exc.start < len(data) - 3
        text = data.decode("utf-8", errors="replace")
        mangled = whole
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # as a text-mode read did
    if len(text) <= MAX_BODY:
        return text, None, mangled
    return text[: MAX_BODY + 1], size, mangled


def _kept(spec: TaskSpec | None, path: str, slot_id: int) -> tuple[str | None, datetime | None]:
    """A given-up delivery's output as its message may speak of it: the path, if the
    file is there, and when retention removes it (its file's age past the task's
    ``keep_outputs``, as :func:`agentcron.retention.prune_outputs` judges it; None when
    the task keeps outputs for good, or its age cannot be read)."""
    try:
        written = os.stat(path).st_mtime
    except FileNotFoundError:
        # removed since the attempt (by hand, or retention): "it is kept at PATH"
        # would send the owner to nothing
        log.warning("the output of slot %s (%s) is gone: its message does not say it is kept",
                    slot_id, path)  # fmt: skip
        return None, None
    except OSError as exc:
        log.warning("cannot look at the output of slot %s (%s: %s): its message does not say "
                    "until when it is kept", slot_id, path, exc.strerror or exc)  # fmt: skip
        return path, None
    if spec is None or spec.keep_outputs is None:
        return path, None
    return path, datetime.fromtimestamp(written, UTC) + spec.keep_outputs
