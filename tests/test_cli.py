"""The CLI as a person and a script use it: tables, --json shapes, clear errors."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcron.interfaces.cli import app
from agentcron.model import NodeInfo
from agentcron.store import open_store

RUNS_FIELDS = {
    "id",
    "task",
    "scheduled_for",
    "status",
    "attempts",
    "error_class",
    "error",
    "started_at",
    "finished_at",
    "next_attempt_at",
    "delivery_status",
    "output_path",
}
LIST_FIELDS = {
    "name",
    "schedule",
    "timezone",
    "paused",
    "next_run",
    "last_status",
    "health",
    "source",
}

CONFIG = """
timezone: Europe/Berlin
tasks:
  story:
    cron: "30 2 * * *"
    command: ["echo", "once upon a time"]
  beat:
    every: 15m
    command: ["true"]
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "home"))
    (tmp_path / "agentcron.yaml").write_text(CONFIG)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    return invoke


def test_list_json_has_the_documented_fields(cli) -> None:
    rows = json.loads(cli("list", "--json"))
    assert {r["name"] for r in rows} == {"story", "beat"}
    for row in rows:
        assert set(row) >= LIST_FIELDS
        assert row["source"] == "file"
        assert row["timezone"] == "Europe/Berlin"


def test_with_no_daemon_no_task_is_ok_in_list_or_show(cli, tmp_path: Path) -> None:
    """A script reading ``list --json`` hears that nothing fires while no daemon runs:
    a task that would be ``ok`` is ``not_firing``, with the reason; and once a daemon's
    scheduler ticks on this home, it is ``ok`` again."""
    for row in json.loads(cli("list", "--json")):
        assert row["health"] == "not_firing"
        assert "no daemon is running" in row["health_detail"]
    shown = json.loads(cli("show", "story", "--json"))
    assert shown["health"] == "not_firing"  # the API's JSON: why, without a command
    assert shown["health_detail"].endswith("nothing is firing")
    assert "nothing is firing; `agentcron run` starts the daemon" in " ".join(
        cli("show", "story").split()
    )
    assert [r["name"] for r in json.loads(cli("list", "--json", "--health", "not_firing"))] == [
        "beat",
        "story",
    ]
    assert json.loads(cli("list", "--json", "--health", "ok")) == []
    store = open_store(None, tmp_path / "home")
    try:  # a node on another host whose scheduler just ticked (as with PostgreSQL)
        now = datetime.now(UTC)
        store.register_node(NodeInfo("n1", "elsewhere", 1, "/other", now, now))
        store.record_tick("n1", now)
    finally:
        store.close()
    assert {r["health"] for r in json.loads(cli("list", "--json"))} == {"ok"}
    assert json.loads(cli("show", "story", "--json"))["health"] == "ok"


def test_a_home_of_code_tasks_is_told_to_start_its_program_not_agentcron_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tasks registered from Python code run only in the program that registers them:
    `agentcron run` would fail every run of theirs, yet doctor and health said "start
    it with `agentcron run`" (outside-in probe)."""
    from agentcron.model import TaskSpec
    from agentcron.service import Service

    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    monkeypatch.setenv("AGENTCRON_HOME", str(home))
    store = open_store(None, home)
    try:
        Service(store, home).upsert_code_tasks(
            [TaskSpec(name="digest", every="1h", python="app:digest", isolation="inline")]
        )
    finally:
        store.close()
    runner = CliRunner()
    doctor = runner.invoke(app, ["doctor"])
    said = " ".join(doctor.output.split())
    assert doctor.exit_code != 0
    assert "start it with the program that runs its `agentcron.Scheduler`" in said, said
    assert "registered from Python code: digest" in said
    assert "start it with `agentcron run`" not in said
    health = json.loads(runner.invoke(app, ["health", "--json"]).output)
    assert "the program that runs its `agentcron.Scheduler`" in health["problem"]
    # and a trigger says what starts it, not `agentcron run` (which would fail the run
    # "'__main__' has no attribute", naming no wrong daemon: outside-in probe)
    trigger = runner.invoke(app, ["trigger", "digest"])
    said = " ".join(trigger.output.split())
    assert trigger.exit_code == 0, said
    assert (
        "the daemon is not running: the run starts when the program that runs its "
        "`agentcron.Scheduler`"
    ) in said, said
    assert "`agentcron run` starts the daemon" not in said
    # listed as what it is: a code task, not one added through the API
    [row] = json.loads(runner.invoke(app, ["list", "--json"]).output)
    assert row["source"] == "code", row
    chosen = json.loads(runner.invoke(app, ["list", "--json", "--source", "code"]).output)
    assert [r["name"] for r in chosen] == ["digest"]
    # a task of the same home added with `add` is `agentcron run`'s (outside-in probe:
    # it was told to start the program too)
    added = runner.invoke(app, ["add", "other", "--every", "1h", "--", "true"])
    assert added.exit_code == 0, added.output
    other = " ".join(runner.invoke(app, ["trigger", "other"]).output.split())
    assert "`agentcron run` starts the daemon" in other, other


