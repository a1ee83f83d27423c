"""Every error of the API in one shape (RFC 9457 problem details: ``type``,
``title``, ``status``, ``detail``, the ``field`` at fault, and the ``problems`` of a
rejected task, and the ``advice``: what to do, as data, said in ``detail`` too as the
route that does it), with the status that says whose move it is: 400 a malformed
request, 404 nothing by that name or id, 409 the state forbids it, 422 a body that
breaks a rule (a task the config rules reject, a pause reason too long), 503 the
database is away. Bad input never gets a 500: an
unexpected error does, logged here with its traceback and told to the client
without its text (which might hold a secret).
"""

from __future__ import annotations

import logging
import re
import sqlite3
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from agentcron.metrics import Metrics
from agentcron.service import Act, Advice, ServiceError, Wording
from agentcron.store.errors import UnreadableRow, is_database_error

log = logging.getLogger("agentcron.api")

STATUS = {"bad-request": 400, "not-found": 404, "conflict": 409, "invalid": 422}
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "JSON expected",
    422: "Invalid input",
    500: "Internal error",
    503: "Database unavailable",
}


# The service's advice as a client of this API does it: the route (an API has no
# commands to run; the daemon is started where it runs).
API_WORDS: Wording = {
    Act.PAUSE: "or stop it firing with POST /api/v1/tasks/{task}/pause",
    Act.TRIGGER: "POST /api/v1/tasks/{name}/trigger runs a task now",
    Act.LIST_RUNS: "GET /api/v1/runs lists them",
    Act.LIST_INCIDENTS: "GET /api/v1/incidents lists them",
    Act.START_DAEMON: "the daemon is started on its own machine: no endpoint starts it",
}


# What a client of the API can do while the database is away: wait, and look where
# an answer still comes. Not `agentcron doctor` (a command on the daemon's machine),
# nor GET /api/v1/health, which reads the same database and answers this 503 too;
# /metrics keeps answering, and counts these.
DATABASE_AWAY = (
    "the database could not be read or written just now; try again in a few seconds "
    "(Retry-After). The daemon's log names the error; GET /metrics still answers and "
    'counts these in agentcron_database_errors_total{part="api"}'
)


