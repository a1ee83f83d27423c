"""The ``agentcron`` command line: a thin layer over :class:`agentcron.service.Service`.

Every read command has ``--json`` with stable field names for scripts and a Rich
table for people. Errors are one clear paragraph on stderr and a non-zero exit
code, never a bare stack trace.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape as rich_escape

from agentcron.controls import visible
from agentcron.interfaces import render
from agentcron.interfaces.cli_options import DbOpt
from agentcron.interfaces.render import SafeConsole

app = typer.Typer(
    name="agentcron",
    help="A scheduler for AI-agent and script workloads: a scheduled task never fails silently.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
out = SafeConsole(highlight=False, soft_wrap=True)
err = SafeConsole(stderr=True, highlight=False, soft_wrap=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Config file (default ./agentcron.yaml)")
]
HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="State folder (default $AGENTCRON_HOME or ~/.agentcron)"),
]


def _remember_json(value: bool) -> bool:
    """Errors of a ``--json`` command are answered in JSON too (see :func:`fail`)."""
    _globals.json = _globals.json or value
    return value


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Machine-readable output", callback=_remember_json)
]


@dataclass
class Globals:
    config: Path | None = None
    home: Path | None = None
    db: str | None = None
    json: bool = False  # this invocation asked for --json


_globals = Globals()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"agentcron {version('agentcron')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            print("agentcron (not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    config: ConfigOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    _show_version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    _globals.config, _globals.home, _globals.db = config, home, db
    _globals.json = False  # set by the command's own --json (tests run several in one process)


def fail(message: str, code: int = 1) -> NoReturn:
    """The error on stderr; with ``--json`` also as ``{"error": …}`` on stdout, so a
    script reading the JSON gets JSON whether the command worked or not."""
    if _globals.json:
        print(json.dumps({"error": message}))
    err.print(f"[bold red]error:[/] {rich_escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code)


def _config_path(config: Path | None) -> Path:
    return (config or _globals.config or Path("agentcron.yaml")).expanduser()


def _home(home: Path | None) -> Path:
    from agentcron.home import resolve_home

    return resolve_home(home or _globals.home)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


@contextmanager
def service_for(
    config: Path | None,
    home: Path | None,
    db: str | None,
    *,
    sync: bool = True,
    create: bool = False,
) -> Iterator[Any]:
    """Open the store and, when the config file is valid, bring its tasks in. A SQLite
    file named by ``--db`` that does not exist is made only with ``create`` (``add``,
    ``import --to db``): a mistyped path made an empty database, showed every task
    "not firing" and exited 0 (outside-in probe)."""
    from agentcron.service import Defaults, Service, ServiceError
    from agentcron.store import StoreError, open_store, parse_db_url

    named = db or _globals.db
    if named and not create:
        try:
            target = parse_db_url(named, _home(home))
        except StoreError as exc:
            fail(str(exc))
        path = target.path
        if path is not None and path.parent.is_dir() and not path.exists():
            fail(
                f"no database at {path} (--db): check the path; `agentcron run --db {path}` "
                f"(or `agentcron add … --db {path}`) makes one"
            )

    path = _config_path(config)
    loaded = None
    if path.exists():
        # imported only here: the loader brings Apprise (a fifth of a second) to check
        # notification URLs, which a home without a config file does not need
        from agentcron.config.errors import ConfigError
        from agentcron.config.loader import load_config

        try:
            loaded = load_config(path)
        except ConfigError as exc:
            err.print(
                f"[yellow]warning:[/] {path} is invalid; showing the database as it is:\n{exc}"
            )
    try:
        store = open_store(db or _globals.db, _home(home))
    except StoreError as exc:
        fail(_with_daemons_word(str(exc), home))
    try:
        recorded = _recorded(store)
        own = loaded is not None and _its_own_file(recorded, path)
        if loaded is not None and own:
            defaults = Defaults(loaded.timezone, loaded.defaults, loaded.budget_rules())
        else:
            # Without the file the database's tasks came from, their times are shown in
            # its timezone: (a command from another folder showed a Berlin task's 06:00
            # as 06:00 UTC, an hour off, without a word: outside-in probe).
            defaults = Defaults(recorded.timezone if recorded is not None else None)
        service = Service(store, _home(home), defaults=defaults)
        if loaded is not None and own and sync and _no_daemon_applies_a_config(home, db):
            clashes = service.tasks_added_elsewhere(list(loaded.tasks))
            if clashes:  # as a daemon refuses the file (see Daemon._refuse_clashes)
                err.print(
                    f"[yellow]warning:[/] {rich_escape(str(path))} is not applied: "
                    f"{rich_escape(', '.join(clashes))} would take over task(s) added with "
                    "`agentcron add`, the API or an agent; rename them in the file"
                )
            else:
                synced = service.sync_file_tasks(loaded.tasks)
                for spec, slot in synced.expired:  # no daemon read it: this is the telling
                    words = render.expired_at_read(spec, slot, loaded.timezone)
                    err.print(f"[yellow]warning:[/] {rich_escape(words)}")
                if synced.expired and service.tell_expired(
                    synced.expired, loaded.notify, loaded.timezone
                ):
                    err.print("(also queued for the notify channels: sent when agentcron runs)")
        try:
            yield service
        except ServiceError as exc:
            fail(_as_flags(exc))
    except StoreError as exc:  # e.g. damage met on a page this command read
        fail(str(exc))
    except sqlite3.Error as exc:  # locked past the timeout, read-only file, I/O error
        fail(f"database {store.describe()}: {exc}")
    except Exception as exc:
        if type(exc).__module__.split(".")[0] != "psycopg":
            raise
        # PostgreSQL's: a statement cancelled by its timeout (a table held locked), a
        # lost connection; said in words, not a traceback (`--json`: {"error": …})
        fail(_with_daemons_word(f"database {store.describe()}: {type(exc).__name__}: {exc}", home))
    finally:
        store.close()


def _with_daemons_word(problem: str, home: Path | None) -> str:
    """``problem`` (the database cannot be read here), and what the home's running
    daemon says of it, when it says something."""
    from agentcron._service.status import home_daemon_trouble

    said = home_daemon_trouble(_home(home))
    return f"{problem}\n{said}" if said else problem


def _no_daemon_applies_a_config(home: Path | None, db: str | None) -> bool:
    """Whether a command may bring its config file's tasks into the database: only
    while no daemon runs on it. A running daemon applies its own file (a change within
    a beat); a command run from another folder, whose ``./agentcron.yaml`` is another
    file, removed the daemon's tasks without a word (outside-in probe). On PostgreSQL
    never: its daemons may run on other machines."""
    from agentcron.instance_lock import daemon_on_database, running_daemon
    from agentcron.store import StoreError, parse_db_url

    try:
        target = parse_db_url(db or _globals.db, _home(home))
    except StoreError:
        return False  # refused by the store's opening, in its words
    if target.kind != "sqlite" or target.path is None:
        return False
    if running_daemon(_home(home)) is not None:
        return False
    return daemon_on_database(target.path.resolve()) is None  # one of another home


def _recorded(store: Any) -> Any:
    """Which config file the database's file tasks came from (agentcron.config.nodes)."""
    from agentcron.config.nodes import META_KEY, loads

    return loads(store.get_meta(META_KEY))


