"""Each output is delivered by one delivery worker (issue 17): claims of delivery rows
on both stores, the worker that lost its claim, and three workers draining one
database through a counting target.

Every test runs on SQLite and PostgreSQL (skipped, with the reason, where no server
answers; each run gets a schema of its own). Several store objects opened on one
database stand for several nodes.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentcron.clock import FakeClock
from agentcron.delivery.worker import DeliveryWorker
from agentcron.model import (
    AttemptOutcome,
    Delivery,
    DeliveryStatus,
    Message,
    NewSlot,
    SlotStatus,
    TaskSource,
    TaskSpec,
)
from agentcron.notify.channels import SendResult
from agentcron.notify.events import DeliveryRecovered, Event
from agentcron.notify.sender import CLAIM_FOR
from agentcron.store.base import Store
from agentcron.store.sqlite import SQLiteStore
from conftest import PG_DSN, require_pg

T0 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)
TARGET = "json://127.0.0.1:9/deliver"

Opener = Callable[[], Store]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens store objects on one database, as separate nodes would."""
    opened: list[Store] = []
    lock = threading.Lock()
    if request.param == "sqlite":

        def open_store() -> Store:
            store = SQLiteStore(tmp_path / "agentcron.db")
            with lock:
                opened.append(store)
            return store

        cleanup: Callable[[], None] = lambda: None  # noqa: E731
    else:
        require_pg()
        from agentcron.store.postgres import PostgresStore
        from pg_util import drop_schema, new_schema_name

        schema = new_schema_name()

        def open_store() -> Store:
            store = PostgresStore(PG_DSN, schema=schema)
            with lock:
                opened.append(store)
            return store

        def cleanup() -> None:
            drop_schema(schema)

    try:
        yield open_store
    finally:
        for store in opened:
            store.close()
        cleanup()


def outputs(store: Store, folder: Path, n: int, targets: int = 1) -> list[int]:
    """``n`` succeeded runs of one task, each with a kept output ``output <i>`` and
    ``targets`` deliveries due at ``T0 + 1 min``; returns the slot ids."""
    spec = TaskSpec(name="t", every="60s", command=["true"], overlap="allow")
    store.upsert_task(spec, TaskSource.API, T0, T0 + MIN)  # slots recorded: next fire ahead
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        store.add_slot("t", NewSlot(T0 - i * SEC, SlotStatus.PENDING), T0)
    claims = store.claim("maker", T0, T0 + MIN, n)
    assert len(claims) == n
    deliver_to = tuple((f"{TARGET}/{k}", f"{TARGET}/{k}") for k in range(targets))
    for i, claim in enumerate(claims):
        path = folder / f"{i}.txt"
        path.write_text(f"output {i}")
        done = AttemptOutcome(
            ok=True,
            slot_status=SlotStatus.SUCCEEDED,
            output_path=str(path),
            deliver_to=deliver_to,
        )
        assert store.finish_attempt(claim.slot.id, claim.attempt.id, "maker", done, T0 + MIN)
    return [c.slot.id for c in claims]


def ids(deliveries: list[Delivery]) -> list[int]:
    return [d.id for d in deliveries]


# ---- the store contract ------------------------------------------------------------------
def test_two_owners_claim_disjoint_deliveries(opener: Opener, tmp_path: Path) -> None:
    a, b = opener(), opener()
    outputs(a, tmp_path / "out", 5)
    now = T0 + MIN
    assert a.claim_deliveries("a", T0, T0 + 10 * MIN, 10) == []  # not due yet
    first = a.claim_deliveries("a", now, now + 3 * MIN, 2)
    rest = b.claim_deliveries("b", now, now + 3 * MIN, 10)
    assert len(first) == 2 and len(rest) == 3
    assert not set(ids(first)) & set(ids(rest))
    assert sorted(ids(first) + ids(rest)) == sorted(ids(a.due_deliveries(now, 10)))
    # Everything due is claimed: neither owner gets more while the claims stand.
    assert a.claim_deliveries("a", now, now + 3 * MIN, 10) == []
    assert b.claim_deliveries("b", now + 3 * MIN - SEC, now + 6 * MIN, 10) == []
    # `due_deliveries` is a look, not a claim: it still shows all five.
    assert len(b.due_deliveries(now, 10)) == 5


