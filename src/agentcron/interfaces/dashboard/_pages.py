"""The dashboard's pages (GET): the task list, a task, a run and its output, incidents.

Each page that changes by itself also has a fragment route the page polls with
htmx (``/fragments/…``) returning just the part that moves (the task list with its
counts, a table body by id), so rows stay in place and a reader's scroll is kept.
Everything comes from :class:`agentcron.service.Service` methods.
"""

from __future__ import annotations

from collections import Counter
from difflib import get_close_matches
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse

from agentcron.interfaces.dashboard import _views as views
from agentcron.interfaces.dashboard._render import ServiceDep, render
from agentcron.service import DAEMON_STALE_AFTER, NotFoundError, Service, ServiceError

PAGE_SIZE = 100  # tasks per page: each row reads its recent runs for the sparkline
RUNS_SHOWN = 50  # runs on a task's page
SPARK_RUNS = 20
NEXT_FIRES = 10
INCIDENTS_SHOWN = 50
FILTERS = {"all": "all tasks", "problems": "needing attention", "paused": "paused"}

router = APIRouter()


def common(service: Service) -> dict[str, Any]:
    """What every page shows: the time it was made, the not-running banner, what
    running daemons say of their config file (a change rejected, a restart needed)
    and the notify channels that fail."""
    now = service.clock.now()
    status = service.daemon_status()
    return {
        "now": now,
        "banner": views.banner(status, now, DAEMON_STALE_AFTER),
        "banner_title": views.banner_title(status),  # from the same read as the sentence
        "config_notes": views.config_notes(status),
        "channel_notes": views.channel_notes(service.channel_health(), now),
    }


def _not_found(request: Request, service: Service, message: str) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {**common(service), "title": "Not found", "message": message},
        status_code=404,
    )


def not_found_page(request: Request, message: str) -> HTMLResponse:
    """The 404 page for ``message``, outside a route (the app's error handler: a task
    name with an encoded '/' that matched no route)."""
    from agentcron.interfaces.api.deps import get_service

    return _not_found(request, get_service(request), message)


