"""`llm` tasks end to end: a real `agentcron run` talking to a fake OpenAI-compatible
server (PRODUCT.md "Actions", §5, §6, §8, §9, §10).

One daemon serves the whole module: every task has its own fake server (so each
test scripts exactly the replies its task will get) and a far-future `at`
schedule, so nothing runs until a test says `agentcron trigger`. Notifications go
to a local webhook. Tests wait by peeking at the database through the same
service layer the CLI uses (a CLI call costs seconds on a loaded machine), then
read every result they assert on through the CLI (`logs --json`, `runs --json`),
as a script of the owner's would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agentcron.service import Service
from agentcron.store import open_store
from daemon_proc import DaemonProc, wait_for
from e2e_sink import Sink
from fake_openai import HANG, FakeOpenAI, anthropic_error, completion, openai_error

pytestmark = pytest.mark.slow

KEY = "sk-e2e-4f9c2b7a1d8e6f3a0b5c"  # the daemon's FAKE_KEY; must never leak
NEVER = "2099-01-01T00:00:00+00:00"  # an `at` that keeps tasks idle until triggered
FINAL = ("succeeded", "failed", "skipped", "cancelled")
NOTIFY = "/notify"

# task name -> extra keys beside its llm section
TASKS: dict[str, dict[str, Any]] = {
    "story-ok": {},
    "story-429": {"retry_backoff": {"base": "200ms", "jitter": 0}},
    "story-quota": {},
    "story-401": {},
    "story-529": {},
    "story-hang": {"timeout": "2s", "retries": 1},
    "story-empty": {},
    "pre-skip": {},
    "pre-context": {},
    "ctx-previous": {"context": "previous"},
}
PROMPT = "Write today's story about the sea."


@dataclass
class Rig:
    daemon: DaemonProc
    fakes: dict[str, FakeOpenAI]
    sink: Sink
    peek: Service  # in-process reads of the daemon's database, for waiting only

    def trigger(self, task: str) -> int:
        return int(self.daemon.json("trigger", task)["id"])

    def wait_final(self, run_id: int, timeout: float = 60.0) -> None:
        try:
            wait_for(
                lambda: self.peek.run_detail(run_id)["status"] in FINAL,
                timeout=timeout,
                what=f"run {run_id} finishes",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- daemon log ---\n{self.log_tail()}") from None

    def finished(self, run_id: int, timeout: float = 60.0) -> dict[str, Any]:
        """`logs RUN --json` once the run reached a final status."""
        self.wait_final(run_id, timeout)
        detail: dict[str, Any] = self.daemon.json("logs", str(run_id))
        return detail

    def notices(self, task: str) -> list[str]:
        """Texts of the notifications (title and body) about ``task``, oldest first."""
        word = re.compile(rf"(?<![\w-]){re.escape(task)}(?![\w-])")
        return [t for t in self.sink.texts(NOTIFY) if word.search(t.split("\n", 1)[0])]

    def wait_notice(self, task: str, text: str, timeout: float = 30.0) -> str:
        try:
            found: str = wait_for(
                lambda: next((n for n in self.notices(task) if text in n), None),
                timeout=timeout,
                what=f"a notification about {task} saying {text!r}",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; got {self.notices(task)!r}") from None
        return found

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.daemon.daemon_log().splitlines()[-lines:])


def _write_prechecks(folder: Path) -> dict[str, list[str]]:
    """Precheck scripts: log lines first, the answer on the last line (the protocol)."""
    skip = folder / "precheck_skip.sh"
    skip.write_text(
        "echo 'looking for new items since yesterday'\n"
        """echo '{"run": false, "reason": "nothing new"}'\n"""
    )
    context = folder / "precheck_context.sh"
    context.write_text(
        "echo 'checking the calendar'\n"
        """echo '{"run": true, "context": "today is special: the harbour festival"}'\n"""
    )
    return {"pre-skip": ["sh", str(skip)], "pre-context": ["sh", str(context)]}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    folder = tmp_path_factory.mktemp("llm_e2e")
    with ExitStack() as stack:
        sink = stack.enter_context(Sink())
        fakes = {name: stack.enter_context(FakeOpenAI()) for name in TASKS}
        prechecks = _write_prechecks(folder)
        tasks: dict[str, Any] = {}
        for name, extra in TASKS.items():
            llm = {
                "base_url": fakes[name].base_url,
                "model": "m",
                "api_key_env": "FAKE_KEY",
                "prompt": PROMPT,
            }
            tasks[name] = {"at": NEVER, "llm": llm, **extra}
            if name in prechecks:
                tasks[name]["precheck"] = prechecks[name]
        config = {
            "notify": [sink.url(NOTIFY)],
            "defaults": {
                "retries": 2,
                "retry_backoff": {"base": "1s", "jitter": 0},
                "timeout": "20s",
            },
            "tasks": tasks,
        }
        # YAML 1.2 is a superset of JSON: no quoting surprises in URLs or commands.
        daemon = DaemonProc(folder, json.dumps(config, indent=2), {"FAKE_KEY": KEY})
        daemon.start()
        stack.callback(daemon.stop)
        # Open our reader only once the daemon has migrated the new database: two
        # processes creating one database at the same moment trip over each other.
        wait_for(lambda: "agentcron running as" in daemon.daemon_log(), what="the daemon is up")
        store = open_store(None, daemon.home)
        stack.callback(store.close)
        yield Rig(daemon, fakes, sink, Service(store, daemon.home))


def _messages(rig: Rig, task: str, index: int) -> list[dict[str, str]]:
    body = rig.fakes[task].requests[index].body
    assert isinstance(body, dict), body
    messages: list[dict[str, str]] = body["messages"]
    return messages


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_a_completion_succeeds_is_kept_as_markdown_and_records_tokens(rig: Rig) -> None:
    text = "# The sea\n\nThe tide came in at dawn and took the old pier with it.\n"
    rig.fakes["story-ok"].add(completion(text, prompt_tokens=21, completion_tokens=55))
    run = rig.finished(rig.trigger("story-ok"))

    assert (run["status"], run["attempts"], run["error_class"]) == ("succeeded", 1, None)
    assert run["output"] == text
    kept = Path(run["output_path"])
    assert kept.suffix == ".md"
    assert kept.parent == rig.daemon.home / "outputs" / "story-ok"
    assert kept.read_text(encoding="utf-8") == text
    [attempt] = run["attempts_detail"]
    assert attempt["status"] == "succeeded"
    assert attempt["tokens"] == {"prompt": 21, "completion": 55}
    [listed] = [r for r in rig.daemon.json("runs", "story-ok") if r["id"] == run["id"]]
    assert (listed["status"], listed["output_path"]) == ("succeeded", str(kept))
    assert listed["tokens"] == {"prompt": 21, "completion": 55}

    [request] = rig.fakes["story-ok"].requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["model"] == "m"
    assert request.body["messages"][-1] == {"role": "user", "content": PROMPT}


def test_a_rate_limit_is_retried_no_sooner_than_retry_after(rig: Rig) -> None:
    rig.fakes["story-429"].add(
        openai_error(
            429,
            "Rate limit reached for requests per min. Please try again in 1s.",
            type_="requests",
            code="rate_limit_exceeded",
            headers={"Retry-After": "1"},
        ),
        completion("A story, written once the provider let us in.", completion_tokens=40),
    )
    run = rig.finished(rig.trigger("story-429"))

    assert (run["status"], run["attempts"]) == ("succeeded", 2)
    first, second = run["attempts_detail"]
    assert (first["status"], first["error_class"]) == ("failed", "rate_limited")
    assert (second["status"], second["error_class"]) == ("succeeded", None)
    assert second["tokens"] == {"prompt": 12, "completion": 40}
    # The task's own backoff is 200 ms: only the provider's Retry-After explains a wait
    # of about 1 s (the margin absorbs bookkeeping between the two recorded instants).
    waited = (_at(second["started_at"]) - _at(first["finished_at"])).total_seconds()
    assert waited >= 0.8, waited
    assert run["output"] == "A story, written once the provider let us in."
    assert rig.fakes["story-429"].calls == 2


def test_an_exhausted_quota_fails_at_once_and_says_to_top_up(rig: Rig) -> None:
    rig.fakes["story-quota"].add(
        openai_error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            type_="insufficient_quota",
            code="insufficient_quota",
        )
    )
    run = rig.finished(rig.trigger("story-quota"))

    assert (run["status"], run["attempts"], run["error_class"]) == ("failed", 1, "quota_exhausted")
    assert run["next_attempt_at"] is None
    [attempt] = run["attempts_detail"]
    assert "quota" in attempt["explanation"]
    notice = rig.wait_notice("story-quota", "failed")
    assert "top up" in notice and "quota" in notice
    assert "Retrying will not help" in notice
    assert rig.fakes["story-quota"].calls == 1


def test_a_rejected_key_is_auth_and_the_key_is_never_shown(rig: Rig) -> None:
    rig.fakes["story-401"].add(
        openai_error(
            401,
            f"Incorrect API key provided: {KEY}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            type_="invalid_request_error",
            code="invalid_api_key",
        )
    )
    run = rig.finished(rig.trigger("story-401"))

    assert (run["status"], run["attempts"], run["error_class"]) == ("failed", 1, "auth")
    assert run["next_attempt_at"] is None
    notice = rig.wait_notice("story-401", "failed")
    assert "FAKE_KEY" in notice  # names the variable to fix…
    assert KEY not in notice  # …never its value
    assert KEY not in json.dumps(run)
    assert KEY not in rig.daemon.daemon_log()
    assert rig.fakes["story-401"].calls == 1


def test_an_overloaded_provider_529_is_retried(rig: Rig) -> None:
    rig.fakes["story-529"].add(
        anthropic_error(529, "overloaded_error", "Overloaded"),
        completion("Written after the overload passed."),
    )
    run = rig.finished(rig.trigger("story-529"))

    assert (run["status"], run["attempts"]) == ("succeeded", 2)
    first, second = run["attempts_detail"]
    assert first["error_class"] == "overloaded"
    assert second["status"] == "succeeded"
    assert run["output"] == "Written after the overload passed."


def test_a_response_that_never_comes_is_a_timeout_and_retried(rig: Rig) -> None:
    rig.fakes["story-hang"].add(HANG, completion("Second time lucky."))
    run = rig.finished(rig.trigger("story-hang"))

    assert (run["status"], run["attempts"]) == ("succeeded", 2)
    first, second = run["attempts_detail"]
    assert (first["status"], first["error_class"]) == ("failed", "timeout")
    assert 1.5 <= first["duration_s"] < 15, first["duration_s"]  # `timeout: 2s` ended it
    assert second["status"] == "succeeded"
    assert rig.fakes["story-hang"].calls == 2


def test_three_empty_completions_in_a_row_are_reported_as_suspicious(rig: Rig) -> None:
    fake = rig.fakes["story-empty"]
    fake.add(*[completion("", completion_tokens=0) for _ in range(3)])
    ids = [rig.trigger("story-empty") for _ in range(3)]
    for run_id in ids:
        rig.wait_final(run_id)

    runs = {r["id"]: r for r in rig.daemon.json("runs", "story-empty")}
    assert [runs[run_id]["status"] for run_id in ids] == ["succeeded"] * 3
    notice = rig.wait_notice("story-empty", "succeeded 3 times in a row without producing anything")
    assert notice.startswith("⚠")
    assert fake.calls == 3


def test_a_precheck_answering_run_false_skips_with_its_reason(rig: Rig) -> None:
    run_id = rig.trigger("pre-skip")
    rig.wait_final(run_id)

    [run] = [r for r in rig.daemon.json("runs", "pre-skip") if r["id"] == run_id]
    assert run["status"] == "skipped"
    assert "nothing new" in (run["reason"] or "")
    assert rig.fakes["pre-skip"].calls == 0  # the model was never asked


def test_a_precheck_context_reaches_the_model(rig: Rig) -> None:
    rig.fakes["pre-context"].add(completion("A festival story."))
    run = rig.finished(rig.trigger("pre-context"))

    assert run["status"] == "succeeded"
    messages = _messages(rig, "pre-context", 0)
    assert any("today is special: the harbour festival" in m["content"] for m in messages)
    assert messages[-1] == {"role": "user", "content": PROMPT}


def test_context_previous_gives_the_second_run_the_first_output(rig: Rig) -> None:
    first_output = "Chapter 1: the lighthouse keeper found a bottle on the rocks."
    rig.fakes["ctx-previous"].add(completion(first_output), completion("Chapter 2."))
    first = rig.trigger("ctx-previous")
    rig.wait_final(first)
    assert rig.peek.run_detail(first)["status"] == "succeeded"
    second = rig.finished(rig.trigger("ctx-previous"))
    assert second["status"] == "succeeded"

    before = _messages(rig, "ctx-previous", 0)
    after = _messages(rig, "ctx-previous", 1)
    assert not any(first_output in m["content"] for m in before)
    assert any(first_output in m["content"] for m in after)
    assert after[-1] == {"role": "user", "content": PROMPT}
