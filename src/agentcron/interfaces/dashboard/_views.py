"""What the pages show, worked out from the service's plain dicts: pure functions of
those dicts and the time, so each sentence is tested without a server or a browser.

Nothing here reads the store or the clock: the routes pass ``now`` from the
service's clock, which keeps countdowns and "4 min ago" testable with a fake clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from agentcron.durations import format_duration
from agentcron.service import Act, Wording

# Most urgent first: the order the task list uses, so a failing task is never below
# the fold of healthy ones. Paused tasks go last: the owner chose that state.
HEALTH_ORDER = [
    "stuck",
    "failing",
    "not_firing",
    "starved",
    "overdue",
    "missed",
    "skipping",
    "flapping",
    "delivery_failed",
    "suspicious",
    "over_budget",
    "retrying",
    "waiting",
    "ok",
    "paused",
]
# Health words that mean "look at me"; the rest are calm (ok, paused) or in hand (retrying).
PROBLEMS = frozenset(HEALTH_ORDER[: HEALTH_ORDER.index("retrying")])
# Final statuses that did not run the task; the page shows the slot's reason beside them.
NOT_RUN = frozenset({"skipped", "missed", "superseded", "expired", "cancelled"})

# The service's advice as the dashboard's reader does it: the page or the button (a
# browser has no commands to run, and cannot start the daemon).
DASHBOARD_WORDS: Wording = {
    Act.PAUSE: "or stop it firing with the Pause button on its page",
    Act.TRIGGER: "a task's Run now button runs it now",
    Act.LIST_RUNS: "each task's page lists its runs",
    Act.LIST_INCIDENTS: "the Incidents page lists them",
    Act.START_DAEMON: "the daemon is started on its own machine, not from this dashboard",
}


def needs_attention(task: Mapping[str, Any]) -> bool:
    """A problem word, or paused while its failure is still open: pausing a failing task
    does not mend it, and the list hid it among the calm paused ones (outside-in probe;
    `doctor` and `list` count it as failing)."""
    if task["health"] in PROBLEMS:
        return True
    return str(task.get("health_detail") or "").startswith(PAUSED_FAILING)


PAUSED_FAILING = "paused while "


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def health_rank(health: str) -> int:
    return HEALTH_ORDER.index(health) if health in HEALTH_ORDER else 0  # unknown: on top


def sort_tasks(tasks: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Failing and otherwise unhealthy tasks first, most urgent first, then by name."""
    return sorted(tasks, key=lambda t: (_rank(t), str(t["name"])))


def _rank(task: Mapping[str, Any]) -> float:
    """Paused while failing: last of the problems (the owner chose the pause), above the
    tasks in hand and the calm ones."""
    if task["health"] == "paused" and needs_attention(task):
        return HEALTH_ORDER.index("retrying") - 0.5
    return health_rank(str(task["health"]))


def relative(when: datetime | None, now: datetime) -> str:
    """``in 4 min`` or ``4 min ago`` (``now`` within a second): a countdown in words."""
    if when is None:
        return ""
    delta = when - now
    if abs(delta) < timedelta(seconds=1):
        return "now"
    if delta > timedelta(0):
        return f"in {_precise(delta)}"
    return f"{_precise(-delta)} ago"


def _precise(delta: timedelta) -> str:
    """Whole seconds (a countdown that moves), as format_duration says them."""
    return format_duration(timedelta(seconds=round(delta.total_seconds())))


def duration_s(run: Mapping[str, Any]) -> float | None:
    """Seconds from the run's first start to its end; None while it has not ended."""
    start, end = parse_time(run.get("started_at")), parse_time(run.get("finished_at"))
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def duration_text(seconds: float | None) -> str:
    """``18ms``, ``1.3s``, ``42s``, ``3 min``: tenths below 10 s, where runs differ."""
    if seconds is None:
        return ""
    if seconds <= 0:
        return "0ms"  # a run recorded as ending when it began
    if 1 <= seconds < 9.95:
        return f"{seconds:.1f}s"
    return format_duration(timedelta(seconds=seconds))


def banner_title(status: Mapping[str, Any]) -> str:
    """The banner's heading, from the same ``status`` as its sentence (:func:`banner`):
    a daemon that schedules again after an outage of its database, the end not yet told,
    is not "not running" (the heading said so above "schedules again since …")."""
    trouble = status.get("trouble")
    if trouble and trouble.get("back_since"):
        return "The scheduler runs again after its database was unavailable"
    return "The scheduler is not running"