def test_a_lapsed_claim_is_taken_over_and_the_loser_cannot_record(
    opener: Opener, tmp_path: Path
) -> None:
    a, b = opener(), opener()
    (sid,) = outputs(a, tmp_path / "out", 1)
    now = T0 + MIN
    (mine,) = a.claim_deliveries("a", now, now + MIN, 10)
    assert b.claim_deliveries("b", now + MIN - SEC, now + 5 * MIN, 10) == []
    # a died (or hung) past its claim: b takes the delivery over.
    (taken,) = b.claim_deliveries("b", now + MIN, now + 5 * MIN, 10)
    assert taken.id == mine.id
    # a comes back: nothing it records lands, the row stays b's and stays pending.
    assert not a.update_delivery(mine.id, DeliveryStatus.DELIVERED, 1, None, None, now, "a")
    assert not a.update_delivery(
        mine.id, DeliveryStatus.RETRYING, 1, now + 5 * MIN, "502", now + MIN, "a"
    )
    (row,) = a.deliveries(sid)
    assert (row.status, row.attempts, row.last_error) == (DeliveryStatus.PENDING, 0, None)
    slot = a.get_slot(sid)
    assert slot is not None and slot.delivery_status is DeliveryStatus.PENDING
    assert a.claim_deliveries("a", now + MIN, now + 2 * MIN, 10) == []  # b's claim stands
    # b records its attempt; that releases the claim, so it counts once.
    assert b.update_delivery(mine.id, DeliveryStatus.DELIVERED, 1, None, None, now + MIN, "b")
    assert not b.update_delivery(mine.id, DeliveryStatus.FAILED, 2, None, "x", now + MIN, "b")
    slot = a.get_slot(sid)
    assert slot is not None and slot.delivery_status is DeliveryStatus.DELIVERED
    assert a.due_deliveries(now + 10 * MIN, 10) == []


def test_a_retry_releases_the_claim_for_any_worker(opener: Opener, tmp_path: Path) -> None:
    a, b = opener(), opener()
    outputs(a, tmp_path / "out", 1)
    now = T0 + MIN
    (mine,) = a.claim_deliveries("a", now, now + 10 * MIN, 10)
    assert a.update_delivery(mine.id, DeliveryStatus.RETRYING, 1, now + MIN, "502", now, "a")
    assert b.claim_deliveries("b", now + MIN - SEC, now + 10 * MIN, 10) == []  # backing off
    (retry,) = b.claim_deliveries("b", now + MIN, now + 10 * MIN, 10)
    assert (retry.id, retry.attempts, retry.last_error) == (mine.id, 1, "502")
    assert not a.update_delivery(mine.id, DeliveryStatus.DELIVERED, 2, None, None, now, "a")
    # A caller that does not claim still records unconditionally.
    assert a.update_delivery(mine.id, DeliveryStatus.DELIVERED, 2, None, None, now + MIN)
    assert b.claim_deliveries("b", now + 20 * MIN, now + 30 * MIN, 10) == []


# ---- workers -----------------------------------------------------------------------------
class HeldTarget:
    """Blocks while ``hold`` is clear; records what it was handed and what it delivered."""

    def __init__(self) -> None:
        self.key = "held"
        self.hold = asyncio.Event()
        self.hold.set()
        self.handed: list[str] = []
        self.delivered: list[str] = []

    async def send(self, msg: Message) -> SendResult:
        self.handed.append(msg.body)
        await self.hold.wait()
        self.delivered.append(msg.body)
        return SendResult(ok=True)


