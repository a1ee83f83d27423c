"""Request dependencies shared by the HTTP API and the dashboard.

Routes never build a :class:`Service` themselves: the app factory puts one on
``app.state.service`` and every route asks for it through :func:`get_service`,
so the API and the dashboard see the same store, clock and defaults, and tests
can hand in a service of their own.
"""

from __future__ import annotations

from fastapi import Request

from agentcron.service import Service


def get_service(request: Request) -> Service:
    """The service the app was built with (``app.state.service``)."""
    service: Service = request.app.state.service
    return service
