"""Retention: kept outputs past ``keep_outputs``, history past ``keep_history``.

Files still waiting to be delivered are never pruned: delivery reads the kept
file, and deleting it would turn a passing outage into a lost output.

History (finished slots with their attempts, deliveries and output files; sent
notifications; closed incidents; the rows of nodes long gone) is pruned by
:func:`prune_history`, made for the daemon's periodic retention pass (run off its
loop, through ``asyncio.to_thread``) and run on demand by ``agentcron prune``. It only
decides how much each task keeps; what must never go (active slots, undelivered
outputs, the last runs the detectors read) is enforced by the store's statements.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agentcron.durations import parse_duration
from agentcron.model import TaskRecord, TaskSpec
from agentcron.store._prune_sql import KeepRule
from agentcron.store.base import Store

log = logging.getLogger("agentcron.retention")


def prune_outputs(
    home: Path,
    task_of: Callable[[str], TaskRecord | None],
    keep: set[str],
    now: float | None = None,
    failures: list[str] | None = None,
    *,
    walks: Callable[[str], bool] | None = None,
    seen: dict[str, timedelta | None] | None = None,
    counts: dict[str, int] | None = None,
    dry_run: bool = False,
    busy: set[int] | None = None,
) -> int:
    """Delete output files older than their task's ``keep_outputs``; returns how many.

    Walks the output folders (one per task that ever kept output) and looks each
    task up with ``task_of``; a removed task's outputs are left alone, and so is what
    a symbolic link leads to. ``keep`` holds paths that must stay (see
    ``Store.outputs_to_keep``); ``now`` is epoch seconds. A file that cannot be
    deleted is logged and, with ``failures``, added to it ("PATH: why").

    ``walks`` (a folder's name) picks the folders looked at, all by default: the
    daemon's frequent pass walks only the tasks whose ``keep_outputs`` is short (see
    :class:`OutputsCadence`). ``seen`` gets each looked-up task's ``keep_outputs``
    (None for a task that is gone or keeps all), ``counts`` the files per task, and
    ``dry_run`` counts what would go, deleting nothing. ``busy`` holds the ids of slots
    still going (running, or waiting for a retry): their files stay, however old (a run
    longer than its task's ``keep_outputs`` lost its output mid-run; outside-in probe).
    """
    current = time.time() if now is None else now
    removed = 0
    root = home / "outputs"
    if not root.is_dir():
        return 0
    for name in sorted(os.listdir(root)):  # names: 50,000 Paths took 0.4 s to sort
        if walks is not None and not walks(name):
            continue
        folder = root / name
        # a link is not a folder agentcron made: what it points at is not the home's
        # to delete (only real folders and files under HOME/outputs are pruned)
        real = folder.is_dir() and not folder.is_symlink()
        rec = task_of(folder.name) if real else None
        kept = rec.spec.keep_outputs if rec is not None else None
        if seen is not None and real:
            seen[folder.name] = kept
        if kept is None:
            continue
        cutoff = current - kept.total_seconds()
        here = 0
        for path in folder.iterdir():
            try:
                if str(path) in keep or path.is_symlink() or not path.is_file():
                    continue
                if busy and _slot_of(path.name) in busy:
                    continue
                if path.stat().st_mtime >= cutoff:
                    continue
                if not dry_run:
                    path.unlink()
                here += 1
            except OSError as exc:
                log.warning("could not prune %s: %s", path, exc)
                if failures is not None:
                    failures.append(f"{path}: {exc.strerror or exc}")
        removed += here
        if counts is not None and here:
            counts[folder.name] = counts.get(folder.name, 0) + here
    return removed


_SLOT_IN_NAME = re.compile(r"-s(\d+)-a\d+\.")  # see actions.output.output_file_name


def _slot_of(name: str) -> int | None:
    """The slot id an output file's name carries, or None."""
    found = _SLOT_IN_NAME.search(name)
    return int(found.group(1)) if found else None


def busy_slots(store: Store) -> set[int]:
    """The slots whose output files must stay whatever their age: those running, or
    waiting for a retry (its message quotes the last attempt's lines)."""
    return {slot.id for slot in store.active_slots()}


# The daemon removes a kept output within a tenth of its keep_outputs (at least one beat;
# the hourly pass at the latest): `keep_outputs: 1m` with a run a second kept 300 files
# a task five minutes on, when outputs were pruned only hourly (outside-in probe)
OUTPUT_PASSES = 10


class OutputsCadence:
    """When the daemon's retention duty prunes kept outputs, and which tasks' folders.

    A full pass (every ``full_every`` seconds, with the history) walks every output
    folder and notes each task's ``keep_outputs``. Between two, a frequent pass every
    tenth of the smallest ``keep_outputs`` in force (at least ``beat``) walks only the
    tasks whose ``keep_outputs`` the hourly pass would overrun, each no more often than
    its own tenth, and the folders the last full pass did not see (tasks new since): its
    cost follows the short-lived outputs, not the size of the home.
    """

    def __init__(self, full_every: float, beat: float) -> None:
        self.full_every = full_every
        self.beat = beat
        self.seen: dict[str, timedelta | None] = {}  # folder -> its task's keep_outputs
        self._walked: dict[str, float] = {}  # folder -> epoch seconds of its last walk
        self._config: dict[str, timedelta | None] = {}  # what the config file says
        self._default: timedelta | None = None  # that of its `defaults:`

    def configured(
        self, tasks: Mapping[str, TaskSpec], task_defaults: Mapping[str, Any] | None
    ) -> None:
        """What the config in force says: its tasks' ``keep_outputs`` (a reload that
        shortens one is walked at the next pass, not the next full one), and that of
        ``defaults:`` (what tasks added later through the API get)."""
        self._config = {name: spec.keep_outputs for name, spec in tasks.items()}
        self._default = default_keep_outputs(task_defaults)

    def _tenth(self, keep: timedelta | None) -> float | None:
        """How often a task keeping outputs ``keep`` is walked; None: the full pass does."""
        if keep is None:
            return None
        every = max(self.beat, keep.total_seconds() / OUTPUT_PASSES)
        return every if every < self.full_every else None

    def every(self) -> float:
        """Seconds between two passes: a tenth of the smallest ``keep_outputs`` in
        force, at least one beat, at most ``full_every``."""
        tenths = [
            t
            for keep in (*self.seen.values(), *self._config.values(), self._default)
            if (t := self._tenth(keep)) is not None
        ]
        return min(tenths, default=self.full_every)

    def walks(self, now: float, full: bool = False) -> Callable[[str], bool]:
        """Which folders the pass at ``now`` walks: every one for a ``full`` pass
        (what it sees replaces what was noted), else see the class."""
        step = self.every()
        if full:
            self.seen.clear()
            self._walked.clear()

        def walked(name: str) -> bool:
            if not full and name in self.seen:
                tenth = self._tenth(self.seen[name])
                said = self._tenth(self._config.get(name))
                if said is not None and (tenth is None or said < tenth):
                    tenth = said  # a reload shortened it; the store may not say so yet
                if tenth is None:
                    return False
                # due before the next pass comes: walked now, never later than its tenth
                if now + step < self._walked.get(name, -math.inf) + tenth:
                    return False
            self._walked[name] = now
            return True

        return walked


def default_keep_outputs(task_defaults: Mapping[str, Any] | None) -> timedelta | None:
    """``keep_outputs`` of the config's ``defaults:``, else 30 days; None keeps them
    (and so does a value the loader would have rejected)."""
    return _default_keep(task_defaults, "keep_outputs", DEFAULT_KEEP_OUTPUTS)


def _default_keep(
    task_defaults: Mapping[str, Any] | None, key: str, otherwise: timedelta | None
) -> timedelta | None:
    """A ``keep_*`` of the config's ``defaults:`` as the loader left the mapping, else
    ``otherwise``; None keeps all, and so does a value the loader would have rejected
    (a caller that skipped the loader keeps more, not less)."""
    if not task_defaults or key not in task_defaults:
        return otherwise
    raw = task_defaults[key]
    if raw is None:
        return None
    try:
        return parse_duration(raw)
    except ValueError:  # the loader refuses it first; a caller that did not keeps all
        return None  # (tests/test_keep_outputs_cadence.py, test_retention_history.py)


DEFAULT_KEEP_HISTORY: timedelta | None = TaskSpec.model_fields["keep_history"].default
DEFAULT_KEEP_OUTPUTS: timedelta | None = TaskSpec.model_fields["keep_outputs"].default
SKIP_STREAK_KEPT = 3  # the skip-streak detector reads a task's 3 newest final slots
STOPPED_NODE_KEPT = timedelta(days=1)  # `doctor` shows a cleanly stopped daemon this long
SILENT_NODE_KEPT = timedelta(days=7)  # a node silent this long is gone, crashed or not
UNREMOVED_SHOWN = 100  # files that could not be deleted, named in a report


@dataclass(frozen=True)
class PruneReport:
    """What one pass removed, or would remove when ``dry_run``: rows by kind, and the
    output files of the removed runs (those on this machine's disk)."""

    dry_run: bool
    slots: int = 0
    attempts: int = 0
    deliveries: int = 0
    files: int = 0
    outbox: int = 0
    incidents: int = 0
    nodes: int = 0
    audit: int = 0  # entries of the audit trail (`agentcron audit`)
    batches: int = 0
    # output files of removed runs that could not be deleted ("PATH: why"; at most
    # UNREMOVED_SHOWN of them): their rows are gone, the files stay on disk
    unremoved: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def total(self) -> int:
        return (
            self.slots
            + self.attempts
            + self.deliveries
            + self.files
            + self.outbox
            + self.incidents
            + self.nodes
            + self.audit
        )


def default_keep_history(task_defaults: Mapping[str, Any] | None) -> timedelta | None:
    """``keep_history`` of the config's ``defaults:`` (as the loader left the mapping),
    else 90 days: what the history (runs, closed incidents) of tasks no longer in the
    config keeps, and the age past which sent notifications go. None keeps all."""
    return _default_keep(task_defaults, "keep_history", DEFAULT_KEEP_HISTORY)


def keep_rule(spec: TaskSpec, now: datetime) -> KeepRule:
    """How much of one task's history stays: runs younger than its ``keep_history``,
    and its newest final runs however old, as many as its streak detectors read."""
    return _rule(now, spec.keep_history, spec.empty_output_streak)


def _rule(now: datetime, keep_history: timedelta | None, empty_output_streak: int) -> KeepRule:
    return KeepRule(
        cutoff=_cutoff(now, keep_history),
        keep_last=max(1, SKIP_STREAK_KEPT, empty_output_streak),
    )


def keep_rules(store: Store, now: datetime) -> dict[str, KeepRule]:
    """Each task's :class:`KeepRule`, from the two keys the store reads of each stored
    spec (parsing 100,000 whole specs here cost ~6 s of CPU and ~700 MB at every
    pass); tasks with the same settings share one rule."""
    made: dict[tuple[timedelta | None, int], KeepRule] = {}
    rules = {}
    for name, pair in store.keep_settings().items():
        rule = made.get(pair)
        if rule is None:
            rule = made[pair] = _rule(now, *pair)
        rules[name] = rule
    return rules


def _cutoff(now: datetime, keep: timedelta | None) -> datetime | None:
    """``now - keep``; None (keep all) for None or a span reaching before year 1."""
    if keep is None:
        return None
    try:
        return now - keep
    except OverflowError:
        return None


def prune_history(
    store: Store,
    home: Path,
    now: datetime,
    default_keep: timedelta | None = DEFAULT_KEEP_HISTORY,
    *,
    dry_run: bool = False,
    batch: int = 500,
) -> PruneReport:
    """Remove history past ``keep_history``; returns the counts. Blocking: the daemon
    calls it through ``asyncio.to_thread`` so its loop only ever waits for one batch
    (``batch`` rows in one transaction) on the store's connection.

    Each task keeps what its own ``keep_history`` says, of its runs and of its closed
    incidents; tasks no longer in the config, sent or given-up notifications and the
    audit trail keep ``default_keep`` (None: all). Output files of removed runs are
    deleted once their rows are gone (only files under ``home/outputs``: on several
    nodes, another node's files are its own to prune). ``dry_run`` counts, changing
    nothing.
    """
    rules = keep_rules(store, now)
    default = KeepRule(cutoff=_cutoff(now, default_keep), keep_last=SKIP_STREAK_KEPT)
    outputs = (home / "outputs").resolve()
    slots = attempts = deliveries = files = batches = 0
    unremoved: list[str] = []
    for done in store.prune_slots(rules, default, dry_run=dry_run, batch=batch):
        batches += 1
        slots += done.slots
        attempts += done.attempts
        deliveries += done.deliveries
        files += sum(_remove_output(Path(p), outputs, dry_run, unremoved) for p in done.paths)
    records_before = default.cutoff
    incidents_kept = {name: rule.cutoff for name, rule in rules.items()}
    if records_before is None:
        records = None
        incidents = store.prune_incidents(None, incidents_kept, dry_run=dry_run, batch=batch)
    else:
        records = store.prune_records(
            outbox_before=records_before,
            incidents_before=records_before,
            stopped_nodes_before=now - STOPPED_NODE_KEPT,
            silent_nodes_before=now - SILENT_NODE_KEPT,
            audit_before=records_before,
            incidents_kept=incidents_kept,
            dry_run=dry_run,
            batch=batch,
        )
    report = PruneReport(
        dry_run=dry_run,
        slots=slots,
        attempts=attempts,
        deliveries=deliveries,
        files=files,
        outbox=records.outbox if records else 0,
        incidents=records.incidents if records else incidents,
        nodes=records.nodes if records else 0,
        audit=records.audit if records else 0,
        batches=batches,
        unremoved=tuple(unremoved[:UNREMOVED_SHOWN]),
    )
    if report.total and not dry_run:
        log.info(
            "pruned history past keep_history: %d run(s), %d attempt(s), %d delivery "
            "row(s), %d output file(s), %d notification(s), %d incident(s), %d node row(s), "
            "%d audit entry(ies)",
            report.slots,
            report.attempts,
            report.deliveries,
            report.files,
            report.outbox,
            report.incidents,
            report.nodes,
            report.audit,
        )
    return report


def _remove_output(path: Path, outputs: Path, dry_run: bool, failures: list[str]) -> bool:
    """Delete one output file of a removed run (or, dry, say whether it would be);
    True when it was there. Paths outside this home's outputs are left alone; one
    that cannot be deleted is added to ``failures``."""
    try:
        resolved = path.resolve()
        if not resolved.is_relative_to(outputs) or not resolved.is_file():
            return False
        if not dry_run:
            resolved.unlink()
        return True
    except FileNotFoundError:
        return False  # pruned by keep_outputs already, or by another pass
    except OSError as exc:
        log.warning("could not delete %s: %s", path, exc)
        failures.append(f"{path}: {exc.strerror or exc}")
        return False
