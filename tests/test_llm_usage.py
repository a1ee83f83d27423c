"""Token counts under the field names other providers use (outside-in probe of llm tasks).

A completion whose ``usage`` was ``{"total_tokens": 500}`` or Anthropic-style
``{"input_tokens": 200, "output_tokens": 300}`` was recorded ``{prompt: 0,
completion: 0}``: a ``tokens_per_day`` budget never saw it, and the empty-output
detector (zero completion tokens) called three answers with text "empty".
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agentcron.actions.base import ActionResult
from agentcron.actions.llm_action import LlmAction, usage_tokens
from agentcron.policies.budget import tokens_of
from fake_openai import FakeOpenAI, completion, ctx_for, story_spec

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, usage_body: dict[str, Any]) -> ActionResult:
    with FakeOpenAI([completion("Once upon a time.", usage_body=usage_body)]) as fake:
        spec = story_spec(fake.base_url)
        ctx = ctx_for(spec, tmp_path)
        return asyncio.run(LlmAction().run(ctx))


def test_anthropic_style_input_and_output_tokens_are_counted(tmp_path: Path) -> None:
    result = _run(tmp_path, {"input_tokens": 200, "output_tokens": 300})

    assert result.ok and result.output == "Once upon a time."
    assert result.tokens == {"prompt": 200, "completion": 300}
    assert tokens_of(result.tokens) == 500  # what a tokens_per_day budget adds


def test_a_total_alone_is_kept_as_a_total_not_as_zero_completion(tmp_path: Path) -> None:
    result = _run(tmp_path, {"total_tokens": 500})

    assert result.ok
    assert result.tokens == {"total": 500}
    assert tokens_of(result.tokens) == 500  # a tokens_per_day budget counts it
    # no "completion": 0, which the empty-output detector reads as an empty answer
    assert "completion" not in result.tokens


def test_a_total_fills_in_the_one_count_missing(tmp_path: Path) -> None:
    assert usage_tokens({"prompt_tokens": 120, "total_tokens": 500}) == {
        "prompt": 120,
        "completion": 380,
    }
    assert usage_tokens({"output_tokens": 80, "total_tokens": 100}) == {
        "prompt": 20,
        "completion": 80,
    }


def test_counts_not_reported_are_left_out_not_zero() -> None:
    assert usage_tokens({}) == {}
    assert usage_tokens(None) == {}
    assert usage_tokens({"prompt_tokens": None, "completion_tokens": None}) == {}
    assert usage_tokens({"prompt_tokens": 9}) == {"prompt": 9}
    assert usage_tokens({"prompt_tokens": True, "completion_tokens": -1}) == {}
    # a reported zero stays a zero: that is the provider's word for an empty answer
    assert usage_tokens({"prompt_tokens": 9, "completion_tokens": 0}) == {
        "prompt": 9,
        "completion": 0,
    }
