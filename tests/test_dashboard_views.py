"""The dashboard's sentences and shapes, as a person reads them: schedules in words,
countdowns, the not-running banner, the order of tasks, the duration sparkline."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from agentcron.interfaces.dashboard._sparkline import sparkline
from agentcron.interfaces.dashboard._views import banner, duration_text, relative, sort_tasks
from agentcron.interfaces.dashboard._words import schedule_in_words

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        ("0 2 * * *", "every day at 02:00"),
        ("@daily", "every day at 00:00"),
        ("30 2 * * 1-5", "at 02:30 on weekdays"),
        ("0 9 * * MON-FRI", "at 09:00 on weekdays"),
        ("0 10 * * 0,6", "at 10:00 at weekends"),
        ("0 8 * * 1", "at 08:00 on Mondays"),
        ("0 8 * * 1,5", "at 08:00 on Mondays and Fridays"),
        ("0 8 * * 7", "at 08:00 on Sundays"),
        ("*/15 * * * *", "every 15 minutes"),
        ("*/15 * * * 1-5", "every 15 minutes on weekdays"),
        ("* * * * *", "every minute"),
        ("*/30 8-18 * * *", "every 30 minutes from 08:00 to 18:59"),
        ("0 * * * *", "every hour, on the hour"),
        ("@hourly", "every hour, on the hour"),
        ("5 * * * *", "every hour at minute 5"),
        ("0 */6 * * *", "every 6 hours at minute 0 (from 00:00)"),
        ("0 9-17 * * 1-5", "every hour from 09:00 to 17:00 on weekdays"),
        ("0 9,13,17 * * *", "every day at 09:00, 13:00 and 17:00"),
        ("0 0 1 * *", "at 00:00 on day 1 of the month"),
        ("0 0 1,15 * *", "at 00:00 on days 1 and 15 of the month"),
        ("0 0 L * *", "at 00:00 on the last day of the month"),
        ("0 0 1 1 *", "at 00:00 on day 1 of the month in January"),
        ("0 6 * 3,9 *", "at 06:00 in March and September"),
        ("every 10 min", "every 10 min"),
        ("at 2026-07-01T09:00:00+02:00", "once, at 2026-07-01 09:00:00+02:00"),
    ],
)
def test_common_schedules_are_said_in_words(schedule: str, words: str) -> None:
    assert schedule_in_words(schedule) == words


@pytest.mark.parametrize(
    "schedule",
    [
        "0 0 1 * 1",  # a day of the month OR a Monday: cron's rule, easy to misread
        "0 9-17/2 * * *",
        "0 0 * * 1-3,5",
        "1,2 3,4 * * *",
        "0 0 * * * *",
    ],
)
def test_shapes_not_put_in_words_give_none_rather_than_a_guess(schedule: str) -> None:
    assert schedule_in_words(schedule) is None


def test_countdowns_and_ages_in_words() -> None:
    assert relative(NOW + timedelta(seconds=42), NOW) == "in 42s"
    assert relative(NOW + timedelta(minutes=3, seconds=5), NOW) == "in 3 min 5s"
    assert relative(NOW + timedelta(minutes=3), NOW) == "in 3 min"
    assert relative(NOW - timedelta(minutes=4), NOW) == "4 min ago"
    assert relative(NOW + timedelta(hours=26), NOW) == "in 1 day 2 hours"
    assert relative(NOW + timedelta(milliseconds=300), NOW) == "now"
    assert relative(None, NOW) == ""


def test_durations_keep_tenths_where_runs_differ() -> None:
    # a run of 0.1 ms is not one of no time: "<1ms", as format_duration says it
    assert [duration_text(s) for s in (0, 0.0001, 0.018, 1.34, 9.96, 42.4, 200)] == [
        "0ms",
        "<1ms",
        "18ms",
        "1.3s",
        "10s",
        "42s",
        "3 min 20s",
    ]
    assert duration_text(None) == ""


def _node(**fields: object) -> dict[str, object]:
    base = {"host": "box", "pid": 4242, "state": "stale", "stopped_at": None}
    return {**base, **fields}


def test_the_banner_is_silent_while_a_daemon_is_alive() -> None:
    beat = (NOW - timedelta(seconds=3)).isoformat()
    assert (
        banner({"alive": True, "nodes": [_node(heartbeat_at=beat, state="running")]}, NOW) is None
    )


def test_the_banner_says_when_the_last_tick_was_and_that_nothing_fires() -> None:
    old = (NOW - timedelta(minutes=9)).isoformat()
    newer = (NOW - timedelta(minutes=4)).isoformat()
    text = banner(
        {"alive": False, "nodes": [_node(heartbeat_at=old), _node(heartbeat_at=newer, pid=7)]},
        NOW,
    )
    assert text is not None
    assert text.startswith("The daemon's last tick was 4 min ago: nothing is firing.")
    assert "pid 7 on box" in text


def test_the_banner_tells_a_stopped_daemon_and_a_database_never_run() -> None:
    tick = (NOW - timedelta(minutes=3)).isoformat()
    stopped = (NOW - timedelta(minutes=2)).isoformat()
    node = _node(heartbeat_at=stopped, last_tick=tick, stopped_at=stopped, state="stopped")
    assert banner({"alive": False, "nodes": [node]}, NOW) == (
        "The daemon's last tick was 3 min ago: nothing is firing. "
        "It was stopped 2 min ago; start it again on its machine with the command "
        "`agentcron run` (this dashboard cannot start it)."
    )
    never = banner({"alive": False, "nodes": []}, NOW)
    assert never is not None and never.startswith("No daemon has ever run against this database")


def test_a_live_daemon_whose_scheduler_does_not_tick_gets_the_banner_too() -> None:
    beat = (NOW - timedelta(seconds=2)).isoformat()
    old_tick = (NOW - timedelta(minutes=5)).isoformat()
    stuck = _node(heartbeat_at=beat, last_tick=old_tick, state="running")
    text = banner({"alive": True, "nodes": [stuck]}, NOW)
    assert text is not None
    assert text.startswith("A daemon is running but its scheduler's last tick was 5 min ago")
    fresh = _node(heartbeat_at=beat, last_tick=beat, state="running")
    assert banner({"alive": True, "nodes": [stuck, fresh]}, NOW) is None
    # a daemon that records no ticks is taken at its heartbeat's word
    assert (
        banner({"alive": True, "nodes": [_node(heartbeat_at=beat, state="running")]}, NOW) is None
    )


def test_tasks_are_ordered_most_urgent_first_then_by_name() -> None:
    words = ["ok", "paused", "retrying", "failing", "stuck", "ok", "delivery_failed", "overdue"]
    tasks = [{"name": f"t{i}", "health": h} for i, h in enumerate(words)]
    ordered = [(t["name"], t["health"]) for t in sort_tasks(tasks)]
    assert ordered == [
        ("t4", "stuck"),
        ("t3", "failing"),
        ("t7", "overdue"),
        ("t6", "delivery_failed"),
        ("t2", "retrying"),
        ("t0", "ok"),
        ("t5", "ok"),
        ("t1", "paused"),
    ]


def _run(run_id: int, seconds: float | None, status: str = "succeeded") -> dict[str, object]:
    start = NOW - timedelta(hours=run_id)
    end = None if seconds is None else (start + timedelta(seconds=seconds)).isoformat()
    return {"id": run_id, "status": status, "started_at": start.isoformat(), "finished_at": end}


def test_the_sparkline_draws_ended_runs_oldest_left_and_marks_failures() -> None:
    # newest first, as the service lists them; run 4 is still running (no end)
    runs = [_run(4, None, "running"), _run(3, 10, "failed"), _run(2, 30), _run(1, 20)]
    spark = sparkline(runs)
    assert spark is not None
    assert [d.label for d in spark.dots] == ["run 1: 20s", "run 2: 30s", "run 3: 10s (failed)"]
    assert [d.failed for d in spark.dots] == [False, False, True]
    xs = [d.x for d in spark.dots]
    assert xs == sorted(xs) and xs[0] == 3.0 and xs[-1] == spark.width - 3.0
    ys = {d.label: d.y for d in spark.dots}  # SVG y grows downwards: longest is highest
    assert ys["run 2: 30s"] < ys["run 1: 20s"] < ys["run 3: 10s (failed)"]
    assert spark.summary == "last 3 runs took 10s to 30s, latest 10s"


def test_no_sparkline_from_fewer_than_two_ended_runs() -> None:
    assert sparkline([]) is None
    assert sparkline([_run(1, 5), _run(2, None, "running")]) is None


def _luminance(colour: str) -> float:
    channels = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_text_colours_of_the_stylesheet_meet_wcag_aa_contrast() -> None:
    """Every text/background pair the stylesheet uses reaches 4.5:1 (WCAG AA)."""
    from agentcron.interfaces.dashboard._render import STATIC

    css = (STATIC / "dashboard.css").read_text()
    var = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", css))
    pairs = [
        ("text", "bg"), ("muted", "bg"), ("muted", "panel"), ("link", "bg"), ("link", "panel"),
        ("bad", "bad-bg"), ("text", "bad-bg"), ("warn", "warn-bg"), ("good", "good-bg"),
        ("calm", "calm-bg"), ("focus", "bg"),
    ]  # fmt: skip
    literal = [("#ffffff", var["bad"]), ("#ffffff", var["link"]), ("#0b3f7a", "#e1ecfa")]
    for fg, bg in [(var[a], var[b]) for a, b in pairs] + literal:
        light, dark = sorted((_luminance(fg), _luminance(bg)), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 4.5, (fg, bg)


def test_the_health_sentence_does_not_repeat_the_health_word() -> None:
    from agentcron.interfaces.dashboard._views import task_row

    def detail(health: str, sentence: str | None) -> str | None:
        task = {"name": "t", "health": health, "health_detail": sentence, "schedule": "* * * * *"}
        return task_row(task, [], NOW)["health_detail"]

    assert detail("failing", "failing: code_error: exit 3") == "code_error: exit 3"
    assert detail("paused", "paused") is None
    assert detail("overdue", "due since 09:00, not fired") == "due since 09:00, not fired"
    assert detail("delivery_failed", "delivery failed: smtp down") == "smtp down"


def test_a_daemon_that_lives_but_does_not_answer_is_not_told_to_be_started_again() -> None:
    """SIGSTOP: the banner said "stopped answering; start it again with `agentcron run`",
    which is refused while the process holds the home; `health` said "Send it SIGCONT"
    (outside-in probe). The banner now says what the service says."""
    beat = (NOW - timedelta(minutes=2)).isoformat()
    node = _node(heartbeat_at=beat, last_tick=beat, pid=12315)
    text = banner({"alive": False, "nodes": [node], "unresponsive_pid": 12315}, NOW)
    assert text == (
        "The daemon (pid 12315) is running but not answering (the last tick was 2 min ago): "
        "nothing is firing. It hangs or is stopped (SIGSTOP): on its machine, send it "
        "SIGCONT, or stop it and start it again with the command `agentcron run`."
    )
    starting = banner({"alive": False, "nodes": [], "starting_pid": 77}, NOW)
    assert starting == (
        "The daemon (pid 77) is starting (no tick yet): nothing fires until it ticks."
    )


def test_a_task_paused_while_failing_needs_attention_and_says_why() -> None:
    """The list showed only "paused", left it out of "need attention" and of the
    problems filter, though `list` and `doctor` count it as failing (outside-in probe)."""
    from agentcron.interfaces.dashboard._views import needs_attention, task_row

    task = {
        "name": "backup",
        "health": "paused",
        "health_detail": "paused while failing: code_error: exit 3",
        "paused": True,
        "schedule": "0 2 * * *",
        "next_run": None,
        "last_run": None,
    }
    calm = {**task, "name": "calm", "health_detail": "paused"}
    assert needs_attention(task) and not needs_attention(calm)
    row = task_row(task, [], NOW)
    assert row["problem"] and row["health_detail"] == "while failing: code_error: exit 3"
    ok = {**calm, "name": "a_ok", "health": "ok", "paused": False, "health_detail": None}
    failing = {**ok, "name": "z_failing", "health": "failing"}
    order = [t["name"] for t in sort_tasks([ok, calm, task, failing])]
    assert order == ["z_failing", "backup", "a_ok", "calm"]


def test_the_banner_says_the_daemon_is_started_on_its_machine_by_what_starts_it() -> None:
    """ "Start one with `agentcron run`" beside the Run now buttons read as one more
    button; and for tasks registered from Python code it named a command that cannot
    run them (the service says what starts the daemon: `start_with`)."""
    never = banner({"alive": False, "nodes": [], "start_with": "`agentcron run`"}, NOW)
    assert never == (
        "No daemon has ever run against this database: nothing is firing. Start one on its "
        "machine with the command `agentcron run` (this dashboard cannot start it)."
    )
    program = (
        "the program that runs its `agentcron.Scheduler` (1 task(s) are registered from "
        "Python code: sync; `agentcron run` cannot call them)"
    )
    tick = (NOW - timedelta(minutes=3)).isoformat()
    node = _node(heartbeat_at=tick, last_tick=tick, stopped_at=tick, state="stopped")
    stopped = banner({"alive": False, "nodes": [node], "start_with": program}, NOW)
    assert stopped is not None
    assert stopped.endswith(
        f"; start it again on its machine with {program} (this dashboard cannot start it)."
    )
