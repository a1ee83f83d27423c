"""The one interface to durable state.

Every other package reaches the database through :class:`Store`; there is no SQL
outside ``agentcron.store``. Implementations: SQLite (embedded default) and
PostgreSQL (several nodes). Their shared contract:

* A slot ``(task, scheduled_for)`` is inserted at most once (unique key, idempotent
  insert), so two nodes materialising the same fire cannot create two slots.
* A slot is executed only by the owner of its lease; every write that finishes an
  attempt is a compare-and-set on ``(id, lease_owner, status='running')`` and
  reports whether it won. A slot taken over after a lapsed lease cannot be
  finished by the worker that lost it.
* Times go in and come out as aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from agentcron.model import (
    Attempt,
    Delivery,
    DeliveryStatus,
    ErrorClass,
    Slot,
    SlotStatus,
    TaskRecord,
    TaskSource,
    TaskSpec,
)
from agentcron.notify.incidents import Incident
from agentcron.notify.messages import Message
from agentcron.notify.outbox import ChannelHealth, OutboxItem

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from agentcron.store._prune_sql import KeepRule, PrunedRecords, SlotBatch


@dataclass(frozen=True)
class NewSlot:
    """A slot the engine wants recorded: to run (``pending``) or already decided."""

    scheduled_for: datetime
    status: SlotStatus = SlotStatus.PENDING
    reason: str | None = None
    trigger: str = "schedule"


@dataclass(frozen=True)
class Claim:
    """A slot claimed for execution together with the attempt row just opened."""

    slot: Slot
    attempt: Attempt
    spec: TaskSpec


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


@dataclass(frozen=True)
class Fires:
    """What the engine decided for one due task, for :meth:`Store.materialize_and_start`."""

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
class Finish:
    """One attempt's end, as handed to :meth:`Store.finish_many`."""

    slot_id: int
    attempt_id: int
    owner: str
    outcome: AttemptOutcome
    now: datetime
    # The slot as the claim left it: with it the store builds the finished slot from
    # what it writes instead of reading the row back (only the lease owner changes a
    # running slot, so nothing else can have moved).
    claimed: Slot | None = None


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    host: str
    pid: int
    home: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None = None


