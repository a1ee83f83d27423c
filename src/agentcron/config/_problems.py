"""Pydantic's validation errors rewritten as sentences about the user's own keys.

Pydantic reports union members and internal type tags (``command.list[str]``) and
prefixes messages with "Value error, "; people want "tasks.story.command: must be a
list of strings or a string". Paths here are relative to the validated mapping;
callers prefix them (``tasks.story``) and look up line numbers.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from agentcron.config._urls import redact_urls_in

Path = tuple[str | int, ...]

_TYPE_WORDS = {
    "list_type": "a list",
    "tuple_type": "a list",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "none_required": "empty (null)",
}
_TAG_WORDS = {"list[str]": "a list of strings", "str": "a string"}
_TYPE_TAG = re.compile(r"^[a-z][a-z_\-]*(\[.*\])?$")
_TYPE_NAMES = frozenset({"str", "int", "float", "bool", "none", "list", "dict", "datetime"})
_DATETIME_HINT = " (use ISO 8601, e.g. 2025-06-01T02:00:00 or 2025-06-01T02:00:00+02:00)"


@dataclass(frozen=True)
class Issue:
    """A problem at ``path`` inside the validated mapping; ``kind`` is pydantic's type."""

    path: Path
    message: str
    kind: str


@dataclass(frozen=True)
class _Located:
    path: Path
    union_at: Path | None  # where pydantic branched into union members, if it did
    tag: str | None
    error: ErrorDetails


def issues_from(exc: ValidationError, model: type[BaseModel], data: Any) -> list[Issue]:
    """Translate every error of ``exc`` (raised validating ``data`` as ``model``)."""
    located = [_locate(error, data) for error in exc.errors(include_url=False)]
    issues: list[Issue] = []
    unions: dict[Path, list[_Located]] = {}
    for item in located:
        if item.union_at is None:
            issues.append(_issue(item, model))
        else:
            unions.setdefault(item.union_at, []).append(item)
    for union_at, members in unions.items():
        # A member that got further into the value matched its shape: its errors
        # are the useful ones. If none did, the value has the wrong type for all.
        depth = max(len(m.path) for m in members)
        if depth > len(union_at):
            issues.extend(_issue(m, model) for m in members if len(m.path) == depth)
            continue
        words = [_member_word(m) for m in members]
        if all(words):
            issues.append(Issue(union_at, f"must be {_either(words)}", "union"))
        else:
            issues.extend(_issue(m, model) for m in members)
    issues = [_refined(i, data) for i in issues]
    return list({(i.path, i.message): i for i in issues}.values())


_KEY_PREFIX = re.compile(r"^([A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*): ")


def _refined(issue: Issue, data: Any) -> Issue:
    """A check across a whole section (``agents``) names the key at fault at the start
    of its message (``clients.b.token: the same token as clients.a``): point the
    problem, and so its line, at that key when the data holds it."""
    if issue.kind != "value_error":
        return issue
    match = _KEY_PREFIX.match(issue.message)
    node: Any = data
    for part in issue.path:
        node = node.get(part) if isinstance(node, Mapping) else None
    if match is None or not isinstance(node, Mapping):
        return issue
    keys = match.group(1).split(".")
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return issue
        node = node[key]
    return Issue((*issue.path, *keys), issue.message[match.end() :], issue.kind)


def _locate(error: ErrorDetails, data: Any) -> _Located:
    """Walk pydantic's location through the data, dropping union type tags."""
    path: list[str | int] = []
    union_at: Path | None = None
    tag: str | None = None
    node: Any = data
    loc = list(error["loc"])
    for i, part in enumerate(loc):
        last_missing = error["type"] == "missing" and i == len(loc) - 1
        if isinstance(node, Mapping) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, Sequence) and not isinstance(node, str) and isinstance(part, int):
            path.append(part)
            node = node[part] if 0 <= part < len(node) else None
        elif isinstance(part, str) and not last_missing and _is_type_tag(part, node):
            if union_at is None:
                union_at = tuple(path)
                tag = part
        else:
            path.append(part)
            node = None
    return _Located(tuple(path), union_at, tag, error)


def _either(words: Sequence[str | None]) -> str:
    unique = list(dict.fromkeys(w for w in words if w))
    return unique[0] if len(unique) == 1 else f"{', '.join(unique[:-1])} or {unique[-1]}"


def _is_type_tag(part: str, node: Any) -> bool:
    if not isinstance(node, Mapping):
        return True  # a string key cannot index a scalar or a list
    return "[" in part or part in _TYPE_NAMES or bool(_TYPE_TAG.match(part) and "-" in part)


def _member_word(item: _Located) -> str | None:
    if item.tag in _TAG_WORDS:
        return _TAG_WORDS[item.tag]
    return _TYPE_WORDS.get(item.error["type"])


def _issue(item: _Located, model: type[BaseModel]) -> Issue:
    error = item.error
    kind = error["type"]
    path = item.path
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        return Issue(path, unknown_key_message(key, allowed_keys(model, path[:-1])), kind)
    if kind == "missing":
        missing = path[-1] if path else "?"
        return Issue(path[:-1], f"missing required key '{missing}'", kind)
    return Issue(path, humanize(error), kind)


def humanize(error: ErrorDetails) -> str:
    """Pydantic's message for one error, as a short instruction."""
    kind = error["type"]
    msg = error["msg"]
    if kind in ("value_error", "assertion_error"):
        msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
    elif kind in _TYPE_WORDS:
        msg = f"must be {_TYPE_WORDS[kind]}"
    elif msg.startswith("Input should be "):
        msg = "must be " + msg.removeprefix("Input should be ")
    if kind in ("enum", "literal_error"):
        given = error.get("input")
        if isinstance(given, str) and len(given) <= 40:
            msg += f" (got {given!r})"
    if kind.startswith(("datetime", "date_")):
        msg += _DATETIME_HINT
    return redact_urls_in(msg)


def unknown_key_message(key: str, allowed: Sequence[str]) -> str:
    """``unknown key 'retrys' (did you mean 'retries'?)``."""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}' (did you mean '{close[0]}'?)"
    if len(allowed) > 12:
        return f"unknown key '{key}' (`agentcron schema` lists the keys allowed here)"
    if allowed:
        return f"unknown key '{key}'; allowed keys: {', '.join(allowed)}"
    return f"unknown key '{key}'"


def allowed_keys(model: type[BaseModel], path: Path) -> list[str]:
    """The keys the (nested) model at ``path`` accepts, as written in YAML."""
    current: type[BaseModel] | None = model
    for part in path:
        if current is None:
            return []
        if isinstance(part, int):
            continue  # an item of a list keeps the list's element model
        field = _field(current, part)
        current = model_in(field.annotation) if field is not None else None
    if current is None:
        return []
    return [info.alias or name for name, info in current.model_fields.items() if name != "name"]


def _field(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The Pydantic model an annotation is, or holds (``Model | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = model_in(arg)
            if found is not None:
                return found
    return None


def kind_of(value: Any) -> str:
    """What a refused input value was, in words that never quote it (it may be a
    secret): "a number", "text", "a list" …"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
