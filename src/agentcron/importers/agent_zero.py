"""Agent Zero's scheduler tasks (``tasks.json`` or ``tasks.yaml``: ``{"tasks": [...]}``).

Each task has a ``type``: ``scheduled`` (a cron written as five text fields
``minute``/``hour``/``day``/``month``/``weekday`` plus a ``timezone`` that may be
an alias such as ``local``), ``planned`` (a list of future times to run at) or
``adhoc`` (run only by hand, with a token). Its ``state`` is ``idle``,
``running``, ``disabled`` or ``error``; Agent Zero never runs an errored task again,
agentcron retries what is transient, so errored tasks come over as live ones.

Mapping: scheduled -> ``cron:``; each future time of a plan -> one ``at:`` task;
adhoc -> not imported (agentcron needs a schedule). ``system_prompt`` and
``prompt`` become an ``llm:`` task or a command for ``--agent-cmd``.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

from agentcron.importers._core import (
    Draft,
    ImportFileError,
    ImportOptions,
    Note,
    Plan,
    one_line,
    parse_time,
    prompt_action,
    read_json,
    read_yaml,
    shown,
    slug,
    unique,
    unknown_fields,
    zone_name,
)

SOURCE = "agent-zero"
_KNOWN = frozenset(
    {
        "uuid",
        "context_id",
        "state",
        "name",
        "system_prompt",
        "prompt",
        "attachments",
        "project_name",
        "project_color",
        "created_at",
        "updated_at",
        "last_run",
        "last_result",
        "type",
        "schedule",
        "token",
        "plan",
        "dedicated_context",
    }
)
_SCHEDULE_FIELDS = ("minute", "hour", "day", "month", "weekday")
_STATES = frozenset({"idle", "running", "disabled", "error"})


def plan_file(path: Path, options: ImportOptions) -> Plan:
    """Read ``path`` and make the plan; :class:`ImportFileError` when the file is unusable."""
    reader = read_yaml if path.suffix.lower() in (".yaml", ".yml") else read_json
    data, remarks = reader(path)
    plan = Plan(SOURCE, str(path))
    plan.notes += [Note("file", "", "warning", r) for r in remarks]
    if isinstance(data, dict) and isinstance(data.get("tasks"), list):
        tasks = data["tasks"]
        plan.notes += [
            Note("file", str(k), "warning", "unknown top-level field, not imported")
            for k in data
            if k != "tasks"
        ]
    elif isinstance(data, list):
        tasks = data
    else:
        raise ImportFileError(
            f'{shown(path)}: not an Agent Zero task file: expected {{"tasks": [...]}}, '
            f"found {_shape(data)}"
        )
    taken: set[str] = set()
    for index, task in enumerate(tasks):
        where = f"tasks[{index}]"
        if not isinstance(task, dict):
            plan.skipped.append(
                Note(where, "", "error", f"a task must be an object, not {_shape(task)}")
            )
            continue
        try:
            plan.drafts += _task(task, where, options, taken, plan)
        except ValueError as exc:
            plan.skipped.append(Note(_label(task, where), "", "error", str(exc)))
    return plan


def _task(
    task: dict[str, Any], where: str, options: ImportOptions, taken: set[str], plan: Plan
) -> list[Draft]:
    uuid = task.get("uuid")
    if not isinstance(uuid, str) or not uuid.strip():
        raise ValueError("no uuid: cannot tell this task apart on a later import")
    kind = task.get("type")
    label = _label(task, where)
    if kind == "adhoc":
        plan.skipped.append(
            Note(
                label,
                "type",
                "skipped",
                "adhoc tasks run only when started by hand; agentcron needs a schedule "
                "(`agentcron add NAME --at TIME …` and `agentcron trigger NAME` cover it)",
            )
        )
        return []
    prompt = task.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("no prompt: nothing to run")
    system = task.get("system_prompt")
    action, prompt_notes = prompt_action(
        prompt, system if isinstance(system, str) else None, options
    )
    state = task.get("state", "idle")
    base = slug(str(task.get("name") or ""), fallback=f"agent-zero-{uuid[:8]}")
    if kind == "scheduled":
        schedules = [_scheduled(task)]
    elif kind == "planned":
        schedules = _planned(task, label, options, plan)
    else:
        raise ValueError(f"unknown task type {kind!r} (expected scheduled, planned or adhoc)")
    drafts = []
    for n, (schedule, suffix, schedule_notes) in enumerate(schedules):
        name = unique(base if n == 0 else f"{base}-{n + 1}", taken)
        body: dict[str, Any] = {}
        if task.get("name"):
            body["description"] = str(task["name"])
        body.update(schedule)
        body.update(action)
        draft = Draft(
            name=name,
            key=f"{SOURCE}:{uuid}{suffix}",
            label=f"Agent Zero task {label}",
            body=body,
            enabled_at_source=state != "disabled",
            where=label,
        )
        for field_name, kind_, reason in [*schedule_notes, *prompt_notes]:
            draft.note(field_name, kind_, reason)
        _state_notes(draft, task, state)
        _dropped(draft, task)
        draft.notes += unknown_fields(draft, task, _KNOWN, "Agent Zero task")
        drafts.append(draft)
    return drafts


def _scheduled(task: dict[str, Any]) -> tuple[dict[str, Any], str, list[Any]]:
    schedule = task.get("schedule")
    if not isinstance(schedule, dict):
        raise ValueError("a scheduled task needs a schedule object")
    parts = []
    missing = [name for name in _SCHEDULE_FIELDS if name not in schedule]
    for field_name in _SCHEDULE_FIELDS:
        value = schedule.get(field_name, "*")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError(f"schedule.{field_name} must be text such as '*/5', not {value!r}")
        text = str(value).strip()
        if not text or " " in text:
            raise ValueError(f"schedule.{field_name} must be one cron field, not {value!r}")
        parts.append(text)
    out: dict[str, Any] = {"cron": " ".join(parts)}
    notes = []
    if missing:
        fields = ", ".join(f"schedule.{name}" for name in missing)
        notes.append(
            (
                "schedule",
                "approximated",
                f"{fields} missing: read as '*' (every one), so it runs {out['cron']!r}; "
                "check that this is the schedule meant",
            )
        )
    zone, zone_note = zone_name(schedule.get("timezone"))
    if zone is not None:
        out["timezone"] = zone
    if zone_note:
        notes.append(("schedule.timezone", "approximated", zone_note))
    notes += [
        (f"schedule.{key}", "warning", "unknown schedule field, not imported")
        for key in schedule
        if key not in (*_SCHEDULE_FIELDS, "timezone")
    ]
    return out, "", notes


def _planned(
    task: dict[str, Any], label: str, options: ImportOptions, plan: Plan
) -> list[tuple[dict[str, Any], str, list[Any]]]:
    spec = task.get("plan")
    if not isinstance(spec, dict):
        raise ValueError("a planned task needs a plan object with todo times")
    todo = spec.get("todo") or []
    if not isinstance(todo, list):
        raise ValueError("plan.todo must be a list of times")
    out = []
    for raw in todo:
        when = parse_time(raw)
        aware = when if when.tzinfo is not None else when.replace(tzinfo=options.now.tzinfo)
        if aware <= options.now:
            plan.skipped.append(
                Note(label, "plan.todo", "skipped", f"planned run at {raw} is already past")
            )
            continue
        notes = []
        if when.tzinfo is None:
            notes.append(
                (
                    "plan.todo",
                    "approximated",
                    f"{raw} has no zone: read in the task's zone (the config's timezone: "
                    "or this machine's)",
                )
            )
        stamp = aware.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        out.append(({"at": when.isoformat()}, f"@{stamp}", notes))
    if spec.get("in_progress"):
        plan.skipped.append(
            Note(
                label,
                "plan.in_progress",
                "skipped",
                f"the run planned for {spec['in_progress']} was in progress; it is not repeated",
            )
        )
    if not out:
        plan.skipped.append(Note(label, "plan", "skipped", "no planned runs left ahead"))
    return out


def _state_notes(draft: Draft, task: dict[str, Any], state: Any) -> None:
    if state == "disabled":
        draft.note("state", "warning", "disabled at the source")
    elif state == "error":
        last = task.get("last_result")
        detail = f" (last result: {one_line(last)})" if last else ""
        draft.note(
            "state",
            "warning",
            "in error at the source, where it never runs again; agentcron retries "
            f"transient failures and tells you about the rest{detail}",
        )
    elif state == "running":
        draft.note("state", "warning", "was running when the file was written")
    elif state not in _STATES:
        draft.note("state", "warning", f"unknown state {state!r}; imported as idle")


def _dropped(draft: Draft, task: dict[str, Any]) -> None:
    if task.get("context_id"):
        draft.note(
            "context_id",
            "dropped",
            "agentcron starts every run fresh: the Agent Zero chat it ran in does not come along",
        )
    if task.get("attachments"):
        draft.note(
            "attachments",
            "dropped",
            "attachments are not sent; put their content or paths into the prompt",
        )
    if task.get("project_name"):
        draft.note(
            "project_name",
            "dropped",
            f"Agent Zero project {task['project_name']!r} has no counterpart here",
        )


def _label(task: dict[str, Any], where: str) -> str:
    name = task.get("name") if isinstance(task, dict) else None
    return f"{where} {name!r}" if name else where


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        return "an object with " + (", ".join(sorted(map(str, value))[:5]) or "no keys")
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"
