"""The dashboard's own static files (its stylesheet and the vendored htmx), served
by a route rather than a mounted directory so that including the router is all an
app has to do. Only the files listed here are served: no path from the URL ever
reaches the filesystem.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, PlainTextResponse, Response

from agentcron.interfaces.dashboard._render import STATIC

FILES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "htmx.min.js": "text/javascript; charset=utf-8",
    "htmx.LICENSE": "text/plain; charset=utf-8",
}
# The files change only with a new agentcron version; an hour keeps reloads cheap
# without pinning an old stylesheet for long after an upgrade.
CACHE = "public, max-age=3600"

router = APIRouter()


@router.get("/static/{filename}", name="dashboard_static")
def static_file(filename: str) -> Response:
    media = FILES.get(filename)
    if media is None:
        return PlainTextResponse(f"no static file named {filename!r}\n", status_code=404)
    return FileResponse(
        STATIC / filename,
        media_type=media,
        headers={"Cache-Control": CACHE, "X-Content-Type-Options": "nosniff"},
    )
