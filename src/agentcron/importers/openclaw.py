"""OpenClaw gateway cron jobs (``~/.openclaw/cron/jobs.json``).

The file is ``{"version": 1, "jobs": [...]}`` (a bare list is taken too). A job's
``schedule`` is ``{kind: at, atMs | at}`` (epoch milliseconds or ISO 8601; without
a zone it is UTC), ``{kind: every, everyMs, anchorMs?}`` or ``{kind: cron, expr,
tz?}`` (without ``anchorMs``, the job's ``state.nextRunAtMs`` anchors the
interval); its ``payload`` is an ``agentTurn`` (``message``, ``model``, ``thinking``,
``timeoutSeconds``) for an isolated session or a ``systemEvent`` (``text``) for the
main one; ``delivery`` (``mode``, ``channel``, ``to``) says where the answer goes;
``state`` keeps the last run's status and error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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

SOURCE = "openclaw"
_KNOWN = frozenset(
    {
        "id",
        "jobId",
        "agentId",
        "name",
        "description",
        "enabled",
        "deleteAfterRun",
        "createdAtMs",
        "updatedAtMs",
        "schedule",
        "sessionTarget",
        "sessionKey",
        "wakeMode",
        "payload",
        "delivery",
        "isolation",
        "state",
    }
)
_PAYLOAD = frozenset(
    {
        "kind",
        "message",
        "text",
        "model",
        "thinking",
        "timeoutSeconds",
        "deliver",
        "channel",
        "to",
        "bestEffortDeliver",
    }
)


MAX_EVERY_MS = 10 * 366 * 24 * 3600 * 1000  # an interval past this is no schedule


def plan_file(path: Path, options: ImportOptions) -> Plan:
    """Read ``path`` and make the plan; :class:`ImportFileError` when the file is unusable."""
    data, remarks = read_json(path)
    plan = Plan(SOURCE, str(path))
    plan.notes += [Note("file", "", "warning", r) for r in remarks]
    if isinstance(data, dict) and isinstance(data.get("jobs"), list):
        jobs = data["jobs"]
        plan.notes += [
            Note("file", str(k), "warning", "unknown top-level field, not imported")
            for k in data
            if k not in ("jobs", "version")
        ]
    elif isinstance(data, list):
        jobs = data
    else:
        raise ImportFileError(
            f'{shown(path)}: not an OpenClaw cron file: expected {{"version": 1, "jobs": [...]}}'
        )
    taken: set[str] = set()
    for index, job in enumerate(jobs):
        where = f"jobs[{index}]"
        if not isinstance(job, dict):
            plan.skipped.append(Note(where, "", "error", "a job must be an object"))
            continue
        label = f"{where} {job['name']!r}" if job.get("name") else where
        try:
            draft = _job(job, label, options, taken, plan)
        except (ValueError, ArithmeticError) as exc:  # one bad job does not stop the others
            plan.skipped.append(Note(label, "", "error", str(exc)))
            continue
        if draft is not None:
            plan.drafts.append(draft)
    return plan


def _job(
    job: dict[str, Any], label: str, options: ImportOptions, taken: set[str], plan: Plan
) -> Draft | None:
    job_id = job.get("id") or job.get("jobId")
    if not isinstance(job_id, str) or not job_id.strip():
        raise ValueError("no id: cannot tell this job apart on a later import")
    raw_state = job.get("state")
    state: dict[str, Any] = raw_state if isinstance(raw_state, dict) else {}
    schedule, notes = _schedule(job, options, state)
    if schedule is None:
        plan.skipped.append(Note(label, "schedule", "skipped", notes[0][2]))
        return None
    payload = job.get("payload")
    if not isinstance(payload, dict):
        raise ValueError("no payload object: nothing to run")
    kind = payload.get("kind")
    if kind == "agentTurn":
        prompt = payload.get("message")
    elif kind == "systemEvent":
        prompt = payload.get("text")
        notes.append(
            (
                "payload",
                "approximated",
                "a system event for the main session: here it is a prompt of its own, "
                "without the main session's history",
            )
        )
    else:
        raise ValueError(f"unknown payload kind {kind!r} (expected agentTurn or systemEvent)")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the payload has no text: nothing to run")
    action, prompt_notes = prompt_action(prompt, None, options)
    notes += prompt_notes
    name = unique(slug(str(job.get("name") or ""), fallback=f"openclaw-{job_id[:8]}"), taken)
    body: dict[str, Any] = {}
    description = " — ".join(str(job[k]) for k in ("name", "description") if job.get(k))
    if description:
        body["description"] = description
    body.update(schedule)
    body.update(action)
    seconds = payload.get("timeoutSeconds")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
        body["timeout"] = _duration(seconds * 1000)
    enabled = job.get("enabled", True) is not False
    draft = Draft(name, f"{SOURCE}:{job_id}", f"OpenClaw job {label}", body, enabled, where=label)
    for field_name, kind_, reason in notes:
        draft.note(field_name, kind_, reason)
    _payload_notes(draft, payload, "llm" in action)
    _delivery(draft, job, payload, plan)
    _job_notes(draft, job, state, enabled)
    draft.notes += unknown_fields(draft, job, _KNOWN, "OpenClaw job")
    draft.notes += [
        Note(draft.name, f"payload.{k}", "warning", "unknown payload field, not imported")
        for k in payload
        if k not in _PAYLOAD
    ]
    return draft


def _schedule(
    job: dict[str, Any], options: ImportOptions, state: dict[str, Any]
) -> tuple[dict[str, Any] | None, list[Any]]:
    schedule = job.get("schedule")
    if not isinstance(schedule, dict):
        raise ValueError("no schedule object")
    kind = schedule.get("kind")
    notes: list[Any] = []
    if kind == "at":
        key = "atMs" if "atMs" in schedule else "at"
        when = _field_time(schedule.get(key), f"schedule.{key}")
        if when.tzinfo is None:  # OpenClaw reads an ISO time without a zone as UTC
            when = when.replace(tzinfo=UTC)
        if when <= options.now:
            ran = state.get("lastRunAtMs") and state.get("lastStatus") == "ok"
            why = "it already ran" if ran else f"its time ({when.isoformat()}) is past"
            return None, [("schedule", "skipped", why)]
        if job.get("deleteAfterRun", True):
            notes.append(
                (
                    "deleteAfterRun",
                    "approximated",
                    "the task stays after its run, with its history (remove it when done)",
                )
            )
        return {"at": when.isoformat()}, notes
    if kind == "every":
        every = schedule.get("everyMs")
        if (
            isinstance(every, bool)
            or not isinstance(every, int | float)
            or not 1000 <= every <= MAX_EVERY_MS
        ):
            shown = f"{every:.3g}" if isinstance(every, int | float) else repr(every)
            raise ValueError(f"schedule.everyMs must be from 1000 ms to 10 years, not {shown}")
        out: dict[str, Any] = {"every": _duration(every)}
        anchor = schedule.get("anchorMs")
        upcoming = state.get("nextRunAtMs")
        if isinstance(anchor, int | float) and not isinstance(anchor, bool):
            out["anchor"] = _field_time(anchor, "schedule.anchorMs").isoformat()
        elif isinstance(upcoming, int | float) and not isinstance(upcoming, bool):
            # without anchorMs OpenClaw counts from when the gateway armed the job; the
            # run it has armed next is on that grid: the first run here lands on it
            out["anchor"] = _field_time(upcoming, "state.nextRunAtMs").isoformat()
            notes.append(
                (
                    "schedule.anchorMs",
                    "approximated",
                    "no anchorMs: anchored at the job's next run (state.nextRunAtMs), so "
                    "it keeps the phase OpenClaw gave it",
                )
            )
        else:
            notes.append(
                (
                    "schedule.anchorMs",
                    "approximated",
                    "no anchorMs and no next run in the job's state: the phase is "
                    "agentcron's own, not OpenClaw's (add anchor: to choose it)",
                )
            )
        return out, notes
    if kind == "cron":
        expr = schedule.get("expr")
        if not isinstance(expr, str) or not expr.strip():
            raise ValueError("schedule.expr must be a cron expression")
        out = {"cron": expr.strip()}
        zone, zone_note = zone_name(schedule.get("tz"))
        if zone is not None:
            out["timezone"] = zone
        else:
            notes.append(
                (
                    "schedule.tz",
                    "approximated",
                    zone_note
                    or "no tz: OpenClaw used the gateway host's zone; written without "
                    "timezone, so the config's (or this machine's) applies",
                )
            )
        return out, notes
    raise ValueError(f"unknown schedule kind {kind!r} (expected at, every or cron)")


def _field_time(value: Any, field: str) -> datetime:
    """:func:`parse_time`, its refusal naming the job's field."""
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None


