"""The ``llm`` action: one call to an OpenAI-compatible chat-completions endpoint.

Raw JSON over the project's HTTP seam rather than a provider SDK: every provider
that speaks ``POST {base_url}/chat/completions`` works, and the core does not
depend on any SDK's retry loop (retries are the engine's policy, not the client's).

Messages are laid out so that context reads as an earlier turn of the conversation::

    system     spec.llm.system                          (only when set)
    user       "Context for this run:\\n\\n<context>"    (only when ctx.context_text)
    assistant  "Noted. I will take this context into account."
    user       spec.llm.prompt

The context is yesterday's output for ``context: previous`` or the precheck's
findings. Giving it its own user turn, acknowledged by an assistant turn, keeps it
apart from the instruction and keeps roles alternating user/assistant, which the
chat templates of several open-weight models served behind OpenAI-compatible APIs
require (two user messages in a row are rejected there).

An answer cut off (``finish_reason`` ``length``: max_tokens; ``content_filter``) is
still a success when it has text, and its output ends with a note saying so
("[cut off: the answer reached max_tokens (900) before it was finished; …]"); with no
text at all it fails as a permanent ``bad_request`` that says why.

The answer is read up to :data:`MAX_ANSWER_BYTES` (16 MiB); a larger one fails the
attempt as a permanent ``bad_request`` ("the answer from URL was larger than 16 MiB:
stopped reading") instead of filling the daemon's memory.

Failures are returned as data. The API key is read from the environment at run
time only, sent only in the ``Authorization`` header, and scrubbed (together with
anything :func:`agentcron.redact.redact` recognises) from every failure text.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx2

from agentcron.actions.base import ActionContext, ActionResult
from agentcron.actions.output import write_output
from agentcron.durations import format_duration
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import FailureInfo
from agentcron.model.task import LlmSpec
from agentcron.redact import redact

ACTION = "llm"
BODY_LIMIT = 4096  # characters of a provider's response body kept in a failure
# The most of a provider's answer that is read (bytes, after decompression); a
# completion is far smaller. Past it the attempt fails as bad_request: the same
# endpoint would send the same flood next time.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
_MAX_PORT = 65535
CONTEXT_HEADER = "Context for this run:"
CONTEXT_ACK = "Noted. I will take this context into account."


class LlmAction:
    """Runs the ``llm`` section of a task; see the module docstring for the layout."""

    async def run(self, ctx: ActionContext) -> ActionResult:
        spec = ctx.spec.llm
        if spec is None:
            return _fail(
                FailureInfo(
                    message="task has no llm section",
                    known_class=ErrorClass.CONFIG_ERROR,
                    action=ACTION,
                )
            )
        key: str | None = None
        if spec.api_key_env:
            env = {**os.environ, **ctx.spec.env}
            key = env.get(spec.api_key_env) or None
            if key is None:
                return _fail(
                    FailureInfo(
                        message=f"environment variable {spec.api_key_env} is not set",
                        known_class=ErrorClass.CONFIG_ERROR,
                        action=ACTION,
                    )
                )
        problem = url_problem(spec.base_url)
        if problem is not None:
            return _fail(
                _scrub(
                    FailureInfo(
                        message=problem, known_class=ErrorClass.CONFIG_ERROR, action=ACTION
                    ),
                    key,
                )
            )
        limit = min(spec.timeout, ctx.timeout) if spec.timeout else ctx.timeout
        try:
            async with asyncio.timeout(limit.total_seconds()):
                status, headers, text = await _post(spec, build_request(spec, ctx), key, limit)
        except TimeoutError as exc:
            return _fail(_timeout_failure(exc, spec, limit, key))
        except AnswerTooLarge as exc:
            return _fail(_scrub(_too_large(str(exc)), key))
        except (httpx2.HTTPError, httpx2.InvalidURL, OSError) as exc:
            # Refused or dropped connections, truncated bodies, TLS and DNS errors.
            return _fail(_scrub(_network_failure(exc, spec), key))
        except ExceptionGroup as group:
            # The connection layer runs attempts in a task group, whose error wraps the
            # real one ("unhandled errors in a TaskGroup"): judge by the real one.
            return _fail(_scrub(_group_failure(group, spec), key))
        if 300 <= status < 400:
            return _fail(_scrub(_redirect_failure(spec, status, headers, text), key))
        if not 200 <= status < 300:
            return _fail(_scrub(http_failure(status, headers, text), key))
        return await _completion_result(ctx, endpoint(spec), status, headers, text, key)


def build_request(spec: LlmSpec, ctx: ActionContext) -> dict[str, Any]:
    """The JSON body sent to ``/chat/completions``; unset options are left out.

    Omitting rather than sending ``null`` matters: some providers reject
    ``"max_tokens": null``.
    """
    messages: list[dict[str, str]] = []
    if spec.system:
        messages.append({"role": "system", "content": spec.system})
    if ctx.context_text:
        messages.append({"role": "user", "content": f"{CONTEXT_HEADER}\n\n{ctx.context_text}"})
        messages.append({"role": "assistant", "content": CONTEXT_ACK})
    messages.append({"role": "user", "content": spec.prompt})
    body: dict[str, Any] = {"model": spec.model, "messages": messages}
    if spec.max_tokens is not None:
        body["max_tokens"] = spec.max_tokens
    if spec.temperature is not None:
        body["temperature"] = spec.temperature
    return body


class AnswerTooLarge(Exception):
    """The provider's answer passed :data:`MAX_ANSWER_BYTES`; reading stopped there."""


