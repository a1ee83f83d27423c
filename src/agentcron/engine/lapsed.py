"""Runs whose worker is gone: a lapsed lease, a dead predecessor, a node that died.

Each is recorded as it really ended when its launcher wrote the end down (the command
finished while its daemon was dead), else ``worker_lost`` and retried, after any process
group it left is stopped so the slot never runs twice at once. A node that may still
record its own runs' ends (alive but frozen, or on another machine and restarted by its
service manager) is given a lease more before its runs are taken over.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Container
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from agentcron.model import (
    AttemptOutcome,
    ErrorClass,
    FailureInfo,
    Finished,
    NodeInfo,
    Slot,
    SlotStatus,
    TaskSpec,
)
from agentcron.model.failure import REMOVED_WHILE_RUNNING
from agentcron.store.base import Store

from .runner import outcome_for_failure
from .settings import EngineSettings

if TYPE_CHECKING:
    from agentcron.orphans import EndRecord

log = logging.getLogger("agentcron.engine")

LAUNCHER_WAIT = timedelta(seconds=10)  # a launcher's grace (5 s at most) and then some
# How much longer than its lease a run is left to a node that may still record its end
# (see _may_still_end); the lease itself is added, so the wait is 2 leases.
ELSEWHERE_GRACE_LEASES = 1.0


class LapsedRuns:
    """The engine's look for runs whose worker is gone (see the module's docstring)."""

    def __init__(
        self,
        store: Store,
        settings: EngineSettings,
        rand: Callable[[], float],
        held: Callable[[], Container[int]],
        notify: Callable[[Finished], None],
    ) -> None:
        self.store = store
        self.settings = settings
        self.rand = rand
        self._held = held  # the slots this engine runs now
        self._notify = notify  # how the engine's listeners hear of a recorded end
        # a dead predecessor's owner names, until its lost runs are recovered
        self._dead_owners = list(settings.dead_owners)
        self._waiting_for_launcher: dict[int, datetime] = {}  # lost slot -> first seen
        self._last_marker_sweep: float | None = None  # when run markers were last swept

    def recover(self, now: datetime) -> int:
        """Record the runs whose worker is gone. An attempt whose command's launcher
        recorded its end (the command finished while its daemon was dead) is recorded
        with that outcome; any other is ``worker_lost``, after its process group is
        stopped. Then markers of runs that are over are swept (a bounded look)."""
        from agentcron.orphans import ended_run, forget_run, outcome_of_end, sweep_markers

        own_home = self.settings.home
        count = 0
        deferred = False
        owners: dict[str, NodeInfo] | None = None  # the nodes, read when needed
        dead = set(self._dead_owners)
        for slot in self.store.lapsed(now, self._dead_owners):
            if slot.id in self._held() and slot.lease_owner == self.settings.owner:
                continue  # ours and alive: the lease will be renewed
            home = own_home
            if slot.lease_owner is not None and slot.lease_owner not in self._dead_owners:
                if owners is None:
                    owners = {n.node_id: n for n in self.store.nodes()}
                owner = owners.get(slot.lease_owner)
                mine = slot.lease_owner == self.settings.owner  # not held: nobody runs it
                if not mine and _may_still_end(owner) and not _past_grace(slot, now, self.settings):
                    deferred = True
                    continue  # its own machine may still record how it ended
                if owner is not None and _here(owner):
                    home = Path(owner.home)  # its launcher's marker is in its home
            rec = self.store.get_task(slot.task)
            number = max(slot.attempts, 1)
            if rec is None:
                count += self._end_removed_lapsed(slot, number, now, home)
                continue
            end = ended_run(home, slot.id, number)
            if end is None:
                if self._launcher_finishing(slot.id, number, now, home):
                    deferred = True
                    continue  # its launcher is still ending it: its end is on the way
                # A launcher writes the end before it exits: seen gone now, it may have
                # written it since the look above (the soak caught a success recorded
                # worker_lost and run again in that gap). Look once more.
                end = ended_run(home, slot.id, number)
            ended = None
            if end is not None and end.result_known:
                try:
                    ended = outcome_of_end(end, rec.spec, slot, now, self.rand())
                except Exception:  # an unreadable end is no end: the run is retried
                    log.exception("could not read how slot %s of %s ended", slot.id, slot.task)
            if ended is not None:
                outcome, classification = ended.outcome, ended.classification
                details, finished_at = ended.details, ended.ended_at
                self._stop_orphan(slot, home)  # strays its command may have left in the group
                _redact_kept(outcome.output_path, rec.spec)
                recorded = self.store.record_unwatched_end(slot, outcome, finished_at)
                how = "ended while its daemon was down"
            else:
                failure = FailureInfo(
                    message=_lost_words(
                        rec.spec, launcher_ended=end is not None, died=slot.lease_owner in dead
                    ),
                    known_class=ErrorClass.WORKER_LOST,
                    action=rec.spec.action_kind,
                )
                # stopped first: an orphan still writing would write on into the file
                # the redaction replaces, and that output would be lost (review)
                self._stop_orphan(slot, home)
                kept = _lost_output(end, rec.spec, slot, number, home)
                _redact_kept(kept, rec.spec)
                outcome, classification = outcome_for_failure(
                    rec.spec, number, failure, now, self.rand(), kept
                )
                # when its launcher stopped the command (its daemon dead), not when this
                # look found it: "the run … ended after 8s" was the time until the
                # restart, for a command stopped after 4 (outside-in probe)
                details, finished_at = "", _stopped_at(end, slot, now)
                recorded = self.store.record_lost(slot, outcome, finished_at)
                how = "lost its worker"
            if not recorded:
                continue  # another node recorded it first
            forget_run(home, slot.id, number)
            count += 1
            log.warning("slot %s of %s %s; %s", slot.id, slot.task, how, outcome.slot_status.value)
            fresh = self.store.get_slot(slot.id) or slot
            self._notify(
                Finished(
                    slot=fresh,
                    spec=rec.spec,
                    attempt=number,
                    outcome=outcome,
                    classification=classification,
                    details=details,
                    started_at=slot.started_at or now,
                    finished_at=finished_at,
                )
            )
        if self._dead_owners and not deferred:
            count += self._correct_lost_ends(now)
        if not deferred:  # predecessors are handled once; later losses go by lease
            self._dead_owners = []
        # A marker left this long after its last write belongs to a run that is over
        # (a dead predecessor's lost runs were recovered above, within a lease). Such a
        # marker waits two leases anyway: the folder is looked at twice a lease, not at
        # every look for lapsed leases (an idle daemon listed it at every beat).
        lease = self.settings.lease.total_seconds()
        since = self._last_marker_sweep
        if since is None or time.monotonic() - since >= lease / 2:
            self._last_marker_sweep = time.monotonic()
            sweep_markers(own_home, self._held(), older_than=2 * lease)
        return count

    def _end_removed_lapsed(self, slot: Slot, number: int, now: datetime, home: Path) -> int:
        """A lapsed run whose task was removed meanwhile: nothing would retry it, and
        left ``running`` it would be read again on every look. Its process group is
        stopped and its slot ends as its launcher recorded (a command that finished
        while its daemon was down), else failed; no one is told of a task that is gone."""
        from agentcron.orphans import ended_run, forget_run

        self._stop_orphan(slot, home)
        end = ended_run(home, slot.id, number)
        if end is not None and end.result_known:
            outcome, finished_at = (
                _removed_task_end(end),
                min(now, datetime.fromtimestamp(end.ended_at, UTC)),
            )
            recorded = self.store.record_unwatched_end(slot, outcome, finished_at)
        else:
            outcome = AttemptOutcome(
                ok=False,
                slot_status=SlotStatus.FAILED,
                error_class=ErrorClass.WORKER_LOST,
                error=f"the worker running this slot stopped responding; {REMOVED_WHILE_RUNNING}",
                reason=REMOVED_WHILE_RUNNING,
            )
            recorded = self.store.record_lost(slot, outcome, now)
        if not recorded:
            return 0  # another node recorded it first
        forget_run(home, slot.id, number)
        how = "ended while its daemon was down" if end and end.result_known else "lost its worker"
        log.warning(
            "slot %s of removed task %s %s; %s", slot.id, slot.task, how, outcome.slot_status.value
        )
        return 1

    def _correct_lost_ends(self, now: datetime) -> int:
        """Back after a crash: runs of this home whose command finished while this
        daemon was dead, but that another node recorded ``worker_lost`` when the lease
        lapsed (the end was on this host's disk, out of its sight). While their slot
        still waits for the retry, the real end is recorded instead, so finished work
        is not done again. Once, at start; a bounded look."""
        from agentcron.orphans import forget_run, known_ends, outcome_of_end

        corrected = 0
        for end in known_ends(self.settings.home):
            if end.slot_id in self._held():
                continue
            try:
                slot = self.store.get_slot(end.slot_id)
                if (
                    slot is None
                    or slot.status is not SlotStatus.RETRYING
                    or slot.attempts != end.attempt
                    or slot.error_class is not ErrorClass.WORKER_LOST
                ):
                    continue
                rec = self.store.get_task(slot.task)
                if rec is None:
                    continue
                ended = outcome_of_end(end, rec.spec, slot, now, self.rand())
                fresh = self.store.correct_lost_end(
                    slot.id, end.attempt, ended.outcome, ended.ended_at
                )
            except Exception:
                log.exception("could not check how slot %s ended", end.slot_id)
                continue
            if fresh is None:
                continue
            forget_run(self.settings.home, end.slot_id, end.attempt)
            corrected += 1
            log.warning(
                "slot %s of %s finished while this daemon was down (another node had "
                "recorded it lost); recorded %s",
                slot.id,
                slot.task,
                fresh.status.value,
            )
            self._notify(
                Finished(
                    slot=fresh,
                    spec=rec.spec,
                    attempt=end.attempt,
                    outcome=ended.outcome,
                    classification=ended.classification,
                    details=ended.details,
                    started_at=slot.started_at or now,
                    finished_at=ended.ended_at,
                )
            )
        return corrected

    def _launcher_finishing(self, slot_id: int, attempt: int, now: datetime, home: Path) -> bool:
        """Whether to wait for the launcher of a lost attempt on this host: it outlives
        its daemon by up to the command's grace (it stops the command and writes how it
        ended), and recording the attempt before then would throw a finished run's end
        away. Waited for at most :data:`LAUNCHER_WAIT`, then the group is stopped."""
        from agentcron.orphans import launcher_alive

        if not launcher_alive(home, slot_id, attempt):
            self._waiting_for_launcher.pop(slot_id, None)
            return False
        first = self._waiting_for_launcher.setdefault(slot_id, now)
        if now - first < LAUNCHER_WAIT:
            return True
        self._waiting_for_launcher.pop(slot_id, None)
        return False

    def _stop_orphan(self, slot: Slot, home: Path | None = None) -> None:
        """The lost attempt's command may still run (its daemon died, it did not): stop it
        before the slot is retried, or the slot would run twice at once. Its process
        group is known from the attempt's row, or, if the daemon died before writing
        that, from the marker its launcher wrote before starting the command."""
        from agentcron.home import hostname
        from agentcron.orphans import started_run, stop_group

        host = hostname()
        groups: set[tuple[int, int | None]] = set()
        for attempt in self.store.attempts(slot.id):
            if attempt.status != "running":
                continue
            info = attempt.extra
            if info.get("host") == host and isinstance(info.get("pgid"), int):
                pgid_start = info.get("pgid_start")
                groups.add((int(info["pgid"]), pgid_start if isinstance(pgid_start, int) else None))
            marked = started_run(home or self.settings.home, slot.id, attempt.number)
            if marked is not None and marked.host in (host, None):
                groups.add((marked.pgid, marked.pgid_start))
        for pgid, started in groups:
            if stop_group(pgid, started):
                log.warning(
                    "stopped the orphaned process group %s of %s (slot %s)",
                    pgid,
                    slot.task,
                    slot.id,
                )


def _redact_kept(path: str | None, spec: TaskSpec) -> None:
    """A run that ended while its daemon was down left its output as written: secrets
    are removed before its end is recorded, as for any other run."""
    if not path:
        return
    from agentcron.actions.output import redact_file
    from agentcron.engine.redaction import task_secrets

    try:
        redact_file(path, task_secrets(spec))
    except OSError as exc:
        log.warning("could not remove secrets from %s: %s", path, exc)


def _lost_output(
    end: EndRecord | None, spec: TaskSpec, slot: Slot, attempt: int, home: Path
) -> str | None:
    """The output a lost run wrote before it was stopped, when its file is there: the
    running slot has no path recorded yet, and `logs` said "(no output kept)" of a file
    holding what the run printed (outside-in probe)."""
    from agentcron.actions.output import output_file_name

    candidates = [end.output] if end is not None and end.output else []
    suffix = ".md" if spec.llm is not None else ".log"
    with contextlib.suppress(ValueError):  # a name no output file can have
        candidates.append(
            output_file_name(
                home, slot.task, slot.scheduled_for, attempt, suffix=suffix, slot_id=slot.id
            )
        )
    return next((path for path in candidates if os.path.isfile(path)), None)


def _stopped_at(end: EndRecord | None, slot: Slot, now: datetime) -> datetime:
    """When a lost run's command ended, as its launcher wrote it, if that is known and
    plausible (after the run began, not after now); else ``now``."""
    if end is None or end.ended_at <= 0:
        return now
    at = datetime.fromtimestamp(end.ended_at, UTC)
    began = slot.started_at or at
    return at if began <= at <= now else now


def _lost_words(spec: TaskSpec, *, launcher_ended: bool, died: bool) -> str:
    """Why a run's worker is gone, as far as is known. ``died``: the run's daemon was
    this home's previous one, whose process ended without recording its stop."""
    if launcher_ended:
        return "the daemon running this slot died and its command was stopped with it"
    if died and spec.python is not None and spec.isolation == "inline":
        # the call ran in the daemon's own process: nothing else is left to blame, and
        # "the worker stopped responding" pointed nowhere (probe: an os._exit)
        return (
            "agentcron's process ended while this inline call was running: it was killed "
            "or crashed, or the call itself ended it (os._exit, a fatal error in native "
            "code)"
        )
    if died:
        # seen at once by this home's next daemon: "its lease lapsed … or the machine
        # slept" guessed at what was known (outside-in probe)
        return (
            "the daemon running this slot died (killed or crashed, or its machine went "
            "down) without recording its end, and its run ended with it"
        )
    return (
        "the worker running this slot stopped responding (its lease lapsed: the process "
        "died or the machine slept)"
    )


