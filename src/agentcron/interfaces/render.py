"""Rich rendering of the service's plain data for people at a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from agentcron.controls import visible
from agentcron.interfaces.zone_names import in_zone, zone_label

if TYPE_CHECKING:  # the models bring pydantic: the CLI imports them when a command needs them
    from agentcron.model import Slot, TaskSpec

_HEALTH_STYLE = {
    "ok": "green",
    "retrying": "yellow",
    "failing": "bold red",
    "stuck": "bold red",
    "overdue": "bold red",
    "paused": "dim",
    "waiting": "yellow",
    "over_budget": "yellow",
    "not_firing": "bold red",
}
_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "bold red",
    "retrying": "yellow",
    "running": "cyan",
    "pending": "cyan",
    "skipped": "dim",
    "missed": "yellow",
    "superseded": "dim",
    "cancelled": "dim",
    "expired": "yellow",
}


def _short(ts: str | None, zone: str | None = None) -> str:
    """A time as people scan it in a table: ``19:01:20 CET`` today, ``Dec 03 02:30 CET``
    this year, ``2027-03-28 03:00 CEST`` beyond; seconds only when they are not zero,
    never fractions. In ``zone`` when given, named as :func:`zone_label` says (its
    abbreviation, or the zone's name when that is shared or a number), else at the
    offset the time was written with. ``--json`` keeps full ISO times."""
    if not ts:
        return "-"
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        return ts
    when = in_zone(when, zone)
    now = datetime.now(when.tzinfo) if when.tzinfo else datetime.now()
    # formatted by hand, not through strftime: a list of 100,000 tasks calls this for each
    clock = f"{when.hour:02d}:{when.minute:02d}"
    if when.second:
        clock += f":{when.second:02d}"
    if when.date() == now.date():
        day = ""
    elif when.year == now.year:
        day = f"{_MONTHS[when.month - 1]} {when.day:02d} "
    else:
        day = f"{when.year:04d}-{when.month:02d}-{when.day:02d} "
    return f"{day}{clock} {zone_label(when, zone)}".rstrip()


# %b of the C locale, which is the one the CLI runs in (it never calls setlocale)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# Past this many rows a table is printed as plain aligned text: Rich measures and wraps
# every cell of a Table, about a millisecond a row (two minutes for 100,000 tasks).
LARGE_TABLE = 500


def _health_cell(word: str, detail: str | None) -> str:
    """The health word, with the sentence behind it when there is one: ``stuck:
    running for 25 min`` (a sentence that begins with the word is shown as it is)."""
    if word == "ok" or not detail:
        return word
    said = word.replace("_", " ")
    return detail if detail.startswith(said) else f"{said}: {detail}"


def tasks_table(
    console: Console,
    rows: list[dict[str, Any]],
    budgets: Sequence[dict[str, Any]] = (),
) -> None:
    """The task list; with a budget column when a task has its own daily budget, and
    the config's budgets (every task's, per agent) with today's use under it. Over
    :data:`LARGE_TABLE` rows, the same columns as plain text, without colours."""
    if not rows:
        console.print(
            "no tasks yet: write some in agentcron.yaml (`agentcron init`) or `agentcron add`"
        )
        return
    own = {r["name"]: _own_budget(r) for r in rows}
    cols = ["task", "schedule", "next run", "last", "health", "delivery", "source"]
    if any(own.values()):
        cols.insert(5, "budget today")
    lines: list[list[tuple[str, str]]] = []  # per row, each cell's text and style
    for r in rows:
        health = _health_cell(r["health"], r.get("health_detail"))
        if r["paused"] and r.get("pause_reason"):
            still = str(r.get("health_detail") or "").removeprefix("paused")
            health = f"paused: {r['pause_reason']}" + (f";{still}" if still else "")
        elif r["health"] == "over_budget":
            health = "over budget"  # which one and how much: the budget column, show, --json
        elif r["health"] == "not_firing":
            health = "not firing"  # why: the one line under the table, not on every row
        cells = [
            (r["name"], ""),
            (f"{r['schedule']} ({r['timezone']})", ""),
            (_short(r["next_run"], r.get("timezone")), ""),
            (r["last_status"] or "-", _STATUS_STYLE.get(r["last_status"] or "", "")),
            (health, _HEALTH_STYLE.get(r["health"], "")),
            (r["delivery_status"] if r.get("delivery_status") not in (None, "none") else "-", ""),
            (r["source"], ""),
        ]
        if len(cols) > len(cells):
            mine = own[r["name"]]
            cells.insert(
                5,
                (mine["summary"], "yellow" if mine["used_up"] else "") if mine else ("-", ""),
            )
        lines.append(cells)
    if len(lines) > LARGE_TABLE:
        _plain_table(console, cols, [[text for text, _ in cells] for cells in lines])
    else:
        table = Table(show_lines=False)
        for col in cols:
            table.add_column(col, no_wrap=col == "next run")
        for cells in lines:
            table.add_row(*(Text(text, style=style) for text, style in cells))
        console.print(table)
    if budgets:
        console.print("budgets today: " + "; ".join(_budget_words(b) for b in budgets))


def _plain_table(console: Console, header: list[str], rows: list[list[str]]) -> None:
    """Columns padded to their widest cell, two spaces apart, the header underlined;
    written as it is (no markup, no wrapping: a long line stays one line for grep)."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            if len(cell) > widths[i]:
                widths[i] = len(cell)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    text = "\n".join(out) + "\n"
    # written past the console (and SafeConsole's care): shown, not obeyed, here too
    console.file.write(visible(text) if console.is_terminal else text)
    console.file.flush()


