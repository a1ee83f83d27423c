"""An idle daemon sleeps: its threads and timers wake about once a second in all,
not several times (issue 16), while what must still be seen is seen (the writer's
bursts are checkpointed; see also test_idle_daemon.py)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agentcron.beats import next_beat, on_beat, sleep_to_beat, sleep_until
from agentcron.clock import SystemClock
from agentcron.model import Message
from agentcron.notify.channels import SendResult
from agentcron.notify.sender import OutboxSender
from agentcron.store.sqlite import SQLiteStore
from harness import until


def _wait_for(condition: object, what: str, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_the_checkpointer_sleeps_through_small_writes_and_wakes_for_a_burst(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "agentcron.db")
    try:
        store.start_background_work()
        cp = store._checkpointer
        assert cp is not None
        _wait_for(lambda: cp._idle, "the thread to wait for the writer")
        # a few rows, like an idle daemon's heartbeat: no wake-up of the thread
        for i in range(5):
            store.set_meta(f"k{i}", "v")
        assert cp._idle and cp.checkpoints == 0
        # a burst past wake_after rows wakes it: checkpointed well before the slow look
        # (30 s), within this test's deadline
        with store._tx() as db:
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, 'x')",
                [(f"b{i}",) for i in range(cp.wake_after + 1)],
            )
        _wait_for(lambda: cp.checkpoints >= 1, "a checkpoint after the burst", deadline=15.0)
    finally:
        store.close()


# ---- the beat -----------------------------------------------------------------------
def test_beats_are_multiples_and_a_duty_never_waits_longer_than_asked() -> None:
    assert next_beat(10.3, 2.0) == 12.0 and next_beat(12.0, 2.0) == 14.0
    assert on_beat(5.0, 2.0) == 4.0  # the heartbeat's 5 s on a 2 s beat: every 4 s
    assert on_beat(0.1, 0.2) == 0.2  # at least one beat
    assert on_beat(60.0, 2.0) == 60.0


def test_timers_on_one_beat_wake_the_event_loop_once_per_beat() -> None:
    """Four duties (two every beat, one every two, one every three) wake the loop about
    once per beat: their timers fall due at the same instants."""
    beat = 0.1

    async def main() -> int:
        loop = asyncio.get_running_loop()
        selector: Any = loop._selector  # type: ignore[attr-defined]
        original = selector.select
        blocked = 0

        def counting(timeout: float | None = None) -> Any:
            nonlocal blocked
            if timeout is None or timeout > 0:
                blocked += 1  # a sleep of the loop: each return is one wake-up
            return original(timeout)

        stop = asyncio.Event()

        async def duty(every: float) -> None:
            while not stop.is_set():
                await sleep_to_beat(every, stop)

        duties = [
            asyncio.create_task(duty(on_beat(e, beat))) for e in (beat, beat, 2 * beat, 3 * beat)
        ]
        await sleep_to_beat(beat)
        selector.select = counting
        end = next_beat(loop.time() + 10 * beat - beat / 2, beat)  # ten beats on
        await sleep_until(end)
        selector.select = original
        stop.set()
        await asyncio.gather(*duties)
        return blocked

    woke = asyncio.run(main())
    # unaligned, the four would wake it 10 + 10 + 5 + 3 = 28 times in ten beats
    assert woke <= 13, woke


# ---- the sender ---------------------------------------------------------------------
class _Channel:
    key = "test"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, msg: Message) -> SendResult:
        self.sent.append(msg.title)
        return SendResult(ok=True)


def _message(title: str) -> Message:
    return Message(title=title, body="b", task="t", event="test", incident_kind="", severity="info")


def test_a_woken_sender_sends_at_once_and_a_silent_enqueue_waits_for_the_beat(
    tmp_path: Path,
) -> None:
    """An idle sender claims nothing (its look is a read); a wake sends what was just
    enqueued at once, however long the beat; a message another process enqueued (no
    wake) is sent on the next beat."""
    store = SQLiteStore(tmp_path / "agentcron.db")
    channel = _Channel()
    clock = SystemClock()

    async def main(beat: float, wake: bool) -> tuple[int, int]:
        sender = OutboxSender(store, channel_factory=lambda _url: channel, clock=clock)
        claims = 0
        claim = store.claim_outbox

        def counting(*args: Any) -> Any:
            nonlocal claims
            claims += 1
            return claim(*args)

        store.claim_outbox = counting  # type: ignore[method-assign]
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run_forever(stop, interval=beat))
        try:
            await asyncio.sleep(0.3)  # the first pass drains (nothing), then it sleeps
            idle_claims = claims
            await asyncio.sleep(0.5)
            idle_claims = claims - idle_claims
            store.enqueue("test", "test://", _message(f"beat {beat}"), clock.now())
            if wake:
                sender.wake()
            await until(lambda: f"beat {beat}" in channel.sent, timeout=30)
        finally:
            stop.set()
            await task
            store.claim_outbox = claim  # type: ignore[method-assign]
        return idle_claims, claims

    try:
        idle, _ = asyncio.run(main(0.1, wake=False))  # found on a beat
        assert idle == 0  # five idle beats, no claim (no write transaction)
        asyncio.run(main(3600.0, wake=True))  # an hour's beat: the wake sends it
    finally:
        store.close()
    assert channel.sent == ["beat 0.1", "beat 3600.0"]


# ---- the daemon ---------------------------------------------------------------------
CONFIG = "tasks:\n  a:\n    every: 1d\n    command: [echo, a]\n"


def test_an_idle_daemon_neither_reads_its_config_nor_claims_yet_sees_edits_and_stalls(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Idle on its beat: the config file is stat'ed, not read; no claim of the outbox,
    the deliveries or the slots (each a write transaction). An edit of the same size
    whose mtime is set back is still applied (the stat's ctime moved), and a loop that
    blocks is still reported stalled, while the quiet one never was."""
    import agentcron.daemon as daemon_module
    from agentcron.daemon import Daemon, DaemonOptions

    config = tmp_path / "agentcron.yaml"
    config.write_text(CONFIG)
    old = time.time() - 3600
    os.utime(config, (old, old))
    reads: list[float] = []
    real_load = daemon_module.load_config

    def counting_load(path: Path) -> Any:
        reads.append(time.monotonic())
        return real_load(path)

    monkeypatch.setattr(daemon_module, "load_config", counting_load)
    d = Daemon(
        DaemonOptions(
            config_path=config,
            home=tmp_path / "home",
            poll_interval=0.3,
            reload_interval=0.3,
            stall_after=1.5,
            watchdog_interval=0.3,
            shutdown_grace=2,
        )
    )
    stalled: list[bool] = []

    async def scenario() -> None:
        main = asyncio.create_task(d.run())
        try:
            await until(lambda: d.engine is not None and d.engine.passes >= 2, timeout=30)
            assert d.store is not None and d.engine is not None
            calls: dict[str, int] = {}
            for name in ("claim_outbox", "claim_deliveries", "_tx"):
                real = getattr(d.store, name)

                def counted(*args: Any, _real: Any = real, _name: str = name) -> Any:
                    calls[_name] = calls.get(_name, 0) + 1
                    return _real(*args)

                setattr(d.store, name, counted)
            loaded, passes = len(reads), d.engine.passes
            await asyncio.sleep(2.0)  # about seven beats
            assert len(reads) == loaded  # stat'ed on each beat, never read
            assert "claim_outbox" not in calls and "claim_deliveries" not in calls
            assert calls.get("_tx", 0) <= 2  # the heartbeat's and the tick record's writes
            assert d.engine.passes - passes <= 10  # about one a beat, no spinning
            assert not d.watchdog.stalled  # a quiet loop passes on its beat
            # an edit of the same size, its mtime set back: the ctime tells
            digest = d.config.digest if d.config else None
            config.write_text(CONFIG.replace("1d", "2d"))
            os.utime(config, (old, old))
            await until(lambda: d.config is not None and d.config.digest != digest, timeout=30)
            # a blocked loop is still told
            watcher = threading.Thread(
                target=lambda: stalled.append(_wait_until(lambda: d.watchdog.stalled, 20.0))
            )
            watcher.start()
            time.sleep(3.0)  # blocks the event loop, as a wedged inline call would
            await asyncio.to_thread(watcher.join, 30)
        finally:
            d.stop_event.set()
            await asyncio.wait_for(main, 60)

    asyncio.run(scenario())
    assert stalled == [True]


