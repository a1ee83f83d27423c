"""agentcron benchmarks: print one JSON object with the measurements.

    .venv/bin/python bench/run_bench.py [--tasks 100000] [--burst 10000]
        [--idle-seconds 20] [--only add_tasks,burst,idle_cpu,cold_start]

Every measurement runs in a child process of its own (``--child NAME``) with a
fresh temporary AGENTCRON_HOME and the default SQLite store, so imports, caches
and memory of one measurement never flatter another. The daemon measurements
(``idle_cpu``, ``cold_start``) watch a separate daemon process from outside
through /proc. Speed is measured here and never asserted: see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

T_SCRIPT = time.time()  # first thing the daemon child knows about itself

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
FINAL = ("succeeded", "failed", "skipped", "missed", "expired", "cancelled", "superseded")
MEASUREMENTS = ("add_tasks", "burst", "idle_cpu", "cold_start", "burst_postgres")


# ---- small helpers -------------------------------------------------------------------
def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (the value below which ``pct`` % of the samples lie)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def latency_summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": ms(percentile(values, 50)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(max(values)) if values else math.nan,
    }


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads, from /proc/PID/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    # after "pid (comm) ": state is field 3, utime 14 and stime 15 (1-based)
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def proc_memory_mb(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": out.get("VmRSS", math.nan), "peak_rss_mb": out.get("VmHWM", math.nan)}


def fresh_home(label: str) -> Path:
    """A new, empty AGENTCRON_HOME under the run's scratch folder (the parent deletes it
    after printing: removing 10,000 output folders takes seconds on a busy disk)."""
    scratch = os.environ.get("AGENTCRON_BENCH_SCRATCH") or None
    home = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=scratch))
    os.environ["AGENTCRON_HOME"] = str(home)
    return home


def thread_sched() -> tuple[float, float]:
    """(CPU seconds, seconds spent runnable but waiting for a CPU) of the calling thread.

    The second figure is how much other load on the machine stretched our wall times.
    """
    try:
        fields = Path("/proc/thread-self/schedstat").read_text().split()
    except OSError:
        return math.nan, math.nan
    return int(fields[0]) / 1e9, int(fields[1]) / 1e9


def cpu_now() -> float:
    """CPU seconds used so far by this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def task_kwargs(i: int, month: int) -> dict[str, Any]:
    """A schedule for task ``i`` that cannot fire while the benchmark runs: crons pinned
    to ``month`` (half a year away) and `every` grids anchored in 2030, across zones."""
    zone = ZONES[i % len(ZONES)]
    if i % 2:
        anchor = f"2030-01-01T{i % 24:02d}:{i % 60:02d}:00"
        return {"every": f"{1 + i % 7}d", "anchor": anchor, "timezone": zone}
    return {"cron": f"{i % 60} {i % 24} {1 + i % 28} {month} *", "timezone": zone}


def far_month() -> int:
    """The month six months from now (1-12)."""
    return (datetime.now(UTC).month + 5) % 12 + 1


def noop() -> None:
    """The action of the 100,000 scheduled tasks; they never fall due in a benchmark."""


# ---- 1. add_tasks ----------------------------------------------------------------------
def child_add_tasks(n: int, keep_db: str | None) -> dict[str, Any]:
    """Register ``n`` tasks with ``Scheduler.add`` and persist them exactly as the daemon's
    start does (``Service.upsert_code_tasks``: first fire of each, one transaction)."""
    from agentcron import Scheduler
    from agentcron.service import Defaults, Service
    from agentcron.store.sqlite import SQLiteStore

    home = fresh_home("add")
    sched = Scheduler(home=home)
    cpu0 = cpu_now()
    sched0 = thread_sched()
    t0 = time.perf_counter()
    month = far_month()
    for i in range(n):
        sched.add(f"task-{i:06d}", noop, **task_kwargs(i, month))
    t_added = time.perf_counter()
    store = SQLiteStore(home / "agentcron.db")
    service = Service(store, home, defaults=Defaults(sched.timezone, sched.defaults))
    t_opened = time.perf_counter()
    service.upsert_code_tasks(list(sched.tasks.values()))
    t_done = time.perf_counter()
    cpu = cpu_now() - cpu0
    waited = thread_sched()[1] - sched0[1]
    stored = store.count_tasks()
    store.close()
    if keep_db:
        shutil.copyfile(home / "agentcron.db", keep_db)
    total = t_done - t0
    return {
        "tasks": n,
        "stored": stored,
        "seconds": round(total, 2),
        "tasks_per_s": round(n / total),
        "cpu_seconds": round(cpu, 2),
        "waited_for_cpu_s": round(waited, 2),
        "phases_s": {
            "scheduler_add": round(t_added - t0, 2),
            "open_store": round(t_opened - t_added, 3),
            "upsert_code_tasks": round(t_done - t_opened, 2),
        },
        "method": "Scheduler.add x N, then Service.upsert_code_tasks (what Daemon.start calls)",
    }


