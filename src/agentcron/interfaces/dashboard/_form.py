"""The dashboard's forms are read strictly, before their fields are.

FastAPI fills a ``Form()`` field with its default when the body is not a form at all
(JSON, plain text) and Starlette turns bytes that are not UTF-8 into replacement
characters or Latin-1: a pause posted that way took effect with its reason lost or
garbled, and nobody was told. Every action route is a :class:`FormRoute`: a body that
is not ``application/x-www-form-urlencoded`` (what the dashboard's forms and htmx
send), holds bytes a browser would have percent-encoded, or decodes to text that is
not UTF-8 is refused with a sentence that says which, and nothing is changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from fastapi import Request, Response
from fastapi.routing import APIRoute

FORM_TYPE = "application/x-www-form-urlencoded"

Refuse = Callable[[Request, str, int], Awaitable[Response]]


class BadForm(ValueError):
    """A body that is not a form the dashboard reads; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def check_form(content_type: str, body: bytes) -> None:
    """Raise :class:`BadForm` unless ``body`` is empty or a well-formed URL-encoded
    form of UTF-8 text."""
    if not body:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media != FORM_TYPE:
        said = media or "no Content-Type"
        raise BadForm(
            f"the request's body is {said!r}, not a form ({FORM_TYPE}); "
            "scripts change tasks through the API (/api/v1)",
            415,
        )
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise BadForm(
            f"the form holds a byte that is not percent-encoded (at byte {exc.start})", 400
        ) from exc
    for pair in text.split("&"):  # one field at a time, to name the one that is not
        try:
            parse_qsl(pair, keep_blank_values=True, encoding="utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            name = unquote_plus(pair.partition("=")[0], errors="replace")[:40]
            raise BadForm(f"the form's field {name!r} is not UTF-8 text", 400) from exc


def form_route(refuse: Refuse) -> type[APIRoute]:
    """A route class whose handler checks the body with :func:`check_form` first and
    answers a bad one with ``refuse(request, message, status)``."""

    class FormRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def checked(request: Request) -> Response:
                # read and kept by the request: the form's parse reads it again
                body = await request.body()
                try:
                    check_form(request.headers.get("content-type", ""), body)
                except BadForm as exc:
                    return await refuse(request, str(exc), exc.status)
                return await handler(request)

            return checked

    return FormRoute
