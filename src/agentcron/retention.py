"""Pruning kept outputs older than each task's ``keep_outputs``.

Files still waiting to be delivered are never pruned: delivery reads the kept
file, and deleting it would turn a passing outage into a lost output.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from agentcron.model import TaskRecord

log = logging.getLogger("agentcron.retention")


def prune_outputs(
    home: Path,
    task_of: Callable[[str], TaskRecord | None],
    keep: set[str],
    now: float | None = None,
) -> int:
    """Delete output files older than their task's ``keep_outputs``; returns how many.

    Walks the output folders (one per task that ever kept output) and looks each
    task up with ``task_of``; a removed task's outputs are left alone. ``keep`` holds
    paths that must stay (pending deliveries); ``now`` is epoch seconds.
    """
    current = time.time() if now is None else now
    removed = 0
    root = home / "outputs"
    if not root.is_dir():
        return 0
    for folder in sorted(root.iterdir()):
        rec = task_of(folder.name) if folder.is_dir() else None
        if rec is None or rec.spec.keep_outputs is None:
            continue
        cutoff = current - rec.spec.keep_outputs.total_seconds()
        for path in folder.iterdir():
            try:
                if str(path) in keep or not path.is_file() or path.stat().st_mtime >= cutoff:
                    continue
                path.unlink()
                removed += 1
            except OSError as exc:
                log.warning("could not prune %s: %s", path, exc)
    return removed
