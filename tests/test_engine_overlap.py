"""Overlap (PRODUCT.md §4): a slot comes due while the previous run is still going.

The slow task is an inline async function held open by an event, so "slow" costs no
wall time; the clock is fake."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from agentcron.model import NewSlot, SlotStatus
from harness import Harness, until


def _statuses(h: Harness) -> list[SlotStatus]:
    return [s.status for s in h.slots("slow")]


async def _two_slots(h: Harness, policy: str) -> tuple[asyncio.Event, list[int]]:
    release = asyncio.Event()
    started: list[int] = []

    async def slow() -> str:
        started.append(len(started) + 1)
        await release.wait()
        return "done"

    h.add("slow", slow, every="1m", overlap=policy)
    h.clock.advance(timedelta(minutes=1))
    await h.tick(settle=False)
    await until(lambda: len(started) == 1)
    h.clock.advance(timedelta(minutes=1))
    await h.tick(settle=False)
    await asyncio.sleep(0)
    return release, started


def test_skip_records_the_skipped_slot_with_reason(sqlite_store, clock, home) -> None:
    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        release, started = await _two_slots(h, "skip")
        assert _statuses(h) == [SlotStatus.RUNNING, SlotStatus.SKIPPED]
        release.set()
        await h.engine.wait_idle()
        await h.tick()
        assert started == [1]
        return h

    h = asyncio.run(scenario())
    slots = h.slots("slow")
    assert [s.status for s in slots] == [SlotStatus.SUCCEEDED, SlotStatus.SKIPPED]
    assert "still running (overlap: skip)" in (slots[1].reason or "")


def test_queue_runs_the_waiting_slot_after_the_first(sqlite_store, clock, home) -> None:
    async def scenario() -> tuple[Harness, list[int]]:
        h = Harness(sqlite_store, clock, home)
        release, started = await _two_slots(h, "queue")
        assert _statuses(h) == [SlotStatus.RUNNING, SlotStatus.PENDING]
        # A third slot while one is already queued is skipped: one waits, not a pile.
        h.clock.advance(timedelta(minutes=1))
        await h.tick(settle=False)
        assert _statuses(h) == [SlotStatus.RUNNING, SlotStatus.PENDING, SlotStatus.SKIPPED]
        release.set()
        await h.engine.wait_idle()
        await h.tick()
        return h, started

    h, started = asyncio.run(scenario())
    assert started == [1, 2]
    assert [s.status for s in h.slots("slow")] == [
        SlotStatus.SUCCEEDED,
        SlotStatus.SUCCEEDED,
        SlotStatus.SKIPPED,
    ]


def test_allow_runs_both_at_once(sqlite_store, clock, home) -> None:
    async def scenario() -> tuple[Harness, list[int]]:
        h = Harness(sqlite_store, clock, home)
        release, started = await _two_slots(h, "allow")
        await until(lambda: len(started) == 2)
        assert _statuses(h) == [SlotStatus.RUNNING, SlotStatus.RUNNING]
        release.set()
        await h.engine.wait_idle()
        return h, started

    h, _started = asyncio.run(scenario())
    assert [s.status for s in h.slots("slow")] == [SlotStatus.SUCCEEDED, SlotStatus.SUCCEEDED]


def test_replace_stops_the_old_run(sqlite_store, clock, home) -> None:
    async def scenario() -> tuple[Harness, list[int]]:
        h = Harness(sqlite_store, clock, home)
        release, started = await _two_slots(h, "replace")
        await until(lambda: h.slots("slow")[0].status is SlotStatus.CANCELLED)
        await h.tick(settle=False)
        await until(lambda: len(started) == 2)
        release.set()
        await h.engine.wait_idle()
        return h, started

    h, _started = asyncio.run(scenario())
    slots = h.slots("slow")
    assert [s.status for s in slots] == [SlotStatus.CANCELLED, SlotStatus.SUCCEEDED]
    assert "replaced by the run due at" in (slots[0].error or "")


def test_replace_stops_a_run_held_by_another_node(store, clock, home) -> None:
    """Two nodes on one database: the run is held by node b, the newer fire is planned
    by node a. a cannot stop b's run; it asks, through the slot's row, and b stops it
    at its next look (within a second), as its own. Before, the run went on and the
    new fire waited for it to end by itself."""

    async def scenario() -> tuple[Harness, list[int]]:
        release = asyncio.Event()
        started: list[int] = []

        async def slow() -> str:
            started.append(len(started) + 1)
            await release.wait()
            return "done"

        a, b = Harness(store, clock, home), Harness(store, clock, home, owner="node-b")
        for node in (a, b):  # leases that outlast the fake clock's minute steps
            node.engine.settings.lease = timedelta(minutes=10)
        a.add("slow", slow, every="1m", overlap="replace")
        b.registry.register_callable("tests:slow", slow)
        clock.advance(timedelta(minutes=1))
        await b.tick(settle=False)  # b starts the 00:01 run
        await until(lambda: len(started) == 1)
        clock.advance(timedelta(minutes=1))
        await a.tick(settle=False)  # a records the 00:02 fire, which replaces it
        first = a.slots("slow")[0]
        assert first.status is SlotStatus.RUNNING and first.lease_owner == "node-b"
        asked = store.stops_asked("node-b")
        assert list(asked) == [first.id] and "replaced by the run due at" in asked[first.id]
        assert store.stops_asked(a.engine.settings.owner) == {}
        clock.advance(timedelta(seconds=1))
        await b.tick(settle=False)  # b looks, and stops it
        await until(lambda: a.slots("slow")[0].status is SlotStatus.CANCELLED)
        await a.tick(settle=False)
        await until(lambda: len(started) == 2)
        release.set()
        await a.engine.wait_idle()
        await b.engine.wait_idle()
        return a, started

    a, started = asyncio.run(scenario())
    slots = a.slots("slow")
    assert [s.status for s in slots] == [SlotStatus.CANCELLED, SlotStatus.SUCCEEDED]
    assert (slots[0].error or "").startswith("replaced by the run due at 00:02"), slots[0].error
    assert started == [1, 2]


def test_a_fire_waiting_behind_the_run_it_replaces_is_not_said_to_wait_for_a_worker(
    sqlite_store, clock, home
) -> None:
    """The run is held by a node that is gone (killed: its lease has not lapsed yet), so
    the fire that replaces it waits; the next fire takes its place. Its reason said "it
    was still waiting for a free worker" while workers were free (outside-in probe), and
    the wait counted toward a "waited for a free worker" warning."""

    async def scenario() -> Harness:
        started: list[int] = []

        async def slow() -> str:
            started.append(1)
            await asyncio.Event().wait()
            return "never"

        a, b = Harness(sqlite_store, clock, home), Harness(sqlite_store, clock, home, owner="b")
        for node in (a, b):
            node.engine.settings.lease = timedelta(minutes=10)
        a.add("slow", slow, every="1m", overlap="replace")
        b.registry.register_callable("tests:slow", slow)
        clock.advance(timedelta(minutes=1))
        await b.tick(settle=False)  # b starts the 00:01 run, then is gone
        await until(lambda: len(started) == 1)
        clock.advance(timedelta(minutes=1))
        await a.tick(settle=False)  # 00:02 replaces it and waits for it to stop
        clock.advance(timedelta(minutes=1))
        await a.tick(settle=False)  # 00:03 takes the place of the waiting 00:02
        assert a.engine._starving._waiting_since == {}
        for node in (a, b):
            await node.engine.shutdown(0)
        return a

    a = asyncio.run(scenario())
    second = a.slots("slow")[1]
    assert second.status is SlotStatus.SUPERSEDED
    assert second.reason == (
        "superseded by the run due at 00:03: it was still waiting for the run it replaces to stop"
    )


def test_retry_waiting_slot_is_superseded_by_next_slot(sqlite_store, clock, home) -> None:
    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)

        def flaky() -> str:
            raise ConnectionResetError("peer reset")

        # base backoff 10 min: the next hourly slot comes before the retry would
        h.add("slow", flaky, every="5m", retry_backoff={"base": "10m"})
        h.clock.advance(timedelta(minutes=5))
        await h.tick()
        assert _statuses(h) == [SlotStatus.RETRYING]
        h.clock.advance(timedelta(minutes=5))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    slots = h.slots("slow")
    assert slots[0].status is SlotStatus.SUPERSEDED
    assert "superseded by the run due at" in (slots[0].reason or "")
    assert slots[1].status is SlotStatus.RETRYING


def test_replace_stopping_a_run_its_own_tick_just_started_records_it(
    sqlite_store, clock, home
) -> None:
    """The run started by a tick is replaced by a fire of the same tick, before its
    task took a first step. A task cancelled then never runs its coroutine: before,
    nothing recorded its end, the slot stayed running with its lease renewed, and the
    task never ran again (found while testing the replace streak). Now it is recorded
    cancelled, its action never called, and the newer slot runs."""
    calls: list[int] = []

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)

        def work() -> str:
            calls.append(1)
            return "done"

        h.add("slow", work, every="1m", overlap="replace")
        h.clock.advance(timedelta(minutes=1))
        # a triggered run waits; one tick starts it (a waiting slot goes first) and
        # then records the fire of 00:01, which replaces it at once
        now = h.clock.now()
        sqlite_store.add_slot("slow", NewSlot(now - timedelta(seconds=30), trigger="manual"), now)
        await h.engine.tick()
        await until(lambda: h.engine.running == 0)
        await h.tick()
        return h

    h = asyncio.run(scenario())
    first, second = h.slots("slow")
    assert first.trigger == "manual" and first.status is SlotStatus.CANCELLED
    assert "replaced by the run due at 00:01" in (first.error or "")
    assert first.lease_owner is None
    assert second.status is SlotStatus.SUCCEEDED
    assert calls == [1]  # the replaced run's action was never called


def test_a_tick_counts_the_slots_it_recorded_and_left_waiting_for_a_worker(
    sqlite_store, clock, home
) -> None:
    """The database-recovery message said "recorded 12 slot(s) … (3 started, 4
    recorded missed, 1 skipped)": the 4 left waiting for a worker were not named
    (outside-in probe). The tick's report counts them."""

    async def scenario() -> tuple[int, int, int, int]:
        h = Harness(sqlite_store, clock, home, max_concurrency=1)
        gate = asyncio.Event()

        async def hold() -> str:
            await gate.wait()
            return "done"

        for name in ("a", "b", "c"):
            h.add(name, hold, every="1m")
        clock.advance(timedelta(minutes=1))
        report = await h.engine.tick()
        gate.set()
        await h.engine.wait_idle()
        return report.materialized, report.started, report.fresh, report.waiting

    assert asyncio.run(scenario()) == (3, 1, 1, 2)


