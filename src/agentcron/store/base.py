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

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from agentcron.model import (
    Attempt,
    AttemptOutcome,
    ChannelHealth,
    Claim,
    Delivery,
    DeliveryStatus,
    DueHead,
    Finish,
    Fires,
    Incident,
    Message,
    NewSlot,
    NextTimes,
    NodeInfo,
    OutboxItem,
    Slot,
    SlotStatus,
    StartRoom,
    TaskRecord,
    TaskSource,
    TaskSpec,
)
from agentcron.store._api_sql import ApiStore
from agentcron.store._budget_sql import BudgetStore
from agentcron.store._provider_sql import ProviderStore

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from agentcron.store._prune_sql import KeepRule, PrunedRecords, SlotBatch
    from agentcron.store.changes import ChangeListener


class StoreLifecycle(Protocol):
    """How a store is opened for work and closed."""

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...

    def describe(self) -> str:
        """Where the data lives, with credentials removed (for `doctor`)."""
        ...

    def start_background_work(self) -> None:
        """A long-lived owner (the daemon) is here: the store may move its own upkeep
        off the caller's thread from now on (SQLite: WAL checkpoints). ``close`` ends it.
        Called again after :meth:`background_fault` reported one, it starts it afresh."""
        ...

    def background_fault(self) -> str | None:
        """Why the store's own upkeep stopped (it then falls back to doing it on the
        caller's writes), or None while it works."""
        ...

    def file_fault(self) -> str | None:
        """What became of the database file since it was opened, when it is no longer
        at its path (moved, deleted, replaced), or None (always None on a server)."""
        ...

    def write_blocked(self, wait: float) -> bool:
        """Whether another process holds the database locked for writing, so that a
        write could not start within ``wait`` seconds (asked before a change made from
        an interface, which would otherwise wait out the busy timeout). Always False
        on a server, which locks rows, and when the look itself fails."""
        ...


class ChangeStore(Protocol):
    """Changes announced to the daemons of a store (see :mod:`agentcron.store.changes`)."""

    def announce_change(self) -> None:
        """Tell this store's daemons to look now: best effort, never raises, never
        waits for a daemon (their beat looks anyway)."""
        ...

    def change_listener(self) -> ChangeListener | None:
        """A daemon's ear for what others announce (None: nothing to listen on)."""
        ...


class TaskStore(Protocol):
    """Tasks and when they are next due: what the config and the API write, what the
    loop reads to know what is due and how long to sleep."""

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

    def unplanned_tasks(self) -> tuple[list[TaskRecord], list[str]]:
        """Unpaused tasks with no ``next_fire_at`` (a one-shot whose time has passed, or
        a row changed outside agentcron; indexed, read at the daemon's start), and the
        names of those among them whose row cannot be read."""
        ...

    def plan_again(self, name: str, next_fire_at: datetime) -> bool:
        """Give an unpaused task that has none its ``next_fire_at``; False when it has one
        already or is paused or gone."""
        ...

    def next_times(self, after: datetime | None = None) -> NextTimes:
        """The earliest ``next_fire_at`` of the tasks that are not paused, and the
        earliest ``next_attempt_at`` of a waiting slot, in one read (the loop asks once
        per pass). With ``after``, waiting slots whose time came by then are left out:
        the engine has just offered them to a claim, so they wait for room, not time."""
        ...


class SlotStore(Protocol):
    """Slots, the durable record of every fire, and their attempts."""

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

    def add_slot(self, task: str, slot: NewSlot, now: datetime) -> Slot | None:
        """Insert one slot (manual trigger, retries of history); None if it exists."""
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

    def get_slot(self, slot_id: int) -> Slot | None: ...

    def slot_after(self, slot_id: int) -> bool:
        """Whether a slot with a greater id exists (ids are never reused: a missing id
        below one was a run, deleted since)."""
        ...

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

    def had_output(self, task: str) -> bool:
        """Whether a success of the task has ever produced output (the empty-output
        detector's default watches only such tasks): one row, not a walk of its history."""
        ...

    def tasks_with_output(self, tasks: Sequence[str]) -> set[str]:
        """:meth:`had_output` for many tasks at once."""
        ...

    def waiting_slots(self, since: datetime, limit: int) -> list[Slot]:
        """Slots that could have started at ``since`` or earlier and have not (pending or
        retrying, due by then), longest waiting first: the starvation check's read,
        through the claim's own index."""
        ...

    def slot_before(self, task: str, scheduled_for: datetime) -> Slot | None:
        """The task's slot due just before ``scheduled_for``, whatever its status."""
        ...

    def count_slots(self, task: str, statuses: Sequence[SlotStatus], since: datetime) -> int:
        """How many of the task's slots due at or after ``since`` have one of
        ``statuses`` (the numbers in messages are read from the record)."""
        ...


