"""A node that stopped without a word is told by a running one (outside-in probe: two of
three nodes on PostgreSQL dead, `health` said ✔ and nothing was told)."""

from __future__ import annotations

from dataclasses import replace
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
        "not stop: it was killed, crashed or frozen (SIGSTOP, a suspended VM), or its machine"
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


def test_the_teller_frozen_past_its_silence_closes_the_incident_another_node_opened(
    store: Store,
) -> None:
    """Outside-in probe: of three nodes on PostgreSQL, the one with the smallest id was
    frozen (SIGSTOP) past a minute; another told it gone, and after SIGCONT the frozen
    node was the teller again with what it had seen open before its freeze (nothing),
    so its return was never told and the incident stayed open (reminded) for good."""
    told_a, told_b = Told(), Told()
    _nodes(store, {"a": "alpha", "b": "beta"}, alive=())
    peers_a, peers_b = _peers(store, "a", told_a), _peers(store, "b", told_b)
    peers_a.check(T0)  # the teller, nothing to tell
    peers_b.check(T0)
    frozen = T0 + timedelta(minutes=2)  # a is frozen: it neither beats nor looks
    store.heartbeat("b", frozen)
    peers_b.check(frozen)
    assert len(told_b.lines) == 1
    assert told_b.lines[0].startswith("⚠ agentcron's node alpha (pid 42, a) has not been heard")
    assert store.incidents("node:a")[0].is_open
    back = frozen + LOOK_EVERY  # SIGCONT: a beats, and is the teller again
    for node_id in ("a", "b"):
        store.heartbeat(node_id, back)
    peers_b.check(back)
    peers_a.check(back)
    assert told_a.lines == [
        "✔ agentcron's node alpha (pid 42, a), silent for 2 min 10s, is accounted for: "
        "it runs again."
    ]
    [incident] = store.incidents("node:a")
    assert incident.closed_at == back
    for at in (back + LOOK_EVERY, back + 2 * LOOK_EVERY):
        for node_id in ("a", "b"):
            store.heartbeat(node_id, at)
        peers_a.check(at)
        peers_b.check(at)
    assert len(told_a.lines) == 1 and len(told_b.lines) == 1  # nothing twice
    assert len(store.incidents("node:a")) == 1
    queued = store.claim_outbox("x", at, at + timedelta(minutes=1), 10)
    assert [m.message.body for m in queued] == told_b.lines  # one at a time per channel


def test_a_return_another_teller_told_is_not_told_again_by_the_first_one_back(
    store: Store,
) -> None:
    """a tells c gone, then is frozen; b becomes the teller and tells c's return; a,
    back and the teller again, must not tell c's return a second time."""
    told = {n: Told() for n in "abc"}
    _nodes(store, {n: n for n in "abc"}, alive=())
    peers = {n: _peers(store, n, told[n]) for n in "abc"}
    gone = T0 + timedelta(minutes=2)  # c silent
    for node_id in "ab":
        store.heartbeat(node_id, gone)
    for node_id in "abc":
        peers[node_id].check(gone)
    assert len(told["a"].lines) == 1 and "(pid 42, c)" in told["a"].lines[0]
    frozen = gone + timedelta(minutes=2)  # a frozen, c back
    for node_id in "bc":
        store.heartbeat(node_id, frozen)
    peers["b"].check(frozen)
    peers["c"].check(frozen)
    assert sorted(line[:40] for line in told["b"].lines) == [
        "⚠ agentcron's node a (pid 42, a) has not",
        "✔ agentcron's node c (pid 42, c), silent",
    ]
    back = frozen + LOOK_EVERY  # a runs again and is the teller
    for node_id in "abc":
        store.heartbeat(node_id, back)
    for node_id in "abc":
        peers[node_id].check(back)
    assert told["a"].lines[1:] == [
        "✔ agentcron's node a (pid 42, a), silent for 2 min 10s, is accounted for: it runs again."
    ]
    assert told["c"].lines == [] and len(told["b"].lines) == 2
    assert not store.incidents(open_only=True)


def test_the_open_incidents_of_a_kind_are_read_by_task(store: Store) -> None:
    from agentcron.model import Incident

    def lost(task: str) -> Incident:
        return Incident(task=task, kind=IncidentKind.NODE_LOST, opened_at=T0, updated_at=T0)

    saved = store.save_incidents(
        [
            lost("node:a"),
            lost("node:b"),
            Incident(task="node:a", kind=IncidentKind.FAILURE, opened_at=T0, updated_at=T0),
        ],
        [],
        T0,
    )
    store.save_incidents([replace(saved[1], closed_at=T0)], [], T0)
    found = store.open_incidents_of_kind(["node:a", "node:b", "node:c"], IncidentKind.NODE_LOST)
    assert found == {"node:a": saved[0]}
    assert store.open_incidents_of_kind([], IncidentKind.NODE_LOST) == {}


def test_the_alarm_of_a_node_whose_record_was_removed_is_closed_with_a_word(
    store: Store,
) -> None:
    """A node that never came back: after a week its record is pruned, no look found it
    any more, and its alarm stayed open, reminded for ever. It is closed, and said so."""
    told = Told()
    later = _nodes(store, {"a": "alpha", "b": "beta"}, alive=("a",))
    peers = _peers(store, "a", told)
    peers.check(later)
    assert len(told.lines) == 1
    week = later + timedelta(days=8)
    store.heartbeat("a", week)
    assert store.prune_records(week, week, week, week - timedelta(days=7)).nodes == 1
    peers.check(week)
    assert told.lines[1:] == [
        "⚠ agentcron's node beta (pid 42), silent for 8 days 2 min, is no longer tracked: "
        "its record was removed as old, and this alarm is closed. If its machine comes "
        "back, its daemon starts as a new node."
    ], told.lines
    assert not store.incidents("node:b")[0].is_open
    peers.check(week + timedelta(hours=1))  # said once
    assert len(told.lines) == 2
