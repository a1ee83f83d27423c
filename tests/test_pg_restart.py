"""Real processes: the PostgreSQL server restarts under three `agentcron run` daemons.

The daemons stay up, scheduling resumes after the restart without a gap (every fire of
the `every:` tasks from the first to the last one recorded has its slot, once, whatever
the catch-up rules made of it), and each node tells its owner at most once that the
database was unavailable, and then once that it is back (a restart shorter than the
10 s notice delay tells nothing at all).

Restarting the server disturbs everyone else using it, so the test runs only with
``AGENTCRON_TEST_PG_RESTART=1`` (CI, where the server is the tests' own); it restarts
the local cluster that serves ``AGENTCRON_TEST_PG``'s port with ``pg_ctlcluster``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import PG_DSN, require_pg
from daemon_proc import wait_for
from e2e_sink import Sink
from pg_util import PgDaemonProc, admin_execute, dsn_with_schema, fresh_schema

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.serial]

RESTART_ENV = "AGENTCRON_TEST_PG_RESTART"
EVERY = {"tick": 1, "three": 3, "five": 5}  # the grid tasks, seconds apart
CONFIG = """
notify: ["{owner}"]
tasks:
  tick:
    every: 1s
    command: [echo, tick]
  three:
    every: 3s
    command: [sleep, "2"]
  five:
    every: 5s
    command: [echo, five]
    catchup: all
  hourly:
    every: 1h
    command: [echo, hourly]
"""
FINAL = {"succeeded", "missed", "skipped", "superseded"}


def local_cluster() -> tuple[str, str]:
    """(version, name) of the local cluster on the test DSN's port, or skip."""
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        pytest.skip("pg_ctlcluster/pg_lsclusters not found: cannot restart the server here")
    parts = urlsplit(PG_DSN)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1", None):
        pytest.skip(f"AGENTCRON_TEST_PG is not on this machine ({parts.hostname})")
    port = str(parts.port or 5432)
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, timeout=30
    ).stdout
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == port and fields[3] == "online":
            return fields[0], fields[1]
    pytest.skip(f"no online local cluster on port {port} (pg_lsclusters: {listing!r})")


@pytest.fixture
def db_url() -> Iterator[str]:
    if os.environ.get(RESTART_ENV) != "1":
        pytest.skip(
            f"restarts the PostgreSQL server, disturbing everyone using it: set {RESTART_ENV}=1 "
            "where the server is the tests' own (CI)"
        )
    require_pg()
    with fresh_schema() as schema:
        admin_execute([], schema=schema)
        yield dsn_with_schema(schema)


def query(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(db_url, autocommit=True, connect_timeout=5) as conn:
        return list(conn.execute(sql, params).fetchall())


def try_query(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    try:
        return query(db_url, sql, *params)
    except Exception:  # the server is restarting, or the tables are not made yet
        return []


@pytest.mark.timeout(300)
def test_three_daemons_ride_out_a_postgresql_restart(tmp_path: Path, db_url: str) -> None:
    version, cluster = local_cluster()
    env = {"AGENTCRON_SHUTDOWN_GRACE": "3"}
    with Sink() as sink:
        config = CONFIG.format(owner=sink.url("/owner"))
        nodes = [PgDaemonProc(tmp_path / n, config, db_url, extra_env=env) for n in "abc"]

        def logs() -> str:
            return "\n".join(f"--- {d.folder.name}\n{d.daemon_log()[-4000:]}" for d in nodes)

        def ticks_after(moment: float) -> int:
            return len(
                try_query(
                    db_url,
                    "SELECT 1 FROM slots WHERE task = 'tick' AND status = 'succeeded' "
                    "AND scheduled_for > %s",
                    moment,
                )
            )

        def told(word: str) -> Counter[int]:
            """Posts to the owner saying ``word``, per daemon pid."""
            found = Counter[int]()
            for text in sink.texts("/owner"):
                if word in text and (m := re.search(r"\(pid (\d+)\)", text)):
                    found[int(m.group(1))] += 1
            return found

        def waited(predicate: Callable[[], Any], timeout: float, what: str) -> None:
            try:
                wait_for(predicate, timeout=timeout, interval=0.5, what=what)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\nowner got {sink.texts('/owner')}\n{logs()}") from None

        stopping = 0.0
        try:
            for d in nodes:
                d.start()
            waited(
                lambda: len(try_query(db_url, "SELECT 1 FROM nodes WHERE stopped_at IS NULL")) == 3,
                60,
                "three daemons registered",
            )
            waited(lambda: ticks_after(0) >= 3, 30, "ticks before the restart")

            began = time.time()
            restart = subprocess.run(
                ["pg_ctlcluster", version, cluster, "restart"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            back = time.time()
            assert restart.returncode == 0, restart.stderr + restart.stdout

            waited(
                lambda: ticks_after(back) >= 5,
                90,
                f"five ticks after the restart (which took {back - began:.1f}s)",
            )
            pids = [d.proc.pid for d in nodes if d.proc is not None]
            alive = [d.proc is not None and d.proc.poll() is None for d in nodes]
            assert alive == [True, True, True], logs()

            # A node that said "unavailable" says "available again" once its tick works.
            waited(
                lambda: told("available again") == told("database unavailable"),
                30,
                "each outage told has its end told",
            )
            time.sleep(2.0)  # a second message of either kind would have come by now
            stopping = time.time()
        finally:
            for d in nodes:
                d.stop()
        texts = sink.texts("/owner")
        unavailable, available = told("database unavailable"), told("available again")

    ended = time.time()
    detail = f"restart took {back - began:.1f}s; owner got {texts}\n{logs()}"
    assert set(unavailable) <= set(pids) and set(available) <= set(pids), detail
    assert all(n <= 1 for n in unavailable.values()), detail
    assert all(n <= 1 for n in available.values()), detail
    assert available == unavailable, detail

    for task, every in EVERY.items():
        rows = query(db_url, "SELECT scheduled_for, status FROM slots WHERE task = %s", task)
        fires = Counter(round(float(at)) for at, _ in rows)
        assert [at for at, n in fires.items() if n > 1] == [], f"{task}: a fire recorded twice"
        assert all(at % every == 0 for at in fires), f"{task}: off its grid: {sorted(fires)}"
        first, last = min(fires), max(fires)
        missing = sorted(set(range(first, last + 1, every)) - set(fires))
        assert missing == [], f"{task}: fires with no slot {missing}\n{detail}"
        assert last > back, f"{task}: no fire recorded after the restart\n{detail}"
        if task == "tick":  # recorded up to the stop, not only caught up once
            assert last >= stopping - 3, f"tick: last fire {last}, stopped at {stopping}\n{detail}"
        settled = [s for at, s in rows if float(at) < ended - 10 - every]
        assert set(settled) <= FINAL, f"{task}: {Counter(settled)}\n{detail}"
    tick_statuses = query(
        db_url, "SELECT status, COUNT(*) FROM slots WHERE task = 'tick' GROUP BY status"
    )
    assert dict(tick_statuses).get("failed", 0) == 0, detail
    failed_ticks = [d.daemon_log().count("tick failed") for d in nodes]
    print(  # for the record under pytest -s: how much of an outage the daemons saw
        f"restart took {back - began:.1f}s; failed ticks logged per node {failed_ticks}; "
        f"unavailable told {dict(unavailable)}, available again told {dict(available)}; "
        f"tick slots {dict(tick_statuses)}"
    )
