"""Arguments of the wrong type, said in agentcron's words.

The SDK checks a tool call's arguments against the tool's signature before the tool
runs, and answers a mismatch with pydantic's own text ("1 validation error for
schedule_taskArguments / timeout / Input should be a valid string [type=string_type,
input_value=-5…] For further information visit https://errors.pydantic.dev/…"):
every other refusal of the tools is one line naming the field. :func:`refusal` says
these in the same style, without the values (they are the caller's data); the server
(:class:`agentcron.interfaces.mcp.server.Server`) keeps pydantic's error as the
cause, so the SDK's log still names only the fields.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agentcron.config._problems import kind_of

# arguments that are durations, written as text ('30s', '5m', '1h')
_DURATIONS = frozenset({"timeout", "every", "since", "kill_grace"})
_TYPES = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "missing": "is required",
    "extra_forbidden": "is not an argument of this tool",
}


def refusal(error: ValidationError) -> str:
    """One line naming each wrong argument: ``arguments not accepted: timeout: must be
    text such as '30s' or '5m' (got a number)``."""
    said = [_one(e) for e in error.errors()]
    return "arguments not accepted: " + "; ".join(dict.fromkeys(said))


def _one(e: Any) -> str:
    where = ".".join(str(part) for part in e.get("loc", ()) if part != "")
    kind = str(e.get("type", ""))
    words = _TYPES.get(kind)
    if words is None:
        message = str(e.get("msg", "is not valid"))
        words = message[:1].lower() + message[1:]
    last = where.rsplit(".", 1)[-1]
    if kind == "extra_forbidden" and "." in where:
        words = f"is not a key of {where.rsplit('.', 1)[0]}"  # `http.bogus`
    if kind == "string_type" and last in _DURATIONS:
        words += " such as '30s' or '5m'"
    if kind not in ("missing", "extra_forbidden"):
        words += f" (got {kind_of(e.get('input'))})"
    return f"{where or 'arguments'}: {words}"
