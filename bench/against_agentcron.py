"""agentcron's side of the side-by-side benchmark: one workload per child process.

Called by ``bench/against.py`` as ``against.py --child agentcron.NAME --params JSON``;
each function here returns the JSON-able result the parent prints. The daemon is the
one ``Scheduler.run_async`` builds (``Daemon(scheduler._options())``), held directly
so that its loop passes can be counted; the idle measurements run the real
``agentcron run`` process instead (see ``against_idle``).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import math
import os
import pstats
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.against_common import CpuWindow, idle_task_kwargs, lateness_summary, rss_mb, self_cpu_s
from bench.against_sql import StatementLog
from bench.against_whatif import apply as apply_what_if

CALLS: list[tuple[int, float]] = []  # (task index, time.time() when the function ran)


def fire(i: int) -> None:
    """The steady tasks' action: note when it ran (list.append is atomic across the
    inline threads); it returns nothing, like most scheduled jobs."""
    CALLS.append((i, time.time()))


def noop() -> None:
    """The action of tasks registered only to be held in memory."""


def fresh_home(label: str) -> Path:
    scratch = os.environ.get("AGENTCRON_BENCH_SCRATCH") or None
    home = Path(tempfile.mkdtemp(prefix=f"ac-{label}-", dir=scratch))
    os.environ["AGENTCRON_HOME"] = str(home)
    return home


# ---- 1. the tick's statements against history -------------------------------------------
def tick_costs(params: dict[str, Any]) -> dict[str, Any]:
    """Median cost of each read an idle daemon makes on every tick (the loop) or every
    few seconds (the watchdog), on a copy of the database."""
    from agentcron.store.sqlite import SQLiteStore

    home = fresh_home("claim")
    shutil.copyfile(params["db"], home / "agentcron.db")
    store = SQLiteStore(home / "agentcron.db")
    samples = int(params.get("samples", 200))
    now = datetime.now(UTC)
    lease = now + timedelta(minutes=1)

    def med_us(call: Callable[[], object]) -> float:
        """Median of ``samples`` calls after 3 warm-up ones, or of as many as fit in a
        second (at least 5): a read that walks a million rows takes 50 ms."""
        for _ in range(3):
            call()
        times: list[float] = []
        began = time.perf_counter()
        while len(times) < samples and (len(times) < 5 or time.perf_counter() - began < 1.0):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return round(statistics.median(times) * 1e6, 1)

    try:
        slots = int(store._q("SELECT COUNT(*) FROM slots")[0][0])
        out = {
            "slots": slots,
            "claim_empty_us": med_us(lambda: store.claim("bench", now, lease, 100)),
            "due_tasks_us": med_us(lambda: store.due_tasks(now, 5000)),
            "next_times_us": med_us(lambda: store.next_times(after=now)),
            "lapsed_us": med_us(lambda: store.lapsed(now, [])),
            "cancel_waiting_of_paused_us": med_us(lambda: store.cancel_waiting_of_paused(now)),
            # the watchdog thread's: stuck runs every 5 s, overdue tasks
            "running_slots_us": med_us(store.running_slots),
            "due_heads_us": med_us(lambda: store.due_heads(now - timedelta(minutes=5), 1000)),
        }
    finally:
        store.close()
    return out


# ---- 3. steady load -------------------------------------------------------------------
async def _steady(params: dict[str, Any]) -> dict[str, Any]:
    from agentcron import Scheduler
    from agentcron.daemon import Daemon

    what_if = apply_what_if(params.get("what_if") or [])

    n, aligned = int(params["tasks"]), bool(params["aligned"])
    seconds, warmup = float(params["seconds"]), float(params["warmup"])
    home = fresh_home("steady")
    sched = Scheduler(home=home, max_concurrency=int(params["concurrency"]))
    t0 = math.ceil(time.time() + float(params["lead"]))
    base = datetime.fromtimestamp(t0, UTC)
    anchors = [base + (timedelta(0) if aligned else timedelta(milliseconds=i)) for i in range(n)]
    for i in range(n):
        sched.add(
            f"steady-{i:04d}",
            fire,
            every="1s",
            anchor=anchors[i],
            kwargs={"i": i},
            isolation="inline",
            retries=0,
        )
    daemon = Daemon(sched._options())  # what Scheduler.run_async builds
    runner = asyncio.create_task(daemon.run())
    window_start = t0 + warmup
    await asyncio.sleep(max(0.0, window_start - time.time()))
    if daemon.engine is None:
        raise RuntimeError("the daemon had not started by the window's start: raise --lead")
    engine = daemon.engine
    profile = cProfile.Profile() if params.get("profile") else None
    statements = _log_statements(daemon.store) if profile is not None else None
    cpu = CpuWindow()
    passes0 = engine.passes
    cpu.start()
    if profile is not None:
        profile.enable()  # the loop's thread: this coroutine runs on it
    await asyncio.sleep(max(0.0, window_start + seconds - time.time()))
    if profile is not None:
        profile.disable()
    window = cpu.stop()
    if statements is not None:
        statements.counting = False
    passes = engine.passes - passes0
    window_end = window_start + seconds
    stop_asked = time.time()
    daemon.stop_event.set()
    code = await runner
    result = _steady_check(home, anchors, window_start, window_end, stop_asked)
    result.update(
        {
            "tasks": n,
            "aligned": aligned,
            "max_concurrency": sched.max_concurrency,
            "window": window,
            "cpu_percent_of_core": window["cpu_percent_of_core"],
            "loop_passes_per_s": round(passes / seconds, 1),
            "daemon_exit_code": code,
        }
    )
    if what_if:
        result["what_if"] = what_if  # proposed changes applied: not the product's figure
    if profile is not None:
        fires = max(1, result["lateness"]["n"])
        result["profile"] = top_costs(profile, params["profile"], fires, "fire")
    if statements is not None:
        fires = max(1, result["lateness"]["n"])
        db = str(home / "agentcron.db")
        result["statements"] = statements.report(fires, "fire", db)
    return result


def _log_statements(store: Any) -> StatementLog | None:
    """Count the store's statements from now on (SQLite only; see against_sql)."""
    connection = getattr(store, "_db", None)
    if not isinstance(connection, sqlite3.Connection):
        return None
    log = StatementLog(connection)
    store._db = log
    log.counting = True
    return log


