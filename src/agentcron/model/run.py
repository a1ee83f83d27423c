"""Records that pass between the engine, the store and the notifier about runs.

They live here, below all three, so that imports point one way: the engine and
the store both speak in these terms, and neither imports the other's modules for
them. The :class:`Finished` record is what every listener of an ended run gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agentcron.model.enums import ErrorClass, SlotStatus
from agentcron.model.failure import Classification
from agentcron.model.records import Attempt, Slot
from agentcron.model.task import TaskSpec
from agentcron.quick_init import quick_init


@quick_init
@dataclass(frozen=True)
class NewSlot:
    """A slot the engine wants recorded: to run (``pending``) or already decided."""

    scheduled_for: datetime
    status: SlotStatus = SlotStatus.PENDING
    reason: str | None = None
    trigger: str = "schedule"


@quick_init
@dataclass(frozen=True)
class Claim:
    """A slot claimed for execution together with the attempt row just opened."""

    slot: Slot
    attempt: Attempt
    spec: TaskSpec


@quick_init
@dataclass(frozen=True)
class AttemptOutcome:
    """How an attempt ended and what becomes of its slot."""

    ok: bool
    slot_status: SlotStatus
    error_class: ErrorClass | None = None
    error: str | None = None
    explanation: str | None = None
    exit_code: int | None = None
    next_attempt_at: datetime | None = None
    output_path: str | None = None
    tokens: dict[str, int] = field(default_factory=dict)
    empty_output: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    deliver_to: tuple[tuple[str, str], ...] = ()  # (target URL, redacted key) on success
    reason: str | None = None  # for a slot that ends skipped (precheck said no)
    # when the action ended, when known better than when the run saw it (see
    # ``ActionResult.ended_at``): the attempt's recorded end
    ended_at: datetime | None = None


@dataclass(frozen=True)
class Fires:
    """What the engine decided for one due task (see ``SlotStore.materialize_and_start``)."""

    spec: TaskSpec
    expected_next_fire_at: datetime | None
    new_next_fire_at: datetime | None
    slots: Sequence[NewSlot]


@dataclass(frozen=True)
class StartRoom:
    """Who starts fresh slots, under what lease, and how many at most."""

    owner: str
    lease_until: datetime
    room: int


DueHead = tuple[str, datetime | None, datetime]  # a due task's name, next fire, last change


@dataclass(frozen=True)
class NextTimes:
    """What the loop waits for, read in one statement per pass: the earliest fire of
    a task that is not paused, and the earliest time of a waiting slot still to come."""

    fire: datetime | None
    retry: datetime | None

    @property
    def wakeup(self) -> datetime | None:
        """The earlier of the two: what the loop sleeps until."""
        return min((t for t in (self.fire, self.retry) if t is not None), default=None)


@quick_init
@dataclass(frozen=True)
class Finish:
    """One attempt's end, as handed to ``RunStore.finish_many``."""

    slot_id: int
    attempt_id: int
    owner: str
    outcome: AttemptOutcome
    now: datetime
    # The slot as the claim left it: with it the store builds the finished slot from
    # what it writes instead of reading the row back (only the lease owner changes a
    # running slot, so nothing else can have moved).
    claimed: Slot | None = None
    # Tokens the attempt spent, as (budget scope key, budget day, tokens): added to the
    # daily usage in the transaction that records the end, so a crash cannot record
    # the run and lose what it spent.
    spend: tuple[tuple[str, str, int], ...] = ()


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    host: str
    pid: int
    home: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None = None
    # the daemon's word on its config file when it is not simply running it as written
    # (a change rejected, sections waiting for a restart); None when it is
    config_note: str | None = None

    def alive(self, now: datetime, stale_after: timedelta) -> bool:
        """Running, as far as the database can tell: not stopped, heartbeat fresh."""
        return self.stopped_at is None and now - self.heartbeat_at <= stale_after


@quick_init
@dataclass(frozen=True)
class Finished:
    """What the engine learns when an attempt ends (also what listeners receive)."""

    slot: Slot
    spec: TaskSpec
    attempt: int
    outcome: AttemptOutcome
    classification: Classification | None
    details: str  # redacted tail of the output, for notifications
    started_at: datetime
    finished_at: datetime


@dataclass(frozen=True)
class ClockStepped:
    """The wall clock stepped back (see ``engine.clockstep``): by how much, when it was
    noticed, the tasks planned again: (task, the next fire it had, the new one), the
    slots that clock recorded for times still to come that never ran (removed), and
    the retries it had planned too late (brought back)."""

    by: timedelta
    at: datetime
    replanned: tuple[tuple[str, datetime, datetime], ...]
    removed: int = 0
    retries: int = 0
    # (task, the last of its fires that ran while the clock was ahead, its next run): a
    # fire already run is not run again, so these wait past fires of theirs that ran
    ran_ahead: tuple[tuple[str, datetime, datetime | None], ...] = ()
