"""The llm action against a fake OpenAI-compatible server speaking real HTTP."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import pytest

from agentcron.actions.base import ActionContext, ActionResult
from agentcron.actions.llm_action import CONTEXT_ACK, CONTEXT_HEADER, LlmAction
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import FailureInfo
from agentcron.model.task import TaskSpec
from fake_openai import (
    DROP,
    HANG,
    FakeOpenAI,
    Scripted,
    anthropic_error,
    completion,
    openai_error,
    reply,
)

pytestmark = pytest.mark.slow

KEY_ENV = "AGENTCRON_TEST_LLM_KEY"
KEY = "dI7x0123456789abcdefKEYVALUE"  # no well-known shape: only verbatim scrubbing hides it


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def make_ctx(
    tmp_path: Path,
    base_url: str,
    *,
    llm: dict[str, Any] | None = None,
    context_text: str | None = None,
    timeout: float = 10.0,
    env: dict[str, str] | None = None,
) -> ActionContext:
    llm_spec = {
        "base_url": base_url,
        "model": "glm-5",
        "api_key_env": KEY_ENV,
        "prompt": "Write tonight's story.",
        **(llm or {}),
    }
    spec = TaskSpec.model_validate(
        {"name": "story", "every": "1d", "llm": llm_spec, "env": env or {}}
    )
    return ActionContext(
        task="story",
        spec=spec,
        slot_id=1,
        attempt=1,
        scheduled_for=datetime(2026, 3, 1, 2, 0, tzinfo=UTC),
        output_path=tmp_path / "outputs" / "story" / "a1.md",
        timeout=timedelta(seconds=timeout),
        kill_grace=timedelta(seconds=1),
        context_text=context_text,
    )


def run_once(tmp_path: Path, script: list[Scripted], **kw: Any) -> tuple[ActionResult, FakeOpenAI]:
    with FakeOpenAI(script) as fake:
        result = asyncio.run(LlmAction().run(make_ctx(tmp_path, fake.base_url, **kw)))
    return result, fake


def failure_of(result: ActionResult) -> FailureInfo:
    assert not result.ok
    assert result.failure is not None
    return result.failure


def assert_no_key(failure: FailureInfo) -> None:
    for text in (failure.message, failure.body or "", failure.output_tail, repr(failure.headers)):
        assert KEY not in text


def test_completion_output_tokens_and_request_shape(tmp_path: Path) -> None:
    result, fake = run_once(
        tmp_path,
        [completion("Once upon a time.", prompt_tokens=21, completion_tokens=5)],
        llm={"system": "You are a storyteller.", "max_tokens": 900, "temperature": 0.7},
    )

    assert result.ok and result.failure is None
    assert result.output == "Once upon a time."
    assert result.tokens == {"prompt": 21, "completion": 5}
    written = tmp_path / "outputs" / "story" / "a1.md"
    assert written.read_text(encoding="utf-8") == "Once upon a time."
    assert fake.calls == 1
    request = fake.requests[0]
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"].startswith("application/json")
    assert request.body == {
        "model": "glm-5",
        "messages": [
            {"role": "system", "content": "You are a storyteller."},
            {"role": "user", "content": "Write tonight's story."},
        ],
        "max_tokens": 900,
        "temperature": 0.7,
    }


def test_unset_options_are_left_out_of_the_request(tmp_path: Path) -> None:
    _, fake = run_once(tmp_path, [completion("x")])

    assert fake.requests[0].body == {
        "model": "glm-5",
        "messages": [{"role": "user", "content": "Write tonight's story."}],
    }


def test_context_is_an_earlier_turn_before_the_prompt(tmp_path: Path) -> None:
    result, fake = run_once(
        tmp_path,
        [completion("Chapter two.")],
        llm={"system": "Be brief."},
        context_text="Chapter one: the fox left home.",
    )

    assert result.ok
    assert fake.requests[0].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"{CONTEXT_HEADER}\n\nChapter one: the fox left home."},
        {"role": "assistant", "content": CONTEXT_ACK},
        {"role": "user", "content": "Write tonight's story."},
    ]


def test_rate_limit_with_retry_after_then_success(tmp_path: Path) -> None:
    busy = openai_error(
        429,
        "Model busy, retry later",
        type_="requests",
        code="rate_limit_exceeded",
        headers={"Retry-After": "7"},
    )
    with FakeOpenAI([busy, completion("Made it.")]) as fake:
        ctx = make_ctx(tmp_path, fake.base_url)
        first = asyncio.run(LlmAction().run(ctx))
        second = asyncio.run(LlmAction().run(ctx))

    failure = failure_of(first)
    assert failure.action == "llm"
    assert failure.http_status == 429
    assert failure.headers["retry-after"] == "7"
    assert failure.provider_code == "rate_limit_exceeded"
    assert failure.message == "HTTP 429: Model busy, retry later"
    assert failure.body is not None and "Model busy" in failure.body
    assert failure.known_class is None  # the classifier decides
    assert second.ok and second.output == "Made it."
    assert fake.calls == 2


def test_insufficient_quota_code_is_reported(tmp_path: Path) -> None:
    result, _ = run_once(
        tmp_path,
        [
            openai_error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                type_="insufficient_quota",
                code="insufficient_quota",
            )
        ],
    )

    failure = failure_of(result)
    assert failure.http_status == 429
    assert failure.provider_code == "insufficient_quota"
    assert failure.message.startswith("HTTP 429: You exceeded your current quota")


def test_bad_key_401_never_echoes_the_key(tmp_path: Path) -> None:
    result, _ = run_once(
        tmp_path,
        [
            openai_error(
                401,
                f"Incorrect API key provided: {KEY}.",
                type_="invalid_request_error",
                code="invalid_api_key",
            )
        ],
    )

    failure = failure_of(result)
    assert failure.http_status == 401
    assert failure.provider_code == "invalid_api_key"
    assert failure.message.startswith("HTTP 401: Incorrect API key provided: ")
    assert_no_key(failure)


def test_anthropic_style_overloaded_529(tmp_path: Path) -> None:
    result, _ = run_once(tmp_path, [anthropic_error(529, "overloaded_error", "Overloaded")])

    failure = failure_of(result)
    assert failure.http_status == 529
    assert failure.provider_code == "overloaded_error"
    assert failure.message == "HTTP 529: Overloaded"


def test_error_body_that_is_not_json_keeps_status_and_reason(tmp_path: Path) -> None:
    result, _ = run_once(
        tmp_path, [reply(502, "<html>Bad Gateway</html>", {"Content-Type": "text/html"})]
    )

    failure = failure_of(result)
    assert failure.http_status == 502
    assert failure.provider_code is None
    assert failure.message == "HTTP 502: Bad Gateway"
    assert failure.body == "<html>Bad Gateway</html>"


def test_hang_times_out_within_the_llm_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    result, fake = run_once(tmp_path, [HANG], llm={"timeout": "1s"}, timeout=60)
    elapsed = time.monotonic() - started

    failure = failure_of(result)
    assert failure.known_class is ErrorClass.TIMEOUT
    assert failure.action == "llm"
    assert failure.message.endswith(" within 1s")
    assert fake.calls == 1
    assert elapsed < 10  # the 60 s task timeout was not the one that fired


def test_dropped_connection_is_a_transport_error(tmp_path: Path) -> None:
    result, fake = run_once(tmp_path, [DROP])

    failure = failure_of(result)
    assert failure.action == "llm"
    assert "TransportError" in failure.exception_types
    assert failure.known_class is None
    assert fake.calls == 1


def test_connection_refused_is_a_transport_error(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        base_url = fake.base_url  # a port that nobody listens on once closed
    result = asyncio.run(LlmAction().run(make_ctx(tmp_path, base_url)))

    failure = failure_of(result)
    assert "TransportError" in failure.exception_types


def test_empty_completion_without_usage_is_ok_and_empty(tmp_path: Path) -> None:
    result, _ = run_once(tmp_path, [completion("", usage=False)])

    assert result.ok
    assert result.output == ""
    assert result.tokens == {}  # the provider reported no usage: no counts, not zeros
    assert (tmp_path / "outputs" / "story" / "a1.md").read_text() == ""


def test_text_without_usage_reports_no_token_counts(tmp_path: Path) -> None:
    """A provider that omits usage must not make real output look like an empty run."""
    result, _ = run_once(tmp_path, [completion("Once upon a time.", usage=False)])

    assert result.ok and result.output == "Once upon a time."
    assert result.tokens == {}


def test_null_content_counts_as_empty(tmp_path: Path) -> None:
    result, _ = run_once(tmp_path, [completion(None, prompt_tokens=9, completion_tokens=0)])

    assert result.ok
    assert result.output == ""
    assert result.tokens == {"prompt": 9, "completion": 0}


def test_200_that_is_not_a_completion_is_a_config_error(tmp_path: Path) -> None:
    # the same answer would come every time: base_url points at another API
    result, _ = run_once(tmp_path, [reply(200, {"id": "x", "object": "list", "data": []})])

    failure = failure_of(result)
    assert failure.known_class is ErrorClass.CONFIG_ERROR
    assert failure.http_status == 200
    assert "not with an OpenAI-style chat completion" in failure.message
    assert not (tmp_path / "outputs" / "story" / "a1.md").exists()


def test_200_with_invalid_json_is_a_server_error(tmp_path: Path) -> None:
    result, _ = run_once(tmp_path, [reply(200, '{"choices": [{"message": ')])

    failure = failure_of(result)
    assert failure.known_class is ErrorClass.SERVER_ERROR
    assert "not valid JSON" in failure.message
    assert "JSONDecodeError" in failure.exception_types


def test_200_carrying_an_error_leaves_the_class_to_the_classifier(tmp_path: Path) -> None:
    body = {"error": {"message": "Provider returned error", "code": "overloaded"}}
    result, _ = run_once(tmp_path, [reply(200, body)])

    failure = failure_of(result)
    assert failure.known_class is None
    assert failure.provider_code == "overloaded"
    assert failure.message == "HTTP 200 carrying an error: Provider returned error"


def test_missing_api_key_variable_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    result, fake = run_once(
        tmp_path, [completion("never")], llm={"api_key_env": "DEEPINFRA_API_KEY"}
    )

    failure = failure_of(result)
    assert failure.known_class is ErrorClass.CONFIG_ERROR
    assert failure.message == "environment variable DEEPINFRA_API_KEY is not set"
    assert fake.calls == 0


def test_api_key_from_task_env_overrides_the_process_env(tmp_path: Path) -> None:
    _, fake = run_once(tmp_path, [completion("ok")], env={KEY_ENV: "sk-from-task-env"})

    assert fake.requests[0].headers["authorization"] == "Bearer sk-from-task-env"


def test_no_api_key_env_sends_no_authorization(tmp_path: Path) -> None:
    _, fake = run_once(tmp_path, [completion("ok")], llm={"api_key_env": None})

    assert "authorization" not in fake.requests[0].headers


def test_fake_speaks_the_protocol_of_the_real_openai_sdk() -> None:
    with FakeOpenAI([completion("Hello.", prompt_tokens=3, completion_tokens=2)]) as fake:
        fake.add(openai_error(429, "Slow down", type_="requests", code="rate_limit_exceeded"))
        with openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0) as client:
            answer = client.chat.completions.create(
                model="glm-5", messages=[{"role": "user", "content": "hi"}]
            )
            with pytest.raises(openai.RateLimitError) as raised:
                client.chat.completions.create(
                    model="glm-5", messages=[{"role": "user", "content": "again"}]
                )

    assert answer.choices[0].message.content == "Hello."
    assert answer.usage is not None and answer.usage.prompt_tokens == 3
    assert raised.value.status_code == 429
    assert raised.value.code == "rate_limit_exceeded"
    assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert fake.calls == 2
