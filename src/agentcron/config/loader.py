"""Load agentcron.yaml into validated task specs, or say everything that is wrong.

A config is accepted whole or not at all: the daemon keeps its last good config
when a reload fails, so every problem in the file is collected and reported in one
:class:`ConfigError`, each with the task, the key and the line.

``defaults`` merge into each task key by key; a mapping value (``retry_backoff``,
``env``, ``llm``…) merges one level deep, the task's sub-keys winning. A default
schedule applies only to tasks that set none (``expires`` only to ``at`` tasks,
``anchor`` only to ``every`` tasks), and a default action only to tasks that set no
other action, so ``defaults: {llm: {base_url: …, model: …}}`` can serve the model
tasks while command tasks stay command tasks.

``${NAME}`` placeholders (see :mod:`agentcron.config._env`) are checked here against
the environment and the optional ``env_file:``, and every value is validated as it
will be used, expanded; the specs and the loaded config keep the placeholders, so
what is stored and shown never holds the secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentcron.config import _env, _placeholders
from agentcron.config._actions import action_problems
from agentcron.config._env import expand_value
from agentcron.config._problems import Issue, issues_from
from agentcron.config._urls import check_apprise_url, redact_urls_in
from agentcron.config._yaml import TOO_DEEP, child, format_path, line_of, read_yaml, to_plain
from agentcron.config._yaml import Path as KeyPath
from agentcron.config.errors import ConfigError, ConfigProblem
from agentcron.config.schema import (
    ConfigFile,
    LoadedConfig,
    config_json_schema,
    unknown_zone_message,
)
from agentcron.controls import first_control
from agentcron.model.task import TaskSpec
from agentcron.redact import redact, secret_values_from_env

__all__ = [
    "config_json_schema",
    "expand_value",
    "load_config",
    "parse_config_text",
    "validate_task_mapping",
]

_SCHEDULES = ("cron", "every", "at")
_SCHEDULE_COMPANIONS = {"expires": "at", "anchor": "every"}
_ACTIONS = ("command", "python", "http", "llm")
_URL_LISTS = ("notify", "deliver")
_TASK_KEYS = frozenset(TaskSpec.model_fields) - {"name"}


@dataclass(frozen=True)
class _Place:
    """Where a mapping sits in the file: its dotted prefix and its round-trip node."""

    prefix: KeyPath
    node: Any
    line: int | None

    def problem(self, path: KeyPath, message: str) -> ConfigProblem:
        line = line_of(self.node, path) if path else None
        # messages quote the user's values; a URL among them may hold a credential
        text = redact_urls_in(message)
        return ConfigProblem(format_path(self.prefix + path), text, line or self.line)


def parse_config_text(
    text: str, source: str = "<string>", *, base_dir: Path | None = None
) -> LoadedConfig:
    """Validate a whole config document; raise :class:`ConfigError` listing every problem.

    ``base_dir`` is where a relative ``env_file:`` is found (default: the current folder).
    """
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return _parse(text, source, digest, base_dir or Path.cwd())


def read_config_bytes(path: Path) -> bytes:
    """The config file's bytes; a FIFO or device in its place is refused, not read."""
    return _env.read_regular_file(path)


def load_config(path: Path) -> LoadedConfig:
    """Read and validate ``path``; any failure, even a missing file, is a ConfigError."""
    source = str(path)
    try:
        data = read_config_bytes(path)
    except FileNotFoundError:
        message = f"file not found: {path}; run `agentcron init` to create an example"
        raise ConfigError([ConfigProblem("", message)], source) from None
    except IsADirectoryError:
        message = f"{path} is a directory; give the path of agentcron.yaml"
        raise ConfigError([ConfigProblem("", message)], source) from None
    except OSError as exc:
        message = f"cannot read {path}: {exc.strerror or exc}"
        raise ConfigError([ConfigProblem("", message)], source) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        message = f"not UTF-8 text (invalid byte at offset {exc.start}); save the file as UTF-8"
        raise ConfigError([ConfigProblem("", message, line)], source) from None
    try:
        return _parse(text, source, hashlib.sha256(data).hexdigest(), path.parent)
    except RecursionError:  # read, but too deep for the checks that walk it
        raise ConfigError([ConfigProblem("", TOO_DEEP)], source) from None