def test_next_marks_dst_gap_and_accepts_from(cli) -> None:
    rows = json.loads(cli("next", "story", "--count", "2", "--from", "2026-03-28T12:00", "--json"))
    assert rows[0]["local"] == "2026-03-29T03:00:00+02:00"
    assert rows[0]["note"] and "02:30" in rows[0]["note"]
    assert rows[1]["local"] == "2026-03-30T02:30:00+02:00" and rows[1]["note"] is None
    text = cli("next", "story", "--count", "1", "--from", "2026-03-28T12:00")
    assert "03:00" in text
    # from a wall time inside the gap (02:10 does not exist that night): the fire the
    # gap moved to 03:00 comes after it (it was skipped: 02:10 was read as 03:10)
    gap = json.loads(cli("next", "story", "--count", "1", "--from", "2026-03-29T02:10", "--json"))
    assert gap[0]["local"] == "2026-03-29T03:00:00+02:00", gap
    # in the repeated hour of autumn, a wall time is its first occurrence, as before
    fold = json.loads(cli("next", "story", "--count", "1", "--from", "2026-10-25T02:10", "--json"))
    assert fold[0]["local"] == "2026-10-25T02:30:00+02:00", fold


@pytest.mark.parametrize("start", ["0001-01-01T00:00", "9999-12-31T22:30"])
def test_next_from_a_date_it_cannot_plan_from_says_so(cli, start: str) -> None:
    """Probe: both printed an OverflowError's traceback."""
    out = cli("next", "story", "--from", start, code=1)
    assert "is outside the dates agentcron plans fires for (years 2 to 9998)" in out
    assert "Traceback" not in out


def test_next_stops_at_the_last_date_it_can_plan(cli) -> None:
    rows = json.loads(
        cli("next", "story", "--count", "1000", "--from", "9998-12-31T12:00", "--json")
    )
    assert 300 < len(rows) < 1000 and rows[-1]["at"].startswith("9999-12-3"), rows[-1]


def test_show_of_a_paused_task_does_not_contradict_itself(cli) -> None:
    """Probe: `paused: True (maintenance)` at the top, `paused: False` in the spec, and
    next runs listed that will not happen."""
    cli("pause", "story", "--reason", "maintenance")
    text = cli("show", "story")
    assert "paused:    True (maintenance)" in text
    assert "health:    paused\n" in text  # not "paused — paused" (outside-in probe)
    assert "next runs: - (paused)" in text
    lines = [line.strip() for line in text.splitlines()]
    assert "paused: False" not in lines
    assert json.loads(cli("show", "story", "--json"))["spec"]["paused"] is False
    assert "paused: False (as written; the task is paused by hand)" in lines


def test_update_refuses_to_move_a_one_shot_into_the_past(cli) -> None:
    """Probe: `update --set at=PAST` was accepted ("next run None"); the task never ran
    and `list` said ok. `add --at PAST` was refused already."""
    cli("add", "once", "--at", "2030-01-01T00:00:00Z", "--", "true")
    out = cli("update", "once", "--set", "at=2020-01-01T00:00:00Z", code=1)
    assert "is in the past" in out and "agentcron trigger" in out
    shown = json.loads(cli("show", "once", "--json"))
    assert shown["spec"]["at"].startswith("2030-01-01")


