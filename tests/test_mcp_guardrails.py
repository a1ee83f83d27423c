"""The owner's bounds on an agent, each tried by an agent through the SDK's client:
namespace escapes, forbidden actions, too many tasks, too short a period, scheduling
from inside a scheduled run, ``${…}`` and base-URL smuggling, model profiles. Every
refusal says which bound stopped it and records nothing; within the bounds the same
calls work. Also: the ``agents:`` section's own checks, and how a process finds out
that it descends from a scheduled run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.config.agents import AgentsConfig, load_with_agents
from agentcron.config.errors import ConfigError
from agentcron.interfaces.mcp import scheduled_run_slot
from agentcron.service import Defaults, NotFoundError, Service
from mcp_rig import agents_config, call, calls, ok, refusal, server_for, unchanged

HOOK = {"url": "https://hooks.example.com/ping"}


@pytest.fixture
def service(sqlite_store: Any, clock: FakeClock, home: Path) -> Service:
    svc = Service(sqlite_store, home, clock, Defaults(timezone="UTC"))
    # another agent's task and one of the owner's
    svc.add_task("agent.other.secret-job", {"every": "1h", "http": HOOK})
    svc.add_task("backup", {"cron": "0 3 * * *", "command": ["true"]})
    return svc


def test_an_agent_sees_and_changes_only_its_namespace(service: Service) -> None:
    server = server_for(service, agents_config())
    ok(call(server, "schedule_task", name="mine", every="1h", http=HOOK))
    others = service.runs("agent.other.secret-job")
    run = service.trigger("agent.other.secret-job")
    check = unchanged(service)
    assert [t["name"] for t in ok(call(server, "list_tasks"))["tasks"]] == ["agent.claude.mine"]
    results = calls(
        server,
        [
            ("get_task", {"name": "agent.other.secret-job"}),
            ("pause_task", {"name": "agent.other.secret-job"}),
            ("update_task", {"name": "agent.other.secret-job", "every": "2h"}),
            ("cancel_task", {"name": "agent.other.secret-job"}),
            ("trigger_task", {"name": "agent.other.secret-job"}),
            ("resume_task", {"name": "backup.."}),
            ("list_runs", {"task": "agent.other.secret-job"}),
            ("get_run", {"run_id": run["id"]}),
            ("next_runs", {"name": "../backup"}),
            # a short name is always read in the namespace: not the owner's backup
            ("get_task", {"name": "backup"}),
            # names of other tasks never leak through a suggestion
            ("get_task", {"name": "secret-job"}),
            ("schedule_task", {"name": "agent.other.new", "every": "1h", "http": HOOK}),
        ],
    )
    messages = [refusal(r) for r in results]
    for message, verb in zip(
        messages[:5], ["see", "change", "change", "change", "change"], strict=True
    ):
        assert message.startswith(
            f"task 'agent.other.secret-job' is outside your namespace agent.claude.* and you "
            f"may not {verb} it"
        ), message
    assert messages[5].startswith("task 'backup..' is outside your namespace")
    assert messages[6].startswith("task 'agent.other.secret-job' is outside your namespace")
    assert messages[7] == f"no run with id {run['id']}; list_runs shows yours"
    assert messages[8].startswith("task '../backup' is outside your namespace")
    assert messages[9] == "no task named 'agent.claude.backup'; list_tasks shows yours"
    assert messages[10] == "no task named 'agent.claude.secret-job'; list_tasks shows yours"
    assert messages[11].startswith("name: 'agent.other.new' cannot name a new task")
    assert all("agent.other" not in m for m in messages[9:11])
    check()
    assert service.runs("agent.other.secret-job") != others  # only the owner's trigger


def test_grants_open_other_tasks_to_read_or_to_change(service: Service) -> None:
    agents = agents_config(
        reader={"see": ["*"]}, ops={"change": ["backup"], "actions": ["http", "command"]}
    )
    reader = server_for(service, agents, "reader")
    names = {t["name"] for t in ok(call(reader, "list_tasks"))["tasks"]}
    assert names == {"agent.other.secret-job", "backup"}
    assert ok(call(reader, "get_task", name="backup"))["name"] == "backup"
    # with '*' granted a short name still finds the agent's own task when no other has it
    ok(call(reader, "schedule_task", name="mine", every="1h", http=HOOK))
    assert ok(call(reader, "get_task", name="mine"))["name"] == "agent.reader.mine"
    assert refusal(call(reader, "pause_task", name="backup")).startswith(
        "task 'backup' is visible to you but not yours to change"
    )
    ops = server_for(service, agents, "ops")
    assert ok(call(ops, "pause_task", name="backup", reason="disk swap"))["paused"]
    assert ok(call(ops, "resume_task", name="backup"))["paused"] is False
    assert [(e["actor"], e["via"]) for e in service.audit("backup")][:2] == [("ops", "mcp")] * 2
    assert ok(call(ops, "cancel_task", name="backup"))["cancelled"]


def test_forbidden_actions_are_refused_until_granted(service: Service) -> None:
    default = server_for(service, agents_config())
    check = unchanged(service)
    results = calls(
        default,
        [
            ("schedule_task", {"name": "sh", "every": "1h", "command": ["rm", "-rf", "/"]}),
            ("schedule_task", {"name": "py", "every": "1h", "python": {"function": "os:system"}}),
        ],
    )
    assert refusal(results[0]) == (
        "command: agent 'claude' may not create command tasks (it runs code on the owner's "
        "machine, which must be granted); allowed: http, llm"
    )
    assert refusal(results[1]).startswith("python: agent 'claude' may not create python tasks")
    check()
    ok(call(default, "schedule_task", name="web", every="1h", http=HOOK))
    assert refusal(call(default, "update_task", name="web", command=["true"])).startswith(
        "command: agent 'claude' may not create command tasks"
    )
    http_only = server_for(service, agents_config(claude={"actions": ["http"]}))
    assert refusal(
        call(
            http_only,
            "schedule_task",
            name="ask",
            every="1h",
            llm={"model": "small", "prompt": "p"},
        )
    ) == (
        "llm: agent 'claude' may not create llm tasks (the owner did not grant it); allowed: http"
    )
    granted = server_for(service, agents_config(claude={"actions": ["command", "python"]}))
    echo = ok(call(granted, "schedule_task", name="echo", every="1h", command=["echo", "hi"]))
    assert echo["action"] == "command" and echo["spec"]["command"] == ["echo", "hi"]
    py = ok(
        call(
            granted,
            "schedule_task",
            name="py",
            every="1h",
            python={"function": "json:dumps", "args": [[1, 2]]},
        )
    )
    assert py["spec"]["python"] == "json:dumps" and py["spec"]["args"] == [[1, 2]]
    assert [t["name"] for t in service.list_tasks() if t["name"].startswith("agent.claude")] == [
        "agent.claude.echo",
        "agent.claude.py",
        "agent.claude.web",
    ]


def test_no_more_tasks_than_max_tasks(service: Service) -> None:
    server = server_for(service, agents_config(claude={"max_tasks": 2}))
    first, second, third = calls(
        server,
        [("schedule_task", {"name": n, "every": "1h", "http": HOOK}) for n in ("a", "b", "c")],
    )
    ok(first)
    ok(second)
    assert refusal(third) == (
        "agent 'claude' has 2 task(s) in agent.claude.*, the most it may have (2); cancel one "
        "first (cancel_task)"
    )
    with pytest.raises(NotFoundError):  # no task, no change recorded under the name
        service.audit("agent.claude.c")
    ok(call(server, "cancel_task", name="a"))
    ok(call(server, "schedule_task", name="c", every="1h", http=HOOK))
    # paused tasks count: they are still the agent's
    ok(call(server, "pause_task", name="b"))
    assert refusal(call(server, "schedule_task", name="d", every="1h", http=HOOK)).startswith(
        "agent 'claude' has 2 task(s)"
    )


def test_no_schedule_shorter_than_min_period(service: Service) -> None:
    server = server_for(service, agents_config(claude={"min_period": "10m"}))
    check = unchanged(service)
    results = calls(
        server,
        [
            ("schedule_task", {"name": "fast", "every": "30s", "http": HOOK}),
            ("schedule_task", {"name": "minutely", "cron": "* * * * *", "http": HOOK}),
            ("schedule_task", {"name": "pair", "cron": "0,5 * * * *", "http": HOOK}),
        ],
    )
    assert refusal(results[0]) == (
        "every 30s more often than agent 'claude' may schedule (at most once every 10m); "
        "choose a longer interval"
    )
    assert refusal(results[1]).startswith("cron '* * * * *' fires every 1m, more often")
    assert refusal(results[2]).startswith("cron '0,5 * * * *' fires every 5m, more often")
    check()
    ok(call(server, "schedule_task", name="ten", cron="*/10 * * * *", http=HOOK))
    ok(call(server, "schedule_task", name="once", at="2026-06-01T00:01", http=HOOK))  # one-shot
    before = service.show_task("agent.claude.ten")["spec"]
    assert refusal(call(server, "update_task", name="ten", every="1m")).startswith(
        "every 1m more often than agent 'claude' may schedule"
    )
    assert service.show_task("agent.claude.ten")["spec"] == before
    assert ok(call(server, "update_task", name="ten", every="15m"))["schedule"] == "every 15 min"


def test_runs_started_by_hand_count_against_min_period(service: Service, clock: FakeClock) -> None:
    server = server_for(service, agents_config(claude={"min_period": "10m"}))
    ok(call(server, "schedule_task", name="job", every="1h", http=HOOK))
    first = ok(call(server, "trigger_task", name="job"))
    check = unchanged(service)
    runs = len(service.runs("agent.claude.job"))
    clock.advance(timedelta(minutes=4))
    assert refusal(call(server, "trigger_task", name="job")) == (
        "agent.claude.job was started by hand at 2026-06-01T00:00:00+00:00; agent 'claude' "
        "may start a task at most once every 10m, so not before 2026-06-01T00:10:00+00:00"
    )
    check()
    assert len(service.runs("agent.claude.job")) == runs
    clock.advance(timedelta(minutes=6))
    assert ok(call(server, "trigger_task", name="job"))["id"] != first["id"]


def test_a_used_up_budget_is_shown_and_refuses_a_trigger(
    service: Service, clock: FakeClock
) -> None:
    from agentcron.model.budget import Budget, BudgetScope
    from agentcron.policies.budget import BudgetRules

    agents = agents_config(claude={"budget": {"runs_per_day": 2}, "min_period": "0s"})
    service.defaults = Defaults(
        "UTC", None, BudgetRules(agents=(("claude", "agent.claude.", Budget(runs_per_day=2)),))
    )
    server = server_for(service, agents)
    ok(call(server, "schedule_task", name="job", every="1h", http=HOOK))
    limits = ok(call(server, "list_tasks"))["limits"]
    assert limits["budget"]["runs"] == 0 and limits["budget"]["runs_per_day"] == 2
    # the engine's gate spends from the budget as runs start (two of them today)
    scope = BudgetScope("agent:claude", "agent claude", Budget(runs_per_day=2))
    assert service.store.reserve_run([scope], "2026-06-01") is None
    assert service.store.reserve_run([scope], "2026-06-01") is None
    task = ok(call(server, "get_task", name="job"))
    assert [(b["scope"], b["runs"], b["used_up"]) for b in task["budget"]] == [
        ("agent:claude", 2, "runs")
    ]
    check = unchanged(service)
    runs = len(service.runs("agent.claude.job"))
    assert refusal(call(server, "trigger_task", name="job")) == (
        "agent.claude.job: the daily budget of agent claude is used up (2/2 runs today); a run "
        "started now would be skipped. It resets at 2026-06-02T00:00:00+00:00; only the owner "
        "can raise it"
    )
    check()
    assert len(service.runs("agent.claude.job")) == runs
    # an agent cannot give itself a budget: schedule_task and update_task take none
    assert refusal(call(server, "update_task", name="job", budget={"runs_per_day": 99}))
    clock.advance(timedelta(days=1))
    assert ok(call(server, "trigger_task", name="job"))["status"] == "pending"


def test_inside_a_scheduled_run_an_agent_may_not_start_more_work(service: Service) -> None:
    outside = server_for(service, agents_config())
    ok(call(outside, "schedule_task", name="job", every="1h", http=HOOK))
    ok(call(outside, "pause_task", name="job"))
    inside = server_for(service, agents_config(), in_run=True)
    check = unchanged(service)
    results = calls(
        inside,
        [
            ("schedule_task", {"name": "child", "every": "1h", "http": HOOK}),
            ("update_task", {"name": "job", "every": "2h"}),
            ("resume_task", {"name": "job"}),
            ("trigger_task", {"name": "job"}),
        ],
    )
    messages = [refusal(r) for r in results]
    for message, what in zip(
        messages, ["schedule tasks", "change tasks", "resume tasks", "start runs"], strict=True
    ):
        assert message.startswith(
            f"you run inside a scheduled run (AGENTCRON_SLOT is set), and agent 'claude' may "
            f"not {what} from there (the owner can allow it with "
            "agents.clients.claude.from_runs: true)"
        ), message
    check()
    limits = ok(call(inside, "list_tasks"))["limits"]
    assert limits["inside_run"] and not limits["may_schedule"]
    assert ok(call(inside, "get_task", name="job"))["paused"]
    assert ok(call(inside, "cancel_task", name="job"))["cancelled"]  # less work is fine
    allowed = server_for(service, agents_config(claude={"from_runs": True}), in_run=True)
    assert ok(call(allowed, "schedule_task", name="child", every="1h", http=HOOK))
    assert ok(call(allowed, "list_tasks"))["limits"]["may_schedule"]


@pytest.mark.parametrize(
    ("args", "where"),
    [
        ({"http": {"url": "https://x.example.com/${HOME}"}}, "http.url"),
        (
            {"http": {**HOOK, "headers": {"Authorization": "Bearer ${API_TOKEN}"}}},
            "http.headers.Authorization",
        ),
        ({"http": {**HOOK, "body": {"key": "${OPENAI_API_KEY}"}}}, "http.body.key"),
        ({"llm": {"model": "small", "prompt": "say ${SMALL_KEY}"}}, "llm.prompt"),
        ({"http": HOOK, "deliver": ["json://${HOOK_HOST}/x"]}, "deliver[0]"),
        ({"http": HOOK, "timeout": "${T}"}, "timeout"),
        ({"http": HOOK, "description": "costs ${X}"}, "description"),
    ],
)
def test_placeholders_are_refused_wherever_an_agent_puts_them(
    service: Service, args: dict[str, Any], where: str
) -> None:
    check = unchanged(service)
    server = server_for(service, agents_config())
    message = refusal(call(server, "schedule_task", name="leak", every="1h", **args))
    assert message.startswith(f"{where}: ${{…}} placeholders are the owner's"), message
    check()


def test_a_literal_dollar_brace_is_written_as_the_escape(service: Service) -> None:
    server = server_for(service, agents_config())
    made = ok(
        call(
            server,
            "schedule_task",
            name="tmpl",
            every="1h",
            http={**HOOK, "method": "POST", "body": "costs $${PRICE} and $5"},
        )
    )
    assert made["spec"]["http"]["body"] == "costs $${PRICE} and $5"
    assert refusal(call(server, "update_task", name="tmpl", http={"url": "https://${H}/"}))
    assert (
        service.show_task("agent.claude.tmpl")["spec"]["http"]["body"] == "costs $${PRICE} and $5"
    )


def test_models_are_named_by_profile_never_by_address_or_key(service: Service) -> None:
    agents = agents_config(claude={"models": ["small"]})
    server = server_for(service, agents)
    check = unchanged(service)
    results = calls(
        server,
        [
            (
                "schedule_task",
                {
                    "name": "ask",
                    "every": "1h",
                    "llm": {
                        "model": "small",
                        "prompt": "p",
                        "base_url": "https://attacker.example.com/v1",
                    },
                },
            ),
            (
                "schedule_task",
                {
                    "name": "ask",
                    "every": "1h",
                    "llm": {"model": "small", "prompt": "p", "api_key_env": "AWS_SECRET_KEY"},
                },
            ),
            (
                "schedule_task",
                {"name": "ask", "every": "1h", "llm": {"model": "big", "prompt": "p"}},
            ),
            (
                "schedule_task",
                {"name": "ask", "every": "1h", "llm": {"model": "gpt-4o", "prompt": "p"}},
            ),
        ],
    )
    messages = [refusal(r) for r in results]
    assert messages[0] == (
        "llm.base_url: the model's address and key are the owner's; name a model profile in "
        "llm.model instead (profiles: small)"
    )
    assert messages[1].startswith("llm.api_key_env: the model's address and key are the owner's")
    assert messages[2] == "llm.model: no model profile 'big' for you (profiles: small)"
    assert messages[3] == "llm.model: no model profile 'gpt-4o' for you (profiles: small)"
    check()
    made = ok(
        call(server, "schedule_task", name="ask", every="1h", llm={"model": "small", "prompt": "p"})
    )
    assert made["model_profile"] == "small"
    assert made["spec"]["llm"]["base_url"] == "https://llm.example.com/v1"
    assert ok(call(server, "list_tasks"))["limits"]["model_profiles"] == {
        "small": "cheap and quick"
    }


# ---- the agents: section ------------------------------------------------------------------


def test_the_agents_section_defaults_are_the_safe_ones() -> None:
    agents = AgentsConfig.model_validate({"clients": {"claude": None}})
    client = agents.client("claude")
    assert client.actions == ["http", "llm"]  # command and python must be granted
    assert not client.from_runs and client.max_tasks == 20
    assert client.prefix("claude") == "agent.claude."
    assert client.resolved_token() is None  # stdio only
    with pytest.raises(KeyError, match=r"no agent 'bob' under agents.clients in the config"):
        agents.client("bob")


def test_the_agents_section_is_checked_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "agentcron.yaml"
    path.write_text(
        "timezone: UTC\n"
        "tasks:\n"
        "  beat: {every: 1h, command: [echo, hi]}\n"
        "agents:\n"
        "  models:\n"
        "    small: {base_url: 'ftp://x', model: m}\n"
        "  clients:\n"
        "    helper:\n"
        "      token: short\n"
        "      actions: [http, shell]\n"
        "      namespace: 'has space'\n"
        "defaults:\n"
        "  retries: lots\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_with_agents(path)
    shown = str(caught.value)
    assert f"{path}:6: agents.models.small.base_url: must be an http:// or https:// URL" in shown
    assert f"{path}:9: agents.clients.helper.token: too short to guess-proof" in shown
    assert (
        f"{path}:10: agents.clients.helper.actions[1]: must be 'command', 'http', 'llm' or "
        "'python' (got 'shell')"
    ) in shown
    assert f"{path}:11: agents.clients.helper.namespace: 'has space' cannot start" in shown
    path.write_text(
        "defaults:\n  retries: lots\nagents:\n  clients:\n    a: {token: 0123456789abcdefXY}\n"
    )
    with pytest.raises(ConfigError, match=r"agentcron.yaml:2: defaults.retries"):
        load_with_agents(path)  # the rest of the file keeps its line numbers
    path.write_text(
        "agents:\n  clients:\n"
        "    a: {token: 0123456789abcdefXY}\n    b: {token: 0123456789abcdefXY}\n"
        "    c: {models: [huge]}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_with_agents(path)
    # the cross-check names the key at fault, and the problem points at its line
    assert f"{path}:4: agents.clients.b.token: the same token as clients.a" in str(caught.value)
    path.write_text("timezone: UTC\nagents:\n  clients:\n    a: {token_env: A_TOKEN}\n")
    loaded, agents = load_with_agents(path)
    assert loaded.timezone == "UTC" and agents.client("a").token_env == "A_TOKEN"
    with pytest.raises(ValueError, match=r"agents.clients.a.token_env: A_TOKEN is not set"):
        agents.tokens()


# ---- inside a scheduled run ---------------------------------------------------------------


def _proc(root: Path, pid: int, ppid: int, environ: dict[str, str]) -> None:
    folder = root / str(pid)
    folder.mkdir(parents=True)
    (folder / "stat").write_text(f"{pid} (odd (name) x) S {ppid} {pid} 0 0\n")
    (folder / "environ").write_bytes(
        b"".join(f"{k}={v}".encode() + b"\0" for k, v in environ.items())
    )


def test_a_run_is_found_in_the_environment_or_in_an_ancestors(tmp_path: Path) -> None:
    assert scheduled_run_slot({"AGENTCRON_SLOT": "42"}) == "42"
    proc = tmp_path / "proc"
    # daemon (10) -> agent started by run 7 (20) -> its MCP client (30) -> this server (40)
    _proc(proc, 10, 1, {"PATH": "/bin"})
    _proc(proc, 20, 10, {"PATH": "/bin", "AGENTCRON_SLOT": "7", "AGENTCRON_TASK": "t"})
    _proc(proc, 30, 20, {"PATH": "/bin"})
    _proc(proc, 40, 30, {"PATH": "/bin"})
    assert scheduled_run_slot({}, pid=40, proc=proc) == "7"
    assert scheduled_run_slot({}, pid=10, proc=proc) is None
    assert scheduled_run_slot({}, pid=99, proc=proc) is None  # no such process
    assert scheduled_run_slot({"AGENTCRON_SLOT": " "}, pid=10, proc=proc) is None
    # this test process descends from no run (pytest's own environment has none)
    assert scheduled_run_slot({}) is None
