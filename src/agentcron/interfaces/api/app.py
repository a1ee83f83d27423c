"""The web app the daemon serves: the HTTP API under ``/api/v1``, ``/metrics``, and
the dashboard at ``/``, behind one guard (:mod:`.guard`).

:func:`create_app` takes a factory rather than a service: the app opens its own
service (its own database connection) when it starts and closes it when it stops,
so requests, which run on the server's threads, never share a connection with the
scheduler loop.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from agentcron.config.agents import AgentsConfig
from agentcron.interfaces.api import problems, routes_runs, routes_status, routes_tasks
from agentcron.interfaces.api.guard import Guard
from agentcron.metrics import CONTENT_TYPE, Metrics
from agentcron.service import Service

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ApiSettings:
    """How the app guards itself and what it serves besides the API.

    ``token``: required of every request when set (see :mod:`.guard`); None means
    loopback mode. ``metrics``: the daemon's collector, attached to its engine; when
    None the app makes one whose counters stay at zero (gauges still read the
    database). ``notify_urls``: the config's channels, for the test message.
    ``close_service``: close the factory's service when the app stops."""

    token: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    allowed_hosts: tuple[str, ...] = ()
    metrics: Metrics | None = None
    notify_urls: Callable[[], list[str]] = field(default=list)
    close_service: bool = True
    dashboard: bool = True
    agents: AgentsConfig | None = None  # let in at /mcp (interfaces.mcp)


def create_app(
    service_factory: Callable[[], Service], settings: ApiSettings | None = None
) -> FastAPI:
    """The app; ``service_factory`` is called once, when the app starts."""
    settings = settings or ApiSettings()
    metrics = settings.metrics or Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = service_factory()
        app.state.service = service
        metrics.bind(service)
        try:
            yield
        finally:
            if settings.close_service:
                service.close()

    from agentcron import __version__

    app = FastAPI(
        title="agentcron",
        version=__version__,
        summary="A scheduler for AI-agent and script workloads: a scheduled task never "
        "fails silently.",
        description="The same operations and JSON shapes as the `agentcron` CLI's "
        "`--json`. Errors are problem details (`type`, `title`, `status`, `detail`, "
        "`field`). See docs/api.md.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    problems.install(app, metrics)
    for module in (routes_tasks, routes_runs, routes_status):
        _document_guard_answers(module.router.routes)
        app.include_router(module.router, prefix=API_PREFIX)

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(_docs_page(app.openapi()))

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        # the dashboard's icon: a browser asks for it on a page that names none (the
        # docs below, a JSON answer, /metrics), and its 404 was an error in the console
        from agentcron.interfaces.dashboard._static import static_response

        return static_response("favicon.ico")

    @app.get(
        "/metrics",
        tags=["status"],
        summary="Prometheus metrics (text exposition format)",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}}},
    )
    def prometheus(request: Request) -> Response:
        body = request.app.state.metrics.render()
        return Response(body, media_type=CONTENT_TYPE)

    _document_guard_answers(app.routes)
    if settings.dashboard:
        from agentcron.interfaces.dashboard import build_router

        app.include_router(build_router())
    if settings.agents is not None and settings.agents.clients:
        from agentcron.interfaces.mcp import mount_mcp

        mount_mcp(app, settings.agents)
    app.add_middleware(
        Guard,
        token=settings.token,
        max_body_bytes=settings.max_body_bytes,
        allowed_hosts=settings.allowed_hosts,
    )
    return app


# What the guard (and the database handler) answer before or around any route: the
# OpenAPI document listed none of them, so a client generated from it, or a check
# against it, took a 403 or a 415 for a broken server.
_EVERY_ROUTE = (401, 403, 503)
_WITH_A_BODY = (413, 415)  # the guard's size cap and JSON check, on unsafe methods
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _document_guard_answers(routes: Iterable[BaseRoute]) -> None:
    """Add the guard's statuses to each route's entry in the OpenAPI document (once:
    the routers are the modules', shared by every app)."""
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        codes = _EVERY_ROUTE + (_WITH_A_BODY if (route.methods or set()) & _UNSAFE else ())
        for code, entry in problems.problem_responses(*codes).items():
            route.responses.setdefault(code, entry)


def _docs_page(spec: dict[str, Any]) -> str:
    """The endpoints in one page, from the OpenAPI document: no script, no CDN."""
    rows = []
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            params = ", ".join(
                f"{p['name']} ({p['in']})" for p in op.get("parameters", []) if "name" in p
            )
            codes = ", ".join(sorted(op.get("responses", {})))
            rows.append(
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td>"
                "<td>{}</td><td>{}</td></tr>".format(
                    html.escape(method.upper()),
                    html.escape(path),
                    html.escape(op.get("summary", "")),
                    html.escape(params),
                    html.escape(codes),
                )
            )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>agentcron API</title><link rel='icon' href='/favicon.ico'>"
        "<style>body{font-family:system-ui,sans-serif;"
        "margin:1rem}table{border-collapse:collapse}td,th{border:1px solid #999;"
        "padding:.3rem .5rem;text-align:left;vertical-align:top}</style></head><body>"
        f"<h1>agentcron API {html.escape(str(spec.get('info', {}).get('version', '')))}</h1>"
        f"<p>{html.escape(str(spec.get('info', {}).get('description', '')))}</p>"
        f"<p>The machine-readable description: <a href='{API_PREFIX}/openapi.json'>"
        f"{API_PREFIX}/openapi.json</a>.</p>"
        "<table><thead><tr><th>Method</th><th>Path</th><th>What</th><th>Parameters</th>"
        f"<th>Statuses</th></tr></thead><tbody>{''.join(rows)}</tbody></table></body></html>"
    )