def test_add_pause_resume_trigger_remove(cli) -> None:
    out = cli("add", "backup", "--every", "1h", "--tz", "UTC", "--", "sh", "-c", "echo hi")
    assert "added backup" in out
    row = next(r for r in json.loads(cli("list", "--json")) if r["name"] == "backup")
    assert row["source"] == "api" and row["schedule"] == "every 1 hour"
    assert json.loads(cli("pause", "backup", "--json"))["health"] == "paused"
    resumed = json.loads(cli("resume", "backup", "--json"))
    assert resumed["paused"] is False and resumed["next_run"]
    run = json.loads(cli("trigger", "backup", "--json"))
    assert run["status"] == "pending" and run["trigger"] == "manual"
    assert run["note"].startswith("the daemon is not running")  # as the API and MCP say
    runs = json.loads(cli("runs", "backup", "--json"))
    assert len(runs) == 1 and set(runs[0]) >= RUNS_FIELDS
    cli("remove", "backup")
    assert "backup" not in {r["name"] for r in json.loads(cli("list", "--json"))}
    # history is kept
    assert json.loads(cli("runs", "backup", "--json"))[0]["status"] == "cancelled"


def test_bad_input_names_the_problem_and_changes_nothing(cli) -> None:
    out = cli("add", "bad", "--cron", "61 * * * *", "--", "true", code=1)
    assert "tasks.bad.cron" in out and "61" in out
    out = cli("add", "bad", "--every", "5x", "--", "true", code=1)
    assert "tasks.bad.every" in out
    out = cli("add", "bad", "--every", "5m", "--tz", "Mars/Base", "--", "true", code=1)
    assert "tasks.bad.timezone" in out and "Mars/Base" in out
    out = cli("add", "bad", "--every", "5m", code=1)
    assert "command" in out
    out = cli("add", "story", "--every", "5m", "--", "true", code=1)
    assert "defined in the config file" in out
    assert "bad" not in {r["name"] for r in json.loads(cli("list", "--json"))}
    out = cli("show", "stroy", code=1)
    assert "did you mean 'story'" in out
    out = cli("remove", "story", code=1)
    assert "config file" in out
    out = cli("logs", "999", code=1)
    assert "no run with id 999" in out
    assert "did you mean 'story'" in cli("audit", "stroy", code=1)  # was "no changes"
    huge = "99999999999999999999999"  # past the database's integers: was a traceback
    assert f"no run with id {huge}" in cli("logs", huge, code=1)
    assert f"no incident with id {huge}" in cli("incidents", huge, code=1)
    assert f"no incident with id {huge}" in cli("incidents", "--ack", huge, code=1)
    out = cli("next", "story", "--from", "yesterday", code=1)
    assert "--from" in out
    out = cli("runs", "--limit", "0", code=1)
    assert "--limit" in out


def test_validate_reports_every_problem_with_task_and_field(cli, tmp_path: Path) -> None:
    assert "valid" in cli("validate")
    (tmp_path / "agentcron.yaml").write_text(
        'tasks:\n  a:\n    cron: "61 * * * *"\n    command: [x]\n'
        "  b:\n    every: 5m\n    timezone: Nowhere/City\n    command: [x]\n"
        "  c:\n    every: soon\n    command: [x]\n    retrys: 2\n"
    )
    out = cli("validate", code=1)
    for needle in (
        "tasks.a.cron",
        "tasks.b.timezone",
        "tasks.c.every",
        "tasks.c.retrys",
        "did you mean 'retries'",
    ):
        assert needle in out
    problems = json.loads(cli("validate", "--json", code=1))["problems"]
    assert {p["location"] for p in problems} >= {"tasks.a.cron", "tasks.b.timezone"}
    (tmp_path / "agentcron.yaml").write_text("tasks:\n  a: [unclosed\n")
    out = cli("validate", code=1)
    assert "line" in out


def test_corrupt_database_is_a_clear_error(cli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "agentcron.db").write_bytes(b"this is not sqlite at all" * 100)
    out = cli("list", code=1)
    assert "not a usable agentcron database" in out
    assert (home / "agentcron.db").read_bytes().startswith(b"this is not sqlite")


def test_schema_and_init(cli, tmp_path: Path) -> None:
    schema = json.loads(cli("schema"))
    assert "tasks" in schema["properties"]
    out = cli("init", code=1)
    assert "already exists" in out
    (tmp_path / "agentcron.yaml").unlink()
    cli("init")
    assert "hello" in json.loads(cli("validate", "--json"))["tasks"]