async def _post(
    spec: LlmSpec, body: dict[str, Any], key: str | None, limit: timedelta
) -> tuple[int, dict[str, str], str]:
    """POST the request and read the response; returns status, headers, text.

    The body is read as it comes and at most :data:`MAX_ANSWER_BYTES` of it (after
    decompression) is kept: past that, :class:`AnswerTooLarge` is raised and the
    connection closed. A gateway streaming without end otherwise grew the daemon's
    memory until the timeout (an hour by default) or until it took the daemon down.
    """
    from agentcron.http_client import make_async_client

    headers = {"Accept": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    url = endpoint(spec)
    async with (
        make_async_client(limit.total_seconds()) as client,
        client.stream("POST", url, json=body, headers=headers) as response,
    ):
        cap = MAX_ANSWER_BYTES
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise AnswerTooLarge(url)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise AnswerTooLarge(url)
            chunks.append(chunk)
        return (
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()},
            b"".join(chunks).decode(response.encoding or "utf-8", errors="replace"),
        )


def url_problem(base_url: str) -> str | None:
    """Why no request can be sent to ``base_url``, or None.

    Checked before connecting: a port out of range (``:99999``) otherwise failed
    deep in the connection code as an error of agentcron's own.
    """
    try:
        url = httpx2.URL(base_url)
    except httpx2.InvalidURL as exc:
        return f"base_url {base_url} is not a valid URL ({exc})"
    if url.scheme not in ("http", "https"):
        return f"base_url {base_url} must start with http:// or https://"
    if not url.host:
        return f"base_url {base_url} names no host"
    if url.port is not None and not 0 < url.port <= _MAX_PORT:
        return f"base_url {base_url} has port {url.port}, outside 1-{_MAX_PORT}"
    return None


def endpoint(spec: LlmSpec) -> str:
    """The URL the request goes to: ``{base_url}/chat/completions``."""
    return spec.base_url.rstrip("/") + "/chat/completions"


def http_failure(status: int, headers: dict[str, str], text: str) -> FailureInfo:
    """A non-2xx answer as a failure, with the provider's own error code and message."""
    message, code = provider_error(text)
    return FailureInfo(
        message=f"HTTP {status}: {message or _reason(status)}",
        http_status=status,
        headers=headers,
        body=text[:BODY_LIMIT],
        provider_code=code,
        action=ACTION,
    )