def database_problem_page(
    request: Request,
    status: int,
    title: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A page for a database that could not be read (away, or a row agentcron cannot
    read): the page a browser shows, not the API's JSON problem. Built without reading
    the database (the banner reads it too)."""
    from datetime import UTC, datetime

    context = {
        "title": title,
        "message": message,
        "now": datetime.now(UTC),
        "banner": None,
        "channel_notes": [],
        "config_notes": [],
    }
    return render(request, "error.html", context, status_code=status, headers=headers)


# The parameters each page reads, each with what it is, for the note a page shows when
# it was asked with one it does not read: ``/?stauts=failing`` (a misspelt filter, an
# old bookmark) showed every task as if that were what was asked, without a word. The
# page is still shown (the owner came for it), the note above it says what was ignored,
# what the page takes, and links to the page without it. The status line's own
# parameters (done, task, ref: the address a form's redirect leads to) are read too,
# and not offered. The fragments htmx polls are not checked: the page builds their
# addresses.
TASKS_TAKES = {
    "q": "the text to find",
    "show": f"one of {', '.join(FILTERS)}",
    "page": "a page number",
}
NOTICE_PARAMS = ("done", "task", "ref")
# words a reader may have meant one of the list's parameters by
_MEANT = {
    "status": "show",
    "state": "show",
    "health": "show",
    "filter": "show",
    "failing": "show",
    "search": "q",
    "query": "q",
    "find": "q",
    "name": "q",
    "p": "page",
}


def query_note(
    request: Request, takes: dict[str, str], *, filtered: bool = False
) -> dict[str, Any]:
    """The page's ``query_note``: what it says of the query parameters it does not
    read (None when there are none), ``query_kept``, the address of the page without
    them (relative: it keeps the page's path below any prefix), and ``query_link``,
    the words of the link to it."""
    known = set(takes) | set(NOTICE_PARAMS)
    unknown = [key for key in dict.fromkeys(request.query_params) if key not in known]
    if not unknown:
        return {"query_note": None}
    names = [repr(key[:80]) for key in unknown[:5]]
    if len(unknown) > 5:
        names.append(f"{len(unknown) - 5} more")
    one = len(unknown) == 1
    said = (
        f"{_and(names)} {'is not a parameter' if one else 'are not parameters'} of this "
        f"page and {'was' if one else 'were'} ignored"
    )
    if filtered:
        said += f": the list below is not filtered by {'it' if one else 'them'}"
    if not takes:
        said += ". It takes none."
    else:
        said += f". It takes {_and([f'{key} ({what})' for key, what in takes.items()])}."
        meant = _meant(unknown[0], takes)
        if meant == "show":
            said += " Did you mean show? show=problems lists the tasks needing attention."
        elif meant is not None:
            said += f" Did you mean {meant}?"
    kept = [(key, value) for key, value in request.query_params.multi_items() if key in known]
    return {
        "query_note": said,
        "query_kept": f"?{urlencode(kept)}",
        "query_link": f"Open this page without {'it' if one else 'them'}",
    }


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _meant(name: str, takes: dict[str, str]) -> str | None:
    """The parameter of ``takes`` a mistyped or other-worded ``name`` most likely meant."""
    lowered = name.lower()
    words = {**{key: key for key in takes}, **{w: k for w, k in _MEANT.items() if k in takes}}
    found = get_close_matches(lowered, list(words), n=1, cutoff=0.7)
    return words[found[0]] if found else None


def _task_rows(
    service: Service, q: str, show: str, page: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The page's rows (failing first) and the numbers above the table."""
    now = service.clock.now()
    tasks = [dict(t) for t in views.sort_tasks(service.list_tasks())]
    counts = Counter(str(t["health"]) for t in tasks)
    attention = sum(1 for t in tasks if views.needs_attention(t))
    needle = q.strip().lower()
    if needle:
        tasks = [t for t in tasks if needle in _searchable(t)]
    if show == "problems":
        tasks = [t for t in tasks if views.needs_attention(t)]
    elif show == "paused":
        tasks = [t for t in tasks if t["paused"]]
    pages = max(1, -(-len(tasks) // PAGE_SIZE))
    # a page past the end (an old link, tasks removed since) is shown empty and says so,
    # with a link to the last page: it was silently the last page, marked as the one
    # asked for, so "page 7" showed page 2's tasks
    shown = tasks[(page - 1) * PAGE_SIZE : page * PAGE_SIZE] if page <= pages else []
    rows = [views.task_row(t, service.runs(str(t["name"]), SPARK_RUNS), now) for t in shown]
    summary = {
        "total": sum(counts.values()),
        "problems": attention,
        "counts": sorted(counts.items(), key=lambda kv: views.health_rank(kv[0])),
        "matching": len(tasks),
        "page": page,
        "pages": pages,
    }
    return rows, summary


def _searchable(task: dict[str, Any]) -> str:
    """What the search box looks in: name, schedule and description, any case."""
    return " ".join(str(task.get(k) or "") for k in ("name", "schedule", "description")).lower()


def _list_params(show: str, page: str) -> tuple[str, int]:
    """The list's filter and page number, or ServiceError naming the parameter."""
    if show not in FILTERS:
        raise ServiceError(f"show: {show!r} is not a filter; use one of {', '.join(FILTERS)}")
    # ASCII digits only: "²" passed isdigit() and int() raised (a 500), and "١" was 1
    if not (page.isascii() and page.isdigit()) or int(page) < 1:
        raise ServiceError(f"page: {page!r} is not a page number (1, 2, …)")
    return show, int(page)


def _bad_request(request: Request, service: Service, message: str) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {**common(service), "title": "Bad request", "message": message},
        status_code=400,
    )


@router.get("/", response_class=HTMLResponse, name="dashboard_tasks")
def tasks_page(
    request: Request,
    service: ServiceDep,
    q: str = "",
    show: str = "all",
    page: str = "1",
) -> HTMLResponse:
    try:
        show, number = _list_params(show, page)
    except ServiceError as exc:
        return _bad_request(request, service, exc.words(views.DASHBOARD_WORDS))
    rows, summary = _task_rows(service, q, show, number)
    return render(
        request,
        "tasks.html",
        {
            **common(service),
            "rows": rows,
            "summary": summary,
            "q": q,
            "show": show,
            "filters": FILTERS,
            **_notice(request, service),
            **query_note(request, TASKS_TAKES, filtered=True),
        },
    )


@router.get("/fragments/tasks", response_class=HTMLResponse)
def tasks_fragment(
    request: Request,
    service: ServiceDep,
    q: str = "",
    show: str = "all",
    page: str = "1",
) -> HTMLResponse:
    try:
        show, number = _list_params(show, page)
    except ServiceError as exc:
        return _bad_request(request, service, exc.words(views.DASHBOARD_WORDS))
    rows, summary = _task_rows(service, q, show, number)
    context = {"rows": rows, "summary": summary, "q": q, "show": show}
    return render(request, "_task_list.html", context)


@router.get("/fragments/banner", response_class=HTMLResponse)
def banner_fragment(request: Request, service: ServiceDep) -> HTMLResponse:
    """The banner, polled on every page, with the footer's time and, when the status
    line's sentence no longer holds (the task resumed from the CLI since, the run it
    announced has ended), that line again, said of the state now (or emptied)."""
    context: dict[str, Any] = {**common(service), "live_parts": True, "notice_changed": False}
    shown = request.query_params.get("notice", "")
    code, _, rest = shown.partition("|")
    ref, _, task = rest.partition("|")
    if code in NOTICE_CODES and task:
        number = int(ref) if ref.isdigit() and len(ref) < 19 else None
        said = notice_for(service, code, task, number)
        if said != request.query_params.get("notice_text", ""):
            context["notice_changed"] = True
            context["notice"] = said
            context["notice_of"] = notice_state(code, task, number, said) if said else None
    return render(request, "_banner.html", context)


def _task_context(service: Service, name: str) -> dict[str, Any]:
    """Raises ServiceError for an unknown task (the message suggests a close name)."""
    now = service.clock.now()
    task = service.show_task(name)
    runs = service.runs(name, RUNS_SHOWN)
    row = views.task_row(task, runs[:SPARK_RUNS], now)
    return {
        "task": row,
        "spec": task.get("spec", {}),
        "runs": [views.run_row(r, now, str(task["timezone"])) for r in runs],
        "next": service.next_fires(name, NEXT_FIRES) if not task["paused"] else [],
        "incidents": [i for i in _incident_rows(service, name) if i["open"]],
    }


@router.get("/tasks/{name}", response_class=HTMLResponse, name="dashboard_task")
def task_page(request: Request, service: ServiceDep, name: str) -> HTMLResponse:
    try:
        context = _task_context(service, name)
    except ServiceError as exc:
        removed = _removed_task_runs(service, name)
        if removed is None:
            return _not_found(request, service, exc.words(views.DASHBOARD_WORDS))
        return render(
            request,
            "removed.html",
            {**common(service), "name": name, "runs": removed, **query_note(request, {})},
        )
    return render(
        request,
        "task.html",
        {
            **common(service),
            **context,
            **_notice(request, service, name),
            **query_note(request, {}),
        },
    )


def _removed_task_runs(service: Service, name: str) -> list[dict[str, Any]] | None:
    """The kept runs of a task that is gone (None: no task had that name, which the
    caller answers with its 404; any other fault is raised, not taken for that)."""
    try:
        runs = service.runs(name, RUNS_SHOWN)
    except NotFoundError:
        return None
    if not runs:
        return None
    now = service.clock.now()
    return [views.run_row(r, now) for r in runs]


TASK_PARTS = {"summary": "_task_summary.html", "runs": "_run_body.html"}


@router.get("/fragments/tasks/{name}/{part}", response_class=HTMLResponse)
def task_fragment(request: Request, service: ServiceDep, name: str, part: str) -> HTMLResponse:
    """One live part of a task's page: its summary or its run history's rows."""
    if part not in TASK_PARTS:
        return _not_found(request, service, f"no part {part!r}; use one of {sorted(TASK_PARTS)}")
    try:
        context = _task_context(service, name)
    except ServiceError as exc:
        return _not_found(request, service, exc.words(views.DASHBOARD_WORDS))
    if part == "summary":
        # the summary's poll brings the rest of the page that follows the task's state:
        # its open incidents, its next fire times, and its buttons when it was paused or
        # resumed elsewhere (only then: a reason being typed is kept)
        shown = request.query_params.get("actions")
        now_shows = "paused" if context["task"]["paused"] else "active"
        context["live_parts"] = True
        context["actions_changed"] = shown is not None and shown != now_shows
    return render(request, TASK_PARTS[part], {**common(service), **context})


MAX_ID = 2**63 - 1  # the API's bound on ids (a database integer)


def record_id(raw: str, field: str) -> int:
    """``raw`` (a path's id) as a number, or ServiceError naming ``field`` and the bad
    value: a malformed id is the request's fault (400, as the API answers it), not a
    record that is missing. Only ASCII digits: ``int()`` also took " 1", "1_0" and
    other scripts' digits, so one run had many addresses."""
    if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_ID:
        return int(raw)
    raise ServiceError(
        f"{field}: {raw!r} is not an id; an id is a whole number from 1 to {MAX_ID}",
        field=field,
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse, name="dashboard_run")
def run_page(request: Request, service: ServiceDep, run_id: str) -> HTMLResponse:
    now = service.clock.now()
    try:
        number = record_id(run_id, "run_id")
    except ServiceError as exc:
        return _bad_request(request, service, exc.words(views.DASHBOARD_WORDS))
    try:
        run = service.run_detail(number)
    except ServiceError as exc:
        return _not_found(request, service, exc.words(views.DASHBOARD_WORDS))
    local = run.get("scheduled_for")
    try:
        zone: str | None = service.zone_of(str(run["task"]))
    except NotFoundError:  # removed: its run's times are kept in UTC
        zone = None
    attempts = [
        {
            **a,
            "duration": views.duration_text(a.get("duration_s")),
            "started_at": views.in_zone_of(a.get("started_at"), local),
            "finished_at": views.in_zone_of(a.get("finished_at"), local),
        }
        for a in run["attempts_detail"]
    ]
    return render(
        request,
        "run.html",
        {
            **common(service),
            "run": views.run_row(run, now, zone),
            "attempts": attempts,
            **_notice(request, service),
            **query_note(request, {}),
        },
    )


@router.get("/runs/{run_id}/output", name="dashboard_output")
def run_output(service: ServiceDep, run_id: str) -> Response:
    """The whole kept output as plain text, streamed and redacted by the service."""
    try:
        number = record_id(run_id, "run_id")
    except ServiceError as exc:
        return PlainTextResponse(exc.words(views.DASHBOARD_WORDS) + "\n", status_code=400)
    try:
        pieces = service.output_stream(number)
    except ServiceError as exc:
        return PlainTextResponse(exc.words(views.DASHBOARD_WORDS) + "\n", status_code=404)
    return StreamingResponse(
        pieces,
        media_type="text/plain; charset=utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


_INCIDENT_TIMES = ("opened_at", "closed_at", "since", "acknowledged_at")


def _incident_rows(service: Service, task: str | None = None) -> list[dict[str, Any]]:
    """Incidents (open first) with how long each has lasted, in words, and their times
    in their task's zone, as its runs are shown (they were in UTC beside runs in the
    task's zone); an incident of no task (a provider, a home, a node) or of a task
    removed since, in the config's zone."""
    now = service.clock.now()
    zones: dict[str, str] = {}
    rows = []
    for i in service.incidents(task, limit=INCIDENTS_SHOWN):
        name = str(i["task"])
        if name not in zones:
            try:
                zones[name] = service.zone_of(name)
            except NotFoundError:
                zones[name] = service.owner_zone()
        row = {**i, "zone": zones[name]}
        for key in _INCIDENT_TIMES:
            row[key] = views.in_zone(i[key], zones[name])
        row["since_text"] = views.relative(views.parse_time(i["since"] or i["opened_at"]), now)
        rows.append(row)
    return rows


@router.get("/incidents", response_class=HTMLResponse, name="dashboard_incidents")
def incidents_page(request: Request, service: ServiceDep) -> HTMLResponse:
    """Open incidents first (with their messages), then the most recent closed ones."""
    rows = _incident_rows(service)
    return render(
        request,
        "incidents.html",
        {
            **common(service),
            "open": [i for i in rows if i["open"]],
            "closed": [i for i in rows if not i["open"]],
            **_notice(request, service),
            **query_note(request, {}, filtered=True),
        },
    )


@router.get("/fragments/incidents", response_class=HTMLResponse)
def incidents_fragment(request: Request, service: ServiceDep) -> HTMLResponse:
    rows = _incident_rows(service)
    return render(request, "_incident_rows.html", {"open": [i for i in rows if i["open"]]})


# Outcomes a form post reports: right after the change (htmx), or on the page a redirect
# leads to (no JavaScript). Only these codes are read from the query string, and each
# sentence is built here from what the database says now: a crafted, reloaded or
# bookmarked link cannot make the page assert what is not so.
NOTICE_CODES = ("triggered", "paused", "resumed", "acknowledged", "redelivered")


def notice_for(service: Service, code: str, task: str, ref: int | None) -> str | None:
    """The sentence for ``code`` about ``task`` (and run or incident ``ref``), or None
    when the state no longer bears it out (the task resumed since, another task's run).
    A task, run or incident that is not there (removed since, a made-up link) is such a
    case; any other error is not swallowed here: the page fails and says so."""
    try:
        shown = service.show_task(task)
    except NotFoundError:
        return None
    name = repr(task)
    if code == "paused":
        return (
            f"{name} is paused: no new runs start until it is resumed." if shown["paused"] else None
        )
    if code == "resumed":
        if shown["paused"]:
            return None
        return f"{name} is resumed: it runs again from its next scheduled time."
    if ref is None:
        return None
    if code == "acknowledged":
        try:
            incident = service.incident(ref)
        except NotFoundError:
            return None
        if incident["task"] != task or incident["acknowledged_at"] is None:
            return None
        return f"Incident #{ref} of {name} is acknowledged: it stays listed until it ends."
    try:
        run = service.run_detail(ref, with_output=False)
    except NotFoundError:
        return None
    if code == "redelivered":
        return _redelivered(run, ref, task)
    if run["task"] != task or run.get("trigger") != "manual":
        return None
    status = str(run["status"])
    if status == "pending":
        note = service.trigger_note(task, ref).words(views.DASHBOARD_WORDS)
        return f"Run #{ref} of {name} is queued; {note}."
    if status == "running":
        return f"Run #{ref} of {name} is running."
    if status == "retrying":
        return f"Run #{ref} of {name} failed and waits for a retry."
    return f"Run #{ref} of {name} has ended: {status}."


def _redelivered(run: dict[str, Any], ref: int, task: str) -> str | None:
    """The sentence for a run whose output was queued to be delivered again."""
    if run["task"] != task:
        return None
    states = {str(d["status"]) for d in run.get("deliveries", [])}
    if states & {"pending", "retrying"}:
        return (
            f"The output of run #{ref} of {task!r} is queued to be delivered again: the "
            "daemon sends it from the kept file, and you are told how it went."
        )
    if states == {"delivered"}:
        return f"The output of run #{ref} of {task!r} is delivered."
    return None


def notice_state(code: str, task: str, ref: int | None, text: str) -> dict[str, Any]:
    """What a status line's sentence was said of, kept beside it on the page: the
    banner's poll sends it back and gets the line again once the state has moved."""
    return {"code": code, "task": task, "ref": ref, "text": text}


def _notice(request: Request, service: Service, task: str | None = None) -> dict[str, Any]:
    """The sentence for ``?done=CODE&task=NAME&ref=ID`` (see :func:`notice_for`) as the
    page's ``notice``, and what it was said of as ``notice_of``."""
    code = request.query_params.get("done", "")
    if code not in NOTICE_CODES:
        return {"notice": None}
    task = task if task is not None else request.query_params.get("task", "")
    raw = request.query_params.get("ref", "")
    ref = int(raw) if raw.isdigit() and len(raw) < 19 else None
    said = notice_for(service, code, task, ref)
    if said is None:
        return {"notice": None}
    return {"notice": said, "notice_of": notice_state(code, task, ref, said)}
