"""Nodes that run different config files against one database.

Every node applies its own file's tasks when it starts and when the file changes, and
the database holds one list of file tasks: two nodes with different files take turns
removing and restoring each other's tasks. That happened silently (outside-in probe: a
task added on one node was removed by a reload on the other, with nothing told and
`doctor` on the first node saying all was well). Each node now records which file's
tasks it applied; one whose tasks differ from those another live node applied says so.
A change rolled out to every node is not told at all: a node that finds the other
live node's tasks differ from its file's waits :data:`SETTLE` for that node to apply
the same tasks (a shared file it reloads, a rollout reaching it), and tells only when
it has not by then (a chaos soak: every config edit of a three-node deployment told
the owner "nodes run different config files"). Of two nodes that find one difference
at once, the first tells.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from agentcron.model import NodeInfo, TaskSpec

META_KEY = "config:file_tasks"
TOLD_KEY = "config:difference_told"  # which difference a node told last, and when
TOLD_TOGETHER = timedelta(minutes=10)  # the same difference found within: told already
SETTLE = timedelta(minutes=5)  # how long the other node has to apply the same tasks
FOUND_KEY = "config:divergence_found"  # a difference waiting for its settle, kept across a restart

log = logging.getLogger("agentcron.config")


@dataclass(frozen=True)
class Applied:
    """Which node applied which file's tasks last."""

    node_id: str
    host: str
    path: str
    digest: str
    # the file's timezone: (None: the machine's), for commands run without that file
    timezone: str | None = None

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def tasks_digest(tasks: Mapping[str, TaskSpec]) -> str:
    """A digest of a file's tasks as applied (their specs, not the file's bytes)."""
    body = json.dumps(
        {name: spec.model_dump(mode="json") for name, spec in sorted(tasks.items())},
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def loads(raw: str | None) -> Applied | None:
    """The record as stored; None when there is none, or when it cannot be read (a hand
    edit, a damaged row): that is logged, nothing is claimed about it, and the daemon
    writes it afresh at its next apply of its file."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise TypeError(f"a JSON {type(data).__name__}, not an object")
        zone = data.get("timezone")
        return Applied(
            str(data["node_id"]),
            str(data["host"]),
            str(data["path"]),
            str(data["digest"]),
            str(zone) if zone else None,
        )
    except (ValueError, KeyError, TypeError) as exc:
        log.warning(
            "the database's record of the config file its tasks came from (meta %s) "
            "cannot be read (%s: %s); taken as none until a daemon applies its file",
            META_KEY,
            type(exc).__name__,
            exc,
        )
        return None


def other_live_node(
    before: Applied | None,
    mine: Applied,
    nodes: Sequence[NodeInfo],
    now: datetime,
    stale_after: timedelta,
) -> Applied | None:
    """``before`` when it was another node, still running, that applied other tasks."""
    if before is None or before.node_id == mine.node_id or before.digest == mine.digest:
        return None
    if (before.host, before.path) == (mine.host, mine.path):
        return None  # this daemon's own file, before its restart (a kill -9 looks alive)
    for node in nodes:
        if node.node_id == before.node_id:
            return before if node.alive(now, stale_after) else None
    return None


@dataclass(frozen=True)
class Divergence:
    """A difference found when this node applied its file: told if it lasts."""

    words: str
    other: Applied  # the live node whose tasks this node's file replaced
    mine: Applied
    before: str | None  # the record as read before the apply (see first_to_tell)
    found_at: datetime

    def dumps(self) -> str:
        return json.dumps(
            {
                "words": self.words,
                "other": asdict(self.other),
                "mine": asdict(self.mine),
                "before": self.before,
                "found_at": self.found_at.isoformat(),
            },
            sort_keys=True,
        )

    def of_file(self, host: str, path: str) -> bool:
        """Whether it was found applying the file ``path`` on ``host`` (this daemon's,
        before a restart: the node id is new, the file the same)."""
        return (self.mine.host, self.mine.path) == (host, path)


def loads_divergence(raw: str | None) -> Divergence | None:
    """A kept difference; None when there is none or it cannot be read (logged: it is
    then not told, and found again at the next apply that makes it)."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return Divergence(
            str(data["words"]),
            Applied(**data["other"]),
            Applied(**data["mine"]),
            data["before"] if isinstance(data["before"], str) else None,
            datetime.fromisoformat(data["found_at"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        log.warning(
            "the kept config difference (meta %s) cannot be read (%s: %s); dropped",
            FOUND_KEY,
            type(exc).__name__,
            exc,
        )
        return None


def divergence_verdict(
    found: Divergence,
    current: Applied | None,
    nodes: Sequence[NodeInfo],
    now: datetime,
    settle: timedelta,
    stale_after: timedelta,
) -> Literal["wait", "tell", "drop"]:
    """What becomes of ``found``, given the record as it is now (``current``).

    Another node applied since: the same tasks (the change reached it, a rollout) or
    its own again (it finds the difference itself, and tells it): dropped here. Still
    the record of this file's tasks (this node's, or its own again after a restart)
    once ``settle`` has passed, the other node still running: told. The other node
    gone meanwhile: nobody runs other tasks any more, dropped."""
    if current is None or current.digest != found.mine.digest:
        return "drop"
    if not found.of_file(current.host, current.path):
        return "drop"
    alive = any(n.node_id == found.other.node_id and n.alive(now, stale_after) for n in nodes)
    if not alive:
        return "drop"
    return "tell" if now - found.found_at >= settle else "wait"


class MetaRows(Protocol):
    """The store's small key-value rows (its NodeStore part): all this module needs."""

    def get_meta(self, key: str) -> str | None: ...

    def swap_meta(self, key: str, expected: str | None, value: str) -> bool: ...


def first_to_tell(store: MetaRows, before: str | None, mine: Applied, now: datetime) -> bool:
    """Whether this node is the one to tell of the difference it found between its
    file's tasks and ``before`` (the record read before it applied them). Two nodes
    that apply one change at the same moment both find it (outside-in probe: the same
    warning twice, 2 ms apart); the first to claim it tells it. The same difference
    found again later (a node that applies the other file once more) is told again."""
    found = hashlib.sha256(f"{before}|{mine.digest}".encode()).hexdigest()[:16]
    told = store.get_meta(TOLD_KEY)
    if told is not None:
        last, _, at = told.partition("@")
        try:
            recent = now - datetime.fromisoformat(at) < TOLD_TOGETHER
        except (ValueError, TypeError):  # damaged, or hand-edited: told again, said why
            log.warning(
                "the record of the config difference told last (meta %s) cannot be read "
                "(%r); this one is told even if another node told it just now",
                TOLD_KEY,
                told,
            )
            recent = False
        if last == found and recent:
            return False
    return store.swap_meta(TOLD_KEY, told, f"{found}@{now.isoformat()}")


def divergence_text(
    other: Applied, mine: Applied, added: list[str], changed: list[str], removed: list[str]
) -> str:
    """The owner's words for a node whose file's tasks differ from another live node's."""
    did = [
        f"{verb} {_names(names)}"
        for verb, names in (("added", added), ("changed", changed), ("removed", removed))
        if names
    ]
    return (
        f"⚠ agentcron's nodes run different config files: {mine.path} on {mine.host} has "
        f"other tasks than {other.path}, which {other.host} applied; applying it "
        f"{', '.join(did)}, and {other.host} has not applied the same tasks since. Every "
        "node must run the same file: each applies its own when it starts and when its "
        "file changes, so the tasks change with whichever did last."
    )


def _names(names: list[str], most: int = 5) -> str:
    shown = ", ".join(sorted(names)[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
