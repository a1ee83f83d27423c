"""Runs a dead daemon left behind: their process groups, and how they ended.

A command runs in its own process group. Its launcher (``actions/_shim.py``) kills
that group when the daemon dies, but a launcher can be killed too, and prctl is
Linux's: were the group to live on, retrying its slot would run the slot twice at
once. So the runner records each group with its leader's start time (so a recycled
pid is never mistaken for it), the launcher writes the same to the run's marker
before the command starts (the daemon may die before the runner records anything),
and whoever records the slot as lost stops that group first, if it is on this
machine.

The marker also holds the run's end, written by the launcher that waited for it. A
lost attempt whose end is on record is recorded with that outcome (see
:func:`ended_run` and :func:`outcome_of_end`), not retried as ``worker_lost``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentcron.model import AttemptOutcome, Classification, Slot, SlotStatus, TaskSpec

log = logging.getLogger("agentcron.orphans")


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields start after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of stat, counted from the state field (3)
    except (IndexError, ValueError):
        return None


def stop_group(pgid: int, started: int | None) -> bool:
    """SIGKILL the group whose leader was recorded starting at ``started``, if it still
    has members: while its leader is that process, and also once its leader has died.

    A launcher killed together with its daemon (the OOM killer, ``pkill -9 python3``)
    leaves its command running in the group, reparented: the group had to be stopped
    all the same, or the retry ran beside it, the slot twice at once (outside-in probe).
    Linux does not give a process ID to a new process while a process group of that ID
    exists, so a group with a dead leader is still the recorded one; a leader that is
    another process (a later start time) means the ID was reused, and it is left alone.
    """
    if pgid <= 1 or started is None:
        return False
    leader = start_time(pgid)
    if leader is not None and leader != started:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
        return True
    return False


# ---- run markers ---------------------------------------------------------------------
# The launcher of a command (agentcron/actions/_shim.py) writes HOME/runs/SLOT-ATTEMPT.json
# before the command starts and again, with its end, when the command ends. The daemon
# that recovers a lost attempt reads it: a recorded end is the run's real outcome.

RUNS_DIR = "runs"
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL})


@dataclass(frozen=True)
class RunRecord:
    """What the launcher wrote before the command started."""

    slot_id: int
    attempt: int
    host: str | None
    pgid: int
    pgid_start: int | None
    output: str | None
    started_at: float | None


@dataclass(frozen=True)
class EndRecord(RunRecord):
    """How the command ended, as the process that waited for it saw it.

    ``orphaned``: the daemon died first, and the launcher stopped the command (its
    status, if it was reaped in the grace, is then a consequence, not a result).
    ``escaped``: the processes that had left the run's group (``setsid``, a job of
    their own, a double fork), named (``sleep (pid 4242), ...``); ``escaped_stopped``:
    the launcher stopped them with the run (a timeout, a stop, the daemon gone), else
    they were left running when the command ended; ``escaped_left``: how many of them
    it could not stop (not even by KILL); ``scan_fault``: a process the launcher could
    not look at while it looked for them (the first such; ``scan_faults`` counts them),
    so one may have been missed.
    """

    ended_at: float = 0.0
    exit_code: int | None = None
    signal: int | None = None
    exec_errno: int | None = None
    orphaned: bool = False
    escaped: str | None = None
    escaped_stopped: bool = False
    escaped_left: int | None = None
    scan_fault: str | None = None
    scan_faults: int | None = None

    @property
    def result_known(self) -> bool:
        """Whether this end is the command's own outcome, to record as it is; an
        orphaned run, or one killed by a stop signal while its daemon went away (the
        daemon's timeout or shutdown), is an interruption to retry instead."""
        if self.orphaned or (self.exit_code is None and self.signal is None):
            return False
        if self.signal is not None and self.signal in STOP_SIGNALS:
            return False
        return not (self.exit_code is not None and self.exit_code - 128 in STOP_SIGNALS)


def marker_path(home: Path | str, slot_id: int, attempt: int) -> Path:
    return Path(home, RUNS_DIR, f"{slot_id}-{attempt}.json")


def marker_for_output(output: Path | str, task: str, slot_id: int, attempt: int) -> Path | None:
    """The marker of the attempt whose output file is ``output``, or None.

    Actions are given the output path, not the home; the runner puts it at
    ``HOME/outputs/TASK/FILE`` (``output.output_file_name``), so the home is read back
    from there. Any other path (a test's, an embedder's) gets no marker.
    """
    path = Path(output)
    folder = path.parent
    if folder.name != task or folder.parent.name != "outputs":
        return None
    return marker_path(folder.parent.parent, slot_id, attempt)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="surrogateescape"))
    except FileNotFoundError:
        return None  # no marker: nothing was started, or it was recorded and removed
    except (OSError, ValueError) as exc:
        # Unreadable or cut short (a crash of the machine mid-write): the run is then
        # treated as having no known end, and retried; say which file and why.
        log.warning("run marker %s cannot be read (%s); its run counts as lost", path, exc)
        return None
    if not isinstance(data, dict):
        log.warning("run marker %s holds no record; its run counts as lost", path)
        return None
    return data


