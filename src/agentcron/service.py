"""The one service API behind every interface.

The CLI, the HTTP API, the dashboard and the MCP server call these methods and
nothing else: none of them touches the store. Reads return plain dicts whose
keys are the documented ``--json`` field names (their shapes are the models of
:mod:`agentcron.interfaces.schemas`); writes validate with the same rules as the
config file, raise a :class:`ServiceError` that names the task and field, and are
recorded in the audit trail with who made them and through what.

The parts live in :mod:`agentcron._service`: run history, incidents and the audit
trail in ``history``, daemon health and live counts in ``status``; tasks are here.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

from agentcron._service.advice import Act, Advice, Said, Wording, advised
from agentcron._service.base import (
    BUSY_WORDS,
    Actor,
    ConflictError,
    Defaults,
    InvalidError,
    NotFoundError,
    ServiceError,
    acting_as,
    current_actor,
    iso,
    local_actor,
)
from agentcron._service.budgets import BudgetsMixin
from agentcron._service.history import check_limit
from agentcron._service.redelivery import RedeliveryMixin
from agentcron._service.status import DAEMON_STALE_AFTER, RUN_COMMAND, StatusMixin
from agentcron.gc_pause import gc_paused
from agentcron.health import budget_health, task_health
from agentcron.model import (
    Health,
    NewSlot,
    OverlapPolicy,
    Slot,
    SlotStatus,
    TaskRecord,
    TaskSource,
    TaskSpec,
)
from agentcron.model.incident import Incident
from agentcron.model.task import TASK_NAME, shortened
from agentcron.store._api_sql import TaskLatest
from agentcron.store._listing import TaskListing

__all__ = [
    "BUSY_WORDS",
    "DAEMON_STALE_AFTER",
    "Act",
    "Actor",
    "Advice",
    "ConflictError",
    "Defaults",
    "InvalidError",
    "NotFoundError",
    "Said",
    "Service",
    "ServiceError",
    "Wording",
    "acting_as",
    "advised",
    "current_actor",
    "iso",
    "local_actor",
]

_SOURCES = ("file", "api", "code")
_HEALTH_WORDS = {h: h.value for h in Health}  # Enum's .value is a descriptor call
_NO_LATEST = TaskLatest()  # a task with no final run and no pause reason
# Healths that say something will happen (a fire, a retry, the end of a run in
# progress): while no scheduler ticks none of it does, and the task is not_firing. (A
# run "in progress" with no daemon died with it: the next daemon records it lost.)
_WAITS_FOR_A_DAEMON = frozenset({Health.OK, Health.RETRYING, Health.STUCK, Health.WAITING})
# keys a patch may not change: the name is the task's identity (remove and add to
# rename); `paused` has its own calls, which keep the reason and cancel waiting runs
_NOT_PATCHABLE = ("name",)

# A change of a task reads it, checks, and writes it: two at once (the API answers
# requests on a pool of threads) lost one of two PATCHes of different keys, brought a
# task back that a DELETE had just removed (or failed with a 500 on it), and answered
# 201 to two creates of one name. Changes made in this process take turns.
_TASK_CHANGES = threading.RLock()
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _one_at_a_time(method: Callable[_P, _R]) -> Callable[_P, _R]:
    @functools.wraps(method)
    def changing(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _TASK_CHANGES:
            return method(*args, **kwargs)

    return changing


def _key_named(message: str) -> str | None:
    """The task key a message of a task-wide rule begins with, if it begins with one."""
    head = re.match(r"([a-z_]+)[ .:]", message)
    return head.group(1) if head and head.group(1) in TaskSpec.model_fields else None


def _at_the_name(exc: InvalidError, name: str) -> InvalidError:
    """A task name refused, said at the ``name`` key with the name quoted short: a
    5,000-character name came back whole, twice, with no field named (outside-in
    probe)."""
    words = exc.problems[0][1] if exc.problems else str(exc)
    words = words.replace(repr(name), repr(shortened(name)))
    if len(name) > 100:
        words += f" (got {len(name)} characters)"
    return InvalidError(f"name: {words}", field="name", problems=[("name", words)])


# The reason of a one-shot recorded expired because its time had passed when it was first
# read: the daemon may have been stopped at that time, so "added too late" may be untrue.
PAST_AT_READ = "its time had already passed when agentcron first read it from the config file"
PAST_AT_CHANGED = "its new time had already passed when agentcron read the change to the file"


class FileSync(NamedTuple):
    """What applying the file's tasks changed, and the one-shots it recorded expired
    (each with its spec): nothing runs them, so they are told."""

    added: list[str]
    changed: list[str]
    removed: list[str]
    expired: list[tuple[TaskSpec, Slot]]


class Service(RedeliveryMixin, StatusMixin, BudgetsMixin):
    # ---- sync from the config file ----------------------------------------------------
    def plan_unplanned(self) -> tuple[list[tuple[str, datetime]], list[str]]:
        """Recurring tasks, not paused, whose row has no next fire time (changed outside
        agentcron): planned again from now, and returned, with the names of such rows
        that cannot be read. Nothing read them, so such a task never ran again while
        `list`, `doctor` and the watchdog called it healthy (outside-in probe). A
        one-shot's empty time is its own rules' (it has fired)."""
        now = self.clock.now()
        planned = []
        records, unreadable = self.store.unplanned_tasks()
        for rec in records:
            if rec.spec.at is not None:
                continue
            fire = self.first_fire(rec.spec, now)
            if fire is not None and self.store.plan_again(rec.name, fire):
                planned.append((rec.name, fire))
        return planned, unreadable

    def sync_file_tasks(self, specs: Mapping[str, TaskSpec]) -> FileSync:
        now = self.clock.now()
        # The store keeps an existing task's grid position unless its schedule changed;
        # this value only serves new tasks and changed schedules.
        next_fire = {
            name: None if spec.paused else self.first_fire(spec, now)
            for name, spec in specs.items()
        }
        added, changed, removed = self.store.sync_file_tasks(list(specs.values()), now, next_fire)
        # a one-shot changed to a time already gone is as silent as one added so: the
        # change was applied, `list` said ok, and nothing ever ran (outside-in probe)
        why = [(name, PAST_AT_READ) for name in added]
        why += [(name, PAST_AT_CHANGED) for name in changed]
        expired = [
            (specs[name], slot)
            for name, reason in why
            if (slot := self._expire_past_one_shot(specs[name], now, reason)) is not None
        ]
        return FileSync(added, changed, removed, expired)

    def tell_expired(
        self,
        expired: Sequence[tuple[TaskSpec, Slot]],
        channels: Sequence[str],
        zone: str | None,
    ) -> bool:
        """Queue the report of one-shots that a command (no daemon running) recorded
        expired, as the daemon's own report of runs that did not happen: written to the
        outbox for each task's channels, sent when a daemon runs. Said only on the
        command's stderr, it was lost to a script's `list --json` (outside-in probe).
        Returns whether a message was queued."""
        from agentcron.notify.notifier import Notifier

        queued: list[bool] = []  # the notifier wakes its sender when it queued
        notifier = Notifier(
            self.store, self.clock, channels, zone, wake_sender=lambda: queued.append(True)
        )
        for spec, slot in expired:
            notifier.on_recorded_slot(spec, slot)
        notifier.report_missed(self.clock.now(), settled=True)
        return bool(queued)

    def _expire_past_one_shot(self, spec: TaskSpec, now: datetime, reason: str) -> Slot | None:
        """A one-shot whose time had passed when it was first read from the file never
        fires: it is recorded ``expired`` with the reason, so `list` and `runs` show it,
        and returned, for the daemon to tell the owner (its report of slots that did not
        run) and the CLI to say. Its time may have passed while no daemon ran, not only
        by a mistake in the file: either way nothing runs, and someone must hear."""
        if spec.at is None or spec.paused or self.first_fire(spec, now) is not None:
            return None
        at = spec.at if spec.at.tzinfo else spec.at.replace(tzinfo=self._zone(spec))
        # a slot of that time already (it ran, or was told): nothing new is recorded
        return self.store.add_slot(spec.name, NewSlot(at, SlotStatus.EXPIRED, reason), now)

    def tasks_added_elsewhere(self, names: list[str]) -> list[str]:
        """Which of ``names`` are tasks added with `agentcron add`, the API or an agent
        (``source: api``): a config file's task of the same name would take one over."""
        added = set(self.store.task_names(TaskSource.API.value))  # one read, no spec parsed
        return [name for name in names if name in added]

    def untold_added_tasks(self) -> list[str]:
        """Tasks added with `agentcron add`, the API or an agent that name no ``notify:``
        channel of their own: with none in the config either, their failures reach no
        one (``doctor`` says so, as it does of the file's tasks)."""
        return [
            rec.name
            for rec in self.store.list_tasks()
            if rec.source is TaskSource.API and rec.spec.notify is None
        ]

    def upsert_code_tasks(self, specs: list[TaskSpec]) -> list[str]:
        """Tasks registered from Python code: written in one transaction (100,000 at once
        must take seconds, not minutes); an existing task keeps its place on the grid.
        Code tasks the program no longer registers are removed, as a file's tasks are
        when they leave the file (their history stays): they failed at every period,
        told as the function raising AttributeError (probe). Returns those removed."""
        now = self.clock.now()
        self.store.upsert_many(
            [(spec, None if spec.paused else self.first_fire(spec, now)) for spec in specs],
            TaskSource.CODE,
            now,
        )
        kept = {spec.name for spec in specs}
        gone = [n for n in self.store.task_names(TaskSource.CODE.value) if n not in kept]
        for name in gone:
            self.store.remove_task(name, now)
        return gone

    # ---- reads -------------------------------------------------------------------
    def list_tasks(
        self,
        health: str | Sequence[str] | None = None,
        source: str | None = None,
        text: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every task with its health, by name; ``health`` (words, comma-separated),
        ``source`` (file, api or code) and ``text`` (in the name, schedule or description,
        any case) narrow the list. A constant number of reads, whatever the count of
        tasks (10,000 tasks: a few reads, not 30,000)."""
        wanted = _health_words(health)
        if source is not None and source not in _SOURCES:
            raise ServiceError(
                f"source: {source!r} is not a task source; use file, api or code", field="source"
            )
        needle = text.strip().lower() if text else None
        not_firing = self.firing().problem
        with gc_paused():  # see agentcron.gc_pause: a third of the time over 100,000
            return self._list_tasks(wanted, source, needle, not_firing)

    def _list_tasks(
        self, wanted: set[str], source: str | None, needle: str | None, not_firing: str | None
    ) -> list[dict[str, Any]]:
        # a few keys of each stored spec, not 100,000 parsed specs (see TaskListing)
        records = self.store.task_listing()
        latest = self.store.task_latest()
        active: dict[str, list[Slot]] = {}
        for slot in self.store.active_slots():
            active.setdefault(slot.task, []).append(slot)
        incidents: dict[str, list[Incident]] = {}
        for incident in self.store.incidents(open_only=True, limit=100_000):
            incidents.setdefault(incident.task, []).append(incident)
        now = self.clock.now()
        zones: dict[str | None, ZoneInfo] = {}  # a fleet shares few zones
        # and few next fire times (100,000 tasks of the bench: 480): each written once
        stamps: dict[tuple[datetime, ZoneInfo], str] = {}
        out = []
        maybe_own: list[str] = []  # listed tasks that may set a budget of their own
        for rec in records:
            if source is not None and _source(rec) != source:
                continue
            if needle is not None and not _matches(rec, needle):
                continue
            zone = zones.get(rec.timezone)
            if zone is None:
                zone = zones[rec.timezone] = self._zone_named(rec.timezone)
            view = self._view(
                rec,
                latest.get(rec.name, _NO_LATEST),
                active.get(rec.name, []),
                incidents.get(rec.name, []),
                now,
                zone,
                stamps,
                not_firing,
            )
            # ok and over_budget are settled by the budgets below (budget_health)
            moves = view["health"] in _BUDGET_WORDS and bool(wanted & _BUDGET_WORDS)
            if wanted and view["health"] not in wanted and not moves:
                continue
            out.append(view)
            if rec.budgeted is not False:
                maybe_own.append(rec.name)
        budgets = self.budgets_of_listed([view["name"] for view in out], maybe_own) if out else {}
        for view in out:
            view["budget"] = budgets.get(view["name"], [])
            _settle_budget_health(view)
        return [view for view in out if not wanted or view["health"] in wanted]

    def _task_view(self, rec: TaskRecord, not_firing: str | None = None) -> dict[str, Any]:
        view = self._view(
            TaskListing.of(rec),
            self.store.task_latest([rec.name]).get(rec.name, TaskLatest()),
            self.store.active_slots(rec.name),
            self.store.incidents(task=rec.name, open_only=True, limit=100),
            self.clock.now(),
            not_firing=not_firing,
        )
        view["budget"] = self.budget_usage([(rec.name, rec.spec.budget)]).get(rec.name, [])
        _settle_budget_health(view)
        return view

    def _current_attempts(self, active: list[Slot]) -> list[Slot]:
        """``active`` with each running retry's start moved to its current attempt's,
        as the health words read it: a slot's start is its first attempt's, so a retry
        that hung was never called stuck (`retrying`, with no retry waiting). One read
        per running retry, few at any time."""
        if not any(s.status is SlotStatus.RUNNING and s.attempts > 1 for s in active):
            return active
        out = []
        for slot in active:
            if slot.status is SlotStatus.RUNNING and slot.attempts > 1:
                attempts = self.store.attempts(slot.id)
                if attempts:
                    slot = replace(slot, started_at=attempts[-1].started_at)
            out.append(slot)
        return out

    def _view(
        self,
        rec: TaskListing,
        latest: TaskLatest,
        active: list[Slot],
        incidents: list[Incident],
        now: datetime,
        zone: ZoneInfo | None = None,
        stamps: dict[tuple[datetime, ZoneInfo], str] | None = None,
        not_firing: str | None = None,
    ) -> dict[str, Any]:
        """A task's row; ``stamps`` remembers the next-run times written in a list;
        ``not_firing`` says why no scheduler ticks, and then no task is ``ok``."""
        zone = zone or self._zone_named(rec.timezone)
        last = latest.last
        health, detail = task_health(
            rec,
            self._current_attempts(active),
            last,
            now,
            lambda: self.period(rec.spec),
            zone,
            incidents,
        )
        if not_firing is not None and health in _WAITS_FOR_A_DAEMON:
            health, detail = Health.NOT_FIRING, not_firing
        # (written out rather than through iso() and friends: a list calls this for
        # every task, 100,000 times for a large fleet)
        next_fire = rec.next_fire_at
        next_run = None
        if next_fire is not None:
            key = (next_fire, zone)
            next_run = stamps.get(key) if stamps is not None else None
            if next_run is None:
                next_run = next_fire.astimezone(zone).isoformat()
                if stamps is not None:
                    stamps[key] = next_run
        return {
            "name": rec.name,
            "schedule": rec.schedule_text,
            "timezone": zone.key,
            "paused": rec.paused,
            "pause_reason": latest.pause_reason if rec.paused else None,
            "next_run": next_run,
            "last_status": last.status.value if last else None,
            "last_run": iso(last.scheduled_for, zone) if last else None,
            "health": _HEALTH_WORDS[health],
            "health_detail": detail,
            "source": _source(rec),
            "action": rec.action_kind,
            "delivery_status": latest.last_success.delivery_status.value
            if latest.last_success
            else None,
            "description": rec.description,
        }

    def show_task(self, name: str, count: int = 3) -> dict[str, Any]:
        """One task: its list row, its spec (secrets removed), the next ``count`` fire
        times with DST notes, and its five newest runs."""
        check_limit(count, "count", 1000)
        rec = self._task(name)
        view = self._task_view(rec, self.firing().problem)
        view["spec"] = spec_view(rec.spec)
        view["next"] = self.next_fires(name, count) if not rec.paused else []
        view["recent_runs"] = self.runs(name, 5)
        return view

    def owner_zone(self) -> str:
        """The config's zone (the machine's when it names none): times of what is not
        one task's, such as incidents of a home or a node, are shown in it."""
        return str(self._zone_named(None).key)

    def zone_of(self, name: str) -> str:
        """The IANA zone the task's schedule is read in (tables name times in it)."""
        return str(self._zone(self._task(name).spec).key)

    def next_fires(
        self, name: str, count: int = 5, start: datetime | None = None
    ) -> list[dict[str, Any]]:
        check_limit(count, "count", 1000)
        rec = self._task(name)
        sched = self.schedule(rec.spec)
        # a time without an offset is read in the task's zone, as its schedule is
        cursor = start or self.clock.now()
        if not 2 <= cursor.year <= 9998:  # a zone's offset would move it out of range
            raise ServiceError(
                f"the time to start from, {cursor.isoformat()}, is outside the dates "
                "agentcron plans fires for (years 2 to 9998)",
                field="start",
            )
        if cursor.tzinfo is None:
            # a wall time read at its earliest instant: one inside a spring-forward gap
            # (02:10 of a day that skips 02:00-03:00) is before the fire the gap moved
            # to 03:00, which `next --from` skipped when 02:10 was taken as 03:10
            zone = self._zone(rec.spec)
            cursor = min(
                (cursor.replace(tzinfo=zone, fold=fold) for fold in (0, 1)),
                key=lambda local: local.astimezone(UTC),
            )
        out: list[dict[str, Any]] = []
        for _ in range(count):
            try:
                fire = sched.next_after(cursor)
            except OverflowError:  # the next fire would be past the year 9999
                break
            if fire is None:
                break
            out.append(
                {"at": fire.at.isoformat(), "local": fire.local.isoformat(), "note": fire.note}
            )
            cursor = fire.at
        return out

    def holds_task(self, name: str, spec: TaskSpec) -> bool:
        """Whether ``name`` is a task added here (not the config file's) defined as
        ``spec`` already, in effect: the same definition and paused state. Its stored
        ``paused`` key is not compared (``pause`` and ``resume`` set the state only): a
        re-import that would change nothing writes nothing and audits nothing."""
        record = self.store.get_task(name)
        if record is None or record.source is not TaskSource.API or record.paused != spec.paused:
            return False
        return _definition(record.spec) == _definition(spec)

    # ---- writes ------------------------------------------------------------------
    @_one_at_a_time
    def add_task(self, name: str, raw: Mapping[str, Any], replace: bool = False) -> dict[str, Any]:
        """Create a task (``source: api``) from the keys a config file's task has,
        validated by the same rules, problems located at ``tasks.NAME.KEY``."""
        if not TASK_NAME.fullmatch(name):  # said in words before any lookup by that name
            try:  # (one no store can hold gave a 500)
                self._validate(name, raw)
            except InvalidError as exc:
                raise _at_the_name(exc, name) from None
        existing = self.store.get_task(name)
        if existing is not None and existing.source is TaskSource.FILE:
            raise ConflictError(
                f"task {name!r} is defined in the config file; "
                "change it there (or pick another name)",
                field="name",
            )
        if existing is not None and not replace:
            raise ConflictError(
                f"task {name!r} already exists; remove it first or choose another name",
                field="name",
            )
        spec = self._validate(name, raw)
        self._refuse_past_one_shot(spec)
        self._store_spec(spec)
        self._audit(
            "task.create" if existing is None else "task.replace",
            name,
            spec_view(existing.spec) if existing is not None else None,
            spec_view(spec),
        )
        self._changed()
        return self._task_view(self._task(name))

    @_one_at_a_time
    def update_task(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Change some keys of a task added through the CLI or API (a JSON merge patch,
        RFC 7396: a key set to null goes back to its default; to move from ``cron`` to
        ``every`` set ``cron`` to null). The result is validated as a whole."""
        rec = self._task(name)
        if rec.source is TaskSource.FILE:
            raise ConflictError(
                f"task {name!r} is defined in the config file; change it there",
                field="name",
            )
        for key in _NOT_PATCHABLE:
            if key in patch and patch[key] != name:
                raise InvalidError(  # a body key the route's rules refuse: 422, as documented
                    f"{key}: a task cannot be renamed; add it under the new name and remove "
                    f"{name!r}",
                    field=key,
                )
        raw = rec.spec.model_dump(mode="python", by_alias=True, exclude_defaults=True)
        raw.pop("name", None)
        for key, value in patch.items():
            if key == "name":
                continue
            if value is None:
                raw.pop(key, None)
            else:
                raw[key] = value
        spec = self._validate(name, raw)
        if spec.at != rec.spec.at or spec.paused != rec.spec.paused:
            # as `add` does: a one-shot moved into the past would never run, and said
            # "next run None" (probe)
            self._refuse_past_one_shot(spec)
        if spec == rec.spec:
            # nothing changes (an empty patch, or values it has): nothing is written, and
            # the audit keeps no change that was none (as pause and resume do)
            return self._task_view(rec)
        self._store_spec(spec)
        self._audit("task.update", name, spec_view(rec.spec), spec_view(spec))
        self._changed()
        return self._task_view(self._task(name))

    def _refuse_past_one_shot(self, spec: TaskSpec) -> None:
        """A one-shot whose time has passed would never run and never be recorded:
        refused with what to do instead (the config file records it ``expired``)."""
        if spec.at is None or spec.paused:
            return
        now = self.clock.now()
        if self.first_fire(spec, now) is None:
            zone = self._zone(spec)
            at = spec.at if spec.at.tzinfo else spec.at.replace(tzinfo=zone)
            words = (
                f"at {at.astimezone(zone).isoformat(timespec='minutes')} is in the past "
                f"(now {now.astimezone(zone).isoformat(timespec='minutes')}): a one-shot "
                "runs once at a time to come"
            )
            raise InvalidError(
                words,
                field="at",
                problems=[(f"tasks.{spec.name}.at", words)],  # located as validate says
                advice=Advice(Act.TRIGGER),
            )

    def _validate(self, name: str, raw: Mapping[str, Any]) -> TaskSpec:
        from agentcron.config.errors import ConfigError
        from agentcron.config.loader import validate_task_mapping

        try:
            # ${NAME} would let whoever writes the task read the daemon's environment:
            # only the owner at this machine's terminal may write placeholders.
            return validate_task_mapping(
                name,
                raw,
                self.defaults.task_defaults,
                allow_placeholders=(current_actor.get() or self.actor).via == "cli",
            )
        except ConfigError as exc:
            # the field is the key as the caller sent it (`every`); the problems keep
            # the config file's location (`tasks.NAME.every`), as `validate` prints it
            first = exc.problems[0].location if exc.problems else None
            if first is not None:
                first = first.removeprefix(f"tasks.{name}").lstrip(".") or None
            if first is None and exc.problems:
                # a rule of the whole task that names its key first ("command is a
                # string but shell is not true", "command.1: holds …") is that key's
                first = _key_named(exc.problems[0].message)
            raise InvalidError(
                str(exc),
                field=first,
                problems=[(p.location, p.message) for p in exc.problems],
            ) from None

    def _store_spec(self, spec: TaskSpec) -> None:
        now = self.clock.now()
        nxt = None if spec.paused else self.first_fire(spec, now)
        self.store.upsert_task(spec, TaskSource.API, now, nxt)

    @_one_at_a_time
    def pause(self, name: str, reason: str | None = None) -> dict[str, Any]:
        """Stop scheduling a task; a run in progress continues, waiting ones are
        cancelled. ``reason`` is kept and shown until it is resumed."""
        rec = self._task(name)
        reason = (reason or "").strip() or None
        if reason is not None and len(reason) > 500:
            raise InvalidError("reason: at most 500 characters", field="reason")
        if reason is not None and any(ord(c) < 32 or c == "\x7f" for c in reason):
            raise InvalidError(
                "reason: one line of text, without control characters", field="reason"
            )
        before = self._pause_state(rec)
        if before == {"paused": True, "reason": reason}:
            return self._task_view(rec)  # as asked already: nothing changes, nothing audited
        self.store.set_paused(name, True, self.clock.now(), None)
        self.store.set_pause_reason(name, reason)
        self._audit("task.pause", name, before, {"paused": True, "reason": reason})
        self._changed()  # its waiting runs are cancelled by the daemon's next pass
        return self._task_view(self._task(name))

    def pause_cancels(self, name: str) -> str | None:
        """What pausing ``name`` now cancels, in words, or None: its runs waiting to start
        or for a retry (the owner's last word may be "Retrying at 10:05", which then never
        comes; the engine cancels them within seconds of the pause)."""
        rec = self._task(name)
        zone = self._zone(rec.spec)
        said = []
        for slot in self.store.active_slots(name):
            retry = slot.status is SlotStatus.RETRYING and slot.attempts >= 1
            if retry and slot.next_attempt_at is not None:
                said.append(
                    f"run {slot.id}'s retry at {slot.next_attempt_at.astimezone(zone):%H:%M:%S}"
                )
            elif slot.status in (SlotStatus.PENDING, SlotStatus.RETRYING):
                # (one held back by its provider's cooldown has made no attempt yet)
                said.append(f"run {slot.id} (waiting to start)")
        if not said:
            return None
        return f"{'; '.join(said)} will not run: a paused task's waiting runs are cancelled"

    @_one_at_a_time
    def resume(self, name: str) -> dict[str, Any]:
        rec = self._task(name)
        if not rec.paused:
            # Nothing to resume. Planned from now as a resume is, a task that is due
            # (the daemon down, its fires to be caught up) would lose those fires.
            return self._task_view(rec)
        now = self.clock.now()
        before = self._pause_state(rec)
        # Resuming starts from now: runs that fell due while paused were never owed.
        self.store.set_paused(name, False, now, self.first_fire(rec.spec, now))
        self.store.set_pause_reason(name, None)
        self._audit("task.resume", name, before, {"paused": False, "reason": None})
        self._changed()
        return self._task_view(self._task(name))

    def _pause_state(self, rec: TaskRecord) -> dict[str, Any]:
        latest = self.store.task_latest([rec.name]).get(rec.name, TaskLatest())
        return {"paused": rec.paused, "reason": latest.pause_reason if rec.paused else None}

    @_one_at_a_time
    def remove(self, name: str) -> None:
        rec = self._task(name)
        if rec.source is TaskSource.FILE:
            raise ConflictError(
                f"task {name!r} is defined in the config file; delete it there "
                "(the daemon drops it on reload)",
                field="name",
                advice=Advice(Act.PAUSE, name),
            )
        if not self.store.remove_task(name, self.clock.now()):
            raise NotFoundError(f"no task named {name!r}", field="name")
        self._audit("task.delete", name, spec_view(rec.spec), None)
        self._changed()

    def trigger(self, name: str) -> dict[str, Any]:
        """Record a manual run now and return it at once (the scheduler starts it)."""
        rec = self._task(name)
        now = self.clock.now()
        for bump in range(1000):
            slot = self.store.add_slot(
                rec.name,
                NewSlot(now + timedelta(microseconds=bump), SlotStatus.PENDING, trigger="manual"),
                now,
            )
            if slot is not None:
                self._audit("task.trigger", name, None, {"run": slot.id})
                self._changed()
                return self.slot_view(slot, self._zone(rec.spec))
        raise ServiceError("could not record the manual run")  # pragma: no cover

    def trigger_note(self, name: str, run_id: int | None = None) -> Said:
        """What becomes of a run of ``name`` triggered now (``run_id``: that run), in
        words, for whoever triggered it (the CLI, the dashboard, the API and MCP say the
        same, each with the advice in its own words): a run over budget was announced
        as starting, then recorded skipped without a word."""
        if run_id is not None:
            # the daemon, told of the trigger, may have started it already: it is not
            # then a run it waits behind (a probe was told "it starts when the run in
            # progress ends" of its own run)
            slot = self.store.get_slot(run_id)
            if slot is not None and slot.status is not SlotStatus.PENDING:
                return Said("the daemon has started it")
        if not self.daemon_status()["alive"]:
            rec = self.store.get_task(name)
            code = rec is not None and rec.source is TaskSource.CODE
            start_with = self._start_with() if code else RUN_COMMAND
            if start_with != RUN_COMMAND:
                # tasks of a program's Scheduler: `agentcron run` would fail their runs
                # (outside-in probe: the CLI pointed there, and each run then failed
                # "'__main__' has no attribute" without naming the wrong daemon)
                return Said(f"the daemon is not running: the run starts when {start_with} does")
            return Said(
                "the daemon is not running: the run starts when it does",
                Advice(Act.START_DAEMON),
            )
        spent = next((b for b in self.task_budget(name) if b["used_up"]), None)
        if spent is not None:
            return Said(
                f"but the daily budget of {spent['label']} is used up ({spent['summary']}): "
                "it is recorded skipped, over budget, unless the budget is raised first"
            )
        if self.waits_behind_a_run(name, besides=run_id):
            return Said("it starts when the run in progress ends")
        return Said("the daemon starts it within a few seconds")

    def waits_behind_a_run(self, name: str, besides: int | None = None) -> bool:
        """Whether a run triggered now waits for one of the task's runs in progress (it
        runs one at a time, whatever its overlap policy says of scheduled fires: a
        manual run keeps its place, and starts when the run before it ends)."""
        rec = self._task(name)
        if rec.spec.overlap is OverlapPolicy.ALLOW:
            return False
        return any(
            s.status is SlotStatus.RUNNING and s.id != besides
            for s in self.store.active_slots(name)
        )

    # ---- channels -------------------------------------------------------------------
    def channel_urls(self, global_channels: list[str]) -> list[str]:
        """Every notify channel in use: the global ones and each task's own."""
        urls = list(global_channels)
        for url in self.store.task_notify_urls():
            if url not in urls:
                urls.append(url)
        return urls

    def retire_channels(self, global_channels: list[str]) -> int:
        """Forget the channels no longer in use (neither in ``global_channels`` nor any
        task's ``notify:``): what they could not send goes to ``global_channels``, and
        `health` stops reporting them (see the store's ``retire_channels``). Returns how
        many unsent messages they had."""
        from agentcron.notify.channels import channel_key

        keep = [channel_key(url) for url in self.channel_urls(global_channels)]
        move_to = [(channel_key(url), url) for url in global_channels]
        return self.store.retire_channels(keep, move_to, self.clock.now())

    async def notify_test(self, urls: list[str]) -> list[dict[str, Any]]:
        """Send a test message to each channel now (not through the outbox)."""
        from agentcron.model import Message
        from agentcron.notify.channels import channel_for

        if not urls:
            raise ServiceError(
                "no channels configured: add `notify:` URLs to agentcron.yaml or pass --channel URL"
            )
        message = Message(
            title="agentcron test message",
            body="✔ This is a test from agentcron: notifications reach you through this channel.",
            task="",
            event="test",
            incident_kind="",
            severity="info",
        )
        results = []
        for url in urls:
            channel = channel_for(url)
            result = await channel.send(message)
            results.append(
                {
                    "channel": channel.key,
                    "ok": result.ok,
                    "error": result.error,
                    "permanent": result.permanent,
                }
            )
        return results

    # ---- upkeep --------------------------------------------------------------------
    def prune(self, dry_run: bool = False) -> dict[str, Any]:
        """Remove history past ``keep_history`` and kept output files past their task's
        ``keep_outputs`` now (``agentcron prune``), or count what would go. The daemon
        does the same periodically; running both is harmless. Outputs still waiting to
        be delivered, and each task's newest success's, stay (``outputs_to_keep``)."""
        from agentcron.retention import (
            busy_slots,
            default_keep_history,
            prune_history,
            prune_outputs,
        )

        report = prune_history(
            self.store,
            self.home,
            self.clock.now(),
            default_keep_history(self.defaults.task_defaults),
            dry_run=dry_run,
        )
        failures: list[str] = []
        by_task: dict[str, int] = {}
        outputs = prune_outputs(
            self.home,
            self.store.get_task,
            self.store.outputs_to_keep(),
            self.clock.now().timestamp(),
            failures,
            counts=by_task,
            dry_run=dry_run,
            busy=busy_slots(self.store),
        )
        done = {
            **report.as_dict(),
            "outputs": outputs,
            "outputs_by_task": {name: n for name, n in sorted(by_task.items()) if n},
        }
        done["unremoved"] = [*done["unremoved"], *failures]
        if not dry_run:
            self._audit("history.prune", None, None, done)
        return done


