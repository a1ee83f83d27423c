"""An outage is told once, and its end once the database has held for a while.

A full disk lets reads through (an idle tick works) and refuses writes: ticks then
fail and work in turn. Told as it happened, the owner got "✖ cannot use its database",
"✔ available again", "✖ cannot use its database" ... every few seconds, all but the
last "✔" false. The end is told once ticks have worked for ``recovery_hold`` and a
write has been taken; a failure before that goes on with the outage already told."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentcron.clock import FakeClock
from agentcron.engine.health import PROBE_KEY
from agentcron.store.sqlite import SQLiteStore
from faulty_store import FaultyStore
from harness import Harness

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def full() -> Exception:
    return sqlite3.OperationalError("database or disk is full")


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock(T0)
        self.store = FaultyStore(SQLiteStore(tmp_path / "agentcron.db"))
        self.h = Harness(self.store, self.clock, tmp_path)  # type: ignore[arg-type]
        engine = self.h.engine
        engine.settings.outage_notice_after = timedelta(seconds=10)
        engine.settings.recovery_hold = timedelta(seconds=30)
        self.told: list[str] = []
        engine.on_outage.append(lambda o: self.told.append(f"down since {o.since:%H:%M:%S}"))
        engine.on_recovery.append(
            lambda o, at, _r: self.told.append(f"back at {at:%H:%M:%S} (since {o.since:%H:%M:%S})")
        )

    def pass_at(self, seconds: float) -> None:
        self.clock.set(T0 + timedelta(seconds=seconds))
        asyncio.run(self.h.engine.run_pass())

    def fail(self, *what: str) -> None:
        self.store.fail(*what or ("next_times",), error=full)

    def heal(self, *what: str) -> None:
        self.store.clear(*what or ("next_times",))


def test_a_database_that_comes_and_goes_is_one_outage_told_once_each_way(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    rig.fail()
    for s in (0, 5, 11):
        rig.pass_at(s)
    assert rig.told == ["down since 00:00:00"]
    for up, down in ((15, 25), (30, 40)):  # back for 10 s, gone again: the same outage
        rig.heal()
        rig.pass_at(up)
        rig.pass_at(up + 5)
        rig.fail()
        rig.pass_at(down)
    assert rig.told == ["down since 00:00:00"]
    rig.heal()
    rig.pass_at(50)  # back at 00:00:50 ...
    rig.pass_at(70)
    assert rig.told == ["down since 00:00:00"]
    rig.pass_at(81)  # ... held for 30 s, and a write taken: now it is told
    assert rig.told == ["down since 00:00:00", "back at 00:00:50 (since 00:00:00)"]
    assert rig.store.get_meta(PROBE_KEY) is not None
    rig.pass_at(90)
    assert len(rig.told) == 2


def test_reads_that_work_while_writes_fail_do_not_end_the_outage(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.fail()
    for s in (0, 11):
        rig.pass_at(s)
    rig.heal()
    rig.fail("set_meta")  # an idle tick reads only: the write at the hold's end fails
    for s in (20, 40, 51, 60):
        rig.pass_at(s)
    assert rig.told == ["down since 00:00:00"]  # the write at 51 failed: not back
    rig.heal("set_meta")
    rig.pass_at(61)
    rig.pass_at(95)  # held since 60, and the write taken
    assert rig.told == ["down since 00:00:00", "back at 00:01:00 (since 00:00:00)"]


def test_a_stop_during_the_hold_tells_the_end(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.fail()
    for s in (0, 11):
        rig.pass_at(s)
    rig.heal()
    rig.pass_at(15)
    asyncio.run(rig.h.engine.shutdown(1))
    assert rig.told == ["down since 00:00:00", "back at 00:00:15 (since 00:00:00)"]


def test_runs_missed_during_an_outage_say_it_was_the_database(tmp_path: Path) -> None:
    rig = Rig(tmp_path)

    def ok() -> str:
        return "fine"

    rig.h.add("beat", ok, every="1m", timezone="UTC", catchup="latest")
    rig.fail("due_heads", "due_tasks")
    for s in (0, 30, 150, 290):
        rig.pass_at(s)
    rig.heal("due_heads", "due_tasks")
    rig.pass_at(300)  # 00:05:00: the fires of 00:01 .. 00:04 are recorded missed
    asyncio.run(rig.h.engine.wait_idle())
    missed = [s for s in rig.h.slots("beat") if s.status.value == "missed"]
    assert missed, rig.h.slots("beat")
    for slot in missed:
        assert "agentcron could not use its database from 00:00:00" in (slot.reason or "")
        assert "database or disk is full" in (slot.reason or "")


def test_the_outage_in_a_missed_runs_reason_names_the_tasks_zone(tmp_path: Path) -> None:
    """One report lists tasks of several zones: each reason's time names its zone
    (outside-in probe: "from 07:20:10" and "from 22:20:10" for one moment)."""
    rig = Rig(tmp_path)

    def ok() -> str:
        return "fine"

    rig.h.add("tokyo", ok, every="1m", timezone="Asia/Tokyo", catchup="latest")
    rig.h.add("utc", ok, every="1m", timezone="UTC", catchup="latest")
    rig.fail("due_heads", "due_tasks")
    for s in (0, 30, 150, 290):
        rig.pass_at(s)
    rig.heal("due_heads", "due_tasks")
    rig.pass_at(300)
    asyncio.run(rig.h.engine.wait_idle())
    for task, since in (("tokyo", "09:00:00 JST"), ("utc", "00:00:00 UTC")):
        missed = [s for s in rig.h.slots(task) if s.status.value == "missed"]
        assert missed, rig.h.slots(task)
        for slot in missed:
            assert f"agentcron could not use its database from {since} (" in (slot.reason or "")


def test_runs_missed_while_the_loop_waited_for_its_database_are_one_outage_not_stalls(
    tmp_path: Path,
) -> None:
    """A PostgreSQL table locked for 150 s: each pass waited out its statement (each wait
    a stall of the loop, recorded by the watchdog) and failed. The fires missed were
    told in two reports, one per reason, one saying "the scheduler loop was stalled
    from 20:03:38 to 20:04:39" though the lock held until 20:05:35 (outside-in probe).
    The outage is the reason of every one of them."""
    from agentcron.watchdog.stalls import LoopStall

    rig = Rig(tmp_path)

    def ok() -> str:
        return "fine"

    rig.h.add("beat", ok, every="1m", timezone="UTC", catchup="latest")
    t0 = rig.clock.now()
    stall = LoopStall(began=t0 + timedelta(seconds=30), ended=t0 + timedelta(seconds=150))
    rig.h.engine.stall_reason = lambda at, zone: stall.reason(zone) if stall.covers(at) else None
    rig.fail("due_heads", "due_tasks")
    for s in (0, 30, 150, 290):
        rig.pass_at(s)
    rig.heal("due_heads", "due_tasks")
    rig.pass_at(300)
    asyncio.run(rig.h.engine.wait_idle())
    reasons = {
        s.scheduled_for.strftime("%H:%M"): s.reason or "" for s in rig.h.slots("beat") if s.reason
    }
    assert sorted(reasons) == ["00:01", "00:02", "00:03", "00:04"], rig.h.slots("beat")
    for reason in reasons.values():
        assert reason.startswith("agentcron could not use its database from 00:00:00"), reason


def test_a_fire_due_between_the_last_good_pass_and_the_first_failed_one_is_the_outage(
    tmp_path: Path,
) -> None:
    """The outage begins at the first failing pass, but a fire due after the last pass
    that worked was left to the failing ones: its miss is the database's doing too, not
    "its scheduler was late"."""
    rig = Rig(tmp_path)

    def ok() -> str:
        return "fine"

    rig.h.add("beat", ok, every="1m", timezone="UTC", catchup="latest")
    rig.pass_at(50)  # works; the next fire is 00:01:00
    rig.fail("due_heads", "due_tasks")
    for s in (61, 90, 150, 190):  # 00:01:01 is the first failing pass
        rig.pass_at(s)
    rig.heal("due_heads", "due_tasks")
    rig.pass_at(200)  # the fires of 00:01 and 00:02 are missed, 00:03 runs (latest)
    asyncio.run(rig.h.engine.wait_idle())
    missed = {
        s.scheduled_for.strftime("%H:%M"): s.reason or ""
        for s in rig.h.slots("beat")
        if s.status.value == "missed"
    }
    assert sorted(missed) == ["00:01", "00:02"], rig.h.slots("beat")
    for reason in missed.values():
        assert "agentcron could not use its database from 00:01:01" in reason, reason


def test_the_outage_told_lasts_until_its_end_is_told(tmp_path: Path) -> None:
    """What `health` reads (through daemon.trouble): an outage stays "told" while its
    end waits out the hold, so a full disk's passing reads do not show ✔ in between."""
    rig = Rig(tmp_path)
    engine = rig.h.engine
    rig.fail()
    rig.pass_at(0)
    assert engine.outage_told() is None  # a blip, not told
    rig.pass_at(11)
    told = engine.outage_told()
    assert told is not None and told.announced
    rig.heal()
    rig.pass_at(15)
    assert engine.health.outage is None  # the parts may use the database again
    assert engine.outage_told() is told  # but it is not over for the owner yet
    rig.pass_at(46)
    assert engine.outage_told() is None and rig.told[-1].startswith("back at")


