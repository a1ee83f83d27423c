"""From what happened to what the owner is told.

The engine, the watchdog and the delivery worker report facts here; the
notifier turns them into events, advances the task's incidents with the pure
state machine, and writes the incident changes and the rendered messages to the
store in one transaction (the durable outbox). Sending is the
:class:`~agentcron.notify.sender.OutboxSender`'s job, on its own schedule, so
nothing here waits on a channel.

It is called from the scheduler loop and from the watchdog thread; one lock
keeps the read-modify-write of a task's incidents whole.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import takewhile
from typing import Protocol
from zoneinfo import ZoneInfo

from agentcron.clock import Clock
from agentcron.faultlog import FaultLog
from agentcron.home import hostname
from agentcron.model import (
    AttemptOutcome,
    ErrorClass,
    Finished,
    Incident,
    IncidentKind,
    Message,
    OverlapPolicy,
    Slot,
    SlotStatus,
    TaskSpec,
)
from agentcron.model.budget import BudgetNews
from agentcron.model.failure import DAEMON_STOPPED, PAUSED_WHILE_RUNNING
from agentcron.model.provider import ProviderNews
from agentcron.notify.channels import channel_key
from agentcron.notify.channels_down import channel_news
from agentcron.notify.events import (
    AttemptFailed,
    DeliveryFailed,
    EmptySuccessStreak,
    Event,
    Reminder,
    RunsMissed,
    RunStuck,
    RunSucceeded,
    SkipStreak,
    SkipStreakEnded,
    TaskStarved,
)
from agentcron.notify.flapping import Damped, damp, stopped_with_the_daemon
from agentcron.notify.incidents import (
    STUCK_HABIT,
    Notice,
    NoticeEvent,
    Transition,
    apply_event,
)
from agentcron.notify.messages import (
    render,
    render_budget,
    render_missed,
    render_provider,
    render_removed_delivery,
    render_removed_task,
)
from agentcron.notify.storage import HomeStorage
from agentcron.policies.budget import REASON_PREFIX as BUDGET_REASON
from agentcron.policies.overlap import REPLACED, passed_over
from agentcron.policies.provider import COOLING_CLASSES, provider_of
from agentcron.redact import secret_values_from_env
from agentcron.schedules.zones import zone_label
from agentcron.store.base import Store
from agentcron.store.errors import is_database_error

log = logging.getLogger("agentcron.notify")


class EngineHooks(Protocol):
    """The engine's listener lists the notifier registers with (see :meth:`attach`);
    a protocol so that notify does not import the engine."""

    batch_listeners: list[Callable[[Sequence[Finished]], None]]
    slot_listeners: list[Callable[[TaskSpec, Slot], None]]
    housekeeping: list[Callable[[datetime], None]]
    starved_listeners: list[Callable[[TaskSpec, Slot, timedelta, str], None]]
    provider_listeners: list[Callable[[ProviderNews], None]]


SKIP_STREAK = 3
ESCALATE_AT_LEAST = timedelta(hours=1)
REMIND_CHECK = timedelta(seconds=30)  # how often open incidents are looked at
REMIND_SCAN = 10_000
MISSED_SETTLE = timedelta(seconds=2)
_NEVER = datetime.min.replace(tzinfo=UTC)
MAX_HELD = 10_000  # ended runs kept for their notices while the database is away
FLAP_LOOKBACK = 50  # incidents read back for the flapping rule's earlier failures
MAX_TRIES = 10  # a held end's notice failing for a reason of its own (not the database)
PROVIDER_SETTLE = timedelta(seconds=1)  # refusals of one provider told together
PROVIDERS_LOOK = timedelta(minutes=1)  # between looks for provider incidents nobody waits on
_RAN = (SlotStatus.SUCCEEDED, SlotStatus.FAILED)  # a downtime's slots are recorded over a few ticks
SKIP_STREAK_SCAN = 1000  # how far back a running streak is counted
MISSED_LOOKBACK = 50  # slots not fired, looked past for the one before them
_NOT_FIRED = (SlotStatus.MISSED, SlotStatus.EXPIRED)
# incidents of a provider, a home or a node, not of a task (no reminders, no orphans)
NOT_A_TASKS = frozenset({IncidentKind.PROVIDER, IncidentKind.STORAGE, IncidentKind.NODE_LOST})
# the slots a skip streak is read from: what ran, runs or was passed over (not what waits)
_DONE_OR_RUNNING = tuple(
    s for s in SlotStatus if s not in (SlotStatus.PENDING, SlotStatus.RETRYING)
)


class Notifier:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        channels: Sequence[str] = (),
        default_zone: str | None = None,
        wake_sender: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.channels = list(channels)
        self.default_zone = default_zone
        self.wake_sender = wake_sender or (lambda: None)
        self._lock = threading.Lock()
        self._periods: dict[tuple[object, ...], timedelta] = {}
        self._last_remind: datetime | None = None
        self._missed: list[tuple[TaskSpec, Slot]] = []  # recorded, not yet reported
        self._provider_news: dict[str, list[ProviderNews]] = {}
        self._provider_news_at: datetime | None = None
        self._providers_looked_at: datetime | None = None  # for incidents nobody waits on
        self._removed_looked_at: datetime | None = None  # for removed tasks' incidents
        self._channels_looked_at: datetime | None = None  # for channels down or back
        self._had_output: set[str] = set()  # tasks seen succeeding with output
        self._output_looked_up: set[str] = set()  # tasks whose record was read for that
        self._missed_at: datetime | None = None
        # ends whose notices could not be worked out yet, with how often they were tried
        self._held: list[tuple[Finished, int]] = []
        self._held_names: set[str] = set()
        # while ends are held: per task of theirs, the newest end told since
        self._told_end: dict[str, datetime] = {}
        self._retry_faults = FaultLog(log, "telling the ends of runs held back")
        # whether another node runs now (the daemon's answer): a run stopped with this
        # daemon is retried there, not "when agentcron starts again"
        self.others_running: Callable[[], bool] = lambda: False
        self.storage = HomeStorage(store, f"home:{hostname()}", self.to_channels, self._lock)

    def attach(self, engine: EngineHooks) -> None:
        """Listen to everything the engine reports that the owner may have to hear."""
        engine.batch_listeners.append(self.on_finished_many)
        engine.slot_listeners.append(self.on_recorded_slot)
        engine.housekeeping.append(self.remind)
        engine.housekeeping.append(self.report_missed)
        engine.starved_listeners.append(self.on_starved)
        engine.provider_listeners.append(self.on_provider)
        engine.housekeeping.append(self.report_providers)
        engine.housekeeping.append(self.retry_held)
        engine.housekeeping.append(self.report_storage)

    def report_storage(self, now: datetime) -> None:
        """Housekeeping: tell the home's storage failing runs, or working again, once
        the news has settled (one incident for the home, see :mod:`.storage`)."""
        if self.storage.report(now):
            self.wake_sender()

    # ---- providers: one incident per provider, not one per task ------------------------
    def on_provider(self, news: ProviderNews) -> None:
        """Engine provider listener: gathered, told by :meth:`report_providers` once the
        news has settled, so that three tasks refused at once make one message."""
        with self._lock:
            pending = self._provider_news.setdefault(news.state.key, [])
            pending.append(news)
            self._provider_news_at = news.at

    def report_providers(self, now: datetime) -> None:
        """Tell the gathered provider news once it has settled. News that cannot be
        written is kept for the next report: a lost "answering again" would leave the
        provider's incident open for good."""
        self._end_providers_unused(now)
        self._tell_removed(now)
        self._tell_channels(now)
        with self._lock:
            if not self._provider_news or now - (self._provider_news_at or now) < PROVIDER_SETTLE:
                return
            gathered, self._provider_news = self._provider_news, {}
            try:
                changed: list[Incident] = []
                messages: list[tuple[str, str, Message]] = []
                for items in gathered.values():
                    c, m = self._provider_incident(items, now)
                    changed += c
                    messages += m
                if changed or messages:
                    self.store.save_incidents(changed, messages, now)
            except Exception:
                for key, items in gathered.items():  # the older news first, as it came
                    self._provider_news[key] = items + self._provider_news.get(key, [])
                raise
        if messages:
            self.wake_sender()

    def _end_providers_unused(self, now: datetime) -> None:
        """A provider's incident whose every waiting task was paused or removed since:
        no call will tell whether it answers, and it stayed open for good (`health`
        counted it, its last word "1 task waits until …"; outside-in probe). Ended
        without a message (the owner paused or removed them), looked for once a minute."""
        last = self._providers_looked_at
        if last is not None and timedelta(0) <= now - last < PROVIDERS_LOOK:
            return
        self._providers_looked_at = now
        with self._lock:
            ended = []
            for inc in self.store.incidents(open_only=True, limit=10_000):
                if inc.kind is not IncidentKind.PROVIDER:
                    continue
                names = [n for n in inc.summary.split(", ") if n]
                records = [self.store.get_task(n) for n in names]
                if names and all(rec is None or rec.paused for rec in records):
                    log.info("%s: no task waits for it any more; its incident ends", inc.task)
                    ended.append(replace(inc, closed_at=now, updated_at=now))
            if ended:
                self.store.save_incidents(ended, [], now)

    def _tell_removed(self, now: datetime) -> None:
        """Tell the end of the problems of tasks removed since the last look (the store
        closed them with the task: see migration 18), once a minute, with who removed
        the task when an interface did (the audit trail)."""
        last = self._removed_looked_at
        if last is not None and timedelta(0) <= now - last < PROVIDERS_LOOK:
            return
        self._removed_looked_at = now
        by_task: dict[str, list[Incident]] = {}
        for inc in self.store.removed_untold():
            by_task.setdefault(inc.task, []).append(inc)
        told = False
        for task, incidents in by_task.items():
            message = render_removed_task(
                task, incidents, self._removed_by(task, incidents), now, self._zone()
            )
            with self._lock:
                ids = [inc.id for inc in incidents if inc.id is not None]
                # to the top-level channels: the task's own went with it
                told |= self.store.tell_removed(ids, self.to_channels(message, []), now)
        if told:
            self.wake_sender()

    def _tell_channels(self, now: datetime) -> None:
        """A channel down for a while, or back, told through the others that work (see
        :mod:`.channels_down`), looked at once a minute."""
        last = self._channels_looked_at
        if last is not None and timedelta(0) <= now - last < PROVIDERS_LOOK:
            return
        self._channels_looked_at = now
        zone = self._zone()

        def local(when: datetime) -> str:
            at = when.astimezone(zone)
            return f"{at:%H:%M:%S} {zone_label(at, zone.key)}"  # an outage may be short

        with self._lock:
            channels = [(channel_key(url), url) for url in self.channels]
            messages = channel_news(self.store, channels, now, local)
            if messages:
                for message in {m.title: m for _k, _u, m in messages}.values():
                    log.warning("%s", message.body.splitlines()[0])
                self.store.save_incidents([], messages, now)
        if messages:
            self.wake_sender()

    def _removed_by(self, task: str, incidents: Sequence[Incident]) -> str:
        """``by NAME via mcp`` when an interface removed the task just before its
        problems closed (the audit trail), else from its file or program."""
        closed = min(inc.closed_at or inc.opened_at for inc in incidents)
        for entry in self.store.audit_entries(task=task, limit=5):
            if entry.action == "task.delete" and abs(entry.at - closed) <= timedelta(minutes=1):
                return f"by {entry.actor} via {entry.via}" if entry.actor else f"via {entry.via}"
        return "from its config file or program"

    def _provider_incident(
        self, items: list[ProviderNews], now: datetime
    ) -> tuple[list[Incident], list[tuple[str, str, Message]]]:
        last = items[-1]
        state, scope = last.state, f"provider:{last.state.name}"
        current = self.store.open_incidents(scope).get(IncidentKind.PROVIDER)
        tasks = sorted({n.task for n in items})
        if last.what == "answered":
            if current is None:
                return [], []
            # over when it answered, not when this report is written (a refusal of 15 s
            # was told as "answering again after 22s")
            closed = replace(current, closed_at=last.at, updated_at=now)
            known = set(current.summary.split(", ")) if current.summary else set()
            waited = sorted(known | set(tasks))
            message = render_provider(state, closed, waited, last.at, self._zone(), answered=True)
            return [closed], self.to_channels(message, waited)
        if current is not None:
            known = set(current.summary.split(", ")) if current.summary else set()
            merged = ", ".join(sorted(known | set(tasks)))
            return [replace(current, summary=merged, count=current.count + 1, updated_at=now)], []
        incident = Incident(
            task=scope,
            kind=IncidentKind.PROVIDER,
            opened_at=now,
            summary=", ".join(tasks),
            since=state.since,
            updated_at=now,
        )
        message = render_provider(state, incident, tasks, now, self._zone(), answered=False)
        return [incident], self.to_channels(message, tasks)

    # ---- budgets: once per budget and day ------------------------------------------
    def on_budget(self, news: BudgetNews) -> None:
        """Budget gate listener: a slot was skipped because a budget ran out. The store
        marks the budget's day told in the transaction that queues the message, so the
        owner hears once a day however many slots (and nodes) meet it."""
        now = self.clock.now()
        message = render_budget(news, self._zone())
        with self._lock:
            told = self.store.tell_budget_spent(
                news.scope.key, news.day, self.to_channels(message, [news.task], False), now
            )
        if told:
            log.warning("%s", message.body)
            self.wake_sender()

    def _zone(self) -> ZoneInfo:
        from agentcron.schedules.zones import resolve_zone

        return resolve_zone(self.default_zone)

    def to_channels(
        self, message: Message, tasks: Sequence[str], logged: bool = True
    ) -> list[tuple[str, str, Message]]:
        """The top-level channels, and those of the tasks concerned (``logged``: the
        message's first line goes to the log too)."""
        urls = list(self.channels)
        for name in tasks:
            rec = self.store.get_task(name)
            for url in (rec.spec.notify or []) if rec is not None else []:
                if url not in urls:
                    urls.append(url)
        if logged:
            log.warning("%s", message.body.splitlines()[0])
        return [(channel_key(url), url, message) for url in urls]

    def on_removed_delivery(self, event: DeliveryFailed) -> None:
        """A delivery of a task removed after its run ended: given up, it is told once
        to the top-level channels (the task's own are gone with it), with no incident;
        its retries before that are only logged."""
        if not event.gave_up:
            return
        message = render_removed_delivery(event, self._zone())
        with self._lock:
            self.store.save_incidents([], self.to_channels(message, []), self.clock.now())
        self.wake_sender()

    def on_starved(self, spec: TaskSpec, slot: Slot, waited: timedelta, holders: str) -> None:
        """A slot waited longer than its period for a worker: one incident until a run
        of the task starts and ends (checked without a write while it stays open)."""
        if IncidentKind.STARVED in self.store.open_incidents(spec.name):
            return
        event = TaskStarved(
            task=spec.name, at=self.clock.now(), slot_id=slot.id, waited=waited, holders=holders
        )
        self.emit(spec, event)

    def escalate_after(self, spec: TaskSpec) -> timedelta:
        """How long a task may fail, each run retried, before the owner hears it is down:
        its ``escalate_after``, else three periods, at least an hour."""
        if spec.escalate_after is not None:
            return spec.escalate_after
        key = (spec.name, spec.cron, spec.every, spec.at, spec.timezone, self.default_zone)
        period = self._periods.get(key)
        if period is None:
            from agentcron.schedules.build import build_schedule

            if len(self._periods) > 10_000:
                self._periods.clear()
            period = self._periods[key] = build_schedule(spec, self.default_zone).period()
        return max(3 * period, ESCALATE_AT_LEAST)

    def remind(self, now: datetime) -> None:
        """Tell again of incidents still open after their task's ``remind_after``; an
        incident whose task is gone is closed without a word (nothing left to fix)."""
        if self._last_remind is not None and now - self._last_remind < REMIND_CHECK:
            return
        self._last_remind = now
        for incident in self.store.incidents(open_only=True, limit=REMIND_SCAN):
            if incident.kind in NOT_A_TASKS:
                continue  # ends when its provider, home or node is back
            if incident.kind is IncidentKind.MISSED:
                continue  # told once, in the report of what was missed; nothing to fix
            if incident.kind is IncidentKind.FLAPPING:
                # its failures that need the owner are told as they come (a run of
                # failures, one retrying will not help); reminded, a task that has
                # stopped failing would be "still flapping" just before it is steady
                continue
            rec = self.store.get_task(incident.task)
            if rec is None:
                self._close_quietly(incident, now)
                continue
            every = rec.spec.remind_after
            if rec.paused or every <= timedelta(0):
                continue
            if now - (incident.reminded_at or incident.opened_at) >= every:
                retrying = incident.kind is IncidentKind.FAILURE and self._retrying(incident)
                kind = incident.kind
                self.emit(rec.spec, Reminder(task=rec.name, at=now, kind=kind, retrying=retrying))

    def _retrying(self, incident: Incident) -> bool:
        """Whether the failure's newest run is still to be retried: the reminder then
        counts it apart, as the recovery that its retry may bring would not count it."""
        slot = self.store.get_slot(incident.slot_id) if incident.slot_id else None
        return slot is not None and not slot.status.is_final

    def _close_quietly(self, incident: Incident, now: datetime) -> None:
        with self._lock:
            closed = replace(incident, closed_at=now, updated_at=now)
            self.store.save_incidents([closed], [], now)

    # ---- entry points ------------------------------------------------------------
    def on_recorded_slot(self, spec: TaskSpec, slot: Slot) -> None:
        """Engine slot listener: a slot recorded final without running."""
        if slot.status is SlotStatus.SKIPPED:
            self.on_skipped(spec, slot, self.clock.now())
        elif slot.status in (SlotStatus.MISSED, SlotStatus.EXPIRED):
            with self._lock:
                self._missed.append((spec, slot))
                self._missed_at = self.clock.now()

    def report_missed(self, now: datetime, *, settled: bool = False) -> None:
        """Tell, in one message, the slots recorded missed or expired since the last
        report, once their recording has settled (a long downtime is recorded over a few
        ticks; ``settled``: now, as a stop does). Each task gets a ``missed`` incident
        that `list` shows until its next run; none of them sends a message of its own.
        A report that cannot be written is kept for the next one."""
        with self._lock:
            if not self._missed or (not settled and now - (self._missed_at or now) < MISSED_SETTLE):
                return
            batch, self._missed = self._missed, []
            try:
                messages = self._report_missed(batch, now)
            except Exception:
                self._missed = batch + self._missed
                raise
        if messages:
            self.wake_sender()

    def _report_missed(
        self, batch: list[tuple[TaskSpec, Slot]], now: datetime
    ) -> list[tuple[str, str, Message]]:
        by_task: dict[str, list[tuple[TaskSpec, Slot]]] = {}
        for spec, slot in batch:
            by_task.setdefault(spec.name, []).append((spec, slot))
        changed: list[Incident] = []
        rows: dict[str, tuple[str, int, int, datetime, datetime, str]] = {}
        for name, items in by_task.items():
            spec = items[-1][0]
            slots = sorted((slot for _, slot in items), key=lambda s: s.scheduled_for)
            missed = sum(1 for s in slots if s.status is SlotStatus.MISSED)
            first, last = slots[0].scheduled_for, slots[-1].scheduled_for
            reason = slots[-1].reason or "no reason recorded"
            event = RunsMissed(
                task=name, at=now, count=len(slots), first=first, last=last, reason=reason
            )
            zone = spec.zone(self.default_zone)
            newest = self.store.last_slots(name, 1)
            ran_since = (
                bool(newest) and newest[0].status in _RAN and (newest[0].scheduled_for > last)
            )
            if not ran_since:  # a catch-up run that already ended needs no health mark
                changed += apply_event(self.store.open_incidents(name), event, zone).changed
            if "opened" in spec.notify_on:
                rows[name] = (name, missed, len(slots) - missed, first, last, reason)
        messages = self._missed_messages(by_task, rows, now)
        self.store.save_incidents(changed, messages, now)
        return messages

    def _missed_messages(
        self,
        by_task: dict[str, list[tuple[TaskSpec, Slot]]],
        rows: dict[str, tuple[str, int, int, datetime, datetime, str]],
        now: datetime,
    ) -> list[tuple[str, str, Message]]:
        """One report per channel, listing the tasks that channel is told about."""
        per_url: dict[str, list[str]] = {}
        secrets: set[str] = set(secret_values_from_env(dict(os.environ)))
        for name in rows:
            spec = by_task[name][-1][0]
            secrets.update(secret_values_from_env(spec.env))
            for url in spec.notify if spec.notify is not None else self.channels:
                per_url.setdefault(url, []).append(name)
        from agentcron.schedules.zones import resolve_zone

        zone = resolve_zone(self.default_zone)
        out = []
        for url, names in per_url.items():
            message = render_missed([rows[n] for n in names], now, zone, secrets)
            out.append((channel_key(url), url, message))
        if out:
            log.warning("%s", out[0][2].body.splitlines()[0])
        return out

    def on_finished_many(self, batch: Sequence[Finished]) -> None:
        """Engine batch listener: runs that ended in one pass of the loop.

        A success changes nothing when its task has no open incident and, for an
        empty output, no streak of empty successes can be complete: the batch finds
        such runs with two reads in all, and only the others go through
        :meth:`on_finished` one by one. In a burst of thousands of clean runs this is
        the difference between two reads and thousands.
        """
        self._work_out(batch)

    def _work_out(self, batch: Sequence[Finished], tries: dict[int, int] | None = None) -> None:
        """Tell what ``batch`` changes; ends whose notices fail are held. ``tries``
        (by ``id``): how often each held end failed before for a reason of its own;
        a refusal of the database is not counted (see :meth:`retry_held`). A fresh
        batch's failure is logged with its traceback, a retry's through a FaultLog."""
        counts = tries or {}
        batch = self.storage.take(batch)  # failures of the home's storage: told for it

        def failed(f: Finished, exc: Exception) -> tuple[Finished, int]:
            n = counts.get(id(f), 0)
            return f, n if is_database_error(exc) else n + 1

        try:
            others = self._needing_a_look(batch)
        except Exception as exc:  # the database away: every end of the batch waits
            if tries is None:
                log.exception(
                    "could not read what %d ended run(s) change; trying again", len(batch)
                )
            else:
                self._retry_faults.failed(exc)
            self._hold([failed(f, exc) for f in batch])
            return
        held: list[tuple[Finished, int]] = []
        for f in sorted(others, key=lambda f: f.finished_at):
            try:
                self.on_finished(f)
            except Exception as exc:  # one run's notice must not cost the others theirs
                if tries is None:
                    log.exception(
                        "could not process the end of %s (slot %s)", f.spec.name, f.slot.id
                    )
                else:
                    self._retry_faults.failed(exc)
                held.append(failed(f, exc))
        self._hold(held)
        if self._held:  # only while something waits: what a held end is measured against
            waiting = self._held_names
            told = self._told_end
            kept = {id(f) for f, _ in held}
            for f in batch:
                name = f.spec.name
                if name in waiting and id(f) not in kept and f.finished_at > told.get(name, _NEVER):
                    told[name] = f.finished_at

    def _hold(self, ended: Sequence[tuple[Finished, int]]) -> None:
        """Keep ends whose notices could not be worked out or written, with their
        tries, for :meth:`retry_held` (bounded: past MAX_HELD the oldest are dropped,
        and said)."""
        if not ended:
            return
        self._held += ended
        self._held_names.update(f.spec.name for f, _ in ended)
        if len(self._held) > MAX_HELD:
            dropped = len(self._held) - MAX_HELD
            self._held = self._held[dropped:]
            log.error("%d ended run(s) dropped untold: more than %d wait", dropped, MAX_HELD)

    def retry_held(self, now: datetime) -> None:
        """Housekeeping (which runs only while ticks work): work out the held ends
        again, in the order they ended. Of a task's ends only the newest is told: an
        older one told after a newer (held, or told since) would reopen what that one
        closed, or close what it opened. A refusal of the database is retried for as
        long as it lasts (notices are not given up for an outage); an end whose notice
        fails MAX_TRIES times for a reason of its own (a bug) is given up, and said."""
        if not self._held:
            return
        held, self._held = self._held, []
        self._held_names = set()
        told = self._told_end
        newest: dict[str, tuple[Finished, int]] = {}
        superseded = 0
        for f, tries in held:
            name = f.spec.name
            if told.get(name, _NEVER) > f.finished_at:
                superseded += 1
            elif tries >= MAX_TRIES:
                log.error(
                    "gave up telling the end of %s (slot %s, %s) after %d tries; the "
                    "errors are logged above",
                    name,
                    f.slot.id,
                    f.outcome.slot_status.value,
                    tries,
                )
            else:
                kept = newest.get(name)
                if kept is not None:
                    superseded += 1
                if kept is None or f.finished_at > kept[0].finished_at:
                    newest[name] = (f, tries)
        if superseded:
            log.warning(
                "%d held run end(s) not told: a later run of the same task came first",
                superseded,
            )
        if newest:
            batch = sorted((f for f, _ in newest.values()), key=lambda f: f.finished_at)
            self._work_out(batch, {id(f): n for f, n in newest.values()})
        if not self._held:
            self._told_end.clear()
            self._retry_faults.ok()

    def held_ends(self) -> list[Finished]:
        """The ends still waiting for their notices (a stop logs them)."""
        return [f for f, _ in self._held]

    def _needing_a_look(self, batch: Sequence[Finished]) -> list[Finished]:
        """The ends of ``batch`` that may change an incident (see on_finished_many)."""
        plain = [f for f in batch if f.outcome.slot_status is SlotStatus.SUCCEEDED]
        others = [f for f in batch if f.outcome.slot_status is not SlotStatus.SUCCEEDED]
        if plain:
            names = [f.spec.name for f in plain]
            with_incident = self.store.tasks_with_open_incidents(names)
            for f in plain:
                if not f.outcome.empty_output:
                    self._had_output.add(f.spec.name)
            self._look_up_outputs([f.spec for f in plain if f.outcome.empty_output])
            empty = [f for f in plain if f.outcome.empty_output and self._watches_empty(f.spec)]
            longest = max((f.spec.empty_output_streak for f in empty), default=0)
            recent = self.store.last_statuses([f.spec.name for f in empty], longest)
            others += [
                f for f in plain if f.spec.name in with_incident or _may_complete_streak(f, recent)
            ]
        return others

    def on_finished(self, finished: Finished) -> None:
        """Engine listener: one attempt ended (or a lapsed one was recorded lost)."""
        spec, outcome, slot = finished.spec, finished.outcome, finished.slot
        at = finished.finished_at
        if outcome.slot_status is SlotStatus.SUCCEEDED:
            watched = outcome.empty_output and self._watches_empty(spec)
            self.emit(
                spec,
                RunSucceeded(
                    task=spec.name,
                    at=at,
                    slot_id=slot.id,
                    attempts=finished.attempt,
                    empty=outcome.empty_output,
                    unwatched=outcome.empty_output and not watched,
                ),
                ran=slot,
            )
            if not outcome.empty_output:
                self._had_output.add(spec.name)
            elif watched:
                self._check_empty_streak(spec, at)
        elif outcome.slot_status in (SlotStatus.RETRYING, SlotStatus.FAILED):
            error_class = outcome.error_class or ErrorClass.CODE_ERROR
            c = finished.classification
            rec = self.store.get_task(spec.name)
            if rec is None:
                # removed while it ran: its history keeps the end; an incident, a retry
                # time or a fix to trigger it again would be about a task that is gone
                log.info(
                    "the run of %s (slot %s) failed after its task was removed; not told",
                    spec.name,
                    slot.id,
                )
                return
            paused = outcome.reason == PAUSED_WHILE_RUNNING
            stopped = outcome.explanation == DAEMON_STOPPED
            # a retry its provider's refusal holds is told as the provider's incident
            # (report_providers): counted in the task's, told if it lasts
            held = (
                outcome.slot_status is SlotStatus.RETRYING
                and error_class in COOLING_CLASSES
                and provider_of(spec) is not None
            )
            self.emit(
                spec,
                AttemptFailed(
                    task=spec.name,
                    at=at,
                    slot_id=slot.id,
                    scheduled_for=slot.scheduled_for,
                    attempt=finished.attempt,
                    max_attempts=spec.retries + 1,
                    error_class=error_class,
                    explanation=outcome.explanation or (c.explanation if c else "") or "failed",
                    fix=c.fix if c else None,
                    retry_at=outcome.next_attempt_at,
                    gave_up=outcome.slot_status is SlotStatus.FAILED
                    and error_class.transient
                    and not paused,
                    paused=paused,
                    elsewhere=stopped and self._others(),
                    details=finished.details,
                    next_run=self._next_try(spec.name, slot, outcome, rec.next_fire_at),
                    env_hint=spec.llm.api_key_env if spec.llm is not None else None,
                    escalate_runs=spec.retries + 1,
                    escalate_after=self.escalate_after(spec),
                    held=held,
                ),
                ran=slot,
            )
        elif outcome.slot_status is SlotStatus.SKIPPED or passed_over(slot):
            self.on_skipped(spec, slot, at)  # skipped, or stopped by the next fire

    def _others(self) -> bool:
        try:
            return self.others_running()
        except Exception:  # the wording, not the notice: told as if alone
            log.exception("could not tell whether other nodes run")
            return False

    def _next_try(
        self, name: str, slot: Slot, outcome: AttemptOutcome, next_fire: datetime | None
    ) -> datetime | None:
        """The task's next run as the failure's message should name it. A run recorded
        lost at a start is told after that start's tick made the fire it missed, which
        superseded the retry: "Retrying at 16:36:24" was told of a retry that never ran
        (outside-in probe). That fire's run is the next try then."""
        if outcome.slot_status is not SlotStatus.RETRYING:
            return next_fire
        now = self.store.get_slot(slot.id)
        if now is None or now.status is not SlotStatus.SUPERSEDED:
            return next_fire
        newer = self.store.slots(name, 1)
        if newer and newer[0].scheduled_for > slot.scheduled_for:
            return newer[0].scheduled_for
        return next_fire

    def emit_skip(self, spec: TaskSpec, slot: Slot, at: datetime) -> None:
        self.on_skipped(spec, slot, at)

    def on_skipped(self, spec: TaskSpec, slot: Slot, at: datetime) -> None:
        """A slot was recorded skipped (overlap or precheck), or its run was stopped by
        the next fire (overlap: replace): one incident per streak, opened at the third
        in a row. While it is open, more are not written anywhere but the slots
        themselves; the counts told come from them. A slot skipped over a budget is
        told by :meth:`on_budget`, once a day."""
        if (slot.reason or "").startswith(BUDGET_REASON):
            # its schedule fires: runs missed while agentcron was away are over (as at a
            # run's end); a missed incident left open until the budget's day ended said
            # `missed` in `list` and was reminded with the downtime as its cause
            missed = self.store.open_incidents(spec.name).get(IncidentKind.MISSED)
            if missed is not None:
                self._close_quietly(missed, at)
            return
        # A run in progress between two skips breaks the streak: it runs. Read without
        # it, a task whose every other fire is skipped (runs a little longer than its
        # period, or behind a manual run) was told "skipped 4 times in a row", and `list`
        # said skipping while it ran every other period (outside-in probe).
        last = self.store.slots(spec.name, SKIP_STREAK, _DONE_OR_RUNNING)
        if len(last) < SKIP_STREAK or not all(passed_over(s) for s in last):
            return
        if IncidentKind.SKIP_STREAK in self.store.open_incidents(spec.name):
            return
        streak = self.store.slots(spec.name, SKIP_STREAK_SCAN, _DONE_OR_RUNNING)
        run = list(takewhile(passed_over, streak))
        reason = _plain_reason(run[0].reason or _attempt_reason(self.store, run[0]))
        self.emit(
            spec,
            SkipStreak(
                task=spec.name,
                at=at,
                count=len(run),
                reason=reason,
                since=run[-1].scheduled_for,
                replaced=run[0].status is SlotStatus.CANCELLED,
            ),
        )

    def emit(self, spec: TaskSpec, event: Event, ran: Slot | None = None) -> Transition:
        """Advance the task's incidents and queue the notice, atomically.

        ``ran`` is the slot of a run that just ended: if a skip streak is open and the
        slot before it ran too, the streak ends first (same read, same transaction)."""
        zone = spec.zone(self.default_zone)
        with self._lock:
            if isinstance(event, RunStuck) and not self._still_running(event.slot_id):
                # its end was written after the watchdog looked: told now, the stuck
                # incident would stay open after the run (its end closed nothing), and
                # `list` say `stuck` for a task whose runs are fine (chaos soak)
                return Transition()
            open_now = self.store.open_incidents(spec.name)
            if isinstance(event, RunStuck) and IncidentKind.STUCK not in open_now:
                event = replace(event, streak_before=self._stuck_before(spec.name))
            events: list[Event] = [event]
            streak = open_now.get(IncidentKind.SKIP_STREAK)
            if ran is not None and streak is not None:
                ended = self._skips_ended(spec, ran, streak, event.at)
                if ended is not None:
                    events.insert(0, ended)
            changed: list[Incident] = []
            messages: list[tuple[str, str, Message]] = []
            current = dict(open_now)
            for ev in events:
                transition = apply_event(current, ev, zone)
                damped = self._damped(transition, current.get(IncidentKind.FLAPPING), ev)
                for inc in (*transition.changed, *damped.changed):
                    changed.append(inc)
                    if inc.is_open:
                        current[inc.kind] = inc
                    else:
                        current.pop(inc.kind, None)
                messages += self._messages(spec, damped.notice, zone)
            if not changed and not messages:
                return transition
            self.store.save_incidents(changed, messages, self.clock.now())
        if messages:
            self.wake_sender()
        return transition

    def _stuck_before(self, task: str) -> int:
        """How many of the task's last ended runs, newest first and in a row, went past
        their stuck_after (each opened a stuck incident): read when a new one opens."""
        stuck = {
            inc.slot_id
            for inc in self.store.incidents(task, limit=4 * STUCK_HABIT)
            if inc.kind is IncidentKind.STUCK
        }
        count = 0
        for slot in self.store.last_slots(task, 4 * STUCK_HABIT):
            if slot.started_at is None:
                continue  # not a run: skipped, missed
            if slot.id not in stuck or count >= STUCK_HABIT:
                break
            count += 1
        return count

    def _still_running(self, slot_id: int) -> bool:
        slot = self.store.get_slot(slot_id)
        return slot is not None and slot.status is SlotStatus.RUNNING

    def _damped(self, transition: Transition, flapping: Incident | None, event: Event) -> Damped:
        """The transition as told under the flapping rule (:mod:`.flapping`). The record
        of earlier failures is read only when it can matter: a failure opened while the
        task does not flap, or a success while it does."""
        opened = any(i.kind is IncidentKind.FAILURE for i in transition.opened)
        failing = any(
            i.kind is IncidentKind.FAILURE and i.is_open
            for i in (*transition.opened, *transition.escalated, *transition.updated)
        )
        looks = (flapping is None and opened) or (
            flapping is not None and isinstance(event, RunSucceeded) and not failing
        )
        openings = self._failure_openings(event.task) if looks else []
        return damp(transition, flapping, event, openings, failing)

    def _failure_openings(self, task: str) -> list[datetime]:
        """When the task's failure incidents opened, newest first (the last few); not
        those never told (a provider's refusals, told as the provider's incident), nor
        those of a run the daemon's stop interrupted (the operator's, not the task's)."""
        return [
            inc.opened_at
            for inc in self.store.incidents(task, limit=FLAP_LOOKBACK)
            if inc.kind is IncidentKind.FAILURE
            and inc.told != ()
            and not stopped_with_the_daemon(inc)
        ]

    def _messages(
        self, spec: TaskSpec, notice: Notice | None, zone: ZoneInfo
    ) -> list[tuple[str, str, Message]]:
        if notice is None or not _wanted(spec, notice.event):
            return []
        secrets = secret_values_from_env({**os.environ, **spec.env})
        message = render(notice, zone, secrets, owner_zone=self._zone())
        targets = spec.notify if spec.notify is not None else self.channels
        line = message.body.splitlines()[0] if message.body else message.title
        if targets or spec.notify is not None:  # a task's `notify: []` is its choice
            log.warning("%s", line)
        else:  # the log is all there is: at ERROR, so a program's quiet logging keeps it
            log.error("%s (no notify channel: told to no one but this log)", line)
        return [(channel_key(url), url, message) for url in targets]

    def _skips_ended(
        self, spec: TaskSpec, ran: Slot, streak: Incident, at: datetime
    ) -> SkipStreakEnded | None:
        """A run ended; if the slot before it was not skipped either, the run before
        was followed by a run: the task keeps its schedule again and the streak ends.
        (Closing on any run's end would open and close the incident every cycle of a
        task that always outlasts its period.) Under ``overlap: replace`` a run that
        ended by itself is the end: the streak was of runs stopped before they finished
        (waiting for one more run kept `list` saying skipping for a period); one stopped
        by the next fire, or whose worker was lost (the daemon's stop interrupting it),
        did not end by itself. The count told is read from the slots."""
        interrupted = (
            ran.status is SlotStatus.CANCELLED or ran.error_class is ErrorClass.WORKER_LOST
        )
        if spec.overlap is not OverlapPolicy.REPLACE or interrupted:
            before = self.store.slot_before(spec.name, ran.scheduled_for)
            # A slot nobody fired (the daemon stopped, its database away: `missed`) says
            # nothing of the overlap: the one before it does. Ended at such a run, the
            # streak was told over while the task went on skipping, and told again as
            # new (outside-in probe).
            for _ in range(MISSED_LOOKBACK):
                if before is None or before.status not in _NOT_FIRED:
                    break
                before = self.store.slot_before(spec.name, before.scheduled_for)
            if before is None or passed_over(before) or before.status in _NOT_FIRED:
                return None
        since = streak.since or streak.opened_at
        # (a replaced run's slot is cancelled: counted with the skipped ones)
        kinds = [SlotStatus.SKIPPED, SlotStatus.CANCELLED]
        skipped = self.store.count_slots(spec.name, kinds, since)
        return SkipStreakEnded(task=spec.name, at=at, skipped=skipped)

    # ---- detectors fed by events ------------------------------------------------------
    def _unknown_output(self, spec: TaskSpec) -> bool:
        """Whether only the record can say if ``spec`` has produced output before."""
        return not (
            spec.empty_output_streak <= 0
            or spec.expect_output is not None
            or spec.llm is not None
            or spec.name in self._had_output
            or spec.name in self._output_looked_up
        )

    def _look_up_outputs(self, specs: Sequence[TaskSpec]) -> None:
        """Ask the record once for every task of a batch :meth:`_watches_empty` would
        otherwise look up one by one (a burst of new tasks: thousands of reads)."""
        names = sorted({s.name for s in specs if self._unknown_output(s)})
        if not names:
            return
        if len(self._output_looked_up) + len(names) > 100_000:
            self._output_looked_up.clear()
        self._had_output.update(self.store.tasks_with_output(names))
        self._output_looked_up.update(names)

    def _watches_empty(self, spec: TaskSpec) -> bool:
        """Whether a success without output counts toward a "produced nothing" streak:
        as ``expect_output`` says; unset, for llm tasks (zero completion tokens) and for
        tasks that have produced output before. A task that never prints anything is
        not flagged for doing what it always does. Known in memory after one look at the
        record per task and process (later outputs are seen as they happen)."""
        if spec.empty_output_streak <= 0 or spec.expect_output is False:
            return False
        if spec.expect_output or spec.llm is not None or spec.name in self._had_output:
            return True
        if spec.name in self._output_looked_up:
            return False
        if len(self._output_looked_up) > 100_000:
            self._output_looked_up.clear()
        self._output_looked_up.add(spec.name)
        if self.store.had_output(spec.name):
            self._had_output.add(spec.name)
            return True
        return False

    def _check_empty_streak(self, spec: TaskSpec, at: datetime) -> None:
        n = spec.empty_output_streak
        if n <= 0:
            return
        last = self.store.last_slots(spec.name, n)
        if len(last) < n or any(s.status is not SlotStatus.SUCCEEDED for s in last):
            return
        with_text = True
        for s in last:
            attempts = self.store.attempts(s.id)
            if not attempts or not attempts[-1].extra.get("empty_output"):
                return
            with_text = with_text and bool(attempts[-1].extra.get("zero_tokens_with_text"))
        self.emit(spec, EmptySuccessStreak(task=spec.name, at=at, count=n, with_text=with_text))


def _may_complete_streak(finished: Finished, recent: dict[str, list[SlotStatus]]) -> bool:
    """Whether this empty success may be the last of a streak: the task's newest final
    slots (this one among them) are at least ``empty_output_streak`` successes."""
    n = finished.spec.empty_output_streak
    if not finished.outcome.empty_output or n <= 0:
        return False
    last = recent.get(finished.spec.name, [])[:n]
    return len(last) >= n and all(s is SlotStatus.SUCCEEDED for s in last)


def _wanted(spec: TaskSpec, event: NoticeEvent) -> bool:
    return str(event) in spec.notify_on


def _attempt_reason(store: Store, slot: Slot) -> str:
    attempts = store.attempts(slot.id)
    if attempts:
        return str(attempts[-1].explanation or "")
    return ""


def _plain_reason(reason: str) -> str:
    if "still held by" in reason:
        return (
            "the previous run was still held by a node not heard from (it may have ended "
            "there unseen)"
        )
    if "still running" in reason:
        return "the previous run was still running"
    if "queued" in reason:
        return "a run was already waiting behind the running one"
    if reason.startswith(REPLACED):
        return "each run was stopped by the next one before it finished (overlap: replace)"
    return reason or "no reason recorded"
