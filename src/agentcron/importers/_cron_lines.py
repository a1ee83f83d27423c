"""The lines of a crontab as cron reads them: environment lines, entries (a schedule
and a command, ``%`` splitting off its standard input), the user column of a system
crontab, and a task name drawn from what a command runs. Pure text work, no I/O but
the user database and ``PATH`` asked by :func:`system_crontab`."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

from agentcron.importers._core import slug

ENV_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_ENTRY = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S.*)$")
_SPECIAL = re.compile(r"^(@[A-Za-z]+)\s+(\S.*)$")
FIELD = re.compile(r"^(\*|\?|[0-9]+)([-/,][0-9*]+)*$")

# words before the program a task is named after, and programs that run a script
_SKIP_WORDS = frozenset(
    {
        "cd",
        "export",
        "source",
        ".",
        "sleep",
        "set",
        "true",
        "umask",
        "env",
        "nice",
        "ionice",
        "flock",
        "timeout",
        "exec",
        "chronic",
        "nohup",
        "sudo",
        "test",
        "[",
    }
)
_INTERPRETERS = frozenset(
    {"sh", "bash", "zsh", "python", "python3", "node", "php", "perl", "ruby", "uv", "bun", "deno"}
)


# Where cron reads system crontabs, whose lines name a user between schedule and command
SYSTEM_FILES = ("/etc/crontab",)
SYSTEM_FOLDERS = ("/etc/cron.d",)


def system_crontab(path: Path, text: str) -> str | None:
    """Why the file is a system crontab, or None: it is where cron reads one, or every
    entry names a user of this machine (that is no program) between its schedule and
    its command."""
    if str(path) != "-":
        for place in {os.path.abspath(path), os.path.realpath(path)}:
            if place in SYSTEM_FILES or os.path.dirname(place) in SYSTEM_FOLDERS:
                return f"{place} is one"
    users = user_columns(text)
    if users and all(users):
        return "every line names a user of this machine after its schedule"
    return None


def user_columns(text: str) -> list[bool]:
    """For each entry of ``text``, whether its command starts with what may be a system
    crontab's user column (:func:`names_user`)."""
    users = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#") or ENV_LINE.match(line):
            continue
        parsed = parse_entry(line.removeprefix("-"))
        if parsed is not None:
            users.append(names_user(parsed[1]))
    return users


def names_user(command: str) -> bool:
    """Whether ``command`` starts with a user of this machine followed by a command, the
    user being no program (``sync``, ``man`` are read as the commands they are)."""
    words = command.split(None, 1)
    return len(words) == 2 and is_user(words[0]) and not shutil.which(words[0])


def is_user(word: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(word)
    except (KeyError, ValueError):
        return False
    return True


def parse_entry(line: str, strict: bool = False) -> tuple[str, str] | None:
    """(schedule, command) of an entry line, or None when it is no entry. Not ``strict``,
    a line that starts like a schedule counts (its schedule is checked later, to say
    what is wrong with it); ``strict``, the schedule must be valid (comment lines)."""
    from agentcron.schedules.cron import validate_cron

    special = _SPECIAL.match(line)
    entry = _ENTRY.match(line)
    if special is not None:
        schedule, command = special.group(1).lower(), special.group(2)
    elif entry is not None:
        schedule = " ".join(entry.group(i) for i in range(1, 6))
        command = entry.group(6)
    else:
        return None
    if schedule == "@reboot":
        return schedule, command
    try:
        validate_cron(schedule)
    except ValueError:
        if strict or not re.match(r"^[\d*@]", schedule):
            return None  # words, not a schedule: prose or a broken line
    return schedule, command


def split_percent(command: str) -> tuple[str, str | None]:
    """(command, standard input) as cron splits them at the first unescaped ``%``."""
    out: list[str] = []
    i = 0
    while i < len(command):
        char = command[i]
        if char == "\\" and command[i + 1 : i + 2] == "%":
            out.append("%")
            i += 2
            continue
        if char == "%":
            rest = command[i + 1 :]
            stdin = re.sub(r"(?<!\\)%", "\n", rest).replace("\\%", "%")
            return "".join(out), stdin
        out.append(char)
        i += 1
    return "".join(out), None


def unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def name_of(command: str) -> str:
    """A task name from what the command runs: ``cd /srv && ./reindex.py`` -> reindex."""
    for segment in re.split(r"&&|\|\||;|\|", command):
        try:
            words = shlex.split(segment)
        except ValueError:
            words = segment.split()
        words = [w for w in words if "=" not in w.split("/")[0]]  # VAR=x prefixes
        if not words or os.path.basename(words[0]) in _SKIP_WORDS:
            continue
        program = os.path.basename(words[0])
        if program in _INTERPRETERS:
            script = next((w for w in words[1:] if not w.startswith("-")), None)
            if script is not None:
                program = os.path.basename(script)
        return slug(os.path.splitext(program)[0] or program, fallback="cron-job")
    return "cron-job"
