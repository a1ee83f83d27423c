"""A user crontab (``crontab -l > my.crontab``), read as cron reads it.

- ``NAME=value`` lines set the environment of the entries *below* them; quotes
  around the value are removed, nothing is expanded. ``SHELL`` chooses the shell
  (``/bin/sh`` by default), ``CRON_TZ`` the zone of the schedules below it,
  ``MAILTO`` where cron mailed output (agentcron keeps output and tells you about
  problems instead: reported once). A variable whose name says it is secret
  (``*KEY*``, ``*TOKEN*``…) is written as ``${NAME}`` and listed to be set in the
  environment or the env file, so its value leaves the command line config.
- ``%`` in the command ends it: the rest is the command's standard input, each
  further ``%`` a line break; ``\\%`` is a literal ``%``. The input is fed with
  ``printf`` through a pipe, as cron feeds it.
- ``@reboot`` has no counterpart (agentcron has no "at start" schedule) and is
  reported; ``@hourly`` … ``@yearly`` are kept; a commented-out entry is reported,
  not imported.

Commands run through the shell as cron runs them (``shell: true``, or the argv
``[SHELL, -c, command]`` for another shell); a ``${`` in them is written ``$${`` so
that the shell, not agentcron, expands it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentcron.config._env import escape
from agentcron.importers._core import (
    Draft,
    ImportOptions,
    Note,
    Plan,
    read_text,
    unique,
    zone_name,
)
from agentcron.importers._cron_lines import (
    ENV_LINE,
    FIELD,
    name_of,
    names_user,
    parse_entry,
    split_percent,
    system_crontab,
    unquote,
    user_columns,
)
from agentcron.importers._zone import machine_zone, same_zone, shell_zone
from agentcron.redact import redact

SOURCE = "crontab"
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_NOT_ENV = frozenset({"SHELL", "MAILTO", "MAILFROM", "CRON_TZ", "RANDOM_DELAY"})


@dataclass
class _State:
    env: dict[str, str] = field(default_factory=dict)
    shell: str | None = None
    zone: str | None = None
    zone_error: str | None = None
    comment: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    system: bool = False  # a user column after the schedule (/etc/crontab, /etc/cron.d)
    # entries of the file whose command starts with a user's name (not a program's)
    user_lines: int = 0


def plan_file(path: Path, options: ImportOptions) -> Plan:
    """Read ``path`` and make the plan; :class:`ImportFileError` when the file is unusable."""
    text, remarks = read_text(path)
    plan = Plan(SOURCE, str(path))
    plan.notes += [Note("file", "", "warning", r) for r in remarks]
    state = _State()
    why = system_crontab(path, text)
    state.user_lines = sum(user_columns(text))
    if why is not None:
        state.system = True
        plan.notes.append(
            Note(
                "file",
                "user",
                "approximated",
                f"a system crontab ({why}): the user column after each schedule is removed "
                "from the commands; agentcron runs them as the user its daemon runs as",
            )
        )
    # cron ends a line at "\n" only: a form feed or U+2028 inside a command is part of it
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line:
            state.comment = []
            continue
        if line.startswith("#"):
            _comment(line, number, state, plan)
            continue
        env = ENV_LINE.match(line)
        if env is not None:
            _setting(env.group(1), unquote(env.group(2)), number, state, plan)
            state.comment = []
            continue
        _entry(line, number, state, plan)
        state.comment = []
    _settle_keys(plan.drafts)
    if plan.drafts:
        plan.notes.append(
            Note(
                "file",
                "environment",
                "approximated",
                "cron ran commands with a bare environment (PATH=/usr/bin:/bin unless set "
                "here); agentcron runs them with the daemon's environment plus env:",
            )
        )
    local = [d for d in plan.drafts if "timezone" not in d.body]
    if local:
        _machine_zone(local, plan)
    return plan


def _machine_zone(local: list[Draft], plan: Plan) -> None:
    """Cron ran the entries without CRON_TZ in the machine's zone (/etc/localtime), not in
    the TZ of the shell importing them. Written without timezone:, a config with another
    `timezone:` moved them (01:00 became 00:00 UTC, said only in a note an importer's
    user may skip): each is written with the zone cron ran it in."""
    zone, where = machine_zone()
    shell = shell_zone()
    if zone is None:
        for draft in local:
            draft.note(
                "timezone",
                "warning",
                f"cron ran it in this machine's zone, which cannot be named ({where}): "
                "written without timezone:, the config's timezone: applies; set the "
                "task's timezone: to the zone cron ran it in",
            )
        return
    for draft in local:
        draft.body = _with_zone(draft.body, zone)
    plan.notes.append(
        Note(
            "file",
            "CRON_TZ",
            "approximated",
            f"no CRON_TZ: cron ran {len(local)} of these in this machine's zone "
            f"({zone}); they are written with `timezone: {zone}` to keep cron's times "
            "(cron would follow a later change of the machine's zone; they will not)",
        )
    )
    if shell is not None and not same_zone(shell, zone):
        plan.notes.append(
            Note(
                "file",
                "TZ",
                "warning",
                f"this shell's TZ is {shell}, but cron runs in the machine's zone, {zone} "
                f"({where}): the tasks are written with `timezone: {zone}`, not {shell}; "
                "if your cron did run them in another zone, put CRON_TZ=ZONE above them "
                "and import again",
            )
        )


def _settle_keys(drafts: list[Draft]) -> None:
    """Each line's ``imported_from``: the hash of its command and of its schedule (and
    zone); identical lines add their order among themselves (``-2``, ``-3``…). A line's
    key says nothing of where it stands, so adding, removing or moving other lines
    changes no key (the first line once kept the bare command key, and whichever line
    came first later took its task)."""
    taken: set[str] = set()
    for draft in drafts:
        draft.key = unique(draft.key, taken)


def _with_zone(body: dict[str, Any], zone: str) -> dict[str, Any]:
    """``body`` with ``timezone: zone`` placed right after its schedule."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        out[key] = value
        if key == "cron":
            out["timezone"] = zone
    out.setdefault("timezone", zone)
    return out


