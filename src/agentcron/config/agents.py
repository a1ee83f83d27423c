"""The ``agents:`` section: what each agent may do through the MCP server.

An owner hands the scheduler to an agent only within bounds written here. Each
*client* is one agent identity: a name (the stdio server's ``--agent NAME``) and,
for the HTTP endpoint, a bearer token. Per client:

* ``namespace`` (default ``agent.NAME``): its tasks are named ``NAMESPACE.SHORT``;
  it sees and changes only those, unless ``see``/``change`` grant more (globs on
  task names, ``*`` for every task).
* ``actions``: the task actions it may create (``http`` and ``llm`` by default;
  ``command`` and ``python`` run code on this machine and must be granted).
* ``max_tasks`` in its namespace, and ``min_period``, the shortest interval between
  the fires of a schedule it sets.
* ``from_runs``: whether a process inside a scheduled run (``AGENTCRON_SLOT`` set)
  may schedule, change or start tasks (off: no runaway self-replication).
* ``models``: which model profiles (``agents.models``) its ``llm`` tasks may use.
  An agent names a profile; the base URL, model and key variable are the owner's.
* ``budget``: the daily runs and tokens of all the tasks in its namespace together
  (``runs_per_day``, ``tokens_per_day``); the owner's, never set by the agent.

Tokens are ``token`` (16 characters or more) or ``token_env``, the name of a
variable holding it, as for ``api.token``; a ``${NAME}`` is not expanded here.
"""

from __future__ import annotations

import fnmatch
import hmac
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from agentcron.config._urls import check_http_url
from agentcron.model.budget import Budget
from agentcron.model.task import Duration

if TYPE_CHECKING:
    from agentcron.config.schema import LoadedConfig

