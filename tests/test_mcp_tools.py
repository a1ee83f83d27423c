"""Every MCP tool through the SDK's in-process ``Client``: typed results (structured
content), times echoed back resolved in the task's zone, runs read with their
attempts and the redacted tail of their output, every change in the audit trail as
the agent's ``via mcp`` (in the database and in ``agentcron audit``), and bad input
answered with a tool error that names what is wrong and records nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcron.clock import FakeClock
from agentcron.service import Defaults, Service
from harness import Harness
from mcp_rig import (
    agents_config,
    call,
    calls,
    listed,
    ok,
    refusal,
    server_for,
    unchanged,
)

TOOLS = {
    "list_tasks",
    "get_task",
    "schedule_task",
    "update_task",
    "pause_task",
    "resume_task",
    "cancel_task",
    "trigger_task",
    "list_runs",
    "get_run",
    "next_runs",
    "redeliver_run",
}
HOOK = {"url": "https://hooks.example.com/ping"}
SECRET = "sk-proj-abcdefghijklmnopqrstuvwx"


@pytest.fixture
def service(sqlite_store: Any, clock: FakeClock, home: Path) -> Service:
    # the fake clock stands at 2026-06-01T00:00Z
    return Service(sqlite_store, home, clock, Defaults(timezone="Europe/Berlin"))


def test_every_tool_is_listed_with_its_schemas_and_what_it_refuses(service: Service) -> None:
    tools = listed(server_for(service, agents_config()))
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.output_schema is not None and tool.output_schema.get("properties")
        assert tool.description and tool.input_schema["type"] == "object"
    schedule = tools["schedule_task"]
    assert {"name", "cron", "every", "at", "timezone", "http", "llm", "deliver", "paused"} <= set(
        schedule.input_schema["properties"]
    )
    assert "never base_url or api_key_env" in (schedule.description or "")
    assert "min_period" in (schedule.description or "")
    assert "never waits" in (tools["trigger_task"].description or "")
    assert tools["list_tasks"].annotations and tools["list_tasks"].annotations.read_only_hint
    cancel = tools["cancel_task"].annotations
    assert cancel is not None and cancel.destructive_hint


def test_schedule_echoes_every_time_resolved_in_the_tasks_zone(service: Service) -> None:
    server = server_for(service, agents_config())
    digest, remind, offset, fold = (
        ok(r)
        for r in calls(
            server,
            [
                (
                    "schedule_task",
                    {
                        "name": "digest",
                        "cron": "30 7 * * *",
                        "timezone": "America/New_York",
                        "http": HOOK,
                    },
                ),
                # naive: read in the task's zone (the owner's default, Europe/Berlin)
                ("schedule_task", {"name": "remind", "at": "2026-06-02T09:00", "http": HOOK}),
                (
                    "schedule_task",
                    {"name": "offset", "at": "2026-06-02T09:00:00+00:00", "http": HOOK},
                ),
                # 02:30 happens twice on 2026-10-25 in Berlin: the first one, said so
                ("schedule_task", {"name": "fold", "at": "2026-10-25T02:30", "http": HOOK}),
            ],
        )
    )
    assert digest["name"] == "agent.claude.digest" and digest["timezone"] == "America/New_York"
    assert digest["next_run"] == "2026-06-01T07:30:00-04:00"
    assert [f["local"] for f in digest["upcoming"]] == [
        "2026-06-01T07:30:00-04:00",
        "2026-06-02T07:30:00-04:00",
        "2026-06-03T07:30:00-04:00",
    ]
    assert remind["timezone"] == "Europe/Berlin"
    assert remind["next_run"] == "2026-06-02T09:00:00+02:00"
    assert remind["upcoming"][0]["at"] == "2026-06-02T07:00:00+00:00"
    assert offset["next_run"] == "2026-06-02T11:00:00+02:00"
    assert fold["upcoming"][0]["local"] == "2026-10-25T02:30:00+02:00"
    assert fold["upcoming"][0]["note"]

    nxt = ok(call(server, "next_runs", name="digest", count=2, start="2026-06-10T08:00"))
    assert nxt["task"] == "agent.claude.digest"
    assert nxt["start"] == "2026-06-10T08:00:00-04:00"  # naive: the task's wall time
    assert [f["local"] for f in nxt["fires"]] == [
        "2026-06-11T07:30:00-04:00",
        "2026-06-12T07:30:00-04:00",
    ]
    utc = ok(call(server, "next_runs", name="digest", count=1, start="2026-06-10T12:00Z"))
    assert utc["start"] == "2026-06-10T08:00:00-04:00"
    assert utc["fires"][0]["local"] == "2026-06-11T07:30:00-04:00"
    now = ok(call(server, "next_runs", name="agent.claude.digest", count=1))
    assert now["start"] == "2026-05-31T20:00:00-04:00"  # the service's clock


def test_list_and_get_show_the_agents_tasks_and_its_limits(service: Service) -> None:
    service.add_task("backup", {"cron": "0 3 * * *", "command": ["true"]})  # the owner's
    server = server_for(service, agents_config())
    made = calls(
        server,
        [
            ("schedule_task", {"name": "digest", "every": "1h", "http": HOOK}),
            (
                "schedule_task",
                {
                    "name": "summary",
                    "cron": "0 8 * * 1",
                    "llm": {"model": "small", "prompt": "Summarise the week"},
                    "deliver": ["json://hooks.example.com/summary"],
                    "description": "weekly summary",
                },
            ),
        ],
    )
    for result in made:
        ok(result)
    listing = ok(call(server, "list_tasks"))
    assert [t["name"] for t in listing["tasks"]] == ["agent.claude.digest", "agent.claude.summary"]
    assert listing["limits"] == {
        "agent": "claude",
        "namespace": "agent.claude",
        "tasks": 2,
        "max_tasks": 20,
        "min_period": "5m",
        "actions": ["http", "llm"],
        "model_profiles": {"small": "cheap and quick", "big": "big-2"},
        "see": [],
        "change": [],
        "inside_run": False,
        "may_schedule": True,
        "budget": None,  # the owner set no budget for this agent
    }
    summary = ok(call(server, "get_task", name="summary"))
    assert summary == ok(call(server, "get_task", name="agent.claude.summary"))
    assert summary["action"] == "llm" and summary["model_profile"] == "small"
    assert summary["spec"]["llm"] == {
        "base_url": "https://llm.example.com/v1",
        "model": "small-1",
        "api_key_env": "SMALL_KEY",  # the name of the variable, not its value
        "prompt": "Summarise the week",
    }
    assert summary["spec"]["deliver"] == ["json://hooks.example.com/summary"]
    assert summary["description"] == "weekly summary" and summary["recent_runs"] == []
    assert summary["next_run"] == "2026-06-01T08:00:00+02:00"  # 2026-06-01 is a Monday
    later = ok(
        call(server, "schedule_task", name="later", cron="0 8 * * *", http=HOOK, paused=True)
    )
    assert later["paused"] is True and later["next_run"] is None and later["upcoming"] == []


def test_update_pause_resume_trigger_cancel_all_audited_as_the_agent(
    service: Service, home: Path, tmp_path: Path
) -> None:
    server = server_for(service, agents_config())
    results = calls(
        server,
        [
            ("schedule_task", {"name": "job", "every": "1h", "http": HOOK, "description": "x"}),
            ("update_task", {"name": "job", "cron": "0 9 * * *"}),
            ("update_task", {"name": "job", "llm": {"model": "big", "prompt": "hello"}}),
            ("update_task", {"name": "job", "description": "", "timeout": "10m"}),
            ("pause_task", {"name": "job", "reason": "holiday"}),
            ("resume_task", {"name": "job"}),
            ("trigger_task", {"name": "job"}),
            ("cancel_task", {"name": "job"}),
            ("list_runs", {"task": "job"}),
            ("get_task", {"name": "job"}),
        ],
    )
    made, cron, llm, cleared, paused, resumed, run, cancelled, history = (
        ok(r) for r in results[:-1]
    )
    # the cancelled task's runs stay readable
    assert [r["id"] for r in history["runs"]] == [run["id"]]
    assert made["schedule"] == "every 1 hour"
    assert cron["schedule"] == "0 9 * * *" and "every" not in cron["spec"]
    assert cron["next_run"] == "2026-06-01T09:00:00+02:00"
    assert llm["action"] == "llm" and "http" not in llm["spec"]
    assert llm["spec"]["llm"]["base_url"] == "https://big.example.com/v1"
    assert llm["model_profile"] == "big"
    assert cleared["description"] is None and cleared["spec"]["timeout"] == 600.0
    assert paused["paused"] and paused["pause_reason"] == "holiday"
    assert not resumed["paused"] and resumed["pause_reason"] is None
    assert run["status"] == "pending" and run["trigger"] == "manual" and run["id"] > 0
    assert run["task"] == "agent.claude.job"
    # no daemon here: the agent is told so, as the CLI and the API say (probe: it was
    # told nothing, and "pending" read as on its way)
    assert run["note"].startswith("the daemon is not running"), run["note"]
    assert cancelled == {"name": "agent.claude.job", "cancelled": True}
    assert refusal(results[-1]) == "no task named 'agent.claude.job'; you have no tasks yet"

    trail = list(reversed(service.audit("agent.claude.job")))
    assert [e["action"] for e in trail] == [
        "task.create",
        "task.update",
        "task.update",
        "task.update",
        "task.pause",
        "task.resume",
        "task.trigger",
        "task.delete",
    ]
    assert {(e["actor"], e["via"]) for e in trail} == {("claude", "mcp")}
    assert trail[1]["before"]["every"] == 3600.0 and trail[1]["after"]["cron"] == "0 9 * * *"
    assert trail[4]["after"] == {"paused": True, "reason": "holiday"}
    assert trail[6]["after"] == {"run": run["id"]}

    from agentcron.interfaces.cli import app

    config = tmp_path / "none.yaml"  # no config file: the CLI reads the database as it is
    result = CliRunner().invoke(
        app, ["audit", "agent.claude.job", "--home", str(home), "--config", str(config), "--json"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert [e["action"] for e in shown] == [e["action"] for e in reversed(trail)]
    assert {(e["actor"], e["via"]) for e in shown} == {("claude", "mcp")}
    table = CliRunner().invoke(
        app, ["audit", "agent.claude.job", "--home", str(home), "--config", str(config)]
    )
    assert "mcp" in table.output and "claude" in table.output


def chatty() -> str:
    return "\n".join(f"line {i:04d} of the report" for i in range(400)) + f"\nkey: {SECRET}\nend"


def broken() -> str:
    raise RuntimeError("disk full")


def test_runs_with_attempts_and_the_redacted_tail_of_the_output(
    sqlite_store: Any, clock: FakeClock, home: Path
) -> None:
    rig = Harness(sqlite_store, clock, home)
    # tasks the owner put in the agent's namespace, run by the real engine
    rig.add("agent.claude.chatty", chatty, every="10m", retries=0)
    rig.add("agent.claude.broken", broken, every="15m", retries=0)
    rig.add("backup", chatty, every="10m", retries=0)
    asyncio.run(rig.run_until(clock.now() + timedelta(minutes=30), timedelta(minutes=5)))
    server = server_for(rig.service, agents_config())

    mine = ok(call(server, "list_runs"))["runs"]
    assert {r["task"] for r in mine} == {"agent.claude.chatty", "agent.claude.broken"}
    stamps = [(r["scheduled_for"], r["id"]) for r in mine]
    assert len(mine) == 5 and sorted(stamps, reverse=True) == stamps
    assert len(ok(call(server, "list_runs", limit=2))["runs"]) == 2
    failed = ok(call(server, "list_runs", status="failed"))["runs"]
    assert failed and {r["task"] for r in failed} == {"agent.claude.broken"}
    chatty_runs = ok(call(server, "list_runs", task="chatty", status="succeeded"))["runs"]
    assert len(chatty_runs) == 3

    detail = ok(call(server, "get_run", run_id=chatty_runs[0]["id"]))
    assert detail["status"] == "succeeded" and len(detail["attempts_detail"]) == 1
    assert detail["attempts_detail"][0]["status"] == "succeeded"
    tail = detail["output_tail"]
    assert detail["output_truncated"] and len(tail) == 4000
    assert tail.endswith("end\n") or tail.endswith("end")
    assert SECRET not in tail and "[REDACTED]" in tail and "line 0399" in tail
    assert "line 0000" not in tail

    crash = ok(call(server, "get_run", run_id=failed[0]["id"]))
    attempt = crash["attempts_detail"][0]
    assert attempt["error_class"] and "disk full" in (attempt["error"] or "")
    assert crash["output_truncated"] is False


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            {"cron": "61 * * * *", "http": HOOK},
            "task 'agent.claude.x' not accepted: cron: invalid cron expression "
            "'61 * * * *': minute field '61' is not valid (use 0-59",
        ),
        ({"every": "5q", "http": HOOK}, "every: not a duration: '5q'"),
        ({"at": "2026-13-01T08:00", "http": HOOK}, "at: must be a valid datetime"),
        (
            {"at": "2026-05-31T08:00", "http": HOOK},
            "at: 2026-05-31T08:00:00 is past (it is 2026-06-01T02:00:00+02:00 now in the "
            "task's zone); give a later time",
        ),
        (
            {"cron": "0 * * * *", "timezone": "Europe/Berln", "http": HOOK},
            "timezone: unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)",
        ),
        ({"cron": "0 * * * *", "every": "1h", "http": HOOK}, "exactly one schedule"),
        ({"http": HOOK}, "give exactly one schedule: cron, every or at"),
        ({"cron": "0 * * * *"}, "give exactly one action: http, llm"),
        (
            {"cron": "0 * * * *", "http": HOOK, "llm": {"model": "small", "prompt": "p"}},
            "give exactly one action",
        ),
        ({"cron": "0 * * * *", "http": {"url": "ftp://x"}}, "http.url: "),
        ({"cron": "0 * * * *", "http": HOOK, "timeout": "0s"}, "timeout: must be positive"),
        ({"cron": "0 * * * *", "http": HOOK, "deliver": ["nope://x"]}, "deliver[0]: "),
        ({"cron": "0 * * * *", "http": {"link": "https://x"}}, "http.link"),
        (
            {"cron": "0 * * * *", "http": HOOK, "description": "d" * 1_000_000},
            "description: a description is at most 2,000 characters (this one has 1,000,000)",
        ),
    ],
)
def test_bad_input_is_a_tool_error_naming_it_and_records_nothing(
    service: Service, args: dict[str, Any], words: str
) -> None:
    check = unchanged(service)
    message = refusal(call(server_for(service, agents_config()), "schedule_task", name="x", **args))
    assert words in message
    check()


def test_reads_and_changes_of_what_is_not_there_say_so(service: Service) -> None:
    server = server_for(service, agents_config())
    ok(call(server, "schedule_task", name="digest", every="1h", http=HOOK))
    check = unchanged(service)
    results = calls(
        server,
        [
            ("get_task", {"name": "digets"}),
            ("get_run", {"run_id": 999}),
            ("list_runs", {"limit": 0}),
            ("list_runs", {"status": "bogus"}),
            ("next_runs", {"name": "digest", "start": "tomorrow"}),
            ("next_runs", {"name": "digest", "count": 51}),
            ("update_task", {"name": "digest"}),
            ("pause_task", {"name": "digest", "reason": "two\nlines"}),
            ("schedule_task", {"name": "digest", "every": "1h", "http": HOOK}),
            ("schedule_task", {"name": "has space", "every": "1h", "http": HOOK}),
            ("cancel_task", {"name": "nope"}),
            ("trigger_task", {"name": ""}),
            ("get_run", {"run_id": 99999999999999999999999}),  # was an error without words
        ],
    )
    messages = [refusal(r) for r in results]
    assert messages[-1] == "no run with id 99999999999999999999999; list_runs shows yours"
    assert (
        messages[0] == "no task named 'agent.claude.digets' (did you mean 'agent.claude.digest'?)"
    )
    assert messages[1] == "no run with id 999; list_runs shows yours"
    assert messages[2] == "limit must be between 1 and 100, got 0"
    assert messages[3].startswith("status: unknown run status 'bogus'; choose from pending")
    assert messages[4].startswith("start: 'tomorrow' is not an ISO time: give 2026-06-01T08:00")
    assert messages[5] == "count must be between 1 and 50, got 51"
    assert messages[6].startswith("nothing to change: give a schedule")
    assert messages[7] == "reason: one line of text, without control characters"
    assert messages[8].startswith("task 'agent.claude.digest' already exists")
    assert messages[9].startswith("name: 'has space' cannot name a new task")
    assert messages[10] == "no task named 'agent.claude.nope'; list_tasks shows yours"
    assert messages[11] == "name: give a task name (list_tasks shows yours)"
    check()


def test_a_name_far_too_long_is_not_repeated_whole_in_its_refusal(service: Service) -> None:
    """Outside-in probe: a 5,000-character name came back whole in the refusal."""
    check = unchanged(service)
    server = server_for(service, agents_config())
    message = refusal(call(server, "schedule_task", name="n" * 5000, every="1h", http=HOOK))
    assert "is too long: a task name is at most 100 characters" in message
    assert "n" * 61 not in message and "…" in message
    check()


@pytest.mark.parametrize(
    ("tool", "args", "words"),
    [
        (
            "schedule_task",
            {"name": "x", "cron": "0 * * * *", "http": HOOK, "timeout": -5},
            "arguments not accepted: timeout: must be text such as '30s' or '5m' (got a number)",
        ),
        ("get_run", {"run_id": "abc"}, "arguments not accepted: run_id: must be a "),
        ("get_task", {"name": 123}, "arguments not accepted: name: must be text (got a number)"),
        ("get_task", {}, "arguments not accepted: name: is required"),
        # a number or a flag written as text is refused, not read as one (it was)
        ("list_runs", {"limit": "5"}, "arguments not accepted: limit: must be a whole number"),
        (
            "schedule_task",
            {"name": "x", "every": "1h", "http": HOOK, "paused": "yes"},
            "arguments not accepted: paused: must be true or false",
        ),
    ],
)
def test_arguments_of_the_wrong_type_are_said_in_one_line_naming_them(
    service: Service, tool: str, args: dict[str, Any], words: str
) -> None:
    """Outside-in probe: these came back as pydantic's own text, with its links."""
    check = unchanged(service)
    message = refusal(call(server_for(service, agents_config()), tool, **args))
    assert message.startswith(words), message
    assert "pydantic" not in message and "validation error" not in message
    check()


