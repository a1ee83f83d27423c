"""What a run is spared in a burst of short runs, and what it still gets (issue 16).

The free-space check is asked of the kernel at most once a second while the disk has
plenty of room (every run once it has little), and the output file of a run whose
action kept none is not looked for again. Each test shows the behaviour kept: a full
disk is still seen and said, a kept output is still redacted and private, the home is
still made private.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import agentcron.engine.runner as runner_module
from agentcron.clock import FakeClock
from agentcron.engine.diskroom import DiskRoom
from agentcron.engine.finisher import Finisher
from agentcron.model import AttemptOutcome, Finish, SlotStatus
from agentcron.store.base import Store
from harness import Harness, until

SECRET = "quince-lantern-9034-umber"  # a value no pattern recognises
MIB = 1024 * 1024


class Disk:
    """A fake filesystem for ``statvfs``: its free blocks (1 MiB each) and the calls."""

    def __init__(self, free_mib: int) -> None:
        self.free_mib = free_mib
        self.asked: list[str] = []

    def statvfs(self, path: str) -> Any:
        self.asked.append(path)
        return SimpleNamespace(f_bavail=self.free_mib, f_frsize=MIB)


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def out(task: str, n: int = 1) -> str:
    return f"/h/outputs/{task}/20260601T000000Z-s{n}-a1.log"


def test_a_roomy_disk_is_asked_at_most_once_a_second() -> None:
    disk, ticks = Disk(free_mib=10_000), Ticks()
    room = DiskRoom(disk.statvfs, ticks)
    assert not any(room.full(out(f"t{i}", i)) for i in range(50))  # fifty tasks, one look
    assert disk.asked == ["/h/outputs/t0"]
    ticks.now += 0.99
    assert not room.full(out("t1"))
    assert len(disk.asked) == 1
    ticks.now += 0.02  # past the second: asked again
    assert not room.full(out("t1"))
    assert disk.asked[1:] == ["/h/outputs/t1"]


def test_a_disk_that_fills_is_seen_within_the_second_and_said() -> None:
    disk, ticks = Disk(free_mib=10_000), Ticks()
    room = DiskRoom(disk.statvfs, ticks)
    assert not room.full(out("a"))
    disk.free_mib = 0
    ticks.now += 1.0
    assert room.full(out("a"))
    assert room.full(out("b"))  # a full disk is never taken on trust: asked each run
    assert len(disk.asked) == 3


def test_a_disk_with_little_room_is_asked_on_every_run() -> None:
    disk, ticks = Disk(free_mib=100), Ticks()  # under the 256 MiB that is kept
    room = DiskRoom(disk.statvfs, ticks)
    assert not room.full(out("a"))
    disk.free_mib = 0  # filled at once: the very next run sees it
    assert room.full(out("a"))
    assert len(disk.asked) == 2


def test_a_disk_that_cannot_be_asked_is_not_called_full_and_the_log_says_why_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(path: str) -> Any:
        raise PermissionError(13, "Permission denied", path)

    room = DiskRoom(broken, Ticks())
    with caplog.at_level(logging.WARNING, logger="agentcron.engine"):
        assert not any(room.full(out("a", n)) for n in range(20))
    said = [r.getMessage() for r in caplog.records if "cannot ask how much room" in r.getMessage()]
    assert said == [
        "cannot ask how much room the disk holding /h/outputs/a has (Permission denied): a "
        "run that kept no output is not checked for a full disk"
    ]


def test_a_missing_output_folder_is_no_fault_and_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its parent answers for it (a run that kept nothing has no folder)."""

    def statvfs(path: str) -> Any:
        if path != "/h/outputs":
            raise FileNotFoundError(2, "No such file or directory", path)
        return SimpleNamespace(f_bavail=10_000, f_frsize=MIB)

    with caplog.at_level(logging.DEBUG, logger="agentcron.engine"):
        assert not DiskRoom(statvfs, Ticks()).full(out("a"))
    assert caplog.records == []


def test_outputs_without_a_folder_are_asked_once_a_second_of_a_parent() -> None:
    """A run that wrote nothing may have no folder: its parent is asked, and the
    answer is kept (asking only the missing folder made every such run a call)."""
    asked: list[str] = []

    def statvfs(path: str) -> Any:
        asked.append(path)
        if path != "/h":
            raise FileNotFoundError(2, "No such file or directory", path)
        return SimpleNamespace(f_bavail=10_000, f_frsize=MIB)

    ticks = Ticks()
    room = DiskRoom(statvfs, ticks)
    assert not any(room.full(out(f"t{i}", i)) for i in range(50))
    assert asked == ["/h/outputs/t0", "/h/outputs", "/h"]
    ticks.now += 1.01
    assert not room.full(out("t1"))
    assert asked[3:] == ["/h/outputs/t1", "/h/outputs", "/h"]


