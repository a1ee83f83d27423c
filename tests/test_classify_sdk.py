"""Real exceptions from the installed openai, anthropic and httpx2 packages.

The SDK errors are built the way the SDKs build them (around real ``httpx2``
responses with headers and JSON bodies): OpenAI hands the inner ``error`` object
over as ``body``, Anthropic the whole envelope. The last tests go further and let
the real clients fail against a local server.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import anthropic
import httpx2
import openai
import pytest

from agentcron.classify import classify, failure_from_exception
from agentcron.classify.extract import BODY_LIMIT
from agentcron.model.enums import ErrorClass

E = ErrorClass
NOW = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
OPENAI_URL = "https://api.openai.com/v1/chat/completions"
ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"


def response(
    status: int, body: dict[str, Any], url: str, headers: dict[str, str] | None = None
) -> httpx2.Response:
    return httpx2.Response(
        status, headers=headers or {}, json=body, request=httpx2.Request("POST", url)
    )


def openai_error(
    cls: type[openai.APIStatusError],
    status: int,
    error: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> openai.APIStatusError:
    raw = response(status, {"error": error}, OPENAI_URL, headers)
    return cls(f"Error code: {status} - {error.get('message')}", response=raw, body=error)


def anthropic_error(
    cls: type[anthropic.APIStatusError],
    status: int,
    error: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> anthropic.APIStatusError:
    envelope = {"type": "error", "error": error}
    raw = response(status, envelope, ANTHROPIC_URL, headers)
    return cls(f"Error code: {status} - {envelope}", response=raw, body=envelope)


OPENAI_REQUEST = httpx2.Request("POST", OPENAI_URL)
ANTHROPIC_REQUEST = httpx2.Request("POST", ANTHROPIC_URL)

CASES: list[tuple[str, BaseException, ErrorClass]] = [
    (
        "openai rate limit",
        openai_error(
            openai.RateLimitError,
            429,
            {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"},
            {"retry-after": "7"},
        ),
        E.RATE_LIMITED,
    ),
    (
        "openai insufficient quota",
        openai_error(
            openai.RateLimitError,
            429,
            {
                "message": "You exceeded your current quota, please check your plan and billing.",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
            },
        ),
        E.QUOTA_EXHAUSTED,
    ),
    (
        "openai bad key",
        openai_error(
            openai.AuthenticationError,
            401,
            {
                "message": "Incorrect API key provided",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            },
        ),
        E.AUTH,
    ),
    (
        "openai permission denied",
        openai_error(openai.PermissionDeniedError, 403, {"message": "Project lacks access"}),
        E.AUTH,
    ),
    (
        "openai server error",
        openai_error(openai.InternalServerError, 500, {"message": "The server had an error"}),
        E.SERVER_ERROR,
    ),
    (
        "openai bad gateway",
        openai_error(openai.InternalServerError, 502, {"message": "Bad gateway"}),
        E.SERVER_ERROR,
    ),
    (
        "openai context length",
        openai_error(
            openai.BadRequestError,
            400,
            {
                "message": "This model's maximum context length is 8192 tokens.",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            },
        ),
        E.BAD_REQUEST,
    ),
    (
        "openai unknown model",
        openai_error(
            openai.NotFoundError,
            404,
            {"message": "The model `gpt-9` does not exist", "code": "model_not_found"},
        ),
        E.NOT_FOUND,
    ),
    (
        "openai timeout",
        openai.APITimeoutError(request=OPENAI_REQUEST),
        E.TIMEOUT,
    ),
    (
        "openai connection",
        openai.APIConnectionError(request=OPENAI_REQUEST),
        E.NETWORK,
    ),
    (
        "anthropic overloaded 529",
        anthropic_error(
            anthropic.OverloadedError, 529, {"type": "overloaded_error", "message": "Overloaded"}
        ),
        E.OVERLOADED,
    ),
    (
        "anthropic bare status error 529",
        anthropic_error(
            anthropic.APIStatusError, 529, {"type": "overloaded_error", "message": "Overloaded"}
        ),
        E.OVERLOADED,
    ),
    (
        "anthropic rate limit",
        anthropic_error(
            anthropic.RateLimitError,
            429,
            {"type": "rate_limit_error", "message": "Number of requests has exceeded your rate"},
            {"retry-after": "12"},
        ),
        E.RATE_LIMITED,
    ),
    (
        "anthropic credit exhausted",
        anthropic_error(
            anthropic.BadRequestError,
            400,
            {
                "type": "invalid_request_error",
                "message": "Your credit balance is too low to access the Anthropic API.",
            },
        ),
        E.QUOTA_EXHAUSTED,
    ),
    (
        "anthropic bad key",
        anthropic_error(
            anthropic.AuthenticationError,
            401,
            {"type": "authentication_error", "message": "invalid x-api-key"},
        ),
        E.AUTH,
    ),
    (
        "anthropic timeout",
        anthropic.APITimeoutError(request=ANTHROPIC_REQUEST),
        E.TIMEOUT,
    ),
    (
        "anthropic connection",
        anthropic.APIConnectionError(request=ANTHROPIC_REQUEST),
        E.NETWORK,
    ),
    ("httpx2 read timeout", httpx2.ReadTimeout("timed out", request=OPENAI_REQUEST), E.TIMEOUT),
    ("httpx2 connect timeout", httpx2.ConnectTimeout("timed out"), E.TIMEOUT),
    ("httpx2 connect error", httpx2.ConnectError("[Errno 111] Connection refused"), E.NETWORK),
    ("httpx2 protocol", httpx2.RemoteProtocolError("Server disconnected"), E.NETWORK),
    (
        "httpx2 status error",
        httpx2.HTTPStatusError(
            "Server error '503 Service Unavailable'",
            request=OPENAI_REQUEST,
            response=response(503, {"detail": "down"}, OPENAI_URL, {"Retry-After": "3"}),
        ),
        E.SERVER_ERROR,
    ),
    ("builtin timeout", TimeoutError("timed out"), E.TIMEOUT),
    ("builtin refused", ConnectionRefusedError(111, "Connection refused"), E.NETWORK),
    ("builtin reset", ConnectionResetError(104, "Connection reset by peer"), E.NETWORK),
    ("dns", socket.gaierror(-3, "Temporary failure in name resolution"), E.NETWORK),
    ("value error", ValueError("bad input"), E.CODE_ERROR),
    ("key error", KeyError("story"), E.CODE_ERROR),
    ("missing module", ModuleNotFoundError("No module named 'jobs'"), E.CONFIG_ERROR),
    ("runtime error", RuntimeError("something broke"), E.CODE_ERROR),
]


@pytest.mark.parametrize(("exc", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_sdk_exception_class(exc: BaseException, expected: ErrorClass) -> None:
    failure = failure_from_exception(exc, action="llm")
    assert classify(failure, now=NOW).error_class is expected


def test_openai_rate_limit_keeps_retry_after_and_facts() -> None:
    exc = CASES[0][1]
    failure = failure_from_exception(exc, action="llm")
    assert failure.http_status == 429
    assert failure.provider_code == "rate_limit_exceeded"
    assert failure.headers["retry-after"] == "7"
    assert failure.exception_types[:2] == ("RateLimitError", "APIStatusError")
    assert failure.exception_module is not None and failure.exception_module.startswith("openai")
    assert failure.message == "RateLimitError: Error code: 429 - Rate limit reached"
    result = classify(failure, now=NOW)
    assert result.retry_after == 7.0
    # the provider's own message is the decisive line
    assert result.explanation == (
        "the model provider is rate-limiting requests (HTTP 429 rate_limit_exceeded): "
        "Rate limit reached"
    )


def test_anthropic_provider_code_is_read_from_the_envelope() -> None:
    exc = anthropic_error(
        anthropic.APIStatusError, 529, {"type": "overloaded_error", "message": "Overloaded"}
    )
    failure = failure_from_exception(exc, action="llm")
    assert failure.provider_code == "overloaded_error"
    assert failure.http_status == 529
    assert json.loads(failure.body or "")["error"]["type"] == "overloaded_error"


def test_retry_after_ms_and_http_date_from_a_real_response() -> None:
    ms = anthropic_error(
        anthropic.RateLimitError,
        429,
        {"type": "rate_limit_error", "message": "slow down"},
        {"retry-after-ms": "2500", "retry-after": "3"},
    )
    assert classify(failure_from_exception(ms), now=NOW).retry_after == 2.5
    dated = openai_error(
        openai.RateLimitError,
        429,
        {"message": "slow down", "code": "rate_limit_exceeded"},
        {"Retry-After": "Sat, 01 Mar 2025 02:01:00 GMT"},
    )
    assert classify(failure_from_exception(dated), now=NOW).retry_after == 60.0


def test_a_wrapped_sdk_error_is_classified_by_its_cause() -> None:
    quota = CASES[1][1]
    try:
        try:
            raise quota
        except openai.RateLimitError as inner:
            raise RuntimeError("story generation failed") from inner
    except RuntimeError as outer:
        failure = failure_from_exception(outer)
    assert classify(failure, now=NOW).error_class is E.QUOTA_EXHAUSTED
    assert failure.message.startswith("RuntimeError: story generation failed (caused by ")


def test_a_bug_in_an_except_block_stays_a_bug() -> None:
    try:
        try:
            raise httpx2.ConnectError("refused")
        except httpx2.ConnectError:
            empty: dict[str, int] = {}
            empty["missing"]
    except KeyError as exc:
        failure = failure_from_exception(exc)
    assert classify(failure, now=NOW).error_class is E.CODE_ERROR


def test_exception_group_uses_its_first_member() -> None:
    group = ExceptionGroup("tasks failed", [httpx2.ReadTimeout("slow"), ValueError("x")])
    assert classify(failure_from_exception(group), now=NOW).error_class is E.TIMEOUT


def test_generic_exception_keeps_the_traceback_tail() -> None:
    # Two functions calling each other: a plain recursion would be folded into
    # "[Previous line repeated N more times]" and stay short.
    def ping(n: int) -> None:
        if n == 0:
            raise ValueError("bad input")
        pong(n - 1)

    def pong(n: int) -> None:
        ping(n)

    try:
        ping(30)
    except ValueError as exc:
        failure = failure_from_exception(exc, action="python")
    lines = failure.output_tail.splitlines()
    assert len(lines) == 20
    assert lines[-1] == "ValueError: bad input"
    result = classify(failure, now=NOW)
    assert result.error_class is E.CODE_ERROR
    assert result.explanation == "the function raised ValueError: bad input"


def test_body_is_truncated_and_secrets_are_redacted() -> None:
    key = "sk-ant-api03-" + "Z9y8X7w6" * 6
    huge = {"message": f"key {key} rejected " + "x" * 10_000, "type": "authentication_error"}
    exc = anthropic_error(anthropic.AuthenticationError, 401, huge)
    failure = failure_from_exception(exc, action="llm")
    assert failure.body is not None and len(failure.body) <= BODY_LIMIT
    for text in (failure.body, failure.message, failure.output_tail):
        assert key not in text
    result = classify(failure, now=NOW)
    assert key not in result.explanation
    assert result.error_class is E.AUTH


def test_raising_properties_do_not_break_extraction() -> None:
    class Weird(Exception):
        @property
        def response(self) -> object:
            raise RuntimeError("not read")

        def __str__(self) -> str:
            raise RuntimeError("no str")

    failure = failure_from_exception(Weird())
    assert failure.message == "Weird"
    assert classify(failure, now=NOW).error_class is E.CODE_ERROR


def test_missing_openai_key_names_the_variable() -> None:
    try:
        openai.OpenAI(api_key=None, base_url="http://127.0.0.1:9/v1")
    except openai.OpenAIError as exc:
        failure = failure_from_exception(exc, action="llm")
    else:  # pragma: no cover - depends on the caller's environment
        pytest.skip("OPENAI_API_KEY is set in this environment")
    result = classify(failure, now=NOW)
    assert result.error_class is E.AUTH
    assert result.fix is not None and "OPENAI_API_KEY" in result.fix


# --- the real clients against a local server --------------------------------------------


class _Scripted(BaseHTTPRequestHandler):
    status: ClassVar[int] = 200
    headers_out: ClassVar[dict[str, str]] = {}
    body_out: ClassVar[dict[str, Any]] = {}

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        payload = json.dumps(self.body_out).encode()
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        for name, value in self.headers_out.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def _script(
    srv: ThreadingHTTPServer, status: int, body: dict[str, Any], headers: dict[str, str]
) -> None:
    handler = type(
        "Handler", (_Scripted,), {"status": status, "body_out": body, "headers_out": headers}
    )
    srv.RequestHandlerClass = handler


@pytest.mark.slow
@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "retry_after"),
    [
        (
            429,
            {
                "error": {
                    "message": "Rate limit reached",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            },
            {"retry-after": "7"},
            E.RATE_LIMITED,
            7.0,
        ),
        (
            429,
            {
                "error": {
                    "message": "You exceeded your current quota",
                    "type": "insufficient_quota",
                    "code": "insufficient_quota",
                }
            },
            {},
            E.QUOTA_EXHAUSTED,
            None,
        ),
        (
            401,
            {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}},
            {},
            E.AUTH,
            None,
        ),
        (500, {"error": {"message": "boom", "type": "server_error"}}, {}, E.SERVER_ERROR, None),
    ],
)
def test_real_openai_client(
    server: ThreadingHTTPServer,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str],
    expected: ErrorClass,
    retry_after: float | None,
) -> None:
    _script(server, status, body, headers)
    host, port = server.server_address[:2]
    client = openai.OpenAI(
        api_key="sk-test-" + "k" * 24,
        base_url=f"http://{host!s}:{port}/v1",
        max_retries=0,
        timeout=10,
    )
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    client.close()
    result = classify(failure_from_exception(caught.value, action="llm"), now=NOW)
    assert result.error_class is expected
    assert result.retry_after == retry_after


@pytest.mark.slow
def test_real_anthropic_client_overloaded(server: ThreadingHTTPServer) -> None:
    _script(
        server,
        529,
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        {"retry-after": "4"},
    )
    host, port = server.server_address[:2]
    client = anthropic.Anthropic(
        api_key="sk-ant-test-" + "k" * 24,
        base_url=f"http://{host!s}:{port}",
        max_retries=0,
        timeout=10,
    )
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    client.close()
    result = classify(failure_from_exception(caught.value, action="llm"), now=NOW)
    assert result.error_class is E.OVERLOADED
    assert result.retry_after == 4.0


@pytest.mark.slow
def test_real_openai_client_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now; the connection is refused.
    client = openai.OpenAI(
        api_key="sk-test-" + "k" * 24,
        base_url=f"http://127.0.0.1:{port}/v1",
        max_retries=0,
        timeout=10,
    )
    with pytest.raises(openai.APIConnectionError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    client.close()
    failure = failure_from_exception(caught.value, action="llm")
    assert classify(failure, now=NOW).error_class is E.NETWORK