class RunStore(Protocol):
    """Runs and their leases: claiming, renewing, finishing, and taking over the
    runs of a worker that was lost."""

    # Whether the last claim met slots whose time had come (it may have left some
    # waiting: a task that runs one at a time, no room left). While none waits, a
    # run that ends for good frees nothing a pass of the loop would start.
    claim_saw_waiting: bool

    def claim(self, owner: str, now: datetime, lease_until: datetime, limit: int) -> list[Claim]:
        """Claim up to ``limit`` runnable slots: ``pending``, or ``retrying`` whose
        ``next_attempt_at`` has come. A task whose overlap is not ``allow`` gets at most one
        running slot. Opens an attempt row for each and sets the lease."""
        ...

    def restamp_started(
        self, owner: str, claims: Sequence[tuple[int, int]], at: datetime, lease_until: datetime
    ) -> None:
        """Say that the runs of ``claims`` ((slot id, attempt id) that ``owner`` holds)
        started at ``at``, their leases from then: the transaction that claimed them
        waited (a locked table) and wrote the time its pass began."""
        ...

    def renew_leases(
        self, owner: str, slot_ids: Collection[int], now: datetime, lease_until: datetime
    ) -> set[int]:
        """Extend the leases of ``slot_ids``, the runs ``owner`` holds right now, and
        nothing else: a slot whose run the engine no longer holds must lapse. Returns
        the ids renewed; a held slot missing from it is no longer ``owner``'s."""
        ...

    def ask_stop(self, slot_id: int, reason: str) -> bool:
        """Ask the node that runs ``slot_id`` to stop it, for ``reason`` (a run held by
        another node cannot be stopped from here). False when the slot is not running
        (it ended meanwhile) or was asked already."""
        ...

    def stops_asked(self, owner: str) -> dict[int, str]:
        """The running slots of ``owner`` that another node asked it to stop, with why."""
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

    def cancel_waiting_of_paused(self, now: datetime) -> int:
        """Cancel the waiting slots of paused tasks ("task paused"), as pausing does: a
        run in flight when its task was paused may end waiting for a retry, which a
        paused task never gets. Returns how many."""
        ...

    def undo_fires_ahead(self, now: datetime, by: timedelta) -> tuple[int, int]:
        """After the wall clock stepped back by ``by``: remove the slots recorded for
        times after ``now`` that never ran (a clock ahead recorded them; their fires
        are still to come), and bring retries waiting past ``now`` back by ``by``, not
        earlier than ``now``. Returns (slots removed, retries moved)."""
        ...

    def ran_ahead(self, now: datetime) -> dict[str, set[datetime]]:
        """Each task's slots for times after ``now``: what a clock that ran ahead
        recorded and ran (once :meth:`undo_fires_ahead` removed those that never ran)."""
        ...

    def correct_lost_end(
        self, slot_id: int, attempt: int, outcome: AttemptOutcome, now: datetime
    ) -> Slot | None:
        """Record the real end of ``attempt``, which another node recorded
        ``worker_lost`` (its daemon was dead past its lease) while the command had in
        fact finished: only if the slot still waits for the retry that followed and no
        newer attempt started. Returns the slot as it now stands, or None."""
        ...

    def record_unwatched_end(self, slot: Slot, outcome: AttemptOutcome, now: datetime) -> bool:
        """Close the running attempt of a lapsed slot with the outcome its command
        reached while no daemon watched it (its launcher recorded the end), and set the
        slot's next state; deliveries of a success are created as a finish creates
        them. Compare-and-set on the lease owner and expiry, as :meth:`record_lost`."""
        ...


