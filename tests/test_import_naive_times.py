"""Times a source wrote without a zone keep the instant the source meant.

Hermes reads a time it stored without an offset as the wall time of the machine it
runs on (cron/jobs.py's _ensure_aware: system-local). The importer wrote such an
interval anchor as it stood, so it was read in the config's `timezone:`: the grid
moved by the zones' difference and runs were lost (outside-in probe: 4 runs).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.importers import ImportOptions, make_plan

NOW = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
AGENT = ImportOptions(agent_cmd="hermes chat -q {prompt}", clock=FakeClock(NOW))


def _machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, zone: str | None) -> None:
    """This machine's /etc/localtime a link to ``zone`` (None: to no zone)."""
    link = tmp_path / "localtime"
    link.symlink_to(f"/usr/share/zoneinfo/{zone}" if zone else "/nowhere/at/all")
    monkeypatch.setattr("agentcron.importers._zone.LOCALTIME", link)


def _hermes(tmp_path: Path, *jobs: dict[str, Any]) -> Path:
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps({"jobs": list(jobs)}))
    return path


INTERVAL = {
    "id": "beat",
    "name": "Beat",
    "prompt": "check",
    "schedule": {"kind": "interval", "minutes": 90},
    "next_run_at": "2026-06-01T13:00:00",
}
ONCE = {
    "id": "once",
    "name": "Once",
    "prompt": "remind",
    "schedule": {"kind": "once", "run_at": "2026-06-02T09:00:00"},
}


def test_hermes_naive_times_are_read_in_the_machines_zone_and_written_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _machine(monkeypatch, tmp_path, "Asia/Kolkata")
    p = make_plan("hermes", _hermes(tmp_path, INTERVAL, ONCE), AGENT)
    drafts = {d.name: d for d in p.drafts}
    anchor = drafts["beat"].body["anchor"]
    assert anchor == "2026-06-01T13:00:00+05:30"
    # the instant Hermes meant, whatever the config's timezone: is
    assert datetime.fromisoformat(anchor) == datetime(2026, 6, 1, 7, 30, tzinfo=UTC)
    assert drafts["once"].body["at"] == "2026-06-02T09:00:00+05:30"
    for name, field in (("beat", "next_run_at"), ("once", "schedule.run_at")):
        [note] = [n for n in drafts[name].notes if n.field == field]
        assert note.kind == "approximated"
        assert "this machine's zone (Asia/Kolkata)" in note.reason


def test_hermes_naive_time_when_the_machines_zone_is_unknown_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _machine(monkeypatch, tmp_path, None)
    p = make_plan("hermes", _hermes(tmp_path, INTERVAL), AGENT)
    (draft,) = p.drafts
    assert draft.body["anchor"] == "2026-06-01T13:00:00"
    [note] = [n for n in draft.notes if n.field == "next_run_at"]
    assert note.kind == "warning"
    assert "cannot be named" in note.reason and "may move it" in note.reason


def test_hermes_times_with_an_offset_are_kept_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _machine(monkeypatch, tmp_path, "Asia/Kolkata")
    job = {**INTERVAL, "next_run_at": "2026-06-01T13:00:00+02:00"}
    (draft,) = make_plan("hermes", _hermes(tmp_path, job), AGENT).drafts
    assert draft.body["anchor"] == "2026-06-01T13:00:00+02:00"
    assert not [n for n in draft.notes if n.field == "next_run_at"]
