"""Request dependencies shared by the HTTP API and the dashboard.

Routes never build a :class:`Service` themselves: the app factory puts one on
``app.state.service`` and every route asks for it through :func:`get_service`,
so the API and the dashboard see the same store, clock and defaults, and tests
can hand in a service of their own.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from agentcron.service import BUSY_WORDS, Service, ServiceError


# A resume sent {"x": 1} answered 200 as if the key meant something, while a pause
# refused a key it does not take by name (422): the actions without a body do too.
class NoBody(BaseModel):
    """An action that takes no body: send nothing, ``null`` or ``{}``."""

    model_config = ConfigDict(extra="forbid")


NoBodyDep = Annotated[NoBody | None, Body(description="None: nothing, null or {}")]


def get_service(request: Request) -> Service:
    """The service the app was built with (``app.state.service``)."""
    service: Service = request.app.state.service
    return service


# Paging words of other APIs: this one pages with cursors, and said nothing when asked
# for ``?page=99999`` (the first page came back, as if it were page 99,999).
_PAGING = ("page", "offset", "per_page", "page_size", "skip")


def known_query_only(request: Request) -> None:
    """Refuse a query parameter the route does not take (400 naming it and those it
    takes): ignored, ``?page=3``, ``?offset=40`` or a misspelt ``?tsk=backup`` answered
    as if not asked, with the first page or every task's runs."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    taken: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        taken.update(str(p.alias) for p in current.query_params)
        pending.extend(current.dependencies)
    unknown = [key for key in dict.fromkeys(request.query_params) if key not in taken]
    if not unknown:
        return
    name = unknown[0][:80]
    takes = f"it takes {', '.join(sorted(taken))}" if taken else "it takes none"
    paging = ""
    if name in _PAGING:
        if "cursor" in taken:
            paging = (
                "; this API pages with cursors, not page numbers: pass the X-Next-Cursor "
                "(or Link rel=next) of the previous answer as cursor"
            )
        elif "before_id" in taken:
            paging = "; pass the id of the previous answer's last entry as before_id"
        elif "limit" in taken:
            paging = "; this list is not paged (limit bounds it)"
        else:
            paging = "; this answer is not paged"
    raise ServiceError(
        f"{name}: not a parameter of {request.method} {request.url.path}; {takes}{paging}",
        field=name,
    )


_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def database_free_for_writes(request: Request) -> None:
    """A change while another process holds the database locked is refused at once
    (503, Retry-After), nothing tried: it waited out the store's 30 s busy timeout, and
    the requests behind it waited too (a route's dependency, run in a thread)."""
    if request.method in _WRITES and get_service(request).database_busy():
        raise HTTPException(503, f"{BUSY_WORDS[:1].upper()}{BUSY_WORDS[1:]}", {"Retry-After": "5"})
