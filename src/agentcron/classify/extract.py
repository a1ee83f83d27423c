"""Reduce an exception to a :class:`FailureInfo` the classifier can read.

This runs inside python-action worker processes and the llm action, where the
exception may come from openai, anthropic, httpx2, requests or the user's own
code. It recognises them by what they carry (class names, ``status_code``, a
``response`` with headers and text, a ``body``) rather than by importing their
packages: importing an SDK here would make every worker pay for it and would break
when a different version, or none, is installed.
"""

from __future__ import annotations

import dataclasses
import json
import traceback
from collections.abc import Iterator, Mapping

from agentcron.classify.rules import output_match, type_class
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import FailureInfo
from agentcron.redact import redact

BODY_LIMIT = 4096
MESSAGE_LIMIT = 1000
TRACEBACK_LINES = 20
# Characters a line of a traceback keeps: the last one repeats the exception's text,
# which can be megabytes (a probe raised ValueError("z" * 20 MB)).
TRACEBACK_LINE_LIMIT = 2000
_CHAIN_LIMIT = 8


def failure_from_exception(exc: BaseException, *, action: str = "python") -> FailureInfo:
    """The facts of ``exc`` as plain data, secrets redacted by pattern.

    When the exception is one we know nothing about (a ``RuntimeError("story
    failed")``) but it wraps one we do (``raise ... from openai_error``), the facts
    of the wrapped one are used: the cause says more about whether to retry than the
    wrapper does. The message keeps both.
    """
    exc = sole_cause(exc)
    telling = _most_telling(exc)
    response = _attr(telling, "response")
    body_obj = _attr(telling, "body")
    message = _message(exc)
    if telling is not exc:
        message = f"{message} (caused by {_message(telling)})"
    return FailureInfo(
        message=redact(cut(message, MESSAGE_LIMIT)),
        exception_types=tuple(t.__name__ for t in type(telling).__mro__ if t is not object),
        exception_module=type(telling).__module__,
        http_status=_status(telling, response),
        headers=_headers(telling, response),
        body=_body_text(body_obj, response),
        provider_code=_provider_code(telling, body_obj),
        output_tail=redact(_tail(exc)),
        action=action,
    )


def import_failure(exc: BaseException, module: str, *, action: str = "python") -> FailureInfo:
    """A python target's module that failed to import: the function never ran, so the
    words say what failed ("importing jobs failed: SyntaxError: …"). An error of the
    code is ``code_error`` by the runner's word, lest it be told as "the function
    raised"; one whose type or words name another class (a missing package, a
    refused connection) keeps being classified by them."""
    info = failure_from_exception(exc, action=action)
    named = type_class(info.exception_types)
    if named is None and output_match(info.message) is None:
        named = ErrorClass.CODE_ERROR
    return dataclasses.replace(
        info,
        message=f"importing {module} failed: {info.message}",
        known_class=ErrorClass.CODE_ERROR if named is ErrorClass.CODE_ERROR else None,
    )


def target_failure(message: str, *, action: str = "python") -> FailureInfo:
    """A python target that names no function of its module (``jobs:nosuch``): a typo
    in the task's target, a ``config_error`` as a module that does not exist is."""
    return FailureInfo(
        message=redact(cut(message, MESSAGE_LIMIT)),
        known_class=ErrorClass.CONFIG_ERROR,
        action=action,
    )


def sole_cause(exc: BaseException) -> BaseException:
    """The one exception an exception group (nested or not) holds, else ``exc``.

    anyio and asyncio task groups wrap a single failure in an ``ExceptionGroup``
    ("unhandled errors in a TaskGroup (1 sub-exception)"): its words and type say
    nothing; the exception inside says what happened.
    """
    seen = 0
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1 and seen < _CHAIN_LIMIT:
        exc = exc.exceptions[0]
        seen += 1
    return exc


def _attr(obj: object, name: str) -> object:
    """getattr that survives properties which raise (unread streamed responses)."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and the first member of any group."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending and len(seen) < _CHAIN_LIMIT:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup) and current.exceptions:
            pending.append(current.exceptions[0])
        nxt = current.__cause__
        if nxt is None and not current.__suppress_context__:
            nxt = current.__context__
        if nxt is not None:
            pending.append(nxt)


def _most_telling(exc: BaseException) -> BaseException:
    for candidate in _chain(exc):
        names = [t.__name__ for t in type(candidate).__mro__]
        if _status(candidate, _attr(candidate, "response")) is not None:
            return candidate
        if type_class(names) is not None:
            return candidate
    return exc


def _message(exc: BaseException) -> str:
    name = type(exc).__name__
    try:
        text = str(exc)
    except Exception:
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{name}: {lines[-1]}" if lines else name


def _as_status(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def _status(exc: BaseException, response: object) -> int | None:
    # openai/anthropic: status_code; urllib HTTPError, aiohttp: status/code;
    # httpx2.HTTPStatusError, requests: response.status_code.
    for value in (
        _attr(exc, "status_code"),
        _attr(exc, "status"),
        _attr(response, "status_code"),
        _attr(response, "status"),
    ):
        status = _as_status(value)
        if status is not None:
            return status
    return None


def _headers(exc: BaseException, response: object) -> dict[str, str]:
    for source in (_attr(response, "headers"), _attr(exc, "headers")):
        items = _attr(source, "items")
        if not callable(items):
            continue
        try:
            return {str(k).lower(): str(v) for k, v in items()}
        except Exception:
            continue
    return {}


def _body_text(body: object, response: object) -> str | None:
    text: str | None = None
    if isinstance(body, Mapping | list):
        try:
            text = json.dumps(body, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            text = str(body)
    elif isinstance(body, bytes):
        text = body.decode("utf-8", errors="replace")
    elif isinstance(body, str):
        text = body
    if text is None and response is not None:
        candidate = _attr(response, "text")
        if isinstance(candidate, str):
            text = candidate
    if not text:
        return None
    return redact(text[:BODY_LIMIT])


def _provider_code(exc: BaseException, body: object) -> str | None:
    """The provider's machine-readable error code.

    OpenAI puts it in ``error.code`` (the SDK hands over that inner object as
    ``body``); Anthropic in ``error.type`` and, newer, ``error.details.error_code``.
    A code beats a type: OpenAI's rate limits have type "requests" but code
    "rate_limit_exceeded".
    """
    if isinstance(body, str | bytes):
        try:
            body = json.loads(body)
        except ValueError:
            body = None
    if isinstance(body, Mapping):
        inner = body.get("error")
        for obj in (inner, body):
            if not isinstance(obj, Mapping):
                continue
            details = obj.get("details")
            candidates = (
                obj.get("code"),
                details.get("error_code") if isinstance(details, Mapping) else None,
                obj.get("type"),
            )
            for value in candidates:
                if isinstance(value, str | int) and not isinstance(value, bool):
                    code = str(value)
                    if code and code != "error":  # Anthropic's envelope says type "error"
                        return code
    for name in ("code", "type", "error_code"):
        value = _attr(exc, name)
        if isinstance(value, str) and value and value != "error":
            return value
    return None


def cut(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters (and a note), saying that it was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [cut: {len(text) - limit} more characters]"


def _tail(exc: BaseException) -> str:
    if exc.__traceback__ is not None:
        lines = "".join(traceback.format_exception(exc)).splitlines()
    else:
        try:
            lines = str(exc).splitlines()
        except Exception:
            lines = []
        if len(lines) <= 1:
            return ""
    return "\n".join(cut(line, TRACEBACK_LINE_LIMIT) for line in lines[-TRACEBACK_LINES:])
