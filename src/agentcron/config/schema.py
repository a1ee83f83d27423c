"""The shape of agentcron.yaml: top-level keys, the API block, the loaded result.

Tasks stay raw mappings in :class:`ConfigFile`: each one is validated into a
:class:`~agentcron.model.task.TaskSpec` only after ``defaults`` are merged in, so a
problem can be traced to the task or to the default it inherited.
"""

from __future__ import annotations

import copy
import difflib
import functools
import ipaddress
import os
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
)

from agentcron.config._urls import check_apprise_url, check_http_url
from agentcron.config.agents import AgentsConfig
from agentcron.model.budget import Budget
from agentcron.model.task import NOTIFY_EVENTS, TASK_NAME, BackoffSpec, LlmSpec, TaskSpec
from agentcron.policies.budget import BudgetRules

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def is_loopback_host(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@functools.cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def unknown_zone_message(name: str) -> str:
    """``unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)``."""
    close = difflib.get_close_matches(name, _zone_names(), n=1, cutoff=0.8)
    hint = f"did you mean '{close[0]}'?" if close else "use an IANA name such as Europe/Berlin"
    return f"unknown time zone {name!r} ({hint})"


def check_zone(name: str) -> str | None:
    """Why ``name`` is not a usable IANA zone, or None when it is one."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return unknown_zone_message(name)
    return None


def _one_or_many(value: Any) -> Any:
    """``notify: "tgram://…"`` means a list of one; an empty key means none."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


def _none_as_empty(value: Any) -> Any:
    return {} if value is None else value


def _apprise_url(url: str) -> str:
    problem = check_apprise_url(url)
    if problem is not None:
        raise ValueError(problem)
    return url


AppriseUrl = Annotated[str, AfterValidator(_apprise_url)]


class ApiConfig(BaseModel):
    """Where the HTTP API, the dashboard and ``/metrics`` listen (served by the daemon).

    Writing an ``api:`` section turns them on (``enabled: false`` keeps the settings
    and turns them off); without one they are off unless ``agentcron run --api
    HOST:PORT`` asks. Off loopback a token is mandatory: ``token`` (better written
    ``${NAME}``) or ``token_env``, the name of a variable holding it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: StrictBool = Field(
        default=False, description="Serve the API (default: true when `api:` is written)"
    )
    host: str = Field(default="127.0.0.1", min_length=1)
    port: StrictInt = Field(default=8765, ge=0, le=65535, description="0 picks a free port")
    token_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of an environment variable holding the bearer token",
    )
    token: str | None = Field(
        default=None,
        validate_default=True,
        description="Bearer token; required (or token_env) when host is not a loopback address",
    )

    @field_validator("token")
    @classmethod
    def _token_off_loopback(cls, token: str | None, info: ValidationInfo) -> str | None:
        # Declared after host and token_env, so both are already validated when this runs.
        host = info.data.get("host")
        has_token = bool((token or "").strip()) or bool(info.data.get("token_env"))
        if host is not None and not is_loopback_host(host) and not has_token:
            raise ValueError(
                f"the API would listen on {host}, which other machines can reach: "
                "set api.token (or api.token_env) to a long random string, or use host "
                "127.0.0.1"
            )
        if token is not None and token.strip() and len(token.strip()) < 16:
            raise ValueError("api.token is too short to guess-proof: use 16 characters or more")
        return token

    def resolved_token(self) -> str | None:
        """The token to require: ``token``, else the value of ``token_env``.

        Raises ValueError when ``token_env`` names a variable that is unset or empty
        (the daemon refuses to start rather than serve without the token asked for)."""
        if self.token and self.token.strip():
            from agentcron.config._env import expand_value

            return expand_value(self.token).strip()  # ${NAME}: a ValueError names it
        if self.token_env:
            value = os.environ.get(self.token_env, "").strip()
            if not value:
                raise ValueError(
                    f"api.token_env names {self.token_env}, which is not set in the "
                    "daemon's environment (or is empty)"
                )
            if len(value) < 16:
                raise ValueError(
                    f"the token in {self.token_env} is too short to guess-proof: use 16 "
                    "characters or more"
                )
            return value
        return None


def _api_section(value: Any) -> Any:
    """A written ``api:`` section turns the API on unless it says ``enabled: false``."""
    if value is None:
        return {"enabled": True}
    if isinstance(value, dict) and "enabled" not in value:
        return {**value, "enabled": True}
    return value


class ConfigFile(BaseModel):
    """The top-level document as written; ``defaults`` and ``tasks`` are checked later."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str | None = Field(
        default=None, description="Default IANA zone for tasks; else the system zone"
    )
    notify: Annotated[list[AppriseUrl], BeforeValidator(_one_or_many)] = Field(
        default_factory=list, description="Apprise URLs told about incidents"
    )
    defaults: Annotated[dict[str, Any], BeforeValidator(_none_as_empty)] = Field(
        default_factory=dict, description="Per-task keys applied to every task that omits them"
    )
    tasks: Annotated[dict[str, Any], BeforeValidator(_none_as_empty)] = Field(default_factory=dict)
    heartbeat_url: str | None = Field(
        default=None, description="Pinged by the daemon while alive (dead man's switch)"
    )
    agents: Annotated[AgentsConfig, BeforeValidator(_none_as_empty)] = Field(
        default_factory=AgentsConfig,
        description="Agents let in through the MCP server and their bounds (docs/mcp.md)",
    )
    env_file: str | None = Field(
        default=None,
        description="dotenv file read before ${NAME} placeholders are expanded "
        "(relative to this file; the environment wins)",
    )
    max_concurrency: StrictInt = Field(default=4, ge=1, description="Runs executing at once")
    budget: Budget | None = Field(
        default=None,
        description="Daily ceiling of all tasks' runs and model tokens together",
    )
    api: Annotated[ApiConfig, BeforeValidator(_api_section)] = Field(default_factory=ApiConfig)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        problem = None if value is None else check_zone(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("heartbeat_url")
    @classmethod
    def _heartbeat(cls, value: str | None) -> str | None:
        problem = None if value is None else check_http_url(value)
        if problem is not None:
            raise ValueError(problem)
        return value


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config file: what the daemon and the CLI act on."""

    source: str
    timezone: str | None
    notify: list[str]
    heartbeat_url: str | None
    max_concurrency: int
    api: ApiConfig
    tasks: dict[str, TaskSpec]
    digest: str
    # the file's `defaults:` as written, so tasks added later through `agentcron add`
    # or the API can get them too (validate_task_mapping(name, raw, config.defaults))
    defaults: dict[str, Any] = field(default_factory=dict)
    agents: AgentsConfig = field(default_factory=AgentsConfig)
    budget: Budget | None = None  # every task's together, per day
    env_file: str | None = None  # the top-level env_file's path, resolved

    def untold(self) -> list[str]:
        """Tasks whose problems would reach no one: no ``notify:`` of their own and
        none in the file (a task's explicit ``notify: []`` is a choice, not counted)."""
        if self.notify:
            return []
        return sorted(name for name, spec in self.tasks.items() if spec.notify is None)

    def untold_warning(self, added: Sequence[str] = ()) -> str | None:
        """The warning for :meth:`untold` and the tasks ``added`` outside the file that
        name no channel either (said by ``validate``, ``doctor`` and the daemon at
        start), or None when every task's failures reach someone."""
        untold = sorted({*self.untold(), *(added if not self.notify else ())})
        return untold_words(untold) if untold else None

    def unset_keys(self, environ: Mapping[str, str]) -> list[str]:
        """A warning per ``llm`` task whose key variable ``environ`` does not set (see
        :func:`agentcron.config._actions.unset_key`)."""
        from agentcron.config._actions import unset_key

        said = [unset_key(spec, environ) for spec in self.tasks.values()]
        for name, profile in sorted(self.agents.models.items()):
            key = profile.api_key_env
            if key and not environ.get(key):
                said.append(
                    f"agents.models.{name}.api_key_env: variable {key} is not set here (it "
                    "holds the key the model is called with): every run of an agent's task "
                    f"on {name} fails until the daemon's environment or the config's "
                    "env_file sets it"
                )
        return [words for words in said if words is not None]

    def budget_rules(self) -> BudgetRules:
        """The budgets the engine's gate enforces besides each task's own."""
        return BudgetRules(
            everything=self.budget,
            agents=tuple(
                (name, client.prefix(name), client.budget)
                for name, client in self.agents.clients.items()
                if client.budget is not None
            ),
        )


_ONE_OR_MANY_URLS = {
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}},
    ],
    "description": "Apprise URL(s), e.g. tgram://BOT_TOKEN/CHAT_ID",
}