@pytest.mark.parametrize(
    ("tool", "args", "words"),
    [
        (
            "schedule_task",
            {"name": "typo", "every": "10m", "command": ["true"], "timout": "5s"},
            "arguments not accepted: timout: is not an argument of this tool "
            "(did you mean 'timeout'?)",
        ),
        (
            "schedule_task",
            {"name": "r", "every": "10m", "command": ["true"], "retries": 0},
            "arguments not accepted: retries: is not an argument of this tool (it takes ",
        ),
        (
            "get_task",
            {"name": "x", "nmae": "y"},
            "arguments not accepted: nmae: is not an argument of this tool (did you mean 'name'?)",
        ),
        (
            "list_tasks",
            {"nonsense": 1},
            "arguments not accepted: nonsense: is not an argument of this tool (it takes none)",
        ),
        (
            "schedule_task",
            {"name": "h", "every": "1h", "http": {"url": "https://x.example", "bogus": 1}},
            "arguments not accepted: http.bogus: is not a key of http",
        ),
    ],
)
def test_an_argument_the_tool_does_not_take_is_refused_not_ignored(
    service: Service, tool: str, args: dict[str, Any], words: str
) -> None:
    """Outside-in probe: `timout` and `retries` were dropped without a word and the task
    was scheduled with a one-hour timeout and the default retries."""
    check = unchanged(service)
    message = refusal(call(server_for(service, agents_config()), tool, **args))
    assert message.startswith(words), message
    check()


