"""Catch-up of any length is exact (issue 11 item 6).

The engine records a long downtime in chunks of ``planning.CHUNK`` fires, one chunk
per tick. Whatever the chunking, every missed fire gets exactly one slot, and the
slots are what they would have been had the whole gap been recorded at once: the
later chunks queue behind the earlier ones' slots instead of being skipped as if
those were another run. Only the clock is fake; store, engine and runner are real.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentcron.clock import FakeClock
from agentcron.engine import planning
from agentcron.model import SlotStatus
from agentcron.store.base import Store
from agentcron.store.sqlite import SQLiteStore
from harness import Harness

T0 = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
GAP = 3 * 24 * 60  # fires of an every-1m task while the daemon was down 3 days


async def catch_up(h: Harness, task: str) -> None:
    """Tick (letting runs end) until the task's fires up to now are all recorded. A
    tick that records a chunk of missed fires only is progress too: the daemon's loop
    ticks again at once (``Engine._sleep_for``), where ``Harness.tick`` stops when a
    tick started nothing."""
    for _ in range(1000):
        await h.tick()
        rec = h.store.get_task(task)
        assert rec is not None
        if rec.next_fire_at is None or rec.next_fire_at > h.clock.now():
            return
    raise AssertionError("the task never caught up")


class Concurrency:
    """Counts calls and the most that were ever in progress at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.calls = 0

    def __call__(self) -> str:
        with self.lock:
            self.now += 1
            self.calls += 1
            self.most = max(self.most, self.now)
        with self.lock:
            self.now -= 1
        return "ok"


@pytest.mark.parametrize("overlap", ["skip", "queue"])
def test_three_days_of_every_minute_with_catchup_all(
    sqlite_store: Store, clock: FakeClock, home: Path, overlap: str
) -> None:
    assert planning.CHUNK < GAP  # the gap really spans several chunks
    calls = Concurrency()

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("m", calls, every="1m", catchup="all", catchup_window="4d", overlap=overlap)
        clock.set(T0 + GAP * MIN)  # down from 00:00 to three days later
        await catch_up(h, "m")
        return h

    h = asyncio.run(scenario())
    slots = h.slots("m")
    assert [s.scheduled_for for s in slots] == [T0 + i * MIN for i in range(1, GAP + 1)]
    assert Counter(s.status for s in slots) == {SlotStatus.SUCCEEDED: GAP}
    assert calls.calls == GAP and calls.most == 1  # each ran once, one at a time
    # oldest first: attempts were opened in slot order
    by_attempt = sorted(slots, key=lambda s: h.store.attempts(s.id)[0].id)
    assert by_attempt == slots
    # the late ones are catch-up runs; the fire at the instant of the restart is on time
    assert Counter(s.trigger for s in slots) == {"catchup": GAP - 1, "schedule": 1}
    rec = h.store.get_task("m")
    assert rec is not None and rec.next_fire_at == T0 + (GAP + 1) * MIN


@pytest.mark.parametrize("landing", [timedelta(0), timedelta(minutes=10, seconds=40)])
def test_three_days_of_every_minute_with_catchup_latest(
    sqlite_store: Store, clock: FakeClock, home: Path, landing: timedelta
) -> None:
    """``landing``: how long after the last missed fire the daemon comes back (0: that
    fire is on time; else it is late and is the one catch-up run)."""
    calls = Concurrency()
    last = T0 + GAP * MIN

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("m", calls, every="1m", catchup="latest", catchup_window="4d")
        clock.set(last + landing)
        await catch_up(h, "m")
        return h

    h = asyncio.run(scenario())
    slots = h.slots("m")
    fires = GAP + landing // MIN
    assert [s.scheduled_for for s in slots] == [T0 + i * MIN for i in range(1, fires + 1)]
    assert [s.status for s in slots] == [SlotStatus.MISSED] * (fires - 1) + [SlotStatus.SUCCEEDED]
    assert all("catchup: latest" in (s.reason or "") for s in slots[:-1])
    assert slots[-1].trigger == ("schedule" if landing == timedelta(0) else "catchup")
    assert calls.calls == 1


