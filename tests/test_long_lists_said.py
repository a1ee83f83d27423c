"""Long lists say they were cut: `doctor` named 10 failing tasks and 5 open incidents of
150, and `incidents` showed 50 of 1,001, without a word (outside-in probe)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from agentcron.clock import FakeClock
from agentcron.interfaces.cli import app
from agentcron.model.incident import Incident, IncidentKind
from agentcron.service import Service
from agentcron.store import open_store


def _home_with_open_incidents(home: Path, count: int) -> None:
    store = open_store(None, home)
    clock = FakeClock()
    try:
        now = clock.now()
        store.save_incidents(
            [
                Incident(
                    task=f"t{i:03d}",
                    kind=IncidentKind.FAILURE,
                    opened_at=now,
                    updated_at=now,
                    summary="failing",
                )
                for i in range(count)
            ],
            [],
            now + timedelta(seconds=1),
        )
        checks = {c["name"]: c for c in Service(store, home, clock).doctor_checks()}
    finally:
        store.close()
    message = checks["incidents"]["message"]
    assert message.endswith(f"; and {count - 5:,} more open (`agentcron incidents`)"), message


def test_doctor_and_incidents_say_how_many_more_there_are(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _home_with_open_incidents(home, 60)
    config = tmp_path / "none.yaml"
    base = ["--home", str(home), "--config", str(config), "incidents", "--open"]
    shown = CliRunner().invoke(app, [*base, "--limit", "50", "--json"])
    assert shown.exit_code == 0, shown.output
    assert len(json.loads(shown.stdout)) == 50
    assert "the first 50 shown; there are more: --limit N shows N" in shown.stderr
    every = CliRunner().invoke(app, [*base, "--limit", "60", "--json"])
    assert len(json.loads(every.stdout)) == 60 and "there are more" not in every.stderr
