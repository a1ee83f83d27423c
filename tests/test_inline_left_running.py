"""An inline call left running past its run (its timeout; the daemon cannot stop a
thread) holds its task's next runs: they are recorded skipped, saying why, instead of
a second call started beside it. An outside-in probe saw a second call start while
the first, timed out, still ran (``overlap: skip`` broken without a word), and a hung
function would get one more stuck thread every period."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from agentcron.actions.python_action import still_running_past_its_run
from agentcron.clock import FakeClock
from agentcron.model import SlotStatus
from agentcron.store.base import Store
from harness import Harness


def test_a_call_left_running_holds_its_task_and_then_lets_it_run(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    release = threading.Event()
    calls: list[str] = []

    def hung() -> str:
        calls.append("hung")
        release.wait(30)
        return "done late"

    def beside() -> str:  # overlap: allow asks for calls side by side
        calls.append("beside")
        release.wait(30)
        return "done late"

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("hung", hung, every="1h", timeout="1s", retries=0, timezone="UTC")
        h.add("beside", beside, every="1h", timeout="1s", retries=0, overlap="allow",
              timezone="UTC")  # fmt: skip
        for _ in range(2):  # the first runs time out; the next hour's find them running
            clock.advance(timedelta(hours=1))
            await h.tick()
        assert still_running_past_its_run("hung") is not None
        release.set()
        deadline = time.monotonic() + 10
        while still_running_past_its_run("hung") is not None:
            assert time.monotonic() < deadline, "the call's end was not seen"
            await asyncio.sleep(0.01)
        clock.advance(timedelta(hours=1))  # its call has returned: runs again
        await h.tick()
        return h

    h = asyncio.run(scenario())
    statuses = [s.status for s in h.slots("hung")]
    assert statuses == [SlotStatus.FAILED, SlotStatus.SKIPPED, SlotStatus.SUCCEEDED], statuses
    skipped = h.slots("hung")[1]
    assert skipped.reason == (
        "the inline call of its run due at 01:00:00 UTC still runs in the daemon past that "
        "run's end (its timeout, or a stop), and the daemon cannot stop it: not started "
        "beside it (overlap: skip; a restart of the daemon ends it)"
    ), skipped.reason
    assert calls.count("hung") == 2  # the first, and the one after it returned
    # overlap: allow: the second call started beside the first, as asked
    assert [s.status for s in h.slots("beside")][:2] == [SlotStatus.FAILED, SlotStatus.FAILED]
    assert calls.count("beside") == 3


def test_a_retry_and_a_queued_run_wait_for_the_call_and_then_run(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """A retry the owner was told of ("Retrying at …") was recorded skipped behind its
    own first attempt's call (outside-in probe); with overlap: queue a fire should not
    be dropped either. Both wait, looked at again, and run once the call returns."""
    release = threading.Event()

    hung = _until(release)

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("retried", hung, every="1h", timeout="1s", retries=1, timezone="UTC",
              retry_backoff={"base": "10s", "factor": 1, "jitter": 0})  # fmt: skip
        clock.advance(timedelta(hours=1))
        await h.tick()  # times out; its retry is due in 10 s
        clock.advance(timedelta(seconds=30))
        await h.tick()
        _waiting(h, "retried", "01:00:00")
        await _released(release, h, "retried")
        return h

    h = asyncio.run(scenario())
    (retried,) = h.slots("retried")
    # the wait is over once it ran: its reason does not stay on the success (probe)
    assert retried.status is SlotStatus.SUCCEEDED and retried.reason is None, retried
    assert [a.status for a in h.store.attempts(retried.id)] == ["failed", "succeeded"]


def _until(release: threading.Event) -> Callable[[], str]:
    """A function that returns only once ``release`` is set (30 s at most)."""

    def hung() -> str:
        release.wait(30)
        return "done"

    return hung


async def _released(release: threading.Event, h: Harness, name: str) -> None:
    """Let the call of ``name`` return, wait until its end is seen, then tick past the
    waiting run's next look."""
    release.set()
    deadline = time.monotonic() + 10
    while still_running_past_its_run(name):
        assert time.monotonic() < deadline, "the call's end was not seen"
        await asyncio.sleep(0.01)
    h.clock.advance(timedelta(seconds=10))
    await h.tick()


def _waiting(h: Harness, name: str, due: str) -> None:
    waiting = [s for s in h.slots(name) if not s.status.is_final]
    assert waiting and (waiting[-1].reason or "").startswith(
        f"waiting: the inline call of its run due at {due} UTC still runs"
    ), (name, waiting)


def test_a_queued_fire_waits_for_the_call_and_then_runs(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    release = threading.Event()

    hung = _until(release)

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("queued", hung, every="1h", timeout="1s", retries=0, overlap="queue",
              timezone="UTC")  # fmt: skip
        clock.advance(timedelta(hours=1))
        await h.tick()  # times out, its call goes on
        clock.advance(timedelta(hours=1))
        await h.tick()
        _waiting(h, "queued", "01:00:00")
        await _released(release, h, "queued")
        return h

    h = asyncio.run(scenario())
    assert [s.status for s in h.slots("queued")] == [SlotStatus.FAILED, SlotStatus.SUCCEEDED]


def test_a_call_left_running_holds_only_its_own_daemons_task_of_that_name(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Outside-in probe: two Schedulers of one program, on two homes, each with a task
    `job`: the one whose call hung held the other's back ("still runs in the daemon
    past that run's end"), told as skips of a task that never hung."""
    from agentcron.store.sqlite import SQLiteStore

    release = threading.Event()

    def hang() -> str:
        release.wait(30)
        return "late"

    async def scenario() -> tuple[Harness, Harness]:
        homes = [tmp_path / "a", tmp_path / "b"]
        for h in homes:
            h.mkdir()
        a = Harness(SQLiteStore(homes[0] / "agentcron.db"), clock, homes[0])
        b = Harness(SQLiteStore(homes[1] / "agentcron.db"), clock, homes[1])
        a.add("job", hang, every="1h", timeout="1s", retries=0, timezone="UTC")
        b.add("job", lambda: "b ok", every="1h", retries=0, timezone="UTC")
        for _ in range(2):
            clock.advance(timedelta(hours=1))
            await a.tick()
            await b.tick()
        assert still_running_past_its_run("job", str(homes[0])) is not None
        assert still_running_past_its_run("job", str(homes[1])) is None
        release.set()
        return a, b

    try:
        a, b = asyncio.run(scenario())
    finally:
        release.set()
    assert [s.status for s in b.slots("job")] == [SlotStatus.SUCCEEDED, SlotStatus.SUCCEEDED]
    assert [s.status for s in a.slots("job")] == [SlotStatus.FAILED, SlotStatus.SKIPPED]


def test_an_async_call_that_blocked_past_its_timeout_is_not_said_to_run_on(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Outside-in probe: an `async def` that blocked the loop (time.sleep) past its
    timeout was told "an inline call cannot be killed and may still be running" when
    it had ended; what it did (held the event loop) went unsaid."""

    async def blocks() -> str:
        time.sleep(1.3)  # the mistake the message explains
        return "woke"

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add("blocks", blocks, every="1h", timeout="1s", retries=0, timezone="UTC")
        clock.advance(timedelta(hours=1))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("blocks")
    assert slot.status is SlotStatus.FAILED
    error = slot.error or ""
    assert "took longer than its 1s timeout, holding the daemon's event loop" in error, error
    assert "may still be running" not in error
    assert still_running_past_its_run("blocks") is None
