"""Reads of every task over a large fleet: the task list, retention, the watchdog's
limits, `agentcron list --json` and a daemon's start-up (issue 16, "flat cost").

    .venv/bin/python bench/task_reads.py                      # 100,000 tasks, ~1 minute
    .venv/bin/python bench/task_reads.py --tasks 30000 --skip daemon
    .venv/bin/python bench/task_reads.py --src /tmp/old/src   # another tree's code
    .venv/bin/python bench/task_reads.py --pg postgresql://postgres@127.0.0.1:5432/test

Every measure runs in a fresh interpreter (``--src``'s ``agentcron`` on its path, this
tree's by default, so the same command measures a commit before a change) over a copy
of one database of ``--tasks`` command tasks (``against_common.build_tasks_db``: the
schedule mix of ``run_bench.py``, nothing due during the run). Reported: wall time,
CPU seconds (user + system, ``getrusage``) and peak RSS of the child.

- ``list``: ``Service.list_tasks()`` (what the API, dashboard and MCP serve).
- ``prune``: ``retention.prune_history`` (the daemon's retention pass; nothing old).
- ``limits``: ``OverdueLimits.smallest`` (the watchdog's rescan for the smallest limit).
- ``cli``: ``python -m agentcron list --json --home H`` end to end, output discarded.
- ``daemon``: ``python -m agentcron run`` over the database: CPU used from spawn until
  three quiet seconds in a row (under 3 % of a core), when that was, and RSS then.

With ``--pg DSN``, ``list``, ``prune`` and ``limits`` also run over the same tasks
written to a fresh PostgreSQL schema. One JSON object on stdout, a summary on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a script: `bench` as a package

from bench.against_common import rss_mb, say  # noqa: E402
from bench.against_idle import settle  # noqa: E402

PARTS = ("list", "prune", "limits", "cli", "daemon")
READY_LOG = "agentcron running as"

_CHILD = r"""
import json, resource, sys, time
from datetime import UTC, datetime
from pathlib import Path

what, db = sys.argv[1], Path(sys.argv[2])
t0 = time.perf_counter()
from agentcron.service import Service

if len(sys.argv) > 3:  # PostgreSQL: DSN and schema
    from agentcron.store.postgres import PostgresStore
    store = PostgresStore(sys.argv[3], schema=sys.argv[4])
else:
    from agentcron.store.sqlite import SQLiteStore
    store = SQLiteStore(db)
ru0 = resource.getrusage(resource.RUSAGE_SELF)
for line in Path("/proc/self/status").read_text().splitlines():
    if line.startswith("VmRSS:"):
        rss_before = round(int(line.split()[1]) / 1024, 1)
t1 = time.perf_counter()
if what == "list":
    got = len(Service(store, db.parent).list_tasks())
elif what == "prune":
    from agentcron.retention import prune_history
    got = prune_history(store, db.parent, datetime.now(UTC)).total
elif what == "limits":
    from agentcron.watchdog.limits import OverdueLimits
    got = str(OverdueLimits(store, Service(store, db.parent).period).smallest(datetime.now(UTC)))
ru1 = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent
status = dict(l.split(":", 1) for l in Path("/proc/self/status").read_text().splitlines())
print(json.dumps({
    "result": got,
    "wall_s": round(time.perf_counter() - t1, 3),
    "cpu_s": round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 3),
    "peak_rss_mb": round(int(status["VmHWM"].split()[0]) / 1024, 1),
    "rss_before_mb": rss_before,
}))
"""


_BUILD = r"""
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, sys.argv[1])
from bench.against_common import build_tasks_db, idle_task_kwargs

n = int(sys.argv[3])
if len(sys.argv) == 4:
    build_tasks_db(Path(sys.argv[2]), n)
else:
    from agentcron.model import TaskSource, TaskSpec
    from agentcron.store.postgres import PostgresStore

    store = PostgresStore(sys.argv[4], schema=sys.argv[5])
    rows = []
    for i in range(n):
        kwargs = {"name": f"idle-{i:06d}", "command": ["true"], **idle_task_kwargs(i)}
        rows.append((TaskSpec.model_validate(kwargs), None))
    store.upsert_many(rows, TaskSource.API, datetime.now(UTC))
    store.close()
"""


def build(path: Path, tasks: int, pg: tuple[str, str] | None = None) -> float:
    """The tasks written by this tree's store, in a child: the bench's own process stays
    small, so its children's peak RSS is theirs (Linux carries it over fork and exec)."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _BUILD, str(HERE.parent), str(path), str(tasks), *(pg or ())],
        env=child_env(HERE.parent / "src"),
        check=True,
        timeout=1800,
    )
    return time.perf_counter() - t0