@pytest.mark.parametrize("chunk", [1, 2, 3, 1000])
def test_a_fire_after_the_restart_still_meets_the_backlog(
    store: Store,
    clock: FakeClock,
    home: Path,
    chunk: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The backlog is not an overlapping run for the fires of its own gap, but it is one
    for a fire that comes due after it was recorded: that fire is skipped (overlap:
    skip) while the backlog still runs, with any chunk size."""
    monkeypatch.setattr(planning, "CHUNK", chunk)
    release = threading.Event()
    started: list[datetime] = []

    def blocking() -> str:
        started.append(clock.now())
        if not release.wait(10):
            raise RuntimeError("never released")
        return "ok"

    async def scenario() -> Harness:
        h = Harness(store, clock, home)
        h.add("t", blocking, every="1m", catchup="all", catchup_window="1h")
        clock.set(T0 + 5 * MIN)  # fires 00:01..00:05 were missed (00:05 is on time)
        await h.engine.tick()  # the first chunk; its first slot starts and blocks
        clock.advance(MIN + timedelta(seconds=1))  # 00:06 comes due while it runs
        for _ in range(8):  # the rest of the gap, a chunk a tick, then 00:06
            await h.engine.tick()
        release.set()
        await h.engine.wait_idle(10)
        await h.tick()
        return h

    h = asyncio.run(scenario())
    slots = h.slots("t")
    assert [s.scheduled_for for s in slots] == [T0 + i * MIN for i in range(1, 7)]
    assert [s.status for s in slots] == [SlotStatus.SUCCEEDED] * 5 + [SlotStatus.SKIPPED]
    assert "still running (overlap: skip)" in (slots[-1].reason or "")
    assert len(started) == 5


def _run_gap(
    folder: Path, chunk: int, fires: int, offset: timedelta, policy: str, overlap: str
) -> list[tuple[datetime, SlotStatus]]:
    """Record and run a gap of ``fires`` missed fires of an every-1m task (the daemon
    back ``offset`` after the last one) with ``planning.CHUNK`` = ``chunk``."""
    clock = FakeClock(T0)
    store = SQLiteStore(folder / f"c{chunk}.db")
    home = folder / f"home{chunk}"
    home.mkdir()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(planning, "CHUNK", chunk)

            async def scenario() -> Harness:
                h = Harness(store, clock, home)
                h.add("t", lambda: "ok", every="1m", catchup=policy, overlap=overlap)
                clock.set(T0 + fires * MIN + offset)
                await catch_up(h, "t")
                return h

            h = asyncio.run(scenario())
        return [(s.scheduled_for, s.status) for s in h.slots("t")]
    finally:
        store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunk=st.integers(min_value=1, max_value=12),
    fires=st.integers(min_value=1, max_value=40),
    offset_s=st.sampled_from([0, 20, 30, 31, 59]),
    policy=st.sampled_from(["all", "latest", "none"]),
    overlap=st.sampled_from(["skip", "queue", "allow", "replace"]),
)
def test_any_chunk_size_records_one_slot_per_fire(
    chunk: int, fires: int, offset_s: int, policy: str, overlap: str
) -> None:
    """One slot per fire of the gap, and the very slots a single chunk would give."""
    offset = timedelta(seconds=offset_s)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        chunked = _run_gap(folder, chunk, fires, offset, policy, overlap)
        whole = _run_gap(folder, 100_000, fires, offset, policy, overlap)
    assert [at for at, _ in chunked] == [T0 + i * MIN for i in range(1, fires + 1)]
    assert chunked == whole
    statuses: list[Any] = [status for _, status in chunked]
    assert SlotStatus.SKIPPED not in statuses
    # the last fire is on time while it is at most half a period old (every: 1m)
    on_time = offset <= timedelta(seconds=30)
    if policy == "all":
        assert statuses == [SlotStatus.SUCCEEDED] * fires
    elif policy == "latest":
        assert statuses == [SlotStatus.MISSED] * (fires - 1) + [SlotStatus.SUCCEEDED]
    else:
        last = SlotStatus.SUCCEEDED if on_time else SlotStatus.MISSED
        assert statuses == [SlotStatus.MISSED] * (fires - 1) + [last]
