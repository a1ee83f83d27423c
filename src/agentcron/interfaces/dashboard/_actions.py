"""The dashboard's changes: run now, pause (with a reason), resume, acknowledge,
deliver a run's output again.

Each is a plain HTML form posted to the server, so it works without JavaScript:
the answer is a redirect (303) to the page the form was on, which then says what
happened. With htmx the same form posts in the background and the answer is a
fragment: the sentence for the live region (``#feedback``), the task's buttons
swapped out of band, and an ``agentcron-refresh`` event that makes the polled
parts update at once. Every POST must come from this server's own pages
(:mod:`._origin`); anything else is refused before the service is called. Changes
are audited as made through the dashboard by the client's address, unless the app
in front (the API's guard) already said who is acting.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from agentcron.interfaces.api.deps import get_service
from agentcron.interfaces.dashboard import _views as views
from agentcron.interfaces.dashboard._form import form_route
from agentcron.interfaces.dashboard._origin import ForeignOrigin, check_same_origin
from agentcron.interfaces.dashboard._pages import common, notice_for, notice_state, record_id
from agentcron.interfaces.dashboard._render import ServiceDep, is_htmx, render
from agentcron.service import (
    BUSY_WORDS,
    Actor,
    ConflictError,
    NotFoundError,
    Service,
    ServiceError,
    acting_as,
    current_actor,
)
from agentcron.store.errors import is_database_error

log = logging.getLogger("agentcron.dashboard")

REFRESH_EVENT = "agentcron-refresh"
BACK = ("task", "list", "incidents", "run")


async def _bad_form(request: Request, message: str, status: int) -> Response:
    """A form the dashboard cannot read (:mod:`._form`): refused, nothing changed."""
    return await run_in_threadpool(
        _refused, request, get_service(request), f"Not done: {message}.", status
    )


router = APIRouter(route_class=form_route(_bad_form))


def _back(base: str, task: str, back: str, query: dict[str, str]) -> str:
    """Where the no-JavaScript form returns: the task list, the task's page, the
    incidents or a run's page (never a URL taken from the request, so a form cannot
    send you away)."""
    if back == "list":
        path = f"{base}/"
    elif back == "incidents":
        path = f"{base}/incidents"
    elif back == "run" and query.get("ref", "").isdigit():
        path = f"{base}/runs/{query['ref']}"
    else:
        path = f"{base}/tasks/{quote(task, safe='')}"
    return f"{path}?{urlencode(query)}"


def _status(exc: ServiceError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    return 400


@contextmanager
def _as_dashboard_user(request: Request) -> Iterator[None]:
    """Audit the change as the dashboard's, by the client's address, unless the app
    already set who acts (its guard reads ``X-Actor`` and the token)."""
    if current_actor.get() is not None:
        yield
        return
    client = request.client.host if request.client else "unknown"
    with acting_as(Actor(f"client {client}", "dashboard")):
        yield


@dataclass(frozen=True)
class Done:
    """What a change did, for the sentence that reports it: the task it concerned and
    the run or incident it made or touched."""

    task: str
    ref: int | None = None


def _act(
    request: Request,
    service: Service,
    back: str,
    verb: str,
    code: str,
    change: Callable[[], Done],
) -> Response:
    """Check the origin, make the change as the dashboard's user, answer with a
    redirect (no JavaScript) or a fragment (htmx); a refusal changes nothing."""
    back = back if back in BACK else "task"
    try:
        check_same_origin(request)
    except ForeignOrigin as exc:
        message = f"Refused: {exc}. Changes are accepted only from this dashboard's own pages."
        return _refused(request, service, message, 403)
    if service.database_busy():
        # asked before the change, which is then not tried: it would wait 30 s for the
        # lock (holding up the page's polls), and the browser gives up after 10 s
        return _refused(request, service, f"Not {verb}: {BUSY_WORDS}.", 503)
    try:
        with _as_dashboard_user(request):
            done = change()
    except ServiceError as exc:
        message = exc.words(views.DASHBOARD_WORDS)
        return _refused(request, service, f"Not {verb}: {message}", _status(exc))
    except Exception as exc:
        if not (isinstance(exc, sqlite3.Error) or is_database_error(exc)):
            raise
        # a lock taken after the look above, held past the store's wait (or another
        # database fault): the change is several writes, so part of it may be made
        log.warning("dashboard %s: database error: %s", request.url.path, exc)
        message = (
            f"Perhaps not {verb}: the database failed while this was being done ({exc}); "
            "another process may hold it locked. Part of the change may be made: the page "
            "shows what the database holds now."
        )
        return _refused(request, service, message, 503, refresh=True)
    base = request.scope.get("root_path", "").rstrip("/")
    if not is_htmx(request):
        query = {"done": code, "task": done.task}
        if done.ref is not None:
            query["ref"] = str(done.ref)
        return RedirectResponse(_back(base, done.task, back, query), status_code=303)
    said = notice_for(service, code, done.task, done.ref)
    message = said or f"{done.task!r}: done."
    context: dict[str, Any] = {"message": message, "ok": True, "task": None, "state": None}
    if said is not None:  # the banner's poll replaces it once the state moves on
        context["state"] = notice_state(code, done.task, done.ref, said)
    if back == "task":
        context["task"] = service.show_task(done.task)
    return render(request, "_feedback.html", context, headers={"HX-Trigger": REFRESH_EVENT})


def _refused(
    request: Request, service: Service, message: str, status: int, *, refresh: bool = False
) -> Response:
    """A change that was not made: a page (no JavaScript) or the live region (htmx),
    saying why. htmx swaps only 2xx answers, so it gets 200 with the error shown.
    ``refresh``: the state may have moved all the same (the polled parts update now)."""
    if is_htmx(request):
        headers = {"HX-Trigger": REFRESH_EVENT} if refresh else None
        context = {"message": message, "ok": False, "task": None}
        return render(request, "_feedback.html", context, headers=headers)
    return render(
        request,
        "error.html",
        {**common(service), "title": "Not done", "message": message},
        status_code=status,
    )


@router.post("/tasks/{name}/run", response_class=HTMLResponse)
def run_now(
    request: Request,
    service: ServiceDep,
    name: str,
    back: Annotated[str, Form()] = "task",
) -> Response:
    def change() -> Done:
        return Done(name, int(service.trigger(name)["id"]))

    return _act(request, service, back, "run", "triggered", change)


@router.post("/tasks/{name}/pause", response_class=HTMLResponse)
def pause(
    request: Request,
    service: ServiceDep,
    name: str,
    reason: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "task",
) -> Response:
    """Pause with the reason people will read on the task's page until it is resumed
    (the service trims it and refuses more than 500 characters)."""

    def change() -> Done:
        service.pause(name, reason)
        return Done(name)

    return _act(request, service, back, "paused", "paused", change)


@router.post("/tasks/{name}/resume", response_class=HTMLResponse)
def resume(
    request: Request,
    service: ServiceDep,
    name: str,
    back: Annotated[str, Form()] = "task",
) -> Response:
    def change() -> Done:
        service.resume(name)
        return Done(name)

    return _act(request, service, back, "resumed", "resumed", change)


@router.post("/incidents/{incident_id}/ack", response_class=HTMLResponse)
def acknowledge(
    request: Request,
    service: ServiceDep,
    incident_id: str,
    back: Annotated[str, Form()] = "incidents",
) -> Response:
    """Say an open incident was seen; who and when are then shown beside it."""

    def change() -> Done:
        number = record_id(incident_id, "incident_id")
        view = service.acknowledge(number)
        return Done(str(view["task"]), number)

    return _act(request, service, back, "acknowledged", "acknowledged", change)


@router.post("/runs/{run_id}/redeliver", response_class=HTMLResponse)
def redeliver(
    request: Request,
    service: ServiceDep,
    run_id: str,
    back: Annotated[str, Form()] = "run",
) -> Response:
    """Send a run's kept output again where its delivery gave up (the service refuses,
    with the reason, when there is nothing to send again)."""

    def change() -> Done:
        number = record_id(run_id, "run_id")
        view = service.redeliver(number)
        return Done(str(view["task"]), number)

    return _act(request, service, back, "delivered again", "redelivered", change)
