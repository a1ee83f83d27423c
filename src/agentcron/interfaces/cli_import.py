"""``agentcron import SOURCE FILE``: jobs from Agent Zero, Hermes, OpenClaw or a crontab.

A dry run unless ``--apply``: it prints, per task, the YAML it would write and
every field dropped or approximated, the jobs it cannot import and why, and the
variables the tasks need. ``--apply`` writes the config file (comments and layout
kept) or, with ``--to db``, the database through the service. Registered on the
main app by :func:`register`.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.markup import escape

from agentcron.interfaces.cli_options import DbOpt
from agentcron.interfaces.render import SafeConsole

if TYPE_CHECKING:  # imported when the command runs: `agentcron --help` stays quick
    from agentcron.importers import ImportOptions, Plan
    from agentcron.importers.report import Report

_out = SafeConsole(highlight=False, soft_wrap=True, markup=False)
_err = SafeConsole(stderr=True, highlight=False, soft_wrap=True)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SOURCES = "agent-zero, hermes, openclaw or crontab"


def register(app: typer.Typer) -> None:
    """Add the ``import`` command to ``app``."""
    app.command(
        "import",
        help="Import jobs from agent-zero, hermes, openclaw or a crontab "
        "(a dry run unless --apply; tasks are written paused unless --enable).",
    )(import_jobs)


def _fail(message: str, code: int = 1) -> NoReturn:
    _err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code)


def import_jobs(
    source: Annotated[str, typer.Argument(help=f"One of: {_SOURCES}")],
    file: Annotated[Path, typer.Argument(help="The job file (tasks.json, jobs.json, a crontab)")],
    apply: Annotated[
        bool, typer.Option("--apply", help="Write the tasks (default: show them)")
    ] = False,
    to: Annotated[
        str, typer.Option("--to", help="Where to write: file (the config) or db")
    ] = "file",
    enable: Annotated[
        bool, typer.Option("--enable", help="Write the tasks enabled (default: paused)")
    ] = False,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="OpenAI-compatible API for agent prompts")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model for agent prompts")] = None,
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="Variable holding the API key")
    ] = None,
    agent_cmd: Annotated[
        str | None,
        typer.Option("--agent-cmd", help='Run prompts through this CLI ("{prompt}" marks where)'),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Config file")] = None,
    home: Annotated[Path | None, typer.Option("--home", help="State folder")] = None,
    db: DbOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Import jobs from another scheduler as agentcron tasks."""
    from agentcron.importers import (
        ImportFileError,
        PromptTargetMissing,
        apply_to_file,
        make_plan,
        place,
    )
    from agentcron.importers import report as reports
    from agentcron.importers.write_file import existing_tasks, unchanged_in_file

    options = _options(source, to, base_url, model, api_key_env, agent_cmd)
    try:
        plan = make_plan(source, file, options)
    except (ImportFileError, PromptTargetMissing) as exc:
        _fail(str(exc))
    if to == "db":
        _to_db(plan, apply, enable, config, home, db, json_out)
        _nothing_importable(plan)
        return
    path = _config_path(config)
    existing, schedules, unreadable = existing_tasks(path)
    if unreadable and apply:
        _fail(unreadable)
    defaults, channels = _file_defaults(path)
    placed, conflicts = place(plan, existing, enable, schedules=schedules)
    report = reports.build(plan, placed, conflicts, defaults, existing=existing)
    report.warnings += _untold(plan, report, channels)
    report.warnings += reports.unset_keys(report)
    report.unchanged = unchanged_in_file(path, report.placed)
    if apply and report.placed:
        from agentcron.config.errors import ConfigError

        # every problem of the config as it would be written, at once (an unset key
        # variable was refused first, then an unset ${NAME}, in two rounds; it is a
        # warning now, as validate says it)
        kept = f"{path} was not {'changed' if path.exists() else 'created'}"
        try:
            apply_to_file(path, report.placed)
        except ConfigError as exc:
            _fail(f"{kept}:\n{exc}")
        except OSError as exc:
            _fail(f"cannot write {path}: {exc.strerror or exc}")
    _emit(report, str(path), apply, enable, json_out)
    _nothing_importable(plan)


def _nothing_importable(plan: Plan) -> None:
    """Exit 1 when every job of the file was an error: a file that is not what its
    source says (a text file given as a crontab) was reported and exited 0."""
    if not plan.drafts and any(note.kind == "error" for note in plan.skipped):
        raise typer.Exit(1)