def test_the_end_told_counts_what_the_first_tick_of_every_gap_recorded(tmp_path: Path) -> None:
    """Outside-in probe (a full disk): a gap's first tick recorded the slots that came due
    and the outage went on; the end told later said "No slot came due meanwhile" beside
    a report of 63 missed runs."""
    rig = Rig(tmp_path)
    reports: list[Any] = []
    rig.h.engine.on_recovery.append(lambda _o, _at, report: reports.append(report))
    rig.h.add("beat", lambda: "ok", every="5s", retries=0, catchup="none")
    rig.pass_at(0)
    rig.fail()
    for s in (1, 6, 12):
        rig.pass_at(s)
    rig.heal()
    rig.pass_at(20)  # a gap: this tick records what came due since 00:00:00
    first = sum(1 for s in rig.h.slots("beat") if s.status.value == "missed")
    assert first > 0
    rig.fail()
    rig.pass_at(25)
    rig.heal()
    rig.pass_at(40)  # back for good: this tick records what came due since the gap
    during = sum(1 for s in rig.h.slots("beat") if s.status.value == "missed")
    assert during > first
    rig.pass_at(71)  # held 30 s: told, with both ticks' slots
    (report,) = reports
    assert report.missed == during


def test_the_end_told_counts_the_slots_a_tick_recorded_before_it_failed(tmp_path: Path) -> None:
    """A PostgreSQL table locked: a node's tick recorded the fires that came due (3
    missed, 1 skipped) and then failed on a later statement; its end said "This node
    had no slot to record meanwhile" beside its own report of 3 missed runs (outside-in
    probe). What a failing tick wrote is counted with the end."""
    rig = Rig(tmp_path)
    reports: list[Any] = []
    rig.h.engine.on_recovery.append(lambda _o, _at, report: reports.append(report))
    rig.h.add("beat", lambda: "ok", every="5s", retries=0, catchup="none")
    rig.pass_at(0)
    rig.fail()  # next_times: read after the tick has recorded what came due
    for s in (1, 6, 12, 20):
        rig.pass_at(s)
    missed = sum(1 for s in rig.h.slots("beat") if s.status.value == "missed")
    assert missed > 0  # recorded by the failing ticks
    rig.heal()
    rig.pass_at(21)  # works: nothing left to record
    rig.pass_at(52)  # held 30 s: told
    (report,) = reports
    assert report.missed == missed, (report, missed)


def test_the_engine_says_when_its_passes_worked_again(tmp_path: Path) -> None:
    """The watchdog ends a stall whose passes failed at the first pass that worked (see
    tests/test_watchdog_stall.py): the engine keeps when that pass began, and only that
    one (the passes after it do not move it)."""
    rig = Rig(tmp_path)
    health = rig.h.engine.health
    rig.pass_at(0)
    assert health.worked_since == 0.0  # no failing pass yet
    rig.fail()
    rig.pass_at(5)
    rig.heal()
    before = time.monotonic()
    rig.pass_at(10)
    worked = health.worked_since
    assert before <= worked <= health.last_pass
    rig.pass_at(12)
    assert health.worked_since == worked
