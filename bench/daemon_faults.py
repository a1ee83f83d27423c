"""The daemon's own faults, measured on real `agentcron run` processes.

Three measurements (issue 11, "What must be shown"), each repeated:

- ``waiting_cpu``: the daemon's CPU while a slot waits for room (``max_concurrency: 1``,
  a ``sleep`` holding the one slot, an ``every: 1s`` task whose slots wait), over a
  window of ``--window`` seconds once the wait has begun; ``idle_cpu``: the same
  window with nothing due. Read from ``/proc/PID/stat`` (utime + stime, all threads
  of the daemon; its commands' CPU is not in it).
- ``outage``: another SQLite connection holds the write lock (``BEGIN IMMEDIATE``)
  for ``--hold`` seconds; seconds from taking it to the owner's "database
  unavailable" post, and from releasing it to the "available again" post (a local
  webhook receiver, polled every 20 ms).
- ``takeover``: two daemons on one PostgreSQL schema (``AGENTCRON_LEASE=10``), a
  triggered long command on one of them, ``kill -9`` of that daemon; seconds until
  its attempt is recorded ``worker_lost`` and until a second attempt runs on the
  other node (read from the tables; the times the daemons wrote there).

    .venv/bin/python bench/daemon_faults.py [--only waiting_cpu,idle_cpu,outage,takeover]
        [--pg postgresql://postgres@127.0.0.1:5432/test]

Progress goes to stderr, one JSON object to stdout (each run, then median/min/max).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
DEFAULT_PG = os.environ.get("AGENTCRON_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MEASUREMENTS = ("waiting_cpu", "idle_cpu", "outage", "takeover")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def wait_until(
    predicate: Callable[[], Any],
    timeout: float,
    what: str | Callable[[], str],
    every: float = 0.1,
) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise RuntimeError(f"{what if isinstance(what, str) else what()}: not within {timeout:.0f}s")


class Daemon:
    """One `agentcron run` process with its own folder, home and config file."""

    def __init__(
        self, folder: Path, config: str, db: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.home = folder / "home"
        self.config = folder / "agentcron.yaml"
        self.config.write_text(config)
        self.db = db
        self.env = {**os.environ, **(env or {})}
        self.env.pop("AGENTCRON_HOME", None)
        self.log = folder / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _common(self) -> list[str]:
        args = ["--config", str(self.config), "--home", str(self.home)]
        return args + (["--db", self.db] if self.db else [])

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agentcron", "run", *self._common()],
                cwd=self.folder,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cli(self, *args: str) -> str:
        res = subprocess.run(
            [sys.executable, "-m", "agentcron", *args, *self._common()],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if res.returncode != 0:
            raise RuntimeError(f"agentcron {' '.join(args)}: {res.stderr}{res.stdout}")
        return res.stdout

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` (its reaped children not included)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def sqlite_rows(home: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A read-only look at a daemon's SQLite database."""
    try:
        db = sqlite3.connect(f"file:{home / 'agentcron.db'}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return []  # not created yet
    try:
        return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []  # no tables yet
    finally:
        db.close()


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "n": len(values),
    }


# --- 1. CPU while a slot waits for room, and idle ------------------------------------

WAITING_CONFIG = """
max_concurrency: 1
tasks:
  hold:
    every: 1d
    command: [sleep, "{sleep}"]
    timeout: 1h
  beat:
    every: 1s
    command: [echo, beat]
"""

IDLE_CONFIG = """
tasks:
  rare:
    cron: "0 3 29 2 *"
    command: [echo, rare]
"""


def measure_cpu(folder: Path, waiting: bool, window: float) -> dict[str, Any]:
    config = WAITING_CONFIG.format(sleep=int(window) + 60) if waiting else IDLE_CONFIG
    d = Daemon(folder, config)
    d.start()
    try:
        wait_until(
            lambda: sqlite_rows(d.home, "SELECT 1 FROM nodes"), 30, lambda: f"daemon up\n{d.tail()}"
        )
        if waiting:
            d.cli("trigger", "hold")
            wait_until(
                lambda: sqlite_rows(
                    d.home, "SELECT 1 FROM slots WHERE task = 'hold' AND status = 'running'"
                ),
                30,
                lambda: f"hold running\n{d.tail()}",
            )
            wait_until(
                lambda: sqlite_rows(
                    d.home, "SELECT 1 FROM slots WHERE task = 'beat' AND status = 'pending'"
                ),
                30,
                lambda: f"a beat slot waiting\n{d.tail()}",
            )
        time.sleep(2.0)  # past the start-up and the trigger's own writes
        start_cpu, start = cpu_seconds(d.pid), time.monotonic()
        per_second = []
        last = start_cpu
        for i in range(1, int(window) + 1):
            time.sleep(max(0.0, start + i - time.monotonic()))
            now_cpu = cpu_seconds(d.pid)
            per_second.append(round((now_cpu - last) * 1000))
            last = now_cpu
        elapsed = time.monotonic() - start
        used = last - start_cpu
        statuses = dict(
            sqlite_rows(d.home, "SELECT task || ':' || status, COUNT(*) FROM slots GROUP BY 1")
        )
        if not d.alive():
            raise RuntimeError(f"daemon died\n{d.tail()}")
    finally:
        d.stop()
    return {
        "window_s": round(elapsed, 2),
        "cpu_s": round(used, 3),
        "percent_of_one_core": round(100 * used / elapsed, 3),
        "cpu_ms_per_second": per_second,
        "slots": statuses,
    }