# ---- 2. burst --------------------------------------------------------------------------
CALLS: list[tuple[int, float]] = []
WORK_SECONDS = 0.0
SAYS = False  # whether the action returns text (kept in an output file per run)


def hit(i: int) -> str | None:
    """The burst action: note when it was called, optionally do some work and return a
    line of output (an inline call that returns None keeps no output file)."""
    CALLS.append((i, time.time()))  # list.append is atomic; inline calls run in threads
    if WORK_SECONDS:
        time.sleep(WORK_SECONDS)
    return f"slot {i} done" if SAYS else None


def make_bench_daemon(options: Any, on_ready: Callable[[Any], None] | None = None) -> Any:
    """A :class:`~agentcron.daemon.Daemon` that notes each tick (start, duration, report)
    and signals when the first one has completed (``on_ready`` is called right there,
    before any other duty gets the loop). Nothing else differs."""
    from agentcron.daemon import Daemon

    class BenchDaemon(Daemon):
        def __init__(self, opts: Any) -> None:
            super().__init__(opts)
            self.ticks: list[tuple[float, float, Any]] = []
            self.ready = asyncio.Event()
            self.start_seconds = math.nan
            self.ready_at = math.nan

        async def start(self) -> None:
            t0 = time.perf_counter()
            await super().start()
            self.start_seconds = time.perf_counter() - t0
            engine = self.engine
            assert engine is not None
            original = engine.tick

            async def tick() -> Any:
                began = time.time()
                report = await original()
                self.ticks.append((began, time.time() - began, report))
                if not self.ready.is_set():
                    self.ready_at = time.time()
                    self.ready.set()
                    if on_ready is not None:
                        on_ready(self)
                return report

            engine.tick = tick  # type: ignore[method-assign]

    return BenchDaemon(options)


class SlotReader:
    """Read-only questions about a burst's slots, asked beside the daemon: of its SQLite
    file, or of its PostgreSQL schema."""

    def __init__(self, home: Path, pg_dsn: str | None) -> None:
        self._conn: Any
        if pg_dsn is None:
            self._conn = sqlite3.connect(f"file:{home / 'agentcron.db'}?mode=ro", uri=True)
        else:
            import psycopg

            self._conn = psycopg.connect(pg_dsn, autocommit=True)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return list(self._conn.execute(sql).fetchall())

    def left(self) -> int:
        # what the partial indexes answer (slots not yet final), not a count of the table
        return int(
            self.rows(
                "SELECT (SELECT COUNT(*) FROM slots WHERE status IN ('pending', 'retrying'))"
                " + (SELECT COUNT(*) FROM slots WHERE status = 'running')"
            )[0][0]
        )

    def counts(self) -> Counter[str]:
        rows = self.rows("SELECT status, COUNT(*) FROM slots GROUP BY status")
        return Counter({str(status): int(count) for status, count in rows})

    def close(self) -> None:
        self._conn.close()


@contextlib.contextmanager
def pg_schema(dsn: str) -> Iterator[str]:
    """A fresh schema in ``dsn``'s database for one burst; the DSN that uses it."""
    import uuid
    from urllib.parse import quote

    import psycopg
    from psycopg import sql

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        sep = "&" if "?" in dsn else "?"
        yield f"{dsn}{sep}options={quote(f'-csearch_path={schema}', safe='')}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def calibrate_lead(n: int) -> float:
    """Seconds to leave before the burst is due: registering, persisting and starting
    scale with ``n`` and with how busy the machine is, so time 200 registrations first."""
    from agentcron import Scheduler

    probe = Scheduler(home=Path(tempfile.gettempdir()) / "agentcron-bench-probe")
    t0 = time.perf_counter()
    for i in range(200):
        probe.add(f"probe-{i}", hit, at="2099-01-01T00:00:00Z", kwargs={"i": i}, retries=0)
    per_task = (time.perf_counter() - t0) / 200
    # add + upsert + the start's reads of every task cost a few registrations each
    return 3.0 + 6 * n * per_task


