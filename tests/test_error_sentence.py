"""A failed run's ``error`` is the owner's sentence (issue 12, finding 12; build item 8).

The plain explanation, fitted to the kind of action that failed, then the decisive
line: a Python traceback's exception line, the provider's message from an HTTP or
OpenAI-style error body, else the last meaningful output line. The owner's message
starts with the same words. Real commands, a real HTTP server and a fake OpenAI
server, run through the real engine, runner and notifier with a fake clock.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.classify import classify
from agentcron.clock import FakeClock
from agentcron.model import ErrorClass, Message, SlotStatus
from agentcron.model.failure import FailureInfo
from agentcron.notify import OutboxSender, SendResult
from agentcron.notify.notifier import Notifier
from agentcron.store.base import Store
from e2e_http import Response, ScriptedServer
from fake_openai import FakeOpenAI, openai_error
from harness import Harness

pytestmark = pytest.mark.slow  # real processes and servers, each well under a second

HOOK = "json://127.0.0.1:9/hook"
PY = sys.executable


class Channel:
    key = HOOK

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def send(self, msg: Message) -> SendResult:
        self.sent.append(msg)
        return SendResult(ok=True)


def run_once(store: Store, clock: FakeClock, home: Path, **spec: Any) -> tuple[Any, str]:
    """Run one slot of a task built from ``spec`` and return its slot and the first
    line of the message the owner was sent about it."""

    async def scenario() -> tuple[Any, str]:
        h = Harness(store, clock, home)
        notifier = Notifier(store, clock, [HOOK], "UTC")
        notifier.attach(h.engine)
        channel = Channel()
        sender = OutboxSender(store, channel_factory=lambda _url: channel, clock=clock)
        h.add("job", every="1h", timezone="UTC", timeout="30s", **spec)
        clock.advance(timedelta(hours=1))
        await h.tick()
        await sender.drain_once()
        (slot,) = h.slots("job")
        assert channel.sent, "the owner was told nothing"
        return slot, channel.sent[0].body.splitlines()[0]

    return asyncio.run(scenario())


def told(line: str, error: str) -> bool:
    """Whether the owner's line is ``⚠ job failed: <error>. …`` (or ``✖``)."""
    return line.split(" job failed: ", 1)[-1].startswith(error)


