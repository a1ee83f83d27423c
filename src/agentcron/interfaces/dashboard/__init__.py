"""The web dashboard: server-rendered pages (Jinja) kept live by htmx.

``build_router()`` returns the FastAPI router an app includes at ``/``; it serves
the pages, the fragments they poll, the three form actions and ``/static/…``. It
reads the service from ``request.app.state.service`` and calls only its methods.
Reading works without JavaScript; htmx (vendored, no CDN) only makes it live.
"""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["build_router"]


def build_router() -> APIRouter:
    """A fresh router with every dashboard route (pages, fragments, actions, static)."""
    from agentcron.interfaces.dashboard import _actions, _pages, _static

    router = APIRouter(include_in_schema=False)
    router.include_router(_pages.router)
    router.include_router(_actions.router)
    router.include_router(_static.router)
    return router