def _source(rec: TaskRecord | TaskListing) -> str:
    """``file``, ``api`` (the CLI, the HTTP API, an agent) or ``code`` (a program's
    Scheduler): code tasks were listed as ``api`` although only their program runs them."""
    if rec.source is TaskSource.FILE:
        return "file"
    return "code" if rec.source is TaskSource.CODE else "api"


def _matches(rec: TaskListing, needle: str) -> bool:
    return any(
        needle in (value or "").lower() for value in (rec.name, rec.schedule_text, rec.description)
    )


def _health_words(value: str | Sequence[str] | None) -> set[str]:
    if value is None:
        return set()
    words = value.split(",") if isinstance(value, str) else list(value)
    wanted = {w.strip() for w in words if w.strip()}
    known = {h.value for h in Health}
    bad = sorted(wanted - known)
    if bad:
        raise ServiceError(
            f"health: unknown health {bad[0]!r}; choose from {', '.join(sorted(known))}",
            field="health",
        )
    return wanted


_SECRET_KEY_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")


def spec_view(spec: TaskSpec) -> dict[str, Any]:
    """A task's definition as shown to people and kept in the audit trail: values of
    ``env`` removed whole (an environment holds secrets under any name), values of
    secret-named keys removed, and secret shapes (tokens in URLs, keys) redacted."""
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    data.pop("name", None)
    if data.get("env"):
        data["env"] = dict.fromkeys(data["env"], "[REDACTED]")
    shown: dict[str, Any] = _redacted(data)
    return shown


