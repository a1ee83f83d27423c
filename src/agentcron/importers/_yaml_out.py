"""Imported tasks as YAML a person would write: quoted cron, prompts as blocks, short lists inline.

The same nodes serve the dry run's preview and the round-trip write into the
config file, so what the dry run shows is what lands in the file.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString

_QUOTED = frozenset({"cron", "at", "anchor", "every", "timeout"})
_INLINE_MAX = 90


def node(value: Any, key: str | None = None) -> Any:
    """``value`` as ruamel nodes styled for reading."""
    if isinstance(value, Mapping):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = node(v, str(k))
        return out
    if isinstance(value, list | tuple):
        seq = CommentedSeq(node(v) for v in value)
        short = all(isinstance(v, str) and "\n" not in v for v in value)
        if short and sum(len(str(v)) + 4 for v in value) <= _INLINE_MAX:
            seq.fa.set_flow_style()
        return seq
    if isinstance(value, str):
        if "\n" in value:
            return LiteralScalarString(_block_safe(value))
        if key in _QUOTED or _needs_quotes(value):
            return DoubleQuotedScalarString(value)
        return value
    return value


def _block_safe(text: str) -> str:
    # a literal block cannot keep trailing blanks at the ends of lines reliably
    return "\n".join(line.rstrip() for line in text.split("\n"))


def _needs_quotes(text: str) -> bool:
    return text == "" or text != text.strip() or text[:1] in "*&!@%`{[|>'\"#?-:,"


def yaml_io() -> YAML:
    yaml = YAML(typ="rt")
    yaml.width = 4096
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def dump(value: Any, yaml: YAML | None = None) -> str:
    stream = io.StringIO()
    (yaml or yaml_io()).dump(value, stream)
    return stream.getvalue()


def preview(name: str, mapping: Mapping[str, Any]) -> str:
    """``name:`` and the task below it, as the dry run shows it."""
    doc = CommentedMap()
    doc[name] = node(mapping)
    return dump(doc)
