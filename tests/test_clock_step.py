"""A wall clock set back: tasks planned from the later time are planned from now.

Before, an hourly task whose next fire was worked out while the clock ran 30 days
ahead waited those 30 days once the clock was set right, and nothing looked overdue
(its next fire had not come). The engine tests step the fake wall clock alone
(``FakeClock.step_wall``), as NTP or a person does on a real machine; the daemon test
starts over a database whose last daemon on this machine wrote ahead of now.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.daemon import Daemon, DaemonOptions
from agentcron.engine.clockstep import WallClockWatch, replans, step_while_stopped
from agentcron.home import hostname
from agentcron.model import (
    ClockStepped,
    NewSlot,
    NodeInfo,
    SlotStatus,
    TaskRecord,
    TaskSource,
    TaskSpec,
)
from agentcron.notify.messages import clock_step_words
from agentcron.schedules.build import build_schedule
from agentcron.store import open_store
from agentcron.store._rows import ts
from e2e_sink import Sink
from harness import Harness, until

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
CALLS: list[str] = []


def ok() -> str:
    CALLS.append("ok")
    return "done"


def test_a_step_back_is_seen_by_the_walls_lead_over_the_monotonic_clock() -> None:
    watch = WallClockWatch()
    assert watch.look(T0, 100.0) is None  # the first look only notes the lead
    assert watch.look(T0 + timedelta(seconds=5), 105.0) is None
    assert watch.look(T0 + timedelta(days=3), 110.0) is None  # forward: catch-up's business
    assert watch.look(T0 + timedelta(days=3, seconds=-20), 111.0) is None  # under a minute
    back = watch.look(T0 + timedelta(seconds=12), 112.0)
    assert back is not None and timedelta(days=2, hours=23) < back < timedelta(days=3)


def test_a_step_while_stopped_is_an_earlier_daemons_time_ahead_of_now() -> None:
    assert step_while_stopped(T0, []) is None
    assert step_while_stopped(T0, [None, T0 - timedelta(hours=1)]) is None
    assert step_while_stopped(T0, [T0 + timedelta(seconds=30)]) is None
    ahead = [T0 + timedelta(days=2), None, T0 + timedelta(hours=1)]
    assert step_while_stopped(T0, ahead) == timedelta(days=2)


def _record(name: str, next_fire_at: datetime | None, paused: bool = False) -> TaskRecord:
    spec = TaskSpec(name=name, cron="0 * * * *", command=["true"])
    return TaskRecord(name, spec, TaskSource.API, paused, next_fire_at, T0, T0)


def test_only_a_next_fire_past_the_schedules_first_after_now_is_moved() -> None:
    now = T0  # 09:30: the hourly schedule's first fire after now is 10:00
    tasks = [
        _record("late", T0 + timedelta(days=30)),
        _record("right", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        _record("due", datetime(2026, 3, 1, 9, tzinfo=UTC)),  # not run yet: the tick's
        _record("paused", T0 + timedelta(days=30), paused=True),
        _record("done", None),
    ]
    moved = replans(tasks, lambda rec: build_schedule(rec.spec, "UTC"), now)
    assert [(rec.name, fire) for rec, fire in moved] == [
        ("late", datetime(2026, 3, 1, 10, tzinfo=UTC))
    ]


def _harness(sqlite_store: Any, home: Path) -> tuple[Harness, FakeClock, list[ClockStepped]]:
    clock = FakeClock(T0)
    h = Harness(sqlite_store, clock, home)
    told: list[ClockStepped] = []
    h.engine.clock_listeners.append(told.append)
    return h, clock, told


def test_a_clock_that_ran_ahead_and_was_set_back_leaves_no_task_waiting(
    sqlite_store: Any, home: Path
) -> None:
    h, clock, told = _harness(sqlite_store, home)
    h.add("hourly", ok, cron="0 * * * *", retries=0)
    asyncio.run(h.run_until(T0 + timedelta(hours=2), timedelta(minutes=10)))  # 10:00, 11:00
    clock.step_wall(timedelta(days=30))  # the clock runs a month ahead for a tick
    asyncio.run(h.tick())
    ahead = h.store.get_task("hourly")
    assert ahead is not None and ahead.next_fire_at == datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert not told
    clock.step_wall(timedelta(days=-30))  # ... and is set right: 11:30
    asyncio.run(h.run_until(clock.now() + timedelta(hours=3), timedelta(minutes=10)))
    ran = {
        s.scheduled_for
        for s in h.slots("hourly")
        if s.status is SlotStatus.SUCCEEDED and s.scheduled_for < datetime(2026, 3, 2, tzinfo=UTC)
    }
    assert {datetime(2026, 3, 1, hour, tzinfo=UTC) for hour in (12, 13, 14)} <= ran
    (news,) = told
    assert timedelta(days=29, hours=23) < news.by <= timedelta(days=30)
    assert news.replanned == (
        (
            "hourly",
            datetime(2026, 3, 31, 12, tzinfo=UTC),
            datetime(2026, 3, 1, 12, tzinfo=UTC),
        ),
    )


def test_a_fire_already_run_is_not_run_again_after_a_small_step_back(
    sqlite_store: Any, home: Path
) -> None:
    h, clock, told = _harness(sqlite_store, home)
    h.add("hourly", ok, cron="0 * * * *", retries=0)
    asyncio.run(h.run_until(datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC), timedelta(minutes=5)))
    CALLS.clear()
    clock.step_wall(timedelta(minutes=-10))  # 09:50:30: the 10:00 fire lies ahead again
    asyncio.run(h.run_until(datetime(2026, 3, 1, 10, 30, tzinfo=UTC), timedelta(minutes=5)))
    (news,) = told
    # its next fire, 10:00, ran already: it is not planned at it again (it would show and
    # tell a run at 10:00 that never comes), and the owner hears why it waits
    assert news.replanned == ()
    ten, eleven = (datetime(2026, 3, 1, h, tzinfo=UTC) for h in (10, 11))
    assert news.ran_ahead == (("hourly", ten, eleven),)
    at_ten = [s for s in h.slots("hourly") if s.scheduled_for.hour == 10]
    assert len(at_ten) == 1 and CALLS == []  # recorded once, not run a second time
    assert h.store.get_task("hourly").next_fire_at == datetime(  # type: ignore[union-attr]
        2026, 3, 1, 11, tzinfo=UTC
    )


def test_a_step_back_that_moves_no_task_is_only_logged(
    sqlite_store: Any, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h, clock, told = _harness(sqlite_store, home)
    h.add("hourly", ok, cron="0 * * * *", retries=0)
    asyncio.run(h.tick())
    clock.step_wall(timedelta(minutes=-5))  # 09:25: the next fire is still 10:00
    asyncio.run(h.tick())
    (news,) = told
    assert news.replanned == ()
    assert "the system clock went back 5 min; 0 task(s)" in caplog.text


def test_the_owner_is_told_which_tasks_would_have_waited_and_until_when() -> None:
    news = ClockStepped(
        by=timedelta(days=30),
        at=T0,
        replanned=(("hourly", T0 + timedelta(days=30), T0 + timedelta(minutes=30)),),
        removed=719,
        retries=1,
    )
    title, body = clock_step_words(news, lambda when: when.strftime("%Y-%m-%d %H:%M"))
    assert title == "⚠ agentcron: the system clock went back 30 days"
    assert body == (
        "⚠ agentcron: the system clock went back 30 days (noticed at 2026-03-01 09:30). "
        "The next run of 1 task had been planned from the time it showed before, so it "
        "would not have run until then; it is planned from now again:\n"
        "  hourly: would have waited until 2026-03-31 09:30; next run 2026-03-01 10:00\n"
        "719 runs it had recorded as missed or skipped for times still to come were "
        "removed, so they run at their time. 1 retry waiting too late was brought back. "
        "Runs that ran while it was ahead keep the times it showed. Check the machine's "
        "time source (NTP) if you did not set the clock yourself."
    )
    many = ClockStepped(
        by=timedelta(hours=5),
        at=T0,
        replanned=tuple((f"t{i:02d}", T0, T0) for i in range(25)),
    )
    _, listed = clock_step_words(many, lambda when: "then")
    assert "The next runs of 25 tasks" in listed and "they are planned" in listed
    assert "t19: would" in listed and "t20" not in listed and "… and 5 more" in listed


def test_fires_that_ran_while_the_clock_was_ahead_are_passed_over_when_planning_again(
    sqlite_store: Any, home: Path
) -> None:
    """Every 5 min with `catchup: all`: the clock ran 3 h ahead and the catch-up ran its
    36 fires; set back, the task was planned at 16:10 (and `show` said so, and the
    owner was told "next run 16:10"), yet ran nothing until 19:10, every fire
    between having run already (outside-in probe). It is planned at its first fire
    that has not run, and the owner is told why it waits."""
    h, clock, told = _harness(sqlite_store, home)
    h.add("all5", ok, cron="*/5 * * * *", catchup="all", retries=0)
    h.add("hourly", ok, cron="0 * * * *", retries=0)
    asyncio.run(h.tick())
    clock.step_wall(timedelta(hours=3))  # 12:30: 09:35 … 12:30 due, all run
    asyncio.run(h.tick())
    asyncio.run(h.engine.wait_idle())
    clock.step_wall(timedelta(hours=-3))  # 09:30 again
    asyncio.run(h.tick())
    (news,) = told
    all5 = h.store.get_task("all5")
    assert all5 is not None and all5.next_fire_at == datetime(2026, 3, 1, 12, 35, tzinfo=UTC)
    assert ("all5", datetime(2026, 3, 1, 12, 30, tzinfo=UTC), all5.next_fire_at) in news.ran_ahead
    # hourly ran 12:00 only (catch-up: latest): its 10:00 and 11:00 fires run
    hourly = h.store.get_task("hourly")
    assert hourly is not None and hourly.next_fire_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    _, body = clock_step_words(news, lambda when: when.strftime("%H:%M"))
    assert "  all5: its fires until 12:30 ran; next run 12:35\n" in body, body


def test_fires_a_forward_step_jumped_over_say_so_not_a_late_scheduler(
    sqlite_store: Any, home: Path
) -> None:
    """The wall clock stepped 3 hours forward under a running daemon: the fires between
    were recorded missed as "agentcron was running but its scheduler was late (a
    stalled loop or an overloaded machine)", sending the owner to look for a stall
    (outside-in probe)."""
    h, clock, _told = _harness(sqlite_store, home)
    h.add("tick", ok, every="1m", retries=0)
    asyncio.run(h.tick())
    clock.step_wall(timedelta(hours=3))
    asyncio.run(h.tick())
    missed = [s for s in h.slots("tick") if s.status is SlotStatus.MISSED]
    assert len(missed) > 100
    assert all(
        (s.reason or "").startswith(
            "the system clock jumped forward 3 hours (from 09:30:00 to 12:30:00 UTC), past its time"
        )
        for s in missed
    ), missed[0].reason
    clock.step_wall(timedelta(days=7))  # a week: the days are shown
    asyncio.run(h.tick())
    week = [s for s in h.slots("tick") if s.status is SlotStatus.MISSED and s.scheduled_for.day > 1]
    assert week and (
        "the system clock jumped forward 7 days (from Sun 01 Mar 2026 12:30:00 to "
        "Sun 08 Mar 2026 12:30:00 UTC), past its time" in (week[0].reason or "")
    ), week[0].reason


@pytest.mark.slow
def test_a_daemon_started_after_the_clock_went_back_plans_again_and_says_so(
    tmp_path: Path,
) -> None:
    """The last daemon on this machine ran while the clock was two days ahead; this one
    starts after it was set right."""
    home = tmp_path / "home"
    now = datetime.now(UTC)
    ahead = now + timedelta(days=2)
    store = open_store(None, home)
    spec = TaskSpec(name="nightly", cron="0 3 * * *", command=["true"])
    store.upsert_task(spec, TaskSource.API, ahead, ahead + timedelta(days=1))
    store.register_node(NodeInfo("old", hostname(), 1, str(home), ahead, ahead))
    store.stop_node("old", ahead)
    store.close()
    with Sink() as sink:
        config = tmp_path / "agentcron.yaml"
        config.write_text(f'notify: ["{sink.url("/owner")}"]\n')
        daemon = Daemon(
            DaemonOptions(config_path=config, home=home, shutdown_grace=2.0, tune_gc=False)
        )

        async def scenario() -> None:
            main = asyncio.create_task(daemon.run())
            try:
                await until(
                    lambda: any("clock went back" in t for t in sink.texts("/owner")), timeout=30
                )
            finally:
                daemon.stop_event.set()
                await asyncio.wait_for(main, 60)

        asyncio.run(scenario())
        (said,) = [t for t in sink.texts("/owner") if "clock went back" in t]
    assert "nightly: would have waited until" in said
    store = open_store(None, home)
    try:
        rec = store.get_task("nightly")
        assert rec is not None and rec.next_fire_at is not None
        assert rec.next_fire_at <= now + timedelta(days=1)
    finally:
        store.close()


def test_the_store_removes_runs_recorded_ahead_that_never_ran_and_brings_retries_back(
    store: Any,
) -> None:
    now = T0
    ahead = now + timedelta(days=30)
    spec = TaskSpec(name="hourly", cron="0 * * * *", command=["true"])
    store.upsert_task(spec, TaskSource.API, now, now + timedelta(minutes=30))

    def slot(at: datetime, status: SlotStatus, recorded: datetime) -> int:
        made = store.add_slot("hourly", NewSlot(at, status), recorded)
        assert made is not None
        return int(made.id)

    missed_ahead = slot(ahead - timedelta(hours=1), SlotStatus.MISSED, ahead)
    waiting_ahead = slot(ahead, SlotStatus.PENDING, ahead)
    missed_before = slot(now - timedelta(hours=1), SlotStatus.MISSED, now)
    ran_ahead = slot(ahead - timedelta(hours=2), SlotStatus.PENDING, ahead)
    late_retry = slot(now - timedelta(hours=2), SlotStatus.PENDING, now)
    soon_retry = slot(now - timedelta(hours=3), SlotStatus.PENDING, now)
    with store._tx() as db:  # as a run and a retry recorded while the clock was ahead
        db.execute(
            "UPDATE slots SET status = 'succeeded', attempts = 1, next_attempt_at = NULL "
            "WHERE id = ?",
            (ran_ahead,),
        )
        for slot_id, at in ((late_retry, ahead + timedelta(minutes=5)), (soon_retry, ahead)):
            db.execute(
                "UPDATE slots SET status = 'retrying', attempts = 1, next_attempt_at = ? "
                "WHERE id = ?",
                (ts(at), slot_id),
            )
    assert store.undo_fires_ahead(now, timedelta(days=30)) == (2, 2)
    assert store.get_slot(missed_ahead) is None and store.get_slot(waiting_ahead) is None
    assert store.get_slot(missed_before) is not None and store.get_slot(ran_ahead) is not None
    assert store.get_slot(late_retry).next_attempt_at == now + timedelta(minutes=5)
    assert store.get_slot(soon_retry).next_attempt_at == now


def test_a_replan_the_database_refuses_is_tried_again_and_undone_once(
    sqlite_store: Any, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    h, clock, told = _harness(sqlite_store, home)
    h.add("hourly", ok, cron="0 * * * *", retries=0)
    asyncio.run(h.tick())
    clock.step_wall(timedelta(days=2))
    asyncio.run(h.tick())
    undos: list[timedelta] = []
    real_undo, real_list = h.store.undo_fires_ahead, h.store.list_tasks
    refusals = iter([sqlite3.OperationalError("database is locked")])

    def undo(now: datetime, by: timedelta) -> tuple[int, int]:
        undos.append(by)
        return real_undo(now, by)

    def list_tasks() -> list[TaskRecord]:
        for error in refusals:
            raise error
        return real_list()

    monkeypatch.setattr(h.store, "undo_fires_ahead", undo)
    monkeypatch.setattr(h.store, "list_tasks", list_tasks)
    clock.step_wall(timedelta(days=-2))
    with pytest.raises(sqlite3.OperationalError):
        asyncio.run(h.engine.tick())  # the loop's outage handling takes it from here
    assert not told
    asyncio.run(h.tick())
    (news,) = told
    assert [task for task, _, _ in news.replanned] == ["hourly"]
    assert news.removed == 47  # the 47 fires marked missed; the 48th ran (catch-up: latest)
    assert len(undos) == 1
    asyncio.run(h.tick())
    assert len(told) == 1  # told once
