"""Reads of every task over a large fleet: the task list, retention, the watchdog's
limits, `agentcron list --json` and a daemon's start-up (issue 16, "flat cost").

    .venv/bin/python bench/task_reads.py                      # 100,000 tasks, ~1 minute
    .venv/bin/python bench/task_reads.py --tasks 30000 --skip daemon
    .venv/bin/python bench/task_reads.py --src /tmp/old/src   # another tree's code

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

One JSON object on stdout, a table on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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

from bench.against_common import build_tasks_db, rss_mb, say  # noqa: E402
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
from agentcron.store.sqlite import SQLiteStore

store = SQLiteStore(db)
ru0 = resource.getrusage(resource.RUSAGE_SELF)
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
print(json.dumps({
    "result": got,
    "wall_s": round(time.perf_counter() - t1, 3),
    "cpu_s": round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 3),
    "peak_rss_mb": round(ru1.ru_maxrss / 1024, 1),
    "rss_before_mb": round(ru0.ru_maxrss / 1024, 1),
}))
"""


def child_env(src: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    env.pop("AGENTCRON_HOME", None)
    return env


def in_child(what: str, db: Path, src: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, what, str(db)],
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
    """`agentcron list --json` as a user runs it; CPU and peak RSS from the child's
    rusage (this process has no other children meanwhile)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "agentcron", "list", "--json", "--home", str(home)],
        capture_output=True,
        env=child_env(src),
        cwd=str(home),
        timeout=900,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"agentcron list failed: {proc.stderr[-2000:]!r}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),  # largest child so far
        "tasks_listed": len(json.loads(proc.stdout)),
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--db", type=Path, help="reuse this tasks database (copied, not changed)")
    ap.add_argument("--src", type=Path, default=HERE.parent / "src", help="agentcron to run")
    ap.add_argument("--skip", default="", help=f"comma-separated, of {','.join(PARTS)}")
    ns = ap.parse_args(argv)
    skip = {s for s in ns.skip.split(",") if s}
    scratch = Path(tempfile.mkdtemp(prefix="agentcron-task-reads-"))
    out: dict[str, Any] = {"tasks": ns.tasks, "src": str(ns.src)}
    try:
        db = ns.db
        if db is None:
            db = scratch / "tasks.db"
            say(f"building {ns.tasks:,} tasks")
            out["build_s"] = round(build_tasks_db(db, ns.tasks), 1)
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
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for part in PARTS:
        if part in out:
            say(f"  {part:7} {json.dumps(out[part])}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