def _own_budget(row: dict[str, Any]) -> dict[str, Any] | None:
    return next((b for b in row.get("budget") or [] if b["scope"].startswith("task:")), None)


def _budget_words(b: dict[str, Any]) -> str:
    """``all tasks together: 3/1,000 runs`` (``, used up`` when nothing is left)."""
    return f"{b['label']}: {b['summary']}" + (" (used up)" if b["used_up"] else "")


def runs_table(
    console: Console,
    rows: list[dict[str, Any]],
    filtered: bool = False,
    zones: Mapping[str, str | None] | None = None,
) -> None:
    """Runs, newest first; ``filtered``: the rows answer a filter (say so when none).
    ``zones``: each task's IANA zone, whose abbreviation names its runs' times (``02:00
    JST``; they read ``+09:00``); a task not in it (removed) keeps its rows' offset."""
    if not rows:
        console.print("no runs match these filters" if filtered else "no runs recorded yet")
        return
    table = Table()
    with_tokens = any(r.get("tokens") for r in rows)
    cols = ["id", "task", "scheduled for", "status", "attempts", "error / reason", "delivery"]
    for col in cols + (["tokens"] if with_tokens else []):
        table.add_column(col, no_wrap=col == "scheduled for")
    for r in rows:
        zone = (zones or {}).get(r["task"])
        why = r["error"] or r.get("reason") or ""
        if r["error_class"]:
            why = f"{r['error_class']}: {why}"
        if r["status"] == "retrying" and r["next_attempt_at"]:
            why += f" (next attempt {_short(r['next_attempt_at'], zone)})"
        table.add_row(
            str(r["id"]),
            Text(r["task"]),
            _short(r["scheduled_for"], zone),
            Text(r["status"], style=_STATUS_STYLE.get(r["status"], "")),
            str(r["attempts"]),
            Text(why),
            r["delivery_status"] if r["delivery_status"] != "none" else "",
            *(
                [" / ".join(f"{k} {v}" for k, v in (r.get("tokens") or {}).items())]
                if with_tokens
                else []
            ),
        )
    console.print(table)


