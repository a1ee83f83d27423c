"""A stalled scheduler loop: told while it lasts, its end told, its span kept (issue 12,
finding 4 and build item 5).

The outbox sender lives on the scheduler loop, so a notice written while the loop is
stalled (a task gone overdue because of the stall) used to reach the owner only when
the loop recovered. Here a real event loop runs the real engine and is really
blocked by an inline task; the watchdog's threads tell the stall directly and send
the overdue notice from the outbox while the loop is still blocked, the loop's own
sender does not send it again afterwards, and the stall's span is what the
reasons of the slots it made miss can name.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentcron.clock import FakeClock
from agentcron.durations import format_duration
from agentcron.engine.health import LoopHealth
from agentcron.model import Message, SlotStatus
from agentcron.notify import OutboxSender, SendResult
from agentcron.notify.direct import daemon_message, tell_owner_directly
from agentcron.notify.notifier import Notifier
from agentcron.store.base import Store
from agentcron.watchdog.stalls import LoopStall
from agentcron.watchdog.watchdog import Watchdog
from harness import Harness, until

HOOK = "json://127.0.0.1:9/hook"


class FakeChannel:
    """Records what reaches the owner, from any thread, with the time it arrived."""

    key = HOOK

    def __init__(self) -> None:
        self.sent: list[tuple[float, Message]] = []

    async def send(self, msg: Message) -> SendResult:
        self.sent.append((time.monotonic(), msg))
        return SendResult(ok=True)

    def lines(self, words: str) -> list[str]:
        return [m.body.splitlines()[0] for _, m in list(self.sent) if words in m.body]


def _wait(predicate: Any, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.01)


def _ok() -> str:
    return "done"


# ---- the stall's span, on a fake clock and a fake monotonic clock ----------------------


class Silence:
    """The loop's pass stamps and the monotonic clock, moved by hand with the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.mono = 1000.0
        self.last = self.mono

    def advance(self, seconds: float, *, passes: bool = False) -> None:
        self.clock.advance(timedelta(seconds=seconds))
        self.mono += seconds
        if passes:
            self.last = self.mono


def _dog(store: Store, clock: FakeClock, silence: Silence, **kw: Any) -> Watchdog:
    h = Harness(store, clock, Path("."))
    return Watchdog(
        store,
        clock,
        lambda spec, event: None,
        period_of=h.service.period,
        count_fires=h.service.count_fires,
        last_tick=lambda: silence.last,
        monotonic=lambda: silence.mono,
        stall_after=30.0,
        **kw,
    )


@dataclass
class _Heard:
    """What a watchdog told: stalls begun, ended, and seen only once over."""

    began: list[float] = field(default_factory=list)
    ended: list[float] = field(default_factory=list)
    past: list[float] = field(default_factory=list)


def _held(store: Store, **kw: Any) -> tuple[Watchdog, Silence, list[tuple[float, float]], _Heard]:
    """A watchdog that says how it tells stalls (``on_past_stall`` too), its silence,
    the loop's gaps between passes (appended by the test) and what it told."""
    silence = Silence(FakeClock(datetime(2026, 6, 1, 10, 7, 0, tzinfo=UTC)))
    gap: list[tuple[float, float]] = []
    heard = _Heard()
    dog = _dog(
        store,
        silence.clock,
        silence,
        on_stall=heard.began.append,
        on_stall_end=heard.ended.append,
        on_past_stall=heard.past.append,
        last_gap=lambda: gap[-1] if gap else None,
        **kw,
    )
    return dog, silence, gap, heard


