"""Checks of a task's action that its model cannot make alone: they need the
environment (:func:`unset_key`, a warning) or would refuse specs already stored
(the model validates every spec read back from the database, so a rule added there
would make an older database unreadable; here it applies to what is written next).

Each was found by running tasks that ``validate`` had passed: a port out of range
failed at run time as agentcron's own error, an empty ``model`` only when the first
run failed, a key pasted where its variable's name
belongs read "environment variable [REDACTED] is not set", and a command with a NUL
in an argument (possible through the API and MCP) was accepted and then failed every
run as "agentcron itself failed (ValueError: embedded null byte)".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agentcron.config._env import strings_in
from agentcron.config._urls import check_port
from agentcron.model.task import TaskSpec

KeyPath = tuple[str | int, ...]

_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def action_problems(values: Mapping[str, Any]) -> list[tuple[KeyPath, str]]:
    """(where, why) for each problem of the task's expanded values: a NUL character
    anywhere, a command naming no program, and its ``http`` and ``llm``."""
    found: list[tuple[KeyPath, str]] = [
        (path, "holds a NUL character (\\0), which no command, URL or text can carry")
        for path, text in strings_in(dict(values))
        if "\0" in text
    ]
    command = values.get("command")
    first = command[0] if isinstance(command, list) and command else command
    if isinstance(first, str) and not first.strip():
        if isinstance(command, list):
            empty = "is blank" if first else "is empty"  # ["  "] is not empty
            found.append((("command", 0), f"{empty}: the first item names the program to run"))
        else:
            found.append((("command",), "is blank: it names no program to run"))
    http = values.get("http")
    if isinstance(http, Mapping) and isinstance(http.get("url"), str):
        found += _url(("http", "url"), http["url"])
    llm = values.get("llm")
    if not isinstance(llm, Mapping):
        return found
    if isinstance(llm.get("base_url"), str):
        found += _url(("llm", "base_url"), llm["base_url"])
    model = llm.get("model")
    if isinstance(model, str) and not model.strip():
        found.append((("llm", "model"), "is empty: name the model to call (e.g. gpt-4.1-mini)"))
    name = llm.get("api_key_env")
    if isinstance(name, str):
        found += _key_variable(name)
    return found


def _url(path: KeyPath, url: str) -> list[tuple[KeyPath, str]]:
    problem = check_port(url)  # the model's own check says the rest
    return [] if problem is None else [(path, problem)]


def _key_variable(name: str) -> list[tuple[KeyPath, str]]:
    if _VARIABLE_NAME.fullmatch(name):
        return []
    # never quoted: what stands here may be the key itself
    return [
        (
            ("llm", "api_key_env"),
            "is not a variable's name: api_key_env names the environment variable "
            "that holds the key (e.g. OPENAI_API_KEY), not the key itself; put the key "
            "in that variable (or the config's env_file) and its name here",
        )
    ]


def unset_key(spec: TaskSpec, environ: Mapping[str, str]) -> str | None:
    """The warning for an ``llm`` task whose key variable is set nowhere its run looks
    (the environment, the env file, the task's ``env:``), or None.

    A warning, not an error: the shell that validates may lack a variable that only
    the daemon's service environment sets, and a daemon refused at start for it
    stopped every task, told to no channel, where only this task's runs fail (each
    told as a ``config_error`` naming the variable)."""
    name = spec.llm.api_key_env if spec.llm is not None else None
    if not name or not _VARIABLE_NAME.fullmatch(name) or environ.get(name) or name in spec.env:
        return None
    return (
        f"tasks.{spec.name}.llm.api_key_env: variable {name} is not set here (it holds "
        f"the key the model is called with): every run of {spec.name} fails until the "
        "daemon's environment or the config's env_file sets it"
    )
