"""What every importer shares: the records of a plan, reading a source file, naming.

An importer turns one foreign file into a :class:`Plan`: one :class:`Draft` per
agentcron task it would write, each with the :class:`Note` s that say what was
dropped or approximated, plus the source jobs it could not import and why. The
plan itself writes nothing; :mod:`agentcron.importers.place` decides the names
and paused states against what the target already holds, and the writers apply it.
"""

from __future__ import annotations

import codecs
import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentcron.clock import Clock, SystemClock
from agentcron.config._env import escape

NoteKind = Literal["dropped", "approximated", "warning", "skipped", "error"]
_UTF16_32_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_UTC_ALIASES = frozenset({"utc", "z", "gmt", "etc/utc", "etc/gmt", "zulu", "universal"})
_LOCAL_ALIASES = frozenset({"local", "localtime", "system", "auto", "default"})


class ImportFileError(Exception):
    """The source file as a whole cannot be imported; the message says why and where."""


@dataclass(frozen=True)
class Note:
    """One thing a person should know about one source job (``task``) and ``field``.

    ``kind``: ``dropped`` (not carried over), ``approximated`` (carried over with a
    difference), ``warning`` (an unknown field, a state worth knowing), ``skipped``
    (the job is not imported, deliberately) or ``error`` (it could not be).
    """

    task: str
    field: str
    kind: NoteKind
    reason: str
    line: int | None = None

    def text(self, file: str) -> str:
        """``jobs.json:12: story.deliver: dropped: …`` (validate's style)."""
        where = f"{file}:{self.line}" if self.line is not None else file
        location = f"{self.task}.{self.field}" if self.field else self.task
        return f"{where}: {location}: {self.kind}: {self.reason}"


@dataclass
class Draft:
    """One agentcron task an importer would write.

    ``body`` is the task as it goes under ``tasks:`` minus ``paused`` and
    ``imported_from`` (set when placed); ``label`` names the source job for people,
    ``where`` its place in the file.
    """

    name: str
    key: str
    label: str
    body: dict[str, Any]
    enabled_at_source: bool = True
    notes: list[Note] = field(default_factory=list)
    where: str = ""  # the job's place in the source file (jobs[2] 'Morning brief')
    # a key this job shares with the source's other jobs, that a task of another of
    # them may carry: a crontab line's command alone, when ``key`` adds its schedule.
    # A task is found by ``key`` first, then by this key and the schedule it has, then
    # by this key alone (see place.match)
    loose_key: str = ""

    def note(self, field_name: str, kind: NoteKind, reason: str, line: int | None = None) -> None:
        self.notes.append(Note(self.name, field_name, kind, reason, line))


@dataclass
class Plan:
    """What importing one file would do; nothing is written by making one."""

    source: str  # agent-zero, hermes, openclaw, crontab
    file: str  # as given, for messages
    drafts: list[Draft] = field(default_factory=list)
    skipped: list[Note] = field(default_factory=list)  # jobs not imported, with why
    notes: list[Note] = field(default_factory=list)  # about the file as a whole
    variables: dict[str, str] = field(default_factory=dict)  # NAME -> what to set it to
    mail_to: list[str] = field(default_factory=list)  # where the source mailed (MAILTO)


@dataclass(frozen=True)
class ImportOptions:
    """How agent prompts become tasks, and the clock for "is this one-shot still ahead"."""

    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    agent_cmd: str | None = None
    clock: Clock = field(default_factory=SystemClock)

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def prompt_mode(self) -> str | None:
        """``llm``, ``command`` or None when prompts have nowhere to go."""
        if self.agent_cmd:
            return "command"
        if self.base_url and self.model:
            return "llm"
        return None


class PromptTargetMissing(Exception):
    """An agent prompt was found but neither --base-url/--model nor --agent-cmd given."""


SOURCE_NAMES = {
    "agent-zero": "Agent Zero",
    "hermes": "Hermes",
    "openclaw": "OpenClaw",
    "crontab": "crontab",
}
LLM_WARNING = (
    "llm: tasks send the prompt straight to the model: the agent's tools, skills and "
    "memory do not come along (use --agent-cmd to run prompts through the agent's own CLI)"
)


# ---- reading ---------------------------------------------------------------------------


STDIN = "standard input"


def shown(path: Path) -> str:
    """The file as messages name it: ``-`` is standard input."""
    return STDIN if str(path) == "-" else str(path)


def read_text(path: Path) -> tuple[str, list[str]]:
    """The file's text and remarks about it (a UTF-8 byte-order mark that was skipped).

    ``-`` is standard input (``crontab -l | agentcron import crontab -``). Raises
    :class:`ImportFileError` for a file that is missing, unreadable, empty, UTF-16/32
    or not UTF-8.
    """
    name = shown(path)
    try:
        data = sys.stdin.buffer.read() if name == STDIN else path.read_bytes()
    except FileNotFoundError:
        raise ImportFileError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImportFileError(f"{name} is a directory; give the path of the file") from None
    except OSError as exc:
        raise ImportFileError(f"cannot read {name}: {exc.strerror or exc}") from None
    for bom, encoding in _UTF16_32_BOMS:
        if data.startswith(bom):
            raise ImportFileError(
                f"{name} is {encoding} text (it starts with a {encoding} byte-order mark); "
                "save it as UTF-8 and import it again"
            )
    remarks = []
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
        remarks.append(f"{name} starts with a UTF-8 byte-order mark; it was skipped")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportFileError(
            f"{name}:{line}: not UTF-8 text (invalid byte at offset {exc.start}); "
            "is this the right file?"
        ) from None
    if "\x00" in text:
        raise ImportFileError(f"{name} holds NUL bytes: it is not a text file")
    if not text.strip():
        raise ImportFileError(f"{name} is empty: nothing to import")
    return text, remarks


