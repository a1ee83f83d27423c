"""``/api/v1``: incidents, health, the audit trail, and the CLI's other commands
that make sense remotely (prune, the config schema, a test message).

``agentcron validate`` has no endpoint on purpose: checking a config text on the
server would expand ``${NAME}`` from the daemon's environment and read the
``env_file`` it names, letting a client probe the server's secrets and files."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from agentcron.interfaces.api.deps import (
    NoBodyDep,
    database_free_for_writes,
    get_service,
    known_query_only,
)
from agentcron.interfaces.api.problems import problem_responses
from agentcron.interfaces.schemas import (
    AuditView,
    ChannelTest,
    HealthView,
    IncidentView,
    PruneReport,
)
from agentcron.service import Service, ServiceError

router = APIRouter(
    responses=problem_responses(400, 422),
    dependencies=[Depends(known_query_only), Depends(database_free_for_writes)],
)
ServiceDep = Annotated[Service, Depends(get_service)]
IncidentId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The incident's id")]


@router.get(
    "/incidents",
    response_model=list[IncidentView],
    tags=["incidents"],
    summary="Incidents, open ones first, newest first",
    responses=problem_responses(404),
)
def list_incidents(
    service: ServiceDep,
    task: Annotated[str | None, Query(description="Of this task only")] = None,
    open: Annotated[
        bool, Query(description="true: open ones only; false (the default): open and closed")
    ] = False,
    kind: Annotated[str | None, Query(description="failure, stuck, overdue, ...")] = None,
    limit: Annotated[int, Query(description="At most (1-10000)")] = 50,
) -> Any:
    return service.incidents(task, open_only=open, kind=kind, limit=limit)


@router.get(
    "/incidents/{incident_id}",
    response_model=IncidentView,
    tags=["incidents"],
    summary="One incident",
    responses=problem_responses(404),
)
def get_incident(service: ServiceDep, incident_id: IncidentId) -> Any:
    return service.incident(incident_id)


@router.post(
    "/incidents/{incident_id}/acknowledge",
    response_model=IncidentView,
    tags=["incidents"],
    summary="Say it was seen (who and when are kept); again keeps the first",
    responses=problem_responses(404, 409),
)
def acknowledge(service: ServiceDep, incident_id: IncidentId, body: NoBodyDep = None) -> Any:
    return service.acknowledge(incident_id)


@router.get(
    "/health",
    response_model=HealthView,
    tags=["status"],
    summary="Daemon liveness and last tick, nodes, outbox backlog, channels",
)
def health(service: ServiceDep) -> Any:
    return service.health()


@router.get(
    "/audit",
    response_model=list[AuditView],
    responses=problem_responses(404),  # a task name with no task, history or change
    tags=["status"],
    summary="Changes made through the CLI, the API and the dashboard, newest first",
)
def audit(
    service: ServiceDep,
    task: Annotated[str | None, Query(description="Of this task only")] = None,
    limit: Annotated[int, Query(description="At most (1-10000)")] = 50,
    before_id: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Older than this entry (paging)")
    ] = None,
) -> Any:
    return service.audit(task, limit, before_id)


@router.post(
    "/prune",
    response_model=PruneReport,
    tags=["status"],
    summary=(
        "Remove history past keep_history and output files past keep_outputs now "
        "(or count them with dry_run)"
    ),
)
def prune(
    service: ServiceDep,
    dry_run: Annotated[bool, Query(description="Count what would go; change nothing")] = False,
    body: NoBodyDep = None,
) -> Any:
    return service.prune(dry_run=dry_run)


@router.get("/schema", tags=["config"], summary="JSON Schema of agentcron.yaml")
def config_schema() -> dict[str, Any]:
    from agentcron.config.loader import config_json_schema

    return config_json_schema()


@router.post(
    "/notify/test",
    response_model=list[ChannelTest],
    tags=["status"],
    summary="Send a test message to every channel in use; each one's result",
)
async def notify_test(request: Request, service: ServiceDep, body: NoBodyDep = None) -> Any:
    urls = service.channel_urls(list(request.app.state.settings.notify_urls()))
    if not urls:
        raise ServiceError(
            "no channels configured: add `notify:` URLs to agentcron.yaml", field=None
        )
    return await service.notify_test(urls)
