"""The loader's side of ``${NAME}`` placeholders: where they may stand, what is unset,
and specs that keep them while being validated as they will be used.

A value is validated expanded (a URL must be a URL once the variable is in it),
but the :class:`~agentcron.model.task.TaskSpec` the loader returns carries the
text as written, so the database and every interface only ever see the
placeholder. That stored spec must still read back (the store validates it on
every read), which is checked here too: ``https://${HOST}/v1`` reads as a URL,
a bare ``${URL}`` does not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agentcron.config._env import (
    RUNTIME_API_KEYS,
    RUNTIME_TASK_KEYS,
    RUNTIME_TOP_KEYS,
    UNEXPANDED_TASK_KEYS,
    EnvFileError,
    MissingVariableError,
    PlaceholderError,
    expand,
    has_placeholder,
    looks_like_placeholder,
    names_in,
    read_env_file,
    strings_in,
)
from agentcron.config._problems import issues_from
from agentcron.config.errors import ConfigProblem
from agentcron.config.schema import ApiConfig, ConfigFile
from agentcron.model.task import TaskSpec

KeyPath = tuple[str | int, ...]
Problem = Callable[[KeyPath, str], ConfigProblem]

_TASK_WHERE = "command, precheck, env, cwd, args, kwargs, http, llm, notify and deliver"


def task_problems(
    values: Mapping[str, Any],
    environ: Mapping[str, str],
    problem: Problem,
    allow: bool = True,
) -> list[ConfigProblem]:
    """Placeholders of one task (or of ``defaults``): unset, malformed or out of place.

    With ``allow`` false (a task from an agent or an API client) none is accepted:
    expanded at run time, it would hand the daemon's environment to whoever wrote it.
    """
    found: list[ConfigProblem] = []
    for key, value in values.items():
        if key in UNEXPANDED_TASK_KEYS:
            continue
        runtime = key in RUNTIME_TASK_KEYS
        for path, text in strings_in(value, (key,)):
            if not allow and runtime and looks_like_placeholder(text):
                found.append(
                    problem(
                        path,
                        "${…} placeholders are for the owner's config file and command "
                        "line; a task sent through the API cannot read the daemon's "
                        "environment (write $${ for a literal ${)",
                    )
                )
                continue
            found += _check(text, path, runtime, environ, problem, _TASK_WHERE)
    return found


def top_problems(
    plain: Mapping[str, Any], environ: Mapping[str, str], problem: Problem
) -> list[ConfigProblem]:
    """Placeholders at the top level: in notify, heartbeat_url and api.token only."""
    found: list[ConfigProblem] = []
    where = "notify, heartbeat_url and api.token at the top level"
    for key, value in plain.items():
        if key in ("tasks", "defaults"):
            continue
        for path, text in strings_in(value, (key,)):
            runtime = key in RUNTIME_TOP_KEYS or (
                key == "api" and len(path) == 2 and path[1] in RUNTIME_API_KEYS
            )
            found += _check(text, path, runtime, environ, problem, where)
    return found


def _check(
    text: str,
    path: KeyPath,
    runtime: bool,
    environ: Mapping[str, str],
    problem: Problem,
    where: str,
) -> list[ConfigProblem]:
    if not runtime:
        if looks_like_placeholder(text):
            return [
                problem(
                    path,
                    "${…} is expanded only where a value is used at run time "
                    f"({where}); write the value itself here",
                )
            ]
        return []
    if not has_placeholder(text):
        return []
    try:
        names_in(text)
        expand(text, environ)
    except (PlaceholderError, MissingVariableError) as exc:
        return [problem(path, str(exc))]
    return []


def expanded(value: Any, environ: Mapping[str, str]) -> Any:
    """``value`` with its placeholders expanded where they can be; a string that cannot
    is kept as written (its problem is reported on its own)."""
    if isinstance(value, str):
        if not has_placeholder(value):
            return value
        try:
            return expand(value, environ)
        except (PlaceholderError, MissingVariableError):
            return value
    if isinstance(value, Mapping):
        return {k: expanded(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [expanded(v, environ) for v in value]
    return value


def expanded_task(data: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """A task mapping with its runtime keys expanded, as it is validated."""
    return {k: expanded(v, environ) if k in RUNTIME_TASK_KEYS else v for k, v in data.items()}


def expanded_top(plain: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    out = {k: expanded(v, environ) if k in RUNTIME_TOP_KEYS else v for k, v in plain.items()}
    api = plain.get("api")
    if isinstance(api, Mapping):
        out["api"] = {
            k: expanded(v, environ) if k in RUNTIME_API_KEYS else v for k, v in api.items()
        }
    return out


def keep_placeholders(
    spec: TaskSpec, raw: Mapping[str, Any], checked: Mapping[str, Any], problem: Problem
) -> tuple[TaskSpec, list[ConfigProblem]]:
    """``spec`` (validated from ``checked``) with the texts of ``raw`` put back, and the
    problems of values that would not read back from the database as written."""
    if raw == checked:
        return spec, []
    stored = _restore(spec, raw, checked)
    assert isinstance(stored, TaskSpec)
    try:
        TaskSpec.model_validate_json(stored.model_dump_json(by_alias=True))
    except ValidationError as exc:
        data = stored.model_dump(mode="json", by_alias=True)
        return spec, [
            problem(
                issue.path,
                "a placeholder cannot stand for the scheme or the whole value here: the "
                "task is stored with its placeholders and must still read back "
                f"({issue.message}); keep the https:// prefix in the file and put only "
                "the rest in variables",
            )
            for issue in issues_from(exc, TaskSpec, data)
        ]
    return stored, []


def _restore(value: Any, raw: Any, checked: Any) -> Any:
    if raw == checked:
        return value
    if isinstance(raw, str):
        return raw if isinstance(value, str) else value
    if isinstance(value, BaseModel) and isinstance(raw, Mapping) and isinstance(checked, Mapping):
        names = {info.alias or name: name for name, info in type(value).model_fields.items()}
        update = {}
        for key, sub in raw.items():
            field = names.get(key)
            if field is not None and sub != checked.get(key):
                update[field] = _restore(getattr(value, field), sub, checked.get(key))
        return value.model_copy(update=update)
    if isinstance(value, dict) and isinstance(raw, Mapping) and isinstance(checked, Mapping):
        out = dict(value)
        for key, sub in raw.items():
            if key in out:
                out[key] = _restore(out[key], sub, checked.get(key))
        return out
    if (
        isinstance(value, list)
        and isinstance(raw, list)
        and isinstance(checked, list)
        and len(value) == len(raw) == len(checked)
    ):
        return [_restore(v, r, c) for v, r, c in zip(value, raw, checked, strict=True)]
    return value


def within(location: str, roots: set[str]) -> bool:
    """Whether ``location`` is one of ``roots`` or lies below one."""
    return any(location == root or location.startswith((f"{root}.", f"{root}[")) for root in roots)


# ---- the env file and the top level as written ---------------------------------------


def env_file_values_of(
    plain: dict[str, Any], base_dir: Path, problem: Problem, problems: list[ConfigProblem]
) -> dict[str, str]:
    """The variables of the top-level ``env_file:`` (taken out of ``plain`` unless the
    schema knows the key), relative to ``base_dir``; its problems go to ``problems``."""
    if "env_file" not in ConfigFile.model_fields:
        raw = plain.pop("env_file", None)
    else:
        raw = plain.get("env_file")
    if raw is None:
        return {}
    if not isinstance(raw, str) or not raw.strip():
        problems.append(problem(("env_file",), "must be the path of a dotenv file"))
        return {}
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    try:
        return read_env_file(path)
    except EnvFileError as exc:
        problems.append(problem(("env_file",), str(exc)))
        return {}


def env_file_path(raw: Any, base_dir: Path) -> str | None:
    """Where the top-level ``env_file:`` (as written) is, or None: the daemon watches it
    with the config file, so a changed value applies without a restart."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    path = Path(raw).expanduser()
    return str(path if path.is_absolute() else base_dir / path)


def urls_as_written(raw: Any, checked: list[str]) -> list[str]:
    """The URLs as written (placeholders kept) when they line up with the checked ones."""
    written = [raw] if isinstance(raw, str) else raw
    if (
        isinstance(written, list)
        and len(written) == len(checked)
        and all(isinstance(w, str) for w in written)
    ):
        return list(written)
    return checked


def as_written(raw: Any, checked: str | None) -> str | None:
    return raw if isinstance(raw, str) and checked is not None else checked


def api_as_written(raw: Any, api: ApiConfig) -> ApiConfig:
    """The checked API block with its token as written (a placeholder stays one)."""
    token = raw.get("token") if isinstance(raw, Mapping) else None
    if isinstance(token, str) and token != api.token:
        return api.model_copy(update={"token": token})
    return api
