"""The tools an agent calls: each checks the agent's bounds (:mod:`.policy`), then
calls one :class:`~agentcron.service.Service` method as the agent (audited ``via
mcp``), and answers with a typed result or a tool error the agent can act on.

Tools are plain functions run on a worker thread by the SDK (the service is
synchronous). Who calls is fixed for a stdio server (``--agent``) and comes from
the request for the HTTP endpoint (see :mod:`.http`).
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from agentcron._service.base import NotFoundError, ServiceError, acting_as
from agentcron.config.agents import AgentsConfig
from agentcron.config.schema import compact_duration
from agentcron.interfaces.mcp.models import (
    Attempt,
    Cancelled,
    Fire,
    HttpAction,
    Limits,
    LlmAction,
    NextRuns,
    PythonAction,
    RunDetail,
    RunInfo,
    RunList,
    TaskDetail,
    TaskInfo,
    TaskList,
)
from agentcron.interfaces.mcp.policy import Caller, Policy, Refused
from agentcron.model.task import TaskSpec
from agentcron.service import Service

CALLER_KEY = "agentcron.mcp.caller"  # where the HTTP endpoint leaves the caller in the scope
TAIL_CHARS = 4000
UPCOMING = 3
MOST_RUNS = 100
_SCHEDULE_KEYS = ("cron", "every", "at")
_ACTION_KEYS = ("command", "http", "llm", "python")


@contextmanager
def answers() -> Iterator[None]:
    """Service refusals and the agent's bounds as tool errors (never a crash)."""
    try:
        yield
    except (Refused, ServiceError) as exc:
        raise ToolError(str(exc)) from None


