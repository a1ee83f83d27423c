"""A 200 answer that is not a chat completion (outside-in probe of llm tasks).

An Anthropic Messages body, ``{"hello": "world"}`` or a webhook's plain ``ok`` was
classified ``server_error`` and retried 4 times ("the model provider had an internal
error"). The same answer comes every time: base_url or the API style is wrong, so it
is a permanent ``config_error`` that says to check base_url. JSON cut short stays a
transient failure.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agentcron.actions.base import ActionResult
from agentcron.actions.llm_action import LlmAction
from agentcron.classify import classify
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import FailureInfo
from fake_openai import FakeOpenAI, Scripted, ctx_for, reply, story_spec

pytestmark = pytest.mark.slow

ANTHROPIC_MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [{"type": "text", "text": "Once upon a time."}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 10, "output_tokens": 5},
}


def _run(tmp_path: Path, item: Scripted) -> tuple[ActionResult, str]:
    with FakeOpenAI([item]) as fake:
        spec = story_spec(fake.base_url)
        ctx = ctx_for(spec, tmp_path)
        return asyncio.run(LlmAction().run(ctx)), fake.base_url


def _failure(result: ActionResult) -> FailureInfo:
    assert not result.ok and result.failure is not None
    return result.failure


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(ANTHROPIC_MESSAGE, id="anthropic-messages"),
        pytest.param({"hello": "world"}, id="other-json"),
        pytest.param(["a", "list"], id="json-list"),
    ],
)
def test_json_that_is_not_a_completion_is_a_permanent_config_error(
    tmp_path: Path, body: Any
) -> None:
    result, base_url = _run(tmp_path, reply(200, body))

    failure = _failure(result)
    verdict = classify(failure)
    assert verdict.error_class is ErrorClass.CONFIG_ERROR
    assert not verdict.transient
    assert f"the endpoint at {base_url}/chat/completions answered" in verdict.explanation
    assert "not with an OpenAI-style chat completion" in verdict.explanation
    assert "internal error" not in verdict.explanation
    assert verdict.fix is not None and "base_url" in verdict.fix and "/v1" in verdict.fix
    assert not (tmp_path / "a1.md").exists()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("ok", "text/plain"), ("<html><body>Welcome</body></html>", "text/html")],
    ids=["plain-ok", "html-page"],
)
def test_a_body_that_is_not_json_at_all_is_a_permanent_config_error(
    tmp_path: Path, body: str, content_type: str
) -> None:
    result, _ = _run(tmp_path, reply(200, body, {"Content-Type": content_type}))

    verdict = classify(_failure(result))
    assert verdict.error_class is ErrorClass.CONFIG_ERROR
    assert "not with an OpenAI-style chat completion" in verdict.explanation


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"id": "chatcmpl-1", "choices": [{"mess', id="json-cut-short"),
        pytest.param("", id="empty"),
        pytest.param({"id": "chatcmpl-1", "choices": []}, id="completion-without-choice"),
    ],
)
def test_an_answer_that_may_be_a_glitch_stays_transient(tmp_path: Path, body: Any) -> None:
    result, _ = _run(tmp_path, reply(200, body))

    verdict = classify(_failure(result))
    assert verdict.error_class is ErrorClass.SERVER_ERROR
    assert verdict.transient