def test_a_python_traceback_gives_its_exception_line(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """The case of finding 12: a command dying of json.loads('{broken') used to have
    ``error: "exited with code 1"``."""
    slot, line = run_once(
        sqlite_store,
        clock,
        home,
        command=[PY, "-c", "import json; print('parsing'); json.loads('{broken')"],
        retries=0,
    )
    assert slot.status is SlotStatus.FAILED and slot.error_class is ErrorClass.CODE_ERROR
    assert slot.error == (
        "the command exited with code 1: json.decoder.JSONDecodeError: Expecting property "
        "name enclosed in double quotes: line 1 column 2 (char 1)"
    )
    assert line == (
        f"✖ job failed: {slot.error}. Retrying will not help — fix the error shown in the "
        "output, then trigger the task again."
    )
    (attempt,) = sqlite_store.attempts(slot.id)
    assert attempt.error == attempt.explanation == slot.error
    assert "detail" not in attempt.extra  # "exited with code 1" is in the sentence already


def test_a_plain_last_line_when_there_is_no_traceback(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    script = "echo starting; echo 'disk /data is read-only' >&2; echo; exit 3"
    slot, line = run_once(sqlite_store, clock, home, command=script, shell=True, retries=0)
    assert slot.error == "the command exited with code 3: disk /data is read-only"
    assert told(line, slot.error), line


def test_exit_75_is_the_commands_own_temporary_failure_not_a_provider(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """Finding 12: EX_TEMPFAIL was explained as 'the provider had an internal error'."""
    slot, line = run_once(
        sqlite_store, clock, home, command="echo 'upstream 503'; exit 75", shell=True
    )
    assert slot.status is SlotStatus.RETRYING and slot.error_class is ErrorClass.SERVER_ERROR
    assert slot.error == (
        "the command exited with code 75 (EX_TEMPFAIL: a temporary failure, it asked to be "
        "retried): upstream 503"
    )
    assert "provider" not in line and told(line, slot.error), line
    assert "Retrying at" in line


def test_an_http_json_error_body_gives_the_servers_message(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    body = json.dumps({"error": {"message": "field 'when' must be a date"}})
    with ScriptedServer([Response(422, {"Content-Type": "application/json"}, body)]) as srv:
        slot, line = run_once(sqlite_store, clock, home, http={"url": srv.url("/v1/events")})
    assert slot.error_class is ErrorClass.BAD_REQUEST
    assert slot.error == (
        "the server rejected the request as invalid (HTTP 422): field 'when' must be a date"
    )
    assert told(line, slot.error), line


def test_an_openai_error_gives_the_providers_message(
    sqlite_store: Store, clock: FakeClock, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVIDER_API_KEY", "sk-test-0123456789abcdefghij")
    quota = openai_error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        type_="insufficient_quota",
        code="insufficient_quota",
    )
    with FakeOpenAI([quota]) as fake:
        llm = {
            "base_url": fake.base_url,
            "model": "gpt-test",
            "api_key_env": "PROVIDER_API_KEY",
            "prompt": "hello",
        }
        slot, line = run_once(sqlite_store, clock, home, llm=llm)
    assert slot.status is SlotStatus.FAILED and slot.error_class is ErrorClass.QUOTA_EXHAUSTED
    assert slot.error == (
        "the API quota or credit is used up (HTTP 429 insufficient_quota): You exceeded your "
        "current quota, please check your plan and billing details."
    )
    assert told(line, slot.error), line


# ---- wording fits the action: no provider where there is none ----------------------------

# Output lines that give each class to a command that printed them and exited 1.
SAYS = {
    ErrorClass.RATE_LIMITED: "HTTP 429 Too Many Requests",
    ErrorClass.OVERLOADED: "anthropic: Overloaded",
    ErrorClass.SERVER_ERROR: "HTTP/1.1 503 Service Unavailable",
    ErrorClass.TIMEOUT: "request timed out after 30s",
    ErrorClass.NETWORK: "connect: Connection refused",
    ErrorClass.AUTH: "401 Unauthorized",
    ErrorClass.QUOTA_EXHAUSTED: "You exceeded your current quota",
    ErrorClass.CODE_ERROR: "ValueError: bad input",
    ErrorClass.CONFIG_ERROR: (
        'Traceback (most recent call last):\n  File "fetch.py", line 1, in <module>\n'
        "ModuleNotFoundError: No module named 'requests'"
    ),
}


@pytest.mark.parametrize("action", ["command", "precheck", "python"])
@pytest.mark.parametrize("error_class", list(SAYS))
def test_a_program_is_never_said_to_have_a_provider(error_class: ErrorClass, action: str) -> None:
    for failure in (
        FailureInfo(exit_code=1, output_tail=SAYS[error_class], action=action),
        FailureInfo(exit_code=75, output_tail=SAYS[error_class], action=action),
        FailureInfo(message=SAYS[error_class], action=action),
    ):
        result = classify(failure)
        assert "provider" not in result.explanation, (failure, result.explanation)
        assert "API key" not in result.explanation, (failure, result.explanation)
        assert "model" not in (result.fix or ""), (failure, result.fix)
    # and the line does give that class, so the wording above was the class's own
    said = FailureInfo(exit_code=1, output_tail=SAYS[error_class], action=action)
    assert classify(said).error_class is error_class


@pytest.mark.parametrize(
    ("failure", "sentence"),
    [
        (
            FailureInfo(http_status=404, action="http"),
            "the server does not know the requested URL (HTTP 404)",
        ),
        (
            FailureInfo(http_status=401, body="token expired", action="http"),
            "the server rejected the credentials it was sent (HTTP 401): token expired",
        ),
        (
            FailureInfo(http_status=401, action="llm"),
            "the model provider rejected the API key (HTTP 401)",
        ),
        (
            FailureInfo(
                exception_types=("ConnectionRefusedError", "ConnectionError", "OSError"),
                message="ConnectionRefusedError: [Errno 111] Connection refused",
                action="python",
            ),
            "the connection to a service the function calls failed: "
            "ConnectionRefusedError: [Errno 111] Connection refused",
        ),
        (
            FailureInfo(
                message="timed out after 5s; killed process group (TERM)",
                output_tail="fetching page 3 of 40\n",
                known_class=ErrorClass.TIMEOUT,
            ),
            "the run took longer than its timeout and was stopped (timed out after 5s; "
            "killed process group (TERM)): fetching page 3 of 40",
        ),
        (  # an inline call is not stopped, and is not said to be (probe)
            FailureInfo(
                message="timed out after 4s; an inline call cannot be killed and may still "
                "be running in the daemon",
                known_class=ErrorClass.TIMEOUT,
                action="python",
            ),
            "the run took longer than its timeout (timed out after 4s; an inline call "
            "cannot be killed and may still be running in the daemon)",
        ),
        (
            FailureInfo(
                message="the daemon stopped while the run was in progress",
                known_class=ErrorClass.WORKER_LOST,
            ),
            "the daemon stopped while the run was in progress",
        ),
    ],
)
def test_each_kind_of_action_is_told_in_its_own_terms(failure: FailureInfo, sentence: str) -> None:
    assert classify(failure).explanation == sentence


@pytest.mark.parametrize(
    ("status", "fix"),
    [
        (400, "check what the program sends (parameters, headers, body)"),
        (404, "check the URL the program asks for"),
        (
            401,
            "check the credentials it uses (API key, token): they may be missing, mistyped, "
            "revoked or lack access",
        ),
    ],
)
def test_a_function_whose_request_failed_is_not_told_about_models(status: int, fix: str) -> None:
    failure = FailureInfo(
        http_status=status,
        exception_types=("HTTPError", "RequestException", "OSError"),
        exception_module="requests.exceptions",
        message=f"HTTPError: {status} Client Error for url: https://crm.example/api",
        action="python",
    )
    result = classify(failure)
    assert result.fix == fix
    assert "model" not in result.explanation and "provider" not in result.explanation
