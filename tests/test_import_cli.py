"""``agentcron import`` as a person uses it: the dry run, --apply into the config file
(comments kept) or the database, paused unless --enable, re-imports that update, and
clear errors for bad files and options."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agentcron.config import load_config
from agentcron.interfaces.cli import app as main_app
from agentcron.interfaces.cli_import import register

FIXTURES = Path(__file__).parent / "fixtures" / "import"
TOKEN = "123456789:AAHfakeTokenfakeTokenfakeTokenfakeTok"
CONFIG = """\
# my agentcron config
timezone: Europe/Berlin   # where I live

tasks:
    # an existing task, indented by four
    reindex:
        cron: "0 4 * * *"      # nightly
        command: ["python", "reindex.py"]
"""
AGENT = ["--agent-cmd", "hermes chat -q"]

Invoke = Callable[..., str]


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """agentcron (test app holding only the import command)."""
        # as agentcron's own callback does: a --db, --home or --config that an earlier
        # test of this process gave the real app stayed in the CLI's globals, and this
        # app's import wrote into that test's database (failed in full runs only)
        from agentcron.interfaces.cli import _globals

        _globals.config = _globals.home = _globals.db = None
        _globals.json = False

    register(app)
    return app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "home"))
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_HOME_CHANNEL", "SLACK_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("hermes-jobs.json", "hermes-jobs-list.json", "openclaw-jobs.json"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    (tmp_path / "agentcron.yaml").write_text(CONFIG)
    runner = CliRunner()
    imports = _app()

    def invoke(*args: str, code: int = 0) -> str:
        target = main_app if args and args[0] in ("list", "show", "validate") else imports
        result = runner.invoke(target, list(args))
        assert result.exit_code == code, (result.output, result.exception)
        if code:
            assert "Traceback" not in result.output
        return result.output

    return invoke


def _tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_HOME_CHANNEL", "4242")


def test_dry_run_shows_yaml_notes_and_variables_and_writes_nothing(
    cli: Invoke, tmp_path: Path
) -> None:
    out = cli("import", "hermes", "hermes-jobs.json", *AGENT)
    assert (tmp_path / "agentcron.yaml").read_text() == CONFIG
    assert "dry run: nothing is written without --apply" in out
    # the YAML it would write, paused, keyed on its source
    assert (
        "# Hermes job jobs[0] 'Morning brief' (hermes:3f9a1c2b7d10): new task morning-brief" in out
    )
    assert 'morning-brief:\n  description: Morning brief\n  cron: "0 7 * * *"' in out
    assert "  paused: true\n  imported_from: hermes:3f9a1c2b7d10" in out
    # every field dropped or approximated, in validate's style: file: task.field: what
    assert (
        "hermes-jobs.json: morning-brief.skills: dropped: skills web-search do not come along"
        in out
    )
    assert "hermes-jobs.json: weekly-review.repeat: approximated: Hermes stops after 12 runs" in out
    assert "hermes-jobs.json: disk-report.tier: warning: unknown Hermes job field" in out
    assert "Not imported:\n  hermes-jobs.json: jobs[3] 'Passport renewal'.state: skipped" in out
    assert "TELEGRAM_BOT_TOKEN: NOT SET: the Telegram bot token" in out
    assert "Disable the jobs in Hermes first" in out


def test_apply_writes_into_the_config_keeping_its_comments(
    cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tokens(monkeypatch)
    cli("import", "hermes", "hermes-jobs-list.json", *AGENT, "--apply")
    text = (tmp_path / "agentcron.yaml").read_text()
    assert text.startswith(CONFIG)  # what was there is there, byte for byte
    assert "    # imported from Hermes job jobs[0] 'Morning brief' (hermes:3f9a1c2b7d10)\n" in text
    assert "        deliver: ['tgram://${TELEGRAM_BOT_TOKEN}/-1001234567890:17']\n" in text
    assert TOKEN not in text  # the token stays in the environment
    loaded = load_config(tmp_path / "agentcron.yaml")
    imported = {n: s for n, s in loaded.tasks.items() if s.imported_from}
    assert sorted(imported) == ["heartbeat-check", "morning-brief", "tax-reminder"]
    assert all(spec.paused for spec in imported.values())
    assert imported["morning-brief"].imported_from == "hermes:3f9a1c2b7d10"


def test_reimport_updates_in_place_and_keeps_what_the_user_changed(
    cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tokens(monkeypatch)
    cli("import", "hermes", "hermes-jobs-list.json", *AGENT, "--apply")
    config = tmp_path / "agentcron.yaml"
    first = config.read_text()
    out = cli("import", "hermes", "hermes-jobs-list.json", *AGENT, "--apply")
    assert config.read_text() == first  # idempotent: nothing doubled, nothing moved
    assert "task morning-brief, unchanged" in out and "nothing was changed" in out
    # the user resumes one task, renames another and adds a key; the source changes
    edited = first.replace(
        "        paused: true\n        imported_from: hermes:3f9a1c2b7d10",
        "        paused: false\n        retries: 5\n        imported_from: hermes:3f9a1c2b7d10",
    ).replace("    heartbeat-check:\n", "    uptime:\n")
    config.write_text(edited)
    jobs = json.loads((tmp_path / "hermes-jobs-list.json").read_text())
    jobs[0]["schedule"] = {"kind": "cron", "expr": "30 6 * * *"}
    jobs[1]["schedule"] = {"kind": "cron", "expr": "*/20 * * * *"}
    (tmp_path / "hermes-jobs-list.json").write_text(json.dumps(jobs))
    cli("import", "hermes", "hermes-jobs-list.json", *AGENT, "--apply")
    loaded = load_config(config)
    brief, uptime = loaded.tasks["morning-brief"], loaded.tasks["uptime"]
    assert brief.cron == "30 6 * * *" and brief.retries == 5 and brief.paused is False
    assert uptime.cron == "*/20 * * * *" and uptime.every is None and uptime.anchor is None
    assert "heartbeat-check" not in loaded.tasks
    assert sum(1 for s in loaded.tasks.values() if s.imported_from) == 3


def test_enable_writes_tasks_enabled_except_those_disabled_at_the_source(
    cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tokens(monkeypatch)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-000000000000-000000000000-" + "a" * 24)
    out = cli("import", "hermes", "hermes-jobs.json", *AGENT, "--apply", "--enable")
    assert "task(s) are enabled here: disable these jobs in Hermes now" in out
    assert (
        "weekly-review.enabled: warning: disabled at the source: --enable leaves it paused" in out
    )
    tasks = load_config(tmp_path / "agentcron.yaml").tasks
    assert tasks["morning-brief"].paused is False
    assert tasks["weekly-review"].paused is True


def test_apply_refuses_while_a_variable_is_unset_and_changes_nothing(
    cli: Invoke, tmp_path: Path
) -> None:
    out = cli("import", "hermes", "hermes-jobs-list.json", *AGENT, "--apply", code=1)
    assert "agentcron.yaml was not changed" in out
    assert (
        "tasks.tax-reminder.deliver[0]: variables TELEGRAM_BOT_TOKEN, TELEGRAM_HOME_CHANNEL" in out
    )
    assert (tmp_path / "agentcron.yaml").read_text() == CONFIG
    # set them in the config's env_file and it goes through
    (tmp_path / "secrets.env").write_text(
        f"# bot\nTELEGRAM_BOT_TOKEN='{TOKEN}'\nexport TELEGRAM_HOME_CHANNEL=4242\n"
    )
    (tmp_path / "agentcron.yaml").write_text("env_file: secrets.env\n" + CONFIG)
    out = cli("import", "hermes", "hermes-jobs-list.json", *AGENT, "--apply")
    assert "TELEGRAM_BOT_TOKEN: set:" in out
    assert len(load_config(tmp_path / "agentcron.yaml").tasks) == 4


def test_an_invalid_config_is_not_touched(cli: Invoke, tmp_path: Path) -> None:
    broken = CONFIG.replace('"0 4 * * *"', '"0 4 * *"')
    (tmp_path / "agentcron.yaml").write_text(broken)
    out = cli("import", "openclaw", "openclaw-jobs.json", *AGENT, "--apply", code=1)
    assert "tasks.reindex.cron" in out
    assert (tmp_path / "agentcron.yaml").read_text() == broken


def test_a_missing_config_is_created(cli: Invoke, tmp_path: Path) -> None:
    (tmp_path / "agentcron.yaml").unlink()
    path = tmp_path / "cron.txt"
    path.write_text('MAILTO=""\n*/10 * * * * /usr/local/bin/sync.sh\n')
    cli("import", "crontab", "cron.txt", "--apply")
    text = (tmp_path / "agentcron.yaml").read_text()
    assert text.startswith("# agentcron.yaml: tasks written by `agentcron import`")
    assert load_config(tmp_path / "agentcron.yaml").tasks["sync"].cron == "*/10 * * * *"


def test_import_into_the_database_through_the_service(
    cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tokens(monkeypatch)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-000000000000-000000000000-" + "a" * 24)
    cli("import", "openclaw", "openclaw-jobs.json", *AGENT, "--to", "db", "--apply")
    rows = {t["name"]: t for t in json.loads(cli("list", "--json"))}
    imported = {n for n, t in rows.items() if t["source"] == "api"}
    assert imported == {
        "family-digest",
        "morning-brief",
        "nightly-summary",
        "send-reminder",
        "uptime-sweep",
    }
    assert all(rows[n]["paused"] for n in imported)
    # again, enabled: the same tasks, updated, not doubled
    out = cli(
        "import", "openclaw", "openclaw-jobs.json", *AGENT, "--to", "db", "--apply", "--enable"
    )
    assert "updates task morning-brief" in out
    rows = {t["name"]: t for t in json.loads(cli("list", "--json"))}
    assert {n for n, t in rows.items() if t["source"] == "api"} == imported
    assert rows["morning-brief"]["paused"] is False
    assert rows["nightly-summary"]["paused"] is True  # disabled at the source
    shown = json.loads(cli("show", "morning-brief", "--json"))
    assert shown["spec"]["imported_from"] == "openclaw:9c4e2a1f-57b3-4d1e-a0c9-2f6b8d3e7a15"
    assert shown["spec"]["deliver"] == ["tgram://${TELEGRAM_BOT_TOKEN}/-1001234567890:123"]
    db = sqlite3.connect(tmp_path / "home" / "agentcron.db")
    specs = " ".join(row[0] for row in db.execute("SELECT spec FROM tasks"))
    db.close()
    assert "${TELEGRAM_BOT_TOKEN}" in specs and TOKEN not in specs


def test_the_database_does_not_duplicate_a_task_imported_into_the_file(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tokens(monkeypatch)
    cli("import", "hermes", "hermes-jobs-list.json", *AGENT, "--apply")
    out = cli("import", "hermes", "hermes-jobs-list.json", *AGENT, "--to", "db", "--apply")
    assert "already imported into the config file as 'morning-brief'" in out
    rows = json.loads(cli("list", "--json"))
    assert sorted(t["name"] for t in rows if t["source"] == "api") == []


def test_json_output(cli: Invoke) -> None:
    data = json.loads(cli("import", "openclaw", "openclaw-jobs.json", *AGENT, "--json"))
    assert data["applied"] is False and data["source"] == "openclaw"
    brief = next(t for t in data["tasks"] if t["name"] == "morning-brief")
    assert brief["task"]["paused"] is True
    assert {"field": "payload.thinking", "kind": "dropped"}.items() <= next(
        n for n in brief["notes"] if n["field"] == "payload.thinking"
    ).items()
    assert {v["name"]: v["set"] for v in data["variables"]} == {
        "SLACK_BOT_TOKEN": False,
        "TELEGRAM_BOT_TOKEN": False,
    }
    assert [n["task"] for n in data["not_imported"]] == [
        "jobs[3] 'Old reminder'",
        "jobs[6] 'Broken zone'",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "cron", "x"], "unknown source 'cron'"),
        (["import", "hermes", "hermes-jobs.json"], "agent prompts need a target"),
        (["import", "hermes", "hermes-jobs.json", "--model", "m"], "--base-url and --model go"),
        (["import", "hermes", "hermes-jobs.json", "--agent-cmd", "'open"], "cannot split"),
        (["import", "hermes", "hermes-jobs.json", *AGENT, "--to", "s3"], "--to 's3'"),
        (["import", "hermes", "nope.json", *AGENT], "no such file"),
        (
            ["import", "hermes", "hermes-jobs.json", "--base-url", "x", "--model", "m"],
            "--base-url must be an http",
        ),
    ],
)
def test_bad_invocations_say_what_to_fix(cli: Invoke, args: list[str], message: str) -> None:
    assert message in cli(*args, code=1)


def test_bad_files_from_the_command_line(cli: Invoke, tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "openclaw-jobs-utf16.json", tmp_path / "u.json")
    out = cli("import", "openclaw", "u.json", *AGENT, code=1)
    assert "is UTF-16 text" in out and "save it as UTF-8" in out
    shutil.copy(FIXTURES / "agent-zero-tasks-truncated.json", tmp_path / "t.json")
    out = cli("import", "agent-zero", "t.json", *AGENT, code=1)
    assert "t.json:" in out and "not valid JSON" in out


def test_written_config_passes_the_real_validate_command(
    cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once through a real process: `agentcron validate` on what import wrote, from
    each source."""
    _tokens(monkeypatch)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-000000000000-000000000000-" + "a" * 24)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    for name in ("agent-zero-tasks.json", "user.crontab"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    llm = ["--base-url", "https://api.deepinfra.com/v1/openai", "--model", "zai-org/GLM-4.5"]
    cli("import", "agent-zero", "agent-zero-tasks.json", *llm, "--apply")
    cli("import", "hermes", "hermes-jobs.json", *AGENT, "--apply")
    cli("import", "openclaw", "openclaw-jobs.json", *AGENT, "--apply")
    cli("import", "crontab", "user.crontab", "--apply")
    done = subprocess.run(
        [sys.executable, "-m", "agentcron", "validate", "--json"],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tasks = json.loads(done.stdout)["tasks"]
    assert len(tasks) == 1 + 6 + 6 + 5 + 7


def test_a_dry_run_over_an_invalid_config_says_its_defaults_are_not_applied(
    cli: Invoke, tmp_path: Path
) -> None:
    """The import goes on (nothing is written without --apply) but does not hide that the
    config it would write into is broken, nor that its defaults were left out."""
    (tmp_path / "agentcron.yaml").write_text("defaults:\n  retries: lots\ntasks: {}\n")
    out = cli("import", "hermes", "hermes-jobs.json", *AGENT)
    assert "agentcron.yaml is invalid, so its defaults are not applied" in out, out
    assert "defaults.retries" in out, out
    assert "dry run: nothing is written without --apply" in out


def test_a_file_whose_every_job_is_an_error_exits_non_zero(cli: Invoke, tmp_path: Path) -> None:
    """A text file given as a crontab: every line reported as an error, and exit 0
    (outside-in probe); a script could not tell it from an import."""
    (tmp_path / "notes.txt").write_text("hello world\nthis is not cron\n")
    out = cli("import", "crontab", "notes.txt", code=1)
    assert "not a crontab entry" in out
    assert (tmp_path / "agentcron.yaml").read_text() == CONFIG


# ---- re-imports after the source changed (outside-in probe) ------------------------------


def _tasks(tmp_path: Path) -> dict[str, dict[str, str | None]]:
    loaded = load_config(tmp_path / "agentcron.yaml").tasks
    return {n: {"cron": t.cron, "imported_from": t.imported_from} for n, t in loaded.items()}


def test_a_crontab_line_removed_leaves_its_twins_task_alone_and_is_said(
    cli: Invoke, tmp_path: Path
) -> None:
    """Two lines of one command: the key of the second was the first's with a counter, so
    removing the first made the second update the first's task (both then fired at
    02:00) and nothing was said of the task left behind."""
    tab = tmp_path / "tab"
    tab.write_text("0 1 * * * /usr/bin/report\n0 2 * * * /usr/bin/report\n")
    cli("import", "crontab", str(tab), "--apply", "--enable")
    before = _tasks(tmp_path)
    assert {n: t["cron"] for n, t in before.items() if n != "reindex"} == {
        "report": "0 1 * * *",
        "report-2": "0 2 * * *",
    }
    tab.write_text("0 2 * * * /usr/bin/report\n")
    out = cli("import", "crontab", str(tab), "--apply", "--enable")
    assert "task report-2, unchanged" in out
    assert "Imported from a crontab before, and not in this file" in out
    assert f"  report ({before['report']['imported_from']})" in out
    after = _tasks(tmp_path)
    assert after["report"]["cron"] == "0 1 * * *" and after["report-2"]["cron"] == "0 2 * * *"
    assert after["report-2"]["imported_from"] == before["report-2"]["imported_from"]
    data = json.loads(cli("import", "crontab", str(tab), "--json"))
    assert data["not_in_source"] == [
        {"name": "report", "imported_from": before["report"]["imported_from"]}
    ]


def test_a_crontab_line_is_cut_at_newlines_only_and_odd_first_words_are_said(
    cli: Invoke, tmp_path: Path
) -> None:
    tab = tmp_path / "tab"
    tab.write_bytes(
        b"0 1 * * * echo a\x0cb\n0 2 * * * echo x\xe2\x80\xa8y\n"
        b"0 0 5 * * * six-field\n0 12 * * * root /usr/bin/sysjob\n"
    )
    out = cli("import", "crontab", str(tab))
    assert "error" not in out  # no line cut in two, no stray pieces
    assert "# crontab line 4 " in out and "crontab line 5" not in out
    assert "the command starts with '*', a time field" in out
    assert "tab:4: root.command: warning: the command starts with 'root', a user" in out
    data = json.loads(cli("import", "crontab", str(tab), "--json"))
    commands = [t["task"]["command"] for t in data["tasks"]]
    assert commands[:2] == ["echo a\x0cb", "echo x\u2028y"]


def test_two_jobs_with_one_id_are_refused_by_name_not_merged(cli: Invoke, tmp_path: Path) -> None:
    jobs = tmp_path / "dup.json"
    job = {"prompt": "p", "schedule": {"kind": "cron", "expr": "0 7 * * *"}, "timezone": "UTC"}
    jobs.write_text(
        json.dumps(
            {"jobs": [{**job, "id": "same", "name": "First"}, {**job, "id": "same", "name": "B"}]}
        )
    )
    out = cli("import", "hermes", str(jobs), *AGENT, "--apply")
    assert "new task first" in out and "new task b" not in out
    assert "jobs[1] 'B'.id: error: the same id as jobs[0] 'First' (hermes:same)" in out
    assert set(_tasks(tmp_path)) == {"reindex", "first"}


def test_a_variable_in_a_description_is_not_one_to_set(cli: Invoke, tmp_path: Path) -> None:
    jobs = tmp_path / "j.json"
    jobs.write_text(
        json.dumps(
            {
                "jobs": [
                    {
                        "id": "c1",
                        "name": "Report ${COST_CENTER} weekly",
                        "prompt": "write",
                        "schedule": {"kind": "cron", "expr": "0 7 * * 1"},
                    }
                ]
            }
        )
    )
    out = cli("import", "hermes", str(jobs), *AGENT)
    assert "COST_CENTER" not in out.split("Report ${COST_CENTER} weekly")[-1]
    assert "Variables to set" not in out


def test_an_agent_zero_schedule_with_fields_missing_says_what_they_were_read_as(
    cli: Invoke, tmp_path: Path
) -> None:
    tasks = tmp_path / "a0.json"
    task = {"uuid": "u9", "state": "idle", "name": "Sched", "prompt": "p", "type": "scheduled"}
    tasks.write_text(json.dumps({"tasks": [{**task, "schedule": {"minute": "5"}}]}))
    out = cli("import", "agent-zero", str(tasks), "--agent-cmd", "a0")
    assert (
        "schedule.hour, schedule.day, schedule.month, schedule.weekday missing: read as '*' "
        "(every one), so it runs '5 * * * *'"
    ) in out


def test_apply_warns_while_the_llm_key_variable_is_unset(
    cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Probe: `--api-key-env K` with K unset was applied without a word, and every run
    of the tasks would have failed with config_error. Said as validate says it: a
    warning (this shell may lack what the daemon's service environment sets)."""
    monkeypatch.delenv("PROBE_LLM_KEY", raising=False)
    shutil.copy(FIXTURES / "agent-zero-tasks.json", tmp_path / "a0.json")
    llm = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--api-key-env", "PROBE_LLM_KEY"]
    data = json.loads(cli("import", "agent-zero", "a0.json", *llm, "--json"))
    assert {"name": "PROBE_LLM_KEY", "set": False}.items() <= next(
        v for v in data["variables"] if v["name"] == "PROBE_LLM_KEY"
    ).items()
    out = cli("import", "agent-zero", "a0.json", *llm, "--apply")
    assert (
        "warning: tasks.daily-story.llm.api_key_env: variable PROBE_LLM_KEY is not set here" in out
    )
    assert (tmp_path / "agentcron.yaml").read_text() != CONFIG


def test_a_crlf_config_stays_crlf_after_apply(cli: Invoke, tmp_path: Path) -> None:
    """Probe: comment lines kept \\r\\n and every other line became \\n."""
    config = tmp_path / "agentcron.yaml"
    config.write_bytes(CONFIG.replace("\n", "\r\n").encode())
    (tmp_path / "cron.txt").write_text("# nightly\n0 4 * * * echo hi\n")
    cli("import", "crontab", "cron.txt", "--apply")
    data = config.read_bytes()
    assert b"\r\n" in data and data.count(b"\n") == data.count(b"\r\n"), data
    assert "echo hi" in data.decode() and len(load_config(config).tasks) >= 1


def test_apply_is_refused_once_for_every_unset_placeholder_and_only_warns_of_the_key(
    cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Probe: refused first for the unset key variable, then, once it was set, again for
    the unset TELEGRAM_BOT_TOKEN: two rounds. Now one refusal names what makes the
    config invalid, and the key variable is a warning."""
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_HOME_CHANNEL", "PROBE_LLM_KEY"):
        monkeypatch.delenv(name, raising=False)
    llm = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--api-key-env", "PROBE_LLM_KEY"]
    out = cli("import", "hermes", "hermes-jobs-list.json", *llm, "--apply", code=1)
    assert "TELEGRAM_BOT_TOKEN" in out and "PROBE_LLM_KEY" not in out
    assert (tmp_path / "agentcron.yaml").read_text() == CONFIG
    _tokens(monkeypatch)
    out = cli("import", "hermes", "hermes-jobs-list.json", *llm, "--apply")
    assert "variable PROBE_LLM_KEY is not set here" in out