def _comment(line: str, number: int, state: _State, plan: Plan) -> None:
    body = line.lstrip("#").strip()
    entry = parse_entry(body, strict=True)
    if entry is not None:
        plan.skipped.append(
            Note(name_of(entry[1]), "", "skipped", "commented out: not imported", number)
        )
        state.comment = []
        return
    if body:
        state.comment.append(body)


def _setting(name: str, value: str, number: int, state: _State, plan: Plan) -> None:
    if name == "SHELL":
        state.shell = value or None
    elif name == "CRON_TZ":
        try:
            state.zone, _ = zone_name(value)
            state.zone_error = None
        except ValueError as exc:
            state.zone, state.zone_error = None, f"CRON_TZ on line {number}: {exc}"
            plan.skipped.append(Note("CRON_TZ", "", "error", str(exc), number))
    elif name in ("MAILTO", "MAILFROM"):
        if name == "MAILTO":
            plan.notes.append(Note("MAILTO", "", "approximated", _mailto(value), number))
            for address in re.split(r"[,\s]+", value):
                if address and address not in plan.mail_to:
                    plan.mail_to.append(address)
    elif name == "RANDOM_DELAY":
        plan.notes.append(
            Note("RANDOM_DELAY", "", "dropped", "no random start delay in agentcron", number)
        )
    else:
        if name == "TZ":
            plan.notes.append(
                Note(
                    "TZ",
                    "",
                    "approximated",
                    "TZ is passed to the commands; the schedules follow CRON_TZ "
                    "(or the config's timezone:), as with cronie",
                    number,
                )
            )
        # a secret by its name, or by its value's shape (a password in a URL: the
        # value of DB_URL=postgresql://app:PW@db/x was written into the config; probe)
        if _SECRET_NAME.search(name) or redact(value) != value:
            state.env[name] = "${" + name + "}"
            plan.variables[name] = (
                f"set on line {number} of the crontab; put it in the environment or env_file"
            )
        else:
            state.env[name] = escape(value)


def _mailto(value: str) -> str:
    if not value:
        return (
            'MAILTO="": cron mailed nothing; agentcron keeps every run\'s output '
            "(agentcron logs) and tells you only about problems"
        )
    return (
        f"cron mailed every output to {value}; agentcron keeps it (agentcron logs) and "
        "tells you about problems through notify:; for output by mail add "
        "deliver: [mailtos://…] to a task"
    )


def mail_hint(addresses: list[str]) -> str:
    """How to be told of failures by mail at the addresses MAILTO named: the Apprise
    e-mail URLs to put under ``notify:``, with the mail server's parts left to fill in
    (cron handed its mail to this machine's sendmail; no credentials are made up)."""
    local = [a for a in addresses if "@" not in a]
    if local:
        return (
            f"MAILTO={','.join(addresses)} names a mailbox on this machine, which agentcron "
            "cannot mail: to be told of failures by mail, add under `notify:` an Apprise "
            "e-mail URL to an address, such as mailto://localhost?to=ADDRESS (through this "
            "machine's mail server, if it runs one on port 25)"
        )
    to = ",".join(addresses)
    return (
        f"cron mailed to {to}: to be told of failures there, add under `notify:` "
        f"mailto://localhost?to={to} (through this machine's mail server, if it runs one "
        f"on port 25, as cron's mail went through it) or "
        f"mailtos://USER:${{SMTP_PASSWORD}}@SMTP_HOST?to={to} (your provider's SMTP "
        "server: put its host and user in, and SMTP_PASSWORD in env_file); "
        "`agentcron notify test` tries it"
    )