def provider_error(text: str) -> tuple[str | None, str | None]:
    """The (message, code) of a provider's error body, whatever its dialect.

    Understood shapes: OpenAI ``{"error": {"message", "type", "code"}}``, Anthropic
    ``{"type": "error", "error": {"type", "message"}}``, ``{"error": "text"}`` and
    FastAPI-style ``{"detail": ...}`` (DeepInfra and many self-hosted servers). The
    code is ``error.code`` when present, else ``error.type``.
    """
    try:
        data = json.loads(text)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    error = data.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        code = error.get("code") if error.get("code") not in (None, "") else error.get("type")
        return (
            str(message) if message not in (None, "") else None,
            str(code) if code not in (None, "") else None,
        )
    if isinstance(error, str) and error:
        return error, None
    detail = data.get("detail")
    if isinstance(detail, str) and detail:
        return detail, None
    if isinstance(detail, dict | list) and detail:
        return json.dumps(detail, ensure_ascii=False)[:500], None
    message = data.get("message")
    if isinstance(message, str) and message:
        return message, None
    return None, None


def parse_completion(data: Any) -> tuple[str, dict[str, int]] | None:
    """The text and token counts of a completion body, or None when it is not one.

    A ``null`` content (a refusal, a tool call) counts as empty text. The counts are
    :func:`usage_tokens`'s: reported zero completion tokens read as an empty run to the
    watchdog; a provider that reports no usage at all gives no counts (``{}``), so its
    runs are judged by their text alone.
    """
    if not isinstance(data, dict):
        return None
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        return None
    return content or "", usage_tokens(data.get("usage"))


def usage_tokens(usage: Any) -> dict[str, int]:
    """The token counts a completion's ``usage`` reports, under the names it uses.

    Prompt tokens are ``prompt_tokens`` (OpenAI) or ``input_tokens`` (Anthropic-style
    gateways); completion tokens ``completion_tokens`` or ``output_tokens``. When one
    of the two is missing and ``total_tokens`` is given, the missing one is the rest
    of the total; when only ``total_tokens`` is given, it is kept as ``{"total": N}``:
    the split is unknown. A count the provider did not report is left out, never
    read as 0: zero completion tokens mean an empty answer to the watchdog, and a
    usage without counts (or none at all) gives ``{}``, so the run is judged by its
    text.
    """
    if not isinstance(usage, dict):
        return {}
    prompt = _count(usage.get("prompt_tokens"), usage.get("input_tokens"))
    completion = _count(usage.get("completion_tokens"), usage.get("output_tokens"))
    total = _count(usage.get("total_tokens"))
    if total is not None:
        if prompt is not None and completion is None and total >= prompt:
            completion = total - prompt
        elif completion is not None and prompt is None and total >= completion:
            prompt = total - completion
    tokens: dict[str, int] = {}
    if prompt is not None:
        tokens["prompt"] = prompt
    if completion is not None:
        tokens["completion"] = completion
    if not tokens and total is not None:
        tokens["total"] = total
    return tokens


