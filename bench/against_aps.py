"""APScheduler 3's side of the side-by-side benchmark: the same workloads, one child each.

APScheduler as most of its users run it: ``BackgroundScheduler`` with its default
in-memory job store and default executor (a pool of 10 threads), default job options
(``misfire_grace_time`` 1 s, ``coalesce`` off, ``max_instances`` 1). Nothing is
installed here: ``against.py`` runs these children only when ``import apscheduler``
works and its major version is 3.

Lateness is the time the function ran minus the run time APScheduler scheduled it
for: the function notes when it ran, a listener notes each executed run's
``scheduled_run_time`` (one instance of a job at a time, so the two lists of a job
pair up in order). The listener is the only thing added to APScheduler's own work.
"""

from __future__ import annotations

import importlib
import math
import os
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.against_common import CpuWindow, aps_trigger, lateness_summary, rss_mb

CALLS: list[tuple[int, float]] = []


def fire(i: int) -> None:
    """The same action as agentcron's steady tasks: note when it ran, return nothing."""
    CALLS.append((i, time.time()))


def noop() -> None:
    """The action of jobs that never fall due."""


def aps(module: str) -> Any:
    """An APScheduler module (untyped, and absent unless installed: imported by name)."""
    return importlib.import_module(module)


class RunLog:
    """What APScheduler reported about each job: executed run times in order, and the
    runs it did not run (missed: later than misfire_grace_time; max_instances: the
    previous run of the job was still going)."""

    def __init__(self) -> None:
        self.executed: dict[str, list[float]] = defaultdict(list)
        self.not_run: Counter[str] = Counter()

    def attach(self, scheduler: Any) -> None:
        events = aps("apscheduler.events")
        executed, missed = events.EVENT_JOB_EXECUTED, events.EVENT_JOB_MISSED
        max_instances, error = events.EVENT_JOB_MAX_INSTANCES, events.EVENT_JOB_ERROR

        def listener(event: Any) -> None:
            if event.code == executed:
                self.executed[event.job_id].append(event.scheduled_run_time.timestamp())
            elif event.code == missed:
                self.not_run["missed"] += 1
            elif event.code == max_instances:
                self.not_run["max_instances"] += 1
            elif event.code == error:
                self.not_run["error"] += 1

        scheduler.add_listener(listener, executed | missed | max_instances | error)


