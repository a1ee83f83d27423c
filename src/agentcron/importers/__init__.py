"""Importers: tasks from Agent Zero, Hermes, OpenClaw and crontabs, as agentcron tasks.

``agentcron import SOURCE FILE`` reads a foreign job file into a :class:`Plan`
(:func:`make_plan`), places its drafts against the target (:func:`place`), shows
what it would write and every field dropped or approximated, and with ``--apply``
writes the config file (:func:`apply_to_file`) or the database
(:func:`apply_to_db`). One module per source; ``_core`` holds what they share.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agentcron.importers import agent_zero, crontab, hermes, openclaw
from agentcron.importers._core import (
    LLM_WARNING,
    SOURCE_NAMES,
    Draft,
    ImportFileError,
    ImportOptions,
    Note,
    Plan,
    PromptTargetMissing,
    shown,
)
from agentcron.importers.place import Placed, place
from agentcron.importers.write_db import DbImportError, apply_to_db
from agentcron.importers.write_file import apply_to_file

_PLANNERS: dict[str, Callable[[Path, ImportOptions], Plan]] = {
    "agent-zero": agent_zero.plan_file,
    "hermes": hermes.plan_file,
    "openclaw": openclaw.plan_file,
    "crontab": crontab.plan_file,
}
SOURCES = tuple(_PLANNERS)


def make_plan(source: str, path: Path, options: ImportOptions) -> Plan:
    """The plan for importing ``path`` written by ``source``.

    Raises ValueError for an unknown source, :class:`ImportFileError` for a file
    that cannot be imported, :class:`PromptTargetMissing` when agent prompts have
    no target.
    """
    planner = _PLANNERS.get(source)
    if planner is None:
        raise ValueError(f"unknown source {source!r}: use one of {', '.join(SOURCES)}")
    plan = planner(path, options)
    plan.file = shown(path)  # `-`: standard input
    return _checked(plan)


def _checked(plan: Plan) -> Plan:
    """Drafts the config's own rules refuse (a cron field out of range…) move to the
    jobs not imported, with the rule's message."""
    from agentcron.config._env import current_environ
    from agentcron.config.errors import ConfigError
    from agentcron.config.loader import validate_task_mapping
    from agentcron.importers._targets import SAMPLE_VALUES

    # the variable an llm task's key is read from is one of those to set, not a fault
    # of the job: the report lists it, and --apply refuses while it is unset
    keys = {
        draft.body["llm"].get("api_key_env")
        for draft in plan.drafts
        if isinstance(draft.body.get("llm"), dict)
    }
    wanted = set(plan.variables) | {name for name in keys if isinstance(name, str)}
    samples = {name: SAMPLE_VALUES.get(name, "sample") for name in wanted}
    environ = {**samples, **current_environ()}
    kept = []
    first_of: dict[str, Draft] = {}
    for draft in plan.drafts:
        first = first_of.setdefault(draft.key, draft)
        if first is not draft:
            # both would be placed on the one task that carries the key: one job's
            # changes lost on every later import, and said to be applied
            plan.skipped.append(
                Note(
                    draft.where or draft.name,
                    "id",
                    "error",
                    f"the same id as {first.where or first.name} ({draft.key}): a later "
                    "import could not tell them apart; give one of them an id of its own",
                )
            )
            continue
        raw = {**draft.body, "imported_from": draft.key}
        try:
            validate_task_mapping(draft.name, raw, environ=environ)
        except ConfigError as exc:
            reason = "; ".join(p.message for p in exc.problems)
            plan.skipped.append(Note(draft.where or draft.name, "", "error", reason))
            continue
        kept.append(draft)
    plan.drafts = kept
    return plan


__all__ = [
    "LLM_WARNING",
    "SOURCES",
    "SOURCE_NAMES",
    "DbImportError",
    "Draft",
    "ImportFileError",
    "ImportOptions",
    "Note",
    "Placed",
    "Plan",
    "PromptTargetMissing",
    "apply_to_db",
    "apply_to_file",
    "make_plan",
    "place",
]