async def run_burst(
    n: int,
    concurrency: int,
    work: float,
    cap_seconds: float,
    lead: float | None,
    says: bool = False,
    pg: str | None = None,
) -> dict[str, Any]:
    """``n`` one-shot (`at:`) tasks due at the same instant, run by the real daemon loop
    on the real clock, with an inline python action that notes when it was called; on
    SQLite in the home, or in a fresh schema of the PostgreSQL database ``pg``."""
    if pg is None:
        return await _run_burst(n, concurrency, work, cap_seconds, lead, says, None)
    with pg_schema(pg) as db_url:
        result = await _run_burst(n, concurrency, work, cap_seconds, lead, says, db_url)
    return result | {"store": "postgresql"}


async def _run_burst(
    n: int,
    concurrency: int,
    work: float,
    cap_seconds: float,
    lead: float | None,
    says: bool,
    db_url: str | None,
) -> dict[str, Any]:
    global WORK_SECONDS, SAYS
    from agentcron import Scheduler

    WORK_SECONDS, SAYS = work, says
    CALLS.clear()
    lead = lead if lead is not None else calibrate_lead(n)
    home = fresh_home("burst")
    sched = Scheduler(home=home, db=db_url, max_concurrency=concurrency)
    due = math.ceil(time.time() + lead)
    due_dt = datetime.fromtimestamp(due, UTC)
    t_setup = time.time()
    for i in range(n):
        sched.add(f"burst-{i:05d}", hit, at=due_dt, kwargs={"i": i}, isolation="inline", retries=0)
    daemon = make_bench_daemon(sched._options())  # what Scheduler.run_async builds
    runner = asyncio.create_task(daemon.run())
    await daemon.ready.wait()
    ready_margin = due - time.time()
    db = SlotReader(home, db_url)
    await asyncio.sleep(max(0.0, due - time.time()))
    cpu0 = cpu_now()
    loop0 = thread_sched()
    deadline = due + cap_seconds
    done_at: float | None = None
    while time.time() < deadline:
        # The bench shares the daemon's event loop: it asks cheap questions only.
        if db.left() == 0 and sum(db.counts().values()) >= n:
            done_at = time.time()
            break
        await asyncio.sleep(0.1)
    cpu = cpu_now() - cpu0
    loop1 = thread_sched()
    started_in_cap = len(CALLS)
    daemon.stop_event.set()
    await runner
    counts = db.counts()
    rows = db.rows("SELECT scheduled_for, started_at FROM slots WHERE started_at IS NOT NULL")
    distinct_tasks = db.rows("SELECT COUNT(DISTINCT task) FROM slots")[0][0]
    db.close()
    store_latency = [started - scheduled for scheduled, started in rows]
    called = sorted(t - due for _, t in CALLS)
    recorded = sum(counts.values())
    burst_ticks = [(b, d, r) for b, d, r in daemon.ticks if b >= due - 0.05]
    result: dict[str, Any] = {
        "slots": n,
        "max_concurrency": concurrency,
        "work_ms": work * 1000,
        "returns_output": says,
        "output_files": sum(len(files) for _, _, files in os.walk(home / "outputs")),
        "setup_s": round(due - ready_margin - t_setup, 2),
        "ready_margin_s": round(ready_margin, 2),
        "completed": done_at is not None,
        "all_final_after_s": round(done_at - due, 2) if done_at else None,
        "all_started_s": round(called[-1], 3) if len(called) == n else None,
        "fire_latency_called": latency_summary(called),
        "fire_latency_store": latency_summary(store_latency),
        "cpu_seconds": round(cpu, 2),
        "cpu_ms_per_slot": round(1000 * cpu / max(1, started_in_cap), 2),
        "loop_thread_cpu_s": round(loop1[0] - loop0[0], 2),
        "loop_thread_waited_for_cpu_s": round(loop1[1] - loop0[1], 2),
        "slot_status": dict(counts),
        "slots_recorded": recorded,
        "slots_not_recorded": n - recorded,
        "tasks_with_a_slot": distinct_tasks,
        "calls": len(CALLS),
        "distinct_calls": len({i for i, _ in CALLS}),
        "ticks": len([t for t in burst_ticks if done_at is None or t[0] <= done_at]),
        "slowest_tick_s": round(max((d for _, d, _ in burst_ticks), default=0.0), 3),
    }
    if done_at is None:
        result["started_within_cap"] = started_in_cap
        result["cap_s"] = cap_seconds
        result["starts_per_s"] = round(started_in_cap / cap_seconds, 1)
        result["warning"] = f"not all slots were final within {cap_seconds:.0f}s"
    if ready_margin < 0:
        result["warning"] = "the daemon was not ready before the due instant: raise --lead"
    return result


