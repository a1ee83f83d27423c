"""Helpers shared by the side-by-side benchmark (``bench/against.py``) and its children.

What is measured and how is read from ``/proc``: CPU time and run-queue wait per
thread (``/proc/PID/task/TID/schedstat``, nanoseconds, so a 0.01 % idle figure is
not lost to the 10 ms clock tick of ``/proc/PID/stat``) and voluntary context
switches per thread (``/proc/PID/task/TID/status``): a thread that sleeps and wakes
once switches out voluntarily once, so the sum over a window is the process's
wake-ups. Databases for the history and 100,000-task cases are built here in bulk.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _path in (str(REPO / "src"), str(REPO)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

RESULT = "RESULT "  # a child's last line: RESULT {json}


def say(text: str) -> None:
    print(f"[against] {text}", file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """A child's answer to its parent (one line on stdout)."""
    print(RESULT + json.dumps(result), flush=True)


# ---- numbers ---------------------------------------------------------------------------
def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (the value below which ``pct`` % of the samples lie)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def lateness_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p99/max in milliseconds, and how many samples there were."""
    if not seconds:
        return {"n": 0, "p50_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan}
    return {
        "n": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1000, 2),
        "p99_ms": round(percentile(seconds, 99) * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2),
    }


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# ---- /proc -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ThreadSample:
    cpu_ns: int  # time on a CPU
    wait_ns: int  # time runnable but waiting for a CPU (another process had it)
    voluntary: int  # voluntary context switches: the thread went to sleep
    involuntary: int  # preempted


def thread_samples(pid: int | str = "self") -> dict[int, ThreadSample]:
    """Every live thread of ``pid``: tid -> its counters now. Threads that end between
    two samples take their counts with them (the process totals below do not)."""
    out: dict[int, ThreadSample] = {}
    base = Path(f"/proc/{pid}/task")
    try:
        tids = os.listdir(base)
    except OSError:
        return out
    for tid in tids:
        try:
            sched = (base / tid / "schedstat").read_text().split()
            status = (base / tid / "status").read_text()
        except OSError:
            continue  # ended meanwhile
        vol = invol = 0
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                vol = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                invol = int(line.split()[1])
        out[int(tid)] = ThreadSample(int(sched[0]), int(sched[1]), vol, invol)
    return out


def process_cpu_s(pid: int | str = "self") -> float:
    """User + system CPU of the whole process (ended threads included), from
    /proc/PID/stat: 10 ms resolution, so only for windows of seconds of CPU."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu_s() -> float:
    """CPU seconds of this process so far, all threads (ended ones included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores, all processes), from
    /proc/stat: a window's share not spent by the measured process is what the other
    engineers' work took from the machine meanwhile."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return math.nan


def thread_window(
    before: dict[int, ThreadSample], after: dict[int, ThreadSample], seconds: float
) -> dict[str, Any]:
    """What the threads did between two samples ``seconds`` apart: totals (CPU % of a
    core, wake-ups per second, run-queue wait) and per thread."""
    per: dict[int, dict[str, float]] = {}
    for tid, end in after.items():
        start = before.get(tid, ThreadSample(0, 0, 0, 0))
        per[tid] = {
            "cpu_ms": (end.cpu_ns - start.cpu_ns) / 1e6,
            "wait_ms": (end.wait_ns - start.wait_ns) / 1e6,
            "wakeups": end.voluntary - start.voluntary,
            "preempted": end.involuntary - start.involuntary,
            "new": tid not in before,
        }
    cpu_ms = sum(p["cpu_ms"] for p in per.values())
    wakeups = sum(p["wakeups"] for p in per.values())
    return {
        "seconds": round(seconds, 2),
        "cpu_percent_of_core": round(cpu_ms / 10 / seconds, 4),
        "wakeups_per_s": round(wakeups / seconds, 2),
        "run_queue_wait_ms": round(sum(p["wait_ms"] for p in per.values()), 1),
        "threads_ended_in_window": len(set(before) - set(after)),
        "threads": {
            str(tid): {
                "cpu_percent_of_core": round(p["cpu_ms"] / 10 / seconds, 4),
                "wakeups_per_s": round(p["wakeups"] / seconds, 2),
                "run_queue_wait_ms": round(p["wait_ms"], 1),
                "started_in_window": p["new"],
            }
            for tid, p in sorted(per.items())
        },
    }


class CpuWindow:
    """CPU and run-queue wait of this process between ``start()`` and ``stop()``, with
    the split per thread (named from ``threading`` where Python knows the thread)."""

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.cpu0 = self_cpu_s()
        self.busy0 = machine_busy_s()
        self.threads0 = thread_samples()

    def stop(self) -> dict[str, Any]:
        import threading

        seconds = time.monotonic() - self.t0
        cpu = self_cpu_s() - self.cpu0
        others = machine_busy_s() - self.busy0 - cpu
        window = thread_window(self.threads0, thread_samples(), seconds)
        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id}
        for tid, info in window["threads"].items():
            info["name"] = names.get(int(tid), "(not a threading.Thread)")
        return {
            "seconds": round(seconds, 2),
            "cpu_s": round(cpu, 3),
            "cpu_percent_of_core": round(100 * cpu / seconds, 2),
            "wakeups_per_s": window["wakeups_per_s"],
            "run_queue_wait_ms": window["run_queue_wait_ms"],
            "other_processes_percent_of_core": round(max(0.0, 100 * others / seconds), 1),
            "threads": _busiest(window["threads"]),
        }


def _busiest(threads: dict[str, dict[str, Any]], keep: int = 8) -> list[dict[str, Any]]:
    """Threads by CPU, the busiest ``keep`` listed and the rest summed."""
    rows = sorted(threads.items(), key=lambda kv: -kv[1]["cpu_percent_of_core"])
    out = [{"tid": int(tid), **info} for tid, info in rows[:keep]]
    rest = rows[keep:]
    if rest:
        out.append(
            {
                "tid": None,
                "name": f"{len(rest)} more threads",
                "cpu_percent_of_core": round(sum(r[1]["cpu_percent_of_core"] for r in rest), 4),
                "wakeups_per_s": round(sum(r[1]["wakeups_per_s"] for r in rest), 2),
                "run_queue_wait_ms": round(sum(r[1]["run_queue_wait_ms"] for r in rest), 1),
            }
        )
    return out


# ---- databases -------------------------------------------------------------------------
SLOT_INSERT = (
    "INSERT INTO slots (task, scheduled_for, status, attempts, started_at, finished_at, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def build_history_db(path: Path, slots: int, tasks: int = 1000, days: float = 80.0) -> float:
    """A fresh store at ``path`` with ``tasks`` daily command tasks (next fire tomorrow:
    nothing due) and ``slots`` finished runs with one attempt each, spread over the
    last ``days`` (inside the default keep_history of 90 days, so the daemon's
    retention pass has nothing to remove: what is measured is a daemon that keeps
    this much history). No ANALYZE: agentcron never runs one, so the planner sees
    what a real database shows it. Returns the seconds the build took."""
    from agentcron.model import TaskSource, TaskSpec
    from agentcron.store.sqlite import SQLiteStore

    started = time.perf_counter()
    now = time.time()
    moment = datetime.fromtimestamp(now, UTC)
    store = SQLiteStore(path)
    try:
        specs = [TaskSpec(name=f"hist-{k:05d}", every="1d", command=["true"]) for k in range(tasks)]
        store.upsert_many(
            [(spec, moment + timedelta(days=1)) for spec in specs], TaskSource.API, moment
        )
        per_task = slots // tasks
        span = days * 86400
        db = store._db
        with store._lock:
            db.execute("BEGIN IMMEDIATE")
            rows: list[tuple[Any, ...]] = []
            for j in range(per_task):
                due = now - span + j * span / per_task
                for k, spec in enumerate(specs):
                    at = due + k * 0.001
                    status = "failed" if (j + k) % 17 == 0 else "succeeded"
                    rows.append((spec.name, at, status, 1, at + 0.5, at + 1.5, at))
                if len(rows) >= 100_000:
                    db.executemany(SLOT_INSERT, rows)
                    rows = []
            if rows:
                db.executemany(SLOT_INSERT, rows)
            db.execute(
                "INSERT INTO attempts (slot_id, number, started_at, finished_at, status, node) "
                "SELECT id, 1, started_at, finished_at, status, 'bench' FROM slots"
            )
            db.execute("COMMIT")
    finally:
        store.close()
    return time.perf_counter() - started


def idle_task_kwargs(i: int) -> dict[str, Any]:
    """A schedule for task ``i`` that cannot fire during the benchmark (see
    ``run_bench.task_kwargs``: crons pinned to a month half a year away, ``every``
    grids anchored in 2030, five zones)."""
    from bench.run_bench import far_month, task_kwargs

    return task_kwargs(i, far_month())


def build_tasks_db(path: Path, n: int) -> float:
    """A fresh store at ``path`` holding ``n`` command tasks (source api, as
    ``agentcron add`` makes them) that cannot fire during the benchmark."""
    from agentcron.model import TaskSource, TaskSpec
    from agentcron.schedules.build import build_schedule
    from agentcron.store.sqlite import SQLiteStore

    started = time.perf_counter()
    moment = datetime.now(UTC)
    store = SQLiteStore(path)
    try:
        rows = []
        for i in range(n):
            spec = TaskSpec.model_validate(
                {"name": f"idle-{i:06d}", "command": ["true"], **idle_task_kwargs(i)}
            )
            fire = build_schedule(spec, None).next_after(moment)
            rows.append((spec, fire.at if fire else None))
        store.upsert_many(rows, TaskSource.API, moment)
    finally:
        store.close()
    return time.perf_counter() - started


def aps_trigger(i: int) -> dict[str, Any]:
    """The APScheduler 3 trigger arguments of ``idle_task_kwargs(i)``: the same
    schedule, so both schedulers hold the same 100,000 timers."""
    from zoneinfo import ZoneInfo

    kwargs = idle_task_kwargs(i)
    zone = ZoneInfo(kwargs["timezone"])
    if "cron" in kwargs:
        minute, hour, day, month, _ = kwargs["cron"].split()
        return {
            "trigger": "cron",
            "minute": minute,
            "hour": hour,
            "day": day,
            "month": month,
            "timezone": zone,
        }
    days = int(kwargs["every"].rstrip("d"))
    start = datetime.fromisoformat(kwargs["anchor"]).replace(tzinfo=zone)
    return {"trigger": "interval", "days": days, "start_date": start, "timezone": zone}