async def _completion_result(
    ctx: ActionContext,
    url: str,
    status: int,
    headers: dict[str, str],
    text: str,
    key: str | None,
) -> ActionResult:
    """Turn a 2xx answer into the run's output, or into a failure when it is not a completion.

    An answer that is not a chat completion at all (plain text such as a webhook's
    ``ok``, an HTML page, JSON without ``choices`` such as an Anthropic Messages body)
    comes the same way every time: the base_url or the API style is wrong, so it is a
    permanent ``config_error``. JSON cut short, an empty body, or a completion with a
    malformed ``choices`` may be a glitch of the moment and stays a transient
    ``server_error``.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        if _looks_like_json(text):
            failure = replace(
                _from_exception(exc),
                message=f"HTTP {status} but the response is not valid JSON: {exc}",
                known_class=ErrorClass.SERVER_ERROR,
            )
        else:
            failure = _not_a_completion(url)
        return _fail(_scrub(_with_response(failure, status, headers, text), key))
    parsed = parse_completion(data)
    if parsed is None:
        message, code = provider_error(text)
        if message is not None or code is not None:
            # Some gateways report an upstream error inside a 200; its code decides.
            failure = FailureInfo(
                message=f"HTTP {status} carrying an error: {message or code}",
                provider_code=code,
                action=ACTION,
            )
        elif isinstance(data, dict) and "choices" in data:
            failure = FailureInfo(
                message=f"HTTP {status} but the response is not a chat completion "
                "(no choices[0].message.content)",
                known_class=ErrorClass.SERVER_ERROR,
                action=ACTION,
            )
        else:
            failure = _not_a_completion(url)
        return _fail(_scrub(_with_response(failure, status, headers, text), key))
    output, tokens = parsed
    stopped = finish_reason(data)
    limit = ctx.spec.llm.max_tokens if ctx.spec.llm is not None else None
    if stopped in ("content_filter", "length") and not output.strip():
        from agentcron.classify.explain import CONTENT_FILTERED, NO_TEXT_WITHIN_MAX_TOKENS

        said = (
            CONTENT_FILTERED
            if stopped == "content_filter"
            else f"it reached {_max_tokens(limit)} {NO_TEXT_WITHIN_MAX_TOKENS}"
        )
        failure = FailureInfo(
            message=f"{said} (finish_reason {stopped})",
            known_class=ErrorClass.BAD_REQUEST,
            action=ACTION,
        )
        failure = _scrub(_with_response(failure, status, headers, text), key)
        return ActionResult(ok=False, failure=failure, tokens=tokens)
    if stopped == "length":
        output += (
            f"\n\n[cut off: the answer reached {_max_tokens(limit)} before it was finished; "
            "raise llm.max_tokens for the whole answer]"
        )
    elif stopped == "content_filter":
        output += "\n\n[cut off: the provider's content filter stopped the answer here]"
    await asyncio.to_thread(_write_output, ctx, output)
    return ActionResult(ok=True, output=output, tokens=tokens)


def finish_reason(data: Any) -> str | None:
    """Why the model stopped (``stop``, ``length``, ``content_filter``, …), if said."""
    try:
        reason = data["choices"][0].get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None  # not said (many providers leave it out): nothing is wrong
    return reason if isinstance(reason, str) else None


def _max_tokens(limit: int | None) -> str:
    return f"max_tokens ({limit})" if limit is not None else "the provider's max_tokens"


def _too_large(url: str) -> FailureInfo:
    from agentcron.classify.explain import ANSWER_TOO_LARGE

    size = format_size(MAX_ANSWER_BYTES)
    return FailureInfo(
        message=f"the answer from {url} {ANSWER_TOO_LARGE} {size}: stopped reading",
        known_class=ErrorClass.BAD_REQUEST,
        action=ACTION,
    )


def format_size(count: int) -> str:
    """``16 MiB``, ``256 KiB``, ``10 bytes``."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size and count % size == 0:
            return f"{count // size} {unit}"
    return f"{count} bytes"


def _looks_like_json(text: str) -> bool:
    """Whether a body that did not parse was meant as JSON (cut short), or is empty."""
    stripped = text.lstrip()
    return not stripped or stripped.startswith(("{", "["))


def _not_a_completion(url: str) -> FailureInfo:
    from agentcron.classify.explain import NOT_A_COMPLETION

    return FailureInfo(
        message=f"the endpoint at {url} answered, but {NOT_A_COMPLETION}",
        known_class=ErrorClass.CONFIG_ERROR,
        action=ACTION,
    )


def _with_response(
    failure: FailureInfo, status: int, headers: dict[str, str], text: str
) -> FailureInfo:
    return replace(failure, http_status=status, headers=headers, body=text[:BODY_LIMIT])


def _write_output(ctx: ActionContext, output: str) -> None:
    write_output(ctx.output_file, output)  # private (0600); the runner redacts it


