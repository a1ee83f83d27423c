"""agentcron's process out of open files, memory or threads: the daemon's limit, not the
task's fault, and retried.

Under ``ulimit -n 64`` (an outside-in probe) every command failed to start with "Too
many open files", each told as the task's own permanent fault: "the task is
misconfigured … Retrying will not help"; under a memory limit "can't start new thread"
was told as a bug of agentcron, not retried. Both pass with the load: each run is now
retried as a lost run is, its error saying whose limit was reached."""

from __future__ import annotations

import asyncio
import errno
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.classify.resources import out_of_resources
from agentcron.clock import FakeClock
from agentcron.model import ErrorClass, SlotStatus
from agentcron.store.base import Store
from harness import Harness


def test_what_counts_as_running_out() -> None:
    assert "ulimit -n" in (out_of_resources(OSError(errno.EMFILE, "Too many open files")) or "")
    assert out_of_resources(OSError(errno.ENOMEM, "Cannot allocate memory")) == "memory"
    assert "threads" in (out_of_resources(RuntimeError("can't start new thread")) or "")
    assert out_of_resources(OSError(errno.ENOENT, "No such file")) is None
    eagain = BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
    assert out_of_resources(eagain) is None  # a non-blocking call's "try again"
    assert "ulimit -u" in (out_of_resources(eagain, spawning=True) or "")  # fork's
    assert out_of_resources(RuntimeError("something else")) is None


@pytest.mark.parametrize("launcher", [True, False], ids=["launcher", "direct"])
def test_a_command_that_cannot_start_for_want_of_open_files_is_retried(
    sqlite_store: Store,
    clock: FakeClock,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    launcher: bool,
) -> None:
    from agentcron.actions import command

    if not launcher:
        monkeypatch.setattr(command, "_launcher", lambda argv, ctx, status_w: argv)

    async def no_files(*_a: Any, **_k: Any) -> Any:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(command.asyncio, "create_subprocess_exec", no_files)
    h = Harness(sqlite_store, clock, home)
    h.add("t16", command=["true"], every="1h", retries=2)
    clock.advance(timedelta(hours=1))
    asyncio.run(h.tick())
    asyncio.run(h.engine.wait_idle())
    (slot,) = h.slots("t16")
    assert slot.status is SlotStatus.RETRYING, slot
    assert slot.error_class is ErrorClass.WORKER_LOST
    assert slot.error is not None
    assert "agentcron ran out of open files (the daemon's limit: `ulimit -n`" in slot.error
    assert "not the task's fault" in slot.error and "misconfigured" not in slot.error


def test_a_thread_that_cannot_start_inside_a_run_is_retried_not_a_bug(
    sqlite_store: Store, clock: FakeClock, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentcron.engine import runner

    async def no_thread(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(runner, "_attempt", no_thread)
    h = Harness(sqlite_store, clock, home)
    h.add("tick", lambda: "ok", every="1h", retries=1)
    clock.advance(timedelta(hours=1))
    asyncio.run(h.tick())
    asyncio.run(h.engine.wait_idle())
    (slot,) = h.slots("tick")
    assert slot.status is SlotStatus.RETRYING and slot.error_class is ErrorClass.WORKER_LOST
    assert "agentcron ran out of threads" in (slot.error or "")
