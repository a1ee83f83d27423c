"""The watchdog's threads sleep until something can be due (issue 16: ≤ 1 wake-up a
second for an idle daemon), and still notice a stall, a stuck run and an overdue task
as promptly as when they woke every second.

The waits are computed by two small methods (``loop_check_wait``, ``checks_wait``),
tested here with a fake clock and a fake monotonic clock; the threads themselves are
then run for real with short limits, counting how often they look.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from agentcron.clock import FakeClock
from agentcron.model import Message, NewSlot, TaskSource, TaskSpec
from agentcron.store.base import Store
from agentcron.watchdog.limits import CHECK_FLOOR
from agentcron.watchdog.watchdog import Watchdog
from daemon_proc import wait_for
from notify_rig import HOOK, RecordingChannel


def _dog(store: Store, clock: FakeClock, **kw: Any) -> Watchdog:
    return Watchdog(
        store,
        clock,
        lambda _spec, _event: None,
        period_of=lambda _spec: timedelta(minutes=1),
        count_fires=lambda _spec, _a, _b: 1,
        **kw,
    )


def test_the_stall_thread_sleeps_until_the_loop_could_first_count_as_stalled(
    sqlite_store: Store, clock: FakeClock
) -> None:
    mono = [1000.0]
    last = [1000.0]
    dog = _dog(
        sqlite_store,
        clock,
        last_tick=lambda: last[0],
        stall_after=30.0,
        monotonic=lambda: mono[0],
    )
    assert dog.loop_check_wait() == 30.0  # the loop just passed
    mono[0] = 1012.0
    assert dog.loop_check_wait() == 18.0  # 12 s silent: 18 s until it could be a stall
    mono[0] = 1029.5
    assert dog.loop_check_wait() == CHECK_FLOOR  # never less than the floor
    mono[0] = 1031.0
    dog.check_once()
    assert dog.stalled
    assert dog.loop_check_wait() == CHECK_FLOOR  # while stalled: looks every second for its end
    last[0] = mono[0] = 1040.0
    dog.check_once()
    assert not dog.stalled
    assert dog.loop_check_wait() == 30.0


def test_without_a_loop_to_watch_the_stall_thread_keeps_the_floor(
    sqlite_store: Store, clock: FakeClock
) -> None:
    assert _dog(sqlite_store, clock).loop_check_wait() == CHECK_FLOOR


def test_the_checks_thread_sleeps_until_its_next_due_check(
    sqlite_store: Store, clock: FakeClock
) -> None:
    dog = _dog(sqlite_store, clock, interval=5.0)
    assert dog.checks_wait() == CHECK_FLOOR  # nothing planned yet: look soon
    dog.run_due()  # plans both checks from the fake now
    assert dog.checks_wait() == 5.0  # no overdue limit in use: both every interval
    clock.advance(timedelta(seconds=3))
    assert dog.checks_wait() == 2.0
    clock.advance(timedelta(seconds=2, milliseconds=990))
    assert dog.checks_wait() == 0.05  # due now: at least 50 ms, never a busy loop
    clock.advance(timedelta(hours=-2))  # the wall clock set back: never parked past interval
    assert dog.checks_wait() == 5.0


def test_the_checks_thread_keeps_the_floor_while_it_stands_in_for_a_stalled_loop(
    sqlite_store: Store, clock: FakeClock
) -> None:
    mono = [0.0]
    dog = _dog(
        sqlite_store,
        clock,
        interval=5.0,
        last_tick=lambda: 0.0,
        stall_after=30.0,
        monotonic=lambda: mono[0],
    )
    dog.run_due()
    assert dog.checks_wait() == 5.0
    mono[0] = 31.0
    dog.check_once()
    assert dog.stalled and dog.checks_wait() == CHECK_FLOOR


class _Loop:
    """The engine loop as the watchdog's stall thread reads it: its last pass is now
    while it ticks, and stays where it was once it wedges."""

    def __init__(self) -> None:
        self._ticking = threading.Event()
        self._ticking.set()
        self.wedged_at = 0.0

    def last_tick(self) -> float:
        return time.monotonic() if self._ticking.is_set() else self.wedged_at

    def wedge(self) -> None:
        self.wedged_at = time.monotonic()
        self._ticking.clear()


def _counting(dog: Watchdog, name: str) -> list[float]:
    """Record each time ``dog.name`` runs (its calls, on the threads)."""
    calls: list[float] = []
    real = getattr(dog, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        return real(*args, **kwargs)

    setattr(dog, name, counted)
    return calls


def test_real_threads_look_rarely_while_the_loop_ticks_and_find_a_stall_promptly(
    sqlite_store: Store, clock: FakeClock
) -> None:
    """With a 0.1 s floor the old threads looked ten times a second each; now the stall
    thread looks once per ``stall_after`` while the loop ticks, and a stall is still
    told about ``stall_after`` after the loop's last pass."""
    loop = _Loop()
    stalls: list[float] = []

    dog = _dog(
        sqlite_store,
        clock,
        interval=0.1,
        last_tick=loop.last_tick,
        stall_after=0.8,
        on_stall=stalls.append,
    )
    looks = _counting(dog, "_check_loop")
    dog.start()
    try:
        time.sleep(1.0)
        # The first look after 0.1 s, then one per 0.8 s while the loop ticks: the old
        # floor would have made about ten.
        assert len(looks) <= 3, looks
        loop.wedge()
        wait_for(lambda: stalls, what="the stall found")
        found_after = time.monotonic() - loop.wedged_at
        assert found_after >= 0.8  # not before stall_after
        assert dog.alive()
    finally:
        dog.stop()
    assert len(stalls) == 1


