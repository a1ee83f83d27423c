"""A record the database refuses must not hold up every other run's end.

PostgreSQL refuses NUL in text, which SQLite keeps: a failed command that printed one
(binary output, a core dump's header) put it in its error's tail, that end was refused
on every try, and the runs whose ends came with it stayed `running` while the engine
told the owner the database was away."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agentcron.clock import FakeClock
from agentcron.model import SlotStatus
from agentcron.store.sql import SQLStore
from agentcron.store.sqlite import SQLiteStore
from harness import Harness

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def test_a_failure_whose_output_holds_a_nul_is_recorded_with_the_others(
    store: SQLStore, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    h = Harness(store, clock, tmp_path / "home")

    async def scenario() -> None:
        h.add("nul", every="1m", command="printf 'bad\\000thing\\n'; exit 3", shell=True, retries=0)
        h.add("fine", every="1m", command="echo hi", shell=True)
        clock.advance(timedelta(minutes=1))
        await h.tick()

    asyncio.run(scenario())
    assert [s.status for s in h.slots("fine")] == [SlotStatus.SUCCEEDED]
    (slot,) = h.slots("nul")
    assert slot.status is SlotStatus.FAILED
    assert h.engine._deps.finisher is None or h.engine._deps.finisher.last_error is None
    assert h.engine.health.outage is None
    (attempt,) = store.attempts(slot.id)
    error = attempt.error or ""
    assert "exited with code 3: bad" in error
    if not isinstance(store, SQLiteStore):  # PostgreSQL keeps text without NUL
        assert "bad\ufffdthing" in error


def test_a_record_refused_first_in_its_batch_does_not_hold_the_others() -> None:
    """The first end alone refused, the second alone taken: the first is the one
    refused (not the database), and the rest are written one at a time."""
    from agentcron.engine.finisher import Finisher
    from agentcron.model import AttemptOutcome, Finish, Slot

    written: list[int] = []

    class Store:
        def set_meta(self, key: str, value: str) -> None:
            pass  # the database takes writes: it is the record that is refused

        def finish_many(self, items: list[Finish]) -> list[Slot | None]:
            if any(item.slot_id == 1 for item in items):
                raise ValueError("refused")
            written.extend(item.slot_id for item in items)
            return [None for _ in items]

    finisher = Finisher(Store(), retry_first=3600)  # type: ignore[arg-type]
    outcome = AttemptOutcome(ok=True, slot_status=SlotStatus.SUCCEEDED)

    async def scenario() -> None:
        waits = [
            asyncio.ensure_future(finisher.finish(Finish(i, i, "n", outcome, T0)))
            for i in (1, 2, 3, 4)
        ]
        await asyncio.sleep(0.05)
        assert [w.done() for w in waits] == [False, True, True, True]
        assert finisher.backlog == 1
        finisher.abandon()
        for w in waits:
            w.cancel()

    asyncio.run(scenario())
    assert sorted(written) == [2, 3, 4]


def test_a_record_refused_again_and_again_is_given_up_not_taken_for_an_outage() -> None:
    """A refused record alone (each minute's run of one task refused the same way)
    must not put the engine in a database outage, nor wait for ever."""
    from agentcron.engine.finisher import REFUSED_TRIES, Finisher
    from agentcron.model import AttemptOutcome, Finish, Slot

    class Store:
        def set_meta(self, key: str, value: str) -> None:
            pass

        def finish_many(self, items: list[Finish]) -> list[Slot | None]:
            if any(item.slot_id in (1, 2) for item in items):
                raise ValueError("refused")
            return [None for _ in items]

    finisher = Finisher(Store(), retry_first=0.01)  # type: ignore[arg-type]
    outcome = AttemptOutcome(ok=True, slot_status=SlotStatus.SUCCEEDED)

    async def scenario() -> list[BaseException | None]:
        waits = [
            asyncio.ensure_future(finisher.finish(Finish(i, i, "n", outcome, T0)))
            for i in (1, 2, 3)
        ]
        await asyncio.sleep(0)
        assert finisher.last_error is None  # not an outage
        done, _ = await asyncio.wait(waits, timeout=30)
        assert len(done) == 3 and finisher.backlog == 0
        return [w.exception() for w in waits]

    errors = asyncio.run(scenario())
    assert [type(e).__name__ for e in errors] == ["RecordRefused", "RecordRefused", "NoneType"]
    assert "refused the record of this run's end" in str(errors[0])
    assert REFUSED_TRIES >= 2


def test_a_full_disk_refusing_the_batch_is_an_outage_even_if_a_small_write_passes() -> None:
    """A one-row write may fit a nearly full disk where a batch of output tails does
    not: an error of the database's state is an outage (the runs wait, nothing is
    given up), whatever the small write says, and costs no second busy timeout."""
    import sqlite3

    from agentcron.engine.finisher import REFUSED_TRIES, Finisher
    from agentcron.model import AttemptOutcome, Finish, Slot

    probes: list[str] = []

    class Store:
        full = True

        def set_meta(self, key: str, value: str) -> None:
            probes.append(key)

        def finish_many(self, items: list[Finish]) -> list[Slot | None]:
            if self.full:
                raise sqlite3.OperationalError("database or disk is full")
            return [None for _ in items]

    store = Store()
    finisher = Finisher(store, retry_first=0.01)  # type: ignore[arg-type]
    outcome = AttemptOutcome(ok=True, slot_status=SlotStatus.SUCCEEDED)

    async def scenario() -> list[BaseException | None]:
        waits = [
            asyncio.ensure_future(finisher.finish(Finish(i, i, "n", outcome, T0))) for i in (1, 2)
        ]
        await asyncio.sleep(0.01 * 2**REFUSED_TRIES * 2)  # past any number of refusals
        assert finisher.last_error is not None and finisher.backlog == 2
        assert not any(w.done() for w in waits)
        store.full = False
        await asyncio.wait(waits, timeout=30)
        return [w.exception() for w in waits]

    assert asyncio.run(scenario()) == [None, None]
    assert probes == []


def test_a_record_given_up_is_replaced_by_a_failure_that_says_so(home: Path) -> None:
    """Before, its run stayed ``running`` until its lease lapsed and was then told as
    "the worker stopped responding"; the refusal was in the log only. Now the runner
    records a failure that names it at once, retried as a lost run would be, and the
    owner is told that."""
    import sqlite3

    from agentcron.model import Finish, Slot
    from agentcron.notify.notifier import Notifier
    from agentcron.notify.sender import OutboxSender
    from notify_rig import HOOK, RecordingChannel

    class Refusing(SQLiteStore):
        """Refuses the record of any success of ``poison`` (a value it cannot keep)."""

        def finish_many(self, items: Sequence[Finish]) -> list[Slot | None]:
            for item in items:
                if item.claimed and item.claimed.task == "poison" and item.outcome.ok:
                    raise sqlite3.IntegrityError("CHECK constraint failed: poison")
            return super().finish_many(items)

    store = Refusing(home / "agentcron.db")
    clock = FakeClock(T0)
    h = Harness(store, clock, home)
    notifier = Notifier(store, clock, [HOOK], "UTC")
    notifier.attach(h.engine)
    channel = RecordingChannel()
    sender = OutboxSender(store, channel_factory=lambda _url: channel, clock=clock)

    async def scenario() -> list[str]:
        h.add("poison", lambda: "out", every="1h", timezone="UTC", retries=2)
        h.add("fine", lambda: "out", every="1h", timezone="UTC")
        clock.advance(timedelta(hours=1))
        await h.tick()
        await sender.drain_once()
        return [m.body.splitlines()[0] for m in channel.sent]

    try:
        lines = asyncio.run(scenario())
        (slot,) = h.slots("poison")
        assert slot.status is SlotStatus.RETRYING and slot.lease_owner is None
        assert "could not record how this run ended" in (slot.error or "")
        assert "CHECK constraint failed: poison" in (slot.error or "")
        assert [s.status for s in h.slots("fine")] == [SlotStatus.SUCCEEDED]
        assert h.engine.health.outage is None
        (line,) = lines
        assert line.startswith("⚠ poison failed: agentcron could not record how this run ended")
        assert "Retrying at" in line, line
    finally:
        store.close()
