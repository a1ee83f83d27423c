"""A provider's answer is read up to a cap (outside-in probe of llm tasks).

A gateway streaming a chunked body at 20 MB/s grew the daemon's memory to 380 MB in
16 s, and with the default 1 h timeout could take the daemon down. The answer is read
up to ``MAX_ANSWER_BYTES`` (16 MiB); past it the attempt fails as a permanent
``bad_request`` that says so, and the connection is closed. The tests lower the cap
to keep them fast and assert that the reading stopped (the server could not send
much past it), not the process's memory.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agentcron.actions import llm_action
from agentcron.actions.base import ActionResult
from agentcron.actions.llm_action import LlmAction
from agentcron.classify import classify
from agentcron.model.enums import ErrorClass
from fake_openai import (
    FLOOD,
    FLOOD_LIMIT,
    FakeOpenAI,
    Scripted,
    completion,
    ctx_for,
    reply,
    story_spec,
)

pytestmark = pytest.mark.slow

CAP = 256 * 1024


def _run(tmp_path: Path, script: list[Scripted]) -> tuple[ActionResult, FakeOpenAI]:
    with FakeOpenAI(script) as fake:
        spec = story_spec(fake.base_url)
        ctx = ctx_for(spec, tmp_path, 20)
        result = asyncio.run(LlmAction().run(ctx))
    return result, fake


def test_the_default_cap_is_16_mib() -> None:
    assert llm_action.MAX_ANSWER_BYTES == 16 * 1024 * 1024
    assert llm_action.format_size(llm_action.MAX_ANSWER_BYTES) == "16 MiB"


def test_an_endless_answer_stops_being_read_at_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llm_action, "MAX_ANSWER_BYTES", CAP)
    started = time.monotonic()
    result, fake = _run(tmp_path, [FLOOD])
    elapsed = time.monotonic() - started

    assert not result.ok and result.failure is not None
    # the read stopped: the server could send no more than the cap plus what the
    # sockets' buffers hold, far from the whole flood
    assert fake.flooded < FLOOD_LIMIT // 2
    assert elapsed < 10
    verdict = classify(result.failure)
    assert verdict.error_class is ErrorClass.BAD_REQUEST and not verdict.transient
    assert f"the answer from {fake.base_url}/chat/completions was larger than 256 KiB" in (
        verdict.explanation
    )
    assert "stopped reading" in verdict.explanation
    assert "rejected the request" not in verdict.explanation
    assert verdict.fix is not None and "base_url" in verdict.fix


def test_a_declared_length_past_the_cap_is_not_read_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llm_action, "MAX_ANSWER_BYTES", CAP)
    result, _ = _run(tmp_path, [reply(200, " " * (CAP + 1))])

    assert result.failure is not None
    assert result.failure.known_class is ErrorClass.BAD_REQUEST
    assert "larger than 256 KiB" in result.failure.message


def test_an_answer_within_the_cap_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llm_action, "MAX_ANSWER_BYTES", CAP)
    text = "Once upon a time. " * (CAP // 40)  # about half the cap
    result, _ = _run(tmp_path, [completion(text)])

    assert result.ok and result.output == text