def _steady_check(
    home: Path,
    anchors: list[datetime],
    window_start: float,
    window_end: float,
    stop_asked: float,
) -> dict[str, Any]:
    """Every fire up to the stop recorded once, each run called once, and lateness of
    the calls whose fire lies in the window (call time minus the slot's scheduled
    time, matched per task in order: a task runs one slot at a time)."""
    with contextlib.closing(sqlite3.connect(home / "agentcron.db")) as db:
        rows = db.execute(
            "SELECT task, scheduled_for, status, started_at FROM slots ORDER BY task, scheduled_for"
        ).fetchall()
        incidents = dict(db.execute("SELECT kind, COUNT(*) FROM incidents GROUP BY kind"))
    by_task: dict[int, list[tuple[float, str, float | None]]] = defaultdict(list)
    for task, scheduled, status, started in rows:
        by_task[int(task.rsplit("-", 1)[1])].append((float(scheduled), status, started))
    calls: dict[int, list[float]] = defaultdict(list)
    for i, at in CALLS:
        calls[i].append(at)
    missing = off_grid = ran_not_called = 0
    late: list[float] = []
    for i, anchor in enumerate(anchors):
        first = anchor.timestamp()
        slots = by_task.get(i, [])
        recorded = {round(s - first, 3) for s, _, _ in slots}
        # every fire up to a second before the stop was asked for must be there
        expected = {float(k) for k in range(int(stop_asked - 1.0 - first) + 1)}
        missing += len(expected - recorded)
        off_grid += sum(1 for r in recorded if abs(r - round(r)) > 1e-3)
        ran = [s for s, status, started in slots if started is not None]
        made = sorted(calls.get(i, []))
        ran_not_called += abs(len(ran) - len(made))
        for scheduled, called in zip(ran, made, strict=False):
            if window_start <= scheduled < window_end:
                late.append(called - scheduled)
    statuses = Counter(status for _, _, status, _ in rows)
    return {
        "slots_recorded": len(rows),
        "slot_status": dict(statuses),
        "slots_missing": missing,
        "slots_off_grid": off_grid,
        "runs_without_one_call": ran_not_called,
        "calls": len(CALLS),
        "lateness": lateness_summary(late),
        "incidents_opened": incidents,
    }


def steady(params: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_steady(params))


# ---- 4. a burst at max_concurrency 10 ---------------------------------------------------
def burst(params: dict[str, Any]) -> dict[str, Any]:
    """``run_bench``'s burst (one-shot tasks due at one instant, the real daemon loop),
    at this max_concurrency: starts per second from the due instant to the last call."""
    from bench.run_bench import run_burst

    n = int(params["slots"])
    got = asyncio.run(run_burst(n, int(params["concurrency"]), 0.0, float(params["cap"]), None))
    started = got.get("all_started_s")
    got["starts_per_s"] = round(n / started) if started else got.get("starts_per_s")
    return got


