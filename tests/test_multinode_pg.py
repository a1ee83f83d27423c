"""Two real `agentcron run --db postgresql://…` daemons on one database (PRODUCT.md,
"Beyond one machine"): no slot fires twice, and a killed node's run is taken over."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentcron.model import ErrorClass, SlotStatus
from agentcron.store.postgres import PostgresStore
from conftest import require_pg
from daemon_proc import kill_pids_in, wait_for
from pg_util import PgDaemonProc, admin_execute, dsn_with_schema, fresh_schema

CONFIG = """
tasks:
  tick:
    every: 1s
    command: ["sh", "-c", "echo $AGENTCRON_SLOT >> {fires}"]
  long:
    every: 1d
    command: ["sh", "-c", "echo $$ >> {pids}; sleep 3; echo done"]
    retries: 2
    retry_backoff: {{base: 1s, jitter: 0}}
"""


class Cluster:
    """Two daemons, each with its own home, on one PostgreSQL schema."""

    def __init__(self, folder: Path, db_url: str, env: dict[str, str] | None = None) -> None:
        self.fires = folder / "fires"
        self.pids = folder / "pids"
        config = CONFIG.format(fires=self.fires, pids=self.pids)
        self.nodes = [
            PgDaemonProc(folder / name, config, db_url, extra_env=env) for name in ("a", "b")
        ]
        self.store = PostgresStore(db_url)

    def start(self) -> None:
        for d in self.nodes:
            d.start()
        wait_for(
            lambda: len([n for n in self.store.nodes() if n.stopped_at is None]) == 2,
            timeout=30,
            what=f"both daemons registered\n{self.logs()}",
        )
        # and their config brought in (a command does not, on PostgreSQL)
        for d in self.nodes:
            wait_for(lambda d=d: "agentcron running" in d.daemon_log(), what="daemon up")

    def stop(self) -> None:
        for d in self.nodes:
            d.stop()
        kill_pids_in(self.pids)
        self.store.close()

    def logs(self) -> str:
        return "\n".join(f"--- {d.folder.name}\n{d.daemon_log()[-3000:]}" for d in self.nodes)


@pytest.fixture
def db_url() -> Iterator[str]:
    require_pg()
    with fresh_schema() as schema:
        admin_execute([], schema=schema)  # the DSN selects it; the product does not create it
        yield dsn_with_schema(schema)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_daemons_fire_every_slot_exactly_once(tmp_path: Path, db_url: str) -> None:
    cluster = Cluster(tmp_path, db_url)
    try:
        cluster.start()
        wait_for(  # five ticks: about six seconds side by side
            lambda: len(cluster.store.slots("tick", statuses=[SlotStatus.SUCCEEDED])) >= 5,
            timeout=40,
            what=f"five ticks\n{cluster.logs()}",
        )
        for d in cluster.nodes:
            d.stop()
        fired = Counter(cluster.fires.read_text().split()) if cluster.fires.exists() else {}
        ticks = cluster.store.slots("tick", limit=1000)
        succeeded = {str(s.id) for s in ticks if s.status is SlotStatus.SUCCEEDED}
        assert len(succeeded) >= 5, cluster.logs()
        assert [slot for slot, n in fired.items() if n > 1] == [], "a slot fired twice"
        assert set(fired) == succeeded
        assert all(s.attempts <= 1 for s in ticks)
        nodes = cluster.store.nodes()
        assert len(nodes) == 2 and all(n.stopped_at is not None for n in nodes)
        assert {n.pid for n in nodes} == {d.proc.pid for d in cluster.nodes if d.proc}
    finally:
        cluster.stop()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_killed_daemons_run_is_taken_over_after_its_lease(tmp_path: Path, db_url: str) -> None:
    cluster = Cluster(tmp_path, db_url, env={"AGENTCRON_LEASE": "3"})
    try:
        cluster.start()
        cluster.nodes[0].cli("trigger", "long")
        running = wait_for(
            lambda: [s for s in cluster.store.active_slots("long") if s.lease_owner],
            what="long is running on some node",
        )[0]
        owner = next(n for n in cluster.store.nodes() if n.node_id == running.lease_owner)
        victim = next(d for d in cluster.nodes if d.proc and d.proc.pid == owner.pid)
        survivor = next(d for d in cluster.nodes if d is not victim)
        wait_for(
            lambda: cluster.pids.exists() and cluster.pids.read_text().strip(),
            what="long's command started",
        )
        victim.kill9()
        kill_pids_in(cluster.pids)  # the dead daemon's orphaned command
        done = wait_for(
            lambda: [s for s in cluster.store.slots("long") if s.status is SlotStatus.SUCCEEDED],
            timeout=15,
            what=f"the survivor took the run over\n{cluster.logs()}",
        )
        assert len(cluster.store.slots("long")) == 1  # one record for the slot, not two
        first, second = cluster.store.attempts(done[0].id)
        assert (first.node, first.error_class) == (running.lease_owner, ErrorClass.WORKER_LOST)
        assert second.status == "succeeded"
        assert survivor.proc is not None
        took_over = next(n for n in cluster.store.nodes() if n.pid == survivor.proc.pid)
        assert second.node == took_over.node_id
    finally:
        cluster.stop()