def _text_problems(own: Mapping[str, Any], place: _Place) -> list[ConfigProblem]:
    """A description is text to read, not to drive a terminal: an API client's
    description holding a terminal escape retitled the window of whoever ran `show`,
    and cleared it (outside-in probe). Checked where a task comes in (a task stored
    before keeps loading; it is shown escaped)."""
    text = own.get("description")
    found = first_control(text) if isinstance(text, str) else None
    if found is None:
        return []
    message = f"a description is text: lines and tabs, without control characters (found {found})"
    return [place.problem(("description",), message)]


def validate_task_mapping(
    name: str,
    raw: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
    location_prefix: str = "tasks",
    *,
    environ: Mapping[str, str] | None = None,
    allow_placeholders: bool = True,
) -> TaskSpec:
    """One task from outside the file (``agentcron add``, the HTTP API), same rules and
    messages as in the file; problems are located at ``<location_prefix>.<name>.<key>``.

    Placeholders are checked against ``environ`` (default: the environment and the
    env file of the config last loaded). Pass ``allow_placeholders=False`` for a task
    written by an agent or an API client: its own keys may then hold none (the
    file's ``defaults`` still may)."""
    env = _env.current_environ() if environ is None else environ
    prefix: KeyPath = (location_prefix, name) if location_prefix else (name,)
    defaults_place = _Place(("defaults",), defaults, None)
    problems = _defaults_problems(defaults or {}, defaults_place, env)
    spec, task_problems = _check_task(
        name, raw, defaults or {}, _Place(prefix, raw, None), env, allow_placeholders
    )
    problems += task_problems
    if problems or spec is None:
        raise ConfigError(_ordered(problems), "")
    return spec


def _parse(text: str, source: str, digest: str, base_dir: Path) -> LoadedConfig:
    tree, problems = read_yaml(text)
    if problems:
        raise ConfigError(_ordered(problems), source)
    if tree is None:
        message = "the file is empty: expected keys such as tasks: (see `agentcron init`)"
        raise ConfigError([ConfigProblem("", message)], source)
    if not isinstance(tree, Mapping):
        message = (
            "the document must be a mapping of keys (timezone, notify, defaults, tasks…), "
            f"not a {'list' if isinstance(tree, list) else 'single value'}"
        )
        raise ConfigError([ConfigProblem("", message, 1)], source)
    plain: dict[str, Any] = to_plain(tree, (), problems, tree)
    refused = list(problems)  # values to_plain would not take; validated as null below
    root = _Place((), tree, None)

    env_file = _placeholders.env_file_path(plain.get("env_file"), base_dir)
    file_values = _placeholders.env_file_values_of(plain, base_dir, root.problem, problems)
    environ = _env.current_environ(file_values)
    held = _placeholders.top_problems(plain, environ, root.problem)
    problems += held

    top: ConfigFile | None = None
    try:
        top = ConfigFile.model_validate(_placeholders.expanded_top(plain, environ))
    except ValidationError as exc:
        for issue in issues_from(exc, ConfigFile, plain):
            problems.append(root.problem(issue.path, _top_level_message(issue, plain)))

    defaults_raw = plain.get("defaults")
    defaults = defaults_raw if isinstance(defaults_raw, Mapping) else {}
    defaults_place = _Place(("defaults",), child(tree, "defaults"), line_of(tree, ("defaults",)))
    problems += _defaults_problems(defaults, defaults_place, environ)

    tasks: dict[str, TaskSpec] = {}
    tasks_raw = plain.get("tasks")
    if isinstance(tasks_raw, Mapping):
        tasks_node = tree.get("tasks")
        for name, raw in tasks_raw.items():
            node = child(tasks_node, name)
            place = _Place(("tasks", name), node, line_of(tree, ("tasks", name)))
            spec, task_problems = _check_task(name, raw, defaults, place, environ)
            problems += task_problems
            if spec is not None:
                tasks[name] = spec

    if problems or top is None:
        # a refused value's own problem says enough; drop the "null" complaints, and
        # the complaints about a value whose placeholder could not be expanded
        refused_at = {p.location for p in refused}
        held_at = {p.location for p in held}
        rest = [
            p
            for p in problems[len(refused) :]
            if p.location not in refused_at
            and (p in held or not _placeholders.within(p.location, held_at))
        ]
        problems = refused + rest
        raise ConfigError(_without_values(_ordered(problems), plain, environ), source)
    _env.use_env_file_values(file_values)
    return LoadedConfig(
        source=source,
        timezone=top.timezone,
        notify=_placeholders.urls_as_written(plain.get("notify"), list(top.notify)),
        heartbeat_url=_placeholders.as_written(plain.get("heartbeat_url"), top.heartbeat_url),
        max_concurrency=top.max_concurrency,
        api=_placeholders.api_as_written(plain.get("api"), top.api),
        tasks=tasks,
        digest=digest,
        env_file=env_file,
        defaults=dict(defaults),
        agents=top.agents,
        budget=top.budget,
    )


