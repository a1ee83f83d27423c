"""The words of failed llm calls (outside-in probe of llm tasks).

* OpenRouter's 402 (``code: 402`` in its body) read "(HTTP 402 402)";
* network failures did not name the host ("ConnectError: All connection attempts
  failed", a bare "ReadError" for a reset mid-body): they name host:port;
* a 301/302/307/308 (an http URL that should be https) read "answered HTTP 301.
  Retrying will not help — fix the error shown in the output", with no output and no
  target: it names the target and says to set base_url to it (permanent).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentcron.actions.base import ActionContext, ActionResult
from agentcron.actions.llm_action import LlmAction
from agentcron.classify import classify
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import Classification
from agentcron.model.task import TaskSpec
from fake_openai import DROP, RESET, FakeOpenAI, Scripted, ctx_for, reply, story_spec

pytestmark = pytest.mark.slow


def _ctx(tmp_path: Path, base_url: str) -> ActionContext:
    spec = story_spec(base_url)
    return ctx_for(spec, tmp_path)


def _verdict(result: ActionResult) -> Classification:
    assert not result.ok and result.failure is not None
    return classify(result.failure)


def _run(tmp_path: Path, item: Scripted) -> tuple[Classification, str]:
    with FakeOpenAI([item]) as fake:
        result = asyncio.run(LlmAction().run(_ctx(tmp_path, fake.base_url)))
        return _verdict(result), fake.base_url


def test_openrouters_402_says_its_status_once(tmp_path: Path) -> None:
    body = {"error": {"code": 402, "message": "Insufficient credits. Add more using /credits"}}
    verdict, _ = _run(tmp_path, reply(402, body))

    assert verdict.error_class is ErrorClass.QUOTA_EXHAUSTED
    assert "402 402" not in verdict.explanation
    assert "(HTTP 402)" in verdict.explanation
    assert "Insufficient credits" in verdict.explanation


def test_a_refused_connection_names_host_and_port(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        base_url = fake.base_url  # nobody listens there once closed
    port = base_url.split(":")[2].split("/")[0]
    verdict = _verdict(asyncio.run(LlmAction().run(_ctx(tmp_path, base_url))))

    assert verdict.error_class is ErrorClass.NETWORK
    assert f"could not connect to 127.0.0.1:{port}" in verdict.explanation


@pytest.mark.parametrize("item", [RESET, DROP], ids=["reset", "closed"])
def test_a_connection_lost_mid_answer_names_host_and_port(tmp_path: Path, item: Scripted) -> None:
    verdict, base_url = _run(tmp_path, item)

    host_port = base_url.removeprefix("http://").removesuffix("/v1")
    assert verdict.error_class is ErrorClass.NETWORK
    assert f"cut off while reading the answer from {host_port}" in (verdict.explanation)


def test_the_default_port_is_named_too() -> None:
    from agentcron.actions.llm_action import host_port

    spec = TaskSpec.model_validate(
        {
            "name": "s",
            "every": "1d",
            "llm": {"base_url": "https://api.x.ai/v1", "model": "m", "prompt": "x"},
        }
    )
    assert spec.llm is not None
    assert host_port(spec.llm) == "api.x.ai:443"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_names_its_target_and_the_base_url_to_set(tmp_path: Path, status: int) -> None:
    target = "https://api.example.com/v1/chat/completions"
    verdict, _ = _run(tmp_path, reply(status, "", {"Location": target}))

    assert verdict.error_class is ErrorClass.CONFIG_ERROR and not verdict.transient
    assert f"answered HTTP {status}, a redirect to {target}" in verdict.explanation
    assert "set base_url to https://api.example.com/v1" in verdict.explanation
    assert verdict.fix is not None and "base_url" in verdict.fix
    assert "fix the error shown in the output" not in verdict.fix


def test_a_relative_redirect_is_resolved(tmp_path: Path) -> None:
    verdict, base_url = _run(tmp_path, reply(301, "", {"Location": "/api/v1/chat/completions"}))

    root = base_url.removesuffix("/v1")
    assert f"a redirect to {root}/api/v1/chat/completions" in verdict.explanation
    assert f"set base_url to {root}/api/v1" in verdict.explanation
