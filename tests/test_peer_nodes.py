"""A node that stopped without a word is told by a running one (outside-in probe: two of
three nodes on PostgreSQL dead, `health` said ✔ and nothing was told)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentcron.model import IncidentKind, Message, NodeInfo
from agentcron.store.base import Store
from agentcron.watchdog.peers import LOOK_EVERY, PeerNodes

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
AFTER = timedelta(seconds=60)


class Told:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, message: Message) -> list[tuple[str, str, Message]]:
        self.lines.append(message.body)
        return [("json://hook", "json://hook", message)]


def _nodes(store: Store, hosts: dict[str, str], alive: tuple[str, ...]) -> datetime:
    """Nodes registered at T0 (pid 42); those ``alive`` beat two minutes later, the
    others stay silent. Returns that later time."""
    for node_id, host in hosts.items():
        store.register_node(NodeInfo(node_id, host, 42, "/h", T0, T0))
    later = T0 + timedelta(minutes=2)
    for node_id in alive:
        store.heartbeat(node_id, later)
    return later


def _peers(store: Store, node_id: str, told: Told) -> PeerNodes:
    return PeerNodes(store, node_id, told, AFTER, lambda at: at.strftime("%H:%M:%S"))


def test_a_silent_node_is_told_once_by_the_running_node_and_its_return_too(
    sqlite_store: Store,
) -> None:
    told = Told()
    later = _nodes(sqlite_store, {"a": "alpha", "b": "beta"}, alive=("a",))
    peers = _peers(sqlite_store, "a", told)
    peers.check(later)  # b is silent since T0
    assert len(told.lines) == 1
    assert told.lines[0].startswith(
        "⚠ agentcron's node beta (pid 42, b) has not been heard from since 12:00:00 and did "
        "not stop:"
    ), told.lines
    [incident] = sqlite_store.incidents("node:b")
    assert incident.kind is IncidentKind.NODE_LOST and incident.is_open
    peers.check(later + LOOK_EVERY)  # still gone: not told again
    assert len(told.lines) == 1
    back = later + 2 * LOOK_EVERY
    sqlite_store.heartbeat("a", back)
    sqlite_store.heartbeat("b", back)
    peers.check(back)
    assert told.lines[1].startswith("✔ agentcron's node beta (pid 42, b), silent for "), told.lines
    assert told.lines[1].endswith("is accounted for: it runs again.")
    assert not sqlite_store.incidents("node:b")[0].is_open
    queued = sqlite_store.claim_outbox("x", back, back + timedelta(minutes=1), 10)
    # written with the incidents (a channel's messages are handed out one at a time)
    assert [m.message.body for m in queued] == told.lines[:1]


def test_only_the_running_node_with_the_smallest_id_tells(sqlite_store: Store) -> None:
    told_a, told_c = Told(), Told()
    later = _nodes(sqlite_store, {n: n for n in ("a", "b", "c")}, alive=("a", "c"))
    _peers(sqlite_store, "c", told_c).check(later)
    assert told_c.lines == []
    _peers(sqlite_store, "a", told_a).check(later)
    assert len(told_a.lines) == 1 and "(pid 42, b)" in told_a.lines[0]


def test_a_node_its_restart_marked_stopped_is_accounted_for_and_a_clean_stop_is_not_told(
    sqlite_store: Store,
) -> None:
    told = Told()
    later = _nodes(sqlite_store, {"a": "alpha", "b": "beta", "c": "gamma"}, alive=("a",))
    sqlite_store.stop_node("c", T0)  # stopped cleanly: nothing to tell
    peers = _peers(sqlite_store, "a", told)
    peers.check(later)
    assert len(told.lines) == 1 and "(pid 42, b)" in told.lines[0]
    sqlite_store.stop_node("b", later)  # its restart found it dead
    peers.check(later + LOOK_EVERY)
    assert told.lines[1].endswith(
        "is accounted for: its restart on its machine found it dead and recorded it stopped."
    ), told.lines
