"""Conversions between rows and records shared by the SQL stores.

Times are stored as epoch seconds (float) so that comparisons in SQL are plain
numeric ones on both engines; they become aware UTC datetimes at this boundary.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agentcron.model import (
    Attempt,
    DeliveryStatus,
    ErrorClass,
    Slot,
    SlotStatus,
    TaskRecord,
    TaskSource,
    TaskSpec,
)

SLOT_COLUMNS = (
    "id, task, scheduled_for, status, reason, trigger, attempts, error_class, error, "
    "started_at, finished_at, next_attempt_at, delivery_status, output_path, "
    "lease_owner, lease_expires_at, created_at"
)
ATTEMPT_COLUMNS = (
    "id, slot_id, number, started_at, finished_at, status, error_class, error, explanation, "
    "exit_code, output_path, node, tokens, extra"
)
TASK_COLUMNS = "name, source, spec, paused, next_fire_at, created_at, updated_at"


def ts(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime reached the store: {value!r}")
    return value.timestamp()


def dt(value: float | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(float(value), UTC)


def dt_req(value: float) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


def spec_json(spec: TaskSpec) -> str:
    return spec.model_dump_json(by_alias=True, exclude_defaults=False)


def schedule_key(spec: TaskSpec) -> str:
    """Hash of the fields that decide fire times: a change re-plans the grid, others don't."""
    part = spec.model_dump(
        mode="json", include={"cron", "every", "anchor", "at", "expires", "timezone"}
    )
    return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()[:16]


def task_from_row(row: Mapping[str, Any] | tuple[Any, ...]) -> TaskRecord:
    name, source, spec, paused, next_fire_at, created_at, updated_at = tuple(
        row.values() if isinstance(row, Mapping) else row
    )
    return TaskRecord(
        name=name,
        spec=TaskSpec.model_validate_json(spec),
        source=TaskSource(source),
        paused=bool(paused),
        next_fire_at=dt(next_fire_at),
        created_at=dt_req(created_at),
        updated_at=dt_req(updated_at),
    )


def slot_from_row(row: tuple[Any, ...]) -> Slot:
    (
        id_,
        task,
        scheduled_for,
        status,
        reason,
        trigger,
        attempts,
        error_class,
        error,
        started_at,
        finished_at,
        next_attempt_at,
        delivery_status,
        output_path,
        lease_owner,
        lease_expires_at,
        created_at,
    ) = row
    return Slot(
        id=int(id_),
        task=task,
        scheduled_for=dt_req(scheduled_for),
        status=SlotStatus(status),
        reason=reason,
        trigger=trigger,
        attempts=int(attempts),
        error_class=ErrorClass(error_class) if error_class else None,
        error=error,
        started_at=dt(started_at),
        finished_at=dt(finished_at),
        next_attempt_at=dt(next_attempt_at),
        delivery_status=DeliveryStatus(delivery_status),
        output_path=output_path,
        lease_owner=lease_owner,
        lease_expires_at=dt(lease_expires_at),
        created_at=dt(created_at),
    )


def attempt_from_row(row: tuple[Any, ...]) -> Attempt:
    (
        id_,
        slot_id,
        number,
        started_at,
        finished_at,
        status,
        error_class,
        error,
        explanation,
        exit_code,
        output_path,
        node,
        tokens,
        extra,
    ) = row
    return Attempt(
        id=int(id_),
        slot_id=int(slot_id),
        number=int(number),
        started_at=dt_req(started_at),
        finished_at=dt(finished_at),
        status=status,
        error_class=ErrorClass(error_class) if error_class else None,
        error=error,
        explanation=explanation,
        exit_code=exit_code,
        output_path=output_path,
        node=node,
        tokens=json.loads(tokens) if tokens else {},
        extra=json.loads(extra) if extra else {},
    )