def test_a_fire_skipped_behind_a_silent_nodes_run_says_the_node_holds_it(
    sqlite_store, clock, home
) -> None:
    """A node frozen while its runs end: the others skipped the next fires "the previous
    run (slot 24) was still running" and told "skipped 3 times in a row: the previous run
    was still running", though the run had ended at 19:53:01 (outside-in probe, three
    nodes on PostgreSQL). What is known is said: its node holds it, silent since when."""
    from agentcron.model import NodeInfo

    def ok() -> str:
        return "ok"

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("job", ok, every="1m", overlap="skip")
        h.add("live", ok, every="1m", overlap="skip")
        now = clock.now()
        for node, ago in (("frozen", timedelta(minutes=2)), ("busy", timedelta(seconds=1))):
            beat = now - ago
            sqlite_store.register_node(NodeInfo(node, "host2", 4242, "/h", beat, beat))
        for task, owner in (("job", "frozen"), ("live", "busy")):
            sqlite_store.add_slot(task, NewSlot(scheduled_for=now), now)
            [claim] = sqlite_store.claim(owner, now, now + timedelta(hours=1), 1)
            assert claim.spec.name == task
        clock.advance(timedelta(minutes=1))
        sqlite_store.heartbeat("busy", clock.now())  # beats on; "frozen" does not
        await h.tick(settle=False)
        return h

    h = asyncio.run(scenario())
    [_, skipped] = h.slots("job")
    assert skipped.status is SlotStatus.SKIPPED
    assert (skipped.reason or "").startswith(
        "the previous run (slot 1) is still held by the node on host2 (pid 4242), not heard "
        "from since 23:58:00 UTC: it may have ended there unseen"
    ), skipped.reason
    [_, behind_live] = h.slots("live")
    assert "was still running (overlap: skip)" in (behind_live.reason or "")
    from agentcron.notify.notifier import _plain_reason

    assert _plain_reason(skipped.reason or "") == (  # the skip streak's words
        "the previous run was still held by a node not heard from (it may have ended there unseen)"
    )


def test_a_queue_skip_names_its_fire_with_seconds(sqlite_store, clock, home) -> None:  # type: ignore[no-untyped-def]
    """ "(overlap: queue); 08:39 skipped" named the 08:39:50 fire (outside-in probe)."""

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        release = asyncio.Event()

        async def slow() -> str:
            await release.wait()
            return "done"

        h.add("slow", slow, every="50s", overlap="queue", timezone="UTC")
        for _ in range(3):
            h.clock.advance(timedelta(seconds=50))
            await h.tick(settle=False)
            await asyncio.sleep(0)
        release.set()
        await h.engine.wait_idle()
        return h

    h = asyncio.run(scenario())
    (skipped,) = [s for s in h.slots("slow") if s.status is SlotStatus.SKIPPED]
    assert skipped.scheduled_for.second == 30
    assert "(overlap: queue); 00:02:30 skipped" in (skipped.reason or ""), skipped.reason