def _top_level_message(issue: Issue, plain: Mapping[str, Any]) -> str:
    """Point misplaced per-task keys and tasks outside ``tasks:`` to where they belong."""
    if issue.kind != "extra_forbidden" or len(issue.path) != 1:
        return issue.message
    key = str(issue.path[0])
    value = plain.get(key)
    if key in _TASK_KEYS:
        return (
            f"unknown top-level key '{key}': it is a per-task key; put it under defaults: "
            "(for every task) or under one task"
        )
    if isinstance(value, Mapping) and any(k in value for k in (*_SCHEDULES, *_ACTIONS)):
        return f"unknown top-level key '{key}': it looks like a task; put it under tasks:"
    return issue.message


def _defaults_problems(
    defaults: Mapping[str, Any], place: _Place, environ: Mapping[str, str]
) -> list[ConfigProblem]:
    """Problems of ``defaults`` itself, reported once rather than once per task.

    Requirements that only a whole task can meet (one schedule, one action, an
    ``llm`` prompt) are left to the tasks.
    """
    problems: list[ConfigProblem] = []
    values = dict(defaults)
    if "name" in values:
        del values["name"]
        problems.append(place.problem(("name",), "unknown key 'name': a task's name is its key"))
    held = _placeholders.task_problems(values, environ, place.problem)
    values = _placeholders.expanded_task(values, environ)
    data = {"name": "defaults", **_urls_as_lists(values)}
    try:
        TaskSpec.model_validate(data)
    except ArithmeticError:
        problems += _out_of_range(data, place)
    except ValidationError as exc:
        problems.extend(
            place.problem(issue.path, _task_message(issue, data))
            for issue in issues_from(exc, TaskSpec, data)
            if issue.path and issue.kind != "missing"
        )
    problems += _url_problems(values, place)
    return held + _not_within(problems, held)


def _not_within(problems: list[ConfigProblem], held: list[ConfigProblem]) -> list[ConfigProblem]:
    """``problems`` without those about values whose placeholder is itself the problem."""
    roots = {p.location for p in held}
    return [p for p in problems if not _placeholders.within(p.location, roots)]