def _removed_task_end(end: EndRecord) -> AttemptOutcome:
    """How a command of a removed task ended while its daemon was down, from its
    launcher's record: its spec is gone (no classification, no retry, no delivery), so
    only whether it succeeded and what it kept."""
    kept = end.output if end.output and os.path.isfile(end.output) else None
    if end.signal is None and end.exit_code == 0:
        return AttemptOutcome(
            ok=True, slot_status=SlotStatus.SUCCEEDED, exit_code=0, output_path=kept
        )
    how = f"killed by signal {end.signal}" if end.signal is not None else f"exited {end.exit_code}"
    return AttemptOutcome(
        ok=False,
        slot_status=SlotStatus.FAILED,
        exit_code=end.exit_code,
        error=f"{how} while its daemon was down; {REMOVED_WHILE_RUNNING}",
        output_path=kept,
        reason=REMOVED_WHILE_RUNNING,
    )


def _here(node: NodeInfo) -> bool:
    from agentcron.home import hostname

    return node.host == hostname()


def _may_still_end(owner: NodeInfo | None) -> bool:
    """Whether the node holding a lapsed run may still record how it ends, so the run
    is taken over only after :data:`ELSEWHERE_GRACE_LEASES` leases more: a node on another
    machine (killed there, OOM or kill -9, it is restarted by its service manager within
    seconds and records from its launchers' markers how a run that finished meanwhile
    ended; taken over at once, that finished run would be run again), or one on this machine
    whose process still lives, stopped or frozen (SIGSTOP, a debugger, a suspended
    container: thawed, it renews its leases and records its runs; taken over at
    once, a run that succeeded meanwhile was run again). A node recorded stopped, or
    whose process is gone, is not waited for: its markers are read where it kept
    them."""
    if owner is None:
        return False
    if not _here(owner):
        return True
    from agentcron.home import pid_alive

    return owner.stopped_at is None and pid_alive(owner.pid)


def _past_grace(slot: Slot, now: datetime, settings: EngineSettings) -> bool:
    """Whether a run held on another machine has been silent long enough to take over."""
    expires = slot.lease_expires_at
    if expires is None:
        return True
    return now >= expires + settings.lease * ELSEWHERE_GRACE_LEASES