def _to_db(
    plan: Plan,
    apply: bool,
    enable: bool,
    config: Path | None,
    home: Path | None,
    db: str | None,
    json_out: bool,
) -> None:
    from agentcron.importers import DbImportError, apply_to_db, place
    from agentcron.importers import report as reports
    from agentcron.interfaces.cli import service_for

    with service_for(config, home, db, create=True) as svc:
        from agentcron.importers.write_db import existing_tasks as db_tasks
        from agentcron.importers.write_db import unchanged_in_db

        own, from_file, paused_now, schedules = db_tasks(svc)
        placed, conflicts = place(plan, own, enable, foreign=from_file, schedules=schedules)
        report = reports.build(
            plan, placed, conflicts, svc.defaults.task_defaults, paused_now, existing=own
        )
        _, channels = _file_defaults(_config_path(config), quiet=True)
        if channels is not None:
            channels.untold.extend(svc.untold_added_tasks())
        report.warnings += _untold(plan, report, channels)
        report.warnings += reports.unset_keys(report)
        report.unchanged = unchanged_in_db(svc, report.placed, paused_now)
        if apply and report.placed:
            try:
                apply_to_db(svc, report.placed, paused_now)
            except DbImportError as exc:
                _fail(str(exc))
    _emit(report, "the database", apply, enable, json_out)


def _emit(report: Report, target: str, applied: bool, enable: bool, json_out: bool) -> None:
    from agentcron.importers import report as reports

    if json_out:
        data = reports.as_json(report, target, applied)
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    _out.print(reports.text(report, target, applied, enable), end="")


def _options(
    source: str,
    to: str,
    base_url: str | None,
    model: str | None,
    api_key_env: str | None,
    agent_cmd: str | None,
) -> ImportOptions:
    from agentcron.importers import SOURCES, ImportOptions
    from agentcron.importers._core import check_agent_cmd

    if source not in SOURCES:
        _fail(f"unknown source {source!r}: use one of {_SOURCES}")
    if to not in ("file", "db"):
        _fail(f"--to {to!r}: use file (the config file) or db (the database)")
    if agent_cmd is not None:
        problem = check_agent_cmd(agent_cmd)
        if problem:
            _fail(problem)
        if base_url or model:
            _fail("give either --agent-cmd or --base-url/--model, not both")
    if (base_url is None) != (model is None):
        _fail("--base-url and --model go together (the API to call and the model to ask)")
    if base_url is not None and not re.match(r"^https?://[^\s/]+", base_url):
        _fail(f"--base-url must be an http:// or https:// URL, got {base_url!r}")
    if api_key_env is not None and not _ENV_NAME.fullmatch(api_key_env):
        _fail(f"--api-key-env names a variable (e.g. DEEPINFRA_API_KEY), got {api_key_env!r}")
    return ImportOptions(base_url, model, api_key_env, agent_cmd)


def _config_path(config: Path | None) -> Path:
    if config is not None:
        return config.expanduser()
    from agentcron.interfaces import cli

    return (cli._globals.config or Path("agentcron.yaml")).expanduser()


@dataclass
class _Channels:
    """What the config says of ``notify:``: whether it names a channel, and the tasks
    whose failures reach no one (validate's list)."""

    named: bool
    untold: list[str] = field(default_factory=list)


def _file_defaults(
    path: Path, quiet: bool = False
) -> tuple[dict[str, Any] | None, _Channels | None]:
    """The config's defaults (tasks are checked with them) and its channels (None when
    it is invalid); loading it also makes its env_file the one placeholders are checked
    against."""
    if not path.exists():
        return None, _Channels(False)
    from agentcron.config.errors import ConfigError
    from agentcron.config.loader import load_config

    try:
        loaded = load_config(path)
    except ConfigError as exc:
        # --apply refuses an invalid file later; a dry run goes on, saying what it lacks
        if not quiet:
            _err.print(
                f"[yellow]warning:[/] {path} is invalid, so its defaults are not applied to "
                f"the tasks shown:\n{exc}",
                highlight=False,
            )
        return None, None
    return loaded.defaults, _Channels(bool(loaded.notify), loaded.untold())


def _untold(plan: Plan, report: Report, channels: _Channels | None) -> list[str]:
    """validate's "told to no one" warning, for the tasks of the config (or database)
    and the new ones, when no ``notify:`` channel is named: a crontab's MAILTO users
    were told nothing, then validate warned (outside-in probe). With a MAILTO, how to
    be told by mail."""
    if channels is None or channels.named or not report.placed:
        return []
    from agentcron.config.schema import untold_words
    from agentcron.importers.crontab import mail_hint

    new = [item.name for item in report.placed if not item.update]
    said = [untold_words(sorted({*channels.untold, *new}))]
    if plan.mail_to:
        said.append(mail_hint(plan.mail_to))
    return said
