"""The soak's checker: what the database and the tasks' own traces prove.

It reads the database read-only (the SQLite file through a ``mode=ro`` URI, or the
PostgreSQL schema) and the per-task trace files ``soak_task.py`` writes, and the posts
the webhook receiver saw. Each property is counted, with examples kept for the report:

- ``lost``: a fire of the schedule in the window with no slot (grid of ``every``,
  anchored at the epoch, from the task's registration to the window's end);
  ``dup_slots``: a fire recorded more than once; ``off_grid``: a scheduled slot at a
  time that is not a fire;
- ``double``: a slot run twice at once: a ``DOUBLE`` line (the second run found the
  slot's flock taken by a live process), or two STARTs whose runs overlap in time;
- ``redone``: a slot that ended on its own with exit 0 and was started again, or whose
  attempt that wrote its END (on its own, not after a SIGTERM) is recorded
  ``worker_lost`` (the end of a run the host saw finish was thrown away);
- ``nonfinal``: slots still pending, running or retrying after the quiet end;
- ``dup_msgs``: one outbox row (Idempotency-Key) accepted more than once by the
  receiver; ``lost_msgs``: rows marked sent that the receiver never accepted, or rows
  never sent; ``msg_mismatch``: incident transitions (opened, escalated) whose number
  of outbox rows differs from the number of incidents that made that transition (for
  a task that flapped, its failures' messages may be fewer, never more; a failure
  incident is escalated again for each error class it fails for good with that it has
  not told yet, at most once per class in its ``told``);
- ``resumed``: after every fault's end, a scheduled run started before the next fault.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak_net import Received

FINAL = {"succeeded", "failed", "skipped", "missed", "superseded", "cancelled", "expired"}
SCHEDULED = {"schedule", "catchup"}  # slots of the schedule (not `trigger` or API runs)
TRANSIENT = {"rate_limited", "overloaded", "server_error", "timeout", "network", "worker_lost"}
KEY_RE = re.compile(r"^agentcron-(\d+)-[0-9a-f]+$")
# a digest's (agentcron.notify.digest): its first and last outbox rows, of one channel
DIGEST_KEY_RE = re.compile(r"^agentcron-(\d+)-(\d+)-[0-9a-f]+$")
LASTING_RE = re.compile(r" has failed \d+ runs in a row since ")  # a failure told as lasting
HARD_RE = re.compile(r" gave up after |Retrying will not help")  # a failure told as for good


@dataclass
class Fault:
    kind: str
    start: float  # wall time
    end: float


@dataclass
class Result:
    scenario: str
    seconds: float = 0.0
    expected: int = 0
    recorded: int = 0
    lost: int = 0
    dup_slots: int = 0
    off_grid: int = 0
    double: int = 0
    redone: int = 0
    nonfinal: int = 0
    messages: int = 0
    dup_msgs: int = 0
    lost_msgs: int = 0
    msg_mismatch: int = 0
    faults: int = 0
    resumed: bool = True
    statuses: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        bad = self.lost + self.dup_slots + self.off_grid + self.double + self.redone
        bad += self.nonfinal + self.dup_msgs + self.lost_msgs + self.msg_mismatch
        return bad == 0 and self.resumed and self.expected > 0

    def note(self, text: str, limit: int = 40) -> None:
        if len(self.notes) < limit:
            self.notes.append(text)


def read_db(db: str) -> dict[str, list[tuple[Any, ...]]]:
    """The rows the checker needs, from a SQLite path or a ``postgresql://`` URL."""
    queries = {
        "tasks": "SELECT name, created_at FROM tasks",
        "slots": "SELECT id, task, scheduled_for, status, trigger, created_at, started_at, "
        "finished_at, attempts, reason, error_class FROM slots",
        "attempts": "SELECT slot_id, number, status, error_class, started_at, finished_at, "
        "node, exit_code FROM attempts",
        "incidents": "SELECT id, task, kind, opened_at, closed_at, escalated, first_error_class, "
        "told FROM incidents",
        # in the order enqueued: which message came after which is read from it (a
        # PostgreSQL table is read in the order of its rows' last updates)
        "outbox": "SELECT id, message, sent_at, permanent, resent, attempts, channel_key "
        "FROM outbox ORDER BY id",
    }
    if db.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(db, connect_timeout=10) as conn:
            conn.read_only = True
            return {k: list(conn.execute(q).fetchall()) for k, q in queries.items()}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return {k: list(conn.execute(q).fetchall()) for k, q in queries.items()}
    finally:
        conn.close()