def _int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _run_fields(data: dict[str, Any], slot_id: int, attempt: int) -> dict[str, Any] | None:
    pgid = _int(data, "pgid")
    if pgid is None or _int(data, "slot") != slot_id or _int(data, "attempt") != attempt:
        return None
    return {
        "slot_id": slot_id,
        "attempt": attempt,
        "host": _str(data, "host"),
        "pgid": pgid,
        "pgid_start": _int(data, "pgid_start"),
        "output": _str(data, "output"),
        "started_at": _float(data, "started_at"),
    }


def started_run(home: Path | str, slot_id: int, attempt: int) -> RunRecord | None:
    """The launcher's record of the attempt (ended or not), or None."""
    data = _read(marker_path(home, slot_id, attempt))
    fields = None if data is None else _run_fields(data, slot_id, attempt)
    return None if fields is None else RunRecord(**fields)


def ended_run(home: Path | str, slot_id: int, attempt: int) -> EndRecord | None:
    """The recorded end of the attempt, or None when it has no record of its end."""
    data = _read(marker_path(home, slot_id, attempt))
    fields = None if data is None else _run_fields(data, slot_id, attempt)
    ended_at = None if data is None else _float(data, "ended_at")
    if data is None or fields is None or ended_at is None:
        return None
    return EndRecord(
        **fields,
        ended_at=ended_at,
        exit_code=_int(data, "exit_code"),
        signal=_int(data, "signal"),
        exec_errno=_int(data, "exec_errno"),
        orphaned=data.get("orphaned") is True,
        escaped=_str(data, "escaped"),
        escaped_stopped=data.get("escaped_stopped") is True,
        scan_fault=_str(data, "scan_fault"),
        scan_faults=_int(data, "scan_faults"),
        escaped_left=_int(data, "escaped_left"),
    )


def stopped_by_its_launcher(output: Path | str, task: str, slot_id: int, attempt: int) -> bool:
    """Whether the attempt's launcher stopped its command because the daemon was gone
    or frozen past its lease (its marker says ``orphaned``): the daemon that then reads
    a SIGKILL is reading its own launcher's, not one "from outside"."""
    marker = marker_for_output(output, task, slot_id, attempt)
    if marker is None:
        return False
    end = ended_run(marker.parent.parent, slot_id, attempt)
    return end is not None and end.orphaned


def forget_run(home: Path | str, slot_id: int, attempt: int) -> None:
    """Remove the marker of an attempt whose end is recorded in the store."""
    with contextlib.suppress(OSError):
        marker_path(home, slot_id, attempt).unlink()


def known_ends(home: Path | str, limit: int = 1000) -> list[EndRecord]:
    """The attempts on this home whose command's own end is on record (``result_known``),
    at most ``limit`` files looked at: what a daemon that comes back checks against
    what other nodes recorded meanwhile."""
    found: list[EndRecord] = []
    try:
        with os.scandir(Path(home, RUNS_DIR)) as entries:
            for seen, entry in enumerate(entries):
                if seen >= limit:
                    break
                slot_text, _, rest = entry.name.partition("-")
                attempt_text = rest.removesuffix(".json")
                if not (slot_text.isdigit() and attempt_text.isdigit() and rest.endswith(".json")):
                    continue
                end = ended_run(home, int(slot_text), int(attempt_text))
                if end is not None and end.result_known:
                    found.append(end)
    except OSError:
        return found
    return found