class Tools:
    """The tool functions, bound to a service, the owner's ``agents:`` and a caller."""

    def __init__(
        self,
        service: Callable[[], Service],
        agents: AgentsConfig,
        caller: Caller | None = None,
    ) -> None:
        self._service = service
        self._agents = agents
        self._caller = caller
        # count-then-add of schedule_task, so two calls at once cannot both take
        # the last place under max_tasks
        self._adding = threading.Lock()

    # ---- shared -----------------------------------------------------------------------
    def policy(self, ctx: Context | None) -> Policy:
        caller = self._caller
        if caller is None and ctx is not None:
            request = ctx.request_context.request
            scope = getattr(request, "scope", None)
            found = scope.get(CALLER_KEY) if isinstance(scope, Mapping) else None
            caller = found if isinstance(found, Caller) else None
        if caller is None:
            raise ToolError("no agent identity: this endpoint needs an agent's bearer token")
        return Policy(self._agents, caller)

    def _visible_tasks(self, p: Policy) -> list[dict[str, Any]]:
        return [row for row in self._service().list_tasks() if p.visible(row["name"])]

    def _exists(self, name: str) -> bool:
        """Whether a task has exactly this name (asked only of granted names)."""
        return any(row["name"] == name for row in self._service().list_tasks())

    def _not_found(self, p: Policy, full: str) -> ToolError:
        # the service would suggest any task's name; an agent hears only of its own, and
        # is compared by the part after the namespace, which all of them share
        names = [row["name"] for row in self._visible_tasks(p)]
        prefix = p.caller.prefix
        pool = {n.removeprefix(prefix): n for n in names if p.own(n) == p.own(full)}
        close = difflib.get_close_matches(full.removeprefix(prefix), list(pool), n=1)
        if close:
            hint = f" (did you mean {pool[close[0]]!r}?)"
        elif names:
            hint = "; list_tasks shows yours"
        else:
            hint = "; you have no tasks yet"
        return ToolError(f"no task named {full!r}{hint}")

    def _show(self, p: Policy, full: str) -> dict[str, Any]:
        try:
            return self._service().show_task(full, count=UPCOMING)
        except NotFoundError:
            raise self._not_found(p, full) from None
        except ServiceError as exc:
            raise ToolError(str(exc)) from None

    def _detail(self, p: Policy, view: Mapping[str, Any]) -> TaskDetail:
        return TaskDetail.model_validate(
            {
                **view,
                "model_profile": p.profile_of(view["spec"]),
                "upcoming": view["next"],
            }
        )

    def _limits(self, p: Policy, rows: list[dict[str, Any]]) -> Limits:
        client, caller = p.caller.client, p.caller
        return Limits(
            agent=caller.name,
            namespace=caller.prefix.rstrip("."),
            tasks=sum(1 for row in rows if p.own(row["name"])),
            max_tasks=client.max_tasks,
            min_period=compact_duration(client.min_period),
            actions=list(client.actions),
            model_profiles={
                name: profile.description or profile.model
                for name, profile in self._agents.profiles_for(client).items()
            },
            see=list(client.see),
            change=list(client.change),
            inside_run=caller.in_run,
            may_schedule=caller.may_start,
        )

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
            parts = [
                f"{_key(problem.location, full)}: {problem.message}" for problem in exc.problems
            ]
            raise Refused(f"task {full!r} not accepted: " + "; ".join(parts)) from None

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

    # ---- reads ------------------------------------------------------------------------
    def list_tasks(self, ctx: Context) -> TaskList:
        p = self.policy(ctx)
        with answers():
            rows = self._visible_tasks(p)
        return TaskList(
            tasks=[TaskInfo.model_validate(row) for row in rows], limits=self._limits(p, rows)
        )

    def get_task(self, name: str, ctx: Context) -> TaskDetail:
        p = self.policy(ctx)
        with answers():
            full = p.task_name(name, exists=self._exists)
        return self._detail(p, self._show(p, full))

    def list_runs(
        self,
        ctx: Context,
        task: str | None = None,
        status: str | None = None,
        limit: int = 20,
    ) -> RunList:
        p = self.policy(ctx)
        if not 1 <= limit <= MOST_RUNS:
            raise ToolError(f"limit must be between 1 and {MOST_RUNS}, got {limit}")
        service = self._service()
        with answers():
            if task is not None:
                full = p.task_name(task, exists=self._exists)
                try:  # a cancelled task's runs stay readable
                    rows, _ = service.runs_page(full, status=status, limit=limit)
                except NotFoundError:
                    raise self._not_found(p, full) from None
            elif p.caller.client.sees_everything():
                rows, _ = service.runs_page(None, status=status, limit=limit)
            else:
                rows = []
                for view in self._visible_tasks(p):
                    page, _ = service.runs_page(view["name"], status=status, limit=limit)
                    rows += page
                rows.sort(key=_newest_first)
                rows = rows[:limit]
        return RunList(runs=[RunInfo.model_validate(row) for row in rows])

    def get_run(self, run_id: int, ctx: Context) -> RunDetail:
        p = self.policy(ctx)
        service = self._service()
        missing = ToolError(f"no run with id {run_id}; list_runs shows yours")
        try:
            view = service.run_detail(run_id, with_output=False)
        except NotFoundError:
            raise missing from None
        if not p.visible(view["task"]):
            raise missing
        tail, cut = _tail(service, run_id)
        return RunDetail.model_validate(
            {
                **view,
                "attempts_detail": [Attempt.model_validate(a) for a in view["attempts_detail"]],
                "output_tail": tail,
                "output_truncated": cut,
            }
        )

    def next_runs(
        self, name: str, ctx: Context, count: int = 5, start: str | None = None
    ) -> NextRuns:
        p = self.policy(ctx)
        if not 1 <= count <= 50:
            raise ToolError(f"count must be between 1 and 50, got {count}")
        with answers():
            full = p.task_name(name, exists=self._exists)
        view = self._show(p, full)
        zone = ZoneInfo(view["timezone"])
        service = self._service()
        if start is None:
            begin = service.clock.now().astimezone(zone)
        else:
            try:
                begin = datetime.fromisoformat(start.strip())
            except ValueError:
                raise ToolError(
                    f"start: {start!r} is not an ISO time: give 2026-06-01T08:00 (read in "
                    f"the task's zone, {zone.key}) or 2026-06-01T08:00+02:00"
                ) from None
            # a time without an offset is the task's wall time, as its schedule is
            begin = begin.replace(tzinfo=zone) if begin.tzinfo is None else begin
        with answers():
            fires = service.next_fires(full, count, begin)
        return NextRuns(
            task=full,
            timezone=str(zone.key),
            start=begin.astimezone(zone).isoformat(),
            fires=[Fire.model_validate(f) for f in fires],
        )

    # ---- changes ----------------------------------------------------------------------
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
        paused: bool = False,
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
                with acting_as(p.caller.actor):
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
            with acting_as(p.caller.actor):
                service.update_task(full, patch)
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
        with answers(), acting_as(p.caller.actor):
            return TaskInfo.model_validate(self._service().pause(full, reason))

    def resume_task(self, name: str, ctx: Context) -> TaskInfo:
        p = self.policy(ctx)
        with answers():
            p.check_may_start("resume tasks")
            full = p.task_name(name, change=True, exists=self._exists)
        self._show(p, full)
        with answers(), acting_as(p.caller.actor):
            return TaskInfo.model_validate(self._service().resume(full))

    def cancel_task(self, name: str, ctx: Context) -> Cancelled:
        p = self.policy(ctx)
        with answers():
            full = p.task_name(name, change=True, exists=self._exists)
        self._show(p, full)
        with answers(), acting_as(p.caller.actor):
            self._service().remove(full)
        return Cancelled(name=full, cancelled=True)

    def trigger_task(self, name: str, ctx: Context) -> RunInfo:
        p = self.policy(ctx)
        with answers():
            p.check_may_start("start runs")
            full = p.task_name(name, change=True, exists=self._exists)
        self._show(p, full)
        with answers(), acting_as(p.caller.actor):
            return RunInfo.model_validate(self._service().trigger(full))


def _key(location: str, full: str) -> str:
    """``agent.me.x.cron`` -> ``cron``; the task as a whole -> ``task``."""
    if location == full:
        return "task"
    return location.removeprefix(f"{full}.") or "task"


def _schedule_words(spec: TaskSpec) -> str:
    if spec.cron is not None:
        return f"cron {spec.cron!r}"
    if spec.every is not None:
        return f"every {compact_duration(spec.every)}"
    return spec.schedule_text


def _newest_first(row: Mapping[str, Any]) -> tuple[float, int]:
    when = row.get("scheduled_for")
    stamp = datetime.fromisoformat(when).timestamp() if when else 0.0
    return (-stamp, -int(row["id"]))


def _tail(service: Service, run_id: int) -> tuple[str | None, bool]:
    """The last TAIL_CHARS of the run's kept output, redacted piece by piece."""
    try:
        pieces = service.output_stream(run_id)
    except NotFoundError:
        return None, False
    kept = ""
    cut = False
    for piece in pieces:
        kept += piece
        if len(kept) > TAIL_CHARS:
            kept = kept[-TAIL_CHARS:]
            cut = True
    return kept, cut
