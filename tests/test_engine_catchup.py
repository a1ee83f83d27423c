"""Downtime and catch-up (PRODUCT.md §3) with a fake clock: no sleeping, real store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.model import SlotStatus
from harness import Harness


def _iso(slots: list, status: SlotStatus | None = None) -> list[str]:
    return [s.scheduled_for.isoformat() for s in slots if status is None or s.status is status]


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("policy", ["latest", "all", "none"])
def test_five_hours_down_over_hourly_task(sqlite_store, clock, home, policy: str) -> None:
    calls: list[datetime] = []

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add(
            "hourly",
            lambda: calls.append(clock.now()) or "ran",
            cron="0 * * * *",
            timezone="UTC",
            catchup=policy,
        )
        # 00:00 -> 01:00: the daemon is up and fires 01:00 on time.
        await h.run_until(datetime(2026, 6, 1, 1, 0, 1, tzinfo=UTC), timedelta(minutes=30))
        assert _iso(h.slots("hourly")) == ["2026-06-01T01:00:00+00:00"]
        # Down from 01:00:01 to 06:30: slots 02..06 came due while nobody was looking.
        clock.set(datetime(2026, 6, 1, 6, 30, tzinfo=UTC))
        await h.tick()
        return h

    h = run(scenario())
    slots = h.slots("hourly")
    assert _iso(slots) == [f"2026-06-01T0{i}:00:00+00:00" for i in range(1, 7)]
    late = slots[1:]
    if policy == "latest":
        assert [s.status for s in late] == [SlotStatus.MISSED] * 4 + [SlotStatus.SUCCEEDED]
        assert all("catchup: latest" in (s.reason or "") for s in late[:4])
    elif policy == "all":
        assert [s.status for s in late] == [SlotStatus.SUCCEEDED] * 5
        # oldest first: the calls happened in slot order
        by_attempt = sorted(slots, key=lambda s: h.store.attempts(s.id)[0].id)
        assert _iso(by_attempt) == _iso(slots)
    else:
        assert [s.status for s in late] == [SlotStatus.MISSED] * 5
        assert all("catchup: none" in (s.reason or "") for s in late)
    expected_calls = {"latest": 2, "all": 6, "none": 1}[policy]
    assert len(calls) == expected_calls
    # The grid does not shift: the next fire is 07:00 sharp.
    rec = h.store.get_task("hourly")
    assert rec is not None and rec.next_fire_at == datetime(2026, 6, 1, 7, 0, tzinfo=UTC)


def test_slots_older_than_window_are_missed(sqlite_store, clock, home) -> None:
    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add(
            "daily",
            lambda: "ok",
            cron="0 2 * * *",
            timezone="UTC",
            catchup="all",
            catchup_window="36h",
        )
        clock.set(datetime(2026, 6, 5, 12, 0, tzinfo=UTC))  # 4 fires missed: 1st..4th... 5th 02:00
        await h.tick()
        return h

    h = run(scenario())
    slots = h.slots("daily")
    assert _iso(slots) == [f"2026-06-0{d}T02:00:00+00:00" for d in range(1, 6)]
    assert [s.status for s in slots] == [SlotStatus.MISSED] * 3 + [SlotStatus.SUCCEEDED] * 2
    assert "older than catchup_window" in (slots[0].reason or "")


def test_on_time_fire_runs_even_with_catchup_none(sqlite_store, clock, home) -> None:
    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("t", lambda: "ok", every="10m", catchup="none")
        await h.run_until(clock.now() + timedelta(minutes=30), timedelta(seconds=20))
        return h

    h = run(scenario())
    assert [s.status for s in h.slots("t")] == [SlotStatus.SUCCEEDED] * 3


def test_every_has_no_drift_with_slow_runs(sqlite_store, clock, home) -> None:
    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)

        def slow() -> str:
            clock.advance(timedelta(seconds=7))  # each run "takes" 7 s of fake time
            return "done"

        h.add("t", slow, every="1m")
        await h.run_until(clock.now() + timedelta(minutes=5), timedelta(seconds=15))
        return h

    h = run(scenario())
    times = _iso(h.slots("t"))
    assert times[:4] == [f"2026-06-01T00:0{i}:00+00:00" for i in range(1, 5)]


def test_after_a_downtime_a_waiting_retry_gives_way_to_the_newest_fire(
    sqlite_store: Any, clock: Any, home: Path
) -> None:
    """Stopped while a retry waited, started after the next fire was due: the old retry
    ran first and the newest fire, the one `catchup: latest` keeps, was recorded skipped
    behind it ("the previous run was still running"; outside-in probe). The retry gives
    way to that fire, as it does when the fire comes first while the daemon runs."""
    import threading

    release = threading.Event()

    def always_down() -> str:
        if not release.is_set():
            raise ConnectionError("upstream reset the connection")
        return "ok"

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add(
            "trans",
            always_down,
            every="1m",
            retries=3,
            retry_backoff={"base": "15s", "jitter": 0},
            catchup="latest",
        )
        clock.advance(timedelta(minutes=1))
        await h.tick()  # fails; its retry waits 15 s
        clock.advance(timedelta(minutes=3))  # the daemon was away meanwhile
        release.set()
        await h.tick()
        return h

    h = asyncio.run(scenario())
    statuses = [(s.status.value, s.reason) for s in h.slots("trans")]
    assert not [s for s in statuses if s[0] == "skipped"], statuses
    assert statuses[0][0] == "superseded", statuses
    assert statuses[-1][0] == "succeeded", statuses


def test_a_one_shot_tasks_retry_runs_after_its_only_fire(
    sqlite_store: Any, clock: Any, home: Path
) -> None:
    """An ``at`` task has no next fire once it has fired: the claim's test of "the next
    fire is due too" was NULL for it, and its retry was never claimed."""
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("upstream reset the connection")
        return "ok"

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add(
            "once",
            flaky,
            at="2026-06-01T00:01:00+00:00",
            retries=2,
            retry_backoff={"base": "10s", "jitter": 0},
        )
        clock.advance(timedelta(minutes=1))
        await h.tick()
        await h.engine.wait_idle()
        clock.advance(timedelta(seconds=15))
        await h.tick()
        await h.engine.wait_idle()
        return h

    h = asyncio.run(scenario())
    assert [s.status for s in h.slots("once")] == [SlotStatus.SUCCEEDED], h.slots("once")
    assert len(calls) == 2


