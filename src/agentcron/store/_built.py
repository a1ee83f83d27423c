"""Records built from what a statement wrote, not read back.

A burst records, claims and finishes thousands of slots; reading each row back to
learn what the statement just wrote would double the work. These functions say, in
one place each, what a row holds after the write next to which they are used.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from agentcron.model import (
    Attempt,
    AttemptOutcome,
    Claim,
    NewSlot,
    Slot,
    SlotStatus,
    StartRoom,
    TaskSpec,
)
from agentcron.model.provider import waits_for_provider
from agentcron.store._rows import ts

Entry = tuple[str, datetime | None, datetime | None, Sequence[NewSlot], TaskSpec | None]


def fresh_slot(task: str, new: NewSlot, slot_id: int, now: datetime) -> Slot:
    """A slot as ``SQLStore._insert_slots`` wrote it."""
    first = min(new.scheduled_for, now) if new.status is SlotStatus.PENDING else None
    return Slot(
        id=slot_id,
        task=task,
        scheduled_for=new.scheduled_for,
        status=new.status,
        reason=new.reason,
        trigger=new.trigger,
        finished_at=now if new.status.is_final else None,
        next_attempt_at=first,
        created_at=now,
    )


def fresh_claim(
    spec: TaskSpec, new: NewSlot, slot_id: int, attempt_id: int, now: datetime, start: StartRoom
) -> Claim:
    """The claim of a slot recorded already running, as ``SQLStore.claim`` makes one."""
    slot = Slot(
        id=slot_id,
        task=spec.name,
        scheduled_for=new.scheduled_for,
        status=SlotStatus.RUNNING,
        reason=new.reason,
        attempts=1,
        started_at=now,
        trigger=new.trigger,
        lease_owner=start.owner,
        lease_expires_at=start.lease_until,
        created_at=now,
    )
    attempt = Attempt(id=attempt_id, slot_id=slot_id, number=1, started_at=now, node=start.owner)
    return Claim(slot=slot, attempt=attempt, spec=spec)


def as_claimed(slot: Slot, owner: str, lease_until: datetime, now: datetime) -> Slot:
    """``slot`` as a claim leaves it (the fields the claim's UPDATE sets)."""
    return Slot(
        id=slot.id,
        task=slot.task,
        scheduled_for=slot.scheduled_for,
        status=SlotStatus.RUNNING,
        reason=None if waits_for_provider(slot.reason) else slot.reason,
        attempts=slot.attempts + 1,
        error_class=slot.error_class,
        error=slot.error,
        started_at=slot.started_at or now,
        finished_at=slot.finished_at,
        next_attempt_at=None,
        delivery_status=slot.delivery_status,
        output_path=slot.output_path,
        trigger=slot.trigger,
        lease_owner=owner,
        lease_expires_at=lease_until,
        created_at=slot.created_at,
    )


def attempt_end(outcome: AttemptOutcome, now: datetime) -> tuple[Any, ...]:
    """The values an attempt row ends with (all but its id)."""
    extra = (
        json.dumps({**outcome.extra, "empty_output": outcome.empty_output})
        if outcome.extra
        else PLAIN_EXTRA[outcome.empty_output]
    )
    return (
        ts(now),
        "succeeded" if outcome.ok else "failed",
        outcome.error_class.value if outcome.error_class else None,
        outcome.error,
        outcome.explanation,
        outcome.exit_code,
        outcome.output_path,
        json.dumps(outcome.tokens) if outcome.tokens else None,
        extra,
    )


PLAIN_EXTRA = {flag: json.dumps({"empty_output": flag}) for flag in (False, True)}


def as_finished(slot: Slot, outcome: AttemptOutcome, now: datetime) -> Slot:
    """``slot`` (as claimed) after the finishing UPDATE of ``SQLStore._finish_slots``."""
    return Slot(
        id=slot.id,
        task=slot.task,
        scheduled_for=slot.scheduled_for,
        status=outcome.slot_status,
        reason=outcome.reason if outcome.reason is not None else slot.reason,
        attempts=slot.attempts,
        error_class=outcome.error_class,
        error=outcome.error,
        started_at=slot.started_at,
        finished_at=now if outcome.slot_status.is_final else None,
        next_attempt_at=outcome.next_attempt_at,
        delivery_status=slot.delivery_status,
        output_path=outcome.output_path if outcome.output_path is not None else slot.output_path,
        trigger=slot.trigger,
        lease_owner=None,
        lease_expires_at=None,
        created_at=slot.created_at,
    )
