"""Each importer on its fixture: which tasks come over, with what YAML, and every note.

The fixtures under tests/fixtures/import/ are written from the formats' field lists:
several jobs each, every schedule kind, a disabled one, an errored one, and the
variants (tasks.yaml, a bare list, a map by id, a BOM, UTF-16, a file cut short).
Every task an importer drafts must pass the config's own validation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.config.loader import validate_task_mapping
from agentcron.importers import ImportFileError, ImportOptions, Plan, PromptTargetMissing, make_plan
from agentcron.importers._targets import SAMPLE_VALUES

FIXTURES = Path(__file__).parent / "fixtures" / "import"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LLM = ImportOptions(
    base_url="https://api.deepinfra.com/v1/openai",
    model="zai-org/GLM-4.5",
    api_key_env="DEEPINFRA_API_KEY",
    clock=FakeClock(NOW),
)
AGENT = ImportOptions(agent_cmd="hermes chat -q {prompt}", clock=FakeClock(NOW))


def plan(source: str, name: str, options: ImportOptions = LLM) -> Plan:
    return make_plan(source, FIXTURES / name, options)


def drafts(p: Plan) -> dict[str, Any]:
    return {d.name: d for d in p.drafts}


def notes(p: Plan, task: str) -> list[tuple[str, str]]:
    return [(n.field, n.kind) for n in drafts(p)[task].notes]


def reasons(p: Plan, task: str) -> str:
    return " | ".join(n.reason for n in drafts(p)[task].notes)


def assert_valid(p: Plan) -> None:
    """Each draft as written (paused, keyed) passes the config's rules."""
    environ = {name: SAMPLE_VALUES.get(name, "sample") for name in p.variables}
    environ |= {d.body["llm"]["api_key_env"]: "sample" for d in p.drafts if "llm" in d.body}
    for d in p.drafts:
        raw = {**d.body, "paused": True, "imported_from": d.key}
        spec = validate_task_mapping(d.name, raw, environ=environ)
        assert spec.imported_from == d.key


# ---- Agent Zero -------------------------------------------------------------------------


def test_agent_zero_tasks_become_cron_and_at_tasks_with_their_prompts() -> None:
    p = plan("agent-zero", "agent-zero-tasks.json")
    d = drafts(p)
    assert sorted(d) == [
        "daily-story",
        "dentist-reminders",
        "dentist-reminders-2",
        "inbox-triage",
        "knowledge-base-re-index",
        "weekly-digest",
    ]
    story = d["daily-story"]
    assert story.key == "agent-zero:0f6d2c1e-3a8b-4c55-9d7e-1b2a3c4d5e6f"
    assert story.body["cron"] == "0 2 * * *"
    assert story.body["timezone"] == "Europe/Berlin"
    assert story.body["llm"] == {
        "base_url": "https://api.deepinfra.com/v1/openai",
        "model": "zai-org/GLM-4.5",
        "api_key_env": "DEEPINFRA_API_KEY",
        "system": "You are a novelist. Write in plain English.",
        # a ${ in a prompt stays text: it is written $${ so nothing expands it
        "prompt": "Write tonight's chapter of the story (about 10,000 words) and save it "
        "to /a0/work/story/chapter-$${DATE}.md.",
    }
    assert ("context_id", "dropped") in notes(p, "daily-story")
    # weekday names and ranges pass through; the zone comes from the schedule
    assert d["inbox-triage"].body["cron"] == "*/15 7-22 * * 1-5"
    assert d["inbox-triage"].body["timezone"] == "America/New_York"
    # the planned task: one `at` task per future time, keyed by its time
    assert d["dentist-reminders"].body["at"] == "2031-03-02T07:30:00+01:00"
    assert d["dentist-reminders-2"].key.endswith("@20310309T063000Z")
    assert_valid(p)


