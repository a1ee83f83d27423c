"""An incident: one problem of one task, from its first event to its recovery.

The record is shared by the incident state machine (``agentcron.notify``), which
decides its transitions, and the store, which keeps it; it lives below both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from agentcron.model.enums import ErrorClass


class IncidentKind(StrEnum):
    FAILURE = "failure"
    STUCK = "stuck"
    OVERDUE = "overdue"
    SUSPICIOUS = "suspicious"
    SKIP_STREAK = "skip_streak"
    DELIVERY = "delivery"
    STARVED = "starved"
    MISSED = "missed"
    PROVIDER = "provider"  # of a provider, not a task: ``task`` is "provider:NAME"
    STORAGE = "storage"  # of a daemon's home (full disk): ``task`` is "home:HOST"
    NODE_LOST = "node_lost"  # a node gone without stopping: ``task`` is "node:ID"
    FLAPPING = "flapping"  # failing and recovering again and again (notify.flapping)


@dataclass(frozen=True, kw_only=True)
class Incident:
    """One problem of one task, from the first event to the recovery.

    ``id`` is None until the store has saved it. ``count`` is the number of
    events seen; ``failed_runs`` the distinct slots that failed; ``retries`` the
    failed attempts that were followed by a retry. ``streak`` is the length the
    detector last reported (missed runs, empty successes, skips; for a delivery, the
    outputs given up). ``slot_id`` is the slot last involved (the failing, stuck or
    undelivered one) and ``since``
    the instant the problem really began when that is not ``opened_at`` (the
    start of a stuck run, the last run of an overdue task).
    """

    id: int | None = None
    task: str
    kind: IncidentKind
    opened_at: datetime
    closed_at: datetime | None = None
    escalated: bool = False
    count: int = 1
    failed_runs: int = 0
    retries: int = 0
    first_error_class: ErrorClass | None = None
    last_error_class: ErrorClass | None = None
    summary: str = ""
    slot_id: int | None = None
    since: datetime | None = None
    streak: int = 0
    updated_at: datetime | None = None
    reminded_at: datetime | None = None  # last reminder told (remind_after)
    acknowledged_at: datetime | None = None  # an owner said "seen" (API, CLI)
    acknowledged_by: str | None = None
    # What the owner was told this incident is about, so that a new cause is told and a
    # known one only counted: the error classes of a failure told so far, the targets
    # of a delivery given up (and not delivered to since); empty: opened without a word
    # (its end is not told either); None: saved before this was kept.
    told: tuple[str, ...] | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None
