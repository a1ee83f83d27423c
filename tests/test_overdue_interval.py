"""``overdue_after`` is honoured down to a second (issue 12, finding 4).

The watchdog used to list only tasks due for more than 5 minutes, so
``overdue_after: 20s`` was told after 5 minutes, and it looked every 5 s whatever
the limits. Now how far back it looks and how often follow the smallest limit in
use: a quarter of it between the checks, never more often than once a second. The
default rule, ``max(2 periods, 5 min)``, is unchanged. Everything runs on a fake
clock stepped in milliseconds, driving :meth:`Watchdog.run_due` as its thread does.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agentcron.clock import FakeClock
from agentcron.model import IncidentKind
from agentcron.notify import OutboxSender
from agentcron.notify.notifier import Notifier
from agentcron.store.base import Store
from agentcron.watchdog.limits import check_interval
from agentcron.watchdog.watchdog import MIN_OVERDUE, Watchdog, overdue_limit
from harness import Harness
from notify_rig import HOOK, RecordingChannel

STEP = timedelta(milliseconds=100)


class Counting:
    """Counts the watchdog's reads of the store (the cost side of checking often)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*args, **kwargs)

        return counted


def _ok() -> str:
    return "done"


def _rig(store: Store, clock: FakeClock, home: Path) -> tuple[Harness, Watchdog, Counting]:
    h = Harness(store, clock, home)
    notifier = Notifier(store, clock, [HOOK], "UTC")
    counting = Counting(store)
    dog = Watchdog(
        counting,  # the store, its reads counted
        clock,
        notifier.emit,
        period_of=h.service.period,
        count_fires=h.service.count_fires,
    )
    return h, dog, counting


def _first_report(dog: Watchdog, clock: FakeClock, until: datetime) -> datetime | None:
    """Step the clock in 100 ms steps, as the watchdog thread's wake-ups would see it,
    until the task is reported overdue; the fake time of the report."""
    while clock.now() < until:
        clock.advance(STEP)
        if dog.run_due().overdue:
            return clock.now()
    return None


def test_the_check_interval_follows_the_smallest_limit_within_bounds() -> None:
    assert check_interval(MIN_OVERDUE, 5.0) == 5.0  # defaults only: the base interval
    assert check_interval(timedelta(seconds=20), 5.0) == 5.0
    assert check_interval(timedelta(seconds=8), 5.0) == 2.0
    assert check_interval(timedelta(seconds=2), 5.0) == 1.0  # not more often than 1/s
    assert check_interval(timedelta(milliseconds=10), 5.0) == 1.0
    assert check_interval(timedelta(seconds=8), 0.2) == 1.0  # a tiny base is floored too


