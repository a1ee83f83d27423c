"""The tools that change: each checks the agent's bounds (:mod:`.policy`), then calls
one service method as the agent, so the audit trail says who, ``via mcp``."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import StrictBool, StrictInt

from agentcron._service.base import NotFoundError, ServiceError, acting_as
from agentcron.config.schema import compact_duration
from agentcron.interfaces.mcp._core import TOOL_WORDS, ToolsCore, answers
from agentcron.interfaces.mcp.failures import NOTHING_CHANGED, failure
from agentcron.interfaces.mcp.models import (
    Cancelled,
    HttpAction,
    LlmAction,
    PythonAction,
    RunDetail,
    TaskDetail,
    TaskInfo,
    TriggeredRun,
)
from agentcron.interfaces.mcp.policy import Policy, Refused
from agentcron.interfaces.mcp.reads import run_detail
from agentcron.model.task import TaskSpec
from agentcron.service import Service

_SCHEDULE_KEYS = ("cron", "every", "at")
_ACTION_KEYS = ("command", "http", "llm", "python")


class ChangeTools(ToolsCore):
    """schedule_task, update_task, pause_task, resume_task, cancel_task, trigger_task,
    redeliver_run."""

    def _validated(self, full: str, raw: Mapping[str, Any], defaults: bool = True) -> TaskSpec:
        """The task as the service will validate it, with placeholders refused."""
        from agentcron.config.errors import ConfigError
        from agentcron.config.loader import validate_task_mapping

        service = self._service()
        try:
            return validate_task_mapping(
                full,
                raw,
                service.defaults.task_defaults if defaults else None,
                location_prefix="",
                allow_placeholders=False,
            )
        except ConfigError as exc:
            said = [_said(problem.location, problem.message, full) for problem in exc.problems]
            raise Refused(f"task {full!r} not accepted: " + "; ".join(said)) from None

    def _mapping(
        self,
        p: Policy,
        values: Mapping[str, Any],
        *,
        http: HttpAction | None,
        llm: LlmAction | None,
        python: PythonAction | None,
        creating: bool,
    ) -> dict[str, Any]:
        """The task keys an agent's arguments mean, its bounds checked."""
        given = {k: v for k, v in values.items() if v is not None}
        actions: dict[str, Any] = {}
        if given.get("command") is not None:
            actions["command"] = given.pop("command")
        if http is not None:
            actions["http"] = http.model_dump(exclude_none=True)
        if llm is not None:
            actions["llm"] = llm.model_dump(exclude_none=True)
        if python is not None:
            actions["python"] = python.model_dump()
        schedules = [k for k in _SCHEDULE_KEYS if k in given]
        if len(schedules) > 1 or (creating and not schedules):
            raise Refused(
                "give exactly one schedule: cron, every or at"
                + (f" (got {', '.join(schedules)})" if schedules else "")
            )
        if len(actions) > 1 or (creating and not actions):
            raise Refused(
                "give exactly one action: "
                + ", ".join(p.caller.client.actions or ["(none allowed)"])
                + (f" (got {', '.join(actions)})" if actions else "")
            )
        p.refuse_placeholders({**given, **actions})
        raw = dict(given)
        for kind, action in actions.items():
            p.check_action(kind)
            if kind == "llm":
                raw["llm"] = p.llm_mapping(action)
            elif kind == "python":
                raw["python"] = action["function"]
                if action["args"]:
                    raw["args"] = action["args"]
                if action["kwargs"]:
                    raw["kwargs"] = action["kwargs"]
            else:
                raw[kind] = action
        if not creating:
            # one schedule or action replaces the other kinds (a merge patch nulls them)
            if schedules:
                raw.update({k: None for k in _SCHEDULE_KEYS if k not in schedules})
                if "at" not in schedules:
                    raw["expires"] = None
                if "every" not in schedules:
                    raw["anchor"] = None
            if actions:
                raw.update({k: None for k in _ACTION_KEYS if k not in actions})
                if "python" not in actions:
                    raw.update({"args": None, "kwargs": None})
            if raw.get("description") == "":
                raw["description"] = None
        return raw

    def schedule_task(
        self,
        name: str,
        ctx: Context,
        cron: str | None = None,
        every: str | None = None,
        at: str | None = None,
        timezone: str | None = None,
        http: HttpAction | None = None,
        llm: LlmAction | None = None,
        command: list[str] | None = None,
        python: PythonAction | None = None,
        deliver: list[str] | None = None,
        paused: StrictBool = False,
        description: str | None = None,
        timeout: str | None = None,
    ) -> TaskDetail:
        p = self.policy(ctx)
        service = self._service()
        with answers():
            p.check_may_start("schedule tasks")
            full = p.new_task_name(name)
            raw = self._mapping(
                p,
                {
                    "cron": cron,
                    "every": every,
                    "at": at,
                    "timezone": timezone,
                    "command": command,
                    "deliver": deliver,
                    "paused": paused or None,
                    "description": description or None,
                    "timeout": timeout,
                },
                http=http,
                llm=llm,
                python=python,
                creating=True,
            )
            spec = self._validated(full, raw)
            self._check_timing(p, spec)
            with self._adding:
                names = [row["name"] for row in self._visible_tasks(p)]
                if full in names:
                    raise Refused(
                        f"task {full!r} already exists: change it with update_task, or "
                        "cancel_task it first"
                    )
                p.check_count(sum(1 for n in names if p.own(n)))
                with self._writing("schedule_task", full), acting_as(p.caller.actor):
                    service.add_task(full, raw)
                    return self._detail(p, self._show(p, full))

    def update_task(
        self,
        name: str,
        ctx: Context,
        cron: str | None = None,
        every: str | None = None,
        at: str | None = None,
        timezone: str | None = None,
        http: HttpAction | None = None,
        llm: LlmAction | None = None,
        command: list[str] | None = None,
        python: PythonAction | None = None,
        deliver: list[str] | None = None,
        description: str | None = None,
        timeout: str | None = None,
    ) -> TaskDetail:
        p = self.policy(ctx)
        service = self._service()
        with answers():
            p.check_may_start("change tasks")
            full = p.task_name(name, change=True, exists=self._exists)
        view = self._show(p, full)
        if view["source"] == "file":
            # said to an agent, who cannot edit the owner's file (the service's refusal
            # tells a person to change it there)
            raise ToolError(
                f"task {full!r} is defined in the owner's config file: an agent cannot "
                "change it (the owner edits the file). To stop it firing, pause it with "
                "pause_task."
            )
        with answers():
            patch = self._mapping(
                p,
                {
                    "cron": cron,
                    "every": every,
                    "at": at,
                    "timezone": timezone,
                    "command": command,
                    "deliver": deliver,
                    "description": description,
                    "timeout": timeout,
                },
                http=http,
                llm=llm,
                python=python,
                creating=False,
            )
            if not patch:
                raise Refused(
                    "nothing to change: give a schedule (cron, every or at), timezone, an "
                    "action, deliver, description or timeout"
                )
            if any(k in patch for k in (*_SCHEDULE_KEYS, "timezone")):
                spec = self._schedule_after(full, view["spec"], patch)
                self._check_timing(p, spec)
            with self._writing("update_task", full), acting_as(p.caller.actor):
                try:
                    service.update_task(full, patch)
                except ServiceError as exc:
                    if not exc.problems:
                        raise
                    # the config rules' problems, located as schedule_task says them
                    # (`deliver[0]`), not at the config file's `tasks.NAME.deliver[0]`
                    said = [_said(where, message, full) for where, message in exc.problems]
                    raise Refused(f"task {full!r} not accepted: " + "; ".join(said)) from None
                return self._detail(p, self._show(p, full))

    def _check_timing(self, p: Policy, spec: TaskSpec) -> None:
        """Not more often than the agent may, and not only in the past (a task that
        can never fire would be a silent failure)."""
        service = self._service()
        p.check_period(_schedule_words(spec), service.period(spec))
        now = service.clock.now()
        if spec.at is not None and service.first_fire(spec, now) is None:
            zone = spec.zone(service.defaults.timezone)
            shown = now.astimezone(zone).isoformat(timespec="seconds")
            raise Refused(
                f"at: {spec.at.isoformat()} is past (it is {shown} now in the task's zone); "
                "give a later time"
            )

    def _schedule_after(
        self, full: str, spec: Mapping[str, Any], patch: Mapping[str, Any]
    ) -> TaskSpec:
        """The task's schedule once ``patch`` is applied, to measure its period (the
        whole task is validated again by the service)."""
        keys = (*_SCHEDULE_KEYS, "timezone", "anchor", "expires")
        merged = {k: spec[k] for k in keys if spec.get(k) is not None}
        for key in keys:
            if key in patch:
                if patch[key] is None:
                    merged.pop(key, None)
                else:
                    merged[key] = patch[key]
        # a stand-in action: only the schedule of this mapping is used
        return self._validated(full, {**merged, "command": ["true"]}, defaults=False)

    def pause_task(self, name: str, ctx: Context, reason: str | None = None) -> TaskInfo:
        p = self.policy(ctx)
        with answers():
            full = p.task_name(name, change=True, exists=self._exists)
        self._show(p, full)
        with self._writing("pause_task", full), answers(), acting_as(p.caller.actor):
            return TaskInfo.model_validate(self._service().pause(full, reason))

    def resume_task(self, name: str, ctx: Context) -> TaskInfo:
        p = self.policy(ctx)
        with answers():
            p.check_may_start("resume tasks")
            full = p.task_name(name, change=True, exists=self._exists)
        self._show(p, full)
        with self._writing("resume_task", full), answers(), acting_as(p.caller.actor):
            return TaskInfo.model_validate(self._service().resume(full))

    def cancel_task(self, name: str, ctx: Context) -> Cancelled:
        p = self.policy(ctx)
        with answers():
            full = p.task_name(name, change=True, exists=self._exists)
        if self._show(p, full)["source"] == "file":
            # said to an agent, who cannot edit the owner's file (the service's refusal
            # tells a person to)
            raise ToolError(
                f"task {full!r} is defined in the owner's config file: an agent cannot "
                "delete it (the owner removes it from the file). To stop it firing, "
                "pause it with pause_task."
            )
        with self._writing("cancel_task", full), answers(), acting_as(p.caller.actor):
            self._service().remove(full)
            return Cancelled(name=full, cancelled=True)

    def trigger_task(self, name: str, ctx: Context) -> TriggeredRun:
        p = self.policy(ctx)
        with answers():
            p.check_may_start("start runs")
            full = p.task_name(name, change=True, exists=self._exists)
        self._show(p, full)
        with self._writing("trigger_task", full), answers(), acting_as(p.caller.actor):
            service = self._service()
            p.check_trigger_rate(full, service.runs(full, limit=200), service.clock.now())
            p.check_budget(full, service.task_budget(full))
            run = service.trigger(full)
            note = service.trigger_note(full, run["id"]).words(TOOL_WORDS)
            return TriggeredRun.model_validate({**run, "note": note})

    def redeliver_run(self, run_id: StrictInt, ctx: Context) -> RunDetail:
        p = self.policy(ctx)
        service = self._service()
        missing = ToolError(f"no run with id {run_id}; list_runs shows yours")
        try:
            task = service.run_detail(run_id, with_output=False)["task"]
        except NotFoundError:
            raise missing from None
        if not p.visible(task):
            raise missing
        with answers():
            p.task_name(task, change=True)  # a task it only sees is refused, saying so

        def deliveries(service: Service) -> tuple[Any, ...]:
            view = service.run_detail(run_id, with_output=False)
            return tuple((d["target"], d["status"]) for d in view["deliveries"])

        writing = self._writing("redeliver_run", task, deliveries, f"get_run({run_id})")
        with writing, answers(), acting_as(p.caller.actor):
            return run_detail(service, run_id, service.redeliver(run_id))

    @contextmanager
    def _writing(
        self,
        tool: str,
        full: str,
        footprint: Callable[[Service], tuple[Any, ...]] | None = None,
        shown_by: str = "get_task",
    ) -> Iterator[None]:
        """Around a tool's write and what it reads after. A database another process
        holds locked is refused at once, nothing tried (``Service.database_busy``); a
        failure no tool expects
        (a locked database, a bug) is refused with what became of the change, found by
        looking at the task again (a service write is several transactions: one may
        have been made before the failure)."""
        service = self._service()
        if service.database_busy():
            busy = sqlite3.OperationalError("database is locked")
            raise failure(tool, busy, NOTHING_CHANGED)
        trace = footprint or (lambda service: _footprint(service, full))
        before = trace(service)
        try:
            yield
        except (ToolError, ServiceError, Refused):
            raise
        except Exception as exc:
            try:
                made = trace(service) != before
            except Exception:
                outcome = (
                    f"Whether {tool} changed {full} is not known (the database could not "
                    f"be read again): {shown_by} shows it once the database answers"
                )
            else:
                outcome = (
                    f"The change to {full} was made before the failure, but may not be "
                    f"complete (its audit entry may be missing): {shown_by} shows it as it "
                    "is now; do not repeat the call"
                    if made
                    else NOTHING_CHANGED
                )
            raise failure(tool, exc, outcome) from exc


