"""Rows as the rest of the program sees them: plain frozen dataclasses.

Times are aware UTC datetimes. Leases (``lease_owner``, ``lease_expires_at``) sit on
the slot because the slot is what a worker claims.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentcron.model.enums import DeliveryStatus, ErrorClass, SlotStatus, TaskSource
from agentcron.model.task import TaskSpec
from agentcron.quick_init import quick_init


@quick_init
@dataclass(frozen=True)
class TaskRecord:
    name: str
    spec: TaskSpec
    source: TaskSource
    paused: bool
    next_fire_at: datetime | None
    created_at: datetime
    updated_at: datetime


@quick_init
@dataclass(frozen=True)
class Slot:
    id: int
    task: str
    scheduled_for: datetime
    status: SlotStatus
    reason: str | None = None
    attempts: int = 0
    error_class: ErrorClass | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_attempt_at: datetime | None = None
    delivery_status: DeliveryStatus = DeliveryStatus.NONE
    output_path: str | None = None
    trigger: str = "schedule"  # schedule | manual | catchup
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    created_at: datetime | None = None


@quick_init
@dataclass(frozen=True)
class Attempt:
    id: int
    slot_id: int
    number: int
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"  # running | succeeded | failed
    error_class: ErrorClass | None = None
    error: str | None = None
    explanation: str | None = None
    exit_code: int | None = None
    output_path: str | None = None
    node: str | None = None
    tokens: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class Delivery:
    """Sending one succeeded slot's kept output to one ``deliver`` target."""

    id: int
    slot_id: int
    task: str
    target: str  # the Apprise URL (may hold a token: never shown, see target_key)
    target_key: str  # redacted form for people
    output_path: str | None
    status: DeliveryStatus
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