# ---- 3/4. the daemon process for idle_cpu and cold_start --------------------------------
def child_daemon() -> None:
    """A daemon process over an existing home (``AGENTCRON_HOME``, no code tasks, like
    ``agentcron run`` without a config file); prints READY + timings the moment its first
    tick completes, and DONE + counts after SIGTERM."""
    t_imports = time.time()
    from agentcron import Scheduler

    t_imported = time.time()
    t_run = math.nan

    def ready(daemon: Any) -> None:
        info = {
            "script_started": T_SCRIPT,
            "import_s": round(t_imported - t_imports, 3),
            "daemon_start_s": round(daemon.start_seconds, 3),
            "run_to_first_tick_s": round(daemon.ready_at - t_run, 3),
            "first_tick_s": round(daemon.ticks[0][1], 4),
            "ready_at": daemon.ready_at,
        }
        print("READY " + json.dumps(info), flush=True)

    async def main() -> dict[str, Any]:
        nonlocal t_run
        daemon = make_bench_daemon(Scheduler()._options(), ready)
        t_run = time.time()
        await daemon.run()
        return {"ticks": len(daemon.ticks), "ticks_after_ready": len(daemon.ticks) - 1}

    done = asyncio.run(main())
    home = os.environ["AGENTCRON_HOME"]
    with contextlib.closing(sqlite3.connect(Path(home) / "agentcron.db")) as db:
        done["slots"] = db.execute("SELECT COUNT(*) FROM slots").fetchone()[0]
    print("DONE " + json.dumps(done), flush=True)


def seed_home(label: str, template: Path) -> Path:
    """A fresh home holding a copy of the seeded database (tasks added by add_tasks)."""
    home = fresh_home(label)
    shutil.copyfile(template, home / "agentcron.db")
    return home