class Store(Protocol):
    # ---- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        """Release connections. Idempotent."""
        ...

    def describe(self) -> str:
        """Where the data lives, with credentials removed (for `doctor`)."""
        ...

    def start_background_work(self) -> None:
        """A long-lived owner (the daemon) is here: the store may move its own upkeep
        off the caller's thread from now on (SQLite: WAL checkpoints). ``close`` ends it."""
        ...

    # ---- tasks -----------------------------------------------------------------
    def upsert_task(
        self, spec: TaskSpec, source: TaskSource, now: datetime, next_fire_at: datetime | None
    ) -> TaskRecord:
        """Create or replace a task. ``next_fire_at`` is only written when the schedule
        part of the spec changed (or the task is new), so a reload does not move the grid."""
        ...

    def upsert_many(
        self,
        items: Sequence[tuple[TaskSpec, datetime | None]],
        source: TaskSource,
        now: datetime,
    ) -> None:
        """:meth:`upsert_task` for many tasks in one transaction."""
        ...

    def sync_file_tasks(
        self, specs: Sequence[TaskSpec], now: datetime, next_fire: dict[str, datetime | None]
    ) -> tuple[list[str], list[str], list[str]]:
        """Make the ``source=file`` tasks equal to ``specs`` in one transaction.

        Returns (added, changed, removed) task names. Tasks from other sources are
        untouched; a file task whose name an API task already uses is replaced."""
        ...

    def get_task(self, name: str) -> TaskRecord | None: ...

    def list_tasks(self) -> list[TaskRecord]: ...

    def remove_task(self, name: str, now: datetime) -> bool:
        """Delete the task; its slots stay as history, its waiting slots are cancelled.
        False when it did not exist."""
        ...

    def set_paused(
        self, name: str, paused: bool, now: datetime, next_fire_at: datetime | None
    ) -> bool:
        """Pause or resume: the ``paused`` state only; the stored spec keeps what the file
        or API said. Pausing cancels the task's waiting slots. False if no such task."""
        ...

    def due_tasks(self, now: datetime, limit: int) -> list[TaskRecord]:
        """Unpaused tasks whose ``next_fire_at <= now``, earliest first. Indexed."""
        ...

    def due_heads(self, now: datetime, limit: int) -> list[DueHead]:
        """``(name, next_fire_at, updated_at)`` of what :meth:`due_tasks` would return,
        without the specs: enough to tell whether records read before still hold."""
        ...

    def next_wakeup(self, after: datetime | None = None) -> datetime | None:
        """The earliest ``next_fire_at`` / ``next_attempt_at`` of anything, to sleep until.
        With ``after``, waiting slots whose time came by then are left out: the engine
        has just offered them to a claim, so they wait for room, not for time."""
        ...

    # ---- slots -----------------------------------------------------------------
    def materialize(
        self,
        task: str,
        expected_next_fire_at: datetime | None,
        new_next_fire_at: datetime | None,
        slots: Sequence[NewSlot],
        now: datetime,
    ) -> list[Slot] | None:
        """Advance the task's ``next_fire_at`` (compare-and-set on the expected value) and
        insert the slots, in one transaction. Returns the slots actually inserted, or None
        when another node advanced the task first (nothing is written then)."""
        ...

    def materialize_and_start(
        self,
        items: Sequence[Fires],
        now: datetime,
        start: StartRoom,
    ) -> tuple[list[list[Slot] | None], list[Claim]]:
        """:meth:`materialize` for many tasks in one transaction, starting (as
        :meth:`claim` would) up to ``start.room`` of the pending slots it inserts, in
        order: a fresh slot due now goes from nothing to running in one write instead of
        two, with the same rule as :meth:`claim` of one running slot for a task whose
        overlap is not ``allow`` (``room`` 0 starts nothing). Returns one result per item
        as :meth:`materialize` would (started slots listed as inserted, running) and the
        claims of the started slots."""
        ...

    def next_fire(self) -> datetime | None:
        """The earliest ``next_fire_at`` of the tasks that are not paused."""
        ...

    def add_slot(self, task: str, slot: NewSlot, now: datetime) -> Slot | None:
        """Insert one slot (manual trigger, retries of history); None if it exists."""
        ...

    def claim(self, owner: str, now: datetime, lease_until: datetime, limit: int) -> list[Claim]:
        """Claim up to ``limit`` runnable slots: ``pending``, or ``retrying`` whose
        ``next_attempt_at`` has come. A task whose overlap is not ``allow`` gets at most one
        running slot. Opens an attempt row for each and sets the lease."""
        ...

    def renew_leases(
        self, owner: str, slot_ids: Collection[int], now: datetime, lease_until: datetime
    ) -> set[int]:
        """Extend the leases of ``slot_ids``, the runs ``owner`` holds right now, and
        nothing else: a slot whose run the engine no longer holds must lapse. Returns
        the ids renewed; a held slot missing from it is no longer ``owner``'s."""
        ...

    def note_attempt_process(self, attempt_id: int, info: dict[str, Any]) -> None:
        """Remember what a running attempt started (host, process group, its start time),
        so whoever takes the slot over after a crash can stop it."""
        ...

    def finish_attempt(
        self, slot_id: int, attempt_id: int, owner: str, outcome: AttemptOutcome, now: datetime
    ) -> bool:
        """Record the end of an attempt and the slot's new state (compare-and-set on the
        lease owner and on the attempt still being the slot's running one). False when
        the slot is no longer ours (taken over as lost, perhaps taken again since)."""
        ...

    def finish_many(self, items: Sequence[Finish]) -> list[Slot | None]:
        """:meth:`finish_attempt` for several attempts in one transaction (a burst's
        runs end together; one commit each would cost more than the runs). Returns, in
        order, the slot as it now stands, or None where the slot was no longer ours."""
        ...

    def set_slot_status(
        self,
        slot_id: int,
        status: SlotStatus,
        reason: str | None,
        now: datetime,
        only_from: Sequence[SlotStatus] = (),
    ) -> bool:
        """Force a slot's status (skip, cancel, supersede, expire). With ``only_from`` the
        change happens only if the current status is one of those."""
        ...

    def running_slots(self) -> list[Slot]:
        """Every slot being executed right now, on any node."""
        ...

    def lapsed(self, now: datetime, dead_owners: Sequence[str] = ()) -> list[Slot]:
        """Running slots whose lease expired before ``now`` or whose owner is known dead."""
        ...

    def record_lost(self, slot: Slot, outcome: AttemptOutcome, now: datetime) -> bool:
        """Close the running attempt of a lapsed slot as lost (compare-and-set on its
        lease owner and expiry) and set the slot's next state."""
        ...

    def get_slot(self, slot_id: int) -> Slot | None: ...

    def slots(
        self, task: str | None = None, limit: int = 50, statuses: Sequence[SlotStatus] = ()
    ) -> list[Slot]:
        """Newest first by ``scheduled_for``."""
        ...

    def active_slots(self, task: str | None = None) -> list[Slot]:
        """Slots that are pending, running or retrying."""
        ...

    def active_slots_of(self, tasks: Collection[str]) -> dict[str, list[Slot]]:
        """The active slots of ``tasks`` only, by task, oldest first: what the overlap
        rules of a tick's due tasks look at. A burst has thousands of runs of other
        tasks under way; making records of all of them every tick would cost more than
        the tick's own work."""
        ...

    def attempts(self, slot_id: int) -> list[Attempt]: ...

    def last_slots(self, task: str, n: int) -> list[Slot]:
        """The task's ``n`` newest final slots (for streak detectors and `list`)."""
        ...

    def last_statuses(self, tasks: Sequence[str], n: int) -> dict[str, list[SlotStatus]]:
        """For each of ``tasks``, the statuses of its ``n`` newest final slots, newest
        first (one read for a batch of finished runs; tasks with none are left out)."""
        ...

    def last_success(self, task: str) -> Slot | None: ...

    def record_unwatched_end(self, slot: Slot, outcome: AttemptOutcome, now: datetime) -> bool:
        """Close the running attempt of a lapsed slot with the outcome its command
        reached while no daemon watched it (its launcher recorded the end), and set the
        slot's next state; deliveries of a success are created as a finish creates
        them. Compare-and-set on the lease owner and expiry, as :meth:`record_lost`."""
        ...

    # ---- nodes -----------------------------------------------------------------
    def register_node(self, node: NodeInfo) -> None: ...

    def heartbeat(self, node_id: str, now: datetime) -> None: ...

    def stop_node(self, node_id: str, now: datetime) -> None: ...

    def nodes(self) -> list[NodeInfo]: ...

    # ---- incidents -----------------------------------------------------------------
    def open_incidents(self, task: str) -> dict[str, Incident]:
        """The task's open incidents by kind (at most one per kind)."""
        ...

    def tasks_with_open_incidents(self, tasks: Sequence[str]) -> set[str]:
        """Which of ``tasks`` have an open incident (one read for a batch of runs)."""
        ...

    def incidents(
        self, task: str | None = None, open_only: bool = False, limit: int = 50
    ) -> list[Incident]:
        """Newest first."""
        ...

    def save_incidents(
        self,
        changed: Sequence[Incident],
        messages: Sequence[tuple[str, str, Message]],
        now: datetime,
    ) -> list[Incident]:
        """Insert (id None) or update incidents and enqueue (channel key, url, message)
        triples, in one transaction. Returns the incidents with their ids."""
        ...

    # ---- outbox: see agentcron.notify.outbox.OutboxStore ------------------------------
    def enqueue(
        self, channel_key: str, channel_url: str, message: Message, now: datetime
    ) -> int: ...

    def due(self, now: datetime, limit: int) -> list[OutboxItem]: ...

    def claim_outbox(
        self, owner: str, now: datetime, claim_until: datetime, limit: int
    ) -> list[OutboxItem]:
        """Take due heads of line for ``owner`` until ``claim_until`` (atomically: one
        sender per message while the claim stands; a lapsed one is taken over and
        counted in ``resent``)."""
        ...

    def mark_sent(self, item_id: int, now: datetime, owner: str | None = None) -> bool:
        """With ``owner``: a compare-and-set on the claim. False when nothing was written."""
        ...

    def mark_failed(
        self,
        item_id: int,
        error: str,
        next_attempt_at: datetime | None,
        permanent: bool,
        now: datetime,
        owner: str | None = None,
    ) -> bool:
        """As :meth:`mark_sent`; releases the claim (a retry is not a resend)."""
        ...

    def channel_health(self) -> list[ChannelHealth]: ...

    # ---- deliveries ------------------------------------------------------------------
    def due_deliveries(self, now: datetime, limit: int) -> list[Delivery]:
        """Deliveries pending or retrying whose time has come, oldest first (a look,
        not a claim: what a delivery worker attempts comes from
        :meth:`claim_deliveries`)."""
        ...

    def claim_deliveries(
        self, owner: str, now: datetime, claim_until: datetime, limit: int
    ) -> list[Delivery]:
        """Take up to ``limit`` due deliveries, oldest first, for ``owner`` until
        ``claim_until`` (atomically: while the claim stands no other owner gets the
        row; a lapsed claim is taken over)."""
        ...

    def deliveries(self, slot_id: int | None = None, limit: int = 100) -> list[Delivery]: ...

    def update_delivery(
        self,
        delivery_id: int,
        status: DeliveryStatus,
        attempts: int,
        next_attempt_at: datetime | None,
        error: str | None,
        now: datetime,
        owner: str | None = None,
    ) -> bool:
        """Record a delivery attempt and release the row's claim; the slot's
        ``delivery_status`` follows its targets. With ``owner``: a compare-and-set on
        the claim, so a worker whose claim was taken over writes nothing. False when
        nothing was written."""
        ...

    # ---- key/value for small daemon state ---------------------------------------
    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    # ---- retention (agentcron.retention drives these) ------------------------------------
    def prune_slots(
        self,
        rules: Mapping[str, KeepRule],
        default: KeepRule,
        *,
        dry_run: bool = False,
        batch: int = 500,
    ) -> Iterator[SlotBatch]:
        """Remove final slots past their task's rule (``default`` for tasks not in
        ``rules``) with their attempts and deliveries, ``batch`` slots per transaction;
        each batch is committed before it is yielded with the output paths it freed.
        Never an active slot, one with a delivery still pending or retrying, one an
        open incident points to, a task's newest ``keep_last`` final slots or its newest
        success. ``dry_run`` counts the same batches and changes nothing."""
        ...

    def prune_records(
        self,
        outbox_before: datetime,
        incidents_before: datetime,
        stopped_nodes_before: datetime,
        silent_nodes_before: datetime,
        *,
        dry_run: bool = False,
        batch: int = 500,
    ) -> PrunedRecords:
        """Remove sent and given-up outbox rows, closed incidents and stopped or silent
        node rows older than the given times, in batches; queued messages, open
        incidents and nodes holding running slots stay."""
        ...