def next_table(
    console: Console, task: str, rows: list[dict[str, Any]], zone: str | None = None
) -> None:
    paused = any(r.get("paused") for r in rows)
    if not rows:
        console.print(f"{task} will not fire again")
        return
    if paused:  # listed bare, the times read as runs to come
        console.print(
            f"{task} is paused: it does not fire at these times; they are the ones it "
            f"would fire at if resumed now (`agentcron resume {task}`)",
            style="yellow",
            markup=False,
        )
    table = Table(title=f"next runs of {task}" + (" (paused)" if paused else ""))
    table.add_column("local time", no_wrap=True)
    table.add_column("UTC", no_wrap=True)
    table.add_column("note")
    for r in rows:
        local, utc = datetime.fromisoformat(r["local"]), datetime.fromisoformat(r["at"])
        local = in_zone(local, zone)  # its abbreviation: CET, CEST
        table.add_row(
            f"{local:%a %Y-%m-%d} {_clock(local)} {zone_label(local, zone)}",
            f"{_clock(utc.astimezone(UTC))} UTC",
            Text(r["note"] or "", style="yellow"),
        )
    console.print(table)


def task_detail(console: Console, data: dict[str, Any]) -> None:
    # what a task holds or printed is shown as written: "[red]boom[/red]" or "[print(i)
    # for i in …]" read as markup lost its words (outside-in probe)
    console.print(f"[bold]{escape(data['name'])}[/] ({data['source']}, {escape(data['action'])})")
    console.print(f"  schedule:  {escape(data['schedule'])} ({escape(str(data['timezone']))})")
    detail = str(data.get("health_detail") or "")
    said = detail and detail != data["health"]  # "paused — paused" said nothing more
    console.print(f"  health:    {data['health']}" + (f" — {escape(detail)}" if said else ""))
    console.print(
        f"  paused:    {data['paused']}"
        + (f" ({escape(data['pause_reason'])})" if data.get("pause_reason") else "")
    )
    zone = data.get("timezone")
    nxt = ", ".join(_short(n["local"], zone) for n in data["next"])
    # a paused task's fire times are when it would run, not when it will
    console.print(f"  next runs: {'- (paused)' if data['paused'] else nxt or '-'}")
    if data.get("budget"):
        resets = _short(data["budget"][0]["resets_at"], data.get("timezone"))
        console.print(
            f"  budget:    {'; '.join(_budget_words(b) for b in data['budget'])} today "
            f"(resets {resets})"
        )
    console.print("  spec:")
    for key, value in sorted(data["spec"].items()):
        said = escape(str(value))
        if key == "paused" and bool(value) != bool(data["paused"]):
            # the file's (or the API's) key, while the state is the operator's
            # (`agentcron pause`/`resume`): "paused: True" above and "paused: False" here
            # read as a contradiction (probe)
            said += " (as written; the task is " + ("paused" if data["paused"] else "resumed")
            said += " by hand)"
        console.print(f"    {key}: {said}")
    if data["recent_runs"]:
        runs_table(console, data["recent_runs"], zones={data["name"]: zone})


def run_detail(console: Console, data: dict[str, Any], zone: str | None = None) -> None:
    """One run, its attempts and deliveries; times in its task's ``zone`` (None: a
    removed task's, at the offset they are written with)."""
    console.print(
        f"[bold]run {data['id']}[/] of {escape(data['task'])} scheduled for "
        f"{_full(data['scheduled_for'], zone)}: {data['status']}"
        + (f" ({escape(data['reason'])})" if data.get("reason") else "")
    )
    for a in data["attempts_detail"]:
        if a["duration_s"] is not None:
            line = f"  attempt {a['number']}: {a['status']} in {a['duration_s']:.1f}s"
        else:
            line = f"  attempt {a['number']}: running since {_short(a['started_at'], zone)}"
        if a["error_class"]:
            line += f" — {a['error_class']}: {a['explanation'] or ''}"
            if a["error"] and a["error"] != a["explanation"]:
                line += f" ({a['error']})"
        if a["tokens"]:  # "prompt 100, completion 50", not a Python dict
            counts = ", ".join(f"{k} {v:,}" for k, v in a["tokens"].items())
            line += f" — tokens: {counts}"
        console.print(line, markup=False, highlight=False)
    for d in data.get("deliveries") or []:
        line = f"  delivery to {d['target']}: {d['status']} ({d['attempts']} attempt(s))"
        if d.get("next_attempt_at") and d["status"] in ("pending", "retrying"):
            line += f", next {_short(d['next_attempt_at'], zone)}"
        if d.get("last_error"):
            line += f" — {d['last_error']}"
        console.print(line, markup=False, highlight=False)
    if data.get("output") is not None:
        console.rule("output")
        text = str(data["output"])
        # shown, not obeyed, whatever console prints it (SafeConsole does it for all text)
        console.print(visible(text) if console.is_terminal else text, markup=False, highlight=False)
    elif data.get("output_path"):
        console.print(
            f"(no output kept: {data['output_path']} is gone, pruned by keep_outputs or removed)",
            markup=False,
            highlight=False,
        )
    else:
        console.print("(no output kept)")