# --- 2. A database outage and the owner's messages -----------------------------------

OUTAGE_CONFIG = """
notify: ["{url}"]
tasks:
  beat:
    every: 1s
    command: [echo, beat]
"""


def measure_outage(folder: Path, hold: float) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from e2e_sink import Sink

    def told(word: str) -> list[str]:
        return [t for t in sink.texts("/owner") if word in t]

    with Sink() as sink:
        d = Daemon(folder, OUTAGE_CONFIG.format(url=sink.url("/owner")))
        d.start()
        try:
            wait_until(
                lambda: (
                    len(sqlite_rows(d.home, "SELECT 1 FROM slots WHERE status = 'succeeded'")) >= 2
                ),
                30,
                lambda: f"beats recorded\n{d.tail()}",
            )
            lock = sqlite3.connect(d.home / "agentcron.db", isolation_level=None, timeout=30)
            lock.execute("BEGIN IMMEDIATE")
            held_at, held_wall = time.monotonic(), time.time()
            to_unavailable: float | None = None
            while time.monotonic() < held_at + hold:  # the lock is held ``hold`` s in any case
                if to_unavailable is None and told("database unavailable"):
                    to_unavailable = time.monotonic() - held_at
                time.sleep(0.02)
            lock.execute("ROLLBACK")
            released_at = time.monotonic()
            lock.close()
            wait_until(lambda: told("available again"), 60, "recovery told", every=0.02)
            to_available = time.monotonic() - released_at
            time.sleep(1.0)  # a second message of either kind would show by now
            texts = sink.texts("/owner")
            alive = d.alive()
        finally:
            d.stop()
    return {
        "held_s": round(released_at - held_at, 2),
        "lock_to_unavailable_s": None if to_unavailable is None else round(to_unavailable, 3),
        "release_to_available_s": round(to_available, 3),
        "unavailable_posts": len([t for t in texts if "database unavailable" in t]),
        "available_posts": len([t for t in texts if "available again" in t]),
        "stall_posts": len([t for t in texts if "scheduler stalled" in t]),
        "daemon_alive": alive,
        "lock_taken_at": datetime.fromtimestamp(held_wall, UTC).isoformat(timespec="milliseconds"),
        "unavailable_text": next((t for t in texts if "database unavailable" in t), ""),
        "available_text": next((t for t in texts if "available again" in t), ""),
    }


# --- 3. Takeover of a dead node's run on PostgreSQL -----------------------------------

TAKEOVER_CONFIG = """
tasks:
  long:
    every: 1h
    command: [sleep, "600"]
    retries: 3
    retry_backoff: {base: 1s, jitter: 0}
"""


