"""Two nodes on one PostgreSQL database with different config files: the second one's
file removed a task the first one's had added, and nothing was told (outside-in probe;
`doctor` on the first node said all was well). Now the node that applies other tasks
than another running node applied says so, once, through the owner's channels."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentcron.config.nodes import Applied, other_live_node, tasks_digest
from agentcron.model import NodeInfo, TaskSpec
from agentcron.store.base import Store
from agentcron.store.postgres import PostgresStore
from conftest import require_pg
from daemon_proc import wait_for
from e2e_sink import Sink
from pg_util import PgDaemonProc, admin_execute, dsn_with_schema, fresh_schema

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
STALE = timedelta(seconds=30)


def _node(node_id: str, heartbeat: datetime, stopped: datetime | None = None) -> NodeInfo:
    return NodeInfo(node_id, "host", 1, "/h", T0, heartbeat, stopped)


def test_only_another_running_node_with_other_tasks_counts() -> None:
    mine = Applied("b", "hb", "/b/agentcron.yaml", "d2")
    other = Applied("a", "ha", "/a/agentcron.yaml", "d1")
    alive = [_node("a", T0)]
    assert other_live_node(other, mine, alive, T0, STALE) == other
    assert other_live_node(None, mine, alive, T0, STALE) is None
    assert other_live_node(Applied("a", "ha", "/a", "d2"), mine, alive, T0, STALE) is None
    assert other_live_node(Applied("b", "hb", "/b", "d1"), mine, alive, T0, STALE) is None
    stopped = [_node("a", T0, stopped=T0)]
    assert other_live_node(other, mine, stopped, T0, STALE) is None
    silent = [_node("a", T0 - timedelta(minutes=5))]
    assert other_live_node(other, mine, silent, T0, STALE) is None
    assert other_live_node(other, mine, [], T0, STALE) is None
    restarted = Applied("a2", "hb", "/b/agentcron.yaml", "d1")  # same machine and file
    assert other_live_node(restarted, mine, [_node("a2", T0)], T0, STALE) is None


def test_the_digest_is_of_the_tasks_not_their_order() -> None:
    a = TaskSpec(name="a", every="1h", command=["true"])
    b = TaskSpec(name="b", every="1h", command=["true"])
    assert tasks_digest({"a": a, "b": b}) == tasks_digest({"b": b, "a": a})
    assert tasks_digest({"a": a}) != tasks_digest({"a": a, "b": b})


@pytest.fixture
def db_url() -> Iterator[str]:
    require_pg()
    with fresh_schema() as schema:
        admin_execute([], schema=schema)
        yield dsn_with_schema(schema)


TICK = '  tick:\n    every: 1h\n    command: ["true"]\n'
ONLY_A = '  only_a:\n    every: 1h\n    command: ["true"]\n'


@pytest.mark.slow
@pytest.mark.postgres
def test_a_node_whose_file_removes_another_nodes_task_says_so(tmp_path: Path, db_url: str) -> None:
    with Sink() as sink:
        notify = f'notify: ["{sink.url("/owner")}"]\n'
        settle = {"AGENTCRON_DIVERGENCE_SETTLE": "2s"}  # b's file differs for good
        a = PgDaemonProc(tmp_path / "a", f"{notify}tasks:\n{TICK}{ONLY_A}", db_url, settle)
        b = PgDaemonProc(tmp_path / "b", f"{notify}tasks:\n{TICK}", db_url, settle)
        store = PostgresStore(db_url)
        try:
            a.start()
            wait_for(lambda: "agentcron running" in a.daemon_log(), what="node a up")
            assert {t.name for t in store.list_tasks()} == {"tick", "only_a"}
            b.start()
            wait_for(lambda: "agentcron running" in b.daemon_log(), what="node b up")
            told = wait_for(
                lambda: [t for t in sink.texts("/owner") if "different config files" in t],
                timeout=30,
                what=f"the divergence told\n{b.daemon_log()[-2000:]}",
            )
            assert len(told) == 1
            assert f"{b.config} on " in told[0] and "removed only_a" in told[0]
            assert f"other tasks than {a.config}" in told[0]
            assert {t.name for t in store.list_tasks()} == {"tick"}
        finally:
            for d in (a, b):
                d.stop()
            store.close()
        assert len([t for t in sink.texts("/owner") if "different config files" in t]) == 1


@pytest.mark.parametrize(
    "raw", ["not json", "[1, 2]", '{"node_id": "a"}', '{"node_id": 1, "host": null}']
)
def test_an_unreadable_record_is_said_in_the_log_and_taken_as_none(
    raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    from agentcron.config.nodes import loads

    assert loads(raw) is None
    assert "cannot be read" in caplog.text and "config:file_tasks" in caplog.text


def test_no_record_is_no_record_and_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    from agentcron.config.nodes import loads

    assert loads(None) is None and loads("") is None
    assert caplog.text == ""
    applied = Applied("a", "h", "/p", "d", "Europe/Berlin")
    assert loads(applied.dumps()) == applied


def test_swap_meta_sets_only_what_is_still_expected(store: Store) -> None:
    assert store.swap_meta("k", None, "a")  # no row yet
    assert not store.swap_meta("k", None, "b")  # there is one now
    assert not store.swap_meta("k", "x", "b")
    assert store.swap_meta("k", "a", "b")
    assert store.get_meta("k") == "b"


def test_of_two_nodes_applying_one_change_at_once_only_the_first_tells(store: Store) -> None:
    """n1 and n2 run one file, n3 another; the file changes and n1 and n2 reload it
    within 2 ms: both read n3's record, both found "changed medium", and the owner got
    the same warning twice (outside-in probe). The first to claim the difference tells
    it; the same difference found again ten minutes later is told again, another at
    once."""
    from agentcron.config.nodes import first_to_tell

    n3 = Applied("n3", "h3", "/c/cfg2.yaml", "d-old").dumps()
    n1 = Applied("n1", "h1", "/c/cfg.yaml", "d-new")
    n2 = Applied("n2", "h2", "/c/cfg.yaml", "d-new")
    assert first_to_tell(store, n3, n1, T0)
    assert not first_to_tell(store, n3, n2, T0 + timedelta(milliseconds=2))
    assert not first_to_tell(store, n3, n1, T0 + timedelta(minutes=9))
    other = Applied("n2", "h2", "/c/cfg.yaml", "d-newer")
    assert first_to_tell(store, n3, other, T0 + timedelta(minutes=9))
    assert first_to_tell(store, n3, n1, T0 + timedelta(minutes=20))


def test_a_told_record_that_cannot_be_read_is_said_and_the_difference_told(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    from agentcron.config.nodes import TOLD_KEY, first_to_tell

    n3 = Applied("n3", "h3", "/c/cfg2.yaml", "d-old").dumps()
    store.set_meta(TOLD_KEY, "abc@not a time")
    assert first_to_tell(store, n3, Applied("n1", "h1", "/c/cfg.yaml", "d-new"), T0)
    assert "cannot be read ('abc@not a time')" in caplog.text


def test_a_difference_is_told_only_if_it_lasts_and_the_other_node_runs() -> None:
    from datetime import UTC, datetime, timedelta

    from agentcron.config.nodes import Divergence, divergence_verdict

    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    mine = Applied("me", "h1", "/a.yaml", "new")
    other = Applied("them", "h2", "/b.yaml", "old")
    found = Divergence("words", other, mine, other.dumps(), now)
    alive = [NodeInfo("them", "h2", 1, "/", now, now)]
    settle, stale = timedelta(minutes=5), timedelta(minutes=30)

    def verdict(current: Applied | None, at: datetime, nodes: list[NodeInfo] = alive) -> str:
        return divergence_verdict(found, current, nodes, at, settle, stale)

    assert verdict(mine, now + timedelta(minutes=1)) == "wait"
    assert verdict(mine, now + timedelta(minutes=5)) == "tell"
    # the other node applied the same tasks: a rollout reaching it
    assert verdict(Applied("them", "h2", "/b.yaml", "new"), now + timedelta(minutes=6)) == "drop"
    # it applied its own again: it finds the difference itself
    assert verdict(other, now + timedelta(minutes=6)) == "drop"
    # it stopped meanwhile (its heartbeat stale): nobody runs other tasks
    gone = [NodeInfo("them", "h2", 1, "/", now, now - timedelta(hours=1))]
    assert verdict(mine, now + timedelta(minutes=6), gone) == "drop"