# ---- 2. idle with many jobs (watched from outside) -------------------------------------
def idle(params: dict[str, Any]) -> dict[str, Any]:
    """A started scheduler holding ``n`` jobs that cannot fire; prints READY and sleeps
    until SIGTERM while the parent reads /proc. The same child then gives the memory
    those jobs hold (RSS after a full collection, above the RSS before adding them)
    and the job list and add rate (:func:`_view`): adding 100,000 jobs takes seconds,
    paid once instead of three times."""
    import gc

    BackgroundScheduler = aps("apscheduler.schedulers.background").BackgroundScheduler
    n = int(params["tasks"])
    scheduler = BackgroundScheduler(timezone=UTC)
    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    for i in range(n):
        scheduler.add_job(noop, id=f"idle-{i:06d}", **aps_trigger(i))
    scheduler.start()
    took = time.perf_counter() - t0
    gc.collect()
    after = rss_mb()
    print(f"READY {os.getpid()}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    try:
        view = _view(scheduler, n, float(params["add_seconds"]))
    finally:
        scheduler.shutdown(wait=False)
    memory = {
        "jobs": n,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "held_mb": round(after - before, 1),
        "kib_per_job": round((after - before) * 1024 / n, 2),
        "register_s": round(took, 2),
    }
    return {"jobs": n, "add_and_start_s": round(took, 2), "memory": memory, "view": view}


# ---- 3. steady load -------------------------------------------------------------------
def steady(params: dict[str, Any]) -> dict[str, Any]:
    BackgroundScheduler = aps("apscheduler.schedulers.background").BackgroundScheduler
    n, aligned = int(params["tasks"]), bool(params["aligned"])
    seconds, warmup = float(params["seconds"]), float(params["warmup"])
    scheduler = BackgroundScheduler(timezone=UTC)
    log = RunLog()
    log.attach(scheduler)
    t0 = math.ceil(time.time() + float(params["lead"]))
    base = datetime.fromtimestamp(t0, UTC)
    anchors = [base + (timedelta(0) if aligned else timedelta(milliseconds=i)) for i in range(n)]
    for i in range(n):
        scheduler.add_job(
            fire,
            "interval",
            seconds=1,
            start_date=anchors[i],
            kwargs={"i": i},
            id=f"steady-{i:04d}",
        )
    scheduler.start()
    window_start = t0 + warmup
    time.sleep(max(0.0, window_start - time.time()))
    cpu = CpuWindow()
    cpu.start()
    time.sleep(max(0.0, window_start + seconds - time.time()))
    window = cpu.stop()
    window_end = window_start + seconds
    stop_asked = time.time()
    scheduler.shutdown(wait=True)
    calls: dict[int, list[float]] = defaultdict(list)
    for i, at in CALLS:
        calls[i].append(at)
    late: list[float] = []
    unpaired = 0
    expected_fires = 0
    for i, anchor in enumerate(anchors):
        planned = log.executed.get(f"steady-{i:04d}", [])
        made = sorted(calls.get(i, []))
        unpaired += abs(len(planned) - len(made))
        expected_fires += int(stop_asked - 1.0 - anchor.timestamp()) + 1
        for scheduled, called in zip(planned, made, strict=False):
            if window_start <= scheduled < window_end:
                late.append(called - scheduled)
    return {
        "tasks": n,
        "aligned": aligned,
        "executor": "ThreadPoolExecutor(10), the default",
        "window": window,
        "cpu_percent_of_core": window["cpu_percent_of_core"],
        "lateness": lateness_summary(late),
        "calls": len(CALLS),
        "fires_due_until_a_second_before_stop": expected_fires,
        "runs_not_run": dict(log.not_run),
        "calls_without_an_executed_event": unpaired,
    }


# ---- 4. a burst on 10 threads -----------------------------------------------------------
def burst(params: dict[str, Any]) -> dict[str, Any]:
    """``n`` one-shot jobs (date trigger) due at the same instant, the default executor
    of 10 threads: starts per second from the due instant to the last call."""
    ThreadPoolExecutor = aps("apscheduler.executors.pool").ThreadPoolExecutor
    BackgroundScheduler = aps("apscheduler.schedulers.background").BackgroundScheduler
    n = int(params["slots"])
    threads = int(params["concurrency"])
    scheduler = BackgroundScheduler(
        timezone=UTC, executors={"default": ThreadPoolExecutor(threads)}
    )
    log = RunLog()
    log.attach(scheduler)
    t_setup = time.time()
    due = math.ceil(time.time() + float(params["lead"]))
    when = datetime.fromtimestamp(due, UTC)
    for i in range(n):
        scheduler.add_job(fire, "date", run_date=when, kwargs={"i": i}, id=f"burst-{i:05d}")
    scheduler.start()
    ready_margin = due - time.time()
    deadline = due + float(params["cap"])
    while time.time() < deadline:
        if len(CALLS) + sum(log.not_run.values()) >= n:
            break
        time.sleep(0.05)
    scheduler.shutdown(wait=True)
    called = sorted(at - due for _, at in CALLS)
    return {
        "slots": n,
        "threads": threads,
        "setup_s": round(due - ready_margin - t_setup, 2),
        "ready_margin_s": round(ready_margin, 2),
        "calls": len(CALLS),
        "distinct_calls": len({i for i, _ in CALLS}),
        "runs_not_run": dict(log.not_run),
        "all_started_s": round(called[-1], 3) if len(called) == n else None,
        "starts_per_s": round(n / called[-1]) if len(called) == n and called[-1] > 0 else None,
        "fire_latency_called": lateness_summary(called),
    }


# ---- 5. the job list and adding jobs ----------------------------------------------------
def job_view(params: dict[str, Any]) -> dict[str, Any]:
    """APScheduler's nearest equivalents of agentcron's task view: ``get_jobs()`` over
    ``n`` jobs of a running scheduler, and ``add_job`` on it for ``add_seconds``."""
    BackgroundScheduler = aps("apscheduler.schedulers.background").BackgroundScheduler
    n = int(params["tasks"])
    scheduler = BackgroundScheduler(timezone=UTC)
    for i in range(n):
        scheduler.add_job(noop, id=f"idle-{i:06d}", **aps_trigger(i))
    scheduler.start()
    try:
        return _view(scheduler, n, float(params["add_seconds"]))
    finally:
        scheduler.shutdown(wait=False)


def _view(scheduler: Any, n: int, budget: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    jobs = scheduler.get_jobs()
    # what a listing shows: each job's name, trigger in words and next run
    rows = [(j.id, str(j.trigger), j.next_run_time) for j in jobs]
    list_s = time.perf_counter() - t0
    added = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < budget:
        scheduler.add_job(noop, id=f"added-{added:06d}", **aps_trigger(n + added))
        added += 1
    add_s = time.perf_counter() - t0
    return {
        "jobs_listed": len(rows),
        "get_jobs_s": round(list_s, 3),
        "jobs_added": added,
        "add_job_per_s": round(added / add_s),
        "add_job_ms": round(1000 * add_s / max(1, added), 3),
    }


# ---- 6. import and memory ---------------------------------------------------------------
def import_time(params: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    aps("apscheduler")
    t1 = time.perf_counter()
    aps("apscheduler.schedulers.background").BackgroundScheduler  # noqa: B018
    t2 = time.perf_counter()
    return {
        "import_apscheduler_s": round(t1 - t0, 4),
        "from_apscheduler_import_backgroundscheduler_s": round(t2 - t0, 4),
        "modules_loaded": len(sys.modules),
    }


def memory(params: dict[str, Any]) -> dict[str, Any]:
    """RSS held by ``n`` jobs in the in-memory job store (scheduler started paused, so
    the jobs sit in the store as in a running scheduler), after a full collection."""
    import gc

    BackgroundScheduler = aps("apscheduler.schedulers.background").BackgroundScheduler
    n = int(params["tasks"])
    scheduler = BackgroundScheduler(timezone=UTC)
    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    for i in range(n):
        scheduler.add_job(noop, id=f"mem-{i:06d}", **aps_trigger(i))
    scheduler.start(paused=True)
    took = time.perf_counter() - t0
    gc.collect()
    after = rss_mb()
    scheduler.shutdown(wait=False)
    return {
        "jobs": n,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "held_mb": round(after - before, 1),
        "kib_per_job": round((after - before) * 1024 / n, 2),
        "register_s": round(took, 2),
    }


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "idle": idle,
    "steady": steady,
    "burst": burst,
    "job_view": job_view,
    "import_time": import_time,
    "memory": memory,
}