def banner(
    status: Mapping[str, Any], now: datetime, stale_after: timedelta = timedelta(seconds=30)
) -> str | None:
    """The sentence at the top of every page when nothing is firing, else None.

    "Not running" is the one failure a scheduler cannot tell you about itself, so it
    is said on every page, first, with how long it has been. ``status`` is
    :meth:`Service.daemon_status`: no running node means nothing fires; running
    nodes whose scheduler ticks are all older than ``stale_after`` mean a daemon
    that is alive but stuck. A node that records no ticks (a daemon older than tick
    records) is taken at its heartbeat's word.
    """
    nodes = list(status.get("nodes") or [])
    trouble = status.get("trouble")
    if trouble:
        words = str(trouble.get("words") or "")
        return words[:1].upper() + words[1:] + "."
    if status.get("alive"):
        running = [n for n in nodes if n.get("state") == "running"]
        ticks = [parse_time(n.get("last_tick")) for n in running]
        if not running or any(t is None or now - t <= stale_after for t in ticks):
            return None
        newest = max(t for t in ticks if t is not None)
        return (
            f"A daemon is running but its scheduler's last tick was {_ago(newest, now)}: "
            "nothing is firing. Its log says why; restarting it starts the scheduler afresh."
        )
    last: Mapping[str, Any] = max(
        nodes, key=lambda n: str(n.get("last_tick") or n.get("heartbeat_at") or ""), default={}
    )
    seen = parse_time(last.get("last_tick")) or parse_time(last.get("heartbeat_at"))
    ticked = f"the last tick was {_ago(seen, now)}" if seen else "no tick yet"
    starting = status.get("starting_pid")
    if starting is not None:
        return f"The daemon (pid {starting}) is starting ({ticked}): nothing fires until it ticks."
    silent = status.get("unresponsive_pid")
    start = _start_with(status)
    if silent is not None:
        # its process lives and holds the home: "start it again" would be refused
        return (
            f"The daemon (pid {silent}) is running but not answering ({ticked}): nothing is "
            "firing. It hangs or is stopped (SIGSTOP): on its machine, send it SIGCONT, or "
            f"stop it and start it again with {start}."
        )
    if not nodes:
        return (
            "No daemon has ever run against this database: nothing is firing. "
            f"Start one on its machine with {start}{NOT_FROM_HERE}."
        )
    stopped = parse_time(last.get("stopped_at"))
    how = (
        f"It was stopped {_ago(stopped, now)}"
        if stopped is not None
        else f"It ran as pid {last.get('pid')} on {last.get('host')} and stopped answering"
    )
    return (
        f"The daemon's last tick was {_ago(seen, now)}: nothing is firing. "
        f"{how}; start it again on its machine with {start}{NOT_FROM_HERE}."
    )


# The banner's commands are run by the machine's owner, in a shell where the daemon runs:
# "Start one with `agentcron run`" beside the Run now buttons could be read as one more
# button or link. The command is shown as code (see the template), and said to be one.
NOT_FROM_HERE = " (this dashboard cannot start it)"


def _start_with(status: Mapping[str, Any]) -> str:
    """What starts the daemon, as the service says it: the command `agentcron run`, or
    for tasks registered from Python code the program that registers them (`agentcron
    run` cannot call them: the banner told every such owner a command that fails)."""
    said = str(status.get("start_with") or "`agentcron run`")
    return f"the command {said}" if said == "`agentcron run`" else said