def _duration(ms: float) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{int(ms // size)}{unit}"
    return f"{int(ms)}ms"


def _payload_notes(draft: Draft, payload: dict[str, Any], llm: bool) -> None:
    if payload.get("model"):
        what = "written with --model" if llm else "not passed to --agent-cmd"
        draft.note(
            "payload.model", "approximated", f"the job asked for model {payload['model']!r}; {what}"
        )
    if payload.get("thinking"):
        draft.note("payload.thinking", "dropped", "no thinking level in agentcron")


def _delivery(draft: Draft, job: dict[str, Any], payload: dict[str, Any], plan: Plan) -> None:
    delivery = job.get("delivery")
    if isinstance(delivery, dict):
        mode = delivery.get("mode", "announce")
        channel, to, where = delivery.get("channel"), delivery.get("to"), "delivery"
        best_effort = delivery.get("bestEffort")
    elif payload.get("deliver") or payload.get("channel"):
        mode, channel, to, where = (
            "announce",
            payload.get("channel"),
            payload.get("to"),
            "payload.to",
        )
        best_effort = payload.get("bestEffortDeliver")
    else:
        return
    if mode == "none":
        return
    if mode != "announce":
        draft.note(
            where, "dropped", f"delivery mode {mode!r} has no counterpart; add deliver: yourself"
        )
        return
    if best_effort:
        draft.note(
            f"{where}.bestEffort",
            "approximated",
            "agentcron never fails a run over its delivery; it retries the delivery on its own",
        )
    if not channel or channel == "last":
        draft.note(
            where, "dropped", "the 'last' chat has no fixed address; add it to deliver: yourself"
        )
        return
    if channel == "telegram":
        if not isinstance(to, str) or not to.strip():
            target = _targets.Target(None, reason="no Telegram chat given")
        else:
            chat, thread = _targets.parse_telegram_to(to)
            target = _targets.telegram(chat, thread)
    elif channel == "slack":
        target = _targets.slack(to if isinstance(to, str) else None)
    else:
        target = _targets.unsupported(str(channel))
    if target.url is None:
        draft.note(where, "dropped", f"{channel}: {target.reason}")
        return
    draft.body["deliver"] = [target.url]
    for var in target.variables:
        plan.variables.setdefault(var, _targets.VARIABLE_HINTS.get(var, "a secret"))


def _job_notes(draft: Draft, job: dict[str, Any], state: dict[str, Any], enabled: bool) -> None:
    if not enabled:
        draft.note("enabled", "warning", "disabled at the source")
    if state.get("lastStatus") == "error":
        detail = f": {one_line(state['lastError'])}" if state.get("lastError") else ""
        draft.note("state.lastStatus", "warning", f"its last run failed at the source{detail}")
    if job.get("agentId"):
        draft.note("agentId", "dropped", f"ran as OpenClaw agent {job['agentId']!r}")
    if job.get("wakeMode") == "next-heartbeat":
        draft.note("wakeMode", "approximated", "runs at its time, not at the next heartbeat")