class NodeStore(Protocol):
    """The daemons (nodes) sharing this database, and small daemon state."""

    def register_node(self, node: NodeInfo) -> None: ...

    def heartbeat(self, node_id: str, now: datetime) -> bool:
        """Refresh the node's heartbeat; False when it has no row (it must register)."""
        ...

    def stop_node(self, node_id: str, now: datetime) -> None:
        """Mark the node stopped (its config note goes with it)."""
        ...

    def set_config_note(self, node_id: str, note: str | None) -> None:
        """Keep what the daemon says of its config file (None: running it as written)."""
        ...

    def nodes(self) -> list[NodeInfo]: ...

    def release_claims(self, owners: Sequence[str], now: datetime) -> int:
        """Make the claims of ``owners`` (nodes known dead) on unsent messages and
        unsettled deliveries lapse now; returns how many. Taken over, they count as
        possibly sent twice, as any lapsed claim does."""
        ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def swap_meta(self, key: str, expected: str | None, value: str) -> bool:
        """Set ``key`` to ``value`` only while it still holds ``expected`` (None: no
        row); False when another writer changed it first."""
        ...


class IncidentStore(Protocol):
    """Incidents of tasks, saved together with the messages they cause."""

    def open_incidents(self, task: str) -> dict[str, Incident]:
        """The task's open incidents by kind (at most one per kind)."""
        ...

    def tasks_with_open_incidents(self, tasks: Sequence[str]) -> set[str]:
        """Which of ``tasks`` have an open incident (one read for a batch of runs)."""
        ...

    def open_incidents_of_kind(self, tasks: Sequence[str], kind: str) -> dict[str, Incident]:
        """The open incidents of ``kind`` among ``tasks``, by task: read from the
        database each time (the open-incident index), so a caller that paused or was
        not looking meanwhile sees what other nodes opened or closed."""
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

    def removed_untold(self, limit: int = 100) -> list[Incident]:
        """Incidents closed because their task was removed, that the owner had been
        told of and has not been told the end of yet (oldest first)."""
        ...

    def tell_removed(
        self,
        incident_ids: Sequence[int],
        messages: Sequence[tuple[str, str, Message]],
        now: datetime,
    ) -> bool:
        """Mark those incidents' removal told and enqueue its messages, in one
        transaction; False (nothing queued) when none was left to mark: another
        daemon told it (a message is queued once, however many look)."""
        ...


class OutboxStore(Protocol):
    """The durable outbox of messages to the owner's channels (see
    :mod:`agentcron.notify.sender`; :class:`agentcron.notify.memory.MemoryOutbox` is
    the reference behaviour in memory)."""

    def enqueue(self, channel_key: str, channel_url: str, message: Message, now: datetime) -> int:
        """Store a message to send as soon as possible; return its id.

        Ids increase with every call, so within a channel they give the order."""
        ...

    def due(self, now: datetime, limit: int) -> list[OutboxItem]:
        """Head-of-line items whose ``next_attempt_at`` is absent or ``<= now``.

        At most one item per channel: the oldest unsent, not permanently failed
        one (if that one is not due yet, the channel has nothing due). Oldest
        first, at most ``limit``. A look only: claims are ignored and nothing is
        taken; senders use :meth:`claim_outbox`."""
        ...

    def claim_outbox(
        self, owner: str, now: datetime, claim_until: datetime, limit: int
    ) -> list[OutboxItem]:
        """Take what :meth:`due` would list, minus the items another live claim holds,
        for ``owner`` until ``claim_until``: atomically, so two senders never get the
        same item while a claim stands. A channel whose head is claimed has nothing
        to give (its next message waits for the head: order is kept across senders).
        An item whose previous claim lapsed without a mark is taken over and its
        ``resent`` (and its channel's) goes up by one."""
        ...

    def claim_outbox_behind(
        self,
        head: OutboxItem,
        owner: str,
        now: datetime,
        claim_until: datetime,
        limit: int,
        at_least: int,
    ) -> list[OutboxItem]:
        """The messages waiting behind ``head`` (which ``owner`` claimed) on its channel,
        oldest first, taken for ``owner`` as :meth:`claim_outbox` takes a head, to go
        out with it in one post (:mod:`agentcron.notify.digest`). At most ``limit``, and
        only a run without gaps: the first one another live claim holds ends it, so the
        channel's order is kept. Nothing is taken (and [] returned) when fewer than
        ``at_least`` are there."""
        ...

    def retire_channels(
        self, keep: Sequence[str], move_to: Sequence[tuple[str, str]], now: datetime
    ) -> int:
        """Forget the channels not in ``keep`` (keys): their unsent messages are queued
        on the ``move_to`` channels (key, url) that lack them and given up on the old
        one. Returns how many messages were moved."""
        ...

    def unclaim_outbox(self, item_ids: Sequence[int], owner: str) -> int:
        """Hand back ``owner``'s claims of these messages as if never taken (nothing was
        attempted): unlike a lapsed claim, the next sender does not count them as
        possibly sent twice. Returns how many."""
        ...

    def count_resent(self, item_ids: Sequence[int]) -> None:
        """Count these messages as possibly sent twice, in their own and their channel's
        ``resent``: each went out again after a send of it that may have arrived had no
        answer (a stop cut it short, or the service did not answer in time)."""
        ...

    def mark_sent(self, item_id: int, now: datetime, owner: str | None = None) -> bool:
        """The item was delivered: it leaves the queue and its channel is healthy.

        With ``owner``, only if the item is still claimed by ``owner`` (a sender
        whose claim was taken over changes nothing); without, unconditionally (for
        callers that do not claim). True when something was written."""
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
        """A send failed: count the attempt and record ``error`` on the item and its
        channel (``failing_since`` keeps its first value). A passing failure is due
        again at ``next_attempt_at``; a permanent one is never handed out again but
        stays counted in the channel's ``undeliverable``. The claim is released (a
        retry is not a resend). ``owner`` as for :meth:`mark_sent`."""
        ...

    def channel_health(self) -> list[ChannelHealth]:
        """Every channel that has had a message, by key."""
        ...