class DaemonProcess:
    """``run_bench.py --child daemon`` over a home, watched from outside."""

    def __init__(self, home: Path) -> None:
        env = {**os.environ, "AGENTCRON_HOME": str(home)}
        self.spawned = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE), "--child", "daemon"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(home),
        )

    def wait_ready(self, timeout: float = 300.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = _readline(self.proc.stdout, timeout)
        if not line.startswith("READY "):
            raise RuntimeError(f"the daemon did not start within {timeout:.0f}s: {line!r}")
        info: dict[str, Any] = json.loads(line[6:])
        return info

    def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        for line in out.splitlines():
            if line.startswith("DONE "):
                done: dict[str, Any] = json.loads(line[5:])
                return done
        return {}


def _readline(stream: Any, timeout: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0].strip() if box else ""


def measure_cold_start(template: Path) -> dict[str, Any]:
    home = seed_home("cold", template)
    daemon = DaemonProcess(home)
    try:
        info = daemon.wait_ready()
        cpu = proc_cpu_seconds(daemon.proc.pid)
        memory = proc_memory_mb(daemon.proc.pid)
    finally:
        daemon.stop()
    return {
        "tasks_in_db": _count_tasks(template),
        "process_to_first_tick_s": round(info["ready_at"] - daemon.spawned, 3),
        "interpreter_start_s": round(info["script_started"] - daemon.spawned, 3),
        "import_s": info["import_s"],
        "daemon_start_s": info["daemon_start_s"],
        "run_to_first_tick_s": info["run_to_first_tick_s"],
        "first_tick_s": info["first_tick_s"],
        "cpu_seconds_to_ready": round(cpu, 2),
        "rss_mb_at_ready": memory["rss_mb"],
    }


def measure_idle_cpu(template: Path, seconds: float) -> dict[str, Any]:
    """CPU of an idle daemon over ``seconds`` from its first tick, sampled each second
    so a start-up pass (retention, caches) shows apart from the steady state."""
    home = seed_home("idle", template)
    daemon = DaemonProcess(home)
    samples: list[float] = []
    try:
        daemon.wait_ready()
        pid = daemon.proc.pid
        cpu0 = last = proc_cpu_seconds(pid)
        wall0 = time.monotonic()
        for k in range(1, math.ceil(seconds) + 1):
            time.sleep(max(0.0, wall0 + min(k, seconds) - time.monotonic()))
            now = proc_cpu_seconds(pid)
            samples.append(now - last)
            last = now
        wall = time.monotonic() - wall0
        memory = proc_memory_mb(pid)
    finally:
        done = daemon.stop()
    cpu = last - cpu0
    tail = samples[len(samples) // 2 :]
    return {
        "tasks_in_db": _count_tasks(template),
        "idle_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 3),
        "cpu_percent_of_one_core": round(100 * cpu / wall, 2),
        "cpu_percent_second_half": round(100 * sum(tail) / max(1, len(tail)), 2),
        "cpu_seconds_per_second": [round(x, 2) for x in samples],
        "rss_mb": memory["rss_mb"],
        "peak_rss_mb": memory["peak_rss_mb"],
        "ticks_in_window": done.get("ticks_after_ready"),
        "slots_created": done.get("slots"),
    }


def _count_tasks(db_path: Path) -> int:
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        return int(db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])


# ---- orchestration ---------------------------------------------------------------------
def run_child(args: list[str], timeout: float = 600.0) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(HERE), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[7:])
            return result
    return {"error": f"child {args} exited {proc.returncode}", "stderr": proc.stderr[-2000:]}


def child_main(ns: argparse.Namespace) -> None:
    if ns.child == "daemon":
        child_daemon()
        return
    result: dict[str, Any]
    if ns.child == "add_tasks":
        result = child_add_tasks(ns.tasks, ns.keep_db)
    elif ns.child == "burst":
        result = asyncio.run(
            run_burst(
                ns.burst,
                ns.concurrency,
                ns.work_ms / 1000,
                ns.cap,
                ns.lead,
                ns.says,
                os.environ[PG_ENV] if ns.on_pg else None,
            )
        )
    else:
        raise SystemExit(f"unknown child {ns.child!r}")
    print("RESULT " + json.dumps(result), flush=True)


def burst_runs(ns: argparse.Namespace, postgres: bool = False) -> dict[str, Any]:
    def one(
        slots: int, concurrency: int, work_ms: float, cap: float, says: bool = False
    ) -> dict[str, Any]:
        args = ["--child", "burst", "--burst", str(slots), "--concurrency", str(concurrency)]
        args += ["--work-ms", str(work_ms), "--cap", str(cap)] + (["--says"] if says else [])
        if postgres:
            args += ["--on-pg"]  # the DSN goes by environment, not on command lines
        if ns.lead is not None:
            args += ["--lead", str(ns.lead)]
        return run_child(args)

    c, cap = ns.concurrency, ns.burst_cap
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        # max_concurrency as large as the burst: every slot may be running at once, so
        # "all started" measures the scheduler alone, not how fast runs make room
        "trivial_all_at_once": lambda: one(ns.burst, ns.burst, 0, cap),
        # the same, with a line of output per run: one output file written per run
        "trivial_all_at_once_with_output": lambda: one(ns.burst, ns.burst, 0, cap, says=True),
        "trivial": lambda: one(ns.burst, c, 0, cap),
        "work_5ms": lambda: one(ns.burst, c, 5, cap),
        "simultaneous_1000": lambda: one(min(1000, ns.burst), c, 0, cap),
        "default_concurrency_4": lambda: one(ns.burst, 4, 0, ns.default_cap),
    }
    names = POSTGRES_RUNS if postgres else tuple(runs)
    return {name: runs[name]() for name in names}