def child_env(src: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    env.pop("AGENTCRON_HOME", None)
    return env


def in_child(what: str, db: Path, src: Path, pg: tuple[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, what, str(db), *(pg or ())],
        capture_output=True,
        text=True,
        env=child_env(src),
        timeout=900,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def cli_list(home: Path, src: Path) -> dict[str, Any]:
    """`agentcron list --json` as a user runs it, output read and counted; CPU and peak
    RSS are that process's own (``wait4``)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as sink, tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentcron", "list", "--json", "--home", str(home)],
            stdout=sink,
            stderr=errors,
            env=child_env(src),
            cwd=str(home),
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"agentcron list failed: {errors.read()[-2000:]!r}")
        sink.seek(0)
        listed = len(json.load(sink))
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "tasks_listed": listed,
    }


def daemon_startup(home: Path, src: Path) -> dict[str, Any]:
    """A real `agentcron run` over the tasks (a config with none of its own): the CPU
    of its start-up work, counted from spawn until it is quiet, and RSS then."""
    config = home / "agentcron.yaml"
    config.write_text("tasks: {}\n")
    log = home / "daemon.log"
    spawned = time.monotonic()
    command = [sys.executable, "-m", "agentcron", "run", "--config", str(config)]
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*command, "--home", str(home), "--log-level", "info"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=child_env(src),
            cwd=str(home),
        )
    try:
        deadline = time.monotonic() + 120
        while READY_LOG not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"agentcron run did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        running_s = time.monotonic() - spawned
        quiet = settle(proc.pid, 3.0, 120.0)
        with open(f"/proc/{proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime since spawn
        rss = rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {
        "spawn_to_running_log_s": round(running_s, 2),
        "quiet_after_s": round(running_s + quiet["settled_after_s"], 1),
        "quiet": quiet["quiet"],
        "cpu_spawn_to_quiet_s": round(cpu, 2),
        "rss_when_quiet_mb": rss,
    }


def on_postgres(dsn: str, tasks: int, src: Path, scratch: Path) -> dict[str, Any]:
    """``list``, ``prune`` and ``limits`` over ``tasks`` tasks in a fresh schema (written
    by this tree's store: the stored form is the same in the trees compared)."""
    import psycopg

    schema = f"bench_task_reads_{os.getpid()}"
    out: dict[str, Any] = {}
    try:
        say(f"PostgreSQL: writing {tasks:,} tasks")
        out["build_s"] = round(build(scratch / "unused.db", tasks, (dsn, schema)), 1)
        for part in ("list", "prune", "limits"):
            say(f"PostgreSQL: {part}")
            out[part] = in_child(part, scratch / "unused.db", src, (dsn, schema))
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--db", type=Path, help="reuse this tasks database (copied, not changed)")
    ap.add_argument("--src", type=Path, default=HERE.parent / "src", help="agentcron to run")
    ap.add_argument("--skip", default="", help=f"comma-separated, of {','.join(PARTS)}")
    ap.add_argument(
        "--pg",
        metavar="DSN",
        help="also list, prune and read limits over the same tasks on PostgreSQL (a "
        "schema of its own, dropped after)",
    )
    ns = ap.parse_args(argv)
    skip = {s for s in ns.skip.split(",") if s}
    scratch = Path(tempfile.mkdtemp(prefix="agentcron-task-reads-"))
    out: dict[str, Any] = {"tasks": ns.tasks, "src": str(ns.src)}
    try:
        db = ns.db
        if db is None:
            db = scratch / "tasks.db"
            say(f"building {ns.tasks:,} tasks")
            out["build_s"] = round(build(db, ns.tasks), 1)
        for part in PARTS:
            if part in skip:
                continue
            home = scratch / f"home-{part}"
            home.mkdir()
            shutil.copyfile(db, home / "agentcron.db")
            say(f"{part} over {ns.tasks:,} tasks")
            if part == "cli":
                out[part] = cli_list(home, ns.src)
            elif part == "daemon":
                out[part] = daemon_startup(home, ns.src)
            else:
                out[part] = in_child(part, home / "agentcron.db", ns.src)
        if ns.pg:
            out["postgres"] = on_postgres(ns.pg, ns.tasks, ns.src, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for part in PARTS:
        if part in out:
            say(f"  {part:7} {json.dumps(out[part])}")
    for part, got in out.get("postgres", {}).items():
        say(f"  pg {part:7} {json.dumps(got)}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
