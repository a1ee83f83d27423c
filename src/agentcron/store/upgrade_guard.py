"""No schema upgrade under a node of an older agentcron that still runs on the database.

The first opener of a database written by an older version upgrades it. A command or a
daemon did so under an older daemon that still ran there: through `--db` (which skipped
the look at the home's daemon lock), from another home, or as a second PostgreSQL node.
The older daemon went on without a word on tables it was not written for, `health` said
✔, and its next start was refused; a mixed cluster did its work on the older node only,
with that node's retry spacing and channel names (outside-in probe). The nodes table
says who runs: a node not recorded stopped whose heartbeat is recent (and, on this
machine, whose process is alive) is taken to be running, and the upgrade is refused,
naming it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from agentcron.home import hostname, pid_alive
from agentcron.store.errors import StoreError

# A node heard from this recently may still run (heartbeats come every 6 s; a node is
# called gone by others after 2 × 30 s). One killed without a word stops counting then.
LIVE_WITHIN = 60.0

NODE_ROWS = "SELECT node_id, host, pid, home, heartbeat_at FROM nodes WHERE stopped_at IS NULL"


def refuse_upgrade_under_nodes(
    where: str, version: int, target: int, rows: Sequence[Sequence[Any]], now: float | None = None
) -> None:
    """Raise :class:`StoreError` when one of ``rows`` (:data:`NODE_ROWS`) is a node that
    still runs on the database at schema ``version`` this opener would take to ``target``."""
    now = time.time() if now is None else now
    here = hostname()
    for node_id, host, pid, home, heartbeat in rows:
        try:
            ago = now - float(heartbeat)
            pid = int(pid)
        except (TypeError, ValueError):
            # whether that node runs is not known: upgrading under it is not taken blind
            raise StoreError(
                f"{where} is at schema {version}, and its nodes row {node_id!r} cannot be "
                f"read (pid {str(pid)[:40]!r}, heartbeat {str(heartbeat)[:40]!r}): whether "
                f"that node still runs an older agentcron is not known, so the database was "
                f"not upgraded to schema {target}. Nothing was changed. Correct or delete "
                "that row (it was changed outside agentcron), then start again."
            ) from None
        if ago >= LIVE_WITHIN:
            continue
        if host == here and (pid == os.getpid() or not pid_alive(pid)):
            continue  # this process, or one on this machine that is gone
        raise StoreError(
            f"{where} is at schema {version} and an older agentcron still runs on it: node "
            f"{node_id} (host {host}, pid {pid}, home {home}), heard from {max(0, round(ago))}s "
            f"ago. Upgrading it to schema {target} under that node would leave it on tables "
            "it was not written for. Nothing was changed. Stop every node of the older "
            "version, then start the new one (it upgrades the database) or run this again; "
            f"a node that is gone counts as stopped {LIVE_WITHIN:.0f}s after its last "
            "heartbeat (by the clock of the host that wrote it)."
        )
