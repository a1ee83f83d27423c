"""Reading agentcron.yaml: YAML 1.2 with line numbers, duplicate keys caught.

ruamel's round-trip loader keeps YAML 1.2 semantics (``12:30`` and ``on`` stay
strings) and remembers where each key stands, which is what lets every problem
point at a line. Its objects are converted to plain Python before validation so
that the validated models never hold ruamel types.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from agentcron.config.errors import ConfigProblem

Path = tuple[str | int, ...]
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_ABSENT = object()


TOO_DEEP = (
    "nested too deeply to be read (hundreds of brackets or indentation levels inside "
    "each other); a config file is a few levels deep"
)


def read_yaml(text: str) -> tuple[Any, list[ConfigProblem]]:
    """The round-trip document, or the problems that stop it from being read."""
    yaml = YAML(typ="rt")
    try:
        node = yaml.compose(text)
        duplicates = list(_duplicate_keys(node, ()))
        if duplicates:
            return None, duplicates
        if node is None:  # an empty document
            return None, []
        # built from the node already composed, as ``load`` would build it after
        # composing the text a second time (which took half of a 100,000-task file's read)
        return yaml.constructor.construct_document(node), []
    except YAMLError as exc:
        return None, [_syntax_problem(exc)]
    except RecursionError:  # was a traceback of thousands of lines (outside-in probe)
        return None, [ConfigProblem("", TOO_DEEP)]


def _syntax_problem(exc: YAMLError) -> ConfigProblem:
    if not isinstance(exc, MarkedYAMLError):
        return ConfigProblem("", f"invalid YAML: {' '.join(str(exc).split())}")
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    reason = exc.problem or "malformed document"
    if exc.context:
        started = exc.context_mark
        if started is not None and started.line + 1 != line:
            reason += f" ({exc.context} starting on line {started.line + 1})"
        else:
            reason += f" ({exc.context})"
    where = f"line {line}, column {mark.column + 1}" if mark is not None else "unknown position"
    message = f"invalid YAML at {where}: {reason}"
    if "alias" in f"{exc.problem} {exc.context}":
        message += '; a value starting with * must be quoted, e.g. cron: "*/5 * * * *"'
    return ConfigProblem("", message, line)


def _duplicate_keys(node: Node | None, path: Path) -> Iterator[ConfigProblem]:
    """Every key given twice in one mapping, with the path of that mapping.

    Checked on the composed node graph, where both copies are still visible, so one
    pass reports all of them with the line of each repetition.
    """
    seen_nodes: set[int] = set()
    stack: list[tuple[Node | None, Path]] = [(node, path)]
    while stack:
        current, where = stack.pop()
        if current is None or id(current) in seen_nodes:
            continue
        seen_nodes.add(id(current))
        if isinstance(current, MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in current.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = str(key_node.value)
                line = key_node.start_mark.line + 1
                if key in first_line:
                    location = format_path((*where, key))
                    yield ConfigProblem(
                        location,
                        f"duplicate key '{key}' (first given on line {first_line[key]}); keep one",
                        line,
                    )
                else:
                    first_line[key] = line
                stack.append((value_node, (*where, key)))
        elif isinstance(current, SequenceNode):
            stack.extend((item, (*where, i)) for i, item in enumerate(current.value))


def format_path(path: Path) -> str:
    """``("tasks", "story", "deliver", 0)`` -> ``tasks.story.deliver[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def line_of(node: Any, path: Path) -> int | None:
    """1-based line of the deepest part of ``path`` present in the round-trip tree."""
    line: int | None = None
    for part in path:
        try:
            if isinstance(node, CommentedMap):
                key = _find_key(node, part)
                if key is _ABSENT:
                    break
                line = node.lc.key(key)[0] + 1
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(part, int):
                if not 0 <= part < len(node):
                    break
                line = node.lc.item(part)[0] + 1
                node = node[part]
            else:
                break
        except (KeyError, IndexError, TypeError):
            # keys pulled in by a YAML merge (<<) carry no position of their own
            break
    return line


def child(node: Any, part: str | int) -> Any:
    """The value under ``part`` (matched as text, so task ``2024`` finds key 2024), or None."""
    if not isinstance(node, Mapping):
        return None
    key = _find_key(node, part)
    return None if key is _ABSENT else node[key]


def _find_key(mapping: Mapping[Any, Any], part: Any) -> Any:
    if part in mapping:
        return part
    for key in mapping:
        if str(key) == str(part):
            return key
    return _ABSENT


def to_plain(value: Any, path: Path, problems: list[ConfigProblem], root: Any) -> Any:
    """Plain dicts, lists, str, int, float, bool, datetimes; tags other than !!str refused."""
    if isinstance(value, TaggedScalar):
        if str(value.tag) == _STR_TAG or value.tag.value == _STR_TAG:
            return str(value.value)
        problems.append(
            ConfigProblem(
                format_path(path),
                f"unsupported YAML tag '{value.tag.value}': write the value without a tag",
                line_of(root, path),
            )
        )
        return None
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _plain_key(key)
            if name is None:
                shown = "null" if key is None else str(key).lower()
                problems.append(
                    ConfigProblem(
                        format_path(path),
                        f"key {shown} is not text: quote it ('{shown}') or rename it",
                        line_of(root, (*path, key)) or line_of(root, path),
                    )
                )
                continue
            out[name] = to_plain(item, (*path, name), problems, root)
        return out
    if isinstance(value, list):
        return [to_plain(v, (*path, i), problems, root) for i, v in enumerate(value)]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dt.datetime):
        return dt.datetime.fromisoformat(value.isoformat())
    return value


def _plain_key(key: Any) -> str | None:
    """Keys are text; one written as a whole number (task ``2024``) is a name too.

    ``true``, ``null`` and ``1.5`` as keys are almost always mistakes (YAML 1.2
    reads ``yes``/``on`` as text, but not these), so they are refused.
    """
    if isinstance(key, bool) or key is None:
        return None
    if isinstance(key, int):
        return str(int(key))
    return str(key) if isinstance(key, str) else None
