"""`agentcron prune` applies ``keep_outputs`` as well as ``keep_history``: it listed and
removed only history rows, and kept output files past their task's ``keep_outputs``
stayed until the daemon's next pass (outside-in probe)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from agentcron.interfaces.cli import app
from agentcron.model import TaskSource, TaskSpec
from agentcron.store import open_store


def _home_with_old_outputs(tmp_path: Path) -> tuple[Path, list[Path], Path]:
    """Task ``short`` (keep_outputs 1m) with two outputs an hour old and one fresh; task
    ``long`` (30d) with an old one. (What a waiting delivery keeps is shown on
    ``prune_outputs`` itself, tests/test_keep_outputs_cadence.py.)"""
    home = tmp_path / "home"
    store = open_store(None, home)
    try:
        now = datetime.now(UTC)
        store.upsert_task(
            TaskSpec(name="short", every="1h", command=["true"], keep_outputs="1m"),
            TaskSource.API,
            now,
            None,
        )
        store.upsert_task(
            TaskSpec(name="long", every="1h", command=["true"], keep_outputs="30d"),
            TaskSource.API,
            now,
            None,
        )
    finally:
        store.close()
    hour_ago = time.time() - 3600
    old, fresh = [], home / "outputs" / "short" / "fresh.log"
    for task, name in (("short", "a.log"), ("short", "b.log"), ("long", "c.log")):
        path = home / "outputs" / task / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("old output")
        os.utime(path, (hour_ago, hour_ago))
        old.append(path)
    fresh.write_text("new output")
    return home, old, fresh


def test_a_slot_still_going_keeps_its_files_however_old(tmp_path: Path) -> None:
    """A run longer than its task's keep_outputs lost its output mid-run to the daemon's
    frequent pass (outside-in probe: `sleep 95` with keep_outputs 1m ended "succeeded,
    no output kept"); a slot waiting for a retry keeps its last attempt's file too."""
    from agentcron.model import NewSlot, SlotStatus

    home, (a, _b, _c), _fresh = _home_with_old_outputs(tmp_path)
    store = open_store(None, home)
    try:
        now = datetime.now(UTC)
        slot = store.add_slot("short", NewSlot(now, SlotStatus.PENDING), now)
        assert slot is not None
    finally:
        store.close()
    going = a.parent / f"20261205T010000Z-s{slot.id}-a1.log"
    going.write_text("started")
    hour_ago = time.time() - 3600
    os.utime(going, (hour_ago, hour_ago))
    config = tmp_path / "none.yaml"
    done = CliRunner().invoke(app, ["--home", str(home), "--config", str(config), "prune"])
    assert done.exit_code == 0, done.output
    assert going.exists() and not a.exists()


def test_prune_lists_then_removes_outputs_past_keep_outputs(tmp_path: Path) -> None:
    home, (a, b, c), fresh = _home_with_old_outputs(tmp_path)
    config = tmp_path / "none.yaml"  # no file: the stored specs say how long
    base = ["--home", str(home), "--config", str(config), "prune"]
    dry = CliRunner().invoke(app, [*base, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)
    assert (report["dry_run"], report["outputs"]) == (True, 2), report
    assert report["outputs_by_task"] == {"short": 2}
    assert a.exists() and b.exists()  # a dry run removes nothing
    said = CliRunner().invoke(app, [*base, "--dry-run"])
    assert "2  kept output files past keep_outputs (short 2)" in said.output, said.output
    done = CliRunner().invoke(app, [*base, "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["outputs"] == 2
    assert not a.exists() and not b.exists()
    assert fresh.exists() and c.exists()  # younger than 1m; a 30d task's
