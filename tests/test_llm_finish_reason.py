"""Answers the model did not finish (outside-in probe of llm tasks).

``finish_reason: "length"`` (a story cut off at max_tokens) and ``"content_filter"``
with empty text were recorded as plain successes. A cut-off answer with text is still
a success, but its kept output ends with a note that says it was cut off and why; one
with no text at all fails as a permanent, explained failure (the same prompt would
meet the same end).
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
from fake_openai import FakeOpenAI, completion, ctx_for, story_spec

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, text: str | None, reason: str, **llm: Any) -> ActionResult:
    script = [completion(text, finish_reason=reason, prompt_tokens=20, completion_tokens=900)]
    with FakeOpenAI(script) as fake:
        spec = story_spec(fake.base_url, **llm)
        ctx = ctx_for(spec, tmp_path)
        return asyncio.run(LlmAction().run(ctx))


def test_a_story_cut_off_at_max_tokens_succeeds_with_a_note(tmp_path: Path) -> None:
    result = _run(tmp_path, "Once upon a time, the fox", "length", max_tokens=900)

    assert result.ok
    assert result.output.startswith("Once upon a time, the fox\n\n")
    note = result.output.splitlines()[-1]
    assert note.startswith("[cut off: the answer reached max_tokens (900)")
    assert "raise llm.max_tokens" in note
    assert (tmp_path / "a1.md").read_text(encoding="utf-8") == result.output
    assert result.tokens == {"prompt": 20, "completion": 900}


def test_a_content_filter_with_no_text_fails_permanently_and_says_why(tmp_path: Path) -> None:
    result = _run(tmp_path, "", "content_filter")

    assert not result.ok and result.failure is not None
    verdict = classify(result.failure)
    assert verdict.error_class is ErrorClass.BAD_REQUEST and not verdict.transient
    assert "the provider's content filter withheld the answer" in verdict.explanation
    assert "rejected the request as invalid" not in verdict.explanation
    assert verdict.fix is not None and "content filter" in verdict.fix
    assert result.tokens == {"prompt": 20, "completion": 900}  # still spent


def test_a_content_filter_after_some_text_keeps_it_with_a_note(tmp_path: Path) -> None:
    result = _run(tmp_path, "The first half.", "content_filter")

    assert result.ok
    assert result.output.endswith(
        "[cut off: the provider's content filter stopped the answer here]"
    )


def test_max_tokens_used_up_before_any_text_fails_and_says_to_raise_it(tmp_path: Path) -> None:
    result = _run(tmp_path, None, "length", max_tokens=300)

    assert result.failure is not None
    verdict = classify(result.failure)
    assert verdict.error_class is ErrorClass.BAD_REQUEST
    assert "max_tokens (300) before writing any text" in verdict.explanation
    assert verdict.fix is not None and "raise llm.max_tokens" in verdict.fix


def test_a_finished_answer_has_no_note(tmp_path: Path) -> None:
    result = _run(tmp_path, "The end.", "stop")

    assert result.ok and result.output == "The end."


def test_a_finish_reason_not_said_is_none() -> None:
    """Providers that leave finish_reason out (or answer a shape without it) said
    nothing about why the model stopped: None, an answer, not a fault."""
    from agentcron.actions.llm_action import finish_reason

    assert finish_reason({"choices": [{"message": {"content": "x"}}]}) is None
    assert finish_reason({"choices": []}) is None
    assert finish_reason({"choices": [{"finish_reason": 3}]}) is None
    assert finish_reason({"choices": [{"finish_reason": "length"}]}) == "length"
