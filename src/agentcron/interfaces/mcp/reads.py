"""The tools that read: tasks, runs with their attempts and output, upcoming fires."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import StrictInt

from agentcron._service.base import NotFoundError
from agentcron.interfaces.mcp._core import ToolsCore, answers
from agentcron.interfaces.mcp.models import (
    Attempt,
    DeliveryInfo,
    Fire,
    NextRuns,
    RunDetail,
    RunInfo,
    RunList,
    TaskDetail,
    TaskInfo,
    TaskList,
)
from agentcron.service import Service

TAIL_CHARS = 4000  # characters of a run's output get_run shows
MOST_RUNS = 100


class ReadTools(ToolsCore):
    """list_tasks, get_task, list_runs, get_run, next_runs: what the agent may see."""

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
        limit: StrictInt = 20,
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

    def get_run(self, run_id: StrictInt, ctx: Context) -> RunDetail:
        p = self.policy(ctx)
        service = self._service()
        missing = ToolError(f"no run with id {run_id}; list_runs shows yours")
        try:
            view = service.run_detail(run_id, with_output=False)
        except NotFoundError:
            raise missing from None
        if not p.visible(view["task"]):
            raise missing
        return run_detail(service, run_id, view)

    def next_runs(
        self, name: str, ctx: Context, count: StrictInt = 5, start: str | None = None
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


def _newest_first(row: Mapping[str, Any]) -> tuple[float, int]:
    when = row.get("scheduled_for")
    stamp = datetime.fromisoformat(when).timestamp() if when else 0.0
    return (-stamp, -int(row["id"]))


def run_detail(service: Service, run_id: int, view: Mapping[str, Any]) -> RunDetail:
    """A run as get_run answers it: the service's view and the end of its output."""
    tail, cut = _tail(service, run_id)
    return RunDetail.model_validate(
        {
            **view,
            "attempts_detail": [Attempt.model_validate(a) for a in view["attempts_detail"]],
            "deliveries": [DeliveryInfo.model_validate(d) for d in view["deliveries"]],
            "output_tail": tail,
            "output_truncated": cut,
        }
    )


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
