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


def _escalations(*bodies: str) -> dict[str, list[tuple[object, ...]]]:
    """One failure incident of t1, escalated; its messages (opened, then each body as an
    escalation), all sent."""
    import json

    def row(n: int, event: str, body: str) -> tuple[object, ...]:
        message = {"task": "t1", "incident_kind": "failure", "event": event, "body": body}
        return (n, json.dumps(message), 1.0, 0, 0, 0)

    outbox = [row(1, "opened", "⚠ t1 failed: … Retrying at 02:07 (attempt 2 of 2).")]
    outbox += [row(n, "escalated", body) for n, body in enumerate(bodies, start=2)]
    return {
        "outbox": outbox,
        "incidents": [(1, "t1", "failure", 1.0, None, 1, "server_error")],
    }


@pytest.mark.parametrize(
    ("bodies", "mismatch"),
    [
        # the give-up, then once that every run since gives up too: one incident's two
        (["✖ t1 gave up after 2 attempts: …", "✖ t1 has failed 2 runs in a row since 02:00: …"], 0),
        (["✖ t1 has failed 4 runs in a row since 02:00: … Still retrying each run."], 0),
        # two escalations with no give-up before the second: one too many
        (["✖ t1 has failed 4 runs in a row since 02:00: …"] * 2, 1),
    ],
)
def test_a_lasting_failure_told_after_a_give_up_is_not_a_mismatch(
    bodies: list[str], mismatch: int
) -> None:
    from soak_check import _check_messages
    from soak_net import Received

    data = _escalations(*bodies)
    posts = [
        Received(at=0.0, key=f"agentcron-{r[0]}-ab", body="", status=200) for r in data["outbox"]
    ]
    res = Result("s")
    _check_messages(res, data, posts)
    assert res.msg_mismatch == mismatch, res.notes