def test_agent_zero_states_zones_and_fields_are_reported() -> None:
    p = plan("agent-zero", "agent-zero-tasks.json")
    d = drafts(p)
    # 'local' is the machine's zone: written without one, and said so
    assert "timezone" not in d["knowledge-base-re-index"].body
    assert ("schedule.timezone", "approximated") in notes(p, "knowledge-base-re-index")
    # an errored task comes over (agentcron retries), with its last result, redacted
    assert "in error at the source" in reasons(p, "knowledge-base-re-index")
    assert "429 Model busy" in reasons(p, "knowledge-base-re-index")
    assert {("attachments", "dropped"), ("project_name", "dropped")} <= set(
        notes(p, "knowledge-base-re-index")
    )
    # disabled at the source: imported, but not enabled at the source
    assert d["weekly-digest"].enabled_at_source is False
    assert d["daily-story"].enabled_at_source is True
    # a field Agent Zero may have added since is a warning, not a failure
    assert ("priority", "warning") in notes(p, "inbox-triage")
    skipped = {(n.task, n.kind): n.reason for n in p.skipped}
    assert "adhoc" in skipped[("tasks[5] 'Deploy notes'", "skipped")]
    assert "already past" in skipped[("tasks[4] 'Dentist reminders'", "skipped")]


def test_agent_zero_yaml_variant_gives_the_same_tasks() -> None:
    from_json = plan("agent-zero", "agent-zero-tasks.json")
    from_yaml = plan("agent-zero", "agent-zero-tasks.yaml")
    assert [(d.name, d.key, d.body) for d in from_yaml.drafts] == [
        (d.name, d.key, d.body) for d in from_json.drafts
    ]


def test_agent_zero_prompts_through_an_agent_cli() -> None:
    p = plan("agent-zero", "agent-zero-tasks.json", AGENT)
    story = drafts(p)["daily-story"]
    assert "llm" not in story.body
    command = story.body["command"]
    assert command[:3] == ["hermes", "chat", "-q"]
    assert command[3].startswith("You are a novelist. Write in plain English.\n\nWrite tonight's")
    assert ("system_prompt", "approximated") in notes(p, "daily-story")
    assert_valid(p)


def test_agent_prompts_without_a_target_are_refused_with_what_to_give() -> None:
    with pytest.raises(PromptTargetMissing, match="--base-url URL --model NAME"):
        plan("agent-zero", "agent-zero-tasks.json", ImportOptions(clock=FakeClock(NOW)))


# ---- Hermes -----------------------------------------------------------------------------


def test_hermes_jobs_with_their_schedules_and_deliveries() -> None:
    p = plan("hermes", "hermes-jobs.json", AGENT)
    d = drafts(p)
    assert sorted(d) == [
        "disk-report",
        "heartbeat-check",
        "morning-brief",
        "story-chapter",
        "tax-reminder",
        "weekly-review",
    ]
    brief = d["morning-brief"]
    assert brief.key == "hermes:3f9a1c2b7d10"
    assert brief.body["cron"] == "0 7 * * *"
    assert brief.body["timezone"] == "Europe/Berlin"
    # telegram:CHAT:THREAD -> an Apprise URL whose token is a placeholder
    assert brief.body["deliver"] == ["tgram://${TELEGRAM_BOT_TOKEN}/-1001234567890:17"]
    assert {("skills", "dropped"), ("enabled_toolsets", "dropped")} <= set(
        notes(p, "morning-brief")
    )
    # interval: every N minutes on the grid of its next run
    beat = d["heartbeat-check"]
    assert (beat.body["every"], beat.body["anchor"]) == ("30m", "2026-06-01T10:30:00+00:00")
    # origin -> the chat it was made in; local -> said, not needed
    assert beat.body["deliver"] == ["tgram://${TELEGRAM_BOT_TOKEN}/123456789"]
    assert beat.body["cwd"] == "/srv/monitor"
    assert ("deliver", "approximated") in notes(p, "heartbeat-check")
    # once -> at; plain "telegram" -> the home channel, a variable too
    tax = d["tax-reminder"]
    assert tax.body["at"] == "2031-07-10T09:00:00+02:00"
    assert tax.body["deliver"] == ["tgram://${TELEGRAM_BOT_TOKEN}/${TELEGRAM_HOME_CHANNEL}"]
    assert set(p.variables) == {"TELEGRAM_BOT_TOKEN", "TELEGRAM_HOME_CHANNEL", "SLACK_BOT_TOKEN"}
    assert_valid(p)


