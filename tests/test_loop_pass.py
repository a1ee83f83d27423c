"""A pass of the loop. How long it sleeps after (``Engine._sleep_for``): fires a few ms
apart share a pass, a fire that came due while a pass ran is taken within COALESCE of
its instant (not at once, which made a steady load tick once per fire, nor a poll
later, which made it late by a second), and a fire no pass could move waits for the
poll. And the order within a tick: runs it started take their first step before the
next instant is prepared."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.engine.engine import COALESCE
from agentcron.engine.settings import TickReport
from agentcron.model import SlotStatus, TaskSource, TaskSpec
from agentcron.store.base import Store
from harness import Harness

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def _harness(store: Store, home: Path, next_fire: datetime) -> Harness:
    clock = FakeClock(T0)
    h = Harness(store, clock, home)
    spec = TaskSpec(name="b", every="1h", command=["true"])
    store.upsert_task(spec, TaskSource.API, T0, next_fire)
    h.engine._pass_began = T0  # the pass that just ended began at T0
    return h


def test_a_fire_ahead_is_taken_coalesce_after_it(sqlite_store: Store, home: Path) -> None:
    h = _harness(sqlite_store, home, T0 + 20 * MS)
    h.clock.advance(3 * MS)
    assert h.engine._sleep_for(TickReport()) == pytest.approx(0.017 + COALESCE)


def test_a_fire_due_during_the_pass_is_taken_within_coalesce(
    sqlite_store: Store, home: Path
) -> None:
    """Due 1 ms after the pass began, seen 2 ms after that: it waits COALESCE from its
    instant, so the fires just after it are taken by the same pass."""
    h = _harness(sqlite_store, home, T0 + MS)
    h.clock.advance(3 * MS)
    assert h.engine._sleep_for(TickReport()) == pytest.approx(COALESCE - 0.002)


def test_a_fire_due_longer_than_coalesce_ago_is_taken_at_once(
    sqlite_store: Store, home: Path
) -> None:
    h = _harness(sqlite_store, home, T0 + MS)
    h.clock.advance(MS + 2 * COALESCE * 1000 * MS)
    assert h.engine._sleep_for(TickReport()) == 0.0
    # and so is one left over by a pass that made progress (more than a pass takes)
    h.engine._pass_began = h.clock.now()
    assert h.engine._sleep_for(TickReport(started=1)) == 0.0


def test_a_fire_no_pass_could_move_waits_for_the_poll(sqlite_store: Store, home: Path) -> None:
    """Due before the pass began and the pass moved nothing (no room, a database that
    refuses): ticking again at once would spin."""
    h = _harness(sqlite_store, home, T0 - MS)
    h.clock.advance(3 * MS)
    assert h.engine._sleep_for(TickReport()) == h.engine.settings.poll_interval


def test_started_runs_step_before_the_next_instant_is_prepared(
    sqlite_store: Store, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Preparing a thousand aligned tasks of the next second took tens of ms; done
    before the runs just started took their first step, it made each of them that
    much later."""
    clock = FakeClock(T0)
    h = Harness(sqlite_store, clock, home)
    h.add("now", lambda: None, every="1s")
    clock.advance(timedelta(seconds=1))  # "now" is due; "later" within the look-ahead
    h.add("later", lambda: None, every="1s", anchor=(T0 + 500 * MS).isoformat())
    seen: list[list[bool]] = []
    prepare = h.engine._prepare

    def looking(now: datetime) -> Any:
        seen.append([run.started for run in h.engine._runs.values()])
        return prepare(now)

    monkeypatch.setattr(h.engine, "_prepare", looking)

    async def go() -> None:
        report = await h.engine.tick()
        assert report.started == 1
        await h.engine.wait_idle(10)

    asyncio.run(go())
    assert seen == [[True]]


def test_a_slot_waiting_for_a_provider_says_when_in_its_tasks_zone(
    sqlite_store: Store, home: Path
) -> None:
    """The reason `list` and `runs` show said "cooling down until 14:52:15 UTC" for a
    Berlin task, while the message said 15:52:15 (outside-in probe)."""
    clock = FakeClock(T0)
    h = Harness(sqlite_store, clock, home)
    h.add("call", lambda: "ok", every="1m", timezone="Europe/Berlin", provider="acme")
    until = T0 + timedelta(minutes=30)
    sqlite_store.cool_provider("name:acme", "acme", until, "HTTP 429 slow down", T0)
    clock.advance(timedelta(minutes=1))
    asyncio.run(h.engine.tick())
    (slot,) = sqlite_store.slots("call", limit=5)
    assert slot.status is SlotStatus.RETRYING
    assert slot.reason == "provider acme cooling down until 14:30:00 CEST: HTTP 429 slow down"
