"""Hermes cron jobs (``~/.hermes/cron/jobs.json``).

The file is ``{"jobs": [...], "updated_at": …}``, or a bare list, or a map keyed
by job id. A job's ``schedule`` is ``{kind: once, run_at}``, ``{kind: interval,
minutes}`` or ``{kind: cron, expr}``; ``repeat: {times, completed}`` bounds its
runs; ``enabled``/``state`` (``scheduled``, ``paused``, ``completed``…) say whether
it still fires; ``deliver`` is a comma-separated list of ``origin`` (the chat the
job was made in, from ``origin``), ``local`` (kept on disk only) and
``platform[:chat[:thread]]``.

Deliveries become Apprise URLs whose bot token is ``${TELEGRAM_BOT_TOKEN}`` (or
``${SLACK_BOT_TOKEN}``), the variables Hermes itself reads from its ``.env``.

Times: Hermes writes them with their offset; a time without one (``run_at``,
``next_run_at`` of older versions, or edited by hand) Hermes reads as the wall time
of the machine it runs on (``cron/jobs.py``'s ``_ensure_aware``: system-local), not
in its configured ``timezone``. The import reads it so too, in this machine's zone
(``/etc/localtime``), and writes it with its offset: read in the config's
``timezone:`` instead, an interval's anchor moved by the zones' difference and runs
were lost. When this machine's zone cannot be named the time is written as it
stands, and the job's notes say so.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agentcron.importers import _targets
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
    shown,
    slug,
    unique,
    unknown_fields,
    zone_name,
)
from agentcron.importers._zone import machine_zone

SOURCE = "hermes"
_KNOWN = frozenset(
    {
        "id",
        "name",
        "prompt",
        "skills",
        "skill",
        "model",
        "provider",
        "base_url",
        "provider_snapshot",
        "model_snapshot",
        "script",
        "no_agent",
        "context_from",
        "schedule",
        "schedule_display",
        "repeat",
        "enabled",
        "state",
        "paused_at",
        "paused_reason",
        "created_at",
        "updated_at",
        "next_run_at",
        "last_run_at",
        "last_status",
        "last_error",
        "last_delivery_error",
        "last_delivery_retry",
        "deliver",
        "origin",
        "enabled_toolsets",
        "workdir",
        "timezone",
        "profile",
        "attach_to_session",
        "last_session_id",
        "last_output_path",
    }
)
_TOP = frozenset({"jobs", "updated_at", "version"})


def plan_file(path: Path, options: ImportOptions) -> Plan:
    """Read ``path`` and make the plan; :class:`ImportFileError` when the file is unusable."""
    data, remarks = read_json(path)
    plan = Plan(SOURCE, str(path))
    plan.notes += [Note("file", "", "warning", r) for r in remarks]
    jobs = _jobs(data, path, plan)
    taken: set[str] = set()
    for where, job in jobs:
        if not isinstance(job, dict):
            plan.skipped.append(Note(where, "", "error", "a job must be an object"))
            continue
        label = f"{where} {job['name']!r}" if job.get("name") else where
        try:
            draft = _job(job, where, label, options, taken, plan)
        except ValueError as exc:
            plan.skipped.append(Note(label, "", "error", str(exc)))
            continue
        if draft is not None:
            plan.drafts.append(draft)
    return plan


def _jobs(data: Any, path: Path, plan: Plan) -> list[tuple[str, Any]]:
    """The jobs of any of the three shapes, each with where it stands in the file."""
    if isinstance(data, list):
        return [(f"jobs[{i}]", job) for i, job in enumerate(data)]
    if not isinstance(data, dict):
        raise ImportFileError(
            f'{shown(path)}: not a Hermes jobs file: expected {{"jobs": [...]}}, a list of jobs '
            "or a map of jobs by id"
        )
    if "jobs" in data:
        plan.notes += [
            Note("file", str(k), "warning", "unknown top-level field, not imported")
            for k in data
            if k not in _TOP
        ]
        inner = data["jobs"]
        if isinstance(inner, list):
            return [(f"jobs[{i}]", job) for i, job in enumerate(inner)]
        if isinstance(inner, dict):
            return [(f"jobs.{k}", _with_id(k, job)) for k, job in inner.items()]
        raise ImportFileError(f'{shown(path)}: "jobs" must be a list or a map of jobs')
    if data and all(isinstance(job, dict) for job in data.values()):
        return [(str(k), _with_id(k, job)) for k, job in data.items()]
    raise ImportFileError(
        f'{shown(path)}: not a Hermes jobs file: expected {{"jobs": [...]}}, a list of jobs '
        "or a map of jobs by id"
    )


def _with_id(key: str, job: Any) -> Any:
    if isinstance(job, dict) and not job.get("id"):
        return {**job, "id": key}
    return job


def _job(
    job: dict[str, Any],
    where: str,
    label: str,
    options: ImportOptions,
    taken: set[str],
    plan: Plan,
) -> Draft | None:
    job_id = job.get("id")
    if not isinstance(job_id, str | int) or not str(job_id).strip():
        raise ValueError("no id: cannot tell this job apart on a later import")
    state = job.get("state")
    if state == "completed":
        plan.skipped.append(Note(label, "state", "skipped", "completed at the source"))
        return None
    schedule, schedule_notes = _schedule(job, options)
    if schedule is None:
        plan.skipped.append(Note(label, "schedule", "skipped", schedule_notes[0][2]))
        return None
    action, action_notes = _action(job, options)
    name = unique(slug(str(job.get("name") or ""), fallback=f"hermes-{job_id}"), taken)
    body: dict[str, Any] = {}
    if job.get("name"):
        body["description"] = str(job["name"])
    body.update(schedule)
    body.update(action)
    enabled = job.get("enabled", True) is not False and state != "paused"
    draft = Draft(name, f"{SOURCE}:{job_id}", f"Hermes job {label}", body, enabled, where=label)
    for field_name, kind, reason in [*schedule_notes, *action_notes]:
        draft.note(field_name, kind, reason)
    _deliver(draft, job, plan)
    _state(draft, job, enabled)
    draft.notes += unknown_fields(draft, job, _KNOWN, "Hermes job")
    return draft


def _schedule(
    job: dict[str, Any], options: ImportOptions
) -> tuple[dict[str, Any] | None, list[Any]]:
    schedule = job.get("schedule")
    if not isinstance(schedule, dict):
        raise ValueError("no schedule object")
    kind = schedule.get("kind")
    notes: list[Any] = []
    out: dict[str, Any] = {}
    raw_repeat = job.get("repeat")
    repeat: dict[str, Any] = raw_repeat if isinstance(raw_repeat, dict) else {}
    times, done = repeat.get("times"), repeat.get("completed") or 0
    if kind == "once":
        when, note = _hermes_time(parse_time(schedule.get("run_at")), "schedule.run_at")
        notes += [note] if note else []
        aware = when if when.tzinfo is not None else when.replace(tzinfo=options.now.tzinfo)
        if aware <= options.now:
            return None, [
                ("schedule.run_at", "skipped", f"its one run at {schedule.get('run_at')} is past")
            ]
        out["at"] = when.isoformat()
    elif kind == "interval":
        minutes = schedule.get("minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes <= 0:
            raise ValueError(f"schedule.minutes must be a positive number, not {minutes!r}")
        out["every"] = f"{minutes:g}m"
        if job.get("next_run_at"):
            anchor, note = _hermes_time(parse_time(job["next_run_at"]), "next_run_at")
            notes += [note] if note else []
            out["anchor"] = anchor.isoformat()
        else:
            notes.append(
                (
                    "schedule.minutes",
                    "approximated",
                    "Hermes counted the interval from the last run; agentcron keeps a fixed "
                    "grid (add anchor: to choose its phase)",
                )
            )
    elif kind == "cron":
        expr = schedule.get("expr")
        if not isinstance(expr, str) or not expr.strip():
            raise ValueError("schedule.expr must be a cron expression")
        out["cron"] = expr.strip()
        zone, zone_note = zone_name(job.get("timezone"))
        if zone is not None:
            out["timezone"] = zone
        elif zone_note:
            notes.append(("timezone", "approximated", zone_note))
        else:
            notes.append(
                (
                    "schedule.expr",
                    "approximated",
                    "Hermes read it in its own configured zone; written without timezone: "
                    "the config's timezone: (or this machine's zone) applies",
                )
            )
    else:
        raise ValueError(f"unknown schedule kind {kind!r} (expected once, interval or cron)")
    if kind != "once" and isinstance(times, int) and times > 0:
        notes.append(
            (
                "repeat",
                "approximated",
                f"Hermes stops after {times} runs ({done} done); agentcron runs it until "
                "you pause or remove it",
            )
        )
    return out, notes


def _hermes_time(when: datetime, field_name: str) -> tuple[datetime, Any]:
    """``when`` as the instant Hermes meant, and a note or None. A time without an
    offset is the wall time of the machine Hermes ran on (its ``_ensure_aware``): read
    in this machine's zone and written with its offset, so that the config's
    ``timezone:`` does not move it; left as it stands, said, when that zone is unknown."""
    if when.tzinfo is not None:
        return when, None
    zone, where = machine_zone()
    if zone is None:
        return when, (
            field_name,
            "warning",
            "no zone in the time: Hermes read it in the zone of the machine it ran on, "
            f"and this machine's cannot be named ({where}); written without one, it is "
            "read in the task's zone (the config's timezone:), which may move it: add "
            "the offset Hermes ran at",
        )
    return when.replace(tzinfo=ZoneInfo(zone)), (
        field_name,
        "approximated",
        f"no zone in the time: read in this machine's zone ({zone}), as Hermes reads a "
        "time it stored without one (the machine's, not its configured timezone); "
        "written with its offset (if Hermes ran on another machine, correct it)",
    )


def _action(job: dict[str, Any], options: ImportOptions) -> tuple[dict[str, Any], list[Any]]:
    notes: list[Any] = []
    prompt = job.get("prompt")
    script = job.get("script")
    if job.get("no_agent") and script:
        # Hermes keeps scripts in ~/.hermes/scripts; a command's argv is not expanded by
        # a shell, so the path is written out in full
        path = str(Path(str(script)).expanduser())
        if not Path(path).is_absolute():
            path = str(Path("~/.hermes/scripts").expanduser() / path)
        command = ["python3", path] if path.endswith(".py") else [path]
        notes.append(
            ("script", "approximated", f"runs the script as a command ({' '.join(command)})")
        )
        return {"command": command}, notes
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("no prompt: nothing to run")
    action, prompt_notes = prompt_action(prompt, None, options)
    notes += prompt_notes
    if script:
        notes.append(
            (
                "script",
                "dropped",
                "Hermes ran it first and added its output to the prompt; an agentcron "
                'precheck: does that when the script prints {"context": "…"} as its last line',
            )
        )
    skills = job.get("skills") or ([job["skill"]] if job.get("skill") else [])
    if skills:
        notes.append(
            ("skills", "dropped", f"skills {', '.join(map(str, skills))} do not come along")
        )
    if job.get("enabled_toolsets"):
        toolsets = ", ".join(map(str, job["enabled_toolsets"]))
        notes.append(("enabled_toolsets", "dropped", f"toolsets {toolsets} do not come along"))
    pinned = [f"{k} {job[k]!r}" for k in ("provider", "model", "base_url") if job.get(k)]
    if pinned:
        how = "written with --base-url/--model" if "llm" in action else "not passed to --agent-cmd"
        notes.append(("model", "approximated", f"the job pinned {', '.join(pinned)}; {how}"))
    if job.get("context_from"):
        notes.append(
            (
                "context_from",
                "dropped",
                "the output of other jobs is not passed in (context: previous passes a task "
                "its own last output)",
            )
        )
    if job.get("workdir"):
        if "command" in action:
            action["cwd"] = str(job["workdir"])
        else:
            notes.append(("workdir", "dropped", "a model call does not run in a folder"))
    return action, notes


def _deliver(draft: Draft, job: dict[str, Any], plan: Plan) -> None:
    raw = job.get("deliver")
    if raw is None or raw == "":
        return
    if not isinstance(raw, str):
        draft.note("deliver", "warning", f"not a comma-separated text: {raw!r}; not imported")
        return
    urls: list[str] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        if item == "local":
            draft.note(
                "deliver",
                "approximated",
                "local: agentcron keeps every run's output too (agentcron logs RUN)",
            )
            continue
        target = _target(item, job.get("origin"))
        if target.url is None:
            draft.note("deliver", "dropped", f"{item}: {target.reason}")
            continue
        urls.append(target.url)
        for var in target.variables:
            plan.variables.setdefault(var, _targets.VARIABLE_HINTS.get(var, "a secret"))
    if urls:
        draft.body["deliver"] = urls


def _target(item: str, origin: Any) -> _targets.Target:
    if item == "origin":
        if not isinstance(origin, dict) or not origin.get("platform"):
            return _targets.Target(None, reason="the job records no origin chat")
        platform = str(origin["platform"])
        chat = origin.get("chat_id")
        thread = origin.get("thread_id")
        return _platform(platform, str(chat) if chat else None, str(thread) if thread else None)
    platform, _, rest = item.partition(":")
    chat, _, thread = rest.partition(":")
    return _platform(platform, chat or None, thread or None)


def _platform(platform: str, chat: str | None, thread: str | None) -> _targets.Target:
    if platform == "telegram":
        return _targets.telegram(chat, thread, home_var="TELEGRAM_HOME_CHANNEL")
    if platform == "slack":
        return _targets.slack(chat)
    return _targets.unsupported(platform)


def _state(draft: Draft, job: dict[str, Any], enabled: bool) -> None:
    if not enabled:
        why = f" ({job['paused_reason']})" if job.get("paused_reason") else ""
        draft.note("enabled", "warning", f"paused or disabled at the source{why}")
    if job.get("last_status") == "error":
        detail = f": {one_line(job['last_error'])}" if job.get("last_error") else ""
        draft.note("last_status", "warning", f"its last run failed at the source{detail}")