def _check_task(
    name: str,
    raw: Any,
    defaults: Mapping[str, Any],
    place: _Place,
    environ: Mapping[str, str],
    allow_placeholders: bool = True,
) -> tuple[TaskSpec | None, list[ConfigProblem]]:
    """Merge defaults into one task and validate it; defaults' own faults are skipped."""
    if not isinstance(raw, Mapping):
        kind = "nothing" if raw is None else type(raw).__name__
        message = f"a task must be a mapping of keys such as cron: and command:, not {kind}"
        return None, [place.problem((), message)]
    problems: list[ConfigProblem] = []
    own = dict(raw)
    if "name" in own:
        del own["name"]
        message = "unknown key 'name': a task's name is its key under tasks:"
        problems.append(place.problem(("name",), message))
    held = _placeholders.task_problems(own, environ, place.problem, allow_placeholders)
    merged, inherited = _merge_defaults(own, {k: v for k, v in defaults.items() if k != "name"})
    written = {"name": name, **_urls_as_lists(merged)}
    data = _placeholders.expanded_task(written, environ)
    spec: TaskSpec | None = None
    try:
        spec = TaskSpec.model_validate(data)
    except ArithmeticError:
        problems += _out_of_range(data, place, frozenset(inherited))
    except ValidationError as exc:
        issues = issues_from(exc, TaskSpec, data)
        for issue in issues:
            if issue.path[:1] == ("name",):
                problems.append(place.problem((), issue.message))
            elif issue.kind == "missing" or not _inherited(issue.path, inherited):
                problems.append(place.problem(issue.path, _task_message(issue, data, inherited)))
        if any(issue.path for issue in issues):
            # field errors stop pydantic before the whole-task checks; run the
            # structural ones here so a task missing its schedule hears it now
            problems += [place.problem((), m) for m in _shape_messages(data, inherited)]
    problems += _url_problems(_placeholders.expanded_task(own, environ), place)
    problems += _text_problems(own, place)
    if spec is not None:
        problems += [place.problem(path, why) for path, why in action_problems(data)]
    problems = held + _not_within(problems, held)
    if spec is not None and not problems:
        spec, stored_problems = _placeholders.keep_placeholders(spec, written, data, place.problem)
        problems += stored_problems
    return (spec if not problems else None), problems


def _out_of_range(
    data: Mapping[str, Any], place: _Place, inherited: frozenset[KeyPath] = frozenset()
) -> list[ConfigProblem]:
    """Find the key whose number broke validation outright (a duration of 10**20 s).

    Such errors escape pydantic as OverflowError instead of a validation error, so
    each key is tried alone to name the culprit.
    """
    found: list[ConfigProblem] = []
    for key, value in data.items():
        if key == "name" or (key,) in inherited:
            continue
        try:
            TaskSpec.model_validate({"name": "probe", key: value})
        except ArithmeticError as exc:
            found.append(place.problem((key,), f"value out of range: {exc}"))
        except ValidationError:
            pass  # reported once the number is fixed; this pass only looks for overflows
    return found if found or inherited else [place.problem((), "a value is out of range")]


def _merge_defaults(
    task: Mapping[str, Any], defaults: Mapping[str, Any]
) -> tuple[dict[str, Any], set[KeyPath]]:
    """The task with defaults applied, and the key paths that came from defaults."""
    has_schedule = any(task.get(k) is not None for k in _SCHEDULES)
    actions = [k for k in _ACTIONS if task.get(k) is not None]
    merged = dict(task)
    inherited: set[KeyPath] = set()
    for key, value in defaults.items():
        if (key in _SCHEDULES and has_schedule) or (
            key in _ACTIONS and actions and key not in actions
        ):
            continue
        if key not in task:
            merged[key] = value
            inherited.add((key,))
        elif isinstance(value, Mapping) and isinstance(task[key], Mapping):
            merged[key] = {**value, **task[key]}
            inherited.update((key, sub) for sub in value if sub not in task[key])
    schedule = next((k for k in _SCHEDULES if merged.get(k) is not None), None)
    for companion, owner in _SCHEDULE_COMPANIONS.items():
        if (companion,) in inherited and schedule != owner:
            del merged[companion]
            inherited.discard((companion,))
    return merged, inherited


def _inherited(path: KeyPath, inherited: set[KeyPath]) -> bool:
    return any(path[: len(p)] == p for p in inherited)


