"""A base_url no request can go to (outside-in probe of llm tasks).

``base_url: "http://127.0.0.1:99999/v1"`` failed at run time as agentcron's own
error ("ExceptionGroup: unhandled errors in a TaskGroup (1 sub-exception)"), the real
cause (``OverflowError: connect(): port must be 0-65535``) only in a traceback. It
is the task's configuration: a ``config_error`` naming the URL and the port. An
exception group is judged by the exception inside it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx2
import pytest

from agentcron.actions import llm_action
from agentcron.actions.base import ActionResult
from agentcron.actions.llm_action import LlmAction
from agentcron.classify import classify
from agentcron.classify.extract import failure_from_exception
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import FailureInfo
from fake_openai import ctx_for, story_spec

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, base_url: str) -> ActionResult:
    """Run with ``base_url`` as a ``${NAME}`` in it may expand to at run time (the
    config's own check cannot see it then)."""
    spec = story_spec("http://127.0.0.1:9/v1")
    assert spec.llm is not None
    spec = spec.model_copy(update={"llm": spec.llm.model_copy(update={"base_url": base_url})})
    ctx = ctx_for(spec, tmp_path)
    return asyncio.run(LlmAction().run(ctx))


def _failure(result: ActionResult) -> FailureInfo:
    assert not result.ok and result.failure is not None
    return result.failure


def test_a_port_out_of_range_is_a_config_error_naming_url_and_port(tmp_path: Path) -> None:
    failure = _failure(_run(tmp_path, "http://127.0.0.1:99999/v1"))

    verdict = classify(failure)
    assert verdict.error_class is ErrorClass.CONFIG_ERROR
    assert "http://127.0.0.1:99999/v1" in verdict.explanation
    assert "port 99999" in verdict.explanation
    assert "ExceptionGroup" not in verdict.explanation
    assert verdict.fix is not None and "base_url" in verdict.fix


def test_a_url_without_a_host_is_a_config_error(tmp_path: Path) -> None:
    failure = _failure(_run(tmp_path, "http:///v1"))

    assert classify(failure).error_class is ErrorClass.CONFIG_ERROR
    assert "names no host" in failure.message


def test_a_group_around_a_connect_error_is_a_network_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def post(*_: Any) -> Any:
        raise ExceptionGroup(
            "unhandled errors in a TaskGroup", [httpx2.ConnectError("connection refused")]
        )

    monkeypatch.setattr(llm_action, "_post", post)
    verdict = classify(_failure(_run(tmp_path, "http://127.0.0.1:9/v1")))

    assert verdict.error_class is ErrorClass.NETWORK
    assert "ExceptionGroup" not in verdict.explanation


def test_a_group_around_any_other_error_blames_base_url_not_agentcron(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def post(*_: Any) -> Any:
        raise ExceptionGroup(
            "unhandled errors in a TaskGroup",
            [OverflowError("connect(): port must be 0-65535.")],
        )

    monkeypatch.setattr(llm_action, "_post", post)
    failure = _failure(_run(tmp_path, "http://127.0.0.1:9/v1"))

    verdict = classify(failure)
    assert verdict.error_class is ErrorClass.CONFIG_ERROR
    assert "http://127.0.0.1:9/v1" in verdict.explanation
    assert "port must be 0-65535" in verdict.explanation


def test_extraction_unwraps_a_group_of_one_to_its_real_cause() -> None:
    inner = OverflowError("connect(): port must be 0-65535.")
    group = ExceptionGroup("outer", [ExceptionGroup("unhandled errors in a TaskGroup", [inner])])

    failure = failure_from_exception(group)

    assert failure.message == "OverflowError: connect(): port must be 0-65535."
    assert failure.exception_types[0] == "OverflowError"