@contextmanager
def pg_schema(dsn: str) -> Iterator[tuple[str, Any]]:
    """A fresh schema, the URL whose connections use it, and a read-only-by-use
    connection to it; dropped afterwards."""
    import psycopg
    from psycopg import sql

    schema = f"bench_faults_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    sep = "&" if "?" in dsn else "?"
    url = f"{dsn}{sep}options={quote(f'-csearch_path={schema}', safe='')}"
    conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
    try:
        yield url, conn
    finally:
        conn.close()
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def measure_takeover(folder: Path, dsn: str, lease: float, rng: random.Random) -> dict[str, Any]:
    env = {"AGENTCRON_LEASE": str(lease), "AGENTCRON_SHUTDOWN_GRACE": "1"}
    with pg_schema(dsn) as (url, conn):

        def rows(query: str, *params: Any) -> list[tuple[Any, ...]]:
            try:
                return list(conn.execute(query, params).fetchall())
            except Exception:  # the tables may not exist yet
                return []

        nodes = [Daemon(folder / name, TAKEOVER_CONFIG, db=url, env=env) for name in "ab"]
        try:
            for d in nodes:
                d.start()
            wait_until(
                lambda: len(rows("SELECT 1 FROM nodes WHERE stopped_at IS NULL")) == 2,
                60,
                lambda: "both nodes registered\n" + "\n".join(d.tail() for d in nodes),
            )
            nodes[0].cli("trigger", "long")
            slot_id, owner = wait_until(
                lambda: next(
                    iter(
                        rows(
                            "SELECT id, lease_owner FROM slots WHERE task = 'long' "
                            "AND status = 'running' AND lease_owner IS NOT NULL"
                        )
                    ),
                    None,
                ),
                30,
                "long running",
            )
            (pid,) = rows("SELECT pid FROM nodes WHERE node_id = %s", owner)[0]
            victim = next(d for d in nodes if d.pid == pid)
            survivor = next(d for d in nodes if d is not victim)
            wait_until(lambda: list((victim.home / "runs").glob("*.json")), 30, "command started")
            # Kill at a random phase of the lease's renewal cycle (renewed every lease/3).
            time.sleep(rng.uniform(0.0, lease / 3))
            ((expires,),) = rows("SELECT lease_expires_at FROM slots WHERE id = %s", slot_id)
            assert victim.proc is not None
            killed_at = time.time()
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(10)
            second = wait_until(
                lambda: next(
                    iter(
                        rows(
                            "SELECT started_at, node FROM attempts WHERE slot_id = %s "
                            "AND number = 2",
                            slot_id,
                        )
                    ),
                    None,
                ),
                lease * 3 + 30,
                lambda: "second attempt\n" + survivor.tail(),
                every=0.05,
            )
            seen_at = time.time()
            ((lost_at, lost_class, first_node),) = rows(
                "SELECT finished_at, error_class, node FROM attempts WHERE slot_id = %s "
                "AND number = 1",
                slot_id,
            )
            ((survivor_id,),) = rows("SELECT node_id FROM nodes WHERE pid = %s", survivor.pid)
            ((status,),) = rows("SELECT status FROM slots WHERE id = %s", slot_id)
            slots = rows("SELECT COUNT(*) FROM slots WHERE task = 'long'")[0][0]
        finally:
            for d in nodes:
                d.stop()
    return {
        "lease_left_at_kill_s": round(float(expires) - killed_at, 3),
        "kill_to_worker_lost_s": round(float(lost_at) - killed_at, 3),
        "kill_to_second_attempt_s": round(float(second[0]) - killed_at, 3),
        "kill_to_seen_s": round(seen_at - killed_at, 3),
        "first_attempt_on_killed_node": first_node == owner,
        "first_attempt_class": lost_class,
        "second_attempt_on_survivor": second[1] == survivor_id,
        "slot_status": status,
        "slots_of_task": slots,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(MEASUREMENTS))
    parser.add_argument("--window", type=float, default=30.0, help="CPU window, seconds")
    parser.add_argument("--hold", type=float, default=25.0, help="write lock held, seconds")
    parser.add_argument("--lease", type=float, default=10.0, help="AGENTCRON_LEASE")
    parser.add_argument("--cpu-repeats", type=int, default=3)
    parser.add_argument("--outage-repeats", type=int, default=3)
    parser.add_argument("--takeover-repeats", type=int, default=5)
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL database for takeover")
    parser.add_argument("--seed", type=int, default=11)
    ns = parser.parse_args()
    wanted = [m.strip() for m in ns.only.split(",") if m.strip()]
    unknown = set(wanted) - set(MEASUREMENTS)
    if unknown:
        parser.error(f"unknown measurement(s): {', '.join(sorted(unknown))}")
    rng = random.Random(ns.seed)
    began = time.monotonic()
    out: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg(),
        },
        "params": {k: v for k, v in vars(ns).items() if k != "pg"},
    }
    with tempfile.TemporaryDirectory(prefix="agentcron-faults-") as tmp:
        base = Path(tmp)
        plan: list[tuple[str, int, Callable[[Path], dict[str, Any]]]] = []
        if "waiting_cpu" in wanted:
            plan.append(("waiting_cpu", ns.cpu_repeats, lambda f: measure_cpu(f, True, ns.window)))
        if "idle_cpu" in wanted:
            plan.append(("idle_cpu", ns.cpu_repeats, lambda f: measure_cpu(f, False, ns.window)))
        if "outage" in wanted:
            plan.append(("outage", ns.outage_repeats, lambda f: measure_outage(f, ns.hold)))
        if "takeover" in wanted:
            plan.append(
                (
                    "takeover",
                    ns.takeover_repeats,
                    lambda f: measure_takeover(f, ns.pg, ns.lease, rng),
                )
            )
        for name, repeats, measure in plan:
            runs = []
            for i in range(repeats):
                say(f"{name} {i + 1}/{repeats}")
                result = measure(base / f"{name}-{i}")
                brief = {k: v for k, v in result.items() if k != "cpu_ms_per_second"}
                say(f"  {json.dumps(brief, ensure_ascii=False)}")
                runs.append(result)
            keys = [k for k in runs[0] if k.endswith("_s") and k != "window_s"]
            keys += ["percent_of_one_core"] if "percent_of_one_core" in runs[0] else []
            out[name] = {
                "runs": runs,
                "summary": {k: summary([r[k] for r in runs if r[k] is not None]) for k in keys},
            }
    out["total_s"] = round(time.monotonic() - began, 1)
    out["machine"]["loadavg_at_end"] = os.getloadavg()
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
