"""A task as a list shows it, read from a few stored keys instead of the whole spec.

`agentcron list`, ``GET /api/v1/tasks``, the dashboard and the MCP server show every
task's schedule, zone, action and description, and its health. Parsing each whole
stored spec for that cost 6-7 s and ~700 MB over 100,000 tasks; a :class:`TaskListing`
holds the shown keys (read by :mod:`._spec_sql`) and loads the whole spec only when
asked for it, which health does only for the few tasks whose answer depends on it
(a run in progress, an open incident, a fire already late).

Those keys are written beside each spec, in the ``shown_*`` columns, by the store's
own writer (:func:`shown_row`), so a list reads a few short columns instead of the
spec's JSON (and the watchdog finds the smallest ``overdue_after`` in an index). A row
without them (``shown_of`` is NULL: written by an older version, or its spec changed by
hand, see migration 12) is read from its spec's keys as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from agentcron.model import TaskRecord, TaskSource, TaskSpec
from agentcron.model.task import ACTION_KEYS, schedule_text
from agentcron.schedules.zones import resolve_zone
from agentcron.store._spec_sql import KeyRead, field_value, spec_error

SHOWN_KEYS = ("cron", "every", "at", "timezone", "description")
PRESENT_KEYS = ACTION_KEYS  # only whether each is set: which action the task has


class TaskListing:
    """One task as a list shows it. ``spec`` is the whole validated spec, loaded on
    first use (by name, through ``load``) and kept. Read-only by convention; a plain
    class with slots because 100,000 of them are built per list (a frozen dataclass's
    ``__init__`` cost more than reading their keys)."""

    __slots__ = (
        "_spec",
        "action_kind",
        "budgeted",
        "description",
        "load",
        "name",
        "next_fire_at",
        "paused",
        "schedule_text",
        "source",
        "timezone",
    )

    def __init__(
        self,
        name: str,
        source: TaskSource,
        paused: bool,
        next_fire_at: datetime | None,
        schedule_text: str,
        timezone: str | None,
        action_kind: str,
        description: str | None,
        load: Callable[[str], TaskSpec],
        budgeted: bool | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.paused = paused
        self.next_fire_at = next_fire_at
        self.schedule_text = schedule_text
        self.timezone = timezone
        self.action_kind = action_kind
        self.description = description
        self.load = load
        # whether its spec sets a budget; None: not known without reading the spec
        self.budgeted = budgeted
        self._spec: TaskSpec | None = None

    def __repr__(self) -> str:
        return f"TaskListing({self.name!r}, {self.schedule_text!r}, {self.action_kind!r})"

    @property
    def spec(self) -> TaskSpec:
        if self._spec is None:
            self._spec = self.load(self.name)
        return self._spec

    @classmethod
    def of(cls, rec: TaskRecord) -> TaskListing:
        """The listing of a record already read whole (``show``, a change's answer)."""
        spec = rec.spec
        listing = cls(
            rec.name,
            rec.source,
            rec.paused,
            rec.next_fire_at,
            spec.schedule_text,
            spec.timezone,
            spec.action_kind,
            spec.description,
            _never_loaded,
            spec.budget is not None,
        )
        listing._spec = spec
        return listing


def _never_loaded(name: str) -> TaskSpec:  # pragma: no cover - its spec is set
    raise AssertionError(f"the listing of {name!r} was built with its spec")


# the columns a list reads, written by shown_row (keep the two in one order)
SHOWN_COLUMNS = (
    "shown_of, shown_schedule, shown_zone, shown_action, shown_description, shown_budget, "
    "shown_overdue_after"
)
SHOWN_SET = ", ".join(f"{c.strip()} = ?" for c in SHOWN_COLUMNS.split(","))


def shown_row(
    spec: TaskSpec, body: str
) -> tuple[str, str, str | None, str, str | None, int, float | None]:
    """The ``SHOWN_COLUMNS`` of a spec stored as ``body``: the digest of the body first
    (it changes with every change of the spec, which is how a row whose spec was
    rewritten elsewhere is told apart: see migration 12's trigger)."""
    return (
        spec_digest(body),
        spec.schedule_text,
        spec.timezone,
        spec.action_kind,
        spec.description,
        int(spec.budget is not None),
        None if spec.overdue_after is None else spec.overdue_after.total_seconds(),
    )


def spec_digest(body: str) -> str:
    return hashlib.blake2b(body.encode(), digest_size=8).hexdigest()


class ListingReader:
    """Turns task rows (see :meth:`rows`) into listings, validating each distinct
    stored value once (a fleet shares few schedules and zones); a value its field
    rejects is an error naming the task."""

    def __init__(self, read: KeyRead, load: Callable[[str], TaskSpec]) -> None:
        self.read = read
        self.load = load
        self._memo: dict[tuple[str, Any], Any] = {}
        self._words: dict[tuple[Any, Any, Any], str] = {}

    def rows(self, rows: Iterable[tuple[Any, ...]]) -> list[TaskListing]:
        """Rows of ``name, source, paused, next_fire_at, <SHOWN_COLUMNS>, <keys>``;
        ``<keys>`` (read only where ``shown_of`` is NULL) is the spec's keys' array."""
        from agentcron.store._rows import dt, source_of
        from agentcron.store.errors import unreadable_row

        out = []
        valid, from_keys, load = self._valid, self.from_keys, self.load
        # a fleet shares few next fire times: one datetime each (its hash is then
        # computed once, where the list writes each time once)
        times: dict[float, datetime | None] = {}
        for name, source, paused, next_fire_at, of, words, zone, action, desc, bud, _, text in rows:
            try:
                if of is None:
                    words, zone, action, desc = from_keys(name, text)
                    bud = None
                else:
                    zone = valid(name, "timezone", zone)
                    if action not in PRESENT_KEYS:
                        raise spec_error(name, f"its stored action is {action!r}")
                out.append(
                    TaskListing(
                        name,
                        source_of(source),
                        bool(paused),
                        times[next_fire_at]
                        if next_fire_at in times
                        else times.setdefault(next_fire_at, dt(next_fire_at)),
                        words,
                        zone,
                        action,
                        desc,
                        load,
                        None if bud is None else bool(bud),
                    )
                )
            except (ValueError, TypeError, OverflowError) as exc:
                raise unreadable_row("task", name, exc) from None
        return out

    def from_keys(self, name: str, text: Any) -> tuple[str, str | None, str, str | None]:
        """Schedule words, zone, action and description from the spec's keys
        (``text``: the array ``self.read`` builds), each validated as its field."""
        valid = self._valid
        cron, every, at, zone, description, action = self.read.values(name, text)
        if action is None:
            raise spec_error(name, "it has no action (command, python, http or llm)")
        if description is not None and not isinstance(description, str):
            description = field_value(name, "description", description)  # raises
        words = self._schedule_words(
            name, valid(name, "cron", cron), valid(name, "every", every), at
        )
        return words, valid(name, "timezone", zone), action, description

    def _valid(self, name: str, key: str, raw: Any) -> Any:
        try:
            return self._memo[key, raw]
        except KeyError:
            pass
        except TypeError:  # a list or an object where a scalar belongs
            return field_value(name, key, raw)  # raises, naming the task
        value = field_value(name, key, raw)
        if key == "timezone" and value is not None:
            try:
                resolve_zone(value)
            except ValueError as exc:
                raise spec_error(name, f"timezone: {exc}") from None
        self._memo[key, raw] = value
        return value

    def _schedule_words(self, name: str, cron: Any, every: Any, at_raw: Any) -> str:
        key = (cron, every, at_raw)
        words = self._words.get(key)
        if words is None:
            at = self._valid(name, "at", at_raw)
            if sum(v is not None for v in (cron, every, at)) != 1:
                raise spec_error(name, "it needs exactly one schedule: cron, every or at")
            words = self._words[key] = schedule_text(cron, every, at)
        return words