def read_json(path: Path) -> tuple[Any, list[str]]:
    text, remarks = read_text(path)
    name = shown(path)
    try:
        return json.loads(text), remarks
    except json.JSONDecodeError as exc:
        raise ImportFileError(
            f"{name}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}"
            " (was the file cut short or edited by hand?)"
        ) from None
    except RecursionError:
        raise ImportFileError(f"{name}: nested too deeply to be a job file") from None


def read_yaml(path: Path) -> tuple[Any, list[str]]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    text, remarks = read_text(path)
    name = shown(path)
    try:
        return YAML(typ="safe", pure=True).load(text), remarks
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
        raise ImportFileError(f"{where}: not valid YAML: {exc.problem}") from None
    except YAMLError as exc:
        raise ImportFileError(f"{name}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ImportFileError(f"{name}: nested too deeply to be a job file") from None


# ---- values ----------------------------------------------------------------------------


def slug(text: str, fallback: str = "task") -> str:
    """A task name from free text: ``"Daily story (GLM)"`` -> ``daily-story-glm``."""
    words = re.sub(r"[^A-Za-z0-9]+", "-", text.strip().lower()).strip("-")
    words = words[:60].rstrip("-")
    return words or fallback


def unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``… whichever is free; the result is taken."""
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{name}-{n}"
        n += 1
    taken.add(candidate)
    return candidate


def zone_name(value: Any) -> tuple[str | None, str | None]:
    """(IANA zone or None for "this machine's", a note or None) from a source's zone text.

    Raises ValueError for a zone that exists nowhere.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if not isinstance(value, str):
        raise ValueError(f"time zone must be text, got {value!r}")
    text = value.strip()
    if text.lower() in _UTC_ALIASES:
        return "UTC", None if text == "UTC" else f"zone {text!r} written as UTC"
    if text.lower() in _LOCAL_ALIASES:
        return None, (
            f"zone {text!r} (the machine's own) written without timezone: the config's "
            "timezone: or, without one, this machine's zone applies"
        )
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {text!r} (agentcron needs an IANA name such as Europe/Berlin)"
        ) from None
    return text, None


def parse_time(value: Any) -> datetime:
    """An ISO 8601 text or epoch milliseconds as a datetime (naive when the text is)."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):  # past year 9999, NaN, infinity
            shown = f"{value:.3g}" if isinstance(value, float) else f"{value:.3e}"
            raise ValueError(f"epoch milliseconds out of range: {shown}") from None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a time: {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {value!r}") from None


def one_line(text: Any, limit: int = 120) -> str:
    """The first line of ``text``, cut to ``limit`` characters, secrets redacted."""
    from agentcron.redact import redact

    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    first = redact(first)
    return first if len(first) <= limit else first[: limit - 1] + "…"


def prompt_action(
    prompt: str, system: str | None, options: ImportOptions
) -> tuple[dict[str, Any], list[tuple[str, NoteKind, str]]]:
    """The action for an agent prompt: ``llm:`` or a ``command:`` for ``--agent-cmd``.

    Returns the action keys and notes ``(field, kind, reason)`` about the prompt.
    Prompts are escaped so that a ``${`` in them stays text.
    """
    mode = options.prompt_mode()
    notes: list[tuple[str, NoteKind, str]] = []
    if mode == "llm":
        llm: dict[str, Any] = {"base_url": options.base_url, "model": options.model}
        if options.api_key_env:
            llm["api_key_env"] = options.api_key_env
        if system and system.strip():
            llm["system"] = escape(system)
        llm["prompt"] = escape(prompt)
        return {"llm": llm}, notes
    if mode == "command":
        assert options.agent_cmd is not None
        text = prompt
        if system and system.strip():
            text = f"{system.strip()}\n\n{prompt}"
            notes.append(
                (
                    "system_prompt",
                    "approximated",
                    "the system prompt goes first in the prompt given to --agent-cmd",
                )
            )
        return {"command": agent_command(options.agent_cmd, escape(text))}, notes
    raise PromptTargetMissing(
        "agent prompts need a target: --base-url URL --model NAME [--api-key-env VAR] "
        'for llm: tasks, or --agent-cmd "CLI ARGS" to run each prompt through '
        "your agent's command line"
    )


def agent_command(agent_cmd: str, prompt: str) -> list[str]:
    """``--agent-cmd`` split like a shell line, the prompt in place of ``{prompt}``
    (or appended as the last argument when no word holds ``{prompt}``)."""
    argv = shlex.split(agent_cmd)
    if any("{prompt}" in word for word in argv):
        return [word.replace("{prompt}", prompt) for word in argv]
    return [*argv, prompt]


def check_agent_cmd(agent_cmd: str) -> str | None:
    """Why ``--agent-cmd`` cannot be used, or None."""
    try:
        argv = shlex.split(agent_cmd)
    except ValueError as exc:
        return f"--agent-cmd: cannot split {agent_cmd!r}: {exc}"
    return None if argv else "--agent-cmd names no program"


def unknown_fields(
    draft_or_label: Draft | str, data: dict[str, Any], known: frozenset[str], what: str
) -> list[Note]:
    """Warnings for the fields of ``data`` this importer does not know."""
    task = draft_or_label.name if isinstance(draft_or_label, Draft) else draft_or_label
    return [
        Note(task, str(key), "warning", f"unknown {what} field, not imported (a newer format?)")
        for key in data
        if key not in known
    ]