def channel_notes(channels: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    """One sentence per notify channel that fails: while it does, the owner hears of no
    problem through it, so every page says so (it was shown nowhere on the dashboard,
    and the incidents page said each problem had been told)."""
    notes = []
    for c in channels:
        if c.get("ok"):
            continue
        error = c.get("last_error") or "no answer"
        if c.get("held"):
            notes.append(f"{c['channel']}: {c['held']}.")
        elif c.get("broken"):
            notes.append(
                f"{c['channel']} cannot be used as written ({error}): "
                f"{c.get('undeliverable', 0)} message(s) could not be sent; fix its URL."
            )
        else:
            since = _ago(parse_time(c.get("failing_since")), now)
            notes.append(
                f"{c['channel']} has failed since {since} ({error}): "
                f"{c.get('pending', 0)} message(s) wait and are retried."
            )
    return notes


def config_notes(status: Mapping[str, Any]) -> list[str]:
    """One sentence per running daemon that does not run its config file as written."""
    return [
        f"The daemon {n['node_id']}: {n['config_note']}."
        for n in status.get("nodes") or []
        if n.get("state") == "running" and n.get("config_note")
    ]


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "at an unknown time"
    text = relative(when, now)
    return "just now" if text == "now" else text


def run_row(run: Mapping[str, Any], now: datetime, zone: str | None = None) -> dict[str, Any]:
    """A run as a table row: the service's view plus duration, why it did not run, and
    ``zone``, its task's IANA zone, which names its times (None: a removed task's, at
    the offset they are written with)."""
    seconds = duration_s(run)
    row = dict(run)
    row["zone"] = zone
    row["duration_s"] = seconds
    row["duration"] = duration_text(seconds)
    row["when"] = relative(parse_time(run.get("scheduled_for")), now)
    row["not_run"] = run.get("status") in NOT_RUN
    return row


def in_zone_of(value: str | None, like: str | None) -> str | None:
    """``value`` (ISO) shown in the UTC offset of ``like`` (ISO), so an attempt's times
    read in the same local time as its run's; unchanged when either is missing."""
    when, ref = parse_time(value), parse_time(like)
    if when is None or ref is None or ref.tzinfo is None:
        return value
    return when.astimezone(ref.tzinfo).isoformat()


def in_zone(value: str | None, zone: str) -> str | None:
    """``value`` (ISO) in the IANA ``zone``: an incident's times (kept in UTC) read in
    the zone of its task's runs and next fires beside them."""
    from agentcron.schedules.zones import resolve_zone

    when = parse_time(value)
    if when is None or when.tzinfo is None:
        return value
    return when.astimezone(resolve_zone(zone)).isoformat()


def _without_word(detail: str | None, word: str) -> str | None:
    """The health sentence without the health word it repeats ("failing: code_error"
    beside a "failing" badge reads "failing failing: …"); None when nothing is left."""
    if detail is None:
        return None
    spoken = word.replace("_", " ")
    for prefix in (f"{word}: ", f"{spoken}: "):
        if detail.startswith(prefix):
            return detail[len(prefix) :] or None
    return None if detail in (word, spoken) else detail


def task_row(
    task: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], now: datetime
) -> dict[str, Any]:
    """A task as a list row: the service's view plus countdown, last duration, sparkline."""
    from agentcron.interfaces.dashboard._sparkline import sparkline
    from agentcron.interfaces.dashboard._words import schedule_in_words

    row = dict(task)
    detail = _without_word(task.get("health_detail"), str(task["health"]))
    if task.get("paused") and detail is not None and detail.startswith(PAUSED_FAILING):
        detail = detail.removeprefix("paused ")  # beside a "paused" badge: "while failing: …"
    row["health_detail"] = detail
    row["problem"] = needs_attention(task)
    row["words"] = schedule_in_words(str(task["schedule"]))
    nxt = parse_time(task.get("next_run"))
    row["countdown"] = relative(nxt, now) if nxt and not task.get("paused") else ""
    row["last_ago"] = relative(parse_time(task.get("last_run")), now)
    last_finished = next((r for r in runs if r.get("finished_at")), None)
    row["last_duration"] = duration_text(duration_s(last_finished)) if last_finished else ""
    row["spark"] = sparkline(runs)
    # a run under way: beside "never run" (a first run in progress) it said the task
    # had never run; a running one is shown before a queued one
    active = [r for r in runs if r.get("status") in IN_PROGRESS]
    current = min(active, key=lambda r: IN_PROGRESS.index(str(r["status"])), default=None)
    row["in_progress"] = dict(current) if current else None
    if current is not None:
        began = parse_time(current.get("started_at") or current.get("scheduled_for"))
        row["in_progress"]["ago"] = relative(began, now)
        row["in_progress"]["since"] = current.get("started_at") or current.get("scheduled_for")
    return row


# Statuses of a run not over yet, the one to show first first.
IN_PROGRESS = ("running", "retrying", "pending")
