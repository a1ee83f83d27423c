"""The dashboard's Jinja environment and the one way pages are rendered.

Autoescape is on for every template (task names, errors and outputs are text a
task or its owner wrote, so each is escaped where it is shown); undefined
variables raise instead of printing nothing, so a renamed service field fails a
test rather than leaving a blank cell.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import jinja2
import markupsafe
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from agentcron.interfaces.api.deps import get_service
from agentcron.interfaces.zone_names import labelled, wall
from agentcron.service import Service

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # a time and the name of its zone beside it (``02:00:00 JST``): see the when macro
    env.filters["wall"] = wall
    env.filters["zone_label"] = labelled
    env.filters["code_spans"] = code_spans
    return env


_CODE = re.compile(r"`([^`]+)`")


def code_spans(text: str) -> markupsafe.Markup:
    """``text`` escaped, its `backquoted` parts as ``<code>``: a command in the banner
    ("start it again with the command `agentcron run`") reads as one to type in a
    shell, not as a word of the page or a button."""
    return markupsafe.Markup(_CODE.sub(r"<code>\1</code>", str(markupsafe.escape(text))))


# The API's dependency, so an app (or a test) that overrides it overrides both.
ServiceDep = Annotated[Service, Depends(get_service)]


def is_htmx(request: Request) -> bool:
    """True for a request htmx made (it sends ``HX-Request: true``), which gets a
    fragment; any other request gets the whole page."""
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The template rendered with ``request`` and the page's base path available.

    ``base`` is the path the router is mounted under (``root_path``), so links keep
    working when the dashboard is served below a prefix.
    """
    base = request.scope.get("root_path", "").rstrip("/")
    html = environment().get_template(template).render(request=request, base=base, **context)
    return HTMLResponse(html, status_code=status_code, headers=headers)
