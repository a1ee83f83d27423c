"""Conversions between rows and records shared by the SQL stores.

Times are stored as epoch seconds (float) so that comparisons in SQL are plain
numeric ones on both engines; they become aware UTC datetimes at this boundary.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from agentcron.model import (
    Attempt,
    Delivery,
    DeliveryStatus,
    ErrorClass,
    Incident,
    IncidentKind,
    Message,
    NodeInfo,
    OutboxItem,
    Slot,
    SlotStatus,
    TaskRecord,
    TaskSource,
    TaskSpec,
)
from agentcron.store._spec_sql import spec_error
from agentcron.store.errors import unreadable_row

# what a value of the wrong kind raises when a row is read (a ValidationError and a
# JSONDecodeError are ValueErrors)
_BAD_VALUE = (ValueError, TypeError, OverflowError, OSError)

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
    """The stored form of ``spec``. The pair is remembered for :func:`parse_spec`: the
    first tick after tasks were registered reads back exactly these texts, and
    validating each again would cost a burst of thousands most of its first second."""
    text = spec.model_dump_json(by_alias=True, exclude_defaults=False)
    _remember(text, spec)
    return text


def schedule_key(spec: TaskSpec) -> str:
    """Hash of the fields that decide fire times: a change re-plans the grid, others don't.

    The hashed text is the JSON of those fields exactly as ``model_dump(mode="json")``
    gives them (stored keys must keep matching across versions, or every task would
    lose its place on the grid), built field by field: three times cheaper, which
    registering 100,000 tasks notices."""
    every, expires = spec.every, spec.expires
    part = {
        "anchor": None if spec.anchor is None else to_jsonable_python(spec.anchor),
        "at": None if spec.at is None else to_jsonable_python(spec.at),
        "cron": spec.cron,
        "every": None if every is None else every.total_seconds(),
        "expires": None if expires is None else expires.total_seconds(),
        "timezone": spec.timezone,
    }
    return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()[:16]


_SPEC_CACHE_SIZE = 16384
# Ordered for an O(1) eviction of the oldest entry: ``next(iter(d))`` on a plain dict
# walks past every slot freed at its front, which made registering 100,000 tasks
# quadratic in the cache's churn (0.4 s of it).
_specs: OrderedDict[str, TaskSpec] = OrderedDict()
_specs_lock = threading.Lock()


def _remember(text: str, spec: TaskSpec) -> None:
    with _specs_lock:
        if text not in _specs and len(_specs) >= _SPEC_CACHE_SIZE:
            _specs.popitem(last=False)  # the oldest entry: insertion order
        _specs[text] = spec


def parse_spec(text: str) -> TaskSpec:
    """Specs are frozen, so one parsed object may serve every row with the same text;
    a tick that handles thousands of slots would otherwise re-validate each one."""
    spec = _specs.get(text)
    if spec is None:
        spec = TaskSpec.model_validate_json(text)
        _remember(text, spec)
    return spec


def spec_of(name: str, text: str) -> TaskSpec:
    """:func:`parse_spec` for a task read by name: a stored spec that no longer parses
    (changed outside agentcron, or by another version) is a :class:`StoreError` naming
    the task and the first problem, not a bare validation error about "TaskSpec"."""
    try:
        return parse_spec(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "spec"
        raise spec_error(name, f"{where}: {first['msg']}") from None


# TaskSource(value) walks Enum.__new__ (~6 µs): a 100,000-task read noticed it
_SOURCES = {s.value: s for s in TaskSource}


def source_of(value: str) -> TaskSource:
    found = _SOURCES.get(value)
    return TaskSource(value) if found is None else found  # unknown: Enum's own error


def task_from_row(row: Mapping[str, Any] | tuple[Any, ...]) -> TaskRecord:
    name, source, spec, paused, next_fire_at, created_at, updated_at = tuple(
        row.values() if isinstance(row, Mapping) else row
    )
    parsed = spec_of(name, spec)  # its own words for a spec that cannot be read
    try:
        return TaskRecord(
            name=name,
            spec=parsed,
            source=source_of(source),
            paused=bool(paused),
            next_fire_at=dt(next_fire_at),
            created_at=dt_req(created_at),
            updated_at=dt_req(updated_at),
        )
    except _BAD_VALUE as exc:
        raise unreadable_row("task", name, exc) from None


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
    try:
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
    except _BAD_VALUE as exc:
        raise unreadable_row("run", id_, exc) from None


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
    try:
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
    except _BAD_VALUE as exc:
        raise unreadable_row("attempt", id_, exc) from None


INCIDENT_COLUMNS_NO_ID = (
    "task, kind, opened_at, closed_at, escalated, count, failed_runs, retries, "
    "first_error_class, last_error_class, summary, slot_id, since, streak, updated_at, "
    "reminded_at, acknowledged_at, acknowledged_by, told"
)
INCIDENT_COLUMNS = "id, " + INCIDENT_COLUMNS_NO_ID
OUTBOX_COLUMNS = (
    "o.id, o.channel_key, o.channel_url, o.message, o.created_at, o.attempts, "
    "o.next_attempt_at, o.last_error"
)
DELIVERY_COLUMNS = (
    "id, slot_id, task, target, target_key, output_path, status, attempts, next_attempt_at, "
    "last_error, created_at, updated_at"
)


def incident_values(inc: Incident) -> tuple[Any, ...]:
    return (
        inc.task,
        inc.kind.value,
        ts(inc.opened_at),
        ts(inc.closed_at),
        int(inc.escalated),
        inc.count,
        inc.failed_runs,
        inc.retries,
        inc.first_error_class.value if inc.first_error_class else None,
        inc.last_error_class.value if inc.last_error_class else None,
        inc.summary,
        inc.slot_id,
        ts(inc.since),
        inc.streak,
        ts(inc.updated_at),
        ts(inc.reminded_at),
        ts(inc.acknowledged_at),
        inc.acknowledged_by,
        "\n".join(inc.told) if inc.told is not None else None,
    )


def incident_from_row(row: tuple[Any, ...]) -> Incident:
    (
        id_,
        task,
        kind,
        opened_at,
        closed_at,
        escalated,
        count,
        failed_runs,
        retries,
        first_ec,
        last_ec,
        summary,
        slot_id,
        since,
        streak,
        updated_at,
        reminded_at,
        acknowledged_at,
        acknowledged_by,
        told,
    ) = row
    try:
        return Incident(
            id=int(id_),
            task=task,
            kind=IncidentKind(kind),
            opened_at=dt_req(opened_at),
            closed_at=dt(closed_at),
            escalated=bool(escalated),
            count=int(count),
            failed_runs=int(failed_runs),
            retries=int(retries),
            first_error_class=ErrorClass(first_ec) if first_ec else None,
            last_error_class=ErrorClass(last_ec) if last_ec else None,
            summary=summary or "",
            slot_id=int(slot_id) if slot_id is not None else None,
            since=dt(since),
            streak=int(streak),
            updated_at=dt(updated_at),
            reminded_at=dt(reminded_at),
            acknowledged_at=dt(acknowledged_at),
            acknowledged_by=acknowledged_by,
            told=None if told is None else tuple(told.split("\n")) if told else (),
        )
    except _BAD_VALUE as exc:
        raise unreadable_row("incident", id_, exc) from None


def outbox_from_row(row: tuple[Any, ...]) -> OutboxItem:
    id_, key, url, message, created_at, attempts, next_attempt_at, last_error = row
    try:
        data = json.loads(message)
        return OutboxItem(
            id=int(id_),
            channel_key=key,
            channel_url=url,
            message=Message(**data),
            created_at=dt_req(created_at),
            attempts=int(attempts),
            next_attempt_at=dt(next_attempt_at),
            last_error=last_error,
        )
    except _BAD_VALUE as exc:
        raise unreadable_row("notification", id_, exc) from None


def delivery_from_row(row: tuple[Any, ...]) -> Delivery:
    (
        id_,
        slot_id,
        task,
        target,
        key,
        output_path,
        status,
        attempts,
        next_attempt_at,
        last_error,
        created_at,
        updated_at,
    ) = row
    try:
        return Delivery(
            id=int(id_),
            slot_id=int(slot_id),
            task=task,
            target=target,
            target_key=key,
            output_path=output_path,
            status=DeliveryStatus(status),
            attempts=int(attempts),
            next_attempt_at=dt(next_attempt_at),
            last_error=last_error,
            created_at=dt(created_at),
            updated_at=dt(updated_at),
        )
    except _BAD_VALUE as exc:
        raise unreadable_row("delivery", id_, exc) from None


T = TypeVar("T")


def chunks(items: Sequence[T], size: int = 500) -> list[list[T]]:
    """IN lists and VALUES lists of bounded length (SQLite caps the parameters of one
    statement)."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def node_from_row(row: tuple[Any, ...]) -> NodeInfo:
    node_id, host, pid, home, started_at, heartbeat_at, stopped_at, config_note = row
    try:
        return NodeInfo(
            node_id=node_id,
            host=host,
            pid=int(pid),
            home=home,
            started_at=dt_req(started_at),
            heartbeat_at=dt_req(heartbeat_at),
            stopped_at=dt(stopped_at),
            config_note=config_note,
        )
    except _BAD_VALUE as exc:
        raise unreadable_row("node", node_id, exc) from None