def _timeout_failure(
    exc: TimeoutError, spec: LlmSpec, limit: timedelta, key: str | None
) -> FailureInfo:
    failure = replace(
        _from_exception(exc),
        message=f"no complete answer from {spec.base_url} within {format_duration(limit)}",
        known_class=ErrorClass.TIMEOUT,
    )
    return _scrub(failure, key)


def _group_failure(group: BaseExceptionGroup[Any], spec: LlmSpec) -> FailureInfo:
    """The failure an exception group stands for: a network error inside it is one,
    anything else that stopped the request from being sent is blamed on base_url."""
    from agentcron.classify.extract import sole_cause

    cause = sole_cause(group)
    if isinstance(cause, httpx2.HTTPError | httpx2.InvalidURL | OSError):
        return _network_failure(cause, spec)
    return replace(
        _from_exception(cause),
        message=f"no request could be sent to base_url {spec.base_url}: "
        f"{type(cause).__name__}: {cause}",
        known_class=ErrorClass.CONFIG_ERROR,
    )


# What the client was doing when a transport error of each type struck.
_PHASES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("ConnectError", "ConnectTimeout"), "could not connect to {where}"),
    (
        ("WriteError", "WriteTimeout"),
        "cut off while sending the request to {where}",
    ),
    (
        ("ReadError", "ReadTimeout", "RemoteProtocolError"),
        "cut off while reading the answer from {where}",
    ),
)


def _network_failure(exc: BaseException, spec: LlmSpec) -> FailureInfo:
    """A transport error, named with the host and port it happened with: "ConnectError:
    All connection attempts failed" or a bare "ReadError" said nothing of where."""
    failure = _from_exception(exc)
    names = set(failure.exception_types)
    what = "while talking to {where}"
    for types, phase in _PHASES:
        if names.intersection(types):
            what = phase
            break
    return replace(failure, message=f"{what.format(where=host_port(spec))} ({failure.message})")


def host_port(spec: LlmSpec) -> str:
    """``api.example.com:443``: the host and the port (the scheme's default when unsaid)."""
    try:
        url = httpx2.URL(spec.base_url)
    except httpx2.InvalidURL:
        return spec.base_url
    port = url.port or (443 if url.scheme == "https" else 80)
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{port}"


def _redirect_failure(
    spec: LlmSpec, status: int, headers: dict[str, str], text: str
) -> FailureInfo:
    """A 3xx: the provider moved (often http:// to https://). Redirects are not followed
    (the request and its key would go wherever it points); the fix is the new base_url."""
    from agentcron.classify.explain import REDIRECT

    url = endpoint(spec)
    location = headers.get("location", "").strip()
    if location:
        target = str(httpx2.URL(url).join(location))
        base = target.removesuffix("/chat/completions")
        advice = f"set base_url to {base}" if base != target else "set base_url to it"
        said = f"answered HTTP {status}, {REDIRECT} {target}: {advice}"
    else:
        said = f"answered HTTP {status}, a redirect without a Location: check base_url"
    return FailureInfo(
        message=f"{url} {said}",
        known_class=ErrorClass.CONFIG_ERROR,
        http_status=status,
        headers=headers,
        body=text[:BODY_LIMIT],
        action=ACTION,
    )


def _from_exception(exc: BaseException) -> FailureInfo:
    from agentcron.classify.extract import failure_from_exception

    return failure_from_exception(exc, action=ACTION)


def _scrub(failure: FailureInfo, key: str | None) -> FailureInfo:
    """Remove the API key (verbatim) and any recognisable secret from every text field."""
    secrets = (key,) if key else ()

    def clean(text: str) -> str:
        return redact(text, secrets=secrets)

    return replace(
        failure,
        message=clean(failure.message),
        body=clean(failure.body) if failure.body is not None else None,
        output_tail=clean(failure.output_tail),
        headers={k: clean(v) for k, v in failure.headers.items()},
    )


def _fail(failure: FailureInfo) -> ActionResult:
    return ActionResult(ok=False, failure=failure)


def _count(*values: Any) -> int | None:
    """The first of ``values`` that is a count (a non-negative int), else None."""
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unexpected status"
