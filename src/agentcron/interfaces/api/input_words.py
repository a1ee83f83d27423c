"""A request's malformed parameters and body keys, said in the API's words.

FastAPI checks query and path parameters and the bodies (a pause's, a create's, the
empty one of an action that takes none) against the route's signature before the
route runs, and its error carries pydantic's text ("Input should be a valid integer,
unable to parse string as an integer", "Field required", "Extra inputs are not
permitted"). Every other refusal of this API names the field in plain words:
:func:`said` words these the same way, one line each, ``query parameter limit: must
be a whole number (got 'ten')``. A query's or a path's value is quoted as sent; a
body's is only described (``got a number``): a body may hold a secret, and is the
client's own data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentcron.config._problems import kind_of, model_in

_ISO = "an ISO time such as 2026-10-25T00:00 or 2026-10-25T00:00+02:00"
_WORDS = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "missing": "is missing; it is required",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "must be {} or more"),
    "greater_than": ("gt", "must be more than {}"),
    "less_than_equal": ("le", "must be at most {}"),
    "less_than": ("lt", "must be less than {}"),
    "string_too_long": ("max_length", "must be at most {} characters"),
    "string_too_short": ("min_length", "must be at least {} characters"),
}


def where_of(loc: Sequence[Any]) -> tuple[str, str | None]:
    """``('query', 'limit')`` -> ``('query', 'limit')``; ``('body', 'env', 'X')`` ->
    ``('body', 'env.X')``; anything else -> ``('request', None)``."""
    if not loc or loc[0] not in ("query", "path", "body", "header"):
        return "request", None
    return str(loc[0]), ".".join(str(p) for p in loc[1:]) or None


def said(error: Mapping[str, Any], body_keys: Sequence[str] = ()) -> str:
    """One error of a request as a line: where, what is wrong, and what was sent
    (``body key reason: must be text (got a number)``). ``body_keys``: the keys the
    route's body takes (named when one is not among them)."""
    where, field = where_of(tuple(error.get("loc", ())))
    place = f"body key {field}" if where == "body" else f"{where} parameter {field}"
    return f"{place}: {message(error, body_keys)}"


def message(error: Mapping[str, Any], body_keys: Sequence[str] = ()) -> str:
    """What is wrong, and what was sent: ``must be a whole number (got 'ten')``."""
    where, _ = where_of(tuple(error.get("loc", ())))
    kind = str(error.get("type", ""))
    if kind == "extra_forbidden":
        # only a body of fixed keys refuses one: with none listed, it takes none
        return f"not a key of this body; it takes {', '.join(body_keys) or 'none'}"
    words = _words(kind, error)
    if kind == "missing":
        return words
    value = error.get("input")
    if where in ("query", "path", "header") and isinstance(value, str):
        got = _quoted(value)
    elif kind.startswith("string_too") and isinstance(value, str):
        got = f"{len(value)} characters"
    else:
        got = kind_of(value)
    return f"{words} (got {got})"


def _words(kind: str, error: Mapping[str, Any]) -> str:
    if kind in _WORDS:
        return _WORDS[kind]
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return words.format((error.get("ctx") or {}).get(key, "?"))
    if kind.startswith(("datetime", "date_")):
        return f"must be {_ISO}"
    message = str(error.get("msg") or "")
    if message.startswith("Input should be "):  # a kind not listed: pydantic's words, tamed
        return "must be " + message.removeprefix("Input should be ")
    return "is not valid"


def body_keys(route: Any) -> list[str]:
    """The keys of the model the route's body is (``['reason']`` for a pause), or none
    when it takes any object (a PATCH), an empty one (a resume) or no body."""
    dependant = getattr(route, "dependant", None)
    for param in getattr(dependant, "body_params", ()):
        model = model_in(getattr(param.field_info, "annotation", None))
        if model is not None and model.model_config.get("extra") == "forbid":
            return [info.alias or name for name, info in model.model_fields.items()]
    return []


def _quoted(value: str, limit: int = 80) -> str:
    """``value`` as Python quotes it, cut to ``limit`` characters."""
    return repr(value if len(value) <= limit else value[:limit] + "…")