def _footprint(service: Service, full: str) -> tuple[Any, ...]:
    """What a change tool changes of ``full``: whether it exists, its definition, its
    pause, its newest manual run."""
    record = service.store.get_task(full)
    if record is None:
        return (None,)
    try:
        manual = [r["id"] for r in service.runs(full, limit=20) if r.get("trigger") == "manual"]
    except NotFoundError:
        manual = []
    return (record.spec, record.paused, max(manual, default=None))


def _key(location: str, full: str) -> str:
    """``agent.me.x.cron`` (or ``tasks.agent.me.x.cron``) -> ``cron``; the task as a
    whole -> ``task``."""
    location = location.removeprefix("tasks.")
    if location == full:
        return "task"
    return location.removeprefix(f"{full}.") or "task"


def _said(location: str, message: str, full: str) -> str:
    """One problem as ``ARGUMENT: what is wrong``: a problem of the whole task that
    names its key first (``timeout must be positive``) is said at that key, and a key's
    message does not repeat it (``every: must be at least 1s``, not ``every: every
    must…``)."""
    key = _key(location, full)
    first, _, rest = message.partition(" ")
    if rest and (first == key or (key == "task" and first in TaskSpec.model_fields)):
        return f"{first}: {rest}"
    return f"{key}: {message}"


def _schedule_words(spec: TaskSpec) -> str:
    if spec.cron is not None:
        return f"cron {spec.cron!r}"
    if spec.every is not None:
        return f"every {compact_duration(spec.every)}"
    return spec.schedule_text