def test_hermes_states_repeat_and_unconvertible_targets_are_reported() -> None:
    p = plan("hermes", "hermes-jobs.json", AGENT)
    d = drafts(p)
    review = d["weekly-review"]
    assert review.enabled_at_source is False
    assert "on holiday" in reasons(p, "weekly-review")
    assert "stops after 12 runs (5 done)" in reasons(p, "weekly-review")
    assert review.body["deliver"] == ["slack://${SLACK_BOT_TOKEN}/#reviews"]
    assert "webhook" in reasons(p, "weekly-review")  # discord needs a webhook URL
    assert "429 Model busy" in reasons(p, "story-chapter")
    assert ("context_from", "dropped") in notes(p, "story-chapter")
    # a script-only job becomes a command of its own, no agent needed
    disk = d["disk-report"]
    assert disk.body["command"][0] == "python3"
    assert disk.body["command"][1].endswith("/.hermes/scripts/disk_report.py")
    assert ("tier", "warning") in notes(p, "disk-report")
    skipped = {n.task: (n.kind, n.reason) for n in p.skipped}
    assert skipped["jobs[3] 'Passport renewal'"] == ("skipped", "completed at the source")
    assert skipped["jobs[7] 'Broken'"][0] == "error"
    assert "fortnightly" in skipped["jobs[7] 'Broken'"][1]


@pytest.mark.parametrize("variant", ["hermes-jobs-list.json", "hermes-jobs-by-id.json"])
def test_hermes_bare_list_and_map_by_id_give_the_same_jobs(variant: str) -> None:
    whole = plan("hermes", "hermes-jobs.json", AGENT)
    part = plan("hermes", variant, AGENT)
    expected = [(d.name, d.key, d.body) for d in whole.drafts[:3]]
    assert [(d.name, d.key, d.body) for d in part.drafts] == expected


def test_a_utf8_byte_order_mark_is_skipped_and_said() -> None:
    p = plan("hermes", "hermes-jobs-bom.json", AGENT)
    assert len(p.drafts) == 3
    assert any("byte-order mark" in n.reason for n in p.notes)


# ---- OpenClaw ---------------------------------------------------------------------------


def test_openclaw_jobs_every_schedule_kind_and_delivery() -> None:
    p = plan("openclaw", "openclaw-jobs.json")
    d = drafts(p)
    assert sorted(d) == [
        "family-digest",
        "morning-brief",
        "nightly-summary",
        "send-reminder",
        "uptime-sweep",
    ]
    brief = d["morning-brief"]
    assert brief.body["cron"] == "0 7 * * *"
    assert brief.body["timezone"] == "America/Los_Angeles"
    assert brief.body["timeout"] == "15m"  # timeoutSeconds 900
    assert brief.body["deliver"] == ["tgram://${TELEGRAM_BOT_TOKEN}/-1001234567890:123"]
    assert brief.body["description"] == "Morning brief — Overnight updates for the team"
    assert {("payload.thinking", "dropped"), ("agentId", "dropped")} <= set(
        notes(p, "morning-brief")
    )
    sweep = d["uptime-sweep"]
    assert (sweep.body["every"], sweep.body["anchor"]) == ("15m", "2026-01-01T00:00:00+00:00")
    assert "deliver" not in sweep.body  # delivery mode none
    assert "provider overloaded (529)" in reasons(p, "uptime-sweep")
    reminder = d["send-reminder"]
    assert reminder.body["at"] == "2031-07-05T16:00:00+00:00"  # atMs
    assert ("payload", "approximated") in notes(p, "send-reminder")  # a system event
    nightly = d["nightly-summary"]
    assert nightly.enabled_at_source is False
    assert nightly.body["deliver"] == ["slack://${SLACK_BOT_TOKEN}/C1234567890"]
    assert ("payload.to", "dropped") in notes(p, "family-digest")  # whatsapp
    assert ("labels", "warning") in notes(p, "family-digest")
    skipped = {n.task: (n.kind, n.reason) for n in p.skipped}
    assert skipped["jobs[3] 'Old reminder'"] == ("skipped", "it already ran")
    assert "Mars/Olympus_Mons" in skipped["jobs[6] 'Broken zone'"][1]
    assert_valid(p)