def test_the_default_rule_is_unchanged_and_explicit_limits_are_floored_at_a_second(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    h, _, _ = _rig(sqlite_store, clock, home)
    hourly = h.add("hourly", _ok, every="1h", timezone="UTC")
    minutely = h.add("minutely", _ok, every="1m", timezone="UTC")
    fast = h.add("fast", _ok, every="1m", timezone="UTC", overdue_after="20s")
    zero = h.add("zero", _ok, every="1m", timezone="UTC", overdue_after="0s")
    assert overdue_limit(hourly, h.service.period(hourly)) == timedelta(hours=2)
    assert overdue_limit(minutely, h.service.period(minutely)) == MIN_OVERDUE
    assert overdue_limit(fast, h.service.period(fast)) == timedelta(seconds=20)
    assert overdue_limit(zero, h.service.period(zero)) == timedelta(seconds=1)


def test_overdue_after_20s_is_told_within_its_check_interval_not_after_5_minutes(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    async def scenario() -> None:
        h, dog, _ = _rig(sqlite_store, clock, home)
        h.add("fast", _ok, every="1m", timezone="UTC", overdue_after="20s")
        clock.advance(timedelta(minutes=1))  # 00:01: the first slot runs
        await h.tick()
        assert dog.overdue_interval() == 5.0  # a quarter of 20 s
        # The loop stops ticking. Due at 00:02, overdue after 00:02:20.
        reported = _first_report(dog, clock, clock.now() + timedelta(minutes=3))
        assert reported is not None
        late = reported - datetime(2026, 6, 1, 0, 2, tzinfo=clock.now().tzinfo)
        assert timedelta(seconds=20) < late <= timedelta(seconds=25), late
        [incident] = sqlite_store.incidents("fast")
        assert incident.kind is IncidentKind.OVERDUE and incident.is_open

    asyncio.run(scenario())


def test_the_smallest_limit_sets_the_pace_and_the_watchdog_reads_no_more_often(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    async def scenario() -> None:
        h, dog, counting = _rig(sqlite_store, clock, home)
        h.add("slow", _ok, every="1m", timezone="UTC")
        h.add("fast", _ok, every="1m", timezone="UTC", overdue_after="8s")
        clock.advance(timedelta(minutes=1))
        await h.tick()  # 00:01: both ran, both due at 00:02
        start = clock.now()
        reported = _first_report(dog, clock, start + timedelta(minutes=2))
        assert reported is not None
        # 00:02 + 8 s, found by a check every 2 s (a quarter of 8 s)
        late = reported - (start + timedelta(minutes=1))
        assert timedelta(seconds=8) < late <= timedelta(seconds=10), late
        # Between 00:01 and the report (~69 s), one read of due tasks per 2 s, not
        # one per 100 ms wake-up; each task's spec read once, not once per check.
        elapsed = (reported - start).total_seconds()
        assert abs(counting.calls["due_heads"] - (elapsed / 2 + 1)) <= 2, counting.calls
        assert counting.calls.get("get_task", 0) == 2, counting.calls  # once per task
        assert counting.calls["smallest_overdue_after"] <= elapsed / 10 + 1, counting.calls
        # "slow" keeps the default rule: told only when it is 5 min late
        assert [i.task for i in sqlite_store.incidents(open_only=True)] == ["fast"]
        later = _first_report(dog, clock, clock.now() + timedelta(minutes=5))
        assert later is not None
        assert later - (start + timedelta(minutes=1)) > MIN_OVERDUE
        assert sorted(i.task for i in sqlite_store.incidents(open_only=True)) == ["fast", "slow"]

    asyncio.run(scenario())


def test_a_task_added_later_with_a_small_limit_speeds_the_checks_up(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    h, dog, _ = _rig(sqlite_store, clock, home)
    h.add("slow", _ok, every="1m", timezone="UTC")
    dog.run_due()
    assert dog.overdue_interval() == 5.0
    h.add("fast", _ok, every="1m", timezone="UTC", overdue_after="3s")
    for _ in range(200):  # 20 s of fake time: the tasks are read again within 10 s
        clock.advance(STEP)
        dog.run_due()
    assert dog.overdue_interval() == 1.0
    sqlite_store.set_paused("fast", True, clock.now(), None)
    clock.advance(timedelta(seconds=11))
    dog.run_due()
    assert dog.overdue_interval() == 5.0  # a paused task's limit is not in use


def test_a_task_kept_firing_on_time_is_never_overdue_however_small_its_limit(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    async def scenario() -> None:
        h, dog, _ = _rig(sqlite_store, clock, home)
        h.add("beat", _ok, every="2s", timezone="UTC", overdue_after="1s")
        channel = RecordingChannel()
        sender = OutboxSender(sqlite_store, channel_factory=lambda _url: channel, clock=clock)
        for _ in range(300):  # 30 s: the loop ticks within 100 ms of every fire
            clock.advance(STEP)
            await h.tick()
            assert dog.run_due().overdue == []
        await sender.drain_once()
        assert channel.sent == []
        assert sqlite_store.incidents("beat") == []

    asyncio.run(scenario())


def test_a_wall_clock_set_back_does_not_pause_the_checks(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    h, dog, counting = _rig(sqlite_store, clock, home)
    h.add("fast", _ok, every="1m", timezone="UTC", overdue_after="8s")
    dog.run_due()
    dog.run_due()
    assert counting.calls["due_heads"] == 1  # the next check is 2 s away
    clock.set(clock.now() - timedelta(hours=1))  # NTP corrects a clock an hour ahead
    dog.run_due()
    assert counting.calls["due_heads"] == 2  # checked now, not in an hour
    assert counting.calls["running_slots"] == 2
    assert counting.calls["smallest_overdue_after"] == 2  # the smallest limit read again too
