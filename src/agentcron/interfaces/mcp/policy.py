"""The owner's bounds on one agent, applied before any change reaches the service.

Every refusal is a :class:`Refused` whose message says what was asked, which bound
stops it and what the agent can do instead: a model reads it and tries again.

Names: an agent's tasks are ``NAMESPACE.SHORT`` (``agent.NAME.digest`` by default).
A name given to a tool is read as

1. a full name when it starts with the agent's namespace;
2. the exact name when it matches a ``see``/``change`` grant;
3. a short name in the namespace when it has no ``.``;
4. otherwise it is outside the namespace, and refused.

New tasks are always created in the namespace.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agentcron._service.base import Actor
from agentcron.config.agents import AgentClient, AgentsConfig
from agentcron.config.schema import compact_duration
from agentcron.model.task import TASK_NAME, shortened

SLOT_ENV = "AGENTCRON_SLOT"
SLOT_HEADER = "x-agentcron-slot"
SHORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
# a ${ that is not part of the $${ escape (agentcron.config._env reads them so)
_PLACEHOLDER = re.compile(r"(?<!\$)\$\{")


class Refused(Exception):
    """A request the agent's bounds forbid; the message is for the agent."""


@dataclass(frozen=True)
class Caller:
    """Who is calling: a configured client, and whether from inside a scheduled run."""

    name: str
    client: AgentClient
    in_run: bool = False
    # what said so: the variable the stdio server saw, or the header an HTTP client sent
    run_said_by: str = f"{SLOT_ENV} is set"

    @property
    def prefix(self) -> str:
        return self.client.prefix(self.name)

    @property
    def actor(self) -> Actor:
        return Actor(self.name, "mcp")

    @property
    def may_start(self) -> bool:
        return not self.in_run or self.client.from_runs