def test_a_stall_is_told_once_each_way_and_kept_with_its_wall_times(sqlite_store: Store) -> None:
    clock = FakeClock(datetime(2026, 6, 1, 10, 7, 0, tzinfo=UTC))
    silence = Silence(clock)
    began: list[float] = []
    ended: list[float] = []
    dog = _dog(sqlite_store, clock, silence, on_stall=began.append, on_stall_end=ended.append)
    silence.advance(3, passes=True)  # the loop's last pass: 10:07:03
    silence.advance(30)
    assert dog.check_once().loop_stalled is False  # 30 s is not more than 30 s
    silence.advance(0.5)
    assert dog.check_once().loop_stalled is True
    dog.check_once()
    assert began == [30.5]
    at = datetime(2026, 6, 1, 10, 7, 3, tzinfo=UTC)
    assert dog.stalls.current() == LoopStall(began=at)
    during = dog.stall_covering(at + timedelta(seconds=7))
    assert during is not None
    assert during.reason() == "the scheduler loop has been stalled since 10:07:03"

    # The loop passes again at 10:08:15; its first pass asks about the fires it must
    # record missed before the stall check has looked: the stall closes at that pass.
    silence.advance(41.5, passes=True)
    silence.advance(0.4)
    stall = dog.stall_covering(datetime(2026, 6, 1, 10, 8, 0, tzinfo=UTC))
    assert stall == LoopStall(at, datetime(2026, 6, 1, 10, 8, 15, tzinfo=UTC))
    assert stall.reason() == (
        "the scheduler loop was stalled from 10:07:03 to 10:08:15 UTC "
        f"({format_duration(timedelta(seconds=72))})"
    )
    assert dog.stall_covering(at) is None  # the last pass before it ran on time
    assert dog.stall_covering(datetime(2026, 6, 1, 10, 8, 16, tzinfo=UTC)) is None
    # The stall check then sees the loop moving: the end is told once, with the same span.
    dog.check_once()
    dog.check_once()
    assert ended == [72.0]
    assert dog.stalls.all() == [stall]

    # A second stall is a second record; each fire finds its own.
    silence.advance(31, passes=False)
    dog.check_once()
    assert len(began) == 2 and len(dog.stalls.all()) == 2
    assert dog.stall_covering(datetime(2026, 6, 1, 10, 8, 5, tzinfo=UTC)) == stall


def test_a_stall_the_loop_passed_before_the_check_could_look_is_told_once(
    sqlite_store: Store,
) -> None:
    """The whole process frozen (SIGSTOP, a paused VM) for 42 s: after SIGCONT the loop
    may pass before the stall thread looks, and the stall was then never seen: no
    message, and missed fires called "the scheduler was late" (outside-in probe). The
    loop's gap between passes tells it; the record and the telling happen once."""
    clock = FakeClock(datetime(2026, 6, 1, 10, 7, 0, tzinfo=UTC))
    silence = Silence(clock)
    gap: list[tuple[float, float]] = []
    began: list[float] = []
    ended: list[float] = []
    dog = _dog(
        sqlite_store,
        clock,
        silence,
        on_stall=began.append,
        on_stall_end=ended.append,
        last_gap=lambda: gap[-1] if gap else None,
    )
    silence.advance(3, passes=True)  # the last pass before the freeze: 10:07:03
    frozen_from = silence.mono
    silence.advance(42, passes=True)  # the loop passes first after the freeze
    gap.append((frozen_from, silence.mono))
    silence.advance(0.2)
    # the loop's pass asks for the reason of a fire missed meanwhile: the stall is known
    stall = dog.stall_covering(datetime(2026, 6, 1, 10, 7, 30, tzinfo=UTC))
    assert stall == LoopStall(
        datetime(2026, 6, 1, 10, 7, 3, tzinfo=UTC), datetime(2026, 6, 1, 10, 7, 45, tzinfo=UTC)
    )
    assert began == [] and ended == []  # told by the stall thread, not the loop
    assert dog.check_once().loop_stalled is True
    assert began == [42.0] and ended == [42.0]
    dog.check_once()
    silence.advance(5, passes=True)
    dog.check_once()
    assert began == [42.0] and ended == [42.0] and len(dog.stalls.all()) == 1
    # a short pause between passes is no stall
    gap.append((silence.mono, silence.mono + 10))
    silence.advance(10, passes=True)
    dog.check_once()
    assert len(began) == 1


def test_a_stall_across_midnight_names_the_dates_in_the_owners_zone() -> None:
    from zoneinfo import ZoneInfo

    stall = LoopStall(
        datetime(2026, 6, 1, 21, 59, 50, tzinfo=UTC), datetime(2026, 6, 1, 22, 0, 20, tzinfo=UTC)
    )
    assert stall.reason(ZoneInfo("Europe/Berlin")) == (
        "the scheduler loop was stalled from 2026-06-01 23:59:50 to 2026-06-02 00:00:20 CEST (30s)"
    )


