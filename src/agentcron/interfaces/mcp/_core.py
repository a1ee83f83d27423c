"""What every tool shares: who calls (the stdio agent, or the one whose token an HTTP
request carried), the tasks that caller may see, and refusals as tool errors.

Tools are plain functions run on a worker thread by the SDK (the service is
synchronous). A name the agent got wrong is answered with its own tasks only: the
service's suggestions would name anyone's.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from agentcron._service.base import NotFoundError, ServiceError
from agentcron.config.agents import AgentsConfig
from agentcron.config.schema import compact_duration
from agentcron.interfaces.mcp.models import Limits, TaskDetail
from agentcron.interfaces.mcp.policy import Caller, Policy, Refused
from agentcron.service import Act, Service, Wording

CALLER_KEY = "agentcron.mcp.caller"  # where the HTTP endpoint leaves the caller in the scope
UPCOMING = 3  # fires shown with a task


# The service's advice as an agent does it: the tool (an agent has no commands, no
# incidents tool, and cannot start the daemon).
TOOL_WORDS: Wording = {
    Act.PAUSE: "or stop it firing with pause_task",
    Act.TRIGGER: "trigger_task runs a task now",
    Act.LIST_RUNS: "list_runs lists them",
    Act.LIST_INCIDENTS: "incidents are the owner's to read: no tool lists them",
    Act.START_DAEMON: "the daemon's owner starts it: no tool can",
}


@contextmanager
def answers() -> Iterator[None]:
    """Service refusals (their advice as tools) and the agent's bounds as tool errors
    (never a crash)."""
    try:
        yield
    except ServiceError as exc:
        raise ToolError(exc.words(TOOL_WORDS)) from None
    except Refused as exc:
        raise ToolError(str(exc)) from None


class ToolsCore:
    """A service, the owner's ``agents:`` and (for stdio) the caller."""

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
            raise ToolError(exc.words(TOOL_WORDS)) from None

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
            budget=next(
                (
                    b
                    for b in self._service().config_budgets()
                    if b["scope"] == f"agent:{caller.name}"
                ),
                None,
            ),
        )
