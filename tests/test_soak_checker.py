"""The chaos soak's checker (bench/soak_check.py) counts a run whose own end was thrown
away (recorded ``worker_lost`` after it ended on its own) as ``redone``, but not a run
that wrote its END just as its launcher's TERM came after the daemon was killed: such a
task dies of that TERM without noting it, and is rightly recorded interrupted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from soak_check import Result, _check_traces

from agentcron.actions._shim import SETTLE

KILL = 1_000.0


def rows(lost: bool) -> dict[str, list[tuple[object, ...]]]:
    cls = "worker_lost" if lost else None
    return {"attempts": [(7, 1, "failed" if lost else "succeeded", cls)]}


def trace(end_wall: float, rc: str = "0") -> dict[int, list[list[str]]]:
    start = ["START", "t1", "7", "1", "42", "10.0", str(end_wall - 0.5)]
    end = ["END", "t1", "7", "1", "42", "10.5", str(end_wall), rc, "0"]
    return {7: [start, end]}


@pytest.mark.parametrize(
    ("end_wall", "kills", "redone"),
    [
        (KILL + 0.1, [KILL], 1),  # ended before the TERM came: its end was thrown away
        (KILL + SETTLE + 0.01, [KILL], 0),  # as the TERM came: interrupted, not counted
        (KILL + SETTLE + 0.3, [KILL], 0),
        (KILL + 3.0, [KILL], 1),  # long after: it cannot have been the TERM
        (KILL + SETTLE + 0.01, [], 1),  # no kill at all
    ],
)
def test_a_thrown_away_end_is_counted_unless_it_came_as_the_term_did(
    end_wall: float, kills: list[float], redone: int
) -> None:
    res = Result("sqlite-kill")
    _check_traces(res, rows(lost=True), trace(end_wall), kills)
    assert res.redone == redone, res.notes


def test_an_end_recorded_as_it_was_is_never_counted() -> None:
    res = Result("sqlite-kill")
    _check_traces(res, rows(lost=False), trace(KILL + 0.1), [KILL])
    assert res.redone == 0