def test_a_stall_names_a_shared_abbreviation_by_its_zone() -> None:
    """CST is also China's and Cuba's: the reason names the zone, as tables do."""
    from zoneinfo import ZoneInfo

    stall = LoopStall(
        datetime(2026, 1, 5, 16, 0, 0, tzinfo=UTC), datetime(2026, 1, 5, 16, 0, 30, tzinfo=UTC)
    )
    assert stall.reason(ZoneInfo("America/Chicago")) == (
        "the scheduler loop was stalled from 10:00:00 to 10:00:30 America/Chicago (30s)"
    )


# ---- a loop that is really blocked -------------------------------------------------------


def test_stall_and_overdue_messages_reach_the_channel_while_the_loop_is_blocked(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    channel = FakeChannel()
    h = Harness(sqlite_store, clock, home)
    notifier = Notifier(sqlite_store, clock, [HOOK], "UTC")
    notifier.attach(h.engine)
    release, entered = threading.Event(), threading.Event()

    async def wedge() -> str:
        entered.set()
        release.wait(60)  # blocks the event loop's own thread, as a careless inline task does
        return "woke"

    h.add("wedge", wedge, every="1d", timezone="UTC", timeout="1d", stuck_after="1d")
    h.add("beat", _ok, every="1m", timezone="UTC", overdue_after="10s")

    def tell(message: Message) -> None:
        tell_owner_directly([HOOK], message, channel_factory=lambda _url: channel)

    dog = Watchdog(
        sqlite_store,
        clock,
        notifier.emit,
        period_of=h.service.period,
        count_fires=h.service.count_fires,
        interval=0.1,
        last_tick=lambda: h.engine.health.last_pass,
        on_stall=lambda s: tell(daemon_message("stalled", f"✖ not ticked for {s:.0f}s", "stall")),
        on_stall_end=lambda s: tell(
            daemon_message("running again", f"✔ ticks again after {s:.0f}s", "stall", ok=True)
        ),
        stall_after=2.5,  # the loop passes at least every second (poll_interval)
        channel_factory=lambda _url: channel,
    )
    loop_box: dict[str, Any] = {}

    def run_loop() -> None:
        async def main() -> None:
            loop_box["stop"], loop_box["loop"] = asyncio.Event(), asyncio.get_running_loop()
            await h.engine.run_forever(loop_box["stop"])

        asyncio.run(main())

    thread = threading.Thread(target=run_loop, name="test-loop", daemon=True)
    thread.start()
    dog.start()
    try:
        clock.advance(timedelta(minutes=1))  # 00:01: beat runs
        _wait(lambda: any(s.status is SlotStatus.SUCCEEDED for s in h.slots("beat")), "beat ran")
        h.service.trigger("wedge")
        _wait(entered.is_set, "the wedge blocks the loop")
        blocked_at = h.engine.health.last_pass
        _wait(lambda: channel.lines("not ticked"), "the stall told")
        # Fake time moves on while the loop is blocked: beat's 00:02 .. 00:05 go by.
        clock.advance(timedelta(minutes=4, seconds=30))
        _wait(lambda: channel.lines("beat has not run"), "the overdue notice sent")
        # Both arrived while the loop was still blocked.
        assert not release.is_set() and h.engine.health.last_pass == blocked_at
        assert dog.stalled
        assert channel.lines("beat has not run") == [
            "⚠ beat has not run since 00:01 (4 runs missed) although the daemon is alive."
        ]
        assert sqlite_store.due(clock.now(), 10) == []  # recorded sent: nothing left to send
    finally:
        release.set()
    _wait(lambda: channel.lines("ticks again"), "the end of the stall told")
    _wait(lambda: len(h.slots("beat")) >= 5, "the missed fires recorded")
    # The loop's own sender, back at work, does not send the overdue notice again.
    loop_sender = OutboxSender(sqlite_store, channel_factory=lambda _url: channel, clock=clock)
    _wait(
        lambda: asyncio.run(loop_sender.drain_once()) >= 0 and channel.lines("running again"),
        "the overdue incident closed and its end sent by the loop's sender",
    )
    asyncio.run(loop_sender.drain_once())
    loop_box["loop"].call_soon_threadsafe(loop_box["stop"].set)
    thread.join(30)
    dog.stop()
    assert len(channel.lines("beat has not run")) == 1
    assert len(channel.lines("not ticked")) == 1 and len(channel.lines("ticks again")) == 1
    # Each fire the stall made miss finds the stall, for its reason.
    missed = [s for s in h.slots("beat") if s.status is SlotStatus.MISSED]
    assert [s.scheduled_for.minute for s in missed] == [2, 3, 4]
    for slot in missed:
        stall = dog.stall_covering(slot.scheduled_for)
        assert stall is not None and stall.ended is not None, slot
        # fake wall time stood at 00:01 while the loop was blocked, until moved to 00:05:30
        assert re.fullmatch(
            r"the scheduler loop was stalled from 00:0[01]:\d\d to 00:05:\d\d UTC "
            r"\(\d min(?: \d{1,2}s)?\)",
            stall.reason(),
        ), stall.reason()


def test_the_loop_keeps_its_last_long_gap_between_passes(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    h = Harness(sqlite_store, clock, home)
    asyncio.run(h.engine.run_pass())
    assert h.engine.health.gap is None  # passes close together: nothing kept
    before = time.monotonic() - 50  # as if the process had been frozen for 50 s
    h.engine.health.last_pass = before
    asyncio.run(h.engine.run_pass())
    gap = h.engine.health.gap
    assert gap is not None and gap[0] == before and gap[1] - gap[0] >= 50


def test_a_freeze_is_kept_until_read_though_ordinary_sleeps_follow_it() -> None:
    """SIGSTOP for 60 s, then the loop's ordinary 2 s sleeps: they replaced the freeze
    before the watchdog's thread looked, and it was never told (outside-in probe, one
    hold in five). A kept silence gives way only to a longer one until it is read."""
    health = LoopHealth(last_pass=0.0, last_ok=0.0)
    health.note_gap(100.0, 160.0)  # the freeze
    health.note_gap(160.0, 162.0)  # the sleeps after it
    health.note_gap(162.0, 164.0)
    assert health.take_gap() == (100.0, 160.0)
    assert health.take_gap() is None  # read: forgotten
    health.note_gap(164.0, 166.0)  # the next silence is kept, short or not
    health.note_gap(166.0, 208.0)  # and a longer one takes its place
    assert health.take_gap() == (166.0, 208.0)


def test_a_command_that_ended_during_a_freeze_past_its_bounds_is_not_abandoned(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """The process frozen longer than a run's outer bound (timeout + kill_grace + 10 s)
    while its command exits: the first pass after the freeze must not sweep the run as
    one that outlived its bounds (recorded timed out, and retried) before its exit,
    already waiting, is seen."""

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.engine.settings.poll_interval = 0.2  # a beat: 1.5 s without a pass is a freeze
        h.add("quick", command=["true"], every="1h", timeout="1s", kill_grace="1s", retries=1)
        clock.advance(timedelta(hours=1))
        await h.engine.run_pass()  # starts the run
        await until(
            lambda: bool(h.engine._runs) and all(r.started for r in h.engine._runs.values())
        )
        time.sleep(1.5)  # frozen: the command exits meanwhile, unseen
        clock.advance(timedelta(seconds=30))  # past its outer bound by the wall clock
        await h.engine.run_pass()
        await h.engine.wait_idle(10)
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("quick")
    assert slot.status is SlotStatus.SUCCEEDED, (slot.status, slot.error)


def test_the_overrun_sweep_still_runs_on_the_daemons_beat(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Passes 2 s apart (the daemon's idle beat) are no freeze: a run whose action
    ignores its timeout is still abandoned at its outer bound (a review found the
    postponement above, first written for any gap over 1 s, stopping the sweep for good)."""

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # a buggy action: it swallows
            await asyncio.sleep(1000)  # its own timeout
        await asyncio.sleep(1000)

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.engine.settings.poll_interval = 2.0
        h.add("stuck", stubborn, every="1h", timeout="1s", kill_grace="1s", retries=0)
        clock.advance(timedelta(hours=1))
        await h.engine.run_pass()  # starts the run (outer bound: 1 + 1 + 10 s)
        for _ in range(10):  # 20 s of passes on the beat
            h.engine.health.last_pass = time.monotonic() - 2.1
            clock.advance(timedelta(seconds=2.1))
            await h.engine.run_pass()
            await asyncio.sleep(0.01)
        await h.engine.wait_idle(10)
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("stuck")
    assert slot.status is SlotStatus.FAILED, (slot.status, slot.error)


def test_a_stall_seen_after_it_is_told_as_over_when_the_daemon_says_how(
    sqlite_store: Store,
) -> None:
    """Seen only once the loop passed again, the stall was told with the words for a
    stall that goes on ("restart the daemon if this does not clear") and, a moment
    later, its end: with ``on_past_stall`` it is one message that it happened."""
    dog, silence, gap, heard = _held(sqlite_store)
    silence.advance(3, passes=True)
    frozen_from = silence.mono
    silence.advance(42, passes=True)
    gap.append((frozen_from, silence.mono))
    silence.advance(0.2)
    assert dog.check_once().loop_stalled is True
    dog.check_once()
    assert heard.past == [42.0] and heard.began == [] and heard.ended == []


def _a_hold(store: Store, hold: float, *, during: bool) -> _Heard:
    """The loop's process held for ``hold`` seconds, the stall thread's first wait
    running out during the hold (``during``) or just as it ends; then the loop passes.
    Returns what the watchdog told."""
    dog, silence, gap, heard = _held(store, interval=0.05)  # the thread's first wait
    dog.pass_grace = 0.5
    silence.advance(1, passes=True)
    frozen_from = silence.mono
    if not during:
        silence.advance(hold)  # over as the thread's wait runs out: it wakes "on time"
    thread = threading.Thread(target=dog._run_loop_check, daemon=True)
    thread.start()
    try:
        if during:
            silence.advance(hold)  # the thread's wait ran out during it: it wakes late
        time.sleep(0.25)  # the thread is awake; the loop has not passed yet
        assert heard.began == []
        silence.advance(0.01, passes=True)  # the loop's first pass after the hold
        gap.append((frozen_from, silence.mono))
        deadline = time.monotonic() + 10
        while not heard.past and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        dog._stop.set()
        thread.join(5)
    return heard


def test_a_hold_the_stall_thread_wakes_from_first_is_told_once_as_over(
    sqlite_store: Store,
) -> None:
    """SIGSTOP for 35 s, three times out of three: the stall thread's wait ran out during
    the hold, it woke before the loop passed, and told "has not ticked for 36s … no task
    starts until it recovers" and a second later its end (outside-in probe). Woken far
    past its time, it now gives the loop a moment: the hold is told once, as over."""
    heard = _a_hold(sqlite_store, 40, during=True)
    assert [round(p, 2) for p in heard.past] == [40.01]
    assert heard.began == [] and heard.ended == []


def test_a_hold_that_ends_as_the_stall_thread_wakes_on_time_is_told_once_as_over(
    sqlite_store: Store,
) -> None:
    """Chaos probe: SIGSTOP for 30 s, the stall thread's wait due just as it ended, so it
    woke on time as far as it could tell, and told "has not ticked for 31s … restart the
    daemon if this does not clear" and a second later its end. A stall about to begin
    gives the loop the same moment to pass as a hold the thread sees."""
    heard = _a_hold(sqlite_store, 30.5, during=False)
    assert [round(p, 2) for p in heard.past] == [30.51]
    assert heard.began == [] and heard.ended == []


def test_a_stall_that_ends_in_failing_passes_is_over_for_the_owner_when_a_pass_works(
    sqlite_store: Store,
) -> None:
    """A PostgreSQL table held locked for a minute (outside-in probe): the loop's statement
    waited until its timeout (a stall, told), its pass then failed (the database's own
    message) and the next pass waited again. The stall's end was told as "ticks again"
    a second after the first failed pass, with the database still away; a second wait
    of 30 s would have been told as a new stall. Now the stall is over for the owner at
    the first pass that works, once, with the whole span."""
    failing = [False]
    dog, silence, _gap, heard = _held(sqlite_store, failing=lambda: failing[0])
    silence.advance(3, passes=True)  # 10:07:03, the last pass before the lock
    silence.advance(30.5)
    dog.check_once()
    assert heard.began == [30.5]
    failing[0] = True  # the statement's timeout: the pass fails, the next one begins
    silence.advance(0.5, passes=True)
    dog.check_once()
    silence.advance(31)  # the next pass waits out its statement too
    dog.check_once()
    assert heard.began == [30.5] and heard.ended == []  # the same stall, not a new one
    silence.advance(0.5, passes=True)  # ... and fails again
    dog.check_once()
    silence.advance(2)
    dog.check_once()
    assert heard.ended == []
    failing[0] = False
    silence.advance(1, passes=True)  # the lock is gone: this pass works
    dog.check_once()
    dog.check_once()
    assert heard.ended == [65.5]  # from 10:07:03 to the pass that worked
    assert heard.began == [30.5] and heard.past == []
    # Its record kept both silences; the loop's next stall is a new one, told.
    assert len(dog.stalls.all()) == 2
    silence.advance(31)
    dog.check_once()
    assert heard.began == [30.5, 31.0]


def test_a_stall_over_at_a_pass_that_worked_ends_there_when_told_later(
    sqlite_store: Store,
) -> None:
    """Three nodes, a table locked for 40 s: one told "ticks again after a stall of 1 min"
    20 s after the lock was gone (outside-in probe). Its stall check looked late (its
    own reads waited too) and ended the stall at the loop's latest pass, not at the
    first one that worked. The engine says when its passes began to work again."""
    failing = [False]
    worked = [0.0]
    dog, silence, _gap, heard = _held(
        sqlite_store, failing=lambda: failing[0], worked_since=lambda: worked[0]
    )
    silence.advance(3, passes=True)  # the last pass before the lock
    silence.advance(30.5)
    dog.check_once()
    assert heard.began == [30.5]
    failing[0] = True
    silence.advance(9.5, passes=True)  # the pass failed: 40 s since the last one
    dog.check_once()
    failing[0] = False
    silence.advance(1, passes=True)  # the lock is gone: this pass works, 41 s in
    worked[0] = silence.mono
    for _ in range(20):  # the loop goes on; the stall check looks only 20 s later
        silence.advance(1, passes=True)
    dog.check_once()
    assert heard.ended == [41.0]  # not 61


def test_a_wait_for_a_locked_table_seen_after_it_is_a_stall_until_a_pass_works(
    sqlite_store: Store,
) -> None:
    """A PostgreSQL table held locked for 150 s, with the statement's timeout (30 s) as
    long as ``stall_after``: the pass that waited came back just as the stall thread
    looked, so the wait was seen after it, and three nodes told "did not run for 31s
    and runs again: the whole process was held (stopped with SIGSTOP …)" with the
    table still locked (outside-in probe). A silence seen after it while the loop's
    passes fail is the database's: told as a stall, over at the first pass that works."""
    failing = [False]
    dog, silence, gap, heard = _held(sqlite_store, failing=lambda: failing[0])
    silence.advance(3, passes=True)  # the last pass before the lock
    waited_from = silence.mono
    silence.advance(30.2)  # its statement waits for the lock, then times out
    failing[0] = True
    silence.advance(0.3, passes=True)  # the next pass begins before the check looks
    gap.append((waited_from, silence.mono))
    dog.check_once()
    assert heard.began == [30.5] and heard.past == [] and heard.ended == []
    again_from = silence.mono
    silence.advance(30.2)  # it waits again, and fails again
    silence.advance(0.3, passes=True)
    gap.append((again_from, silence.mono))
    dog.check_once()
    assert heard.began == [30.5] and heard.past == [] and heard.ended == []
    failing[0] = False
    silence.advance(1, passes=True)  # the lock is gone: this pass works
    dog.check_once()
    dog.check_once()
    assert heard.ended == [62.0] and heard.began == [30.5] and heard.past == []