# ---- 5. the task view -------------------------------------------------------------------
def task_view(params: dict[str, Any]) -> dict[str, Any]:
    """``Service.list_tasks()`` over the 100,000-task database, then ``Service.add_task``
    for ``add_seconds`` (tasks of the same schedule mix) into it."""
    from agentcron.service import Service
    from agentcron.store.sqlite import SQLiteStore

    home = fresh_home("view")
    shutil.copyfile(params["db"], home / "agentcron.db")
    store = SQLiteStore(home / "agentcron.db")
    service = Service(store, home)
    try:
        cpu = CpuWindow()
        cpu.start()
        t0 = time.perf_counter()
        listed = service.list_tasks()
        list_s = time.perf_counter() - t0
        list_cpu = cpu.stop()
        added = 0
        budget = float(params["add_seconds"])
        cpu.start()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < budget:
            kwargs = idle_task_kwargs(added)
            service.add_task(f"added-{added:06d}", {"command": ["true"], **kwargs})
            added += 1
        add_s = time.perf_counter() - t0
        add_cpu = cpu.stop()
    finally:
        store.close()
    return {
        "tasks_listed": len(listed),
        "list_tasks_s": round(list_s, 3),
        "list_run_queue_wait_ms": list_cpu["run_queue_wait_ms"],
        "tasks_added": added,
        "add_task_per_s": round(added / add_s),
        "add_task_ms": round(1000 * add_s / max(1, added), 3),
        "add_run_queue_wait_ms": add_cpu["run_queue_wait_ms"],
    }


