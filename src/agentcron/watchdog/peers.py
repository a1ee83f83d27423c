"""A node that stopped without a word, told by the nodes still running.

A daemon killed with -9, crashed or gone with its machine tells no one: on one machine
only the dead man's switch (``heartbeat_url``) can. With several nodes on PostgreSQL the
others see its heartbeat stop; they took its runs over (after their leases) and `health`
still said ✔, with the node shown only as `stale` (outside-in probe: two of three nodes
dead, nothing told). One running node — the one with the smallest id, so that two do
not tell it twice — opens an incident for such a node (``task`` "node:ID") and tells
the owner once; the incident closes, and says so, when the node beats again or a
restart of it on its machine marks it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from agentcron.model import Incident, IncidentKind, Message, NodeInfo
from agentcron.notify.messages import render_node, render_node_forgotten
from agentcron.store.base import Store

log = logging.getLogger("agentcron.watchdog")

LOOK_EVERY = timedelta(seconds=10)
FORGOTTEN_EVERY = timedelta(minutes=10)  # looks for alarms of nodes whose record went
OPEN_SCAN = 10_000  # open incidents read by such a look
PREFIX = "node:"

ToChannels = Callable[[Message], list[tuple[str, str, Message]]]


def lost(node: NodeInfo, now: datetime, after: timedelta) -> bool:
    """Gone without stopping: not stopped, and no heartbeat for ``after``."""
    return node.stopped_at is None and now - node.heartbeat_at > after


class PeerNodes:
    """Housekeeping of a running node: tells of the other nodes that went silent."""

    def __init__(
        self,
        store: Store,
        node_id: str,
        to_channels: ToChannels,
        lost_after: timedelta,
        where: Callable[[datetime], str],
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.to_channels = to_channels
        self.lost_after = lost_after
        self.where = where  # a time in the owner's zone
        self._last: datetime | None = None
        self._forgotten_at: datetime | None = None  # the last look for removed nodes

    def check(self, now: datetime) -> None:
        if self._last is not None and now - self._last < LOOK_EVERY:
            return
        self._last = now
        nodes = self.store.nodes()
        live = sorted(n.node_id for n in nodes if n.alive(now, self.lost_after))
        if not live or live[0] != self.node_id:
            return  # the teller is the running node with the smallest id
        # What is open is read again at each look, never kept: another node may have
        # opened or closed one while this one was not the teller, or was frozen (SIGSTOP)
        # and came back the teller still (probe: the ✔ of a frozen node's return never
        # came, its incident opened by another node stayed open 18 minutes).
        open_now = self.store.open_incidents_of_kind(
            [PREFIX + n.node_id for n in nodes], IncidentKind.NODE_LOST
        )
        changed: list[Incident] = []
        messages: list[tuple[str, str, Message]] = []
        self._close_forgotten(now, {PREFIX + n.node_id for n in nodes}, changed, messages)
        for node in nodes:
            scope = PREFIX + node.node_id
            current = open_now.get(scope)
            gone = node.node_id != self.node_id and lost(node, now, self.lost_after)
            if gone and current is None:
                current = Incident(
                    task=scope,
                    kind=IncidentKind.NODE_LOST,
                    opened_at=now,
                    since=node.heartbeat_at,
                    summary=f"{node.host} (pid {node.pid})",
                    updated_at=now,
                )
                changed.append(current)
                messages += self.to_channels(render_node(node, current, now, self.where))
            elif not gone and current is not None:
                # it beats again, or its restart on its machine marked it stopped
                changed.append(replace(current, closed_at=now, updated_at=now))
                messages += self.to_channels(render_node(node, changed[-1], now, self.where))
        if changed:
            self.store.save_incidents(changed, messages, now)

    def _close_forgotten(
        self,
        now: datetime,
        listed: set[str],
        changed: list[Incident],
        messages: list[tuple[str, str, Message]],
    ) -> None:
        """Close the alarms of nodes whose record the retention removed (silent for
        days): no look found them any more, and the alarm stayed open, reminded for
        ever. Once every FORGOTTEN_EVERY, a read of every open incident."""
        if self._forgotten_at is not None and now - self._forgotten_at < FORGOTTEN_EVERY:
            return
        self._forgotten_at = now
        for incident in self.store.incidents(open_only=True, limit=OPEN_SCAN):
            if incident.kind is not IncidentKind.NODE_LOST or incident.task in listed:
                continue
            closed = replace(incident, closed_at=now, updated_at=now)
            changed.append(closed)
            messages += self.to_channels(render_node_forgotten(closed, now))