def _task_message(
    issue: Issue, data: Mapping[str, Any], inherited: set[KeyPath] | None = None
) -> str:
    zone = data.get("timezone")
    if (
        issue.path == ("timezone",)
        and isinstance(zone, str)
        and "unknown time zone" in issue.message
    ):
        return unknown_zone_message(zone)
    if not issue.path and inherited:
        group = _SCHEDULES if "exactly one schedule" in issue.message else _ACTIONS
        from_defaults = [k for k in group if (k,) in inherited]
        if from_defaults and "exactly one" in issue.message:
            return f"{issue.message}; from defaults: {', '.join(from_defaults)}"
    return issue.message


def _shape_messages(data: Mapping[str, Any], inherited: set[KeyPath]) -> list[str]:
    """The one-schedule/one-action rule of TaskSpec, checked on the raw mapping."""
    messages = []
    for kinds, what in (
        (_SCHEDULES, "schedule: cron, every or at"),
        (_ACTIONS, "action: command, python, http or llm"),
    ):
        found = [k for k in kinds if data.get(k) is not None]
        if len(found) != 1:
            message = f"a task needs exactly one {what}"
            if found:
                message += f" (found {', '.join(found)})"
            issue = Issue((), message, "value_error")
            messages.append(_task_message(issue, data, inherited))
    return messages


def _urls_as_lists(values: Mapping[str, Any]) -> dict[str, Any]:
    """``deliver: "tgram://…"`` means a list of one, as at the top level."""
    out = dict(values)
    for key in _URL_LISTS:
        if isinstance(out.get(key), str):
            out[key] = [out[key]]
    return out


def _url_problems(values: Mapping[str, Any], place: _Place) -> list[ConfigProblem]:
    """Apprise URLs in ``notify``/``deliver`` the mapping sets itself (type errors aside)."""
    problems = []
    for key in _URL_LISTS:
        value = values.get(key)
        items: list[tuple[KeyPath, Any]]
        if isinstance(value, str):
            items = [((key,), value)]
        elif isinstance(value, list):
            items = [((key, i), item) for i, item in enumerate(value)]
        else:
            items = []
        for path, url in items:
            message = check_apprise_url(url) if isinstance(url, str) else None
            if message is not None:
                problems.append(place.problem(path, message))
    return problems


def _ordered(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """Once each, in file order; problems without a line keep their place at the end."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line is None, p.line or 0))


def _without_values(
    problems: list[ConfigProblem], plain: Mapping[str, Any], environ: Mapping[str, str]
) -> list[ConfigProblem]:
    """The problems with the secret values of the file's placeholders taken out: a
    problem is found in the value as it will be used, expanded, and quoting it
    ("unknown HTTP method 'GET p4ss…'") put an env_file password in `validate`,
    `doctor` and the message of a rejected reload sent to the owner's channels
    (outside-in probe). Secret as the log's redaction judges it, by the variable's name
    (a port out of range is still quoted)."""
    used: dict[str, str] = {}
    for _path, text in _env.strings_in(plain):
        if not _env.has_placeholder(text):
            continue
        try:
            names = _env.names_in(text)
        except _env.PlaceholderError:
            # nothing lost: the same text was refused as a problem of its own (malformed
            # placeholder) when the file was checked, and it stands for no value
            continue
        used.update((n, environ[n]) for n in names if n in environ)
    hidden = secret_values_from_env(used)  # longest first
    if not hidden:
        return problems
    return [
        ConfigProblem(p.location, redact(p.message, hidden), p.line)
        if any(v in p.message for v in hidden)
        else p
        for p in problems
    ]


def defaults_problems(defaults: Any) -> list[ConfigProblem]:
    """The problems of a ``defaults`` mapping given outside a file (``Scheduler(
    defaults=…)``), said where it is given: they came only with the first task, from
    deep inside `add` (outside-in probe)."""
    if not isinstance(defaults, Mapping):
        return []
    place = _Place(("defaults",), None, None)
    return _defaults_problems(defaults, place, _env.current_environ())