def test_openclaw_times_and_intervals_out_of_range_are_the_jobs_errors(tmp_path: Path) -> None:
    """An atMs of 1e20 (or infinity) ended the whole import in an OSError traceback, and
    the good jobs were not imported (outside-in probe): each is now its job's error,
    naming the field."""
    import json

    def job(name: str, schedule: dict[str, Any]) -> dict[str, Any]:
        payload = {"kind": "agentTurn", "message": "hi"}
        return {"id": name, "name": name, "schedule": schedule, "payload": payload}

    path = tmp_path / "jobs.json"
    jobs = [
        job("far", {"kind": "at", "atMs": 99999999999999999999}),
        job("huge", {"kind": "every", "everyMs": 1e300}),
        job("anchored", {"kind": "every", "everyMs": 60000, "anchorMs": -(10**20)}),
        job("good", {"kind": "every", "everyMs": 60000}),
    ]
    path.write_text(json.dumps({"version": 1, "jobs": jobs}))
    p = make_plan("openclaw", path, AGENT)
    assert sorted(drafts(p)) == ["good"]
    errors = {n.task: n.reason for n in p.skipped}
    assert errors["jobs[0] 'far'"] == "schedule.atMs: epoch milliseconds out of range: 1.000e+20"
    assert errors["jobs[1] 'huge'"].startswith("schedule.everyMs must be from 1000 ms to 10 years")
    assert errors["jobs[2] 'anchored'"].startswith("schedule.anchorMs: epoch milliseconds out")


# ---- crontab ----------------------------------------------------------------------------


def test_crontab_lines_without_cron_tz_keep_the_zone_they_ran_in(tmp_path: Path) -> None:
    """Cron ran them in the machine's zone: each is written with it, so a config with
    another `timezone:` does not move them (it moved them an hour, said only in a
    note; outside-in probe)."""
    from agentcron.importers._zone import machine_zone

    zone = machine_zone()[0]
    path = tmp_path / "plain.crontab"
    path.write_text("0 1 * * * /usr/bin/run.sh\nCRON_TZ=Asia/Tokyo\n0 2 * * * /usr/bin/tokyo.sh\n")
    p = make_plan("crontab", path, AGENT)
    body = drafts(p)["run"].body
    assert list(body)[:3] == ["cron", "timezone", "command"]
    assert body["timezone"] == zone
    assert drafts(p)["tokyo"].body["timezone"] == "Asia/Tokyo"  # CRON_TZ's own, kept
    [note] = [n for n in p.notes if n.field == "CRON_TZ"]
    assert note.kind == "approximated"
    assert f"cron ran 1 of these in this machine's zone ({zone})" in note.reason


def _machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, zone: str) -> None:
    """This machine's /etc/localtime, as the importer reads it, a link to ``zone``."""
    link = tmp_path / "localtime"
    link.symlink_to(f"/usr/share/zoneinfo/{zone}")
    monkeypatch.setattr("agentcron.importers._zone.LOCALTIME", link)


def test_a_crontab_imported_into_a_config_of_another_zone_keeps_crons_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: the machine in Europe/Berlin, the config in UTC, the importing shell's
    TZ in Tokyo: the 01:00 job still fires at 01:00 Berlin time, and the shell's TZ is
    said not to be what cron ran in."""
    from typer.testing import CliRunner

    from agentcron.config.loader import load_config
    from agentcron.interfaces.cli import app
    from agentcron.schedules.zones import _system_zone_cached

    _machine(monkeypatch, tmp_path, "Europe/Berlin")
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    _system_zone_cached.cache_clear()
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "home"))
    config = tmp_path / "agentcron.yaml"
    config.write_text("timezone: UTC\ntasks: {}\n")
    tab = tmp_path / "plain.crontab"
    tab.write_text("0 1 * * * /usr/bin/run.sh\n")
    res = CliRunner().invoke(
        app, ["import", "crontab", str(tab), "--apply", "--enable", "--config", str(config)]
    )
    _system_zone_cached.cache_clear()
    assert res.exit_code == 0, res.output
    spec = load_config(config).tasks["run"]
    assert spec.timezone == "Europe/Berlin"
    assert (
        "file.TZ: warning: this shell's TZ is Asia/Tokyo, but cron runs in the machine's "
        f"zone, Europe/Berlin ({tmp_path / 'localtime'} links to it): the tasks are written "
        "with `timezone: Europe/Berlin`, not Asia/Tokyo" in " ".join(res.output.split())
    )


def test_crontab_lines_are_written_in_the_machines_zone_not_the_shells_tz(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cron daemon runs in the machine's zone, not in the TZ of the shell importing
    its crontab: a shell with TZ set wrote every entry in the shell's zone (probe)."""
    import os

    from agentcron.schedules.zones import _system_zone_cached

    localtime = Path("/etc/localtime")
    if not localtime.is_symlink() or "zoneinfo/" not in os.readlink(localtime):
        pytest.skip("this machine's /etc/localtime names no zone")
    machine = os.readlink(localtime).rsplit("zoneinfo/", 1)[1]
    shell = "Asia/Tokyo" if machine != "Asia/Tokyo" else "America/Lima"
    monkeypatch.setenv("TZ", shell)
    _system_zone_cached.cache_clear()
    path = tmp_path / "plain.crontab"
    path.write_text("0 1 * * * /usr/bin/run.sh\n")
    p = make_plan("crontab", path, AGENT)
    _system_zone_cached.cache_clear()
    assert drafts(p)["run"].body["timezone"] == machine
    [note] = [n for n in p.notes if n.field == "TZ"]
    assert note.reason.startswith(
        f"this shell's TZ is {shell}, but cron runs in the machine's zone, {machine}"
    )