def test_every_tool_says_it_takes_no_other_arguments(service: Service) -> None:
    server = server_for(service, agents_config())
    listed = asyncio.run(server.list_tools())
    assert listed and all(t.input_schema.get("additionalProperties") is False for t in listed)


def test_a_call_larger_than_a_megabyte_is_refused_on_every_transport(service: Service) -> None:
    """Probe: over stdio a 5 MB http.body was stored and echoed back (HTTP said 413)."""
    check = unchanged(service)
    hook = {**HOOK, "method": "POST", "body": "x" * (5 * 1024 * 1024)}
    message = refusal(
        call(
            server_for(service, agents_config()), "schedule_task", name="big", every="1h", http=hook
        )
    )
    assert "more than the 1048576 a call may carry" in message, message
    check()


def test_cancelling_a_config_file_task_points_to_the_tool_that_stops_it(
    service: Service,
) -> None:
    """The refusal said "or `agentcron pause` it": a CLI command, in a tool's answer."""
    from agentcron.model import TaskSource, TaskSpec

    now = service.clock.now()
    spec = TaskSpec(name="backup", every="1h", command=["true"])
    service.store.upsert_task(spec, TaskSource.FILE, now, service.first_fire(spec, now))
    server = server_for(service, agents_config(claude={"change": ["backup"]}))
    cancel, pause = calls(
        server,
        [("cancel_task", {"name": "backup"}), ("pause_task", {"name": "backup"})],
    )
    said = refusal(cancel)
    assert "agentcron" not in said.replace("'", "")  # no command, and no `agentcron ...`
    assert said == (
        "task 'backup' is defined in the owner's config file: an agent cannot delete it "
        "(the owner removes it from the file). To stop it firing, pause it with pause_task."
    )
    assert ok(pause)["paused"]
    assert service.store.get_task("backup") is not None


