"""``/api/v1/runs``: history in pages, one run with every attempt, its output."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from agentcron.interfaces.api.deps import NoBodyDep, get_service, known_query_only
from agentcron.interfaces.api.problems import problem_responses
from agentcron.interfaces.schemas import RunDetail, RunSummary
from agentcron.service import Service

router = APIRouter(
    prefix="/runs",
    tags=["runs"],
    responses=problem_responses(400, 404, 422),
    dependencies=[Depends(known_query_only)],
)
ServiceDep = Annotated[Service, Depends(get_service)]
RunId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The run's id")]


@router.get(
    "",
    response_model=list[RunSummary],
    summary="Run history, newest first, in pages",
    response_description="One page; the header X-Next-Cursor (and Link rel=next) "
    "names the next page when there is one",
)
def list_runs(
    service: ServiceDep,
    request: Request,
    response: Response,
    task: Annotated[str | None, Query(description="Runs of this task only")] = None,
    status: Annotated[
        str | None, Query(description="Statuses, comma-separated (failed,missed)")
    ] = None,
    since: Annotated[
        str | None,
        Query(description="Due at or after: ISO time, or a duration ago (2h, 7d)"),
    ] = None,
    before: Annotated[
        str | None, Query(description="Due before: ISO time, or a duration ago")
    ] = None,
    limit: Annotated[int, Query(description="Page size (1-10000)")] = 20,
    cursor: Annotated[
        str | None, Query(description="The X-Next-Cursor of the previous page")
    ] = None,
) -> Any:
    rows, next_cursor = service.runs_page(
        task, status=status, since=since, before=before, limit=limit, cursor=cursor
    )
    if next_cursor is not None:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        url = f"{request.url.path}?{urlencode([*params, ('cursor', next_cursor)])}"
        response.headers["X-Next-Cursor"] = next_cursor
        response.headers["Link"] = f'<{url}>; rel="next"'
    return rows


@router.get("/{run_id}", response_model=RunDetail, summary="One run: attempts, deliveries")
def get_run(
    service: ServiceDep,
    run_id: RunId,
    output: Annotated[
        bool, Query(description="Include the kept output (first megabyte, redacted)")
    ] = True,
) -> Any:
    return service.run_detail(run_id, with_output=output)


@router.get(
    "/{run_id}/output",
    summary="The run's kept output file, whole, redacted, streamed",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def run_output(service: ServiceDep, run_id: RunId) -> StreamingResponse:
    pieces = service.output_stream(run_id)
    # what a run printed may look like HTML: never sniffed into a page (as the dashboard's)
    return StreamingResponse(
        pieces,
        media_type="text/plain; charset=utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


@router.post(
    "/{run_id}/redeliver",
    response_model=RunDetail,
    summary="Deliver the kept output again to the targets whose delivery gave up",
    responses=problem_responses(404, 409),
)
def redeliver(service: ServiceDep, run_id: RunId, body: NoBodyDep = None) -> Any:
    return service.redeliver(run_id)