@dataclass(frozen=True)
class Policy:
    agents: AgentsConfig
    caller: Caller

    # ---- names ------------------------------------------------------------------------
    def task_name(
        self, given: str, *, change: bool = False, exists: Callable[[str], bool] | None = None
    ) -> str:
        """The task a name given to a tool means (see the module's rules); ``exists``
        tells a granted task from a short name when a name could be either."""
        name = given.strip()
        client, prefix = self.caller.client, self.caller.prefix
        if not name:
            raise Refused("name: give a task name (list_tasks shows yours)")
        if name.startswith(prefix):
            return name
        granted = client.may_change(name, prefix) if change else client.may_see(name, prefix)
        short = "." not in name and SHORT_NAME.fullmatch(name) is not None
        if granted and (not short or exists is None or exists(name)):
            return name
        visible_only = change and not granted and client.may_see(name, prefix)
        if visible_only and (not short or exists is None or exists(name)):
            # it sees the task: a hint to write it in its namespace would mislead
            mine = ", ".join(client.change) if client.change else "none besides your own"
            raise Refused(
                f"task {name!r} is visible to you but not yours to change: the owner "
                f"granted you to see it, not to change it (tasks you may change: "
                f"{prefix}*; granted: {mine})"
            )
        if short:
            return prefix + name
        return self._outside(name, "change" if change else "see")

    def _outside(self, name: str, what: str) -> str:
        grants = (
            self.caller.client.change
            if what == "change"
            else [
                *self.caller.client.see,
                *self.caller.client.change,
            ]
        )
        granted = f"; also granted: {', '.join(grants)}" if grants else ""
        raise Refused(
            f"task {name!r} is outside your namespace {self.caller.prefix}* and you may "
            f"not {what} it{granted}. Give a short name (digest) or a full name starting "
            f"with {self.caller.prefix}"
        )

    def new_task_name(self, given: str) -> str:
        """The full name of a task to create: always in the namespace."""
        name = given.strip()
        prefix = self.caller.prefix
        short = name.removeprefix(prefix)
        if not short or not SHORT_NAME.fullmatch(short):
            raise Refused(
                f"name: {given[:120]!r} cannot name a new task: give a short name of "
                f"letters, digits, '_' and '-' (it becomes {prefix}SHORT; new tasks always "
                "go in your namespace)"
            )
        full = prefix + short
        if not TASK_NAME.fullmatch(full):
            raise Refused(
                f"name: {shortened(full)!r} is too long: a task name is at most 100 characters, "
                f"{len(prefix)} of them your namespace {prefix}"
            )
        return full

    def visible(self, name: str) -> bool:
        return self.caller.client.may_see(name, self.caller.prefix)

    def own(self, name: str) -> bool:
        return name.startswith(self.caller.prefix)

    # ---- what may be done -------------------------------------------------------------
    def check_may_start(self, what: str) -> None:
        """Creating, changing or starting work from inside a scheduled run."""
        if self.caller.may_start:
            return
        raise Refused(
            f"you run inside a scheduled run ({self.caller.run_said_by}), and agent "
            f"{self.caller.name!r} may not {what} from there (the owner can allow it with "
            f"agents.clients.{self.caller.name}.from_runs: true). Reading, pausing and "
            "cancelling still work"
        )

    def check_action(self, kind: str) -> None:
        allowed = self.caller.client.actions
        if kind in allowed:
            return
        why = (
            "it runs code on the owner's machine, which must be granted"
            if kind in ("command", "python")
            else "the owner did not grant it"
        )
        raise Refused(
            f"{kind}: agent {self.caller.name!r} may not create {kind} tasks ({why}); "
            f"allowed: {', '.join(allowed) or 'none'}"
        )

    def check_period(self, schedule: str, period: timedelta) -> None:
        """A repeating schedule fires no more often than ``min_period`` (one-shots pass).

        ``schedule`` says it as the agent wrote it (``cron '* * * * *'``, ``every 30s``)."""
        shortest = self.caller.client.min_period
        if period <= timedelta(0) or period >= shortest:
            return
        fires = "" if schedule.startswith("every ") else f" fires every {compact_duration(period)},"
        raise Refused(
            f"{schedule}{fires} more often than agent {self.caller.name!r} may schedule (at "
            f"most once every {compact_duration(shortest)}); choose a longer interval"
        )

    def check_count(self, existing: int) -> None:
        most = self.caller.client.max_tasks
        if existing < most:
            return
        raise Refused(
            f"agent {self.caller.name!r} has {existing} task(s) in {self.caller.prefix}*, "
            f"the most it may have ({most}); cancel one first (cancel_task)"
        )

    def check_trigger_rate(
        self, task: str, runs: Sequence[Mapping[str, Any]], now: datetime
    ) -> None:
        """Runs started by hand count like fires: no more often than ``min_period``
        (``runs``: the task's newest runs, as the service lists them)."""
        shortest = self.caller.client.min_period
        if shortest <= timedelta(0):
            return
        manual = [
            datetime.fromisoformat(r["scheduled_for"])
            for r in runs
            if r.get("trigger") == "manual" and r.get("scheduled_for")
        ]
        last = max(manual, default=None)
        if last is None or now - last >= shortest:
            return
        raise Refused(
            f"{task} was started by hand at {last.isoformat(timespec='seconds')}; agent "
            f"{self.caller.name!r} may start a task at most once every "
            f"{compact_duration(shortest)}, so not before "
            f"{(last + shortest).isoformat(timespec='seconds')}"
        )

    def check_budget(self, task: str, budgets: Sequence[Mapping[str, Any]]) -> None:
        """A run started now would be skipped at once: say so instead of starting it."""
        for b in budgets:
            if b.get("used_up"):
                raise Refused(
                    f"{task}: the daily budget of {b['label']} is used up ({b['summary']} "
                    f"today); a run started now would be skipped. It resets at "
                    f"{b['resets_at']}; only the owner can raise it"
                )

    # ---- agent-supplied values --------------------------------------------------------
    def refuse_placeholders(self, values: Mapping[str, Any]) -> None:
        """``${…}`` in anything an agent sends would read the daemon's environment."""
        for path, text in _strings(values, ()):
            if _PLACEHOLDER.search(text):
                raise Refused(
                    f"{path}: ${{…}} placeholders are the owner's: a task written by an agent "
                    "cannot read the daemon's environment (write $${ for a literal ${)"
                )

    def llm_mapping(self, llm: Mapping[str, Any]) -> dict[str, Any]:
        """An agent's ``llm`` action (a profile name) as the task's ``llm`` keys."""
        for key in ("base_url", "api_key_env"):
            if llm.get(key) is not None:
                raise Refused(
                    f"llm.{key}: the model's address and key are the owner's; name a model "
                    f"profile in llm.model instead ({self._profiles_text()})"
                )
        profiles = self.agents.profiles_for(self.caller.client)
        name = str(llm.get("model") or "")
        profile = profiles.get(name)
        if profile is None:
            raise Refused(f"llm.model: no model profile {name!r} for you ({self._profiles_text()})")
        out: dict[str, Any] = {"base_url": profile.base_url, "model": profile.model}
        if profile.api_key_env:
            out["api_key_env"] = profile.api_key_env
        for key in ("prompt", "system", "max_tokens", "temperature"):
            if llm.get(key) is not None:
                out[key] = llm[key]
        return out

    def _profiles_text(self) -> str:
        names = sorted(self.agents.profiles_for(self.caller.client))
        return "profiles: " + ", ".join(names) if names else "the owner configured none"

    def profile_of(self, spec: Mapping[str, Any]) -> str | None:
        """The profile an llm task's spec calls, when one matches."""
        llm = spec.get("llm")
        if not isinstance(llm, Mapping):
            return None
        for name, profile in self.agents.models.items():
            if profile.base_url == llm.get("base_url") and profile.model == llm.get("model"):
                return name
        return None


def _strings(value: Any, path: tuple[str | int, ...]) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(_dotted(path), value)]
    if isinstance(value, Mapping):
        found = []
        for key, sub in value.items():
            found += _strings(str(key), (*path, f"<key {key}>"))
            found += _strings(sub, (*path, str(key)))
        return found
    if isinstance(value, list | tuple):
        return [item for i, sub in enumerate(value) for item in _strings(sub, (*path, i))]
    return []


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
