"""A full disk in agentcron's home fails every task's runs at once: told once for the
home, not once per task (outside-in probe: three tasks made nine messages for one full
disk, fifty would have made a hundred and fifty).

In-process with the fake clock: commands whose output has nowhere to go (the runner's
disk check says full), the real notifier, outbox and a recording channel.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import agentcron.engine.runner as runner_module
from agentcron.clock import FakeClock
from agentcron.home import hostname
from agentcron.model import Incident, IncidentKind, SlotStatus
from agentcron.model.failure import STORAGE_FAULT
from agentcron.store.base import Store
from test_told_once import Rig

SCOPE = f"home:{hostname()}"


def _fleet(rig: Rig, *names: str, retries: int = 3) -> None:
    for name in names:
        # exit 120: what Python does when it cannot flush stdout to a full disk
        rig.h.add(name, command=["sh", "-c", "exit 120"], every="5s", retries=retries)


def _full_disk(
    store: Store, clock: FakeClock, home: Path, monkeypatch: Any
) -> tuple[Rig, list[bool]]:
    """A rig whose runs' disk is full (the runner's check says so) until ``full[0]``
    is set False (see :func:`_room_again`)."""
    full = [True]
    monkeypatch.setattr(runner_module, "_disk_full", lambda _path: full[0])
    return Rig(store, clock, home), full


def _room_again(rig: Rig, full: list[bool], *names: str) -> None:
    """The disk has room again: the tasks' commands now write their output and succeed."""
    full[0] = False
    now = rig.clock.now()
    for name in names:
        rec = rig.store.get_task(name)
        assert rec is not None
        spec = rec.spec.model_copy(update={"command": ["echo", "ok"]})
        rig.store.upsert_task(spec, rec.source, now, now + timedelta(seconds=1))


def test_a_full_disk_is_one_message_for_every_task_and_one_when_files_are_written_again(
    sqlite_store: Store, clock: FakeClock, home: Path, monkeypatch: Any
) -> None:
    rig, full = _full_disk(sqlite_store, clock, home, monkeypatch)
    _fleet(rig, "a", "b", "c")

    async def scenario() -> list[str]:
        await rig.h.run_until(clock.now() + timedelta(seconds=30), timedelta(seconds=1))
        assert len(await rig.lines()) == 1  # told while it lasts, once
        _room_again(rig, full, "a", "b", "c")
        await rig.h.run_until(clock.now() + timedelta(seconds=15), timedelta(seconds=1))
        return await rig.lines()

    lines = asyncio.run(scenario())
    assert len(lines) == 2, lines
    opened, closed = lines
    assert opened.startswith(f"✖ agentcron cannot write runs' files on {hostname()}: "), opened
    assert f"the disk holding {home / 'outputs'} is full" in opened
    assert "Runs of 3 tasks (a, b, c) failed for it" in opened
    assert "until there is room. Free space in agentcron's home;" in opened
    assert closed.startswith(f"✔ agentcron writes runs' files on {hostname()} again after "), closed
    assert "of 3 tasks (a, b, c) failed meanwhile" in closed
    # Each task's runs are recorded as what they were; no task has an incident of its own.
    for name in ("a", "b", "c"):
        failed = [s for s in rig.h.slots(name) if s.error_class is not None]
        assert failed and all("disk holding its output is full" in (s.error or "") for s in failed)
        assert rig.store.incidents(name) == []
    [incident] = rig.store.incidents(SCOPE)
    assert incident.kind is IncidentKind.STORAGE and not incident.is_open
    assert incident.failed_runs >= 6  # two fires of each at least, 5 s apart
    # what the incident counts is attempts (a run retried is one run, two attempts)
    assert f"{incident.failed_runs} attempts at runs of 3 tasks" in closed
    assert closed.endswith("each was retried as its task's `retries` allow."), closed


def test_runs_given_up_during_it_are_counted_in_its_end_and_other_failures_stay_the_tasks(
    sqlite_store: Store, clock: FakeClock, home: Path, monkeypatch: Any
) -> None:
    rig, full = _full_disk(sqlite_store, clock, home, monkeypatch)
    _fleet(rig, "once", retries=0)  # no retry: each run fails for good
    rig.h.add("broken", command=["sh", "-c", "exit 3"], every="5s", retries=0)

    async def scenario() -> list[str]:
        await rig.h.run_until(clock.now() + timedelta(seconds=12), timedelta(seconds=1))
        _room_again(rig, full, "once")
        await rig.h.run_until(clock.now() + timedelta(seconds=10), timedelta(seconds=1))
        return await rig.lines()

    lines = asyncio.run(scenario())
    home_lines = [line for line in lines if "agentcron" in line and "runs' files" in line]
    assert len(home_lines) == 2, lines
    given_up = [
        s
        for name in ("once", "broken")
        for s in rig.h.slots(name)
        if s.status is SlotStatus.FAILED and "disk holding" in (s.error or "")
    ]
    assert len(given_up) >= 4
    assert f"{len(given_up)} of them had no retry left and failed for good" in home_lines[1]
    # "broken" failed while the disk was full too, but so it does with room: each
    # command failing on a full disk is taken for the disk's (the runner cannot tell),
    # and once there is room its failures are its own again, told as the task's.
    assert any(line.startswith("✖ broken failed: the command exited with code 3") for line in lines)


