"""The dashboard's three changes: run now, pause (with a reason), resume.

Each is a plain HTML form posted to the server, so it works without JavaScript:
the answer is a redirect (303) to the page the form was on, which then says what
happened. With htmx the same form posts in the background and the answer is a
fragment: the sentence for the live region (``#feedback``), the task's buttons
swapped out of band, and an ``agentcron-refresh`` event that makes the polled
tables update at once. Every POST must come from this server's own pages
(:mod:`._origin`); anything else is refused before the service is called.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from agentcron.interfaces.dashboard._origin import ForeignOrigin, check_same_origin
from agentcron.interfaces.dashboard._pages import NOTICES
from agentcron.interfaces.dashboard._render import ServiceDep, is_htmx, render
from agentcron.service import Service, ServiceError

REASON_MAX = 500  # characters; a reason is a sentence, not a document
REFRESH_EVENT = "agentcron-refresh"

router = APIRouter()


def _back(base: str, task: str, back: str, query: dict[str, str]) -> str:
    """Where the no-JavaScript form returns: the task list or the task's page only
    (never a URL taken from the request, so the form cannot redirect elsewhere)."""
    path = f"{base}/" if back == "list" else f"{base}/tasks/{quote(task, safe='')}"
    return f"{path}?{urlencode(query)}"


def _answer(
    request: Request,
    service: Service,
    name: str,
    back: str,
    code: str,
    run: int | None = None,
) -> Response:
    base = request.scope.get("root_path", "").rstrip("/")
    if not is_htmx(request):
        query = {"done": code, "task": name, **({"run": str(run)} if run is not None else {})}
        return RedirectResponse(_back(base, name, back, query), status_code=303)
    message = NOTICES[code].format(task=repr(name), run=run)
    context: dict[str, Any] = {"message": message, "ok": True, "task": None}
    if back == "task":
        context["task"] = service.show_task(name)
    return render(request, "_feedback.html", context, headers={"HX-Trigger": REFRESH_EVENT})


def _refused(request: Request, service: Service, message: str, status: int) -> Response:
    """A change that was not made: a page (no JavaScript) or the live region (htmx),
    saying why. htmx swaps only 2xx answers, so it gets 200 with the error shown."""
    if is_htmx(request):
        return render(request, "_feedback.html", {"message": message, "ok": False, "task": None})
    now = service.clock.now()
    from agentcron.interfaces.dashboard._views import banner

    return render(
        request,
        "error.html",
        {
            "now": now,
            "banner": banner(service.daemon_status(), now),
            "title": "Not done",
            "message": message,
        },
        status_code=status,
    )


def _guard(request: Request) -> str | None:
    try:
        check_same_origin(request)
    except ForeignOrigin as exc:
        return f"Refused: {exc}. Changes are accepted only from this dashboard's own pages."
    return None


@router.post("/tasks/{name}/run", response_class=HTMLResponse)
def run_now(
    request: Request,
    service: ServiceDep,
    name: str,
    back: Annotated[str, Form()] = "task",
) -> Response:
    refused = _guard(request)
    if refused:
        return _refused(request, service, refused, 403)
    try:
        slot = service.trigger(name)
    except ServiceError as exc:
        return _refused(request, service, f"Not run: {exc}", 404)
    return _answer(request, service, name, back, "triggered", run=int(slot["id"]))


@router.post("/tasks/{name}/pause", response_class=HTMLResponse)
def pause(
    request: Request,
    service: ServiceDep,
    name: str,
    back: Annotated[str, Form()] = "task",
) -> Response:
    refused = _guard(request)
    if refused:
        return _refused(request, service, refused, 403)
    try:
        service.pause(name)
    except ServiceError as exc:
        return _refused(request, service, f"Not paused: {exc}", 404)
    return _answer(request, service, name, back, "paused")


@router.post("/tasks/{name}/resume", response_class=HTMLResponse)
def resume(
    request: Request,
    service: ServiceDep,
    name: str,
    back: Annotated[str, Form()] = "task",
) -> Response:
    refused = _guard(request)
    if refused:
        return _refused(request, service, refused, 403)
    try:
        service.resume(name)
    except ServiceError as exc:
        return _refused(request, service, f"Not resumed: {exc}", 404)
    return _answer(request, service, name, back, "resumed")