def read_traces(logdir: Path) -> dict[int, list[list[str]]]:
    """Trace lines per slot id, in file order (each task's file is appended under flock)."""
    per_slot: dict[int, list[list[str]]] = defaultdict(list)
    for path in sorted(logdir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[2].isdigit():
                per_slot[int(parts[2])].append(parts)
    return per_slot


def check(
    scenario: str,
    periods: dict[str, float],
    window_end: float,
    db_rows: dict[str, list[tuple[Any, ...]]],
    logdir: Path,
    posts: list[Received],
    faults: list[Fault],
    check_end: float,
) -> Result:
    res = Result(scenario, faults=len(faults))
    _check_slots(res, periods, window_end, db_rows)
    kills = [f.start for f in faults if f.kind.startswith("kill9")]
    _check_traces(res, db_rows, read_traces(logdir), kills)
    _check_messages(res, db_rows, posts)
    _check_resumed(res, db_rows, faults, check_end)
    return res


def _check_slots(
    res: Result, periods: dict[str, float], window_end: float, rows: dict[str, list[Any]]
) -> None:
    created = {name: float(at) for name, at in rows["tasks"]}
    by_task: dict[str, Counter[float]] = defaultdict(Counter)
    statuses: Counter[str] = Counter()
    for sid, task, when, status, trigger, *_ in rows["slots"]:
        statuses[status] += 1
        if status not in FINAL:
            res.nonfinal += 1
            res.note(f"non-final: slot {sid} {task} @{when:.0f} status {status}")
        if trigger not in SCHEDULED:
            continue
        by_task[task][round(float(when), 3)] += 1
    res.statuses = dict(statuses)
    for task, period in periods.items():
        if task not in created:
            res.note(f"task {task} never registered")
            continue
        first = math.floor(created[task] / period + 1) * period
        recorded = by_task.get(task, Counter())
        fire = first
        while fire <= window_end:
            res.expected += 1
            n = recorded.get(round(fire, 3), 0)
            if n == 0:
                res.lost += 1
                res.note(f"lost: {task} fire {fire:.0f} has no slot")
            elif n > 1:
                res.dup_slots += 1
                res.note(f"duplicate slots: {task} fire {fire:.0f} recorded {n} times")
            else:
                res.recorded += 1
            fire += period
        for when in recorded:
            if abs(when / period - round(when / period)) > 1e-6:
                res.off_grid += 1
                res.note(f"off grid: {task} slot at {when}")


def _at_the_launchers_term(wall: float, kills: Sequence[float]) -> bool:
    """Whether a run that wrote its END at ``wall`` may have been killed by its launcher's
    TERM before it could exit: a daemon killed at ``k`` leaves its commands SETTLE to
    end on their own, then TERMs them. A task that does not ignore TERM dies of it
    without noting it, so "no TERM in the END line" proves nothing for an END written
    as the TERM came; the launcher then rightly records the run interrupted."""
    from agentcron.actions._shim import SETTLE

    return any(k + SETTLE - 0.05 <= wall <= k + SETTLE + 0.5 for k in kills)


def _check_traces(
    res: Result,
    rows: dict[str, list[Any]],
    traces: dict[int, list[list[str]]],
    kills: Sequence[float] = (),
) -> None:
    # An attempt whose end was lost, recorded worker_lost with no exit code. One that
    # failed on a full disk is worker_lost too (the home's storage fault), but keeps the
    # exit code its command ended with: its end was recorded, not thrown away.
    lost_attempts = {
        (int(sid), int(num))
        for sid, num, _st, cls, *rest in rows["attempts"]
        if cls == "worker_lost" and (len(rest) < 4 or rest[3] is None)  # rest[3]: exit_code
    }
    for sid, lines in traces.items():
        open_runs: dict[str, float] = {}  # pid -> start monotonic, runs without END yet
        ended_ok_at: float | None = None
        for parts in lines:
            kind, task, _slot, attempt, pid, mono = parts[:6]
            t = float(mono)
            if kind == "DOUBLE":
                res.double += 1
                res.note(f"DOUBLE: {task} slot {sid} attempt {attempt} pid {pid} found it running")
            elif kind == "START":
                if ended_ok_at is not None:
                    res.redone += 1
                    res.note(f"redone: {task} slot {sid} succeeded, then attempt {attempt} started")
                open_runs[pid] = t
            elif kind == "END":
                began = open_runs.pop(pid, t)
                rc, terms = parts[7], parts[8]
                for other, start in open_runs.items():
                    if began < start < t:  # another run of this slot began while this one ran
                        res.double += 1
                        res.note(f"overlap: {task} slot {sid} pid {other} started while {pid} ran")
                lost = terms == "0" and (int(sid), int(attempt)) in lost_attempts
                at_term = lost and _at_the_launchers_term(float(parts[6]), kills)
                if at_term:
                    res.note(
                        f"not counted: {task} slot {sid} attempt {attempt} wrote its END "
                        "as its launcher's TERM came (the daemon had been killed), and was "
                        "recorded interrupted"
                    )
                elif lost:
                    res.redone += 1
                    res.note(
                        f"end thrown away: {task} slot {sid} attempt {attempt} ended rc {rc} "
                        "on its own, recorded worker_lost"
                    )
                if rc == "0" and terms == "0" and not at_term:
                    ended_ok_at = t
            elif kind == "BADENV":
                res.note(f"bad env: {' '.join(parts)}")


def _check_messages(res: Result, rows: dict[str, list[Any]], posts: list[Received]) -> None:
    accepted: Counter[int] = Counter()
    for post in posts:
        if post.status != 200:
            continue
        res.messages += 1
        m = KEY_RE.match(post.key or "")
        if m is not None:
            accepted[int(m.group(1))] += 1
            continue
        d = DIGEST_KEY_RE.match(post.key or "")
        if d is None:
            res.note(f"message without idempotency key: {str(post.body)[:80]}")
            continue
        # one post for the channel's messages from its first to its last row (a run
        # without gaps among the unsent, given-up ones aside)
        first, last = int(d.group(1)), int(d.group(2))
        channel = next((r[6] for r in rows["outbox"] if int(r[0]) == first), None)
        for r in rows["outbox"]:
            if r[6] == channel and first <= int(r[0]) <= last and not r[3]:
                accepted[int(r[0])] += 1
    resent_of = {int(r[0]): int(r[4] or 0) for r in rows["outbox"]}
    for row_id, n in accepted.items():
        if n <= 1:
            continue
        # The one window the design leaves (README): a sender that died after the
        # channel took a message but before recording it. Such a resend is counted on
        # the row and carries the same idempotency key; only copies beyond the count
        # are duplicates nobody knows of.
        unexplained = max(0, n - 1 - resent_of.get(row_id, 0))
        res.dup_msgs += unexplained
        res.note(
            f"duplicate message: outbox row {row_id} accepted {n} times"
            + ("" if unexplained else " (a counted resend after a crash between send and mark)")
        )
    per_transition: Counter[tuple[str, str, str]] = Counter()
    # A failure incident that escalated by giving up is told once more when every run
    # after it gives up too ("has failed N runs in a row"): a second escalation message
    # of the same incident, counted here per task (notify.incidents._on_failure).
    lasting: Counter[tuple[str, str, str]] = Counter()
    gave_up: set[str] = set()  # tasks whose last failure message told a give-up
    # A failure incident that fails for good for an error class it has not told yet is
    # escalated again, once per class (notify.incidents._on_failure: a quota used up
    # after a bad key; in the soak, runs lost with the killed daemon told as lasting,
    # "still retrying each run", then a run that timed out 3 times gives up; or the other
    # way round, a give-up on timeouts, then a run whose last attempt is lost). Such a
    # message follows a hard one of the same incident (an escalation, or an opening that
    # failed for good); there are no more of them than the classes its incidents record
    # as told, beyond the first.
    hard_told: set[str] = set()  # tasks whose open failure incident told a hard failure
    new_class: Counter[tuple[str, str, str]] = Counter()
    said: defaultdict[tuple[str, str, str], list[str]] = defaultdict(list)  # for the notes
    for row_id, message, sent_at, permanent, resent, _attempts, _channel in rows["outbox"]:
        if sent_at is None:
            res.lost_msgs += 1
            res.note(f"unsent message: outbox row {row_id} (permanent={permanent})")
        elif accepted.get(int(row_id), 0) == 0:
            res.lost_msgs += 1
            res.note(f"message marked sent, never received: outbox row {row_id}")
        if resent:
            res.note(f"outbox row {row_id} resent {resent} times")
        msg = json.loads(message) if isinstance(message, str) else message
        kind = (msg.get("task", ""), msg.get("incident_kind", ""), msg.get("event", ""))
        per_transition[kind] += 1
        said[kind].append(str(msg.get("body", ""))[:90])
        if kind[1] == "failure":
            body = str(msg.get("body", ""))
            if kind[2] == "escalated" and kind[0] in gave_up and LASTING_RE.search(body):
                lasting[kind] += 1
            elif kind[2] == "escalated" and kind[0] in hard_told:
                new_class[kind] += 1
            if kind[2] == "escalated" and " gave up after " in body:
                gave_up.add(kind[0])
            elif kind[2] in ("opened", "closed"):
                gave_up.discard(kind[0])
                hard_told.discard(kind[0])
            if kind[2] == "escalated" or (kind[2] == "opened" and HARD_RE.search(body)):
                hard_told.add(kind[0])
    incidents: Counter[tuple[str, str, str]] = Counter()
    classes_after_first: Counter[tuple[str, str, str]] = Counter()  # told classes but one
    storage_closed = 0
    for _iid, task, kind, _opened, _closed, escalated, first_class, told in rows["incidents"]:
        if kind == "missed":
            continue  # told together, in one report per settled batch (event "missed")
        if kind == "provider":
            task = ""  # a provider's incident is told for all its tasks at once
        if kind == "storage":
            # the home's storage incident (task "home:HOST") is told as the home's
            # (task ""); one that is over within the hold is told once, at its end
            # (notify.storage), so it is counted by its ends below, not its openings
            storage_closed += _closed is not None
            continue
        incidents[(task, kind, "opened")] += 1
        # an incident whose first failure was permanent opens escalated: one message
        if escalated and (kind != "failure" or first_class in TRANSIENT):
            incidents[(task, kind, "escalated")] += 1
        if kind == "failure" and told:
            classes_after_first[(task, kind, "escalated")] += len(str(told).split("\n")) - 1
    # A task that keeps failing and recovering (a "flapping" incident, notify.flapping)
    # has its single-run failures and recoveries counted, not told: for its failure
    # incidents the messages may be fewer than the transitions, never more.
    told_closed = per_transition.pop(("", "storage", "closed"), 0)
    told_opened = per_transition.pop(("", "storage", "opened"), 0)
    if told_closed != storage_closed or told_opened > storage_closed + 1:
        res.msg_mismatch += 1
        res.note(
            f"storage: {storage_closed} incidents ended, {told_closed} told ended, "
            f"{told_opened} told begun"
        )
    flapping = {task for _i, task, kind, *_rest in rows["incidents"] if kind == "flapping"}
    for key in set(incidents) | {k for k in per_transition if k[2] in ("opened", "escalated")}:
        damped = key[0] in flapping and key[1] == "failure"
        if damped and per_transition[key] <= incidents[key]:
            continue
        again = min(new_class[key], classes_after_first[key])
        if incidents[key] != per_transition[key] - lasting[key] - again:
            res.msg_mismatch += 1
            res.note(
                f"messages for {key}: {per_transition[key]} outbox rows, "
                f"{incidents[key]} incidents made that transition: {said[key]}"
            )


def _check_resumed(
    res: Result, rows: dict[str, list[Any]], faults: list[Fault], check_end: float
) -> None:
    # attempts, not slots: a retry of a slot the fault interrupted is scheduling resumed too
    starts = sorted(float(r[4]) for r in rows["attempts"] if r[4] is not None)
    ordered = sorted(faults, key=lambda f: f.end)
    for i, fault in enumerate(ordered):
        until = ordered[i + 1].start if i + 1 < len(ordered) else check_end
        until = max(until, fault.end + 1)
        if not any(fault.end < s <= until for s in starts):
            res.resumed = False
            res.note(
                f"not resumed: no attempt started between {fault.kind} end {fault.end:.1f} "
                f"and {until:.1f}"
            )


def table(results: list[Result]) -> str:
    head = (
        f"{'scenario':<14}{'secs':>6}{'faults':>7}{'expected':>9}{'recorded':>9}{'lost':>6}"
        f"{'dupslot':>8}{'double':>7}{'redone':>7}{'nonfin':>7}{'msgs':>6}{'dupmsg':>7}"
        f"{'lostmsg':>8}{'msgmis':>7}{'resumed':>8}  ok"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.scenario:<14}{r.seconds:>6.0f}{r.faults:>7}{r.expected:>9}{r.recorded:>9}"
            f"{r.lost:>6}{r.dup_slots + r.off_grid:>8}{r.double:>7}{r.redone:>7}{r.nonfinal:>7}"
            f"{r.messages:>6}{r.dup_msgs:>7}{r.lost_msgs:>8}{r.msg_mismatch:>7}"
            f"{'yes' if r.resumed else 'NO':>8}  {'ok' if r.ok else 'FAIL'}"
        )
    return "\n".join(lines)