def _entry(line: str, number: int, state: _State, plan: Plan) -> None:
    quiet = line.startswith("-")
    parsed = parse_entry(line[1:] if quiet else line)
    if parsed is None:
        plan.skipped.append(
            Note(
                f"line {number}",
                "",
                "error",
                "not a crontab entry (five time fields and a command)",
                number,
            )
        )
        return
    schedule, command = parsed
    user = None
    if state.system:
        words = command.split(None, 1)
        if len(words) < 2:
            plan.skipped.append(
                Note(
                    f"line {number}",
                    "",
                    "error",
                    "a system crontab's line needs a user and a command after its schedule",
                    number,
                )
            )
            return
        user, command = words
    where = name_of(split_percent(command)[0])
    if schedule == "@reboot":
        plan.skipped.append(
            Note(
                where,
                "@reboot",
                "skipped",
                "not importable: agentcron has no 'at start' schedule; start it from your "
                "service manager (e.g. ExecStartPost= in the unit of `agentcron run`)",
                number,
            )
        )
        return
    from agentcron.schedules.cron import validate_cron

    try:
        validate_cron(schedule)
    except ValueError as exc:
        plan.skipped.append(Note(where, "schedule", "error", str(exc), number))
        return
    if state.zone_error is not None:
        plan.skipped.append(Note(where, "CRON_TZ", "error", state.zone_error, number))
        return
    body: dict[str, Any] = {}
    if state.comment:
        body["description"] = state.comment[-1]
    body["cron"] = schedule
    if state.zone is not None:
        body["timezone"] = state.zone
    run, stdin = split_percent(command)
    text = run.strip()
    if stdin is not None:
        parts = stdin.split("\n")
        if len(parts) > 1 and parts[-1] == "":
            parts.pop()  # a final % ends the last line; printf ends every line
        feed = " ".join(shlex.quote(part) for part in parts)
        # nothing before the % (cron runs an empty command, which succeeds): `( )` is
        # a syntax error of sh, and every run failed with exit 2
        text = f"printf '%s\\n' {feed} | ( {text or ':'} )"
    if state.shell and os.path.basename(state.shell) != "sh":
        body["command"] = [state.shell, "-c", escape(text)]
    else:
        body["command"] = escape(text)
        body["shell"] = True
    if state.env:
        body["env"] = dict(state.env)
    loose = f"{SOURCE}:{hashlib.sha256(command.strip().encode()).hexdigest()[:12]}"
    when = hashlib.sha256(f"{schedule} {state.zone or ''}".encode()).hexdigest()[:6]
    name = unique(name_of(run), state.names)
    draft = Draft(name, f"{loose}-{when}", f"crontab line {number}", body, where=where)
    draft.loose_key = loose  # identical lines are told apart by _settle_keys
    if user is not None:
        draft.note(
            "user",
            "approximated",
            f"cron ran it as {user}; agentcron runs it as the user its daemon runs as "
            "(a command that needs that user's rights fails, and is reported)",
            number,
        )
    if quiet:
        draft.note("-", "dropped", "cronie's '-' (no syslog line) has no meaning here", number)
    if stdin is not None:
        draft.note(
            "%",
            "approximated",
            "the text after % was the command's input: fed with printf through a pipe",
            number,
        )
    if not run.strip():
        draft.note(
            "command",
            "warning",
            "the line has no command before its %: it does nothing (as under cron)",
            number,
        )
    _odd_first_word(draft, run, number, state)
    if redact(command) != command:
        draft.note(
            "command",
            "warning",
            "the command seems to hold a secret: move it to env_file and pass it with "
            'env: {NAME: "${NAME}"}',
            number,
        )
    plan.drafts.append(draft)


def _odd_first_word(draft: Draft, command: str, number: int, state: _State) -> None:
    """A command whose first word is a sixth time field, or a user column of a system
    crontab, was most likely written for another format: cron would run it as it
    stands, so it is imported so, and said. A user name is said only where the file
    looks like a system crontab's lines: two entries or more start with one (a line
    whose command is ``mail`` or ``backup``, users of Debian's too, is a command), or
    the name is ``root``, which is no command."""
    words = command.split()
    if len(words) < 2:
        return
    first = words[0]
    if FIELD.match(first):
        draft.note(
            "command",
            "warning",
            f"the command starts with {first!r}, a time field: a crontab line has five; "
            "a sixth (seconds, or a year) from another cron's format is run as a command",
            number,
        )
    elif names_user(command) and (first == "root" or state.user_lines >= 2):
        draft.note(
            "command",
            "warning",
            f"the command starts with {first!r}, a user on this machine ({state.user_lines} "
            "line(s) of this file start with a user's name): a line of a system crontab "
            "(/etc/crontab, /etc/cron.d) has a user column, which a user crontab does "
            "not; remove it if that is where this line comes from",
            number,
        )
