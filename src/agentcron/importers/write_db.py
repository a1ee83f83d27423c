"""Writing imported tasks into the database, through :class:`agentcron.service.Service` only.

Tasks land as ``source: api`` tasks (``Service.add_task(..., replace=True)``), found
again on a re-import by the ``imported_from`` their spec carries. Every task is
validated before the first one is written, so a bad one changes nothing; one the
database holds unchanged is not written again (its record read through the
service's store).
"""

from __future__ import annotations

from typing import Any

from agentcron.config.errors import ConfigError
from agentcron.config.loader import validate_task_mapping
from agentcron.importers.place import Placed, schedule_of


class DbImportError(Exception):
    """The tasks were not written; the message lists every problem."""


def existing_tasks(
    service: Any,
) -> tuple[
    dict[str, str | None], dict[str, str | None], dict[str, bool], dict[str, tuple[str, ...]]
]:
    """(the database's own tasks, the config file's tasks, paused states, schedules as
    :func:`schedule_of` gives them), each task's ``imported_from`` by name."""
    own: dict[str, str | None] = {}
    from_file: dict[str, str | None] = {}
    paused: dict[str, bool] = {}
    schedules: dict[str, tuple[str, ...]] = {}
    for view in service.list_tasks():
        name = str(view["name"])
        spec = service.show_task(name).get("spec", {})
        key = spec.get("imported_from")
        (from_file if view.get("source") == "file" else own)[name] = str(key) if key else None
        paused[name] = bool(view.get("paused"))
        schedules[name] = schedule_of(spec)
    return own, from_file, paused, schedules


def apply_to_db(
    service: Any, placed: list[Placed], paused_now: dict[str, bool]
) -> list[dict[str, Any]]:
    """Add or replace each task; returns their views. Raises :class:`DbImportError`.

    A task the database already holds as it would be written is left alone: a
    re-import of an unchanged file writes nothing and audits nothing (it wrote a
    ``task.replace`` with no change for every task, each time)."""
    rows = [(item.name, item.mapping(paused_now.get(item.name))) for item in placed]
    unchanged, problems = _unchanged(service, rows)
    if problems:
        raise DbImportError("nothing was written:\n" + "\n".join(problems))
    return [
        service.show_task(name)
        if name in unchanged
        else service.add_task(name, mapping, replace=True)
        for name, mapping in rows
    ]


def unchanged_in_db(service: Any, placed: list[Placed], paused_now: dict[str, bool]) -> set[str]:
    """The names of ``placed`` the database already holds as :func:`apply_to_db` would
    write them: the report says so instead of "updates"."""
    rows = [(item.name, item.mapping(paused_now.get(item.name))) for item in placed]
    return _unchanged(service, rows)[0]


def _unchanged(service: Any, rows: list[tuple[str, dict[str, Any]]]) -> tuple[set[str], list[str]]:
    """(the names the database holds unchanged, every problem of a task that is invalid)."""
    problems: list[str] = []
    unchanged = set()
    for name, mapping in rows:
        try:
            spec = validate_task_mapping(name, mapping, service.defaults.task_defaults)
        except ConfigError as exc:
            problems += exc.lines()
            continue
        if service.holds_task(name, spec):
            unchanged.add(name)
    return unchanged, problems