def test_the_attempt_keeps_what_could_not_be_written(
    sqlite_store: Store, clock: FakeClock, home: Path, monkeypatch: Any
) -> None:
    rig, _full = _full_disk(sqlite_store, clock, home, monkeypatch)
    _fleet(rig, "a")
    asyncio.run(rig.h.run_until(clock.now() + timedelta(seconds=6), timedelta(seconds=1)))
    [f] = rig.h.finished[:1]
    assert f.outcome.extra[STORAGE_FAULT] == f"the disk holding {home / 'outputs'} is full"


def test_a_fault_seen_only_once_over_is_one_message(
    sqlite_store: Store, clock: FakeClock, home: Path, monkeypatch: Any
) -> None:
    """Home and database on one full disk: the database's outage is told, and the runs'
    ends reach the notifier after it, with the runs that wrote again. It was told open
    and closed in the same second; now it is one message that it happened."""
    rig, full = _full_disk(sqlite_store, clock, home, monkeypatch)
    _fleet(rig, "a", "b")
    report = rig.notifier.storage.report
    monkeypatch.setattr(rig.notifier.storage, "report", lambda now: [])  # the ends held

    async def scenario() -> list[str]:
        await rig.h.run_until(clock.now() + timedelta(seconds=6), timedelta(seconds=1))
        _room_again(rig, full, "a", "b")
        await rig.h.run_until(clock.now() + timedelta(seconds=6), timedelta(seconds=1))
        monkeypatch.setattr(rig.notifier.storage, "report", report)
        await rig.h.run_until(clock.now() + timedelta(seconds=3), timedelta(seconds=1))
        return await rig.lines()

    lines = asyncio.run(scenario())
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"⚠ agentcron could not write runs' files on {hostname()} for ")
    assert f"(the disk holding {home / 'outputs'} is full); it can again: " in lines[0]
    [incident] = rig.store.incidents(SCOPE)
    assert not incident.is_open


def test_an_incident_no_run_can_end_any_more_ends_at_a_write_of_its_own(
    sqlite_store: Store, clock: FakeClock, home: Path, monkeypatch: Any
) -> None:
    """Every task the fault hit was removed or paused while the disk was full: no run
    is left to show the home writing again, and the incident stayed open for good.
    Now, once a minute while that lasts, a write of agentcron's own is tried: while
    it fails the incident stays open; once it works, the end is told, once. While a
    task it hit still runs, its runs tell (no write of agentcron's own)."""
    from agentcron.notify.storage import PROBE_EVERY

    rig, full = _full_disk(sqlite_store, clock, home, monkeypatch)
    probed: list[bool] = []

    def probe() -> bool:
        probed.append(not full[0])
        return not full[0]

    rig.notifier.storage.probe = probe
    _fleet(rig, "a", "b")

    def still_open() -> bool:
        return IncidentKind.STORAGE in rig.store.open_incidents(SCOPE)

    async def scenario() -> list[str]:
        await rig.h.run_until(clock.now() + timedelta(seconds=12), timedelta(seconds=1))
        assert len(await rig.lines()) == 1 and still_open()
        assert probed == []  # a and b still run: their runs tell
        assert rig.store.remove_task("a", clock.now())
        assert rig.store.set_paused("b", True, clock.now(), None)
        await rig.h.run_until(clock.now() + 3 * PROBE_EVERY, timedelta(seconds=5))
        assert probed == [False, False, False] and still_open()  # once a minute, full
        full[0] = False
        await rig.h.run_until(clock.now() + 2 * PROBE_EVERY, timedelta(seconds=5))
        return await rig.lines()

    lines = asyncio.run(scenario())
    assert probed[-1] is True and not still_open()
    assert len(lines) == 2, lines
    assert lines[1].startswith(f"✔ agentcron writes runs' files on {hostname()} again after ")
    assert "of 2 tasks (a, b) failed meanwhile" in lines[1]


def test_the_daemons_write_of_its_own_fails_on_a_folder_it_cannot_write(tmp_path: Path) -> None:
    from agentcron.engine.diskroom import takes_writes

    outputs = tmp_path / "outputs"
    assert takes_writes(str(outputs)) and list(outputs.iterdir()) == []  # leaves nothing
    (tmp_path / "file").write_text("not a folder")
    assert not takes_writes(str(tmp_path / "file" / "outputs"))


@pytest.mark.parametrize(
    ("what", "fix"),
    [
        ("[Errno 30] Read-only file system: '/h/outputs/t'", "Mount agentcron's home read-write"),
        ("[Errno 1] Operation not permitted: '/h/outputs/t/1.log'", "chattr -i"),
        ("[Errno 20] Not a directory: '/h/outputs/t/1.log'", "move it"),
    ],
)
def test_the_storage_message_asks_for_the_fix_its_error_needs(what: str, fix: str) -> None:
    """ "Free space" was the advice whatever the error: a read-only home, an immutable
    folder, a file where a folder belongs (outside-in probe)."""
    from agentcron.notify.messages import render_storage

    incident = Incident(
        task="home:box", kind=IncidentKind.STORAGE, opened_at=datetime(2026, 6, 1, tzinfo=UTC)
    )
    body = render_storage(incident, what, datetime(2026, 6, 1, tzinfo=UTC), opened=True).body
    assert fix in body and "Free space" not in body, body