def test_pausing_a_file_task_survives_later_syncs_and_file_edits(cli, tmp_path: Path) -> None:
    def beat() -> dict:
        return next(r for r in json.loads(cli("list", "--json")) if r["name"] == "beat")

    cli("pause", "beat")
    assert beat()["paused"] is True and beat()["next_run"] is None  # `list` re-syncs the file
    config = tmp_path / "agentcron.yaml"
    config.write_text(config.read_text().replace("every: 15m", "every: 20m"))
    row = beat()
    assert row["paused"] is True and row["schedule"] == "every 20 min"  # edit kept the pause
    cli("resume", "beat")
    assert beat()["paused"] is False and beat()["next_run"] is not None
    config.write_text(config.read_text().replace("every: 20m", "every: 20m\n    paused: true"))
    assert beat()["paused"] is True  # the file itself says paused
    config.write_text(config.read_text().replace("\n    paused: true", ""))
    row = beat()
    assert row["paused"] is False and row["next_run"] is not None


def test_the_cli_module_loads_no_models_nor_the_service_until_a_command_needs_them() -> None:
    """Every `agentcron` command starts by importing the CLI: pydantic and the models
    (~0.2 s) come with the commands that use them, so `--help`, `validate` of nothing
    and the like start quickly, and `list` pays for them once."""
    import subprocess
    import sys

    heavy = ("pydantic", "agentcron.interfaces.schemas", "agentcron.service", "apprise")
    code = (
        f"import sys, agentcron.interfaces.cli; print([m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_validate_and_doctor_warn_when_failures_would_reach_no_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "home"))
    config = tmp_path / "agentcron.yaml"
    config.write_text(
        "tasks:\n  a:\n    every: 1h\n    command: [x]\n"
        "  quiet:\n    every: 1h\n    command: [x]\n    notify: []\n"
    )
    runner = CliRunner()
    answer = json.loads(runner.invoke(app, ["validate", "--json"]).stdout)
    assert answer["valid"] is True
    (warning,) = answer["warnings"]
    assert "failures of 1 task(s) (a) are recorded but told to no one" in warning
    report = json.loads(runner.invoke(app, ["doctor", "--json"]).stdout)
    (check,) = [c for c in report["checks"] if c["name"] == "notify"]
    assert check["status"] == "warn" and "(a)" in check["message"]
    config.write_text('notify: ["json://127.0.0.1:9/x"]\n' + config.read_text())
    assert json.loads(runner.invoke(app, ["validate", "--json"]).stdout)["warnings"] == []
    report = json.loads(runner.invoke(app, ["doctor", "--json"]).stdout)
    assert not [c for c in report["checks"] if c["name"] == "notify"]


def test_doctor_counts_added_tasks_whose_failures_would_reach_no_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task added with `agentcron add` and no channel anywhere: its failures reach no
    one, as a file task's would, but doctor named only the file's (outside-in probe)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "home"))
    (tmp_path / "agentcron.yaml").write_text("tasks: {}\n")
    runner = CliRunner()
    told = ["--spec", '{"notify": ["json://127.0.0.1:9"]}']
    for name, extra in (("quiet", []), ("told", told)):
        args = ["add", name, "--every", "1h", *extra, "--", "true"]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
    out = json.loads(runner.invoke(app, ["doctor", "--json"]).output)
    [check] = [c for c in out["checks"] if c["name"] == "notify"]
    assert check["status"] == "warn"
    assert "the failures of 1 task(s) (quiet) are recorded but told to no one" in check["message"]
    (tmp_path / "agentcron.yaml").unlink()  # no file, so no channel anywhere either
    out = json.loads(runner.invoke(app, ["doctor", "--json"]).output)
    [check] = [c for c in out["checks"] if c["name"] == "notify"]
    assert "the failures of 1 task(s) (quiet) are recorded but told to no one" in check["message"]