def _its_own_file(recorded: Any, path: Path) -> bool:
    """Whether ``path`` is the file the database's file tasks came from (or none is
    recorded). With no daemon running, a command run from another project's folder
    brought that folder's ``./agentcron.yaml`` in: the daemon's tasks were removed,
    their retries cancelled, until the daemon started again with its own file."""
    if recorded is None or Path(recorded.path) == path.resolve():
        return True
    err.print(
        f"[yellow]note:[/] this database's tasks come from {recorded.path}; {path} is not "
        "applied to it (its daemon applies its own file when it starts)"
    )
    return False


# inputs the service names by field that this CLI takes as an option of the same name
_FLAGS = frozenset({"limit", "count", "status", "since", "before", "cursor", "kind", "reason"})


def _as_flags(exc: Any) -> str:
    """The service's message with its advice in commands, its field spelled as the
    option a person typed (``limit must be…`` -> ``--limit must be…``)."""
    from agentcron.interfaces.cli_words import CLI_WORDS

    message: str = exc.words(CLI_WORDS)
    field = getattr(exc, "field", None)
    if field in _FLAGS and message.startswith(field):
        return f"--{message}"
    return message


# ---- commands ---------------------------------------------------------------------------
@app.command()
def init(
    config: ConfigOpt = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file")] = False,
) -> None:
    """Write an example agentcron.yaml in the current folder."""
    from agentcron.config.example import EXAMPLE_CONFIG

    path = _config_path(config)
    if path.exists() and not force:
        fail(f"{path} already exists (use --force to overwrite)")
    path.write_text(EXAMPLE_CONFIG, encoding="utf-8")
    out.print(f"wrote {path}; check it with `agentcron validate`, start with `agentcron run`")