def test_a_worker_whose_claim_lapsed_records_and_tells_nothing(
    opener: Opener, tmp_path: Path
) -> None:
    """The hung worker's claim lapses, another worker delivers; when the first one's
    send returns at last, its record is refused and it tells nobody anything."""
    a, b = opener(), opener()
    (sid,) = outputs(a, tmp_path / "out", 1)
    clock = FakeClock(T0 + MIN)
    target = HeldTarget()
    told: dict[str, list[Event]] = {"slow": [], "taker": []}

    def worker(store: Store, name: str) -> DeliveryWorker:
        return DeliveryWorker(
            store,
            clock,
            emit=lambda _spec, event: told[name].append(event),
            channel_factory=lambda _url: target,
            owner=name,
        )

    slow, taker = worker(a, "slow"), worker(b, "taker")

    async def scenario() -> None:
        target.hold.clear()
        hung = asyncio.create_task(slow.drain_once())
        while not target.handed:
            await asyncio.sleep(0)
        assert await taker.drain_once() == 0  # the claim stands
        clock.advance(CLAIM_FOR - SEC)
        assert await taker.drain_once() == 0
        clock.advance(SEC)
        target.hold.set()
        assert await taker.drain_once() == 1
        assert await hung == 1  # it started one; its record did not count

    asyncio.run(scenario())
    assert target.delivered == ["output 0", "output 0"]  # the one window left: a hang
    (row,) = a.deliveries(sid)
    assert (row.status, row.attempts) == (DeliveryStatus.DELIVERED, 1)
    assert told["slow"] == []
    assert [type(e) for e in told["taker"]] == [DeliveryRecovered]


def test_claim_for_must_outlast_a_send(opener: Opener) -> None:
    with pytest.raises(ValueError, match="outlast"):
        DeliveryWorker(opener(), FakeClock(T0), lambda _s, _e: None, claim_for=MIN)


class Counting:
    """One target shared by every worker: counts each output it is given."""

    def __init__(self) -> None:
        self.key = "counting"
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    async def send(self, msg: Message) -> SendResult:
        await asyncio.sleep(0.001)  # let the other workers interleave
        with self.lock:
            self.counts[msg.body] += 1
        return SendResult(ok=True)


def test_three_workers_deliver_each_of_200_outputs_once(opener: Opener, tmp_path: Path) -> None:
    setup = opener()
    slots = outputs(setup, tmp_path / "out", 200)
    target = Counting()
    clock = FakeClock(T0 + MIN)  # nothing lapses: any repeat would be a claim failing
    errors: list[BaseException] = []
    start = threading.Barrier(3)
    stores = [opener() for _ in range(3)]  # opened here: SQLite migrates on open

    def node(name: str, store: Store) -> None:
        try:
            worker = DeliveryWorker(
                store,
                clock,
                emit=lambda _spec, _event: None,
                channel_factory=lambda _url: target,
                owner=name,
                batch=7,
            )
            start.wait()
            for _ in range(1000):
                asyncio.run(worker.drain_once())
                if not store.due_deliveries(clock.now(), 1):
                    return
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=node, args=(f"n{i}", store)) for i, store in enumerate(stores)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    assert sum(target.counts.values()) == 200
    assert set(target.counts.values()) == {1}
    assert set(target.counts) == {f"output {i}" for i in range(200)}
    for sid in slots:
        slot = setup.get_slot(sid)
        assert slot is not None and slot.delivery_status is DeliveryStatus.DELIVERED
        assert [(d.status, d.attempts) for d in setup.deliveries(sid)] == [
            (DeliveryStatus.DELIVERED, 1)
        ]


def test_a_dead_nodes_delivery_claims_are_released_at_once(opener: Opener, tmp_path: Path) -> None:
    a, b = opener(), opener()
    (sid,) = outputs(a, tmp_path / "out", 1)
    now = T0 + MIN
    (mine,) = a.claim_deliveries("dead-node", now, now + 3 * MIN, 10)
    assert b.claim_deliveries("new-node", now, now + 3 * MIN, 10) == []
    assert b.release_claims(["dead-node"], now) == 1
    (taken,) = b.claim_deliveries("new-node", now, now + 3 * MIN, 10)
    assert taken.id == mine.id
    assert b.update_delivery(taken.id, DeliveryStatus.DELIVERED, 1, None, None, now, "new-node")
    assert b.release_claims(["dead-node", "new-node"], now) == 0  # settled: nothing to free
    assert a.get_slot(sid).delivery_status is DeliveryStatus.DELIVERED  # type: ignore[union-attr]