def _leader_lives(run: RunRecord) -> bool:
    return run.pgid_start is not None and start_time(run.pgid) == run.pgid_start


def launcher_alive(home: Path | str, slot_id: int, attempt: int) -> bool:
    """Whether the launcher that started this attempt's command still runs (on this
    host: a marker is only ever read where it was written)."""
    run = started_run(home, slot_id, attempt)
    return run is not None and _leader_lives(run)


def sweep_markers(
    home: Path | str, held: Container[int], older_than: float, limit: int = 1000
) -> int:
    """Remove markers of runs that are over: not ``held`` by this node's engine and
    unchanged for ``older_than`` seconds (a lost run of a dead predecessor is
    recovered, and its marker read, within a lease of the death), whose process
    group is gone. Looks at ``limit`` files at most. Returns how many went."""
    folder = Path(home, RUNS_DIR)
    now = time.time()
    removed = 0
    try:
        with os.scandir(folder) as entries:
            for seen, entry in enumerate(entries):
                if seen >= limit:
                    break
                slot_text, _, rest = entry.name.partition("-")
                if not slot_text.isdigit() or int(slot_text) in held:
                    continue
                try:
                    if now - entry.stat().st_mtime < older_than:
                        continue
                except FileNotFoundError:
                    continue  # removed meanwhile: its run was recorded
                except OSError as exc:
                    log.warning("cannot look at run marker %s: %s", entry.path, exc)
                    continue
                if rest.endswith(".json"):
                    attempt_text = rest.removesuffix(".json")
                    run = (
                        started_run(home, int(slot_text), int(attempt_text))
                        if attempt_text.isdigit()
                        else None
                    )
                    if run is not None and _leader_lives(run):
                        continue  # its launcher still lives: not over
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
    except OSError:
        return removed  # no folder yet: no command has run in this home
    return removed


@dataclass(frozen=True)
class EndedOutcome:
    """What to record for an attempt that ended while no daemon watched it."""

    outcome: AttemptOutcome
    classification: Classification | None
    details: str  # redacted tail of the output, for notifications
    ended_at: datetime


def outcome_of_end(
    end: EndRecord, spec: TaskSpec, slot: Slot, now: datetime, rand: float
) -> EndedOutcome:
    """The outcome the daemon would have recorded had it seen ``end`` itself: success
    with the output kept, or the failure classified (and retried) as usual."""
    from agentcron.actions.base import ActionContext
    from agentcron.actions.command import result_for_end
    from agentcron.engine.runner import outcome_for_failure

    output = end.output or ""
    ctx = ActionContext(
        task=spec.name,
        spec=spec,
        slot_id=slot.id,
        attempt=end.attempt,
        scheduled_for=slot.scheduled_for,
        output_path=output,
        timeout=spec.timeout,
        kill_grace=spec.kill_grace,
    )
    returncode = -end.signal if end.signal is not None else end.exit_code
    result = result_for_end(returncode, end.exec_errno, ctx)
    kept = output if output and os.path.isfile(output) else None
    ended_at = min(now, datetime.fromtimestamp(end.ended_at, UTC))
    if result.ok:
        from agentcron.notify.channels import channel_key

        outcome = AttemptOutcome(
            ok=True,
            slot_status=SlotStatus.SUCCEEDED,
            exit_code=result.exit_code,
            output_path=kept,
            empty_output=not result.output.strip(),
            deliver_to=tuple((u, channel_key(u)) for u in spec.deliver),
        )
        return EndedOutcome(outcome, None, "", ended_at)
    assert result.failure is not None
    outcome, classification = outcome_for_failure(
        spec, end.attempt, result.failure, now, rand, kept, result.exit_code
    )
    return EndedOutcome(outcome, classification, result.failure.output_tail or "", ended_at)