class SafeConsole(Console):
    """A console that shows what it prints on a terminal and is never driven by it.

    A run's error, an incident's summary, a task's description are the task's (or an
    API client's) text, printed in tables and lines all over the CLI; a terminal escape
    among them retitled the window and cleared the screen of whoever ran ``agentcron
    runs`` (outside-in probe). Every piece of text is made :func:`visible` as it is
    written, in one place, so that no table or line can forget to; Rich's own styles
    and controls are its segments' styles and control codes, not their text, and stay.
    Piped or redirected, text goes as it is (``show --output > file`` keeps the bytes).
    """

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        if self.is_terminal:
            buffer = (s if s.control else s._replace(text=visible(s.text)) for s in buffer)
        return super()._render_buffer(buffer)


def doctor(console: Console, report: dict[str, Any]) -> None:
    for check in report["checks"]:
        mark = {"ok": "[green]✔[/]", "warn": "[yellow]![/]", "fail": "[red]✖[/]"}[check["status"]]
        console.print(f"{mark} {check['name']}: {escape(check['message'])}")


def incidents_table(console: Console, rows: list[dict[str, Any]], zone: str | None = None) -> None:
    """Incidents, their times in ``zone`` (the config's: an incident may be of no task)."""
    if not rows:
        console.print("no incidents recorded")
        return
    table = Table()
    for col in ("id", "task", "kind", "state", "opened", "summary", "acknowledged"):
        table.add_column(col)
    for r in rows:
        state = "open" + (", escalated" if r["escalated"] else "") if r["open"] else "closed"
        table.add_row(
            str(r["id"]),
            Text(r["task"]),
            r["kind"],
            Text(state, style="bold red" if r["open"] else "dim"),
            _short(r["opened_at"], zone),
            Text(r["summary"]),
            Text(f"{r['acknowledged_by']} {_short(r['acknowledged_at'], zone)}")
            if r["acknowledged_at"]
            else "",
        )
    console.print(table)


def incident_detail(console: Console, data: dict[str, Any], zone: str | None = None) -> None:
    state = "open" if data["open"] else f"closed {_short(data['closed_at'], zone)}"
    console.print(
        f"[bold]incident {data['id']}[/] of {escape(data['task'])}: {data['kind']}, {state}"
    )
    console.print(f"  opened:    {_short(data['opened_at'], zone)}")
    console.print(f"  summary:   {escape(data['summary'])}")
    console.print(
        f"  events:    {data['count']} ({data['failed_runs']} failed runs, "
        f"{data['retries']} retries)" + (", escalated" if data["escalated"] else "")
    )
    if data["acknowledged_at"]:
        console.print(
            f"  seen by:   {data['acknowledged_by']} at {_short(data['acknowledged_at'], zone)}"
        )


def _with_advice(text: str, data: dict[str, Any]) -> str:
    """``text`` and the advice ``data`` carries (``{"action": …, "task": …}``), in
    commands."""
    from agentcron.interfaces.cli_words import CLI_WORDS
    from agentcron.service import Act, Advice, advised

    said = data.get("advice")
    advice = Advice(Act(said["action"]), said.get("task")) if said else None
    return advised(text, advice, CLI_WORDS)


