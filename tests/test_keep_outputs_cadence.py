"""How soon kept outputs past ``keep_outputs`` go, and at what cost.

Outside-in probe: ``defaults: {keep_outputs: 1m}`` with 8 tasks every second kept 304
files a task five minutes after the start, as the daemon pruned outputs at its start
and then once an hour. The daemon's retention duty now prunes outputs every tenth of
the smallest ``keep_outputs`` in force (at least one beat), walking only the tasks
whose ``keep_outputs`` is short between two hourly full passes; history keeps its
hourly cadence. The duty runs here on a fake clock: its sleeps advance it.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import agentcron.daemon as daemon_module
from agentcron.clock import FakeClock
from agentcron.config.loader import load_config
from agentcron.daemon import Daemon, DaemonOptions
from agentcron.interfaces.cli import app
from agentcron.model import AttemptOutcome, NewSlot, SlotStatus, TaskSource
from agentcron.retention import prune_outputs
from agentcron.store.sqlite import SQLiteStore

START = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
OWNER = "node-test"


def _config(tmp_path: Path, keep: str, tasks: int = 3, long_task: bool = True) -> Path:
    lines = [f"defaults: {{keep_outputs: {keep}}}", "tasks:"]
    lines += [f'  t{n}: {{every: 1s, command: ["true"]}}' for n in range(1, tasks + 1)]
    if long_task:
        lines.append('  long: {every: 1s, command: ["true"], keep_outputs: 30d}')
    path = tmp_path / "agentcron.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _touch(path: Path, at: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("out\n")
    os.utime(path, (at, at))


class Rig:
    """A daemon's retention duty on a fake clock: each sleep advances the clock by its
    length and writes one new output per task, as runs every second would (enough to
    see what stays); the duty stops after ``passes`` sleeps."""

    def __init__(self, tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.home = tmp_path / "home"
        self.clock = FakeClock(START)
        self.daemon = Daemon(
            DaemonOptions(config_path=config, home=self.home, poll_interval=1.0),
            clock=self.clock,
        )
        self.store = SQLiteStore(tmp_path / "agentcron.db")
        self.daemon.store = self.store
        self.daemon.config = load_config(config)
        for spec in self.daemon.config.tasks.values():
            self.store.upsert_task(spec, TaskSource.FILE, START, None)
        self.sleeps: list[float] = []
        self.lookups: Counter[str] = Counter()
        self.history_passes = 0
        get_task = self.store.get_task

        def counted(name: str) -> Any:
            self.lookups[name] += 1
            return get_task(name)

        self.store.get_task = counted  # type: ignore[method-assign]
        history = daemon_module.prune_history

        def history_pass(*args: Any, **kwargs: Any) -> Any:
            self.history_passes += 1
            return history(*args, **kwargs)

        monkeypatch.setattr(daemon_module, "prune_history", history_pass)

    def run(self, passes: int, writes: int = 0, hook: Callable[[int], None] | None = None) -> None:
        async def sleep(interval: float) -> None:
            self.sleeps.append(interval)
            if hook is not None:
                hook(len(self.sleeps))
            start = self.clock.now().timestamp()
            self.clock.advance(interval)
            for n in range(writes):  # outputs written during the sleep, one a second
                for task in self.daemon.config.tasks if self.daemon.config else {}:
                    at = start + (n + 1) * interval / writes
                    _touch(self.home / "outputs" / task / f"{at:.3f}.log", at)
            if len(self.sleeps) >= passes:
                self.daemon.stop_event.set()

        self.daemon._sleep_beats = sleep  # type: ignore[method-assign]
        asyncio.run(self.daemon._retention_loop())

    def ages(self, task: str) -> list[float]:
        now = self.clock.now().timestamp()
        return [now - p.stat().st_mtime for p in (self.home / "outputs" / task).iterdir()]


# ---- (a) the cadence follows the smallest keep_outputs ---------------------------------------
@pytest.mark.parametrize(("keep", "every"), [("1m", 6.0), ("5m", 30.0), ("2h", 720.0)])
def test_the_duty_runs_every_tenth_of_the_smallest_keep_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: str, every: float
) -> None:
    rig = Rig(tmp_path, _config(tmp_path, keep), monkeypatch)
    rig.run(passes=5)
    assert rig.sleeps == [every] * 5


def test_without_a_short_keep_outputs_the_duty_stays_hourly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig(tmp_path, _config(tmp_path, "30d"), monkeypatch)
    rig.run(passes=3)
    assert rig.sleeps == [3600.0] * 3
    assert rig.history_passes == 3


def test_a_minute_of_keep_outputs_keeps_about_a_minute_of_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe's case on a fake clock: five minutes of a run a second per task."""
    rig = Rig(tmp_path, _config(tmp_path, "1m"), monkeypatch)
    rig.run(passes=50, writes=6)  # 50 passes 6 s apart, 6 files a task each
    assert rig.clock.now() - START == timedelta(minutes=5)
    for task in ("t1", "t2", "t3"):
        ages = rig.ages(task)
        # nothing older than keep_outputs and one pass (6 s); ~60 files, not 300
        assert max(ages) <= 66.0, (task, max(ages))
        assert 55 <= len(ages) <= 67, (task, len(ages))
    assert len(rig.ages("long")) == 300  # its 30 days are not over


