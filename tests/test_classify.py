"""Classification of failures described as plain data: statuses, exit codes, output."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from agentcron.classify import classify, explain
from agentcron.model.enums import PERMANENT_CLASSES, ErrorClass
from agentcron.model.failure import FailureInfo
from agentcron.model.task import ClassifyRule

E = ErrorClass
NOW = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)

PY_TRACEBACK = """Traceback (most recent call last):
  File "/srv/story.py", line 12, in <module>
    main(timeout=30)
  File "/srv/story.py", line 9, in main
    raise ValueError("bad input")
ValueError: bad input"""

REQUESTS_TIMEOUT_TRACEBACK = """Traceback (most recent call last):
  File "/srv/fetch.py", line 4, in <module>
    requests.get(url, timeout=5)
requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='api.example.com', port=443)"""


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        # HTTP statuses (http and llm actions)
        (FailureInfo(http_status=429, action="http"), E.RATE_LIMITED),
        (
            FailureInfo(http_status=429, provider_code="insufficient_quota", action="llm"),
            E.QUOTA_EXHAUSTED,
        ),
        (
            FailureInfo(
                http_status=429,
                body='{"error": {"message": "You exceeded your current quota"}}',
                action="llm",
            ),
            E.QUOTA_EXHAUSTED,
        ),
        (
            FailureInfo(
                http_status=400,
                body='{"type":"error","error":{"type":"invalid_request_error",'
                '"message":"Your credit balance is too low to access the Anthropic API."}}',
                action="llm",
            ),
            E.QUOTA_EXHAUSTED,
        ),
        (FailureInfo(http_status=402, action="http"), E.QUOTA_EXHAUSTED),
        (FailureInfo(http_status=529, action="llm"), E.OVERLOADED),
        (FailureInfo(http_status=500, provider_code="overloaded_error"), E.OVERLOADED),
        (FailureInfo(http_status=503, body="upstream overloaded", action="http"), E.OVERLOADED),
        (FailureInfo(http_status=503, body="maintenance", action="http"), E.SERVER_ERROR),
        (FailureInfo(http_status=500, action="http"), E.SERVER_ERROR),
        (FailureInfo(http_status=502, action="http"), E.SERVER_ERROR),
        (FailureInfo(http_status=504, action="http"), E.SERVER_ERROR),
        (FailureInfo(http_status=599, action="http"), E.SERVER_ERROR),
        (FailureInfo(http_status=408, action="http"), E.TIMEOUT),
        (FailureInfo(http_status=401, action="http"), E.AUTH),
        (FailureInfo(http_status=403, action="http"), E.AUTH),
        (FailureInfo(http_status=400, action="http"), E.BAD_REQUEST),
        (FailureInfo(http_status=422, action="http"), E.BAD_REQUEST),
        (FailureInfo(http_status=418, action="http"), E.BAD_REQUEST),
        (FailureInfo(http_status=404, action="http"), E.NOT_FOUND),
        (FailureInfo(http_status=302, action="http"), E.BAD_REQUEST),
        # a provider error code without an error status (a gateway's error inside a 200)
        (
            FailureInfo(
                http_status=200,
                provider_code="server_error",
                message="HTTP 200 carrying an error: upstream failed",
                action="llm",
            ),
            E.SERVER_ERROR,
        ),
        (
            FailureInfo(http_status=200, provider_code="rate_limit_exceeded", action="llm"),
            E.RATE_LIMITED,
        ),
        (FailureInfo(provider_code="insufficient_quota", action="llm"), E.QUOTA_EXHAUSTED),
        (FailureInfo(provider_code="something_new", action="llm"), E.CODE_ERROR),
        # the runner's own knowledge wins over everything but user rules
        (FailureInfo(known_class=E.TIMEOUT, exit_code=-15), E.TIMEOUT),
        (FailureInfo(known_class=E.WORKER_LOST), E.WORKER_LOST),
        (FailureInfo(known_class=E.CONFIG_ERROR, http_status=429), E.CONFIG_ERROR),
        # exit codes
        (FailureInfo(exit_code=75, output_tail="upstream: 429 Too Many Requests"), E.RATE_LIMITED),
        (FailureInfo(exit_code=75, output_tail="ECONNRESET while fetching"), E.NETWORK),
        (FailureInfo(exit_code=75, output_tail="try again later"), E.SERVER_ERROR),
        (FailureInfo(exit_code=75, output_tail=PY_TRACEBACK), E.SERVER_ERROR),
        (FailureInfo(exit_code=75, output_tail="401 Unauthorized"), E.SERVER_ERROR),
        (FailureInfo(exit_code=126, output_tail="sh: ./run.sh: Permission denied"), E.CONFIG_ERROR),
        (FailureInfo(exit_code=127, output_tail="sh: 1: frobnicate: not found"), E.CONFIG_ERROR),
        (FailureInfo(exit_code=124), E.TIMEOUT),
        (FailureInfo(exit_code=78), E.CONFIG_ERROR),
        # signals: a kill from outside is retried, a crash of the program's own is not
        (FailureInfo(exit_code=-9), E.WORKER_LOST),
        (FailureInfo(signal=9), E.WORKER_LOST),
        (FailureInfo(signal=15), E.WORKER_LOST),
        (FailureInfo(signal=10), E.WORKER_LOST),  # SIGUSR1: sent, not raised
        (FailureInfo(exit_code=137), E.WORKER_LOST),  # a shell's 128 + SIGKILL
        (FailureInfo(signal=11), E.CODE_ERROR),
        (FailureInfo(signal=6), E.CODE_ERROR),
        (FailureInfo(signal=7), E.CODE_ERROR),
        (FailureInfo(signal=8), E.CODE_ERROR),
        (FailureInfo(signal=4), E.CODE_ERROR),
        (FailureInfo(exit_code=-11, action="python"), E.CODE_ERROR),
        (FailureInfo(signal=9, action="python"), E.WORKER_LOST),
        (FailureInfo(exit_code=139), E.CODE_ERROR),  # a shell's 128 + SIGSEGV
        (FailureInfo(exit_code=150, output_tail="done"), E.CODE_ERROR),  # not a signal
        (FailureInfo(exit_code=1), E.CODE_ERROR),
        # output words after a plain exit code 1
        (FailureInfo(exit_code=1, output_tail="HTTP 429 Too Many Requests"), E.RATE_LIMITED),
        (
            FailureInfo(exit_code=1, output_tail="error: Rate limit reached for gpt-4o"),
            E.RATE_LIMITED,
        ),
        (
            FailureInfo(exit_code=1, output_tail="Error code: 429 - insufficient_quota"),
            E.QUOTA_EXHAUSTED,
        ),
        (
            FailureInfo(
                exit_code=1,
                output_tail="You exceeded your current quota, please check your plan",
            ),
            E.QUOTA_EXHAUSTED,
        ),
        (FailureInfo(exit_code=1, output_tail="anthropic: Overloaded"), E.OVERLOADED),
        (FailureInfo(exit_code=1, output_tail="request timed out after 30s"), E.TIMEOUT),
        (FailureInfo(exit_code=1, output_tail="curl: (28) Operation timeout"), E.TIMEOUT),
        (FailureInfo(exit_code=1, output_tail="read ECONNRESET"), E.NETWORK),
        (FailureInfo(exit_code=1, output_tail="connect: Connection refused"), E.NETWORK),
        (FailureInfo(exit_code=1, output_tail="Connection reset by peer"), E.NETWORK),
        (
            FailureInfo(exit_code=1, output_tail="getaddrinfo: Name or service not known"),
            E.NETWORK,
        ),
        (
            FailureInfo(exit_code=1, output_tail="Temporary failure in name resolution"),
            E.NETWORK,
        ),
        (FailureInfo(exit_code=1, output_tail="HTTP 401 from api"), E.AUTH),
        (FailureInfo(exit_code=1, output_tail="Error: invalid API key"), E.AUTH),
        (FailureInfo(exit_code=1, output_tail="401 Unauthorized"), E.AUTH),
        (FailureInfo(exit_code=1, output_tail="HTTP/1.1 503 Service Unavailable"), E.SERVER_ERROR),
        (FailureInfo(exit_code=1, output_tail="504 Gateway Timeout"), E.SERVER_ERROR),
        (FailureInfo(exit_code=1, output_tail=PY_TRACEBACK), E.CODE_ERROR),
        (FailureInfo(exit_code=1, output_tail=REQUESTS_TIMEOUT_TRACEBACK), E.TIMEOUT),
        # numbers that are not statuses
        (FailureInfo(exit_code=1, output_tail="processed 429 rows\nfailed"), E.CODE_ERROR),
        (FailureInfo(exit_code=2, output_tail="usage: reindex [--full]"), E.CODE_ERROR),
        # python exceptions described as data
        (
            FailureInfo(exception_types=("ValueError", "Exception"), message="ValueError: timeout"),
            E.CODE_ERROR,
        ),
        (
            FailureInfo(
                exception_types=("RuntimeError", "Exception"),
                message="RuntimeError: upstream said 429 Too Many Requests",
            ),
            E.RATE_LIMITED,
        ),
        (
            FailureInfo(
                exception_types=("RuntimeError", "Exception"), message="RuntimeError: boom"
            ),
            E.CODE_ERROR,
        ),
        (
            FailureInfo(
                exception_types=("ModuleNotFoundError", "ImportError"),
                message="ModuleNotFoundError: No module named 'jobs'",
            ),
            E.CONFIG_ERROR,
        ),
        (FailureInfo(exception_types=("ProviderRateLimitExceeded", "Exception")), E.RATE_LIMITED),
        # nothing to go on
        (FailureInfo(), E.CODE_ERROR),
        (FailureInfo(message="connection refused"), E.NETWORK),
    ],
)
def test_class(failure: FailureInfo, expected: ErrorClass) -> None:
    assert classify(failure, now=NOW).error_class is expected


def rule(match: str, error_class: ErrorClass) -> ClassifyRule:
    return ClassifyRule.model_validate({"match": match, "class": error_class.value})


@pytest.mark.parametrize(
    ("failure", "rules", "expected"),
    [
        # the owner's rule beats the output words and the exit code
        (
            FailureInfo(exit_code=1, output_tail="Model busy"),
            [rule("Model busy", E.OVERLOADED)],
            E.OVERLOADED,
        ),
        (
            FailureInfo(exit_code=127, output_tail="db locked"),
            [rule("db locked", E.SERVER_ERROR)],
            E.SERVER_ERROR,
        ),
        (
            FailureInfo(http_status=429, body='{"detail": "daily cap reached"}'),
            [rule(r"daily cap", E.QUOTA_EXHAUSTED)],
            E.QUOTA_EXHAUSTED,
        ),
        (
            FailureInfo(known_class=E.TIMEOUT, message="slow"),
            [rule("slow", E.CODE_ERROR)],
            E.CODE_ERROR,
        ),
        # rules are tried in order; a rule that does not match changes nothing
        (
            FailureInfo(exit_code=1, output_tail="a b"),
            [rule("a", E.NETWORK), rule("b", E.AUTH)],
            E.NETWORK,
        ),
        (FailureInfo(exit_code=1, output_tail="timed out"), [rule("nope", E.AUTH)], E.TIMEOUT),
    ],
)
def test_user_rules_come_first(
    failure: FailureInfo, rules: list[ClassifyRule], expected: ErrorClass
) -> None:
    assert classify(failure, rules, now=NOW).error_class is expected


@pytest.mark.parametrize(
    ("failure", "explanation", "fix"),
    [
        (
            FailureInfo(http_status=429, action="llm"),
            "the model provider is rate-limiting requests (HTTP 429)",
            None,
        ),
        (
            FailureInfo(http_status=401, action="llm"),
            "the model provider rejected the API key (HTTP 401)",
            "check the API key: it may be missing, mistyped, revoked or lack access",
        ),
        (
            FailureInfo(http_status=429, provider_code="insufficient_quota", action="llm"),
            "the API quota or credit is used up (HTTP 429 insufficient_quota)",
            "top up the account or raise the quota, then trigger the task again",
        ),
        (
            FailureInfo(
                http_status=400,
                provider_code="context_length_exceeded",
                body='{"message": "maximum context length is 8192 tokens", '
                '"code": "context_length_exceeded"}',
                action="llm",
            ),
            "the prompt is longer than the model's context window "
            "(HTTP 400 context_length_exceeded): maximum context length is 8192 tokens",
            "shorten the prompt or its context, or use a model with a larger context window",
        ),
        (
            FailureInfo(http_status=404, action="http"),
            "the server does not know the requested URL (HTTP 404)",
            "check the URL",
        ),
        (
            FailureInfo(exit_code=3, output_tail="loading\nValueError: bad input\n\n"),
            "the command exited with code 3: ValueError: bad input",
            "fix the error shown in the output, then trigger the task again",
        ),
        (
            FailureInfo(exit_code=1, output_tail="Error: request timed out after 30s"),
            "the command exited with code 1 (the request to a service it calls timed out): "
            "Error: request timed out after 30s",
            None,
        ),
        (
            FailureInfo(exit_code=127, output_tail="sh: 1: frobnicate: not found"),
            "the command was not found (exit code 127): sh: 1: frobnicate: not found",
            "check that the program is installed and on PATH, or give its full path",
        ),
        (
            FailureInfo(exit_code=75, action="precheck"),
            "the precheck exited with code 75 (EX_TEMPFAIL: a temporary failure, "
            "it asked to be retried)",
            None,
        ),
        (
            FailureInfo(exit_code=2, action="precheck", output_tail="no feed"),
            "the precheck exited with code 2: no feed",
            "fix the error shown in the output, then trigger the task again",
        ),
        (
            FailureInfo(signal=9, output_tail="loading 40000 rows"),
            "the command was killed by SIGKILL (signal 9) from outside agentcron, often the "
            "out-of-memory killer, or an operator's kill -9: loading 40000 rows",
            None,
        ),
        (
            FailureInfo(
                exception_types=("ValueError", "Exception"),
                message="ValueError: bad input",
                action="python",
            ),
            "the function raised ValueError: bad input",
            "fix the error shown in the output, then trigger the task again",
        ),
        (
            FailureInfo(
                http_status=200,
                provider_code="overloaded_error",
                message="HTTP 200 carrying an error: Overloaded",
                action="llm",
            ),
            "the model provider is overloaded and turned the request away "
            "(provider error overloaded_error): HTTP 200 carrying an error: Overloaded",
            None,
        ),
        (
            FailureInfo(known_class=E.TIMEOUT, message="timeout 20m"),
            "the run took longer than its timeout and was stopped (timeout 20m)",
            None,
        ),
        (
            FailureInfo(exit_code=1, output_tail="HTTP 401: set OPENAI_API_KEY"),
            "the command exited with code 1 (a service it calls rejected the credentials it "
            "was sent): "
            "HTTP 401: set OPENAI_API_KEY",
            "check the API key in OPENAI_API_KEY: it may be missing, mistyped, revoked "
            "or lack access",
        ),
    ],
)
def test_explanation_reads_as_plain_language(
    failure: FailureInfo, explanation: str, fix: str | None
) -> None:
    result = classify(failure, now=NOW)
    assert result.explanation == explanation
    assert result.fix == fix


def test_explanation_is_redacted_and_one_line() -> None:
    key = "sk-proj-" + "A1b2C3d4" * 5
    failure = FailureInfo(
        exit_code=1,
        output_tail=f"calling with {key}\nError: invalid api key {key}\n",
    )
    result = classify(failure, now=NOW)
    assert result.error_class is E.AUTH
    assert key not in result.explanation
    assert "[REDACTED]" in result.explanation
    assert "\n" not in result.explanation


def test_long_evidence_is_shortened() -> None:
    failure = FailureInfo(exit_code=1, output_tail="ValueError: " + "x" * 5000)
    result = classify(failure, now=NOW)
    assert len(result.explanation) <= 300
    assert result.explanation.endswith("…")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "Sat, 01 Mar 2025 02:00:30 GMT"}, 30.0),
        ({"content-type": "application/json"}, None),
    ],
)
def test_retry_after_is_read_from_headers(headers: dict[str, str], expected: float | None) -> None:
    failure = FailureInfo(http_status=429, headers=headers, action="http")
    assert classify(failure, now=NOW).retry_after == expected


@pytest.mark.parametrize("error_class", list(ErrorClass))
def test_every_class_has_words_and_permanent_ones_a_fix(error_class: ErrorClass) -> None:
    text, fix = explain(error_class)
    assert text and "{" not in text
    assert (fix is not None) == (error_class in PERMANENT_CLASSES)


def test_classify_imports_no_sdk() -> None:
    """Worker processes import the classifier; it must not drag in the SDKs."""
    code = (
        "import sys, agentcron.classify, agentcron.policies.retry, agentcron.redact\n"
        "loaded = sorted(m for m in ('openai', 'anthropic', 'httpx2') if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    env_path = ":".join(p for p in sys.path if p)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert done.stdout.strip() == ""
