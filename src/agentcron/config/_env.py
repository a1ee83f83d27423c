"""``${NAME}`` placeholders: secrets come from the environment or an env file, not the config.

A placeholder is ``${NAME}`` or ``${NAME:-default}`` (the default also stands in
for a variable that is set but empty, as in the shell); ``$${`` is a literal
``${``. Nothing else is special: a lone ``$`` or ``$$`` stays as written, so
``$HOME`` in a shell command is left to the shell.

Placeholders are *checked* when the config is loaded (a missing variable is a
``validate`` error naming the task, the field and the variable) but *expanded*
only where a value is used: when the engine hands a task to its action and when a
channel is built from a URL. What is stored in the database, written back to a
file or shown by ``show``/``list``/the API keeps the placeholder, so a token set
in the environment never lands anywhere it could be read back.

Values come from the process environment, then from the optional top-level
``env_file:`` (dotenv: ``KEY=VALUE`` lines, ``#`` comments, quotes). The process
environment wins, so a service manager's ``Environment=`` overrides the file. The
values of the env file of the config last loaded successfully are kept here for
the expansions at run time; a config that fails to load leaves them as they were,
as the daemon keeps its last good config.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentcron.model.task import TaskSpec

# Task keys whose strings are expanded when the task runs or delivers. Other keys
# shape the schedule and the policies and are read by the engine as stored, so a
# placeholder there could never be honoured; ``description`` is shown as written.
RUNTIME_TASK_KEYS = frozenset(
    {"command", "precheck", "env", "cwd", "args", "kwargs", "http", "llm", "notify", "deliver"}
)
UNEXPANDED_TASK_KEYS = frozenset({"description"})
# Top-level keys expanded where they are used (channels, the heartbeat, the API).
RUNTIME_TOP_KEYS = frozenset({"notify", "heartbeat_url"})
RUNTIME_API_KEYS = frozenset({"token"})
# Keys of an action the engine expands before the run (deliver/notify stay as
# written: channels expand them, and outbox rows keep the placeholder).
_ACTION_KEYS = ("command", "precheck", "env", "cwd", "args", "kwargs", "http", "llm")

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(r"\$\$\{|\$\{(?:(" + _NAME + r")(?::-([^}]*))?\})?")
_VALID = re.compile(r"(?<!\$)\$\{" + _NAME + r"(?::-[^}]*)?\}")
_KEY = re.compile(r"^" + _NAME + r"$")


class PlaceholderError(ValueError):
    """A ``${`` that is not a placeholder: the message says how to write one."""


class MissingVariableError(ValueError):
    """Placeholders name variables that are set neither in the environment nor the env file."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        listed = ", ".join(names)
        what = f"variables {listed} are" if len(names) > 1 else f"variable {listed} is"
        super().__init__(
            f"{what} not set (in the environment or the config's env_file; "
            "${NAME:-default} gives a default)"
        )


class EnvFileError(ValueError):
    """The env file cannot be read, or a line of it is not ``KEY=VALUE``."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def malformed_message() -> str:
    return (
        "'${' here does not start a placeholder ${NAME} or ${NAME:-default}; "
        "write $${ for a literal ${"
    )


def names_in(text: str) -> list[str]:
    """The variables ``text`` names, in order, once each; raises :class:`PlaceholderError`."""
    found: list[str] = []
    for match in _TOKEN.finditer(text):
        if match.group(0) == "$${":
            continue
        if match.group(1) is None:
            raise PlaceholderError(malformed_message())
        if match.group(1) not in found:
            found.append(match.group(1))
    return found


def has_placeholder(text: str) -> bool:
    """Whether ``text`` holds something expansion would change (a placeholder or ``$${``)."""
    return "${" in text


def looks_like_placeholder(text: str) -> bool:
    """A well-formed ``${NAME}`` where none is expanded (the user probably expects one)."""
    return _VALID.search(text) is not None


def expand(text: str, environ: Mapping[str, str]) -> str:
    """``text`` with its placeholders replaced from ``environ``.

    Raises :class:`MissingVariableError` naming every unset variable without a
    default, and :class:`PlaceholderError` for a malformed ``${``.
    """
    if "${" not in text:
        return text
    missing: list[str] = []

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name is None:
            raise PlaceholderError(malformed_message())
        value = environ.get(name)
        if default is not None and not value:
            return default
        if value is None:
            if name not in missing:
                missing.append(name)
            return ""
        return value

    result = _TOKEN.sub(one, text)
    if missing:
        raise MissingVariableError(missing)
    return result


def escape(text: str) -> str:
    """``text`` written so that expansion gives it back unchanged (``${`` -> ``$${``)."""
    return text.replace("${", "$${")


def expand_tree(value: Any, environ: Mapping[str, str]) -> Any:
    """Every string inside lists and mappings expanded (keys stay as written)."""
    if isinstance(value, str):
        return expand(value, environ)
    if isinstance(value, Mapping):
        return {k: expand_tree(v, environ) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [expand_tree(v, environ) for v in value]
    return value


KeyPath = tuple[str | int, ...]


def strings_in(value: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    """Every string inside ``value`` with its path below it."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from strings_in(item, (*path, str(key)))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from strings_in(item, (*path, i))


# ---- the env file --------------------------------------------------------------------


def parse_env_file(text: str) -> dict[str, str]:
    """Read dotenv text: ``KEY=VALUE`` per line, optional ``export``, ``#`` comments.

    A value in single quotes is taken as written; in double quotes ``\\n``, ``\\t``,
    ``\\"`` and ``\\\\`` are escapes and it may span lines; an unquoted value ends at
    `` #`` and loses surrounding blanks. Values are not expanded further.
    """
    values: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        number = i + 1
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export") :].strip()
        key, eq, rest = line.partition("=")
        key = key.strip()
        if not eq:
            raise EnvFileError(f"line {number} is not KEY=VALUE", number)
        if not _KEY.fullmatch(key):
            raise EnvFileError(
                f"line {number}: {key!r} is not a variable name (letters, digits, '_')", number
            )
        rest = rest.strip()
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            body = rest[1:]
            while not _closed(body, quote):
                if i >= len(lines):
                    raise EnvFileError(f"line {number}: the {quote} quote is never closed", number)
                body += "\n" + lines[i]
                i += 1
            end = _closing(body, quote)
            tail = body[end + 1 :].strip()
            if tail and not tail.startswith("#"):
                raise EnvFileError(f"line {number}: text after the closing {quote}", number)
            raw = body[:end]
            values[key] = raw if quote == "'" else _unescape(raw)
        else:
            comment = re.search(r"\s#", rest)
            values[key] = (rest[: comment.start()] if comment else rest).strip()
    return values


def _closing(body: str, quote: str) -> int:
    i = 0
    while i < len(body):
        if quote == '"' and body[i] == "\\":
            i += 2
            continue
        if body[i] == quote:
            return i
        i += 1
    return -1


def _closed(body: str, quote: str) -> bool:
    return _closing(body, quote) >= 0


def _unescape(raw: str) -> str:
    table = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "$": "$"}
    return re.sub(r"\\(.)", lambda m: table.get(m.group(1), "\\" + m.group(1)), raw)


# The most a config or env file may hold: files of 100,000 tasks made by a script were
# 4.4 and 10.6 MB (three or four keys each). A
# 150 MB one (valid: comments) held the daemon's loop for two minutes while it was
# parsed, told as a stall with the wrong causes, and `agentcron health` as long.
MAX_FILE_BYTES = 16 * 1024 * 1024


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n:,} bytes"


def read_regular_file(path: Path) -> bytes:
    """The file's bytes, read only if it is a regular file (or a link to one) of at most
    :data:`MAX_FILE_BYTES`: a FIFO put in its place would block the read until someone
    writes to it, holding up the daemon's reload and every CLI command (found by an
    outside-in probe), and a huge file its parsing."""
    if path.exists() and not path.is_dir() and not path.is_file():
        raise OSError(
            errno.EINVAL, "not a regular file (a FIFO, socket or device); give a file", str(path)
        )
    with path.open("rb") as fh:
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(
            errno.EFBIG,
            f"larger than the {_size(MAX_FILE_BYTES)} agentcron reads; "
            "100,000 tasks of a few keys each take about 4 to 11 MB",
            str(path),
        )
    return data


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of the env file at ``path``; :class:`EnvFileError` says what is wrong."""
    try:
        data = read_regular_file(path)
    except FileNotFoundError:
        raise EnvFileError(f"env file {path} not found") from None
    except IsADirectoryError:
        raise EnvFileError(f"env file {path} is a directory") from None
    except OSError as exc:
        raise EnvFileError(f"cannot read env file {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise EnvFileError(f"env file {path} is not UTF-8 text") from None
    return parse_env_file(text)


@dataclass
class _Loaded:
    values: dict[str, str]
    generation: int = 0  # moves each time the values change


_lock = threading.Lock()
_loaded = _Loaded({})


def use_env_file_values(values: Mapping[str, str]) -> None:
    """Make ``values`` (the env file of the config just loaded) the ones expansions see."""
    with _lock:
        if dict(values) != _loaded.values:
            _loaded.values = dict(values)
            _loaded.generation += 1


def env_file_generation() -> int:
    """A number that moves whenever the env file's values change: what expanded a
    placeholder once (a channel built from its URL) knows to expand it again."""
    with _lock:
        return _loaded.generation


def env_file_values() -> dict[str, str]:
    with _lock:
        return dict(_loaded.values)


def current_environ(file_values: Mapping[str, str] | None = None) -> dict[str, str]:
    """The env file's variables under the process environment (which wins)."""
    base = env_file_values() if file_values is None else dict(file_values)
    return {**base, **os.environ}


def expand_value(text: str) -> str:
    """``text`` with its placeholders expanded now, for the places that use a value from
    the config outside a task (``heartbeat_url``, ``api.token``).

    Raises :class:`MissingVariableError` (a ``ValueError``) naming what is unset.
    """
    return expand(text, current_environ())


# ---- task specs at run time --------------------------------------------------------------


def spec_needs_expansion(spec: TaskSpec) -> bool:
    """Whether any string the action reads holds a placeholder (or a ``$${``), or the
    API key of an ``llm`` task is set only in the env file."""
    key_env = spec.llm.api_key_env if spec.llm is not None else None
    if key_env and key_env not in os.environ and key_env in env_file_values():
        return True
    return _has_placeholders(spec)


# spec -> whether its action's strings hold a placeholder: asked before every run (a
# walk of every string of the action, ~10 µs), while the engine runs the same spec
# objects again and again. Keyed by identity, the spec kept alive with its answer so
# that its id is not reused; cleared whole when full.
_PLACEHOLDERS: dict[int, tuple[TaskSpec, bool]] = {}
_PLACEHOLDERS_LIMIT = 10_000


def _has_placeholders(spec: TaskSpec) -> bool:
    known = _PLACEHOLDERS.get(id(spec))
    if known is not None and known[0] is spec:
        return known[1]
    found = False
    for key in _ACTION_KEYS:
        value = getattr(spec, key)
        if value is None:
            continue
        data = value.model_dump() if hasattr(value, "model_dump") else value
        if any(has_placeholder(text) for _, text in strings_in(data)):
            found = True
            break
    if len(_PLACEHOLDERS) >= _PLACEHOLDERS_LIMIT:
        _PLACEHOLDERS.clear()
    _PLACEHOLDERS[id(spec)] = (spec, found)
    return found


def expand_spec(spec: TaskSpec, environ: Mapping[str, str] | None = None) -> TaskSpec:
    """The spec an action runs with: placeholders in its action's strings replaced.

    ``deliver`` and ``notify`` keep theirs (a channel expands its own URL when it is
    built). An ``llm`` task whose ``api_key_env`` is set only in the env file gets it
    in the spec's ``env``, where the action looks after the process environment.
    Raises :class:`MissingVariableError` when a variable is not set (any more).
    """
    env = current_environ() if environ is None else dict(environ)
    update: dict[str, Any] = {}
    for key in ("command", "precheck", "cwd"):
        value = getattr(spec, key)
        if value is not None:
            update[key] = expand_tree(value, env)
    update["env"] = {k: expand(v, env) for k, v in spec.env.items()}
    update["args"] = expand_tree(spec.args, env)
    update["kwargs"] = expand_tree(spec.kwargs, env)
    if spec.http is not None:
        http = spec.http
        update["http"] = http.model_copy(
            update={
                "url": expand(http.url, env),
                "headers": {k: expand(v, env) for k, v in http.headers.items()},
                "body": expand_tree(http.body, env),
            }
        )
    if spec.llm is not None:
        llm = spec.llm
        fields = ("base_url", "model", "api_key_env", "system", "prompt")
        llm_update = {f: expand_tree(getattr(llm, f), env) for f in fields}
        update["llm"] = llm.model_copy(update=llm_update)
        key_env = llm_update["api_key_env"]
        if key_env and key_env not in os.environ and key_env not in update["env"]:
            value = env.get(key_env)
            if value is not None:
                update["env"] = {**update["env"], key_env: value}
    return spec.model_copy(update=update)


_SHORTEST_SHOWN_BACK = 4  # shorter values ("80", "v1") are too common to stand for one


def placeholders_by_value(
    spec: TaskSpec, environ: Mapping[str, str]
) -> Callable[[str], str] | None:
    """A function putting the placeholders of ``spec``'s action back in a text that
    holds their values (``…/hook/s3cr3t`` -> ``…/hook/${GW_CRED}``), longest value
    first, a value only where it stands whole (not inside a longer word); None when
    the action has no placeholder with a value to put back."""
    names: dict[str, str] = {}
    data = {key: getattr(spec, key) for key in _ACTION_KEYS}
    plain = {k: v.model_dump() if hasattr(v, "model_dump") else v for k, v in data.items()}
    for _, text in strings_in(plain):
        if not has_placeholder(text):
            continue
        try:
            found = names_in(text)
        except PlaceholderError:
            continue  # refused when the config loads: it stands for no value
        for name in found:
            value = environ.get(name)
            if value and len(value) >= _SHORTEST_SHOWN_BACK and value.strip():
                names.setdefault(value, name)
    if not names:
        return None
    ordered = sorted(names, key=lambda v: (-len(v), v))
    pattern = re.compile(r"(?<![\w])(?:" + "|".join(re.escape(v) for v in ordered) + r")(?![\w])")
    return lambda text: pattern.sub(lambda m: "${" + names[m.group(0)] + "}", text)


def placeholder_values(spec: TaskSpec, environ: Mapping[str, str] | None = None) -> list[str]:
    """The values the placeholders of ``spec`` stand for now (to redact from its output)."""
    env = current_environ() if environ is None else dict(environ)
    data = spec.model_dump(mode="json", exclude={"description"})
    found: list[str] = []
    for _, text in strings_in(data):
        if not has_placeholder(text):
            continue
        try:
            names = names_in(text)
        except PlaceholderError:
            continue  # a malformed one is refused when the config loads; it stands for no value
        found.extend(env[n] for n in names if env.get(n))
    return sorted(set(found), key=lambda v: (-len(v), v))