def _redacted(value: Any, secrets: list[str] | None = None) -> Any:
    from agentcron.redact import redact, redact_argv, secret_values_from_env

    if secrets is None:  # once per spec shown, not once per value in it
        secrets = secret_values_from_env(os.environ)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            # a key ending in _env (api_key_env) holds the name of a variable, not its value
            secretish = any(w in k.upper() for w in _SECRET_KEY_WORDS) and not k.endswith("_env")
            if isinstance(v, str) and secretish:
                out[k] = "[REDACTED]"
            else:
                out[k] = _redacted(v, secrets)
        return out
    if isinstance(value, list):
        if value and all(isinstance(v, str) for v in value):
            return redact_argv(value, secrets)  # a command: `--token VALUE` too
        return [_redacted(v, secrets) for v in value]
    if isinstance(value, str):
        return redact(value, secrets)
    return value


_BUDGET_WORDS = frozenset({"ok", "over_budget"})


def _settle_budget_health(view: dict[str, Any]) -> None:
    """``ok`` / ``over_budget`` as the task's budgets stand now (see budget_health)."""
    if view["health"] in _BUDGET_WORDS:
        view["health"], view["health_detail"] = budget_health(
            view["health"], view.get("health_detail"), view["budget"]
        )


def _definition(spec: TaskSpec) -> dict[str, Any]:
    """A task's definition as compared by :meth:`Service.holds_task` (no paused key)."""
    data: dict[str, Any] = spec.model_dump(mode="json", by_alias=True)
    data.pop("paused", None)
    return data