def test_refusals_name_tools_not_cli_commands() -> None:
    """The service's advice is data; a tool error says it as the tools that do it (the
    service wrote CLI commands, which MCP rewrote by text replacement)."""
    from mcp.server.mcpserver.exceptions import ToolError

    from agentcron.interfaces.mcp._core import answers
    from agentcron.service import Act, Advice, ConflictError, InvalidError

    with pytest.raises(ToolError) as told, answers():
        raise InvalidError(
            "at 2026-05-01T09:00+02:00 is in the past (now 2026-06-01T02:00+02:00): a "
            "one-shot runs once at a time to come",
            advice=Advice(Act.TRIGGER),
        )
    assert str(told.value).endswith("a time to come; trigger_task runs a task now")
    with pytest.raises(ToolError) as told, answers():
        raise ConflictError("defined in the config file", advice=Advice(Act.PAUSE, "backup"))
    assert str(told.value) == "defined in the config file; or stop it firing with pause_task"


def test_list_runs_says_how_to_read_a_cancelled_tasks_runs(service: Service) -> None:
    """Without task, list_runs reads the agent's current tasks: a cancelled task's runs
    were left out without a word; the description now says so and how to get them."""
    server = server_for(service, agents_config())
    description = listed(server)["list_runs"].description or ""
    assert "cancelled task's runs are kept but left out" in description
    assert "with task set to its name" in description
    results = calls(
        server,
        [
            ("schedule_task", {"name": "gone", "every": "1h", "http": HOOK}),
            ("schedule_task", {"name": "kept", "every": "1h", "http": HOOK}),
            ("trigger_task", {"name": "gone"}),
            ("trigger_task", {"name": "kept"}),
            ("cancel_task", {"name": "gone"}),
            ("list_runs", {}),
            ("list_runs", {"task": "agent.claude.gone"}),
        ],
    )
    gone_run, kept_run = ok(results[2]), ok(results[3])
    assert [r["id"] for r in ok(results[5])["runs"]] == [kept_run["id"]]
    assert [r["id"] for r in ok(results[6])["runs"]] == [gone_run["id"]]