def test_a_full_disk_is_seen_through_a_parent_of_a_missing_folder() -> None:
    def statvfs(path: str) -> Any:
        if path != "/h":
            raise FileNotFoundError(2, "No such file or directory", path)
        return SimpleNamespace(f_bavail=0, f_frsize=MIB)

    assert DiskRoom(statvfs, Ticks()).full(out("a"))


def _quiet() -> None:
    return None


def _chatty() -> str:
    return f"signed in with {SECRET}"


def _runs(store: Store, clock: FakeClock, home: Path, hours: int) -> Harness:
    async def scenario() -> Harness:
        h = Harness(store, clock, home)
        h.add("job", _quiet, every="1h", timezone="UTC", retries=0)
        for _ in range(hours):
            clock.advance(timedelta(hours=1))
            await h.tick()
        return h

    return asyncio.run(scenario())


def test_the_runner_still_sees_a_disk_fill_between_runs(
    sqlite_store: Store,
    clock: FakeClock,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through the real runner: empty while there is room, not called empty (and said)
    once the disk is full, the kernel asked once for the roomy runs of one second."""
    disk, ticks = Disk(free_mib=10_000), Ticks()
    monkeypatch.setattr(runner_module, "_ROOM", DiskRoom(disk.statvfs, ticks))
    h = _runs(sqlite_store, clock, home, 2)
    assert [f.outcome.empty_output for f in h.finished] == [True, True]
    assert len(disk.asked) == 1  # two runs within the same (monotonic) second
    disk.free_mib, ticks.now = 0, ticks.now + 1.5
    with caplog.at_level(logging.ERROR, logger="agentcron.runner"):

        async def once_more() -> None:
            clock.advance(timedelta(hours=1))
            await h.tick()

        asyncio.run(once_more())
    assert [f.outcome.empty_output for f in h.finished] == [True, True, False]
    assert "disk" in caplog.text and "is full" in caplog.text


def test_a_kept_output_is_still_redacted_and_private(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("job", _chatty, every="1h", timezone="UTC", env={"CRM_PASSWORD": SECRET})
        clock.advance(timedelta(hours=1))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("job")
    assert slot.status is SlotStatus.SUCCEEDED and slot.output_path is not None
    assert Path(slot.output_path).read_text() == "signed in with [REDACTED]"
    assert stat.S_IMODE(os.stat(slot.output_path).st_mode) == 0o600


def test_a_run_that_kept_nothing_is_not_looked_for_and_the_home_is_private(
    sqlite_store: Store, clock: FakeClock, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.chmod(home, 0o755)  # a home made before this release
    looked: list[str] = []
    real_stat = os.stat

    def spy(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if "outputs" in os.fspath(path) and os.fspath(path).endswith(".log"):
            looked.append(os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", spy)

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("job", _quiet, every="1h", timezone="UTC")
        clock.advance(timedelta(hours=1))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("job")
    assert slot.status is SlotStatus.SUCCEEDED and slot.output_path is None
    assert looked == []
    monkeypatch.setattr(os, "stat", real_stat)
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert h.finished[0].outcome.empty_output


class _Recorder:
    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.written: list[int] = []

    def finish_many(self, items: list[Finish]) -> list[str]:
        if self.down:
            raise RuntimeError("database is locked")
        self.written.extend(i.slot_id for i in items)
        return [f"slot-{i.slot_id}" for i in items]


@pytest.mark.parametrize("down_first", [False, True])
def test_a_run_cancelled_while_its_end_is_queued_still_has_it_written(down_first: bool) -> None:
    """The finisher's futures are awaited bare (no shield): cancelling the waiter must
    not keep its end out of the database, whether the write is the next one or one
    retried after a failure."""
    store = _Recorder(down=down_first)
    finisher = Finisher(store, retry_first=0.001)  # type: ignore[arg-type]
    outcome = AttemptOutcome(ok=True, slot_status=SlotStatus.SUCCEEDED)
    now = datetime(2026, 1, 1, tzinfo=UTC)

    async def scenario() -> list[Any]:
        runs = [
            asyncio.ensure_future(finisher.finish(Finish(i, i, "n", outcome, now))) for i in (1, 2)
        ]
        await asyncio.sleep(0)  # both queued
        if down_first:
            await asyncio.sleep(0.01)  # a write or two failed: both wait for the retry
            assert store.written == []
        runs[0].cancel()
        store.down = False
        got = await asyncio.gather(*runs, return_exceptions=True)
        await until(lambda: finisher.backlog == 0)
        return got

    got = asyncio.run(scenario())
    assert isinstance(got[0], asyncio.CancelledError)
    assert got[1] == "slot-2"
    assert sorted(store.written) == [1, 2]
