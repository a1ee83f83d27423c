"""A home that cannot be written (disk full, read-only) is a storage problem of this
machine: retried, said as such, never the task's error or a false "produced nothing"."""

from __future__ import annotations

import asyncio
import errno
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import agentcron.actions.command as command_module
import agentcron.engine.runner as runner_module
from agentcron.actions.output import output_file_name
from agentcron.model import ErrorClass, SlotStatus
from harness import Harness


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "No space left on device"),
        # an immutable folder (chattr +i): was "agentcron itself failed … Retrying will
        # not help", not a storage problem (outside-in probe)
        (errno.EPERM, "Operation not permitted"),
    ],
)
def test_an_output_file_that_cannot_be_made_is_retried_as_a_storage_problem(
    sqlite_store: Any, clock: Any, home: Path, monkeypatch: Any, code: int, words: str
) -> None:
    def refused(_path: str) -> int:
        raise OSError(code, words, "/home/outputs/t/1.log")

    monkeypatch.setattr(command_module, "open_output", refused)

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("t", command=["echo", "hi"], every="1h", retries=2)
        h.clock.advance(timedelta(hours=1))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("t")
    assert slot.status is SlotStatus.RETRYING
    assert slot.error_class is ErrorClass.WORKER_LOST
    assert "could not write the run's files" in (slot.error or "")
    assert words in (slot.error or "")


def test_a_file_where_the_tasks_output_folder_belongs_is_a_storage_problem(
    sqlite_store: Any, clock: Any, home: Path
) -> None:
    """Something put in the way of the output folder (ENOTDIR): told as "agentcron could
    not write the run's files", retried; it was "agentcron itself failed while running
    this task … Retrying will not help" (outside-in probe)."""

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("t", command=["echo", "hi"], every="1h", retries=2)
        (home / "outputs").mkdir(exist_ok=True)
        (home / "outputs" / "t").write_text("not a folder\n")
        h.clock.advance(timedelta(hours=1))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("t")
    assert slot.status is SlotStatus.RETRYING, slot
    assert slot.error_class is ErrorClass.WORKER_LOST
    assert "could not write the run's files" in (slot.error or "")


def test_empty_output_on_a_full_disk_is_not_called_empty(
    sqlite_store: Any, clock: Any, home: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(runner_module, "_disk_full", lambda _path: True)

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("quiet", command=["true"], every="1h")
        h.clock.advance(timedelta(hours=1))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    assert [f.outcome.empty_output for f in h.finished] == [False]
    monkeypatch.setattr(runner_module, "_disk_full", lambda _path: False)

    async def again() -> None:
        h.clock.advance(timedelta(hours=1))
        await h.tick()

    asyncio.run(again())
    assert [f.outcome.empty_output for f in h.finished] == [False, True]


def test_a_command_failing_while_the_disk_is_full_is_a_storage_problem(
    sqlite_store: Any, clock: Any, home: Path, monkeypatch: Any
) -> None:
    """Python exits 120 when it cannot flush stdout to a full disk: not the task's bug."""
    monkeypatch.setattr(runner_module, "_disk_full", lambda _path: True)

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("t", command=["sh", "-c", "exit 120"], every="1h", retries=2)
        h.clock.advance(timedelta(hours=1))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("t")
    assert slot.status is SlotStatus.RETRYING
    assert slot.error_class is ErrorClass.WORKER_LOST
    assert "disk holding its output is full" in (slot.error or "")


class FewBlocksFree:
    """A disk that was full when the command wrote, and that has a few blocks free by
    the time its failure is judged (another run's file removed meanwhile)."""

    def __init__(self, free: int) -> None:
        self._free = free

    def full(self, _path: str) -> bool:
        return False

    def free(self, _path: str) -> int:
        return self._free


@pytest.mark.parametrize(
    ("command", "free", "storage"),
    [
        # Python's exit 120 (stdout not flushed) on a disk all but full: the disk's
        ("exit 120", 8192, True),
        # the command says so itself
        ("echo 'write error: No space left on device' >&2; exit 1", 8192, True),
        # the same words, but this disk has room: another disk's, the command's own
        ("echo 'write error: No space left on device' >&2; exit 1", 10 * 2**30, False),
        # an ordinary failure on an all but full disk stays the task's own
        ("exit 3", 8192, False),
    ],
)
def test_a_failure_on_a_disk_that_freed_a_few_blocks_meanwhile(
    sqlite_store: Any,
    clock: Any,
    home: Path,
    monkeypatch: Any,
    command: str,
    free: int,
    storage: bool,
) -> None:
    """Chaos soak: judged by the disk's room alone, a moment after the command met the
    full disk, 38 runs that exited 120 failed for good as code errors ("Retrying will
    not help") because a few blocks had come free meanwhile."""
    monkeypatch.setattr(runner_module, "_ROOM", FewBlocksFree(free))

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("t", command=["sh", "-c", command], every="1h", retries=2)
        h.clock.advance(timedelta(hours=1))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("t")
    if storage:
        assert slot.status is SlotStatus.RETRYING
        assert slot.error_class is ErrorClass.WORKER_LOST
        assert "disk holding its output is full" in (slot.error or "")
    else:
        assert "disk holding its output is full" not in (slot.error or "")
        assert slot.error_class is not ErrorClass.WORKER_LOST


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_a_python_result_that_cannot_be_kept_is_a_storage_problem(
    sqlite_store: Any, clock: Any, home: Path, isolation: str
) -> None:
    """The call succeeded, but agentcron's own write of what it returned failed (a full
    disk): told as "the function raised OSError: No space left on device. Retrying
    will not help", never retried, and not counted in the home's alarm (outside-in
    probe). The run's output file here is /dev/full, where every write is ENOSPC."""

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("t", python="os:getcwd", isolation=isolation, every="1h", retries=2)
        rec = h.store.get_task("t")
        assert rec is not None and rec.next_fire_at is not None
        path = Path(output_file_name(home, "t", rec.next_fire_at, 1, slot_id=1))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to("/dev/full")
        h.clock.advance(timedelta(hours=1))
        await h.tick()
        await h.engine.shutdown(10)
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("t")
    assert slot.id == 1
    assert slot.status is SlotStatus.RETRYING, slot
    assert slot.error_class is ErrorClass.WORKER_LOST, slot
    assert "could not write the run's files" in (slot.error or "")
    assert "No space left on device" in (slot.error or "")