POSTGRES_RUNS = ("trivial_all_at_once", "trivial", "simultaneous_1000")
PG_ENV = "AGENTCRON_BENCH_PG"


def machine() -> dict[str, Any]:
    mem = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            mem[key] = f"{int(value.split()[0]) / 1024 / 1024:.1f} GiB"
    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "memory": mem,
        "sqlite": sqlite3.sqlite_version,
        "commit": git,
        "speed_probe_s": speed_probe(),
    }


def speed_probe() -> float:
    """Seconds for a fixed pure-Python loop (best of three): this shared machine's speed
    moves by a quarter from one minute to the next, and figures from two runs can only
    be compared beside it."""
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        total = 0
        for i in range(5_000_000):
            total += i
        best = min(best, time.perf_counter() - t0)
    return round(best, 3)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--only", default="", help=f"comma-separated subset of {MEASUREMENTS}")
    parser.add_argument("--concurrency", type=int, default=1000, help="burst max_concurrency")
    parser.add_argument(
        "--burst-cap", type=float, default=90.0, help="seconds a burst may take to finish"
    )
    parser.add_argument(
        "--default-cap", type=float, default=20.0, help="seconds allowed for the burst at 4"
    )
    parser.add_argument("--lead", type=float, default=None, help="seconds until the burst is due")
    parser.add_argument(
        "--pg",
        default=None,
        metavar="DSN",
        help="a PostgreSQL database for burst_postgres (each burst gets a schema of its own)",
    )
    # internal: one measurement in this (child) process
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--keep-db", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work-ms", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--says", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--on-pg", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cap", type=float, default=60.0, help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.child:
        child_main(ns)
        return

    everything = [m for m in MEASUREMENTS if ns.pg or m != "burst_postgres"]
    wanted = [w.strip() for w in ns.only.split(",") if w.strip()] or everything
    unknown = set(wanted) - set(MEASUREMENTS)
    if unknown:
        parser.error(f"unknown measurement(s) {sorted(unknown)}; choose from {MEASUREMENTS}")
    if "burst_postgres" in wanted and not ns.pg:
        parser.error("burst_postgres needs --pg DSN (a database the bench may add schemas to)")
    internal = {"child", "keep_db", "work_ms", "cap", "says", "on_pg"}
    params = {k: v for k, v in vars(ns).items() if k not in internal} | {"only": wanted}
    if ns.pg:  # the JSON is for sharing: no password in it
        from agentcron.store.postgres import redact_dsn

        params["pg"] = redact_dsn(ns.pg)
        os.environ[PG_ENV] = ns.pg  # for the burst children
    out: dict[str, Any] = {"machine": machine(), "params": params, "loadavg_after": {}}
    began = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="agentcron-bench-"))
    os.environ["AGENTCRON_BENCH_SCRATCH"] = str(scratch)  # children make their homes here
    template = scratch / "seeded.db"
    needs_db = bool({"idle_cpu", "cold_start"} & set(wanted))
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    if "add_tasks" in wanted or needs_db:
        keep = ["--keep-db", str(template)] if needs_db else []
        steps.append(
            (
                "add_tasks",
                lambda: run_child(["--child", "add_tasks", "--tasks", str(ns.tasks), *keep]),
            )
        )
    if "burst" in wanted:
        steps.append(("burst", lambda: burst_runs(ns)))
    if "burst_postgres" in wanted:
        steps.append(("burst_postgres", lambda: burst_runs(ns, postgres=True)))
    if "idle_cpu" in wanted:
        steps.append(("idle_cpu", lambda: measure_idle_cpu(template, ns.idle_seconds)))
    if "cold_start" in wanted:
        steps.append(("cold_start", lambda: measure_cold_start(template)))
    try:
        for name, step in steps:
            t0 = time.monotonic()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            result = step()
            if name in wanted:
                out[name] = result
            out["loadavg_after"][name] = round(os.getloadavg()[0], 2)
            took = time.monotonic() - t0
            print(f"[bench] {name} done in {took:.1f}s", file=sys.stderr, flush=True)
        out["bench_seconds"] = round(time.monotonic() - began, 1)
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    if str(REPO / "src") not in sys.path:
        sys.path.insert(0, str(REPO / "src"))
    main()