class DeliveryStore(Protocol):
    """Deliveries of kept outputs to ``deliver:`` targets."""

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

    def deliveries_held(self) -> tuple[int, int, datetime | None]:
        """Outputs waiting to be delivered: all of them, those after a failed attempt,
        and when the oldest was recorded (None when none waits)."""
        ...

    def outputs_to_keep(self) -> set[str]:
        """Kept output files that ``keep_outputs`` must leave, whatever their age: those
        still waiting to be delivered (all of them, not a newest page), and each task's
        newest success's (what ``context: previous`` hands its next run)."""
        ...

    def redeliver(
        self, slot_id: int, now: datetime, incidents: Sequence[Incident] = ()
    ) -> list[Delivery]:
        """Make the slot's deliveries that failed for good pending again, from their
        first attempt, due ``now``; returns them (none: nothing had failed, and nothing
        is written). ``incidents`` are written in the same transaction (the task's
        delivery incident learning of it): queued without them, a redelivery that gave
        up again would go untold."""
        ...

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


class RetentionStore(Protocol):
    """Pruning of history past ``keep_history`` (driven by :mod:`agentcron.retention`)."""

    def keep_settings(self) -> dict[str, tuple[timedelta | None, int]]:
        """Each task's ``keep_history`` and ``empty_output_streak`` as its spec says
        (a key the stored spec lacks: the default), without parsing every spec."""
        ...

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
        audit_before: datetime | None = None,
        incidents_kept: Mapping[str, datetime | None] | None = None,
        dry_run: bool = False,
        batch: int = 500,
    ) -> PrunedRecords:
        """Remove sent and given-up outbox rows, closed incidents, stopped or silent
        node rows and audit entries older than the given times, in batches (closed
        incidents of a task ``incidents_kept`` names: older than its time, None keeping
        them all); queued messages, open incidents and nodes holding running slots stay."""
        ...

    def prune_incidents(
        self,
        default_before: datetime | None,
        kept: Mapping[str, datetime | None],
        *,
        dry_run: bool = False,
        batch: int = 500,
    ) -> int:
        """Remove closed incidents past their task's time in ``kept`` (None: keep all),
        or ``default_before`` for a task it does not name; how many (would) go."""
        ...


class Store(
    StoreLifecycle,
    ChangeStore,
    TaskStore,
    SlotStore,
    RunStore,
    NodeStore,
    IncidentStore,
    OutboxStore,
    DeliveryStore,
    RetentionStore,
    ApiStore,
    ProviderStore,
    BudgetStore,
    Protocol,
):
    """All of durable state: what the SQLite and PostgreSQL stores implement. A part
    that needs only some of it takes the narrower protocol (the outbox sender an
    :class:`OutboxStore`, for instance), so it can be tested against that alone."""
