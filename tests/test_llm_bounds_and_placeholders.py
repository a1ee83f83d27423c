"""The llm action's bounds and words (outside-in probe of agent tasks):

* the task's ``timeout`` ends an llm run even when ``llm.timeout`` is longer (the run
  took the longer of the two: a 5 s task waited 60 s on a hung call, while the
  "taking long" warning said it would be stopped at 5 s);
* agentcron's words about a failed call name a ``${NAME}`` of the URL as written,
  not its value (a credential in a URL's path under a name that does not say it is
  secret was stored, logged and sent to the owner expanded).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest

from agentcron.actions.base import ActionContext
from agentcron.engine.actions import ActionRegistry
from agentcron.engine.runner import action_limit, outer_limit
from agentcron.model.enums import ErrorClass
from agentcron.model.task import TaskSpec
from fake_openai import HANG, FakeOpenAI, completion, ctx_for

pytestmark = pytest.mark.slow

CRED = "pathcredABCDEF987654"


def _spec(base_url: str, *, task_timeout: str, llm_timeout: str | None = None) -> TaskSpec:
    llm = {"base_url": base_url, "model": "m", "prompt": "x"}
    if llm_timeout is not None:
        llm["timeout"] = llm_timeout
    return TaskSpec.model_validate(
        {"name": "story", "every": "1d", "timeout": task_timeout, "llm": llm}
    )


def _ctx(tmp_path: Path, spec: TaskSpec) -> ActionContext:
    return ctx_for(spec, tmp_path, spec.timeout.total_seconds())


def test_the_tasks_timeout_bounds_a_longer_llm_timeout(tmp_path: Path) -> None:
    with FakeOpenAI([HANG]) as fake:
        spec = _spec(fake.base_url, task_timeout="1s", llm_timeout="60s")
        assert action_limit(spec) == timedelta(seconds=1)
        assert outer_limit(spec) < timedelta(seconds=60)
        started = time.monotonic()
        result = asyncio.run(ActionRegistry()(spec).run(_ctx(tmp_path, spec)))
        elapsed = time.monotonic() - started
    assert result.failure is not None
    assert result.failure.known_class is ErrorClass.TIMEOUT
    assert result.failure.message.endswith(" within 1s")
    assert elapsed < 30  # not the 60 s of the call's own bound


def test_a_shorter_llm_timeout_still_ends_the_call_first() -> None:
    spec = _spec("http://127.0.0.1:9/v1", task_timeout="1h", llm_timeout="8s")
    assert action_limit(spec) == timedelta(seconds=8)


def test_a_failed_calls_words_name_the_placeholder_not_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GW_CRED", CRED)
    with FakeOpenAI([HANG]) as fake:
        spec = _spec(fake.base_url + "/hang/${GW_CRED}", task_timeout="1s")
        result = asyncio.run(ActionRegistry()(spec).run(_ctx(tmp_path, spec)))
        assert fake.calls == 1  # the call went to the expanded URL
    assert result.failure is not None
    assert CRED not in result.failure.message
    assert "/hang/${GW_CRED} within 1s" in result.failure.message


def test_a_value_is_put_back_only_where_it_stands_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentcron.config._env import current_environ, placeholders_by_value

    monkeypatch.setenv("GW_CRED", CRED)
    monkeypatch.setenv("SHORT", "v1")
    spec = _spec("http://h/${SHORT}/${GW_CRED}", task_timeout="1s")
    written = placeholders_by_value(spec, current_environ())
    assert written is not None
    assert written(f"no answer from http://h/v1/{CRED}") == "no answer from http://h/v1/${GW_CRED}"
    assert written(f"x{CRED}y") == f"x{CRED}y"  # inside a longer word: not this value
    assert placeholders_by_value(_spec("http://h/v1", task_timeout="1s"), {}) is None
    # a placeholder the config would refuse stands for no value: nothing to put back
    broken = spec.model_copy(update={"llm": spec.llm.model_copy(update={"prompt": "${BAD"})})  # type: ignore[union-attr]
    assert placeholders_by_value(broken, {"BAD": CRED}) is None


def test_a_succeeding_call_through_a_placeholder_url_is_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GW_CRED", CRED)
    with FakeOpenAI([completion("hello")]) as fake:
        spec = _spec(fake.base_url + "/p/${GW_CRED}", task_timeout="10s")
        result = asyncio.run(ActionRegistry()(spec).run(_ctx(tmp_path, spec)))
    assert result.ok and result.output == "hello"
    assert fake.requests[0].path.startswith(f"/v1/p/{CRED}/")


def test_the_output_a_failure_quotes_names_the_placeholder_as_its_first_line_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Secrets probe: a failure's first line said `${PLAIN_VALUE}` while its "Last lines
    of output" below it quoted the value itself."""

    monkeypatch.setenv("PLAIN_VALUE", "plainLEAKval42")
    spec = TaskSpec(
        name="t",
        every="1h",
        command=["sh", "-c", "echo connecting with $P >&2; echo plain $P is refused >&2; exit 3"],
        env={"P": "${PLAIN_VALUE}"},
    )
    result = asyncio.run(ActionRegistry()(spec).run(_ctx(tmp_path, spec)))
    assert result.failure is not None
    assert "connecting with ${PLAIN_VALUE}" in result.failure.output_tail, result.failure
    assert "plainLEAKval42" not in result.failure.output_tail