# ---- 6. import and memory ---------------------------------------------------------------
def import_time(params: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh interpreter: ``import agentcron``, then what a program that
    schedules needs (``from agentcron import Scheduler``)."""
    t0 = time.perf_counter()
    import agentcron  # noqa: F401

    t1 = time.perf_counter()
    from agentcron import Scheduler  # noqa: F401

    t2 = time.perf_counter()
    return {
        "import_agentcron_s": round(t1 - t0, 4),
        "from_agentcron_import_scheduler_s": round(t2 - t0, 4),
        "modules_loaded": len(sys.modules),
    }


def memory(params: dict[str, Any]) -> dict[str, Any]:
    """RSS held by ``n`` tasks registered in code (``Scheduler.add``), after a full
    garbage collection, above the RSS once the scheduler module is imported."""
    import gc

    from agentcron import Scheduler

    n = int(params["tasks"])
    home = fresh_home("memory")
    sched = Scheduler(home=home)
    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    for i in range(n):
        sched.add(f"mem-{i:06d}", noop, **idle_task_kwargs(i))
    took = time.perf_counter() - t0
    gc.collect()
    after = rss_mb()
    return {
        "tasks": n,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "held_mb": round(after - before, 1),
        "kib_per_task": round((after - before) * 1024 / n, 2),
        "register_s": round(took, 2),
    }


# ---- profile of the idle daemon (in-process, as `agentcron run` builds it) -------------
def idle_profile(params: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_idle_profile(params))


async def _idle_profile(params: dict[str, Any]) -> dict[str, Any]:
    """The daemon `agentcron run --config CFG` builds, over the 100,000-task database,
    with the loop's timers counted by who asked for them (each timer that fires is one
    wake-up of the loop thread) and cProfile on the loop thread for the window."""
    from agentcron.daemon import Daemon, DaemonOptions

    what_if = apply_what_if(params.get("what_if") or [])
    home = fresh_home("idleprof")
    shutil.copyfile(params["db"], home / "agentcron.db")
    config = home / "agentcron.yaml"
    config.write_text("tasks: {}\n")
    daemon = Daemon(DaemonOptions(config_path=config, home=home))
    loop = asyncio.get_running_loop()
    timers: Counter[str] = Counter()
    wakes: Counter[str] = Counter()
    counting = [False]
    original_call_at = loop.call_at
    original_threadsafe = loop.call_soon_threadsafe

    def call_at(when: float, callback: Any, *args: Any, context: Any = None) -> Any:
        where = _asker()

        def fired(*a: Any) -> None:
            if counting[0]:
                timers[where] += 1
            callback(*a)

        return original_call_at(when, fired, *args, context=context)

    def call_soon_threadsafe(callback: Any, *args: Any, context: Any = None) -> Any:
        if counting[0]:
            wakes[f"{getattr(callback, '__qualname__', callback)} (from another thread)"] += 1
        return original_threadsafe(callback, *args, context=context)

    loop.call_at = call_at  # type: ignore[method-assign,assignment]
    loop.call_soon_threadsafe = call_soon_threadsafe  # type: ignore[method-assign,assignment]
    runner = asyncio.create_task(daemon.run())
    settled = await _settle(float(params["settle"]), 120.0)
    engine = daemon.engine
    if engine is None:
        raise RuntimeError("the daemon did not start within the settle time")
    seconds = float(params["seconds"])
    profile = cProfile.Profile()
    cpu = CpuWindow()
    passes0 = engine.passes
    statements = _log_statements(daemon.store)
    counting[0] = True
    cpu.start()
    profile.enable()
    await asyncio.sleep(seconds)
    profile.disable()
    window = cpu.stop()
    counting[0] = False
    if statements is not None:
        statements.counting = False
    passes = engine.passes - passes0
    daemon.stop_event.set()
    await runner
    return {
        **({"what_if": what_if} if what_if else {}),
        **settled,
        "window": window,
        "loop_passes_per_s": round(passes / seconds, 2),
        "loop_timers_fired_per_s": {
            k: round(v / seconds, 3) for k, v in timers.most_common() if k != _SELF
        },
        "loop_woken_from_threads_per_s": {k: round(v / seconds, 3) for k, v in wakes.items()},
        "profile": top_costs(profile, params["profile"], max(1, passes), "loop pass"),
        "statements_per_second": statements.report(seconds, "second", str(home / "agentcron.db"))
        if statements is not None
        else None,
    }


async def _settle(least: float, most: float) -> dict[str, Any]:
    """Wait until this process's start-up work is over (as ``against_idle.settle`` does
    from outside): three seconds in a row under 3 % of a core, after ``least``."""
    t0 = time.monotonic()
    first = last = self_cpu_s()
    quiet = 0
    while True:
        await asyncio.sleep(1.0)
        now = self_cpu_s()
        quiet = quiet + 1 if now - last < 0.03 else 0
        last = now
        waited = time.monotonic() - t0
        if (waited >= least and quiet >= 3) or waited >= most:
            return {"settled_after_s": round(waited, 1), "settle_cpu_s": round(now - first, 2)}


_SELF = "against_agentcron.py:_idle_profile"


def _asker() -> str:
    """Where a timer was asked for: the first two frames outside asyncio (the await
    chain of the coroutine that sleeps or waits with a timeout)."""
    frame = sys._getframe(2)
    names: list[str] = []
    while frame is not None and len(names) < 2:
        path = frame.f_code.co_filename
        if "/asyncio/" not in path and not path.endswith("against_agentcron.py"):
            names.append(f"{Path(path).name}:{frame.f_code.co_name}")
        frame = frame.f_back  # type: ignore[assignment]
    return " <- ".join(names) or _SELF


def top_costs(profile: cProfile.Profile, path: str, per: int, unit: str) -> dict[str, Any]:
    """The profile kept at ``path`` (pstats) and its top functions by own time and by
    cumulative time, in microseconds per ``unit`` (``per`` of them in the window)."""
    profile.dump_stats(path)
    stats = pstats.Stats(path)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows: list[tuple[str, int, float, float]] = []
    for (file, line, func), (_cc, calls, tottime, cumtime, _callers) in raw.items():
        short = f"{_short(file)}:{line}({func})"
        rows.append((short, calls, tottime, cumtime))
    total = sum(r[2] for r in rows)

    def table(cumulative: bool) -> list[dict[str, Any]]:
        ordered = sorted(rows, key=lambda r: -(r[3] if cumulative else r[2]))[:25]
        return [
            {
                "function": name,
                "calls_per_" + unit.replace(" ", "_"): round(calls / per, 2),
                "own_us_per_" + unit.replace(" ", "_"): round(1e6 * tot / per, 1),
                "cum_us_per_" + unit.replace(" ", "_"): round(1e6 * cum / per, 1),
            }
            for name, calls, tot, cum in ordered
        ]

    return {
        "file": path,
        "units": per,
        "unit": unit,
        "profiled_us_per_" + unit.replace(" ", "_"): round(1e6 * total / per, 1),
        "by_own_time": table(False),
        "by_cumulative_time": table(True),
    }


def _short(file: str) -> str:
    marker = "/agentcron/"
    if marker in file:
        return "agentcron/" + file.split(marker, 1)[1]
    if "/site-packages/" in file:
        return file.split("/site-packages/", 1)[1]
    if file.startswith("~") or file.startswith("<"):
        return file
    return "/".join(Path(file).parts[-2:])


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "tick_costs": tick_costs,
    "steady": steady,
    "burst": burst,
    "task_view": task_view,
    "import_time": import_time,
    "memory": memory,
    "idle_profile": idle_profile,
}
