"""The dashboard's own static files (its stylesheet, its icon and the vendored htmx),
served by a route rather than a mounted directory so that including the router is all
an app has to do. Only the files listed here are served: no path from the URL ever
reaches the filesystem. The icon is also the app's ``/favicon.ico`` (see
:func:`static_response`), which a browser asks for on a page that names none (the
API's docs, a JSON answer).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, PlainTextResponse, Response

from agentcron.interfaces.dashboard._render import STATIC

FILES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "favicon.ico": "image/vnd.microsoft.icon",  # a clock, 16 and 32 px (made here)
    "htmx.min.js": "text/javascript; charset=utf-8",
    "htmx.LICENSE": "text/plain; charset=utf-8",
}
# The files change only with a new agentcron version; an hour keeps reloads cheap
# without pinning an old stylesheet for long after an upgrade.
CACHE = "public, max-age=3600"

router = APIRouter()


@router.get("/static/{filename}", name="dashboard_static")
def static_file(filename: str) -> Response:
    if filename not in FILES:
        return PlainTextResponse(f"no static file named {filename!r}\n", status_code=404)
    return static_response(filename)


def static_response(filename: str) -> FileResponse:
    """One of :data:`FILES`, with its type and caching."""
    media = FILES[filename]
    return FileResponse(
        STATIC / filename,
        media_type=media,
        headers={"Cache-Control": CACHE, "X-Content-Type-Options": "nosniff"},
    )