def config_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of agentcron.yaml, for editors and `agentcron schema`.

    Tasks and defaults share one ``Task`` definition: TaskSpec without ``name`` (the
    name is the key under ``tasks:``) and with nothing required, because a task may
    inherit its schedule or action from ``defaults``.
    """
    top = ConfigFile.model_json_schema()
    task = copy.deepcopy(TaskSpec.model_json_schema())
    defs: dict[str, Any] = {**top.pop("$defs", {}), **task.pop("$defs", {})}
    task["properties"].pop("name", None)
    task.pop("required", None)
    for key in ("notify", "deliver"):
        task["properties"][key] = dict(_ONE_OR_MANY_URLS)
    task["properties"]["notify_on"]["items"] = {"enum": list(NOTIFY_EVENTS)}
    _human_duration_defaults(task, TaskSpec)
    for model in (BackoffSpec, LlmSpec):
        _human_duration_defaults(defs[model.__name__], model)
    task["title"] = "Task"
    task["description"] = (
        "One task: exactly one schedule (cron, every, at) and one action "
        "(command, python, http, llm), possibly inherited from defaults."
    )
    defs["Task"] = task
    props = top["properties"]
    props["notify"] = dict(_ONE_OR_MANY_URLS)
    props["defaults"] = {"$ref": "#/$defs/Task", "description": props["defaults"]["description"]}
    props["tasks"] = {
        "type": "object",
        "description": "Tasks by name",
        "propertyNames": {"pattern": TASK_NAME.pattern},
        "additionalProperties": {"$ref": "#/$defs/Task"},
    }
    top["title"] = "agentcron.yaml"
    top["description"] = "agentcron configuration: tasks, their defaults and where to notify."
    return {"$schema": JSON_SCHEMA_DIALECT, **top, "$defs": defs}


def _human_duration_defaults(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Show duration defaults as people write them (``30s``), not as ISO 8601 (``PT30S``)."""
    for name, info in model.model_fields.items():
        default = info.get_default(call_default_factory=True)
        prop = schema["properties"].get(info.alias or name)
        if prop is None:
            continue
        if isinstance(default, timedelta):
            prop["default"] = compact_duration(default)
        elif isinstance(default, list) and default and isinstance(default[0], timedelta):
            prop["default"] = [compact_duration(d) for d in default]


def compact_duration(delta: timedelta) -> str:
    """The shortest spelling :func:`agentcron.durations.parse_duration` reads back exactly."""
    millis = round(delta.total_seconds() * 1000)
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if millis and millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def untold_words(untold: Sequence[str]) -> str:
    """The warning "no `notify:` channel: the failures of N task(s) (…) are recorded
    but told to no one", naming the first five."""
    names = ", ".join(untold[:5]) + (" …" if len(untold) > 5 else "")
    return (
        f"no `notify:` channel: the failures of {len(untold)} task(s) ({names}) are "
        "recorded but told to no one; add Apprise URLs under `notify:` "
        "(`agentcron notify test` tries them)"
    )