def health(console: Console, data: dict[str, Any]) -> None:
    if data["scheduling"]:
        console.print(
            f"[green]✔[/] scheduling: last tick {data['last_tick_age_s']}s ago "
            f"({data['runs_in_progress']} run(s) in progress)"
        )
        if data.get("problem"):  # an outage just over, its end not yet confirmed
            console.print(f"[yellow]⚠[/] {escape(data['problem'])}")
    else:
        console.print(f"[bold red]✖[/] {escape(_with_advice(data['problem'], data))}")
    failing = untold(data)
    if failing:
        console.print(
            f"[bold red]✖[/] {len(failing)} channel{'s' if len(failing) > 1 else ''} "
            f"cannot take messages: problems are not reaching you"
        )
    for n in data["nodes"]:
        console.print(
            f"  node {n['node_id']}: {n['state']}, heartbeat {n['heartbeat_age_s']}s ago, "
            f"last tick {_short(n['last_tick'])}"
        )
        if n.get("config_note"):
            console.print(f"  [yellow]![/] on {n['node_id']}: {escape(n['config_note'])}")
    box = data["outbox"]
    console.print(
        f"  outbox: {box['backlog']} message(s) waiting"
        + (f", oldest {box['oldest_age_s']}s old" if box["oldest_age_s"] is not None else "")
    )
    console.print(f"  open incidents: {data['open_incidents']}")
    for c in data["channels"]:
        mark = "[green]✔[/]" if c["ok"] else "[red]✖[/]"
        if c["ok"]:  # an error it has since got past is history, not its state
            said = f"ok, last sent {_short(c['last_ok_at'])}" if c.get("last_ok_at") else "ok"
        else:
            said = escape(c.get("held") or c["last_error"] or "failing")
        console.print(f"  {mark} channel {c['channel']}: {said}")
    for p in data.get("providers", []):
        mark = "[green]✔[/]" if p["state"] == "over" else "[yellow]![/]"
        # "over until 12:29" read as the opposite of the truth (outside-in probe)
        state = "cooldown over since" if p["state"] == "over" else f"{p['state']} until"
        console.print(
            f"  {mark} provider {p['name']}: {state} {_short(p['until'])} ({escape(p['reason'])})"
        )
    console.print(f"  database: {escape(data['database'])}")


def untold(data: dict[str, Any]) -> list[str]:
    """The channels of a health answer that are failing: what goes wrong is not told
    through them (``agentcron health`` exits 2 while any is)."""
    return [c["channel"] for c in data["channels"] if not c["ok"]]


def audit_table(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no changes recorded")
        return
    table = Table()
    for col in ("id", "when", "who", "via", "what", "task", "change"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["id"]),
            _short(r["at"]),
            Text(r["actor"]),
            r["via"],
            r["action"],
            Text(r["task"] or ""),
            Text(_change(r["before"], r["after"])),
        )
    console.print(table)


def _change(before: Any, after: Any) -> str:
    """The keys that differ, ``key: old -> new`` (whole values when not mappings)."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
        return "; ".join(f"{k}: {before.get(k)} -> {after.get(k)}" for k in keys[:6])
    if before is None:
        return "" if after is None else str(after)[:120]
    return f"was {str(before)[:120]}" if after is None else f"{before} -> {after}"[:160]


def expired_at_read(spec: TaskSpec, slot: Slot, default_zone: str | None) -> str:
    """What the CLI says of a one-shot it recorded expired when it read the file."""
    zone = spec.timezone or default_zone
    return (
        f"task {spec.name}, due {_full(slot.scheduled_for.isoformat(), zone)}: {slot.reason}; "
        f"recorded expired, it will not run (`agentcron trigger {spec.name}` runs it now)"
    )


def _full(ts: str | None, zone: str | None = None) -> str:
    """A whole date and time with its zone, ``2026-12-05 04:58:06 JST`` (a run's line
    gave the ISO text, fractions and ``+09:00``)."""
    if not ts:
        return "-"
    try:
        when = in_zone(datetime.fromisoformat(ts), zone)
    except ValueError:
        return ts
    return f"{when:%Y-%m-%d} {_clock(when)} {zone_label(when, zone)}".rstrip()


def _clock(when: datetime) -> str:
    return f"{when:%H:%M:%S}" if when.second else f"{when:%H:%M}"