def test_real_threads_still_find_a_stuck_run_on_their_interval(
    sqlite_store: Store, clock: FakeClock
) -> None:
    """The checks' thread sleeps until its next planned check; a stuck run is found on
    the first check after it crossed ``stuck_after`` (the fake clock moves it there)."""
    found: list[object] = []
    spec = TaskSpec.model_validate(
        {"name": "slow", "every": "1h", "timezone": "UTC", "command": ["true"], "stuck_after": "1m"}
    )
    now = clock.now()
    sqlite_store.upsert_task(spec, TaskSource.API, now, now + timedelta(hours=1))
    assert sqlite_store.add_slot("slow", NewSlot(scheduled_for=now, trigger="manual"), now)
    # Claimed: running, with an open attempt, as a run in progress.
    [_claim] = sqlite_store.claim("test", now, now + timedelta(hours=1), 1)
    dog = Watchdog(
        sqlite_store,
        clock,
        lambda _spec, event: found.append(event),
        period_of=lambda _spec: timedelta(hours=1),
        count_fires=lambda _spec, _a, _b: 1,
        interval=0.2,
    )
    dog.start()
    try:
        time.sleep(0.5)
        assert found == []
        clock.advance(timedelta(minutes=2))
        wait_for(lambda: found, what="the stuck run reported")
    finally:
        dog.stop()
    assert len(found) == 1


def test_a_stall_wakes_the_checks_thread_to_send_the_outbox_for_the_loop(
    sqlite_store: Store, clock: FakeClock
) -> None:
    """The checks' thread plans its next look 30 s ahead here; a stall that begins
    meanwhile must not leave a waiting message unsent for those 30 s: the stall thread
    wakes it, and it sends the outbox in the loop's place."""
    channel = RecordingChannel()
    loop = _Loop()

    dog = _dog(
        sqlite_store,
        clock,
        interval=30.0,
        last_tick=loop.last_tick,
        stall_after=0.5,
        channel_factory=lambda _url: channel,
    )
    checks = _counting(dog, "run_due")
    dog.start()
    try:
        wait_for(lambda: checks, what="the first check")
        # its next look is planned half a minute ahead (once that check, counted as
        # it begins, has planned it: on a loaded machine it is still running here)
        wait_for(lambda: dog.checks_wait() > 20, what="the next look planned 30 s ahead")
        sqlite_store.enqueue(
            HOOK,
            HOOK,
            Message(
                title="t",
                body="the nightly story failed",
                task="story",
                event="opened",
                incident_kind="failure",
                severity="failure",
            ),
            clock.now(),
        )
        loop.wedge()  # with a message waiting in the outbox
        wait_for(lambda: channel.sent, timeout=15.0, what="the message sent for the loop")
        assert time.monotonic() - loop.wedged_at < 15.0 < 30.0
        assert [m.body for m in channel.sent] == ["the nightly story failed"]
        assert dog.stalled and len(checks) >= 2
    finally:
        dog.stop()
    assert not dog.alive()