def test_a_fire_that_waited_gives_way_to_the_newer_fire_due_with_it(
    sqlite_store: Any, clock: Any, home: Path
) -> None:
    """A fire recorded but not started (its start failed: a disk that came and went), a
    retry waiting, and the next fire due, all at one tick: the newest runs and the two
    older give way to it. Before, the waiting fire started first, the newest was
    skipped behind it ("the previous run was still running") and the retry ran after
    it (outside-in probe of a flapping disk, catchup: latest)."""
    from agentcron.model import NewSlot

    fails = [True]

    def job() -> str:
        if fails[0]:
            fails[0] = False
            raise ConnectionError("upstream reset the connection")
        return "ok"

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add(
            "q",
            job,
            every="15s",
            retries=1,
            retry_backoff={"base": "5s", "jitter": 0},
            catchup="latest",
            timezone="UTC",
        )
        clock.advance(timedelta(seconds=15))
        await h.tick()  # 00:00:15 runs and fails: its retry waits until :20
        await h.engine.wait_idle()
        clock.advance(timedelta(seconds=15))  # 00:00:30 is recorded, and cannot start
        now = clock.now()
        assert h.store.materialize("q", now, now + timedelta(seconds=15), [NewSlot(now)], now)
        clock.advance(timedelta(seconds=15))  # 00:00:45: all three due at once
        await h.tick()
        await h.engine.wait_idle()
        return h

    h = asyncio.run(scenario())
    got = {s.scheduled_for.strftime("%H:%M:%S"): s.status.value for s in h.slots("q")}
    assert got == {
        "00:00:15": "superseded",
        "00:00:30": "superseded",
        "00:00:45": "succeeded",
    }, got


def test_a_one_shot_that_waited_for_a_worker_past_its_expires_is_recorded_expired(
    sqlite_store: Any, clock: Any, home: Path
) -> None:
    """``expires`` was applied only when the slot was recorded: a one-shot that then
    waited 19 s for a free worker (max_concurrency 1), with ``expires: 5s``, ran anyway
    (outside-in probe). It is recorded expired, naming the wait; a later one-shot that
    gets a worker in time runs."""
    release = asyncio.Event()

    async def hog() -> str:
        await release.wait()
        return "done"

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.engine.settings.max_concurrency = 1
        h.add("hog", hog, at="2026-06-01T00:01:00+00:00")
        h.add("exp", lambda: "ran", at="2026-06-01T00:01:00+00:00", expires="5s")
        h.add("ok", lambda: "ran", at="2026-06-01T00:01:30+00:00", expires="1m")
        clock.advance(timedelta(minutes=1))
        await h.engine.tick()  # hog starts; exp waits for the worker
        release.set()
        await h.engine.wait_idle()
        clock.advance(timedelta(seconds=19))  # the worker is free 19 s after exp's time
        await h.engine.tick()
        await h.engine.wait_idle()
        clock.advance(timedelta(seconds=15))  # 00:01:34
        await h.tick()
        await h.engine.wait_idle()
        return h

    h = asyncio.run(scenario())
    (exp,) = h.slots("exp")
    assert exp.status is SlotStatus.EXPIRED, exp
    assert exp.reason is not None and "waited" in exp.reason and "(expires)" in exp.reason
    assert [s.status for s in h.slots("ok")] == [SlotStatus.SUCCEEDED]