def test_the_frequent_pass_walks_only_the_short_tasks_and_history_stays_hourly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cost: between two hourly full passes, a task keeping 30 days is not looked up
    again; the short ones are, once a pass. History is pruned at the full passes only."""
    rig = Rig(tmp_path, _config(tmp_path, "1m"), monkeypatch)
    rig.run(passes=20, writes=1)  # the first pass (full) finds no folder yet
    assert rig.lookups["long"] == 1  # new at the second pass, then long: left alone
    assert rig.lookups["t1"] == 19
    assert rig.history_passes == 1
    rig.clock.advance(3600)  # an hour on: the next pass is a full one again
    rig.daemon.stop_event.clear()
    rig.sleeps.clear()
    rig.run(passes=1)
    assert rig.history_passes == 2
    assert rig.lookups["long"] == 2


def test_a_reload_that_shortens_keep_outputs_is_followed_at_the_next_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig(tmp_path, _config(tmp_path, "5m", tasks=1), monkeypatch)
    t1_old = rig.home / "outputs" / "t1" / "old.log"
    long_old = rig.home / "outputs" / "long" / "old.log"

    def reload(passes: int) -> None:
        if passes != 1:
            return
        # the file now says 2m for t1: the daemon's reload stores it, hands it on
        stale = rig.clock.now().timestamp() - 200  # past 2m, not 5m
        _touch(long_old, stale)
        _touch(t1_old, stale)
        shorter = load_config(_config(tmp_path, "2m", tasks=1))
        rig.store.upsert_task(shorter.tasks["t1"], TaskSource.FILE, START, None)
        rig.daemon.config = shorter

    rig.run(passes=4, hook=reload)
    assert rig.sleeps == [30.0, 12.0, 12.0, 12.0]
    assert rig.history_passes == 1  # the passes after the first one were frequent ones
    assert not t1_old.exists()
    assert long_old.exists()


# ---- (b) dry run counts per task; pending deliveries keep their files -----------------------
def _run_with_output(
    store: SQLiteStore, home: Path, task: str, when: datetime, deliver: bool
) -> Path:
    slot = store.add_slot(task, NewSlot(when), when)
    assert slot is not None
    (claim,) = store.claim(OWNER, when, when + timedelta(hours=1), 10)
    path = home / "outputs" / task / f"s{slot.id}-a1.log"
    _touch(path, when.timestamp())
    outcome = AttemptOutcome(
        ok=True,
        slot_status=SlotStatus.SUCCEEDED,
        output_path=str(path),
        deliver_to=(("json://localhost/hook", "json://localhost/hook"),) if deliver else (),
    )
    assert store.finish_attempt(slot.id, claim.attempt.id, OWNER, outcome, when)
    return path


def test_dry_run_counts_old_files_per_task_and_removes_none_then_prune_keeps_pending(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    config = load_config(_config(tmp_path, "1m", tasks=2, long_task=False))
    store = SQLiteStore(tmp_path / "agentcron.db")
    try:
        for spec in config.tasks.values():
            store.upsert_task(spec, TaskSource.FILE, START, None)
        pending = _run_with_output(store, home, "t1", START, deliver=True)
        old = [
            _run_with_output(store, home, t, START + timedelta(seconds=n), False)
            for t in ("t1", "t2")
            for n in (1, 2, 3)
        ]
        newest = _run_with_output(store, home, "t2", START + timedelta(seconds=4), False)
        fresh = home / "outputs" / "t1" / "fresh.log"
        now = (START + timedelta(minutes=5)).timestamp()
        _touch(fresh, now - 10)
        keep = store.outputs_to_keep()
        assert str(pending) in keep

        counts: dict[str, int] = {}
        would = prune_outputs(home, store.get_task, keep, now, counts=counts, dry_run=True)
        # t1: 2 of its 3 old ones (not the pending delivery's file, nor its newest
        # success's, its third), t2: its 3 old ones (not its newest success's)
        newest_t1 = old[2]
        assert counts == {"t1": 2, "t2": 3}
        assert would == 5
        assert all(p.exists() for p in (*old, pending, newest, fresh))

        counts = {}
        assert prune_outputs(home, store.get_task, keep, now, counts=counts) == 5
        assert counts == {"t1": 2, "t2": 3}
        left = {p.name for t in ("t1", "t2") for p in (home / "outputs" / t).iterdir()}
        assert left == {pending.name, newest_t1.name, newest.name, fresh.name}
    finally:
        store.close()


# ---- (c) bad input still errors clearly ------------------------------------------------------
def test_bad_keep_outputs_errors_clearly_and_does_not_stop_the_duty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "home"))
    _config(tmp_path, "10s")
    done = CliRunner().invoke(app, ["prune", "--dry-run"])
    assert done.exit_code != 0
    assert "keep_outputs must be at least 1m" in done.output, done.output
    # what the loader refuses, the duty never reads as "prune now": it keeps the files
    from agentcron.retention import OutputsCadence, default_keep_outputs

    assert default_keep_outputs({"keep_outputs": "soon"}) is None
    assert default_keep_outputs({"keep_outputs": None}) is None
    assert default_keep_outputs(None) == timedelta(days=30)
    cadence = OutputsCadence(full_every=3600.0, beat=6.0)
    cadence.configured({}, {"keep_outputs": "soon"})
    assert cadence.every() == 3600.0
    cadence.configured({}, {"keep_outputs": "1m"})
    assert cadence.every() == 6.0