ActionKind = Literal["command", "http", "llm", "python"]
ACTION_KINDS: tuple[ActionKind, ...] = ("command", "http", "llm", "python")
DEFAULT_ACTIONS: tuple[ActionKind, ...] = ("http", "llm")
CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
# a namespace is the start of a task name (see agentcron.model.task.TASK_NAME), and
# leaves room for the task's own part
NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,59}$")
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
MIN_TOKEN = 16


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelProfile(_Strict):
    """A model an agent's ``llm`` tasks may call, set by the owner."""

    base_url: str = Field(description="OpenAI-compatible API, e.g. https://api.openai.com/v1")
    model: str
    api_key_env: str | None = Field(default=None, description="Variable holding the API key")
    description: str | None = Field(default=None, description="Shown to agents choosing one")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        problem = check_http_url(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    # the words a task's llm gets for the same faults (config/_actions.py), not
    # pydantic's "String should have at least 1 character" / "should match pattern"
    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty: name the model to call (e.g. gpt-4.1-mini)")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _key_name(cls, value: str | None) -> str | None:
        if value is not None and not re.match(_ENV_NAME, value):
            # never quoted: what stands here may be the key itself
            raise ValueError(
                "is not a variable's name: api_key_env names the environment variable "
                "that holds the key (e.g. OPENAI_API_KEY), not the key itself"
            )
        return value


class AgentClient(_Strict):
    """One agent identity and its bounds."""

    token: str | None = Field(
        default=None, description="Bearer token of this agent on the HTTP endpoint /mcp"
    )
    token_env: str | None = Field(
        default=None, pattern=_ENV_NAME, description="Variable holding the bearer token"
    )
    namespace: str | None = Field(
        default=None, description="Its tasks are named NAMESPACE.SHORT (default agent.NAME)"
    )
    actions: list[ActionKind] = Field(
        default_factory=lambda: list(DEFAULT_ACTIONS),
        description="Actions its tasks may have; command and python must be granted",
    )
    max_tasks: StrictInt = Field(default=20, ge=0, description="Tasks it may have at once")
    min_period: Duration = Field(
        default=timedelta(minutes=5), description="Shortest interval between fires it may set"
    )
    from_runs: StrictBool = Field(
        default=False,
        description="May a process inside a scheduled run schedule, change or start tasks",
    )
    see: list[str] = Field(
        default_factory=list, description="Globs of other task names it may read ('*': all)"
    )
    change: list[str] = Field(
        default_factory=list,
        description="Globs of other task names it may pause, resume, trigger, update, cancel",
    )
    models: list[str] | None = Field(
        default=None, description="Model profiles its llm tasks may use (default: all)"
    )
    budget: Budget | None = Field(
        default=None,
        description="Daily ceiling of the runs and model tokens of the tasks in its namespace",
    )

    @field_validator("token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is not None and len(value.strip()) < MIN_TOKEN:
            raise ValueError(f"too short to guess-proof: use {MIN_TOKEN} characters or more")
        return value.strip() if value is not None else None

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        if value is not None and (not NAMESPACE.fullmatch(value) or value.endswith(".")):
            raise ValueError(
                f"{value!r} cannot start task names: use letters, digits, '_', '-', '.' "
                "(at most 60, not ending in '.')"
            )
        return value

    @field_validator("actions")
    @classmethod
    def _actions(cls, value: list[ActionKind]) -> list[ActionKind]:
        return list(dict.fromkeys(value))

    @field_validator("min_period")
    @classmethod
    def _period(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value

    def prefix(self, name: str) -> str:
        """The start of every task name in this client's namespace (with its dot)."""
        return f"{self.namespace or f'agent.{name}'}."

    def resolved_token(self) -> str | None:
        """``token``, else the value of ``token_env``; ValueError when that is unset."""
        if self.token:
            return self.token
        if self.token_env:
            value = os.environ.get(self.token_env, "").strip()
            if not value:
                raise ValueError(f"{self.token_env} is not set in this process's environment")
            if len(value) < MIN_TOKEN:
                raise ValueError(
                    f"the token in {self.token_env} is too short to guess-proof: use "
                    f"{MIN_TOKEN} characters or more"
                )
            return value
        return None

    def may_see(self, name: str, own_prefix: str) -> bool:
        return name.startswith(own_prefix) or _matches(name, [*self.see, *self.change])

    def may_change(self, name: str, own_prefix: str) -> bool:
        return name.startswith(own_prefix) or _matches(name, self.change)

    def sees_everything(self) -> bool:
        return "*" in self.see or "*" in self.change


def _matches(name: str, globs: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, glob) for glob in globs)


class AgentsConfig(_Strict):
    """``agents:``: model profiles and the clients allowed in."""

    models: dict[str, ModelProfile] = Field(
        default_factory=dict, description="Model profiles agents' llm tasks may name"
    )
    clients: dict[str, AgentClient] = Field(
        default_factory=dict, description="Agent identities (the stdio --agent NAME, tokens)"
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            value = dict(value)
            for key in ("models", "clients"):
                if key in value and value[key] is None:
                    value[key] = {}
            clients = value.get("clients")
            if isinstance(clients, Mapping):
                # `name:` with nothing under it is a client with every default
                value["clients"] = {k: ({} if v is None else v) for k, v in clients.items()}
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> AgentsConfig:
        for name in self.models:
            if not CLIENT_NAME.fullmatch(name):
                raise ValueError(
                    f"models.{name}: a profile name is letters, digits, '_' and '-' (at most 40)"
                )
        tokens: dict[str, str] = {}
        for name, client in self.clients.items():
            if not CLIENT_NAME.fullmatch(name):
                raise ValueError(
                    f"clients.{name}: a client name is letters, digits, '_' and '-' (at most 40)"
                )
            unknown = [m for m in client.models or [] if m not in self.models]
            if unknown:
                known = ", ".join(sorted(self.models)) or "none are defined"
                raise ValueError(
                    f"clients.{name}.models: no model profile {unknown[0]!r} under "
                    f"agents.models ({known})"
                )
            if client.token:
                if client.token in tokens:
                    raise ValueError(
                        f"clients.{name}.token: the same token as clients.{tokens[client.token]}; "
                        "each agent needs its own token"
                    )
                tokens[client.token] = name
        self._separate_namespaces()
        return self

    def _separate_namespaces(self) -> None:
        """Each agent's namespace its own: two equal ones, or one inside another
        (``shared`` and ``shared.sub``), let an agent see, count against its own
        ``max_tasks`` and cancel another's tasks (outside-in probe), where each agent
        is promised it sees and changes only its own. (Sharing is said with ``see``
        and ``change``.)"""
        prefixes = sorted((client.prefix(name), name) for name, client in self.clients.items())
        for (outer, first), (inner, second) in pairwise(prefixes):
            if inner.startswith(outer):
                how = "the same namespace as" if inner == outer else "a namespace inside that of"
                raise ValueError(
                    f"clients.{second}.namespace: {how} clients.{first} ({outer[:-1]!r}); "
                    "each agent needs its own (give another access with see: or change:)"
                )

    def client(self, name: str) -> AgentClient:
        """The client called ``name``; KeyError with a sentence when there is none."""
        found = self.clients.get(name)
        if found is None:
            known = ", ".join(sorted(self.clients))
            raise KeyError(
                f"no agent {name!r} under agents.clients in the config"
                + (
                    f" (configured: {known})"
                    if known
                    else f"; add one, e.g. agents: {{clients: {{{name}: {{}}}}}}"
                )
            )
        return found

    def profiles_for(self, client: AgentClient) -> dict[str, ModelProfile]:
        allowed = (
            self.models if client.models is None else {m: self.models[m] for m in client.models}
        )
        return dict(allowed)

    def tokens(self) -> dict[str, str]:
        """Each client's bearer token -> its name (clients without one are stdio only).

        Raises ValueError naming the client whose ``token_env`` is unset."""
        out: dict[str, str] = {}
        for name, client in self.clients.items():
            try:
                token = client.resolved_token()
            except ValueError as exc:
                raise ValueError(f"agents.clients.{name}.token_env: {exc}") from None
            if token is not None:
                if token in out:
                    raise ValueError(
                        f"agents.clients.{name}: the same token as agents.clients.{out[token]}"
                    )
                out[token] = name
        return out


def client_for_token(tokens: Mapping[str, str], given: str) -> str | None:
    """The client whose token is ``given``, compared in constant time per token."""
    found = None
    for token, name in tokens.items():
        if hmac.compare_digest(token.encode("utf-8"), given.encode("utf-8")):
            found = name
    return found


# ---- until ConfigFile knows the section --------------------------------------------------


def load_with_agents(path: Path) -> tuple[LoadedConfig, AgentsConfig]:
    """The loaded config and its ``agents:`` section; ConfigError when either is wrong.

    While :class:`~agentcron.config.schema.ConfigFile` has no ``agents`` key, the
    section is read here and blanked out (lines kept, so every other problem keeps
    its line number) before the rest is loaded as usual."""
    from agentcron.config.errors import ConfigError, ConfigProblem
    from agentcron.config.loader import load_config, parse_config_text
    from agentcron.config.schema import ConfigFile

    if "agents" in ConfigFile.model_fields:
        whole = load_config(path)
        return whole, getattr(whole, "agents", None) or AgentsConfig()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError:
        load_config(path)  # raises the loader's own words for a missing or unreadable file
        raise
    rest, section, problems = _split_agents(text)
    loaded: LoadedConfig | None = None
    try:
        loaded = parse_config_text(rest, str(path), base_dir=path.parent)
    except ConfigError as exc:
        problems += exc.problems
    agents = AgentsConfig()
    if section is not None:
        plain, node, line = section
        try:
            agents = AgentsConfig.model_validate(plain)
        except ValidationError as exc:
            problems += _problems_of(exc, plain, node, line)
    if problems or loaded is None:
        ordered = sorted(dict.fromkeys(problems), key=lambda p: (p.line is None, p.line or 0))
        raise ConfigError(ordered or [ConfigProblem("agents", "not readable")], str(path))
    return loaded, agents


def _split_agents(text: str) -> tuple[str, tuple[Any, Any, int | None] | None, list[Any]]:
    from ruamel.yaml.comments import CommentedMap

    from agentcron.config._yaml import read_yaml, to_plain

    tree, problems = read_yaml(text)
    if problems or not isinstance(tree, CommentedMap) or "agents" not in tree:
        return text, None, []
    keys = list(tree)
    start = tree.lc.key("agents")[0]
    after = keys.index("agents") + 1
    lines = text.splitlines(keepends=True)
    end = tree.lc.key(keys[after])[0] if after < len(keys) else len(lines)
    blanked = "".join(("\n" if start <= i < end else line) for i, line in enumerate(lines))
    if keys == ["agents"]:
        blanked = "{}\n"  # nothing else written: an empty mapping, not an empty file
    found: list[Any] = []
    plain = to_plain(tree["agents"], ("agents",), found, tree)
    return blanked, (plain if plain is not None else {}, tree["agents"], start + 1), found


def section_problems(exc: ValidationError, plain: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """``(path under agents:, message)`` for each problem of an ``agents:`` mapping."""
    from agentcron.config._problems import issues_from

    out: list[tuple[tuple[str | int, ...], str]] = []
    for issue in issues_from(exc, AgentsConfig, plain):
        message = issue.message
        path: tuple[str | int, ...] = issue.path
        # the cross checks name their own place: "clients.x.models: …"
        head, sep, rest = message.partition(": ")
        if not path and sep and re.match(r"^(clients|models)\.[\w-]+", head):
            path = tuple(head.split("."))
            message = rest
        out.append((path, message))
    return out


def _problems_of(exc: ValidationError, plain: Any, node: Any, line: int | None) -> list[Any]:
    from agentcron.config._yaml import format_path, line_of
    from agentcron.config.errors import ConfigProblem

    return [
        ConfigProblem(format_path(("agents", *path)), message, line_of(node, path) or line)
        for path, message in section_problems(exc, plain)
    ]