def test_doctor_says_a_channel_nothing_was_sent_through_is_not_known_to_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside-in probe: `notify:` named a URL that leads nowhere; doctor said only
    ✔ lines (no channel at all) until the first problem's message was lost."""
    from agentcron.model import Message

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "home"))
    (tmp_path / "agentcron.yaml").write_text(
        'notify: ["json://127.0.0.1:9/owner"]\ntasks:\n  a:\n    every: 1h\n'
        '    command: [x]\n    notify: ["json://127.0.0.1:9/own"]\n'
    )
    runner = CliRunner()

    def channel_checks() -> dict[str, dict[str, str]]:
        report = json.loads(runner.invoke(app, ["doctor", "--json"]).stdout)
        return {c["name"]: c for c in report["checks"] if c["name"].startswith("channel ")}

    untried = channel_checks()
    assert set(untried) == {"channel json://127.0.0.1:9/owner", "channel json://127.0.0.1:9/own"}
    for check in untried.values():
        assert check["status"] == "warn" and "agentcron notify test" in check["message"]
    store = open_store(None, tmp_path / "home")
    try:  # a message was sent through one of them: it is tried, and says how it went
        note = Message(
            title="t", body="b", task="a", event="opened", incident_kind="failure", severity="info"
        )
        store.save_incidents(
            [], [("json://127.0.0.1:9/owner", "json://127.0.0.1:9/owner", note)], datetime.now(UTC)
        )
        (sent,) = store.claim_outbox("me", datetime.now(UTC), datetime.now(UTC), 10)
        store.mark_sent(sent.id, datetime.now(UTC), "me")
    finally:
        store.close()
    channels = {name: check["status"] for name, check in channel_checks().items()}
    assert channels == {
        "channel json://127.0.0.1:9/owner": "ok",
        "channel json://127.0.0.1:9/own": "warn",
    }
    # the config drops the channel that worked: no ✔ for a URL it no longer names
    (tmp_path / "agentcron.yaml").write_text(
        'notify: ["json://127.0.0.1:9/new"]\ntasks:\n  a:\n    every: 1h\n'
        '    command: [x]\n    notify: ["json://127.0.0.1:9/own"]\n'
    )
    channels = {name: check["status"] for name, check in channel_checks().items()}
    assert channels == {
        "channel json://127.0.0.1:9/new": "warn",
        "channel json://127.0.0.1:9/own": "warn",
    }


