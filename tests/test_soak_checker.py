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


def _escalations(*bodies: str, told: str = "server_error") -> dict[str, list[tuple[object, ...]]]:
    """One failure incident of t1, escalated, that told the classes ``told`` (one a line);
    its messages (opened, then each body as an escalation), all sent."""
    import json

    def row(n: int, event: str, body: str) -> tuple[object, ...]:
        message = {"task": "t1", "incident_kind": "failure", "event": event, "body": body}
        return (n, json.dumps(message), 1.0, 0, 0, 0, "chat")

    outbox = [row(1, "opened", "⚠ t1 failed: … Retrying at 02:07 (attempt 2 of 2).")]
    outbox += [row(n, "escalated", body) for n, body in enumerate(bodies, start=2)]
    return {
        "outbox": outbox,
        "incidents": [(1, "t1", "failure", 1.0, None, 1, "server_error", told)],
    }


def _mismatches(data: dict[str, list[tuple[object, ...]]]) -> Result:
    from soak_check import _check_messages
    from soak_net import Received

    posts = [
        Received(at=0.0, key=f"agentcron-{r[0]}-ab", body="", status=200) for r in data["outbox"]
    ]
    res = Result("s")
    _check_messages(res, data, posts)
    return res


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
    res = _mismatches(_escalations(*bodies))
    assert res.msg_mismatch == mismatch, res.notes


GAVE_UP_TIMEOUT = "✖ t1 gave up after 3 attempts: the run took longer than its timeout."
GAVE_UP_LOST = "✖ t1 gave up after 3 attempts: the worker running it stopped unexpectedly."


@pytest.mark.parametrize(
    ("bodies", "told", "mismatch"),
    [
        # gave up on timeouts, then a run whose last attempt was lost with its daemon:
        # a class not told yet, told once more
        ([GAVE_UP_TIMEOUT, GAVE_UP_LOST], "timeout\nworker_lost", 0),
        # ... and then that every run gives up: the lasting one on top
        (
            [GAVE_UP_TIMEOUT, GAVE_UP_LOST, "✖ t1 has failed 3 runs in a row since 02:00: …"],
            "timeout\nworker_lost",
            0,
        ),
        # caught by the short soak (t055): runs lost with the killed daemon, told as
        # lasting ("Still retrying each run"), then a run that timed out 3 times gave up
        (
            [
                "✖ t1 has failed 3 runs in a row since 02:00: … Still retrying each run.",
                GAVE_UP_TIMEOUT,
            ],
            "worker_lost\ntimeout",
            0,
        ),
        # the incident told one class only: its second give-up is one message too many
        ([GAVE_UP_TIMEOUT, GAVE_UP_LOST], "timeout", 1),
        # two new classes told, but three further escalations
        ([GAVE_UP_TIMEOUT, GAVE_UP_LOST, GAVE_UP_TIMEOUT], "timeout\nworker_lost", 1),
    ],
)
def test_a_give_up_for_a_class_not_told_yet_is_the_incidents_next_escalation(
    bodies: list[str], told: str, mismatch: int
) -> None:
    res = _mismatches(_escalations(*bodies, told=told))
    assert res.msg_mismatch == mismatch, res.notes


def test_the_products_messages_for_a_hung_task_that_lost_its_worker_match() -> None:
    """The product's own incidents and messages: a task whose runs time out gives up,
    and its next run's last attempt is lost with its killed daemon (as the notifier tells
    it: a failure of class ``worker_lost``, given up): two escalations, one incident."""
    import json
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from agentcron.model import ErrorClass, Incident
    from agentcron.notify.events import AttemptFailed
    from agentcron.notify.incidents import apply_event
    from agentcron.notify.messages import render

    t0 = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)

    def failed(slot: int, attempt: int, sec: int, lost: bool = False) -> AttemptFailed:
        last = attempt == 3
        died = "the daemon running this slot died and its command was stopped with it"
        return AttemptFailed(
            task="t1",
            at=t0 + timedelta(seconds=sec),
            slot_id=slot,
            scheduled_for=t0 + timedelta(seconds=10 * (slot - 1)),
            attempt=attempt,
            max_attempts=3,
            error_class=ErrorClass.WORKER_LOST if lost else ErrorClass.TIMEOUT,
            explanation=died if lost else "the run took longer than its timeout and was stopped",
            retry_at=None if last else t0 + timedelta(seconds=sec + 1),
            gave_up=last,
            next_run=t0 + timedelta(seconds=10 * slot),
            escalate_runs=3,
        )

    events = [failed(1, 1, 2), failed(1, 2, 5), failed(1, 3, 9)]
    events += [failed(2, 1, 12), failed(2, 2, 15), failed(2, 3, 19, lost=True)]
    open_incidents: dict[str, Incident] = {}
    outbox: list[tuple[object, ...]] = []
    for event in events:
        transition = apply_event(open_incidents, event, ZoneInfo("UTC"))
        for inc in transition.changed:
            open_incidents = {str(inc.kind): inc}
        if transition.notice is not None:
            message = render(transition.notice, ZoneInfo("UTC")).to_dict()
            outbox.append((len(outbox) + 1, json.dumps(message), 1.0, 0, 0, 0, "chat"))
    (inc,) = open_incidents.values()
    assert [json.loads(str(r[1]))["event"] for r in outbox] == ["opened", "escalated", "escalated"]
    told = "\n".join(inc.told or ())
    row = (1, "t1", "failure", 1.0, None, int(inc.escalated), "timeout", told)
    res = _mismatches({"outbox": outbox, "incidents": [row]})
    assert res.msg_mismatch == 0, res.notes


def test_a_digest_post_counts_for_each_message_of_its_channel_between_its_rows() -> None:
    """A digest (agentcron.notify.digest) carries the key agentcron-FIRST-LAST-HASH: it
    stands for its channel's rows from FIRST to LAST, not for another channel's."""
    import json

    from soak_check import _check_messages
    from soak_net import Received

    def row(n: int, channel: str) -> tuple[object, ...]:
        message = {"task": f"t{n}", "incident_kind": "", "event": "note", "body": "x"}
        return (n, json.dumps(message), 1.0, 0, 0, 0, channel)

    data = {"outbox": [row(1, "a"), row(2, "b"), row(3, "a"), row(4, "a")], "incidents": []}
    posts = [
        Received(at=0.0, key="agentcron-1-4-0123abcd", body="", status=200),
        Received(at=0.0, key="agentcron-2-ab", body="", status=200),
    ]
    res = Result("s")
    _check_messages(res, data, posts)
    assert (res.lost_msgs, res.dup_msgs) == (0, 0), res.notes
    res = Result("s")
    _check_messages(res, data, posts[:1])  # row 2 is another channel's: not in the digest
    assert res.lost_msgs == 1, res.notes


def test_a_storage_fault_that_kept_its_exit_code_is_not_a_thrown_away_end() -> None:
    """Chaos soak (sqlite-disk): a command that failed on a full disk is recorded
    worker_lost (the home's storage fault) but keeps its exit code: its end was
    recorded, not thrown away, and was flagged `redone`."""
    res = Result("t")
    attempts = [(7, 1, "failed", "worker_lost", 10.0, 10.5, "node", 75)]
    _check_traces(res, {"attempts": attempts}, trace(1_100.0, rc="75"), [])
    assert res.redone == 0
    res = Result("t")
    attempts = [(7, 1, "failed", "worker_lost", 10.0, 10.5, "node", None)]
    _check_traces(res, {"attempts": attempts}, trace(1_100.0, rc="75"), [])
    assert res.redone == 1