def _wait_until(condition: Any, deadline: float) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return False


# ---- several nodes ------------------------------------------------------------------
@pytest.mark.postgres
def test_a_sleeping_engine_on_postgresql_sees_another_nodes_trigger(tmp_path: Path) -> None:
    """Nothing wakes this node when another node (or the CLI) records a manual run:
    its beat's look finds it."""
    from agentcron.engine.actions import ActionRegistry
    from agentcron.engine.engine import Engine
    from agentcron.engine.settings import EngineSettings
    from agentcron.model import SlotStatus, TaskSource, TaskSpec
    from agentcron.service import Service
    from agentcron.store.postgres import PostgresStore
    from conftest import require_pg
    from pg_util import admin_execute, dsn_with_schema, fresh_schema

    require_pg()
    ran: list[str] = []
    with fresh_schema() as schema:
        admin_execute([], schema=schema)
        here, there = PostgresStore(dsn_with_schema(schema)), PostgresStore(dsn_with_schema(schema))
        try:
            clock = SystemClock()
            registry = ActionRegistry(pool_size=1)
            registry.register_callable("tests:job", lambda: ran.append("job"))
            spec = TaskSpec(name="job", every="1d", python="tests:job", isolation="inline")
            now = clock.now()
            there.upsert_task(
                spec, TaskSource.API, now, Service(there, tmp_path, clock).first_fire(spec, now)
            )
            engine = Engine(
                here,
                clock,
                EngineSettings(home=tmp_path / "here", owner="here", poll_interval=0.3),
                registry,
            )

            async def main() -> None:
                stop = asyncio.Event()
                loop = asyncio.create_task(engine.run_forever(stop))
                try:
                    await until(lambda: engine.passes >= 2, timeout=30)
                    Service(there, tmp_path, clock).trigger("job")  # the other node
                    await until(lambda: ran == ["job"], timeout=30)
                    await until(
                        lambda: [s.status for s in there.slots("job")] == [SlotStatus.SUCCEEDED],
                        timeout=30,
                    )
                finally:
                    stop.set()
                    await loop
                    await engine.shutdown(5)
                    await registry.close()

            asyncio.run(main())
        finally:
            here.close()
            there.close()


# ---- the looks are index reads --------------------------------------------------------
@pytest.mark.parametrize(
    ("sql", "index"),
    [
        (
            "SELECT 1 FROM slots WHERE status IN ('pending', 'retrying') "
            "AND next_attempt_at <= ? LIMIT 1",
            "slots_runnable",
        ),
        (
            "SELECT 1 FROM deliveries WHERE status IN ('pending', 'retrying') "
            "AND next_attempt_at <= ? AND (claimed_by IS NULL OR claim_expires_at <= ?) LIMIT 1",
            "deliveries_due",
        ),
    ],
)
def test_the_periodic_looks_read_partial_indexes(tmp_path: Path, sql: str, index: str) -> None:
    """The claim's and the delivery worker's looks run on every beat: they must not
    walk the history (the statements as SQLStore runs them)."""
    import sqlite3

    SQLiteStore(tmp_path / "a.db").close()
    db = sqlite3.connect(tmp_path / "a.db")
    try:
        db.execute("ANALYZE")
        params = (0.0,) * sql.count("?")
        plan = " | ".join(str(r[-1]) for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    finally:
        db.close()
    assert f"INDEX {index}" in plan, plan
