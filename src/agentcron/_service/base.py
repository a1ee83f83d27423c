"""What every part of the service shares: its errors, its settings, who is acting,
and the store, clock and schedule look-ups the parts build on.

The errors carry what an HTTP status needs (not found, conflict, invalid, bad
request), the field at fault and the advice (see :mod:`agentcron._service.advice`),
so the API answers 404/409/422/400 without parsing messages, while the CLI prints
the same message as one paragraph, each with the advice in its own words.
"""

from __future__ import annotations

import getpass
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agentcron._service.advice import Advice, Wording, advised
from agentcron.clock import Clock, SystemClock
from agentcron.model import TaskRecord, TaskSpec
from agentcron.policies.budget import BudgetRules
from agentcron.schedules.base import Schedule
from agentcron.store._api_sql import AuditEntry
from agentcron.store.base import Store

# How long a look at the database's write lock waits (see Service.database_busy):
# well inside a browser's 10 s wait for an action's answer.
BUSY_LOOK_S = 2.0

# The words for a change refused because another process holds the database.
BUSY_WORDS = (
    "the database is busy: another process holds it locked (a sqlite3 shell left in a "
    "transaction, a backup or a copy of the file), so nothing was changed; try again "
    "once it is released"
)


class ServiceError(Exception):
    """A request that cannot be done as asked; the message says why and what to do.

    ``field`` names the input at fault (``cron``, ``limit``, ``cursor``) when one is;
    ``problems`` lists ``(location, message)`` pairs when the config rules found
    several; ``advice`` is what the reader can do about it, which each interface says
    in its own terms after the message (:meth:`words`). The base class is a bad
    request (HTTP 400)."""

    kind = "bad-request"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        problems: Sequence[tuple[str, str]] = (),
        advice: Advice | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.problems = list(problems)
        self.advice = advice

    def words(self, wording: Wording) -> str:
        """The message and its advice, as an interface's ``wording`` says it."""
        return advised(str(self), self.advice, wording)


class NotFoundError(ServiceError):
    """No task, run or incident by that name or id (HTTP 404)."""

    kind = "not-found"


class ConflictError(ServiceError):
    """The request is well formed but the state forbids it: the task exists already,
    it belongs to the config file, the incident is closed (HTTP 409)."""

    kind = "conflict"


class InvalidError(ServiceError):
    """A task definition the config file's rules reject (HTTP 422)."""

    kind = "invalid"


@dataclass(frozen=True)
class Defaults:
    timezone: str | None = None
    task_defaults: Mapping[str, Any] | None = None
    # the config's daily budgets (every task's, per agent); a task's own is in its spec
    budgets: BudgetRules = field(default_factory=BudgetRules)


@dataclass(frozen=True)
class Actor:
    """Who asks for a change and through which interface; kept in the audit trail."""

    name: str
    via: str  # cli | api | dashboard | mcp


# The interface serving the current request sets this (the HTTP API per request), so
# that routes which do not pass an actor (the dashboard's) are still audited as theirs.
current_actor: ContextVar[Actor | None] = ContextVar("agentcron_actor", default=None)


@contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    """Changes made inside the block are recorded as ``actor``'s."""
    token = current_actor.set(actor)
    try:
        yield
    finally:
        current_actor.reset(token)


