"""Writing imported tasks into agentcron.yaml, keeping its comments and layout.

The file is edited with ruamel's round-trip mode: everything that is there stays
where it is, new tasks are added at the end of ``tasks:`` with a comment naming
their source, and a re-imported task is updated in place. The result is validated
as ``agentcron validate`` would (with the real environment, so an unset variable
stops it) before the file is replaced atomically; a file that was invalid before
is not touched at all.

An update replaces the task's schedule and action and sets every other key the
source provides; keys the source has no say about (``notify``, ``retries``…) and
keys you added yourself stay as they are.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString
from ruamel.yaml.tokens import CommentToken

from agentcron.config.errors import ConfigError, ConfigProblem
from agentcron.config.loader import parse_config_text
from agentcron.importers._yaml_out import dump, node, yaml_io
from agentcron.importers.place import Placed, schedule_of

# A re-import removes these when the source no longer gives them (a schedule or an
# action of another kind would clash with the new one).
_REPLACED = (
    "cron",
    "every",
    "anchor",
    "at",
    "expires",
    "command",
    "shell",
    "python",
    "http",
    "llm",
)
HEADER = "# agentcron.yaml: tasks written by `agentcron import`; check with `agentcron validate`\n"


def existing_tasks(
    path: Path,
) -> tuple[dict[str, str | None], dict[str, tuple[str, ...]], str | None]:
    """The config's tasks (name -> imported_from), their schedules (name ->
    :func:`schedule_of`), and why the file cannot be edited, if so."""
    if not path.exists():
        return {}, {}, None
    try:
        text = path.read_bytes().decode("utf-8-sig")
        doc = yaml_io().load(text)
    except Exception as exc:  # any failure to read it means: not editable, say why
        return {}, {}, f"{path} cannot be read as YAML ({type(exc).__name__}); fix it first"
    tasks = doc.get("tasks") if isinstance(doc, CommentedMap) else None
    found: dict[str, str | None] = {}
    schedules: dict[str, tuple[str, ...]] = {}
    if isinstance(tasks, CommentedMap):
        for name, task in tasks.items():
            key = task.get("imported_from") if isinstance(task, CommentedMap) else None
            found[str(name)] = str(key) if key else None
            if isinstance(task, CommentedMap):
                schedules[str(name)] = schedule_of(task)
    return found, schedules, None


def apply_to_file(path: Path, placed: list[Placed]) -> str:
    """Write ``placed`` into the config at ``path``; returns the new text.

    Raises :class:`ConfigError` (nothing written) when the file is invalid now or
    would be afterwards.
    """
    original = ""
    if path.exists():
        try:
            original = path.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                [ConfigProblem("", f"cannot read {path}: {exc}")], str(path)
            ) from None
        parse_config_text(original, str(path), base_dir=path.parent)  # invalid now: stop
    # A file written with CRLF stays CRLF: ruamel kept the \r of its comments and wrote
    # every other line with \n, a file of mixed line endings (probe)
    crlf = "\r\n" in original
    raw = original
    original = original.replace("\r\n", "\n")
    yaml = yaml_io()
    doc = yaml.load(original) if original.strip() else None
    if not isinstance(doc, CommentedMap):
        doc = CommentedMap()
    tasks = doc.get("tasks")
    if not isinstance(tasks, CommentedMap):
        tasks = CommentedMap()
        doc["tasks"] = tasks
    # a comment block after the last task (the end of the file, or the head of the next
    # key) is kept by ruamel on that task's last value: new tasks went in above it
    trailing = _take_trailing(tasks) if any(not item.update for item in placed) else ""
    for item in placed:
        _write(tasks, item)
    _put_trailing(tasks, trailing)
    yaml.indent(**_layout(doc))
    text = dump(doc, yaml)
    if not original.strip():
        text = HEADER + text
    _check_result(text, path)  # invalid afterwards: stop
    if crlf:
        text = text.replace("\n", "\r\n")
    if text != raw:
        _replace(path, text)  # a re-import that changes nothing leaves the file untouched
    return text


def _check_result(text: str, path: Path) -> None:
    """Check the file as it would be written. Its problems name the task and key
    (``tasks.NAME.KEY``), never a line: the text they would be on is not on disk (and
    for a config not created yet, no file is), so a line number would point at nothing
    the user can open."""
    try:
        parse_config_text(text, str(path), base_dir=path.parent)
    except ConfigError as exc:
        source = str(path) if path.exists() else f"{path} (not created)"
        problems = [ConfigProblem(p.location, p.message) for p in exc.problems]
        raise ConfigError(problems, source) from None


def unchanged_in_file(path: Path, placed: list[Placed]) -> set[str]:
    """The names of ``placed`` whose task the config at ``path`` already holds as
    :func:`apply_to_file` would write it: the report says so instead of "updates"."""
    if not path.exists():
        return set()
    try:
        doc = yaml_io().load(path.read_bytes().decode("utf-8-sig"))
    except Exception:  # unreadable: existing_tasks said why; nothing counts as unchanged
        return set()
    tasks = doc.get("tasks") if isinstance(doc, CommentedMap) else None
    if not isinstance(tasks, CommentedMap):
        return set()
    return {item.name for item in placed if item.update and _same(_find(tasks, item.name), item)}


def _same(current: Any, item: Placed) -> bool:
    """Whether :func:`_write` would leave ``current`` as it is."""
    if not isinstance(current, CommentedMap):
        return False
    mapping = item.mapping()
    if any(key in current and key not in mapping for key in _REPLACED):
        return False
    return all(key in current and current[key] == value for key, value in mapping.items())


def _write(tasks: CommentedMap, item: Placed) -> None:
    mapping = item.mapping()
    current = _find(tasks, item.name)
    if item.update and isinstance(current, CommentedMap):
        for key in _REPLACED:
            if key in current and key not in mapping:
                del current[key]
        for key, value in mapping.items():
            current[key] = node(value, key)
        return
    tasks[item.name] = node(mapping)
    tasks.yaml_set_comment_before_after_key(
        item.name,
        before=f"imported from {item.draft.label} ({item.draft.key})",
        indent=_indent(tasks),
    )


def _last_slot(tasks: CommentedMap) -> tuple[Any, Any, int] | None:
    """Where ruamel keeps the comment lines that follow the mapping's last line: the
    deepest last entry of block style (container, key or index, place in its comment)."""
    container: Any = tasks
    while True:
        if not container or container.fa.flow_style():
            return None
        if isinstance(container, CommentedMap):
            key: Any = next(reversed(container))
            place = 2
        elif isinstance(container, CommentedSeq):
            key, place = len(container) - 1, 0
        else:
            return None
        value = container[key]
        if isinstance(value, CommentedMap | CommentedSeq) and value and not value.fa.flow_style():
            container = value
            continue
        return container, key, place


def _take_trailing(tasks: CommentedMap) -> str:
    """The comment lines after the last task, taken off it (a comment at the end of its
    last line stays there): returned to be put after the tasks added below it."""
    slot = _last_slot(tasks)
    if slot is None:
        return ""
    container, key, place = slot
    entry = container.ca.items.get(key)
    token = entry[place] if entry and len(entry) > place else None
    if token is None or not isinstance(getattr(token, "value", None), str):
        return ""
    value: str = token.value
    if isinstance(container[key], LiteralScalarString | FoldedScalarString):
        head, rest = "", value  # a block scalar's last line break is its own
    else:
        cut = value.find("\n")
        if cut < 0:
            return ""
        head, rest = value[: cut + 1], value[cut + 1 :]
    if "#" not in rest:
        return ""  # blank lines only: nothing to keep in its place
    if head.strip():
        token.value = head
    else:
        entry[place] = None
    return rest


def _put_trailing(tasks: CommentedMap, text: str) -> None:
    """``text`` (from :func:`_take_trailing`) after the last line of the tasks."""
    slot = _last_slot(tasks) if text else None
    if slot is None:
        return
    container, key, place = slot
    if not isinstance(container[key], LiteralScalarString | FoldedScalarString):
        text = "\n" + text
    entry = container.ca.items.setdefault(key, [None, None, None, None])
    entry[place] = CommentToken(text, CommentMark(0), None)


def _layout(doc: CommentedMap) -> dict[str, int]:
    """The file's own indentation: of nested mappings, and of block sequences (the dash's
    offset and the item's), measured where they first occur; 2 / 2 / 4 when absent."""
    mapping: int | None = None
    seq: tuple[int, int] | None = None
    stack: list[Any] = [doc]
    while stack and (mapping is None or seq is None):
        node_ = stack.pop(0)
        if not isinstance(node_, CommentedMap) or node_.fa.flow_style():
            continue
        for key, value in node_.items():
            try:
                key_col = node_.lc.key(key)[1]
                block = (
                    isinstance(value, CommentedMap | CommentedSeq)
                    and bool(value)
                    and not value.fa.flow_style()
                )
                if mapping is None and isinstance(value, CommentedMap) and block:
                    mapping = value.lc.key(next(iter(value)))[1] - key_col
                if seq is None and isinstance(value, CommentedSeq) and block:
                    seq = (value.lc.col - key_col, value.lc.item(0)[1] - key_col)
            except (KeyError, IndexError, TypeError):
                continue  # a node built here, not read from the file, has no position
            stack.append(value)
    indent = mapping if mapping and mapping > 0 else 2
    offset, sequence = seq if seq and seq[1] > seq[0] >= 0 else (indent, indent + 2)
    return {"mapping": indent, "sequence": sequence, "offset": offset}


def _find(tasks: CommentedMap, name: str) -> Any:
    for key, value in tasks.items():
        if str(key) == name:
            return value
    return None


def _indent(tasks: CommentedMap) -> int:
    for key in tasks:
        with contextlib.suppress(Exception):
            return int(tasks.lc.key(key)[1])
    return 2


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, keeping the file's permissions."""
    folder = path.parent if str(path.parent) else Path(".")
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
