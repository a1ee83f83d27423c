"""Chaos soak: real ``agentcron run`` processes, injected faults, and a checker.

    .venv/bin/python bench/soak.py --short                     # CI-sized mix, < 3 minutes
    .venv/bin/python bench/soak.py                             # every scenario, 5 min each
    .venv/bin/python bench/soak.py --minutes 20 --scenario pg-nodes
    .venv/bin/python bench/soak.py --short --scenario sqlite-kill

Scenarios (``--scenario`` takes a comma-separated list; default all):

- ``sqlite-kill``: one daemon on SQLite, hundreds of ``every: 2s..10s`` commands of
  0-3 s, some failing transiently (exit 75), some hanging past their timeout, some
  ignoring SIGTERM; kill -9 of the daemon at random intervals, restarted; the
  notification channel fails for a while now and then;
- ``pg-nodes``: three daemons on one PostgreSQL schema (their own homes, their own host
  names through a UTS namespace when ``unshare`` works), a short lease
  (``AGENTCRON_LEASE``), kill -9 of one node in turn, restarted after 1..15 s;
- ``burst-kill``: every task due at the same second, kill -9 right after the burst;
- ``sqlite-disk``: the home on a small tmpfs: filled up (disk full), then made
  read-only (chmod, the daemon running without CAP_DAC_OVERRIDE), for a while each;
- ``pg-cut``: daemons reach PostgreSQL through a loopback proxy of the soak that
  drops every connection and refuses new ones for a few seconds.

After the faults the daemons run cleanly for a while, then every task is paused in the
config file and the soak waits for the runs in flight to end. Then :mod:`soak_check`
proves what it can from the database and the tasks' traces, prints a table, and the
exit status is non-zero on any violation. Every process the soak started is killed on
exit (Ctrl-C included); all traffic stays on 127.0.0.1. ``--keep`` keeps the folder
(traces, daemon logs, databases) for a look afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak_check import Fault, Result, check, read_db, table
from soak_net import CutProxy, Receiver
from soak_procs import Node, kill_everything

TASK_SCRIPT = Path(__file__).resolve().parent / "soak_task.py"
PG_DSN = os.environ.get("AGENTCRON_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
SCENARIOS = ["sqlite-kill", "pg-nodes", "burst-kill", "sqlite-disk", "pg-cut"]
NONFINAL = ("pending", "running", "retrying")


@dataclass
class Plan:
    """Sizes and times of one scenario, from --short or --minutes."""

    short: bool
    fault_s: float
    clean_s: float
    quiesce_s: float
    keep: bool = False

    def pick(self, short: float, long: float) -> float:
        return short if self.short else long


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- config --------------------------------------------------------------------------


def make_tasks(
    rng: random.Random, count: int, logdir: Path, periods: list[int], sleep_max: float
) -> tuple[dict[str, dict[str, object]], dict[str, float]]:
    tasks: dict[str, dict[str, object]] = {}
    period_of: dict[str, float] = {}
    for i in range(count):
        name = f"t{i:03d}"
        period = rng.choice(periods)
        roll = rng.random()
        sleep, fail, hang, ignore = round(rng.uniform(0, sleep_max), 2), 0, 0, 0
        spec: dict[str, object] = {"every": f"{period}s"}
        if roll < 0.15:
            fail = 40  # 40 % of its slots fail once with exit 75, then succeed on retry
        elif roll < 0.20:
            hang, spec["timeout"] = 1, "2s"  # killed by its timeout, every attempt
        elif roll < 0.25:
            ignore = 1  # ignores SIGTERM: TERM does nothing, KILL after kill_grace
            if rng.random() < 0.4:
                hang, spec["timeout"] = 1, "2s"
        spec["command"] = [
            sys.executable, "-I", "-S", str(TASK_SCRIPT), str(logdir), name,
            str(sleep), str(fail), str(hang), str(ignore),
        ]  # fmt: skip
        tasks[name] = spec
        period_of[name] = float(period)
    return tasks, period_of


def write_config(
    path: Path, tasks: dict[str, dict[str, object]], notify: str, concurrency: int, paused: bool
) -> None:
    body = {
        "notify": [notify],
        "max_concurrency": concurrency,
        "defaults": {
            "retries": 2,
            "retry_backoff": {"base": "1s", "factor": 2, "cap": "2s", "jitter": 0},
            "timeout": "6s",
            "kill_grace": "1s",
            "stuck_after": "1h",
            "paused": paused,
        },
        "tasks": tasks,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=1))  # JSON is YAML 1.2
    tmp.replace(path)  # the daemon never reads half a file


# ---- the run of one scenario ---------------------------------------------------------


class Run:
    """State shared by the phases of one scenario."""

    def __init__(self, name: str, root: Path, plan: Plan, rng: random.Random) -> None:
        self.name = name
        self.root = root / name
        self.logdir = self.root / "traces"
        (self.logdir / "locks").mkdir(parents=True)
        self.plan = plan
        self.rng = rng
        self.receiver = Receiver()
        self.config = self.root / "agentcron.yaml"
        self.nodes: list[Node] = []
        self.faults: list[Fault] = []
        self.tasks: dict[str, dict[str, object]] = {}
        self.periods: dict[str, float] = {}
        self.concurrency = 64
        self.db = ""  # what the checker reads

    def setup(self, count: int, periods: list[int], sleep_max: float = 3.0) -> None:
        self.tasks, self.periods = make_tasks(self.rng, count, self.logdir, periods, sleep_max)
        write_config(self.config, self.tasks, self.receiver.url(), self.concurrency, False)

    def watch(self, until: float) -> None:
        """Sleep until ``until``, restarting (as systemd would) a daemon that exited."""
        while (left := until - time.time()) > 0:
            for node in self.nodes:
                if node.note_exit():
                    log(
                        f"{self.name}: {node.name} exited by itself "
                        f"(rc {node.exits[-1][1]}); restarting it"
                    )
                    node.start()
            time.sleep(min(left, 0.25))

    def flaky_channel(self, at: float) -> None:
        if self.rng.random() < 0.3:
            self.receiver.fail_for(self.plan.pick(4, 10))
            log(f"{self.name}: channel answers 503 for a while")

    def finish(self, started: float, fault_end: float, clean_s: float | None = None) -> Result:
        self.watch(time.time() + (clean_s or self.plan.clean_s))
        window_end = time.time() - 1.5
        write_config(self.config, self.tasks, self.receiver.url(), self.concurrency, True)
        log(f"{self.name}: tasks paused, waiting for runs in flight")
        deadline = time.time() + self.plan.quiesce_s
        time.sleep(3)  # the file is polled every 2 s
        while time.time() < deadline:
            self.watch(time.time() + 1)
            if self._nonfinal() == 0:
                break
        self.watch(time.time() + 3)  # messages of the last runs
        # and what the senders hold back: a channel gets 10 posts a minute from each
        # node, the rest waits for the minute (agentcron.notify.pacing)
        deadline = time.time() + 75
        while time.time() < deadline and self._unsent() != 0:
            self.watch(time.time() + 1)
        check_end = time.time()
        for node in self.nodes:
            node.stop()
        rows = read_db(self.db)
        res = check(
            self.name,
            self.periods,
            window_end,
            rows,
            self.logdir,
            self.receiver.snapshot(),
            self.faults,
            check_end,
        )
        res.seconds = check_end - started
        for node in self.nodes:
            for at, rc in node.exits:
                res.note(f"{node.name} exited by itself at {at:.1f} with rc {rc}")
        self.receiver.close()
        return res

    def _unsent(self) -> int:
        """Messages waiting in the outbox (-1: the database did not answer)."""
        return self._count("outbox", lambda r: r[2] is None and not r[3])

    def _nonfinal(self) -> int:
        """Slots not final yet (-1: the database did not answer)."""
        return self._count("slots", lambda r: r[3] in NONFINAL)

    def _count(self, table: str, which: Callable[[tuple[Any, ...]], bool]) -> int:
        try:
            rows = read_db(self.db)
        except Exception as exc:  # the database may be busy: ask again
            log(f"{self.name}: read failed ({exc})")
            return -1
        return sum(1 for r in rows[table] if which(r))

    def kill_cycle(self, node: Node, down: tuple[float, float]) -> None:
        t_kill = time.time()
        node.kill9()
        self.watch(time.time() + self.rng.uniform(*down))
        node.start()
        self.faults.append(Fault(f"kill9 {node.name}", t_kill, time.time()))


def scenario_sqlite_kill(run: Run) -> Result:
    plan = run.plan
    run.setup(int(plan.pick(60, 200)), [2, 3, 4, 5, 6, 8, 10])
    node = Node("a", run.root, run.config)
    run.nodes, run.db = [node], str(node.home / "agentcron.db")
    started = time.time()
    node.start()
    end = started + plan.fault_s
    while True:
        run.watch(time.time() + run.rng.uniform(*(plan.pick(5, 20), plan.pick(8, 40))))
        if time.time() >= end:
            break
        run.flaky_channel(time.time())
        run.kill_cycle(node, (0.3, 3.0))
        log(f"sqlite-kill: kill -9 and restart #{len(run.faults)}")
    return run.finish(started, time.time())


def scenario_burst_kill(run: Run) -> Result:
    plan = run.plan
    period = int(plan.pick(10, 20))
    count = int(plan.pick(120, 300))
    run.concurrency = count
    run.setup(count, [period], sleep_max=2.0)
    node = Node("a", run.root, run.config)
    run.nodes, run.db = [node], str(node.home / "agentcron.db")
    started = time.time()
    node.start()
    end = started + plan.fault_s
    while True:
        burst = (time.time() // period + 1) * period
        if burst + 3 > end:
            break
        run.watch(burst + run.rng.uniform(0.02, 1.0))
        run.kill_cycle(node, (0.5, 2.0))
        log(f"burst-kill: kill -9 right after the burst at {burst:.0f}, #{len(run.faults)}")
    return run.finish(started, time.time(), clean_s=period + 2)  # a burst after the last kill


def scenario_sqlite_disk(run: Run) -> Result:
    plan = run.plan
    mnt = run.root / "tmpfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "soak", str(mnt)], check=True)
    try:
        run.setup(int(plan.pick(40, 100)), [2, 3, 4, 5, 6])
        # without CAP_DAC_OVERRIDE, root obeys file modes: chmod makes the home read-only
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
        node = Node("a", run.root, run.config, prefix=prefix, home=mnt / "home")
        run.nodes, run.db = [node], str(node.home / "agentcron.db")
        started = time.time()
        node.start()
        end = started + plan.fault_s
        kinds = ["disk-full", "read-only"]
        while True:
            run.watch(time.time() + plan.pick(4, 15))
            length = run.rng.uniform(plan.pick(6, 10), plan.pick(8, 30))
            if time.time() + length + 2 > end:
                break
            kind = kinds[len(run.faults) % 2]
            t0 = time.time()
            log(f"sqlite-disk: {kind} for {length:.0f}s")
            if kind == "disk-full":
                filler = mnt / "filler"
                with contextlib.suppress(OSError), filler.open("wb") as fh:
                    while True:
                        fh.write(b"\0" * (1 << 20))
                run.watch(t0 + length)
                filler.unlink()
            else:
                chmod_tree(node.home, writable=False)
                run.watch(t0 + length)
                chmod_tree(node.home, writable=True)
            run.faults.append(Fault(kind, t0, time.time()))
        res = run.finish(started, time.time())
    finally:
        kill_everything(run.root)
        if plan.keep:
            shutil.copytree(mnt / "home", run.root / "home-copy", dirs_exist_ok=True)
        subprocess.run(["umount", "-l", str(mnt)], check=False)
    return res


def chmod_tree(top: Path, writable: bool) -> None:
    for folder, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            with contextlib.suppress(OSError):
                mode = path.stat().st_mode
                path.chmod(mode | 0o200 if writable else mode & ~0o222)
    with contextlib.suppress(OSError):
        top.chmod(0o755 if writable else 0o555)


@contextlib.contextmanager
def pg_schema(keep: bool) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    schema = f"soak_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield schema
    finally:
        if keep:
            log(f"kept PostgreSQL schema {schema}")
        else:
            with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
                drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
                conn.execute(drop.format(sql.Identifier(schema)))


def dsn_for(schema: str, port: int | None = None) -> str:
    dsn = PG_DSN
    if port is not None:
        dsn = dsn.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}options={quote(f'-csearch_path={schema}', safe='')}"


def host_prefix(name: str) -> list[str]:
    """Run the daemon in a UTS namespace of its own, so its host name differs."""
    probe = subprocess.run(["unshare", "--uts", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return []
    return ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', f"soak-{name}"]


def pg_nodes(run: Run, schema: str, count: int, port: int | None, lease: str) -> None:
    run.db = dsn_for(schema)
    for name in "abc"[:count]:
        node = Node(
            name,
            run.root,
            run.config,
            db=dsn_for(schema, port),
            env={"AGENTCRON_LEASE": lease},
            prefix=host_prefix(name),
        )
        run.nodes.append(node)


def scenario_pg_nodes(run: Run) -> Result:
    plan = run.plan
    with pg_schema(plan.keep) as schema:
        run.setup(int(plan.pick(40, 100)), [2, 3, 4, 5, 6, 8, 10])
        pg_nodes(run, schema, 3, None, "8s")
        started = time.time()
        for node in run.nodes:
            node.start()
        end = started + plan.fault_s
        turn = 0
        while True:
            run.watch(time.time() + run.rng.uniform(plan.pick(3, 20), plan.pick(6, 40)))
            if time.time() >= end:
                break
            node = run.nodes[turn % len(run.nodes)]
            turn += 1
            log(f"pg-nodes: kill -9 {node.name}")
            run.kill_cycle(node, (1.0, plan.pick(6, 15)))
        return run.finish(started, time.time())


def scenario_pg_cut(run: Run) -> Result:
    plan = run.plan
    proxy = CutProxy(("127.0.0.1", int(PG_DSN.split(":")[-1].split("/")[0])))
    try:
        with pg_schema(plan.keep) as schema:
            run.setup(int(plan.pick(30, 80)), [2, 3, 4, 5])
            pg_nodes(run, schema, 2 if plan.short else 3, proxy.port, "10s")
            started = time.time()
            for node in run.nodes:
                node.start()
            end = started + plan.fault_s
            while True:
                run.watch(time.time() + run.rng.uniform(plan.pick(4, 15), plan.pick(6, 30)))
                length = run.rng.uniform(3, 8)
                if time.time() + length >= end:
                    break
                log(f"pg-cut: connections cut for {length:.1f}s")
                t0 = time.time()
                proxy.cut(length)
                run.watch(t0 + length)
                run.faults.append(Fault("pg-cut", t0, time.time()))
            return run.finish(started, time.time())
    finally:
        proxy.close()


RUNNERS = {
    "sqlite-kill": scenario_sqlite_kill,
    "pg-nodes": scenario_pg_nodes,
    "burst-kill": scenario_burst_kill,
    "sqlite-disk": scenario_sqlite_disk,
    "pg-cut": scenario_pg_cut,
}


def pg_reason() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL unreachable at {PG_DSN}: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="CI-sized: < 3 minutes in all")
    parser.add_argument(
        "--minutes", type=float, default=5.0, help="minutes of faults per scenario (long form)"
    )
    parser.add_argument("--scenario", default=",".join(SCENARIOS), help="comma-separated list")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the soak's folder")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.scenario.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in RUNNERS]
    if unknown:
        parser.error(f"unknown scenario {unknown}; choose from {SCENARIOS}")
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    if args.short:
        plan = Plan(True, 15 if len(chosen) > 1 else 40, clean_s=4, quiesce_s=20, keep=args.keep)
    else:
        plan = Plan(False, args.minutes * 60, clean_s=30, quiesce_s=90, keep=args.keep)
    root = Path(tempfile.mkdtemp(prefix="agentcron-soak-"))
    log(f"seed {seed}, folder {root}, scenarios {chosen}")

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    results: list[Result] = []
    skipped: list[str] = []
    try:
        for name in chosen:
            if name.startswith("pg-") and (reason := pg_reason()):
                skipped.append(f"{name}: {reason}")
                continue
            if name == "sqlite-disk" and os.geteuid() != 0:
                skipped.append(f"{name}: needs root (tmpfs mount)")
                continue
            log(f"--- {name}")
            run = Run(name, root, plan, random.Random(f"{seed}-{name}"))
            try:
                results.append(RUNNERS[name](run))
            finally:
                kill_everything(run.root)
            log(f"{name}: done")
    except KeyboardInterrupt:
        log("interrupted: stopping everything the soak started")
        kill_everything(root)
        return 130
    finally:
        kill_everything(root)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(table(results))
    for r in results:
        for note in r.notes:
            print(f"  {r.scenario}: {note}")
        print(f"  {r.scenario}: slot statuses {r.statuses}")
    for s in skipped:
        print(f"  skipped {s}")
    print(f"seed {seed}" + (f", kept {root}" if args.keep else ""))
    return 0 if results and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
