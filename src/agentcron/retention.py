"""Pruning kept outputs older than each task's ``keep_outputs``.

Files still waiting to be delivered are never pruned: delivery reads the kept
file, and deleting it would turn a passing outage into a lost output.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

from agentcron.model import TaskSpec

log = logging.getLogger("agentcron.retention")


def prune_outputs(
    home: Path, specs: Iterable[TaskSpec], keep: set[str], now: float | None = None
) -> int:
    """Delete output files older than their task's ``keep_outputs``; returns how many.

    ``keep`` holds paths that must stay (pending deliveries); ``now`` is epoch seconds.
    """
    current = time.time() if now is None else now
    removed = 0
    for spec in specs:
        if spec.keep_outputs is None:
            continue
        folder = home / "outputs" / spec.name
        if not folder.is_dir():
            continue
        cutoff = current - spec.keep_outputs.total_seconds()
        for path in folder.iterdir():
            try:
                if str(path) in keep or not path.is_file() or path.stat().st_mtime >= cutoff:
                    continue
                path.unlink()
                removed += 1
            except OSError as exc:
                log.warning("could not prune %s: %s", path, exc)
    return removed