def test_the_machines_zone_from_a_link_a_copy_or_no_file(tmp_path: Path) -> None:
    from agentcron.importers._zone import machine_zone

    nowhere = tmp_path / "timezone"
    link = tmp_path / "link"
    link.symlink_to("/usr/share/zoneinfo/America/New_York")
    assert machine_zone(link, nowhere)[0] == "America/New_York"
    copy = tmp_path / "copy"
    copy.write_bytes(Path("/usr/share/zoneinfo/Europe/Berlin").read_bytes())
    assert machine_zone(copy, nowhere) == ("Europe/Berlin", f"{copy} holds its data")
    assert machine_zone(tmp_path / "missing", nowhere)[0] == "UTC"
    junk = tmp_path / "junk"
    junk.write_bytes(b"TZif-not-really")
    name, where = machine_zone(junk, nowhere)
    assert name is None and where == f"{junk} is a copy of no zone this machine knows"


def test_zone_data_that_cannot_be_read_is_said_and_a_missing_table_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Naming the machine's zone: a name that is no zone's, and tables or Debian's
    /etc/timezone that a system does not have, are answers, quiet; zone data or tables
    that cannot be read are said (the zone may then go unnamed, or be named by an
    alias), not passed over without a word."""
    from agentcron.importers import _zone

    copy = tmp_path / "copy"
    copy.write_bytes(Path("/usr/share/zoneinfo/Europe/Berlin").read_bytes())
    bare = tmp_path / "bare"  # a zone folder without zone1970.tab or zone.tab
    bare.mkdir()
    monkeypatch.setattr(_zone, "TZPATH", (str(bare), *_zone.TZPATH))
    assert _zone.machine_zone(copy, tmp_path / "no-timezone")[0] == "Europe/Berlin"
    assert _zone._valid("Not/AZone") is None
    assert caplog.text == ""
    (bare / "zone1970.tab").mkdir()  # there, but cannot be read as a file
    (tmp_path / "timezone").mkdir()
    assert _zone.machine_zone(copy, tmp_path / "timezone")[0] == "Europe/Berlin"
    assert f"cannot read {bare / 'zone1970.tab'}" in caplog.text
    assert f"cannot read {tmp_path / 'timezone'}" in caplog.text

    def unreadable(name: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_zone, "ZoneInfo", unreadable)
    assert _zone._valid("Europe/Berlin") is None
    assert "cannot read the time zone data of 'Europe/Berlin': Permission denied" in caplog.text


def test_crontab_entries_env_lines_cron_tz_and_percent() -> None:
    p = plan("crontab", "user.crontab")
    d = drafts(p)
    assert sorted(d) == [
        "backup",
        "curl",
        "find",
        "mail",
        "reindex",
        "standup-notes",
        "sync-feeds",
    ]
    backup = d["backup"]
    assert backup.body["description"] == "Nightly backup of the notes folder"
    assert backup.body["cron"] == "30 3 * * *"
    assert backup.body["timezone"] == "Europe/Berlin"  # CRON_TZ above it
    assert (
        backup.body["command"] == "/home/me/bin/backup.sh --full >> /home/me/logs/backup.log 2>&1"
    )
    assert backup.body["shell"] is True
    # the key leaves the file: a placeholder, listed to be set
    assert backup.body["env"] == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "OPENAI_API_KEY": "${OPENAI_API_KEY}",
    }
    assert "OPENAI_API_KEY" in p.variables
    # % ends the command; the rest is its input, one line per further %; \% is %
    assert d["mail"].body["command"] == (
        "printf '%s\\n' Hello, 'the digest is in ~/digest.txt (100% done).' "
        '| ( mail -s "Weekly digest" me@example.org )'
    )
    assert d["sync-feeds"].body["cron"] == "@hourly"
    # a later CRON_TZ applies below it; the shell's ${HOME} stays the shell's
    standup = d["standup-notes"]
    assert standup.body["timezone"] == "America/New_York"
    assert not [n for n in p.notes if n.field == "CRON_TZ"]  # every line had its zone
    assert standup.body["command"] == '/home/me/bin/standup-notes.sh "$${HOME}/notes"'
    skipped = {(n.line, n.kind): n.reason for n in p.skipped}
    assert "no 'at start' schedule" in skipped[(23, "skipped")]  # @reboot
    assert skipped[(26, "skipped")] == "commented out: not imported"
    assert "minute field '61'" in skipped[(29, "error")]
    mailto = [n for n in p.notes if n.task == "MAILTO"]
    assert mailto and "ops@example.org" in mailto[0].reason and mailto[0].line == 4
    assert_valid(p)


def test_crontab_shell_and_empty_mailto() -> None:
    p = plan("crontab", "bash.crontab")
    (rotate,) = p.drafts
    assert rotate.body["command"][:2] == ["/bin/bash", "-c"]
    assert "shell" not in rotate.body
    assert "{app,worker}" in rotate.body["command"][2]
    assert any("mailed nothing" in n.reason for n in p.notes)
    assert_valid(p)


def test_a_crontab_command_run_as_written_by_the_shell(tmp_path: Path) -> None:
    """The %-input rewrite feeds the command what cron would have fed it."""
    import subprocess

    crontab = tmp_path / "c"
    crontab.write_text("* * * * * cat > " + str(tmp_path / "out") + "%one%two \\% three%\n")
    (draft,) = make_plan("crontab", crontab, LLM).drafts
    from agentcron.config._env import expand

    subprocess.run(["/bin/sh", "-c", expand(draft.body["command"], {})], check=True)
    assert (tmp_path / "out").read_text() == "one\ntwo % three\n"


def test_a_crontab_line_that_is_only_input_runs_nothing_and_succeeds(tmp_path: Path) -> None:
    """Probe: `0 4 * * * %only stdin` became `… | (  )`, which sh refuses (exit 2):
    every run failed, where cron runs an empty command that succeeds."""
    import subprocess

    crontab = tmp_path / "c"
    crontab.write_text("0 4 * * * %only stdin\n")
    p = make_plan("crontab", crontab, LLM)
    (draft,) = p.drafts
    from agentcron.config._env import expand

    done = subprocess.run(["/bin/sh", "-c", expand(draft.body["command"], {})], check=False)
    assert done.returncode == 0
    assert any("no command before its %" in n.reason for n in draft.notes)


# ---- bad files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        ("openclaw", "openclaw-jobs-utf16.json", "UTF-16 text"),
        ("agent-zero", "agent-zero-tasks-truncated.json", "not valid JSON"),
        ("hermes", "hermes-jobs-odd.json", '"jobs" must be a list or a map of jobs'),
        ("openclaw", "hermes-jobs-by-id.json", "not an OpenClaw cron file"),
        ("agent-zero", "no-such-file.json", "no such file"),
        ("crontab", ".", "is a directory"),
    ],
)
def test_bad_files_give_one_clear_error(source: str, name: str, expected: str) -> None:
    with pytest.raises(ImportFileError) as caught:
        plan(source, name, AGENT)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
        (b"{}\x00\x00", "NUL bytes"),
        (b'{"tasks": [', "not valid JSON"),
        (b"[1, 2", ":1:"),  # where it breaks
    ],
)
def test_corrupt_content_is_named_with_its_place(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "tasks.json"
    path.write_bytes(content)
    with pytest.raises(ImportFileError) as caught:
        make_plan("agent-zero", path, LLM)
    assert expected in str(caught.value)


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cron").write_text("not a folder")
    with pytest.raises(ImportFileError, match=r"cannot read .*: Not a directory"):
        make_plan("hermes", tmp_path / "cron" / "jobs.json", AGENT)


def test_a_job_that_is_not_an_object_is_reported_and_the_rest_imported(tmp_path: Path) -> None:
    path = tmp_path / "jobs.json"
    path.write_text(
        '{"jobs": ["oops", {"id": "a1", "prompt": "hi", '
        '"schedule": {"kind": "interval", "minutes": 5}}]}'
    )
    p = make_plan("hermes", path, AGENT)
    assert [d.key for d in p.drafts] == ["hermes:a1"]
    assert [(n.task, n.kind) for n in p.skipped] == [("jobs[0]", "error")]
