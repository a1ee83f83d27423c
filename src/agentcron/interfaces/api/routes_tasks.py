"""``/api/v1/tasks``: list, read, create, change, remove, pause, resume, trigger.

Each route is one service call; bodies and answers are the shapes of
:mod:`agentcron.interfaces.schemas`, the same the CLI's ``--json`` prints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from agentcron.interfaces.api.deps import (
    NoBodyDep,
    database_free_for_writes,
    get_service,
    known_query_only,
)
from agentcron.interfaces.api.problems import API_WORDS, problem_responses
from agentcron.interfaces.schemas import (
    NextFire,
    Removed,
    TaskDetail,
    TaskSummary,
    TriggeredRun,
    with_paused,
)
from agentcron.service import Service

router = APIRouter(
    prefix="/tasks",
    tags=["tasks"],
    responses=problem_responses(400, 404, 422),
    dependencies=[Depends(known_query_only), Depends(database_free_for_writes)],
)
ServiceDep = Annotated[Service, Depends(get_service)]


class TaskCreate(BaseModel):
    """A task as in the config file: its name plus exactly one schedule (``cron``,
    ``every``, ``at``) and one action (``command``, ``python``, ``http``, ``llm``),
    and any other task key (see ``agentcron schema``). Checked by the config rules."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"name": "backup", "cron": "0 3 * * *", "command": ["./backup.sh"]}]
        },
    )

    name: str = Field(description="Letters, digits, '_', '-', '.'; at most 100")


class PauseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=500, description="Kept and shown until resumed")


@router.get("", response_model=list[TaskSummary], summary="List tasks, by name")
def list_tasks(
    service: ServiceDep,
    health: Annotated[
        str | None, Query(description="Health words, comma-separated (failing,stuck)")
    ] = None,
    source: Annotated[str | None, Query(description="file, api or code")] = None,
    text: Annotated[
        str | None, Query(description="In the name, schedule or description (any case)")
    ] = None,
) -> Any:
    return service.list_tasks(health=health, source=source, text=text)


@router.post(
    "",
    response_model=TaskSummary,
    status_code=201,
    summary="Create a task (source: api)",
    responses=problem_responses(409, 422),
)
def create_task(
    service: ServiceDep, response: Response, body: Annotated[TaskCreate, Body()]
) -> Any:
    raw = dict(body.model_extra or {})
    view = service.add_task(body.name, raw)
    response.headers["Location"] = f"/api/v1/tasks/{body.name}"
    return view


@router.get("/{name}", response_model=TaskDetail, summary="One task, its next runs and recent runs")
def get_task(
    service: ServiceDep,
    name: str,
    count: Annotated[int, Query(description="How many next fire times (1-1000)")] = 3,
) -> Any:
    data = service.show_task(name, count)
    data["next"] = with_paused(data["next"], bool(data["paused"]))
    return data


@router.get(
    "/{name}/next_runs",
    response_model=list[NextFire],
    summary="Upcoming fire times with DST notes",
)
def next_runs(
    service: ServiceDep,
    name: str,
    count: Annotated[int, Query(description="How many (1-1000)")] = 5,
    from_: Annotated[
        datetime | None,
        Query(alias="from", description="Start (ISO; without an offset: the task's zone)"),
    ] = None,
) -> Any:
    fires = service.next_fires(name, count, from_)
    rec = service.store.get_task(name)
    return with_paused(fires, rec is not None and rec.paused)


@router.patch(
    "/{name}",
    response_model=TaskSummary,
    summary="Change a task (JSON merge patch; null resets a key)",
    responses=problem_responses(409, 422),
)
def patch_task(
    service: ServiceDep,
    name: str,
    body: Annotated[
        dict[str, Any],
        Body(examples=[{"retries": 5, "cron": None, "every": "30m"}]),
    ],
) -> Any:
    return service.update_task(name, body)


@router.delete(
    "/{name}",
    response_model=Removed,
    summary="Remove a task (its history is kept)",
    responses=problem_responses(409),
)
def delete_task(service: ServiceDep, name: str) -> Any:
    service.remove(name)
    return {"name": name, "removed": True}


@router.post("/{name}/pause", response_model=TaskSummary, summary="Pause, with a reason")
def pause_task(
    service: ServiceDep, name: str, body: Annotated[PauseBody | None, Body()] = None
) -> Any:
    return service.pause(name, body.reason if body is not None else None)


@router.post("/{name}/resume", response_model=TaskSummary, summary="Resume, from now on")
def resume_task(service: ServiceDep, name: str, body: NoBodyDep = None) -> Any:
    return service.resume(name)


@router.post(
    "/{name}/trigger",
    response_model=TriggeredRun,
    status_code=202,
    summary="Run now; answers with the run at once, without waiting for it",
)
def trigger_task(service: ServiceDep, response: Response, name: str, body: NoBodyDep = None) -> Any:
    run = service.trigger(name)
    response.headers["Location"] = f"/api/v1/runs/{run['id']}"
    return {**run, "note": service.trigger_note(name, run["id"]).words(API_WORDS)}