@app.command()
def validate(config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """Check the config file; non-zero exit and precise errors when it is wrong."""
    from agentcron.config.errors import ConfigError
    from agentcron.config.loader import load_config

    path = _config_path(config)
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        if json_out:
            emit_json(
                {
                    "valid": False,
                    "problems": [
                        {"location": p.location, "line": p.line, "message": p.message}
                        for p in exc.problems
                    ],
                }
            )
            raise typer.Exit(1) from None
        fail(f"{path} is invalid:\n" + "\n".join(exc.lines()))  # every problem
    from agentcron.config._env import current_environ
    from agentcron.config.schema import untold_words

    untold = loaded.untold()
    warnings = [untold_words(untold)] if untold else []
    warnings += loaded.unset_keys(current_environ())
    if json_out:
        emit_json({"valid": True, "tasks": sorted(loaded.tasks), "warnings": warnings})
    else:
        out.print(
            f"{path} is valid: {len(loaded.tasks)} task(s): {', '.join(sorted(loaded.tasks))}"
        )
        for warning in warnings:
            err.print(f"[yellow]warning:[/] {rich_escape(warning)}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of agentcron.yaml (for editors)."""
    from agentcron.config.loader import config_json_schema

    emit_json(config_json_schema())


@app.command()
def run(
    config: ConfigOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
    api: Annotated[
        str | None,
        typer.Option(
            "--api",
            help="Serve the HTTP API, dashboard and /metrics at HOST:PORT (port 0: a free one)",
        ),
    ] = None,
) -> None:
    """Run the daemon: scheduler, workers, watchdog, notifier (and the API if asked)."""
    from agentcron.config.errors import ConfigError
    from agentcron.daemon import Daemon, DaemonOptions
    from agentcron.instance_lock import InstanceLockError, daemon_lock
    from agentcron.store import StoreError, check_database
    from agentcron.watchdog.watchdog import LOOP_STALL

    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        fail(f"unknown --log-level {log_level!r}; use debug, info, warning or error")
    from agentcron.logs import setup_logging

    setup_logging(level)
    listen = None
    if api is not None:
        from agentcron.interfaces.api.launch import parse_listen

        try:
            listen = parse_listen(api)
        except ValueError as exc:
            fail(str(exc))
    options = DaemonOptions(
        api_listen=listen,
        config_path=_config_path(config),
        home=_home(home),
        db_url=db or _globals.db,
        lease_seconds=_env_seconds("AGENTCRON_LEASE", 60.0),
        poll_interval=_env_seconds("AGENTCRON_BEAT", 6.0, at_least=0.1, at_most=LOOP_STALL / 3),
        watchdog_interval=_env_seconds("AGENTCRON_WATCHDOG_INTERVAL", 6.0),
        pulse_interval=_env_seconds("AGENTCRON_PULSE_INTERVAL", 60.0),
        shutdown_grace=_env_seconds("AGENTCRON_SHUTDOWN_GRACE", 10.0),
        recovery_hold=_env_seconds("AGENTCRON_RECOVERY_HOLD", 30.0),
        log_fault_after=_env_seconds("AGENTCRON_LOG_FAULT_AFTER", 30.0),
        divergence_settle=_env_seconds("AGENTCRON_DIVERGENCE_SETTLE", 300.0),
    )
    if options.config_path is not None and not options.config_path.exists():
        fail(f"cannot start: {options.config_path} not found; `agentcron init` writes an example")
    try:
        # one daemon per SQLite home, held until the daemon has stopped
        with daemon_lock(options.home, options.db_url) as lock:
            options.lock = lock  # kept at its path while the daemon runs
            check_database(options.db_url, options.home)  # damage refused before any write
            from agentcron.run_loop import run_to_end

            code = run_to_end(Daemon(options).run())
        _exit_past_hung_threads(code)
        if code:  # a part kept failing: exit non-zero so the service manager restarts us
            raise typer.Exit(code)
    except InstanceLockError as exc:
        fail(f"cannot start: {exc}")
    except ConfigError as exc:
        fail(f"cannot start: {options.config_path} is invalid:\n{exc}")
    except StoreError as exc:
        fail(f"cannot start: {exc}")
    except sqlite3.Error as exc:
        # a read-only file (chattr +i, a read-only mount) or one another program holds
        # locked past the wait: one line, not a traceback headed by a later error
        fail(f"cannot start: the database {_where_db(options.db_url, options.home)}: {exc}")
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        if type(exc).__module__.split(".")[0] != "psycopg":
            raise
        # PostgreSQL's refusal at the start (a user granted SELECT only: "permission
        # denied for table nodes"): one line, not a traceback (outside-in probe)
        first = (str(exc).strip().splitlines() or [""])[0]
        fail(
            f"cannot start: the database {_where_db(options.db_url, options.home)}: "
            f"{type(exc).__name__}: {first}"
        )


def _where_db(db_url: str | None, home: Path) -> str:
    from agentcron.store import StoreError, parse_db_url

    try:
        target = parse_db_url(db_url, home)
    except StoreError:  # the message names what it can
        return db_url or str(home)
    if target.path is not None:
        return str(target.path)
    try:
        from agentcron.store.postgres import redact_dsn
    except ImportError:  # no postgres extra: the URL's host and database, never more
        from urllib.parse import urlsplit

        parts = urlsplit(db_url or "")
        return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
    return redact_dsn(db_url or "")  # never its password


def _exit_past_hung_threads(code: int) -> None:
    """End the process now when a notification send the stop gave up on still hangs:
    the interpreter's exit waited for it (a stop took 30 s past "agentcron stopped"
    with a channel that did not answer; outside-in probe), or when a thread of the
    loop's executor is still in a call (:mod:`agentcron.run_loop`). Everything is
    recorded by then and a message not sent stays queued for the next start."""
    from agentcron.notify.channels import sends_left_behind
    from agentcron.run_loop import threads_left_behind

    left = sends_left_behind()
    if left:
        logging.getLogger("agentcron.daemon").warning(
            "%d notification send(s) still waiting for an answer are left behind; their "
            "messages stay queued for the next start",
            left,
        )
    if not left and not threads_left_behind():  # those are named by run_to_end
        return
    from agentcron.logs import stop_logging

    stop_logging()  # the log's writer thread writes what it holds: os._exit runs no atexit
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _env_seconds(
    name: str, default: float, at_least: float = 0.0, at_most: float | None = None
) -> float:
    import os

    raw = os.environ.get(name)
    if raw is None:
        return default
    from agentcron.durations import parse_duration

    try:
        seconds = parse_duration(raw).total_seconds()
    except ValueError as exc:
        fail(f"environment variable {name}: {exc}")
    if seconds < at_least:
        fail(f"environment variable {name}: {raw!r} is too short; at least {at_least:g}s")
    if at_most is not None and seconds > at_most:
        # said, not capped without a word (the stall check reads the loop's passes)
        fail(f"environment variable {name}: {raw!r} is too long; at most {at_most:g}s")
    return seconds


@app.command("list")
def list_(
    health: Annotated[
        str | None, typer.Option(help="Only these healths, comma-separated (failing,stuck)")
    ] = None,
    source: Annotated[str | None, typer.Option(help="Only tasks from: file, api or code")] = None,
    search: Annotated[
        str | None, typer.Option(help="Only tasks whose name, schedule or description has this")
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Tasks: schedule, next run, last result, health."""
    from agentcron.interfaces.schemas import TaskSummary, shaped_json

    with service_for(config, home, db) as svc:
        rows = svc.list_tasks(health=health, source=source, text=search)
        # why nothing fires, if nothing does: then no task is `ok` (their health says
        # not_firing, in --json too), and the line under the table says why
        firing = svc.firing()
        budgets = svc.config_budgets()
    if json_out:
        sys.stdout.flush()
        sys.stdout.buffer.write(shaped_json(TaskSummary, rows) + b"\n")
        sys.stdout.buffer.flush()
        return
    render.tasks_table(out, rows, budgets)
    if firing.problem is not None:
        from agentcron.interfaces.cli_words import CLI_WORDS
        from agentcron.service import advised

        not_firing = advised(firing.problem, firing.advice, CLI_WORDS)
        err.print(f"[yellow]{rich_escape(not_firing)}[/]")


@app.command()
def show(
    task: str,
    count: Annotated[int, typer.Option("--count", "-n", help="How many next fire times")] = 3,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Everything about one task."""
    from agentcron.interfaces.schemas import TaskDetail, shaped, with_paused

    with service_for(config, home, db) as svc:
        data = svc.show_task(task, count)
        firing = svc.firing() if data["health"] == "not_firing" else None
    data["next"] = with_paused(data["next"], bool(data["paused"]))
    if json_out:  # the API's JSON: the advice is its `health` (the words are each door's)
        emit_json(shaped(TaskDetail, data))
    else:
        if firing is not None and firing.problem is not None:
            # why, and the command that mends it
            from agentcron.interfaces.cli_words import CLI_WORDS
            from agentcron.service import advised

            data["health_detail"] = advised(firing.problem, firing.advice, CLI_WORDS)
        render.task_detail(out, data)


def _parse_from(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(
            f"--from: not an ISO time: {value!r} (e.g. 2026-10-25T00:00 or 2026-10-25T00:00+02:00)"
        )
    return parsed


@app.command("next")
def next_(
    task: str,
    count: Annotated[int, typer.Option("--count", "-n", help="How many")] = 5,
    from_: Annotated[
        str | None, typer.Option("--from", help="Start time (ISO; naive = task's zone)")
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Upcoming fire times, with DST notes."""
    start = _parse_from(from_)
    from agentcron.interfaces.schemas import NextFire, shaped, with_paused

    with service_for(config, home, db) as svc:
        rows = svc.next_fires(task, count, start)
        zone = svc.zone_of(task)
        rec = svc.store.get_task(task)
        rows = with_paused(rows, rec is not None and rec.paused)
    if json_out:
        emit_json(shaped(NextFire, rows))
    else:
        render.next_table(out, task, rows, zone)


@app.command()
def runs(
    task: Annotated[str | None, typer.Argument()] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 20,
    status: Annotated[
        str | None, typer.Option(help="Only these statuses, comma-separated (failed,missed)")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Due at or after: ISO time or a duration ago (2h, 7d)")
    ] = None,
    before: Annotated[
        str | None, typer.Option(help="Due before: ISO time or a duration ago")
    ] = None,
    cursor: Annotated[
        str | None, typer.Option(help="Next page: the cursor the previous page printed")
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run history, newest first (a page of --limit; the next page's cursor on stderr)."""
    from agentcron.interfaces.schemas import RunSummary, shaped

    with service_for(config, home, db) as svc:
        rows, next_cursor = svc.runs_page(
            task, status=status, since=since, before=before, limit=limit, cursor=cursor
        )
        zones = {} if json_out else _zones(svc, {str(r["task"]) for r in rows})
    if json_out:
        emit_json(shaped(RunSummary, rows))
    else:
        filtered = any(v is not None for v in (status, since, before, cursor))
        render.runs_table(out, rows, filtered=filtered, zones=zones)
    if next_cursor is not None:
        err.print(f"more: agentcron runs ... --cursor {next_cursor}", markup=False)


def _zones(svc: Any, tasks: set[str]) -> dict[str, str | None]:
    """Each task's IANA zone, whose abbreviation names its runs' times in a table;
    None for a task removed since (its runs are shown at the offset they carry)."""
    from agentcron.service import NotFoundError

    zones: dict[str, str | None] = {}
    for name in tasks:
        try:
            zones[name] = svc.zone_of(name)
        except NotFoundError:
            zones[name] = None
    return zones


@app.command()
def logs(
    run_id: int,
    output: Annotated[
        bool, typer.Option("--output", help="Print the whole kept output (redacted) only")
    ] = False,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Output and errors of one run, every attempt."""
    from agentcron.interfaces.schemas import RunDetail, shaped

    with service_for(config, home, db, sync=False) as svc:
        if output:
            shown = visible if sys.stdout.isatty() else str  # piped: as printed
            for piece in svc.output_stream(run_id):
                sys.stdout.write(shown(piece))
            return
        data = svc.run_detail(run_id)
        zone = _zones(svc, {str(data["task"])}).get(str(data["task"]))
    if json_out:
        emit_json(shaped(RunDetail, data))
    else:
        render.run_detail(out, data, zone)


@app.command()
def redeliver(
    run_id: int,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Deliver a run's kept output again to the targets whose delivery gave up."""
    from agentcron.interfaces.schemas import RunDetail, shaped

    with service_for(config, home, db, sync=False) as svc:
        data = svc.redeliver(run_id)
        alive = svc.daemon_status()["alive"]
    if json_out:
        emit_json(shaped(RunDetail, data))
        return
    targets = [d["target"] for d in data["deliveries"] if d["status"] == "pending"]
    when = "the daemon sends it within a few seconds" if alive else "it is sent when agentcron runs"
    out.print(
        f"run {run_id} of {rich_escape(str(data['task']))}: its output is queued again for "
        f"{rich_escape(', '.join(targets))}; {when}, and you are told how it went"
    )


@app.command(context_settings={"allow_extra_args": False})
def add(
    task: str,
    command: Annotated[list[str] | None, typer.Argument(help="The command after --")] = None,
    cron: Annotated[str | None, typer.Option(help="Cron expression, e.g. '0 2 * * *'")] = None,
    every: Annotated[str | None, typer.Option(help="Interval, e.g. 15m")] = None,
    at: Annotated[str | None, typer.Option(help="One-shot time (ISO)")] = None,
    tz: Annotated[str | None, typer.Option("--tz", help="IANA time zone")] = None,
    retries: Annotated[int | None, typer.Option(help="Retries for transient failures")] = None,
    timeout: Annotated[str | None, typer.Option(help="Kill after, e.g. 20m")] = None,
    shell: Annotated[bool, typer.Option(help="Run COMMAND through /bin/sh -c")] = False,
    spec: Annotated[
        str | None,
        typer.Option(
            "--spec",
            help="Any task keys as a JSON object, as the API takes them "
            '(\'{"llm": {...}, "deliver": [...]}\'); the options above add to it',
        ),
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add a task to the database (source: api): agentcron add NAME --cron EXPR -- CMD ARGS."""
    from agentcron.interfaces.schemas import TaskSummary, shaped

    raw: dict[str, Any] = _json_object(spec, "--spec") if spec is not None else {}
    given = {k for k in ("cron", "every", "at") if k in raw}
    if sum(x is not None for x in (cron, every, at)) + len(given) != 1:
        fail("give exactly one of --cron, --every or --at (or one of them in --spec)")
    if not command and not any(k in raw for k in ("command", "python", "http", "llm")):
        fail(
            "give the command after --, e.g. agentcron add backup --cron '0 3 * * *' -- ./backup.sh"
        )
    if cron is not None:
        raw["cron"] = cron
    if every is not None:
        raw["every"] = every
    if at is not None:
        raw["at"] = at
    if tz is not None:
        raw["timezone"] = tz
    if retries is not None:
        raw["retries"] = retries
    if timeout is not None:
        raw["timeout"] = timeout
    if command and shell:
        raw["shell"] = True
        raw["command"] = " ".join(command)
    elif command:
        raw["command"] = list(command)
    with service_for(config, home, db, create=True) as svc:
        view = svc.add_task(task, raw)
    if json_out:
        emit_json(shaped(TaskSummary, view))
    else:
        out.print(
            f"added {task}: {view['schedule']} ({view['timezone']}), "
            f"next run {view['next_run'] or 'none'}"
        )


def _simple(action: Callable[[Any, str], Any], verb: str, shape: str) -> Callable[..., None]:
    """A command on one task; ``shape`` names its JSON model in ``schemas``, imported
    when the command runs (importing the models costs every command ~0.1 s)."""

    def command(
        task: str,
        config: ConfigOpt = None,
        home: HomeOpt = None,
        db: DbOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        from agentcron.interfaces import schemas
        from agentcron.interfaces.cli_words import CLI_WORDS

        with service_for(config, home, db) as svc:
            result = action(svc, task)
            note = (
                svc.trigger_note(task, result["id"]).words(CLI_WORDS)
                if verb == "triggered" and result
                else ""
            )
        if note:  # `--json` says it too, as the API and MCP do (probe)
            result = {**result, "note": note}
        if json_out:
            model = getattr(schemas, shape)
            emit_json(
                schemas.shaped(
                    model, result if result is not None else {"name": task, "removed": True}
                )
            )
        else:
            out.print(
                f"{verb} {task}"
                + (
                    f" (run {result['id']}{'' if 'started' in note else ' queued'}; {note})"
                    if verb == "triggered" and isinstance(result, dict)
                    else ""
                )
            )

    return command


@app.command()
def pause(
    task: str,
    reason: Annotated[
        str | None, typer.Option(help="Why; kept and shown until it is resumed")
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Stop scheduling a task (a running run continues)."""
    from agentcron.interfaces.schemas import TaskSummary, shaped

    with service_for(config, home, db) as svc:
        cancels = svc.pause_cancels(task)
        view = svc.pause(task, reason)
    if json_out:
        emit_json(shaped(TaskSummary, view))
    else:
        reason = f" ({rich_escape(view['pause_reason'])})" if view["pause_reason"] else ""
        out.print(f"paused {task}{reason}")
        if cancels:
            out.print(rich_escape(cancels))


app.command("resume", help="Schedule a paused task again, from now on.")(
    _simple(lambda s, t: s.resume(t), "resumed", "TaskSummary")
)
app.command("remove", help="Delete a task added with `add` or the API (history is kept).")(
    _simple(lambda s, t: s.remove(t), "removed", "Removed")
)
app.command("trigger", help="Run a task now, outside its schedule.")(
    _simple(lambda s, t: s.trigger(t), "triggered", "TriggeredRun")
)


@app.command()
def update(
    task: str,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help='KEY=VALUE (VALUE as JSON when it parses: 5, true, ["a", "b"])'),
    ] = None,
    unset: Annotated[
        list[str] | None, typer.Option("--unset", help="KEY back to its default")
    ] = None,
    spec: Annotated[
        str | None, typer.Option("--spec", help="A JSON merge patch of task keys")
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Change a task added with `add` or the API (a file task is changed in the file)."""
    from agentcron.interfaces.schemas import TaskSummary, shaped

    patch: dict[str, Any] = _json_object(spec, "--spec") if spec is not None else {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--set {item!r}: give KEY=VALUE, e.g. --set retries=5")
        try:
            patch[key.strip()] = json.loads(value)
        except ValueError:
            patch[key.strip()] = value
    for key in unset or []:
        patch[key.strip()] = None
    if not patch:
        fail("nothing to change: give --set KEY=VALUE, --unset KEY or --spec JSON")
    with service_for(config, home, db) as svc:
        view = svc.update_task(task, patch)
    if json_out:
        emit_json(shaped(TaskSummary, view))
    else:
        out.print(
            f"updated {task}: {view['schedule']} ({view['timezone']}), "
            f"next run {view['next_run'] or 'none'}"
        )


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        fail(f"{option}: not JSON: {exc}")
    if not isinstance(value, dict):
        fail(f"{option}: give a JSON object of task keys, e.g. '{{\"retries\": 5}}'")
    return value


@app.command()
def doctor(
    config: ConfigOpt = None, home: HomeOpt = None, db: DbOpt = None, json_out: JsonOpt = False
) -> None:
    """Is the daemon alive, is the config valid, what is wrong."""
    from agentcron.interfaces.doctor import diagnose

    named = config is not None or _globals.config is not None
    report = diagnose(_config_path(config), _home(home), db or _globals.db, named=named)
    if json_out:
        emit_json(report)
    else:
        render.doctor(out, report)
    if not report["ok"]:
        raise typer.Exit(1)


_PRUNE_KINDS = (
    ("slots", "runs"),
    ("attempts", "attempts"),
    ("deliveries", "delivery rows"),
    ("files", "output files"),
    ("outbox", "sent or given-up notifications"),
    ("incidents", "closed incidents"),
    ("nodes", "node rows"),
    ("audit", "audit entries"),
)


@app.command()
def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; change nothing")
    ] = False,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove history past keep_history and output files past keep_outputs now (the
    daemon also does it periodically)."""
    from agentcron.config.errors import ConfigError
    from agentcron.config.loader import load_config

    path = _config_path(config)
    if path.exists():
        # the file says how long each task keeps its history: deleting by a guess is
        # not undone, so an invalid file stops here instead of warning and going on
        try:
            load_config(path)
        except ConfigError as exc:
            fail(
                f"{path} is invalid; fix it before pruning (it sets keep_history and "
                f"keep_outputs):\n{exc}"
            )
    from agentcron.interfaces.schemas import PruneReport, shaped

    # a dry run changes nothing: not even the file's tasks brought into the database
    with service_for(config, home, db, sync=not dry_run) as svc:
        report = svc.prune(dry_run=dry_run)
    unremoved = list(report.get("unremoved") or [])
    if json_out:
        emit_json(shaped(PruneReport, report))
    else:
        out.print("dry run, nothing changed; would remove:" if dry_run else "removed:")
        for key, label in _PRUNE_KINDS:
            out.print(f"  {report[key]:>9,}  {label}")
        by_task = report.get("outputs_by_task") or {}
        shown = ", ".join(f"{name} {n:,}" for name, n in list(by_task.items())[:10])
        more = " …" if len(by_task) > 10 else ""
        out.print(
            f"  {report.get('outputs', 0):>9,}  kept output files past keep_outputs"
            + (f" ({rich_escape(shown)}{more})" if shown else "")
        )
        if unremoved:
            err.print(
                f"[red]✖[/] {len(unremoved)} output file(s) could not be deleted (their runs' "
                "rows are gone; the files stay on disk until you remove them):"
            )
            for line in unremoved:
                err.print(f"  {rich_escape(line)}")
    if unremoved:
        raise typer.Exit(1)


notify_app = typer.Typer(help="Notification channels.", no_args_is_help=True)
app.add_typer(notify_app, name="notify")


@notify_app.command("test")
def notify_test(
    channel: Annotated[
        list[str] | None, typer.Option("--channel", help="Apprise URL (default: all configured)")
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Send a test message and report success or the channel's error."""
    from agentcron.config.errors import ConfigError
    from agentcron.config.loader import load_config

    urls = list(channel or [])
    if not urls:
        try:
            urls = list(load_config(_config_path(config)).notify)
        except ConfigError as exc:
            fail(f"cannot read the channels from the config:\n{exc}")
    with service_for(config, home, db) as svc:
        if not channel:
            urls = svc.channel_urls(urls)
        import asyncio

        results = asyncio.run(svc.notify_test(urls))
    if json_out:
        emit_json(results)
    else:
        for r in results:
            if r["ok"]:
                out.print(f"[green]✔[/] {r['channel']}: delivered")
            else:
                err.print(f"[red]✖[/] {r['channel']}: {rich_escape(r['error'])}")
    if not all(r["ok"] for r in results):
        raise typer.Exit(1)


from agentcron.interfaces import cli_import, cli_mcp, cli_status  # noqa: E402  (use the above)

cli_status.register(app)
cli_import.register(app)
cli_mcp.register(app)


# 128 + SIGPIPE: what a shell reports for a writer whose reader went away (`| head`)
EXIT_PIPE_CLOSED = 141


def main() -> None:
    """The console script. Click exits 1 when standard output is a pipe closed early
    (``agentcron health | head -1``); 1 is `health`'s "nothing schedules", so a monitor
    reading the first line under ``pipefail`` raised a false alarm (outside-in probe).
    It exits 141 then, as a writer killed by SIGPIPE does. (Click, or the copy Typer
    carries, puts its ``PacifyFlushWrapper`` on standard output when that happens.)"""
    try:
        if "--json" in sys.argv[1:]:
            _main_json()
        else:
            app()
    except SystemExit as exc:
        if exc.code == 1 and type(sys.stdout).__name__ == "PacifyFlushWrapper":
            raise SystemExit(EXIT_PIPE_CLOSED) from None
        raise


def _main_json() -> None:
    """With ``--json``, a usage error (an argument that is not a number, an unknown
    option) is said as ``{"error": …}`` on stdout too, as every other failure is: it
    printed only the usage box on stderr (outside-in probe). Click's exceptions are
    known by what they have (Typer carries its own copy of Click)."""
    try:
        code = app(standalone_mode=False)
    except Exception as exc:
        words, exit_code = getattr(exc, "format_message", None), getattr(exc, "exit_code", None)
        if type(exc).__name__ == "Abort":
            err.print("Aborted!")
            raise SystemExit(1) from None
        if not callable(words) or not isinstance(exit_code, int):
            raise
        print(json.dumps({"error": str(words())}))
        getattr(exc, "show", lambda: None)()  # the usage on stderr, as without --json
        raise SystemExit(exit_code) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
