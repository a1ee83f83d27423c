"""Where each draft lands in the target: its name, whether it updates a task, paused or not.

Re-importing updates instead of duplicating: a task in the target that carries the
draft's ``imported_from`` key is updated under its own name (even if it was renamed
since). A new task gets the draft's name, or ``name-2``… when that is taken.

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


@dataclass(frozen=True)
class Placed:
    draft: Draft
    name: str
    update: bool
    paused: bool | None  # None: an update leaves the task's paused state as it is
    key: str = ""  # the key the task carries when it is not the draft's (a closer one)

    @property
    def imported_from(self) -> str:
        return self.key or self.draft.key

    def mapping(self, paused_default: bool | None = None) -> dict[str, Any]:
        """The task as written: the draft's body, ``paused`` and ``imported_from``."""
        out = dict(self.draft.body)
        paused = self.paused if self.paused is not None else paused_default
        if paused is not None:
            out["paused"] = paused
        out["imported_from"] = self.imported_from
        return out


def place(
    plan: Plan,
    existing: Mapping[str, str | None],
    enable: bool,
    foreign: Mapping[str, str | None] | None = None,
) -> tuple[list[Placed], list[Note]]:
    """Place every draft of ``plan``.

    ``existing``: the target's tasks (name -> ``imported_from`` or None). ``foreign``:
    tasks the target cannot write (the config file's, seen from the database): their
    names are not used, and a draft they already carry is reported, not duplicated.
    """
    by_key = {key: name for name, key in existing.items() if key}
    foreign = foreign or {}
    foreign_keys = {key: name for name, key in foreign.items() if key}
    taken = set(existing) | set(foreign)
    placed: list[Placed] = []
    conflicts: list[Note] = []
    for draft in plan.drafts:
        if draft.key in foreign_keys:
            conflicts.append(
                Note(
                    draft.name,
                    "",
                    "skipped",
                    f"already imported into the config file as {foreign_keys[draft.key]!r}; "
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
        key = next((k for k in (*draft.closer_keys, draft.key) if k in by_key), draft.key)
        name = by_key.get(key)
        if name is not None:
            kept = "" if key == draft.key else key
            placed.append(Placed(draft, name, True, False if enabled else None, kept))
        else:
            placed.append(Placed(draft, unique(draft.name, taken), False, not enabled))
    return placed, conflicts


def not_in_source(
    plan: Plan, placed: list[Placed], existing: Mapping[str, str | None]
) -> list[tuple[str, str]]:
    """The target's tasks imported from this kind of source before whose key this file
    does not give (name, key), to be said: a job removed at the source keeps running
    here until it is removed here too, and a re-import that only says what it updates
    leaves it running unseen. (From another file of the same kind they are listed too:
    the key does not say which file.)"""
    placed_drafts = {id(item.draft) for item in placed}
    given = {item.imported_from for item in placed} | {
        draft.key for draft in plan.drafts if id(draft) not in placed_drafts
    }
    prefix = f"{plan.source}:"
    return sorted(
        (name, key)
        for name, key in existing.items()
        if key is not None and key.startswith(prefix) and key not in given
    )