def test_doctor_names_home_folders_that_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A launcher that cannot write its run's marker says nothing, so a read-only
    HOME/runs was silent (outside-in probe); doctor names it, and an outputs folder
    that cannot take files, with what each costs."""
    from agentcron.home import cannot_write

    home = tmp_path / "home"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(home))
    (tmp_path / "agentcron.yaml").write_text('notify: ["json://127.0.0.1:9/x"]\ntasks: {}\n')
    runner = CliRunner()
    report = json.loads(runner.invoke(app, ["doctor", "--json"]).stdout)
    assert not [c for c in report["checks"] if c["name"] == "home"]
    (home / "runs").mkdir(parents=True, exist_ok=True)
    (home / "runs").rmdir()
    (home / "runs").write_text("in the way\n")  # what a probe put where the folder goes
    report = json.loads(runner.invoke(app, ["doctor", "--json"]).stdout)
    (check,) = [c for c in report["checks"] if c["name"] == "home"]
    assert check["status"] == "warn" and "runs is not a folder" in check["message"]
    assert "retried instead of recorded" in check["message"]
    assert cannot_write(home / "runs") is not None  # a file is no folder to write in
    assert cannot_write(home) is None and not list(home.glob(".agentcron-write-probe-*"))


def test_incidents_show_their_times_in_the_configs_zone(cli, tmp_path: Path) -> None:
    """The config says Europe/Berlin: an incident opened at 12:00 UTC in June (a home's,
    of no task) is shown at 14:00 CEST, as every other time of the CLI is; --json
    keeps the full ISO time."""
    from agentcron.model.incident import Incident, IncidentKind

    cli("list")  # the config's tasks written
    store = open_store(None, tmp_path / "home")
    try:
        opened = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
        store.save_incidents(
            [Incident(task="home:box", kind=IncidentKind.STORAGE, opened_at=opened)], [], opened
        )
    finally:
        store.close()
    table = cli("incidents")
    assert "Jun 01 14:00 CEST" in table and "12:00" not in table, table
    (row,) = json.loads(cli("incidents", "--json"))
    assert datetime.fromisoformat(row["opened_at"]) == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert "opened:    Jun 01 14:00 CEST" in cli("incidents", str(row["id"]))


def test_an_empty_filtered_run_list_and_shows_next_runs_say_what_they_are(cli) -> None:
    """Outside-in probe: `runs --status failed` with none said "no runs recorded yet"
    (there were runs); `show` wrote its next runs as +01:00 where `list` says CET."""
    assert "no runs recorded yet" in cli("runs", "story")
    assert "no runs match these filters" in cli("runs", "story", "--status", "failed")
    shown = cli("show", "story")
    line = next(x for x in shown.splitlines() if "next runs:" in x)
    assert "CET" in line or "CEST" in line, line
    assert "+01:00" not in line and "+02:00" not in line


def test_doctor_names_a_stale_node_beside_a_live_one_and_a_paused_failing_task(
    cli, tmp_path: Path
) -> None:
    """Chaos soak: with one of three nodes killed, doctor said ✔ daemon naming the two
    live ones only; after all were paused, "none failing" beside open failures."""
    from datetime import timedelta

    from agentcron.model import ErrorClass
    from agentcron.model.incident import Incident, IncidentKind

    cli("pause", "story")
    store = open_store(None, tmp_path / "home")
    try:
        now = datetime.now(UTC)
        old = now - timedelta(minutes=5)
        store.register_node(NodeInfo("n1", "elsewhere", 1, "/h", now, now))
        store.record_tick("n1", now)
        store.register_node(NodeInfo("n2", "another", 2, "/h", old, old))
        failing = Incident(
            task="story",
            kind=IncidentKind.FAILURE,
            opened_at=now,
            summary="boom",
            last_error_class=ErrorClass.AUTH,
        )
        store.save_incidents([failing], [], now)
    finally:
        store.close()
    report = json.loads(cli("doctor", "--json"))
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["daemon"]["status"] == "ok" and "n1" in checks["daemon"]["message"]
    assert checks["node n2"]["status"] == "warn" and "stale" in checks["node n2"]["message"]
    assert checks["tasks"]["status"] == "warn"
    assert "story: paused while failing: auth: boom" in checks["tasks"]["message"]


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--db", ""],
        ["--db", " ", "list"],
        ["add", "x", "--every", "1h", "--db", "", "--", "true"],
        ["mcp", "--db", ""],
        ["import", "crontab", "jobs.txt", "--db", ""],
    ],
)
def test_an_empty_db_is_refused_not_read_as_the_home(cli, tmp_path: Path, args: list[str]) -> None:
    """`--db "$URL"` with the variable unset opened SQLite in the home without a word:
    a script meant for the shared PostgreSQL database read and wrote another one."""
    (tmp_path / "jobs.txt").write_text("0 4 * * * /bin/true\n")
    said = cli(*args, code=2)
    assert "Invalid value for '--db'" in said and "is empty" in said, said
    assert not (tmp_path / "home" / "agentcron.db").exists()  # nothing opened or created


def test_a_reader_that_closes_the_pipe_early_gives_141_not_1(tmp_path: Path) -> None:
    """Outside-in probe: `agentcron health | head -1` exited 1 (health's "nothing
    schedules") while all was well, because Click exits 1 when its pipe closes."""
    import subprocess

    env = {**os.environ, "AGENTCRON_HOME": str(tmp_path / "home")}
    writer = subprocess.Popen(
        [sys.executable, "-m", "agentcron", "schema"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert writer.stdout is not None and writer.stderr is not None
    writer.stdout.close()  # the reader is gone before the first line
    code = writer.wait(60)
    said = writer.stderr.read()
    writer.stderr.close()
    assert code == 141, said
    done = subprocess.run(
        [sys.executable, "-m", "agentcron", "schema"], capture_output=True, env=env, timeout=60
    )
    assert done.returncode == 0 and done.stdout


def test_a_usage_error_with_json_is_said_as_json_too(tmp_path: Path) -> None:
    """Outside-in probe: `agentcron redeliver --json abc` printed only the usage box on
    stderr, where the README says a command run with --json that fails prints {"error":
    …} on stdout as well. The exit codes stay Click's (2) and the commands' own."""
    import subprocess

    env = {**os.environ, "AGENTCRON_HOME": str(tmp_path / "home")}

    def agentcron(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "agentcron", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)

    bad = agentcron("redeliver", "--json", "abc")
    assert bad.returncode == 2, bad
    assert "run_id" in json.loads(bad.stdout)["error"], bad.stdout
    assert "agentcron redeliver [OPTIONS]" in bad.stderr  # the usage, as without --json
    unknown = agentcron("list", "--json", "--bogus")
    assert unknown.returncode == 2 and "--bogus" in json.loads(unknown.stdout)["error"]
    fine = agentcron("list", "--json")
    assert fine.returncode == 0 and json.loads(fine.stdout) == [], fine
    missing = agentcron("logs", "5", "--json")
    assert missing.returncode == 1 and "no run with id 5" in json.loads(missing.stdout)["error"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("1h", "'1h' is too long; at most 10s"),
        ("0.05", "'0.05' is too short; at least 0.1s"),
        ("nan", "not a duration: 'nan'"),
    ],
)
def test_a_beat_out_of_bounds_is_refused_by_name(
    cli, monkeypatch: pytest.MonkeyPatch, value: str, words: str
) -> None:
    """Probe: AGENTCRON_BEAT=1h was taken without a word (and capped at 10 s), nan said
    "cannot convert float NaN to integer"."""
    monkeypatch.setenv("AGENTCRON_BEAT", value)
    _no_daemon_logging(monkeypatch)
    out = cli("run", code=1)
    assert f"environment variable AGENTCRON_BEAT: {words}" in out, out


def test_a_relative_db_path_works_while_a_daemon_runs_on_it(cli, tmp_path: Path) -> None:
    """Probe: `list --db dbdir/shared.db` failed while a daemon ran on that file ("relative
    path can't be expressed as a file URI"); the absolute path worked."""
    from agentcron.instance_lock import daemon_lock
    from agentcron.store.sqlite import SQLiteStore

    (tmp_path / "dbdir").mkdir()
    db = tmp_path / "dbdir" / "shared.db"
    SQLiteStore(db).close()
    with daemon_lock(tmp_path / "other", str(db)):
        out = cli("list", "--db", "dbdir/shared.db", "--json")
    assert json.loads(out) == []  # the daemon's database, which holds no task yet


def _no_daemon_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` in this process would hang a log handler on CliRunner's stream, closed once
    the command returns: every later log line of the worker then failed ("I/O operation
    on closed file") into other tests' output."""
    import agentcron.logs

    monkeypatch.setattr(agentcron.logs, "setup_logging", lambda level: None)


def test_a_database_another_program_holds_locked_at_start_is_said_in_a_line(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Probe: a start on a database held locked (or read-only) ended in a traceback
    headed "could not record this node as stopped", a later error, not the cause."""
    import sqlite3 as sqlite

    _no_daemon_logging(monkeypatch)

    from agentcron.store.sqlite import SQLiteStore

    db = tmp_path / "home" / "agentcron.db"
    db.parent.mkdir(exist_ok=True)
    SQLiteStore(db).close()
    holder = sqlite.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program writing, past the daemon's wait
    try:
        out = cli("run", code=1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "cannot start: the database" in out and "database is locked" in out, out
    assert "could not record this node as stopped" not in out


def test_doctor_from_another_folder_checks_the_file_the_database_runs(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Probe: run from a folder holding some other agentcron.yaml, doctor said that file
    was valid, that the daemon's channel was "no longer in the config", and that its
    tasks' failures were told to no one."""
    from typer.testing import CliRunner

    from agentcron.config.nodes import META_KEY, Applied
    from agentcron.store.sqlite import SQLiteStore

    own = tmp_path / "agentcron.yaml"
    cli("list")
    store = SQLiteStore(tmp_path / "home" / "agentcron.db")
    try:  # as the daemon records the file it applied
        store.set_meta(META_KEY, Applied("n1", "host", str(own), "d").dumps())
    finally:
        store.close()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "agentcron.yaml").write_text(
        'tasks:\n  zzz:\n    every: 1h\n    command: ["true"]\n'
    )
    monkeypatch.chdir(elsewhere)
    report = json.loads(CliRunner().invoke(app, ["doctor", "--json"]).output)
    said = {c["name"]: c["message"] for c in report["checks"]}
    assert f"this database's tasks come from {own}" in said["config file"]
    assert said["config"].startswith(f"{own} is valid (2 tasks)"), said["config"]


def test_doctor_warns_when_the_file_named_has_other_tasks_than_the_database_runs(
    cli, tmp_path: Path
) -> None:
    """Outside-in probe (nodes on PostgreSQL): `doctor --config cfg.yaml` on a node
    whose daemon ran cfg.yaml said "✔ config file: this database's tasks come from
    cfg2.yaml; checked it", and exit 0, while the two nodes' files differed. A file
    named with --config is checked as named: a warning when its tasks differ from the
    recorded file's, ok when they are the same (a copy on each node), its own errors
    when it is invalid (one was passed over for the recorded file)."""
    from typer.testing import CliRunner

    from agentcron.config.loader import load_config
    from agentcron.config.nodes import META_KEY, Applied, tasks_digest
    from agentcron.store.sqlite import SQLiteStore

    own = tmp_path / "agentcron.yaml"
    cli("list")
    digest = tasks_digest(load_config(own).tasks)
    store = SQLiteStore(tmp_path / "home" / "agentcron.db")
    try:  # as the other node's daemon records the file it applied
        store.set_meta(META_KEY, Applied("n2", "other-host", str(own), digest).dumps())
    finally:
        store.close()
    copy = tmp_path / "copy.yaml"
    copy.write_text(own.read_text())
    changed = tmp_path / "cfg.yaml"
    changed.write_text('tasks:\n  zzz:\n    every: 1h\n    command: ["true"]\n')

    def doctor(config: Path) -> dict[str, str]:
        args = ["--home", str(tmp_path / "home"), "doctor", "--config", str(config), "--json"]
        report = json.loads(CliRunner().invoke(app, args).output)
        return {c["name"]: c["status"] + ": " + c["message"] for c in report["checks"]}

    said = doctor(changed)
    assert said["config file"].startswith(f"warn: {changed} has other tasks than {own}"), said
    assert "which other-host applied" in said["config file"]
    assert said["config"].startswith(f"ok: {changed} is valid (1 tasks)"), said
    same = doctor(copy)  # a copy on another node: the same tasks, checked as named
    expected = f"ok: {copy} has the tasks of {own}, which other-host applied to this database"
    assert same["config file"] == expected + " last", same
    broken = tmp_path / "broken.yaml"
    broken.write_text('tasks:\n  zzz:\n    every: often\n    command: ["true"]\n')
    bad = doctor(broken)  # checked as named, not passed over for the recorded file
    assert bad["config"].startswith(f"fail: {broken} is invalid"), bad
    assert "config file" not in bad


@pytest.mark.parametrize(
    ("free", "status", "words"),
    [
        (3 * 1024 * 1024, "fail", "3 MiB free on the disk of"),
        (100 * 1024 * 1024, "warn", "nearly full"),
        (5 * 1024**3, "ok", "5.0 GiB free"),
    ],
)
def test_doctor_says_how_much_room_the_homes_disk_has(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, free: int, status: str, words: str
) -> None:
    """Probe: on a full disk doctor said ✔ everywhere until the daemon met it."""
    import agentcron.engine.diskroom as diskroom
    from agentcron.interfaces.doctor import _disk_check

    monkeypatch.setattr(diskroom, "free_bytes", lambda path: free)
    check = _disk_check(tmp_path)
    assert check["status"] == status and words in check["message"], check


def test_doctor_names_why_it_cannot_read_the_disk_or_the_databases_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Neither is passed over in silence: each is a warning naming its error."""
    import agentcron.config.nodes as nodes
    import agentcron.engine.diskroom as diskroom
    from agentcron.interfaces.doctor import diagnose

    def no_statvfs(path: str) -> int:
        raise PermissionError(13, "Permission denied")

    def unreadable(text: str | None) -> None:
        raise ValueError("not JSON")

    monkeypatch.setattr(diskroom, "free_bytes", no_statvfs)
    monkeypatch.setattr(nodes, "loads", unreadable)
    checks = {c["name"]: c for c in diagnose(tmp_path / "agentcron.yaml", tmp_path, None)["checks"]}
    assert checks["disk"]["status"] == "warn"
    assert "Permission denied" in checks["disk"]["message"]
    assert checks["config file"]["status"] == "warn"
    assert "ValueError: not JSON" in checks["config file"]["message"]
    # a database that does not open is said once, by the database check
    missing = diagnose(tmp_path / "agentcron.yaml", tmp_path, str(tmp_path / "no" / "x.db"))
    said = {c["name"]: c for c in missing["checks"]}
    assert said["database"]["status"] == "fail" and "config file" not in said
