"""`list --json` prints long lists through pydantic's encoder: the same text, byte for
byte, as the validated, indented dump it replaced, and never an unshaped row."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from agentcron.interfaces.schemas import TaskSummary, shaped, shaped_json


def _row(i: int) -> dict[str, Any]:
    budget = {
        "scope": "task:x",
        "label": "task x",
        "runs": 1,
        "runs_per_day": 3,
        "tokens": 0,
        "tokens_per_day": None,
        "used_up": None,
        "summary": "1/3 runs",
        "resets_at": "2026-12-03T00:00:00+00:00",
    }
    return {
        "name": f"t{i}",
        "schedule": "every 1 h",
        "timezone": "Europe/Paris",
        "paused": bool(i % 3),
        "pause_reason": None,
        "next_run": "2026-12-03T00:00:00+01:00",
        "last_status": "failed" if i % 2 else None,
        "last_run": None,
        "health": "failing",
        # quotes, backslashes, a line separator, accents, an emoji, a control character
        "health_detail": 'failing: "q" \\ \u2028 é 😀 \x07',
        "source": "api",
        "action": "command",
        "delivery_status": None,
        "description": "ünïcode" if i % 2 else None,
        "budget": [budget] if i % 5 == 0 else [],
    }


def test_the_fast_path_prints_what_the_validated_dump_printed() -> None:
    rows = [_row(i) for i in range(50)]
    expected = json.dumps(shaped(TaskSummary, rows), indent=2, ensure_ascii=False, default=str)
    assert shaped_json(TaskSummary, rows).decode() == expected
    assert shaped_json(TaskSummary, []).decode() == json.dumps([], indent=2)


def test_a_row_of_another_shape_goes_through_the_model() -> None:
    rows = [_row(i) for i in range(5)]
    reordered = dict(reversed(list(rows[1].items())))
    rows[1] = reordered  # same keys, another order: shaped (the model's order) and printed
    assert json.loads(shaped_json(TaskSummary, rows))[1] == shaped(TaskSummary, rows[1])
    rows[2] = {**rows[2], "secret": "x"}  # a key the model does not have: refused
    with pytest.raises(ValidationError):
        shaped_json(TaskSummary, rows)
