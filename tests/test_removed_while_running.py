"""A task removed while one of its runs is going (found by an outside-in probe).

Before: an attempt that failed transiently left its slot ``retrying`` for good (claims
read the task's row, which is gone), shown so by ``history`` with a retry time that
never came, and the owner was told of a retry and advised to "trigger the task again",
which is impossible. Now the slot ends failed in the transaction that records the
attempt, its reason says why, and nothing is told of a task that no longer exists."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from agentcron.clock import FakeClock
from agentcron.model import Finished, SlotStatus
from agentcron.notify.notifier import Notifier
from agentcron.notify.sender import OutboxSender
from agentcron.store.base import Store
from agentcron.store.sql import REMOVED_WHILE_RUNNING
from harness import Harness, until
from notify_rig import HOOK, RecordingChannel


def _remove_mid_run(
    store: Store, clock: FakeClock, home: Path, error: type[Exception], **spec: Any
) -> tuple[Harness, list[str]]:
    """One run of ``gone`` that raises ``error`` after its task was removed; the ticks
    of the next ten minutes; the first lines of every message sent."""

    async def scenario() -> tuple[Harness, list[str]]:
        h = Harness(store, clock, home)
        notifier = Notifier(store, clock, [HOOK], "UTC")
        notifier.attach(h.engine)
        channel = RecordingChannel()
        sender = OutboxSender(store, channel_factory=lambda _url: channel, clock=clock)
        release = asyncio.Event()
        calls: list[int] = []

        async def work() -> str:
            calls.append(1)
            await release.wait()
            raise error("the service answered HTTP 503")

        h.add("gone", work, every="1m", timezone="UTC", **spec)
        h.add("kept", work, every="1h", timezone="UTC")  # a neighbour that stays
        clock.advance(timedelta(minutes=1))
        await h.tick(settle=False)
        await until(lambda: calls == [1])
        store.remove_task("gone", clock.now())
        release.set()
        await h.engine.wait_idle()
        await h.run_until(clock.now() + timedelta(minutes=10), timedelta(seconds=30))
        assert calls == [1], "a removed task's run was retried"
        await sender.drain_once()
        return h, [m.body.splitlines()[0] for m in channel.sent]

    return asyncio.run(scenario())


def test_a_transient_failure_after_removal_ends_the_slot_instead_of_a_retry_never_taken(
    store: Store, clock: FakeClock, home: Path
) -> None:
    h, lines = _remove_mid_run(store, clock, home, ConnectionError, retries=3)
    (slot,) = store.slots("gone", limit=10)
    assert slot.status is SlotStatus.FAILED
    assert slot.next_attempt_at is None and slot.finished_at is not None
    assert slot.reason == REMOVED_WHILE_RUNNING
    assert "503" in (slot.error or "")  # what the attempt met is kept
    ended: list[Finished] = [f for f in h.finished if f.spec.name == "gone"]
    assert [f.outcome.slot_status for f in ended] == [SlotStatus.FAILED]
    assert ended[0].outcome.next_attempt_at is None
    assert not [line for line in lines if "gone" in line], lines
    assert not [i for i in store.incidents("gone") if i.is_open]


def test_a_permanent_failure_after_removal_is_recorded_and_not_told(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """No "fix the error, then trigger the task again" about a task that is gone."""
    _, lines = _remove_mid_run(store, clock, home, ValueError, retries=0)
    (slot,) = store.slots("gone", limit=10)
    assert slot.status is SlotStatus.FAILED
    assert slot.reason is None  # failed on its own account; no retry was due
    assert not [line for line in lines if "gone" in line], lines
