"""An OpenClaw interval without anchorMs keeps the phase OpenClaw gave it.

OpenClaw counts such an interval from when its gateway armed the job; its state holds
the run armed next (state.nextRunAtMs). The importer wrote `every:` alone, and the
first run landed wherever agentcron's grid put it (outside-in probe).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentcron.clock import FakeClock
from agentcron.importers import ImportOptions, make_plan

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
AGENT = ImportOptions(agent_cmd="oc {prompt}", clock=FakeClock(NOW))
NEXT = datetime(2026, 6, 1, 12, 17, 30, tzinfo=UTC)


def _plan(tmp_path: Path, schedule: dict[str, Any], state: dict[str, Any]) -> Any:
    path = tmp_path / "jobs.json"
    job = {
        "id": "j1",
        "name": "Poll",
        "schedule": schedule,
        "payload": {"kind": "agentTurn", "message": "poll"},
        "state": state,
    }
    path.write_text(json.dumps({"version": 1, "jobs": [job]}))
    (draft,) = make_plan("openclaw", path, AGENT).drafts
    return draft


def test_openclaw_every_without_anchor_is_anchored_at_its_next_run(tmp_path: Path) -> None:
    ms = int(NEXT.timestamp() * 1000)
    draft = _plan(tmp_path, {"kind": "every", "everyMs": 3_600_000}, {"nextRunAtMs": ms})
    assert draft.body["every"] == "1h"
    assert datetime.fromisoformat(draft.body["anchor"]) == NEXT
    [note] = [n for n in draft.notes if n.field == "schedule.anchorMs"]
    assert note.kind == "approximated" and "state.nextRunAtMs" in note.reason


def test_openclaw_every_without_anchor_or_next_run_says_the_phase_is_approximated(
    tmp_path: Path,
) -> None:
    draft = _plan(tmp_path, {"kind": "every", "everyMs": 3_600_000}, {})
    assert "anchor" not in draft.body
    [note] = [n for n in draft.notes if n.field == "schedule.anchorMs"]
    assert note.kind == "approximated" and "phase" in note.reason


def test_openclaw_every_with_anchor_keeps_it(tmp_path: Path) -> None:
    anchor = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    schedule = {"kind": "every", "everyMs": 3_600_000, "anchorMs": int(anchor.timestamp() * 1000)}
    draft = _plan(tmp_path, schedule, {"nextRunAtMs": int(NEXT.timestamp() * 1000)})
    assert datetime.fromisoformat(draft.body["anchor"]) == anchor
    assert not [n for n in draft.notes if n.field == "schedule.anchorMs"]
