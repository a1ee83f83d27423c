"""One back-off per provider (issue 15 §3), by a real daemon and a fake
OpenAI-compatible server on loopback.

Three tasks call the same provider at the same second and are all refused (429,
Retry-After). The owner gets one message about the provider, not three about the tasks;
a fourth task due during the cooldown makes no call and spends no attempt; after the
cooldown exactly one run tries the provider while the others wait; it answers, the
others follow, all four succeed, and one more message says the provider answers again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon_proc import DaemonProc, wait_for
from e2e_webhook import WebhookReceiver
from fake_openai import FakeOpenAI, completion, openai_error

pytestmark = pytest.mark.slow

TASKS = ("story", "summary", "digest")


def _config(hook: str, base_url: str, anchor: datetime) -> str:
    tasks: dict[str, Any] = {}
    llm = {"base_url": base_url, "model": "m", "api_key_env": "FAKE_KEY", "prompt": "go"}
    for name in TASKS:
        tasks[name] = {
            "every": "1h",
            "anchor": anchor.isoformat(),
            "llm": llm,
            "retries": 3,
            "retry_backoff": {"base": "1s", "jitter": 0},
        }
    tasks["late"] = {"at": "2099-01-01T00:00:00", "llm": llm, "retries": 3}
    return json.dumps({"timezone": "UTC", "notify": [hook], "tasks": tasks})


def _in_time(
    tmp_path: Path, make: Callable[[Path, datetime], DaemonProc], lead: float
) -> DaemonProc:
    """A started daemon whose config's tasks first fire ``lead`` seconds on, and that read
    it before then. Started later on a loaded machine, its tasks' first fire was an hour
    on (``every: 1h`` from the anchor) and the test waited for nothing: it is started
    again in a fresh folder, with a longer lead."""
    for n, extra in enumerate((0.0, 20.0, 45.0)):
        anchor = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead + extra)
        folder = tmp_path / f"try{n}"
        folder.mkdir()
        d = make(folder, anchor)
        d.start()
        wait_for(
            lambda log=d.daemon_log: "agentcron running as" in log(),
            timeout=60,
            what="the daemon's start",
        )
        if datetime.now(UTC) < anchor - timedelta(seconds=0.5):
            return d
        d.stop()
    raise AssertionError("the daemon never started before its tasks' first fire")


def _attempts(d: DaemonProc) -> list[tuple[str, int, float, float | None, str | None]]:
    with sqlite3.connect(d.home / "agentcron.db") as db:
        return [
            (task, number, started, finished, cls)
            for task, number, started, finished, cls in db.execute(
                "SELECT s.task, a.number, a.started_at, a.finished_at, a.error_class "
                "FROM attempts a JOIN slots s ON s.id = a.slot_id ORDER BY a.started_at"
            )
        ]


def test_three_refused_tasks_make_one_provider_incident_and_one_probe(tmp_path: Path) -> None:
    refusal = openai_error(429, "slow down", headers={"Retry-After": "12"})
    with WebhookReceiver() as hook, FakeOpenAI([refusal] * 3 + [completion("ok")] * 4) as fake:
        d = _in_time(
            tmp_path,
            lambda folder, anchor: DaemonProc(
                folder, _config(hook.url, fake.base_url, anchor), {"FAKE_KEY": "sk-test-1234"}
            ),
            8,
        )
        try:
            wait_for(lambda: hook.messages(), timeout=60, what="the provider's message")
            first = hook.messages()
            shown = d.json("health")["providers"]
            doctor = d.cli("doctor", check=False).stdout
            d.cli("trigger", "late")  # due during the cooldown
            wait_for(lambda: len(hook.messages()) >= 2, timeout=60, what="the provider answering")
            wait_for(
                lambda: sum(1 for a in _attempts(d) if a[4] is None and a[3]) == 4,
                timeout=60,
                what="four successes",
            )
            messages = hook.messages()
            attempts = _attempts(d)
            with sqlite3.connect(d.home / "agentcron.db") as db:
                reasons = db.execute("SELECT task, status, reason FROM slots").fetchall()
        except BaseException:
            print(d.daemon_log()[-8000:])
            raise
        finally:
            d.stop()
    assert [(p["name"], p["state"]) for p in shown] in (
        [("127.0.0.1", "cooling")],
        [("127.0.0.1", "probing")],
    ), shown
    assert "provider 127.0.0.1" in doctor and "tasks wait without spending retries" in doctor
    bodies = [str(m.get("message", "")).splitlines()[0] for m in messages]
    assert len(first) == 1 and len(bodies) == 2, bodies
    host = "127.0.0.1"
    assert bodies[0].startswith(f"⚠ {host} is refusing calls ("), bodies
    assert "3 tasks wait until" in bodies[0] and "(digest, story, summary)" in bodies[0]
    assert bodies[1].startswith(f"✔ {host} is answering again after "), bodies
    assert "4 tasks waited for it (digest, late, story, summary)" in bodies[1], bodies
    # no task spent an attempt while the provider cooled down: 2 each for the refused
    # three (the 429 and the success), 1 for the late one
    per_task: dict[str, int] = {}
    for task, *_ in attempts:
        per_task[task] = per_task.get(task, 0) + 1
    assert per_task == {"story": 2, "summary": 2, "digest": 2, "late": 1}, attempts
    assert fake.calls == 7
    # the wait for the cooldown is over once the run starts: not kept on its success
    # ("cooling down until … HTTP 429" on succeeded runs, outside-in probe)
    assert all(status == "succeeded" for _, status, _ in reasons), reasons
    assert not [r for r in reasons if (r[2] or "").startswith("provider ")], reasons
    # one probe: the first call after the cooldown ended before any other began
    after = [a for a in attempts if a[4] is None]
    probe = after[0]
    assert probe[3] is not None and all(a[2] >= probe[3] for a in after[1:]), attempts


@pytest.mark.postgres
def test_two_daemons_on_postgresql_share_one_back_off(tmp_path: Path) -> None:
    """The same on two nodes sharing a database: the three refusals may land on either
    node; one provider message, no attempt spent while it cools, all three succeed."""
    from conftest import require_pg
    from pg_util import PgDaemonProc, admin_execute, dsn_with_schema, fresh_schema

    require_pg()
    refusal = openai_error(429, "slow down", headers={"Retry-After": "4"})
    with (
        fresh_schema() as schema,
        WebhookReceiver() as hook,
        FakeOpenAI([refusal] * 3 + [completion("ok")] * 3) as fake,
    ):
        admin_execute([], schema=schema)  # the DSN selects it; the product does not create it
        anchor = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=10)
        text = _config(hook.url, fake.base_url, anchor)
        nodes = [
            PgDaemonProc(
                tmp_path / name, text, dsn_with_schema(schema), {"FAKE_KEY": "sk-test-1234"}
            )
            for name in ("a", "b")
        ]
        for node in nodes:
            node.start()
        try:
            wait_for(lambda: len(hook.messages()) >= 2, timeout=90, what="both messages")

            def done() -> list[Any] | None:
                rows = nodes[0].json("runs", "--limit", "50")
                ok = [r for r in rows if r["status"] == "succeeded" and r["task"] in TASKS]
                return rows if len(ok) == 3 else None

            rows = wait_for(done, timeout=60, what="three successes")

            def told_over() -> bool:
                # a second cooling (a refusal that met the first one's probe) is told
                # over after the successes: waited for, not cut off by the stop
                said = [str(m.get("message", "")) for m in hook.messages()]
                return bool(said) and said[-1].startswith("✔ ")

            wait_for(told_over, timeout=60, what="the provider told answering again")
        except BaseException:
            for node in nodes:
                print(node.daemon_log()[-4000:])
            raise
        finally:
            for node in nodes:
                node.stop()
    bodies = [str(m.get("message", "")).splitlines()[0] for m in hook.messages()]
    assert bodies[0].startswith("⚠ 127.0.0.1 is refusing calls ("), bodies
    assert bodies[-1].startswith("✔ 127.0.0.1 is answering again after "), bodies
    assert len(set(bodies)) == len(bodies), bodies  # no message told once per node
    if len(bodies) == 2:  # the three refusals landed together: one cooling
        assert "3 tasks" in bodies[0], bodies
        assert {r["attempts"] for r in rows if r["task"] in TASKS} == {2}, rows
    else:  # on a loaded machine the last refusal met the first cooling's probe: a second
        assert len(bodies) <= 4, bodies  # cooling, told as such
        assert all("refusing calls" in b or "answering again" in b for b in bodies), bodies
    assert fake.calls == 6


@pytest.mark.parametrize(
    "refusal",
    [
        openai_error(429, "slow down"),  # no Retry-After
        openai_error(529, "Overloaded", type_="overloaded_error"),
    ],
)
def test_a_run_that_gives_up_on_refusals_does_not_say_the_provider_answers(
    tmp_path: Path, refusal: Any
) -> None:
    """Outside-in probe: a task gave up on 529s without Retry-After, and seconds later
    the owner read "✔ PROVIDER is answering again", with no call made since: the last
    refusal, with no time to wait for, was taken for an answer."""
    llm = {"base_url": "", "model": "m", "api_key_env": "FAKE_KEY", "prompt": "go"}
    task: dict[str, Any] = {"every": "1h", "retries": 1}
    task["retry_backoff"] = {"base": "1s", "jitter": 0}
    with WebhookReceiver() as hook, FakeOpenAI([refusal] * 4) as fake:
        llm["base_url"] = fake.base_url

        def make(folder: Path, anchor: datetime) -> DaemonProc:
            ask = {**task, "anchor": anchor.isoformat(), "llm": llm}
            config = {"timezone": "UTC", "notify": [hook.url], "tasks": {"ask": ask}}
            return DaemonProc(folder, json.dumps(config), {"FAKE_KEY": "sk-test-1234"})

        d = _in_time(tmp_path, make, 6)
        try:
            wait_for(lambda: fake.calls >= 2, timeout=60, what="both attempts")
            wait_for(
                lambda: any("gave up" in str(m.get("message")) for m in hook.messages()),
                timeout=60,
                what="the give-up",
            )
            time.sleep(4)  # the wrong message came 2-4 s after the give-up
            bodies = [str(m.get("message", "")).splitlines()[0] for m in hook.messages()]
        except BaseException:
            print(d.daemon_log()[-8000:])
            raise
        finally:
            d.stop()
    assert fake.calls == 2, fake.calls
    assert not [b for b in bodies if "answering again" in b], bodies
    assert any("is refusing calls" in b for b in bodies), bodies


def test_after_a_give_up_on_refusals_the_next_run_calls_at_once(tmp_path: Path) -> None:
    """Outside-in probe: after "✖ … gave up after 4 attempts … Next scheduled run: 11:10",
    the 11:10 run waited two minutes: the run that gave up still held the provider's
    probe, and only its lease's end let another run try. A run triggered right after the
    give-up now calls the provider at once."""
    refusal = openai_error(529, "Overloaded", type_="overloaded_error")
    llm = {"base_url": "", "model": "m", "api_key_env": "FAKE_KEY", "prompt": "go"}
    task: dict[str, Any] = {"every": "1h", "retries": 1}
    task["retry_backoff"] = {"base": "1s", "jitter": 0}
    with WebhookReceiver() as hook, FakeOpenAI([refusal] * 2 + [completion("ok")]) as fake:
        llm["base_url"] = fake.base_url

        def make(folder: Path, anchor: datetime) -> DaemonProc:
            ask = {**task, "anchor": anchor.isoformat(), "llm": llm}
            config = {"timezone": "UTC", "notify": [hook.url], "tasks": {"ask": ask}}
            return DaemonProc(folder, json.dumps(config), {"FAKE_KEY": "sk-test-1234"})

        d = _in_time(tmp_path, make, 6)
        try:
            wait_for(
                lambda: any("gave up" in str(m.get("message")) for m in hook.messages()),
                timeout=60,
                what="the give-up",
            )
            given_up = time.monotonic()
            d.cli("trigger", "ask")
            wait_for(lambda: fake.calls >= 3, timeout=60, what="the triggered run's call")
            waited = time.monotonic() - given_up
        except BaseException:
            print(d.daemon_log()[-8000:])
            raise
        finally:
            d.stop()
    assert waited < 30, waited  # the probe lease is 120 s