def local_actor(via: str = "cli") -> Actor:
    """The person at this terminal."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers), no USER variable
        name = f"uid {os.getuid()}"
    return Actor(name, via)


def iso(value: datetime | None, zone: ZoneInfo | None = None) -> str | None:
    if value is None:
        return None
    return (value.astimezone(zone) if zone else value).isoformat()


_SCHEDULE_CACHE = 4096  # distinct schedules kept built; a list of 10,000 tasks shares few


class ServiceCore:
    """The store, clock and defaults, with the look-ups every part uses."""

    def __init__(
        self,
        store: Store,
        home: Path,
        clock: Clock | None = None,
        defaults: Defaults | None = None,
        actor: Actor | None = None,
    ) -> None:
        self.store = store
        self.home = home
        self.clock = clock or SystemClock()
        self.defaults = defaults or Defaults()
        self.actor = actor or local_actor()
        # called after a change the scheduler should act on at once (a trigger, a
        # resume, a new schedule, a pause); the daemon wakes its loop with it
        self.on_change: Callable[[], None] | None = None
        self._schedules: OrderedDict[tuple[Any, ...], Schedule] = OrderedDict()

    def close(self) -> None:
        """Close the store (the HTTP API's own service, at shutdown)."""
        self.store.close()

    def database_busy(self) -> bool:
        """Whether another process holds the database locked, so that a change now
        would wait out the store's busy timeout (30 s): interfaces ask before a change
        and refuse at once, nothing tried. A write of a daemon's own lasts
        milliseconds; :data:`BUSY_LOOK_S` tells those apart from a lock held by
        someone else (a sqlite3 shell left in a transaction, a backup)."""
        return self.store.write_blocked(BUSY_LOOK_S)

    # ---- look-ups ---------------------------------------------------------------
    def _zone(self, spec: TaskSpec) -> ZoneInfo:
        return spec.zone(self.defaults.timezone)

    def _zone_named(self, timezone: str | None) -> ZoneInfo:
        """:meth:`_zone` from a task's ``timezone`` key alone (a task list's row)."""
        from agentcron.schedules.zones import resolve_zone

        return resolve_zone(timezone or self.defaults.timezone)

    def _not_yet_written(self) -> str:
        """Why a task may be missing for a moment (see StatusMixin): "" here."""
        return ""

    def _task(self, name: str) -> TaskRecord:
        from agentcron.model.task import TASK_NAME

        if not TASK_NAME.fullmatch(name):
            raise NotFoundError(
                f"no task named {name[:120]!r}: task names are letters, digits, '_', '-' "
                "and '.' (at most 100)",
                field="name",
            )
        rec = self.store.get_task(name)
        if rec is None:
            known = self.store.task_names()  # names only: a typo costs no spec reads
            from difflib import get_close_matches

            hint = get_close_matches(name, known, n=1)
            raise NotFoundError(
                f"no task named {name!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + ("" if known else "; no tasks are defined yet")
                + self._not_yet_written(),
                field="name",
            )
        return rec

    def schedule(self, spec: TaskSpec) -> Schedule:
        """The task's schedule, built once per distinct schedule (lists of many tasks
        ask for every task's period)."""
        from agentcron.schedules.build import build_schedule

        key = (spec.cron, spec.every, spec.anchor, spec.at, spec.timezone, self.defaults.timezone)
        sched = self._schedules.get(key)
        if sched is None:
            sched = build_schedule(spec, self.defaults.timezone)
            self._schedules[key] = sched
            if len(self._schedules) > _SCHEDULE_CACHE:
                self._schedules.popitem(last=False)
        return sched

    def first_fire(self, spec: TaskSpec, after: datetime) -> datetime | None:
        fire = self.schedule(spec).next_after(after)
        return fire.at if fire else None

    def count_fires(self, spec: TaskSpec, start: datetime, end: datetime) -> int:
        """Fires in ``[start, end]`` (capped at 10,000), for "N runs missed"."""
        from agentcron.schedules.base import fires_between

        return 1 + len(fires_between(self.schedule(spec), start, end, limit=10_000))

    def period(self, spec: TaskSpec) -> timedelta:
        return self.schedule(spec).period()

    # ---- changes -----------------------------------------------------------------
    def _audit(
        self,
        action: str,
        task: str | None,
        before: Any = None,
        after: Any = None,
        actor: Actor | None = None,
    ) -> None:
        """Record a change made through an interface (after it was made)."""
        who = actor or current_actor.get() or self.actor
        self.store.add_audit(
            AuditEntry(
                at=self.clock.now(),
                actor=who.name,
                via=who.via,
                action=action,
                task=task,
                before=before,
                after=after,
            )
        )

    def _changed(self) -> None:
        """Wake the scheduler for a change it acts on: this process's daemon through
        ``on_change``, and any daemon of the store through the store's announcement (a
        CLI or MCP server has no daemon of its own; on PostgreSQL every node is told)."""
        if self.on_change is not None:
            self.on_change()
        self.store.announce_change()
