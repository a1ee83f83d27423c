"""What the CLI shows people (issue 12 finding 13): whole times at 80 columns in the
task's zone with its abbreviation, seconds where they matter and never fractions, a
trigger that says when it will run, JSON errors for --json, and --version."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentcron.interfaces.cli import app

CONFIG = """
timezone: Europe/Berlin
tasks:
  dst:
    cron: "30 2 * * *"
    command: ["echo", "x"]
  fast:
    every: 20s
    command: ["echo", "hi"]
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    (tmp_path / "agentcron.yaml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "80")
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (result.stdout, result.stderr)
        return result.stdout

    return run


def test_tables_show_whole_times_in_the_tasks_zone_at_80_columns(cli) -> None:  # type: ignore[no-untyped-def]
    listed = cli("list")
    assert re.search(r"\bdst\b.*│ (\w{3} \d\d )?02:30 CET +│", listed), listed
    assert re.search(r"\bfast\b.*│ (\w{3} \d\d )?\d\d:\d\d(:\d\d)? CET +│", listed), listed
    nxt = cli("next", "dst", "--count", "2", "--from", "2027-03-27T00:00")
    assert "Sat 2027-03-27 02:30 CET" in nxt and "Sun 2027-03-28 03:00 CEST" in nxt, nxt
    assert "01:00 UTC" in nxt and "does not exist" in nxt, nxt
    sub = cli("next", "fast", "--count", "3", "--from", "2027-01-05T10:07")
    assert re.findall(r"\d\d:\d\d(?::\d\d)? CET", sub) == [
        "10:07:20 CET",
        "10:07:40 CET",
        "10:08 CET",
    ], sub


def test_a_triggered_run_shows_no_fractions_and_says_when_it_starts(cli) -> None:  # type: ignore[no-untyped-def]
    said = cli("trigger", "fast")
    said = " ".join(said.split())
    assert (
        "the daemon is not running: the run starts when it does; `agentcron run` starts "
        "the daemon" in said
    ), said
    runs = cli("runs")
    assert not re.search(r"\.\d{3,}", runs), runs
    # seconds are left out when they are :00 (a run triggered at 09:59:00.4)
    assert re.search(r"│ \d\d:\d\d(:\d\d)? CET +│ pending", runs), runs
    assert json.loads(cli("runs", "--json"))[0]["scheduled_for"].count(".") == 1  # ISO kept


def test_json_commands_answer_errors_in_json_and_version_is_printed(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("notify", "test", "--json", code=1)
    assert json.loads(out) == {
        "error": "no channels configured: add `notify:` URLs to agentcron.yaml or pass "
        "--channel URL"
    }
    assert re.fullmatch(r"agentcron \S+\n", cli("--version")), cli("--version")


def test_a_one_shot_in_the_past_is_refused_at_add_and_recorded_expired_from_the_file(
    cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    out = cli("add", "past", "--at", "2020-01-01T10:00", "--json", "--", "echo", code=1)
    error = json.loads(out)["error"]
    assert error.startswith("at 2020-01-01T10:00+01:00 is in the past (now "), error
    assert "`agentcron trigger` runs a task now" in error
    assert "past" not in {t["name"] for t in json.loads(cli("list", "--json"))}
    config = tmp_path / "agentcron.yaml"
    config.write_text(
        config.read_text() + '  once:\n    at: "2020-01-01T10:00"\n    command: ["echo"]\n'
    )
    [run] = [r for r in json.loads(cli("runs", "--json")) if r["task"] == "once"]
    assert run["status"] == "expired", run
    assert run["reason"] == (
        "its time had already passed when agentcron first read it from the config file"
    )


def test_a_long_task_list_is_plain_aligned_text_with_every_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past LARGE_TABLE rows the list is printed without Rich's table layout (which took
    two minutes for 100,000 tasks): the same columns, aligned, one line per task."""
    from agentcron.interfaces.render import LARGE_TABLE

    count = LARGE_TABLE + 25
    tasks = "".join(
        f'  t{i:04d}:\n    every: {i % 7 + 1}h\n    command: ["true"]\n' for i in range(count)
    )
    (tmp_path / "agentcron.yaml").write_text(f"timezone: Europe/Berlin\ntasks:\n{tasks}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "task",
        "schedule",
        "next",
        "run",
        "last",
        "health",
        "delivery",
        "source",
    ]
    assert set(lines[1].replace(" ", "")) == {"-"}
    rows = [line for line in lines[2:] if line.startswith("t")]
    assert [r.split()[0] for r in rows] == [f"t{i:04d}" for i in range(count)]
    starts = {line.index("every") for line in rows}  # the schedule column, aligned
    assert starts == {lines[0].index("schedule")}
    # no daemon runs on this home: no task is `ok`, and one line under the table says why
    assert all(
        re.search(r"\(Europe/Berlin\)\s+.*CES?T\s+-\s+not firing\s+-\s+file$", r) for r in rows
    )
    assert "no daemon is running" in result.stderr
    assert "│" not in result.stdout and "\x1b[" not in result.stdout


def test_health_shows_a_channel_that_works_again_as_ok_not_its_old_error() -> None:
    from rich.console import Console

    from agentcron.interfaces import render

    channel = {
        "channel": "json://127.0.0.1:18804",
        "ok": True,
        "last_error": "A Connection error occurred sending JSON notification",
        "last_ok_at": "2026-06-01T10:00:05+00:00",
        "pending": 0,
    }
    data = {
        "scheduling": True,
        "last_tick_age_s": 1.0,
        "runs_in_progress": 0,
        "nodes": [],
        "outbox": {"backlog": 0, "oldest_age_s": None},
        "open_incidents": 0,
        "channels": [channel, {**channel, "channel": "json://down", "ok": False}],
        "database": "sqlite:///x",
    }
    console = Console(record=True, width=200)
    render.health(console, data)
    text = console.export_text()
    assert "✔ channel json://127.0.0.1:18804: ok, last sent" in text
    assert "Connection error" not in text.split("json://down")[0]
    assert "✖ channel json://down: A Connection error occurred" in text


def test_the_list_names_the_health_word_before_its_sentence() -> None:
    from agentcron.interfaces.render import _health_cell

    assert _health_cell("ok", None) == "ok"
    assert _health_cell("suspicious", "3 successes in a row without output") == (
        "suspicious: 3 successes in a row without output"
    )
    assert _health_cell("retrying", "retrying (attempt 2/3 at 02:07): timeout") == (
        "retrying (attempt 2/3 at 02:07): timeout"
    )
    assert _health_cell("failing", "failing: code_error") == "failing: code_error"
    assert _health_cell("over_budget", None) == "over_budget"


def test_logs_on_a_terminal_shows_control_characters_and_says_deliveries() -> None:
    """Outside-in probes: a run's ESC, BEL and NUL reached the operator's terminal as
    they were printed (a task's output could drive it); the deliveries of a run were
    only in --json; a kept file that was gone looked like no output at all."""
    import io

    from rich.console import Console

    from agentcron.interfaces import render

    run = {
        "id": 4,
        "task": "weird",
        "scheduled_for": "2026-06-01T10:00:00+00:00",
        "status": "succeeded",
        "reason": None,
        "attempts_detail": [],
        "deliveries": [
            {
                "target": "json://127.0.0.1:9/out",
                "status": "retrying",
                "attempts": 2,
                "next_attempt_at": "2026-06-01T10:05:00+00:00",
                "last_error": "HTTP 503",
            }
        ],
        "output": "title\x1b]0;pwned\x07 red\x1b[31m nul\x00 end\n",
        "output_path": "/h/outputs/weird/4.log",
    }
    screen = io.StringIO()
    render.run_detail(Console(file=screen, force_terminal=True, color_system=None), run)
    shown = screen.getvalue()
    assert "\x1b]0;" not in shown and "\x07" not in shown and "\x00" not in shown
    assert "title^[]0;pwned^G red^[[31m nul^@ end" in shown
    assert "delivery to json://127.0.0.1:9/out: retrying (2 attempt(s)), next " in shown
    assert "HTTP 503" in shown
    piped = io.StringIO()
    render.run_detail(Console(file=piped, force_terminal=False), run)
    assert "\x1b[31m" in piped.getvalue()  # written to a file or a pipe: as printed
    gone = io.StringIO()
    render.run_detail(Console(file=gone, width=200), {**run, "output": None})
    assert "(no output kept: /h/outputs/weird/4.log is gone" in gone.getvalue()


def test_logs_says_token_counts_in_words_not_as_a_dict() -> None:
    """Outside-in probe: `logs` printed "tokens {'prompt': 100, 'completion': 50}"."""
    import io

    from rich.console import Console

    from agentcron.interfaces import render

    attempt = {"number": 1, "status": "succeeded", "duration_s": 1.5, "error_class": None}
    attempt |= {"error": None, "explanation": None, "started_at": None}
    attempt["tokens"] = {"prompt": 1200, "completion": 50}
    run = {"id": 1, "task": "story", "scheduled_for": "2026-06-01T10:00:00+00:00"}
    run |= {"status": "succeeded", "reason": None, "attempts_detail": [attempt], "output": ""}
    screen = io.StringIO()
    render.run_detail(Console(file=screen, width=200), run)
    assert "attempt 1: succeeded in 1.5s — tokens: prompt 1,200, completion 50" in screen.getvalue()
    assert "{" not in screen.getvalue()


def test_what_a_task_printed_or_holds_is_shown_as_written_not_as_markup() -> None:
    """Rich read stored text as markup: an error line "[red]boom-error[/red] [x]" showed
    as "boom-error" (in red), and `show` printed a command "import sys; [print(i) for i
    in range(3)]; print('END')" as "import sys; ; print('END')" (outside-in probe)."""
    import io

    from rich.console import Console

    from agentcron.interfaces import render

    said = "[red]boom-error[/red] [x]"
    run = {"id": 7, "task": "t", "scheduled_for": "2026-06-01T10:00:00+00:00"}
    run |= {"status": "failed", "reason": None, "attempts": 1, "error_class": "code_error"}
    run |= {"error": said, "started_at": None, "finished_at": None, "next_attempt_at": None}
    run |= {"delivery_status": "none", "output": None, "output_path": None}
    attempt = {"number": 1, "status": "failed", "duration_s": 0.1, "error_class": "code_error"}
    attempt |= {"error": said, "explanation": f"exit 1: {said}", "started_at": None}
    attempt["tokens"] = {}
    command = "import sys; [print(i) for i in range(3)]; print('END')"
    task = {"name": "t", "source": "file", "action": "command", "schedule": "*/5 * * * *"}
    task |= {"timezone": "UTC", "health": "failing", "health_detail": f"failing: {said}"}
    task |= {"paused": True, "pause_reason": "[b]why[/b]", "next": [], "recent_runs": [run]}
    task["spec"] = {"command": ["python3", "-c", command]}
    for show in (
        lambda c: render.runs_table(c, [run]),
        lambda c: render.run_detail(c, {**run, "attempts_detail": [attempt]}),
        lambda c: render.task_detail(c, task),
    ):
        screen = io.StringIO()
        show(Console(file=screen, width=250, force_terminal=True, color_system=None))
        assert said in screen.getvalue(), screen.getvalue()
    screen = io.StringIO()
    render.task_detail(Console(file=screen, width=250), task)
    assert command in screen.getvalue() and "([b]why[/b])" in screen.getvalue()


def test_pause_says_the_waiting_runs_it_cancels(cli) -> None:  # type: ignore[no-untyped-def]
    cli("trigger", "fast")
    said = cli("pause", "fast", "--reason", "[vendor] down")
    assert "paused fast ([vendor] down)" in said, said
    assert re.search(r"run \d+ \(waiting to start\) will not run: a paused task's", said), said


def test_health_says_a_providers_cooldown_is_over_not_over_until() -> None:
    """`health` printed "provider 127.0.0.1: over until 12:29:30 UTC" for a cooldown that
    had ended: read as the opposite of the truth (outside-in probe)."""
    import io

    from rich.console import Console

    from agentcron.interfaces import render

    data = {"scheduling": True, "last_tick_age_s": 1, "runs_in_progress": 0, "problem": None}
    data |= {"nodes": [], "outbox": {"backlog": 0, "oldest_age_s": None}, "open_incidents": 0}
    data |= {"channels": [], "database": "sqlite:///h/agentcron.db"}
    until = "2026-06-01T12:29:30+00:00"
    data["providers"] = [{"name": "127.0.0.1", "state": "over", "until": until, "reason": "429"}]
    screen = io.StringIO()
    render.health(Console(file=screen, width=200), data)
    assert "provider 127.0.0.1: cooldown over since " in screen.getvalue(), screen.getvalue()
    assert "over until" not in screen.getvalue()


def test_a_runs_attempts_carry_the_task_zones_offset_as_the_run_does(
    sqlite_store: Any, clock: Any, home: Path
) -> None:
    """Probe (MCP get_run): the run's times were +01:00 and its attempts' +00:00."""
    import asyncio
    from datetime import timedelta

    from harness import Harness

    h = Harness(sqlite_store, clock, home)
    h.add("paris", lambda: "done", every="1h", timezone="Europe/Paris", retries=0)
    asyncio.run(h.run_until(clock.now() + timedelta(hours=1), timedelta(minutes=30)))
    (slot,) = [s for s in h.slots("paris") if s.status.value == "succeeded"][:1]
    view = h.service.run_detail(slot.id, with_output=False)
    offset = view["started_at"][-6:]
    assert offset in ("+01:00", "+02:00"), view["started_at"]
    (attempt,) = view["attempts_detail"]
    assert attempt["started_at"].endswith(offset) and attempt["finished_at"].endswith(offset)


ZONED = """
timezone: Asia/Tokyo
tasks:
  nightly:
    cron: "0 2 * * *"
    command: ["echo", "x"]
  mumbai:
    every: 1h
    timezone: Asia/Kolkata
    command: ["echo", "x"]
"""


def test_run_times_name_their_tasks_zone_not_an_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Tokyo task's run read ``04:58:06 +09:00`` in `runs` and `show` while `list`
    said JST, and `logs` gave the ISO text (``2026-12-05T04:58:06.129384+09:00``). Each
    run's times now carry its task's zone abbreviation; IST is also Dublin's and
    Jerusalem's, so a Kolkata task's are named Asia/Kolkata. --json keeps offsets."""
    (tmp_path / "agentcron.yaml").write_text(ZONED)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "120")
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result.stdout

    cli("trigger", "nightly")
    cli("trigger", "mumbai")
    runs = cli("runs")
    assert re.search(r"│ nightly +│ \d\d:\d\d(:\d\d)? JST +│ pending", runs), runs
    assert re.search(r"│ mumbai +│ \d\d:\d\d(:\d\d)? Asia/Kolkata +│ pending", runs), runs
    assert "+09:00" not in runs and "+05:30" not in runs and "IST" not in runs, runs
    shown = cli("show", "nightly")
    assert re.search(r"│ nightly +│ \d\d:\d\d(:\d\d)? JST +│ pending", shown), shown
    logged = cli("logs", "1")
    assert re.match(r"run 1 of nightly scheduled for [\d-]{10} \d\d:\d\d(:\d\d)? JST: ", logged)
    as_json = {r["task"]: r for r in json.loads(cli("runs", "--json"))}
    assert as_json["nightly"]["scheduled_for"].endswith("+09:00"), as_json
    assert as_json["mumbai"]["scheduled_for"].endswith("+05:30"), as_json
    assert json.loads(cli("logs", "1", "--json"))["scheduled_for"].endswith("+09:00")


def test_an_attempts_and_deliverys_times_are_named_in_the_runs_zone() -> None:
    """`logs` of a run in progress: its attempt's start and a delivery's next try."""
    import io

    from rich.console import Console

    from agentcron.interfaces import render

    at = "2026-06-01T09:00:00+09:00"
    attempt = {"number": 1, "status": "running", "duration_s": None, "started_at": at}
    attempt |= {"error_class": None, "tokens": {}}
    delivery = {"target": "file:///tmp/x", "status": "retrying", "attempts": 1}
    delivery |= {"next_attempt_at": "2026-06-01T09:05:00+09:00", "last_error": None}
    data = {"id": 7, "task": "nightly", "scheduled_for": at, "status": "running"}
    data |= {"attempts_detail": [attempt], "deliveries": [delivery], "output": None}
    screen = io.StringIO()
    render.run_detail(Console(file=screen, width=200), data, "Asia/Tokyo")
    said = screen.getvalue()
    assert "scheduled for 2026-06-01 09:00 JST: running" in said, said
    assert "running since " in said and "09:00 JST" in said.split("running since ")[1], said
    assert "09:05 JST" in said and "+09:00" not in said, said