_MEANING = {
    400: "Malformed request (a parameter or the body); `field` names it",
    401: "The token is missing or wrong",
    403: "Refused: another site's page, or a host name this API does not serve",
    404: "No task, run or incident by that name or id",
    409: "The state forbids it (exists already, defined in the config file, closed)",
    413: "The body is too large",
    415: "The body is not JSON",
    422: "The body breaks a rule (a task's config rules, a field's bounds); `problems` lists each",
    503: "The database is unavailable just now",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error statuses, all in the problem-details shape."""
    from agentcron.interfaces.schemas import Problem

    return {
        code: {
            "model": Problem,
            "description": _MEANING[code],
            "content": {"application/problem+json": {"schema": Problem.model_json_schema()}},
        }
        for code in codes
    }


def problem(
    status: int,
    detail: str,
    kind: str,
    *,
    field: str | None = None,
    problems: list[dict[str, str]] | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    advice: Advice | None = None,
) -> JSONResponse:
    return JSONResponse(
        {
            "type": f"urn:agentcron:problem:{kind}",
            "title": title or TITLES.get(status, "Error"),
            "status": status,
            "detail": _sayable(detail),
            "field": _sayable(field) if field is not None else None,
            "problems": [{k: _sayable(v) for k, v in p.items()} for p in problems or []],
            "advice": advice.as_dict() if advice is not None else None,
        },
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def _sayable(text: str) -> str:
    """``text`` as valid UTF-8: a lone surrogate a request carried (and an error quotes)
    is written as its escape, or the error's own answer failed as a 500."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


_SLASHED = re.compile(r"/tasks/([^/]*%2f[^/]*)", re.IGNORECASE)


def _dashboard_page(request: Request) -> bool:
    """Whether a request for a path no route has is a browser's, for a dashboard page."""
    path = request.url.path
    if path.startswith(("/api/", "/metrics", "/mcp")) or not request.app.state.settings.dashboard:
        return False
    return "text/html" in request.headers.get("accept", "")


def _slashed_task_name(request: Request) -> str | None:
    """The task name of a path that encodes a '/' in it (``/tasks/a%2Fb``), decoded;
    None for any other path."""
    raw = request.scope.get("raw_path")
    if not isinstance(raw, bytes):
        return None
    found = _SLASHED.search(raw.decode("latin-1"))
    return unquote(found.group(1), errors="backslashreplace") if found else None


def install(app: FastAPI, metrics: Metrics) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return problem(
            STATUS.get(exc.kind, 400),
            exc.words(API_WORDS),
            exc.kind,
            field=exc.field,
            problems=[{"location": loc, "message": msg} for loc, msg in exc.problems],
            advice=exc.advice,
        )

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        from agentcron.interfaces.api.input_words import body_keys, message, said, where_of

        errors = list(exc.errors())
        first = errors[0] if errors else {}
        where, field = where_of(tuple(first.get("loc", ())))
        if first.get("type") == "json_invalid":
            return problem(400, "the body is not valid JSON", "bad-request")
        if where == "body" and not field:
            return problem(400, "the body must be a JSON object", "bad-request")
        # each parameter or key at fault in plain words, never pydantic's ("Input should
        # be a valid integer, unable to parse string as an integer", "Field required")
        keys = body_keys(request.scope.get("route"))
        lines = list(dict.fromkeys(said(e, keys) for e in errors))
        if where != "body":  # a query or a path: a malformed request
            return problem(400, "; ".join(lines), "bad-request", field=field)
        # a body whose keys break the route's rules (422), each listed as a rejected
        # task's rules are
        problems = [
            {"location": where_of(tuple(e.get("loc", ())))[1] or where, "message": message(e, keys)}
            for e in errors
        ]
        return problem(422, "; ".join(lines), "invalid", field=field, problems=problems)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http")
        detail = str(exc.detail)
        slashed = _slashed_task_name(request) if exc.status_code in (404, 405) else None
        if slashed is not None:
            # /tasks/a%2Fb arrives as /tasks/a/b: no route matched, and the answer said
            # "no such endpoint: /tasks/a/b" (JSON, on a dashboard page too)
            message = (
                f"no task named {slashed[:120]!r}: a task name cannot contain '/' (names "
                "are letters, digits, '_', '-' and '.', at most 100)"
            )
            if not request.url.path.startswith("/api/") and request.app.state.settings.dashboard:
                from agentcron.interfaces.dashboard._pages import not_found_page

                return await run_in_threadpool(not_found_page, request, message)
            return problem(404, message, "not-found", field="name")
        if exc.status_code == 404 and detail == "Not Found":
            if _dashboard_page(request):
                # a mistyped dashboard address, in a browser: the dashboard's own page,
                # not a JSON problem pointing at the API's docs
                from agentcron.interfaces.dashboard._pages import not_found_page

                message = f"no page at {request.url.path[:200]}"
                return await run_in_threadpool(not_found_page, request, message)
            detail = f"no such endpoint: {request.url.path}; see /api/v1/docs"
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            # the framework's words for a body its JSON reader gave up on (nested a
            # hundred thousand deep: outside-in probe), beside ours for other bad JSON
            return problem(
                400, "the body is not valid JSON (or is nested too deeply)", "bad-request"
            )
        return problem(exc.status_code, detail, kind, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if isinstance(exc, UnreadableRow):
            # not away: trying again will not help, and the row is named (it was a 503
            # "try again in a few seconds", or a 500 "unexpected error")
            metrics.database_error("api")
            log.error("API %s %s: %s", request.method, request.url.path, exc)
            if _dashboard_page(request):
                from agentcron.interfaces.dashboard._pages import database_problem_page

                return await run_in_threadpool(
                    database_problem_page, request, 500, "Unreadable data", str(exc)
                )
            return problem(500, str(exc), "database-row")
        if isinstance(exc, sqlite3.Error) or is_database_error(exc):
            metrics.database_error("api")
            log.warning("API %s %s: database error: %s", request.method, request.url.path, exc)
            if _dashboard_page(request):
                from agentcron.interfaces.dashboard._pages import database_problem_page

                return await run_in_threadpool(
                    database_problem_page,
                    request,
                    503,
                    "Database unavailable",
                    DATABASE_AWAY,
                    {"Retry-After": "5"},
                )
            return problem(503, DATABASE_AWAY, "database", headers={"Retry-After": "5"})
        log.exception("API %s %s failed", request.method, request.url.path)
        return problem(500, "an unexpected error; the daemon's log has the details", "internal")
