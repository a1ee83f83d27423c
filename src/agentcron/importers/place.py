"""Where each draft lands in the target: its name, whether it updates a task, paused or not.

Re-importing updates instead of duplicating: a task in the target that carries the
draft's ``imported_from`` key is updated under its own name (even if it was renamed
since); a crontab line is found by its command and schedule before its command alone
(:func:`match`). A new task gets the draft's name, or ``name-2``… when that is taken.

Paused: a new task is written paused unless ``--enable``, and a job disabled at
the source stays paused even then. An updated task keeps the paused state it has
in agentcron (a re-import never pauses what you resumed, nor resumes what you
paused), except that ``--enable`` resumes the ones enabled at the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentcron.importers._core import Draft, Note, Plan, unique

_SCHEDULE = ("cron", "every", "anchor", "at", "timezone")


@dataclass(frozen=True)
class Placed:
    draft: Draft
    name: str
    update: bool
    paused: bool | None  # None: an update leaves the task's paused state as it is

    @property
    def imported_from(self) -> str:
        """The key the task carries once written: the draft's (an updated task found by a
        looser key is given its line's own)."""
        return self.draft.key

    def mapping(self, paused_default: bool | None = None) -> dict[str, Any]:
        """The task as written: the draft's body, ``paused`` and ``imported_from``."""
        out = dict(self.draft.body)
        paused = self.paused if self.paused is not None else paused_default
        if paused is not None:
            out["paused"] = paused
        out["imported_from"] = self.imported_from
        return out


def schedule_of(task: Mapping[str, Any]) -> tuple[str, ...]:
    """What a task's schedule is, to compare a draft's with a task's."""
    return tuple("" if task.get(key) is None else str(task.get(key)) for key in _SCHEDULE)


def place(
    plan: Plan,
    existing: Mapping[str, str | None],
    enable: bool,
    foreign: Mapping[str, str | None] | None = None,
    schedules: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[list[Placed], list[Note]]:
    """Place every draft of ``plan``.

    ``existing``: the target's tasks (name -> ``imported_from`` or None). ``foreign``:
    tasks the target cannot write (the config file's, seen from the database): their
    names are not used, and a draft they already carry is reported, not duplicated.
    ``schedules``: each of those tasks' :func:`schedule_of`, to find a task by its
    loose key and schedule (see :func:`match`).
    """
    foreign = foreign or {}
    tasks = {**{n: k for n, k in foreign.items() if n not in existing}, **existing}
    found = match(plan.drafts, tasks, schedules or {})
    taken = set(existing) | set(foreign)
    placed: list[Placed] = []
    conflicts: list[Note] = []
    for index, draft in enumerate(plan.drafts):
        name = found.get(index)
        if name is not None and name not in existing:
            conflicts.append(
                Note(
                    draft.name,
                    "",
                    "skipped",
                    f"already imported into the config file as {name!r}; "
                    "import into the file to update it",
                )
            )
            continue
        enabled = enable and draft.enabled_at_source
        if enable and not draft.enabled_at_source:
            draft.note(
                "enabled",
                "warning",
                "disabled at the source: --enable leaves it paused "
                "(`agentcron resume NAME` when you want it here)",
            )
        if name is not None:
            placed.append(Placed(draft, name, True, False if enabled else None))
        else:
            placed.append(Placed(draft, unique(draft.name, taken), False, not enabled))
    return placed, conflicts


def match(
    drafts: list[Draft],
    tasks: Mapping[str, str | None],
    schedules: Mapping[str, tuple[str, ...]],
) -> dict[int, str]:
    """The task each draft updates (draft's index -> task name), each task at most once.

    Across all drafts, in three rounds, so that a task whose job is still in the file
    keeps it however the jobs moved: a task carrying the draft's own key (a crontab
    line's command and schedule); then, for a draft with a ``loose_key``, a task of
    that loose key whose schedule is the draft's now (one written with the bare command
    key by an earlier importer); then one of that loose key alone (a schedule edited at
    the source), its own key first. Within a round, drafts and tasks pair in order.
    """
    families = {draft.loose_key for draft in drafts if draft.loose_key}
    by_key: dict[str, list[str]] = {}
    by_family: dict[str, list[str]] = {}
    for name, key in tasks.items():
        if not key:
            continue
        by_key.setdefault(key, []).append(name)
        family = _family(key, families)
        if family is not None:
            by_family.setdefault(family, []).append(name)
    free = {name for name, key in tasks.items() if key}
    found: dict[int, str] = {}

    def take(index: int, names: list[str], schedule: tuple[str, ...] | None = None) -> None:
        """The first free task of ``names`` (whose schedule is ``schedule``, if given)."""
        name = next((n for n in names if n in free and schedule in (None, schedules.get(n))), None)
        if name is not None:
            found[index] = name
            free.discard(name)

    for index, draft in enumerate(drafts):
        if draft.key != draft.loose_key:
            take(index, by_key.get(draft.key, []))
    for index, draft in enumerate(drafts):
        if index not in found and draft.loose_key:
            take(index, by_family.get(draft.loose_key, []), schedule_of(draft.body))
    for index, draft in enumerate(drafts):
        if index not in found and draft.loose_key:
            take(index, [*by_key.get(draft.key, []), *by_family.get(draft.loose_key, [])])
    return found


def _family(key: str, families: set[str]) -> str | None:
    """The loose key ``key`` is, or extends with ``-…``, if one of ``families``."""
    if key in families:
        return key
    cut = key.find("-")
    while cut != -1:
        if key[:cut] in families:
            return key[:cut]
        cut = key.find("-", cut + 1)
    return None


def not_in_source(
    plan: Plan, placed: list[Placed], existing: Mapping[str, str | None]
) -> list[tuple[str, str]]:
    """The target's tasks imported from this kind of source before that no job of this
    file updates (name, key), to be said: a job removed at the source keeps running
    here until it is removed here too, and a re-import that only says what it updates
    leaves it running unseen. (From another file of the same kind they are listed too:
    the key does not say which file.)"""
    updated = {item.name for item in placed if item.update}
    placed_drafts = {id(item.draft) for item in placed}
    given = {draft.key for draft in plan.drafts if id(draft) not in placed_drafts}
    prefix = f"{plan.source}:"
    return sorted(
        (name, key)
        for name, key in existing.items()
        if key is not None and key.startswith(prefix) and name not in updated and key not in given
    )
