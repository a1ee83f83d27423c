"""What serving the HTTP API costs: request latency, and the scheduler's fire latency
with and without a client polling the API every second.

    .venv/bin/python bench/api_latency.py [--tasks 10000] [--slots 100000]
        [--requests 20] [--seconds 30] [--firing 10]

1. ``GET /api/v1/tasks`` with ``--tasks`` tasks (each with recorded runs), over real
   HTTP to the app served by uvicorn on its own thread, as the daemon serves it.
2. ``GET /metrics`` with ``--slots`` recorded slots (plus open incidents and a queued
   outbox); the first scrape reads each task's last success once, later ones not.
3. A real daemon (``agentcron run --api 127.0.0.1:0``) with the ``--tasks`` tasks
   (none due) and ``--firing`` tasks due every 2 s: the lateness of each scheduled
   run (first attempt's start minus its scheduled time, from the database) for
   ``--seconds`` with nobody calling the API, ``--seconds`` with a client scraping
   ``GET /metrics`` once a second, then ``--seconds`` with a client calling
   ``GET /api/v1/tasks`` and ``GET /metrics`` once a second each.

Prints one JSON object. Measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "src"))

from agentcron.clock import SystemClock  # noqa: E402
from agentcron.model import TaskSpec  # noqa: E402
from agentcron.service import Service  # noqa: E402
from agentcron.store.sqlite import SQLiteStore  # noqa: E402

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo")
STATUSES = ("succeeded",) * 8 + ("failed", "skipped")


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 1),
        "p95_ms": round(percentile(values, 95) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1) if values else math.nan,
    }


def far_month() -> int:
    return (datetime.now(UTC).month + 5) % 12 + 1


def seed(home: Path, tasks: int, slots: int) -> dict[str, Any]:
    """``tasks`` tasks that never fall due during the run, and ``slots`` final slots
    spread over them (newest first per task), a few open incidents, a queued outbox."""
    home.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(home / "agentcron.db")
    service = Service(store, home, SystemClock())
    month = far_month()
    specs = []
    for i in range(tasks):
        zone = ZONES[i % len(ZONES)]
        schedule: dict[str, Any] = (
            {"cron": f"{i % 60} {i % 24} {1 + i % 28} {month} *"}
            if i % 2 == 0
            else {"every": timedelta(days=1 + i % 7), "anchor": datetime(2030, 1, 1)}
        )
        specs.append(TaskSpec(name=f"t{i:05d}", command=["true"], timezone=zone, **schedule))
    started = time.perf_counter()
    service.upsert_code_tasks(specs)
    add_s = time.perf_counter() - started
    now = time.time()
    rows = []
    for j in range(slots):
        task = f"t{j % tasks:05d}"
        at = now - 60 * (j // tasks + 1)
        status = STATUSES[j % len(STATUSES)]
        rows.append((task, at, status, 1, at, at + 0.5, at))
    db = sqlite3.connect(home / "agentcron.db")
    with db:
        db.executemany(
            "INSERT INTO slots (task, scheduled_for, status, attempts, started_at, "
            "finished_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.executemany(
            "INSERT INTO incidents (task, kind, opened_at, summary) VALUES (?, 'failure', ?, 'x')",
            [(f"t{i:05d}", now) for i in range(0, min(tasks, 50))],
        )
        db.executemany(
            "INSERT INTO outbox (channel_key, channel_url, message, created_at) "
            "VALUES ('json://x', 'json://x', '{}', ?)",
            [(now - i,) for i in range(20)],
        )
    db.close()
    store.close()
    return {"tasks": tasks, "slots": slots, "register_tasks_s": round(add_s, 2)}


def serve(home: Path) -> tuple[Any, str]:
    from agentcron.interfaces.api.app import ApiSettings, create_app
    from agentcron.interfaces.api.server import ApiServer

    def factory() -> Service:
        return Service(SQLiteStore(home / "agentcron.db"), home, SystemClock())

    server = ApiServer(create_app(factory, ApiSettings()), "127.0.0.1", 0)
    host, port = server.start()
    return server, f"http://{host}:{port}"


def time_requests(base: str, path: str, n: int) -> dict[str, Any]:
    times: list[float] = []
    size = 0
    with httpx.Client(base_url=base, timeout=120) as http:
        for _ in range(n):
            started = time.perf_counter()
            response = http.get(path)
            times.append(time.perf_counter() - started)
            response.raise_for_status()
            size = len(response.content)
    first, rest = times[0], times[1:]
    return {
        "first_ms": round(first * 1000, 1),
        **summary_ms(rest or times),
        "bytes": size,
    }


def measure_requests(tasks: int, slots: int, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="agentcron-api-bench-") as tmp:
        home = Path(tmp) / "list"
        out["tasks_list_setup"] = seed(home, tasks, tasks * 5)
        server, base = serve(home)
        try:
            out["GET /api/v1/tasks"] = time_requests(base, "/api/v1/tasks", n)
        finally:
            server.stop()
        home = Path(tmp) / "metrics"
        metric_tasks = max(1, slots // 100)
        out["metrics_setup"] = seed(home, metric_tasks, slots)
        server, base = serve(home)
        try:
            out["GET /metrics"] = time_requests(base, "/metrics", n)
        finally:
            server.stop()
    return out


def lateness(db_path: Path, since: float, until: float) -> list[float]:
    db = sqlite3.connect(db_path)
    try:
        rows = db.execute(
            "SELECT a.started_at - s.scheduled_for FROM attempts a JOIN slots s "
            "ON s.id = a.slot_id WHERE a.number = 1 AND s.trigger = 'schedule' "
            "AND s.scheduled_for >= ? AND s.scheduled_for < ?",
            (since, until),
        ).fetchall()
    finally:
        db.close()
    return [float(r[0]) for r in rows]


def measure_fire_latency(tasks: int, firing: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="agentcron-api-bench-") as tmp:
        folder = Path(tmp)
        home = folder / "home"
        seed(home, tasks, tasks * 2)
        lines = ["tasks:"]
        for i in range(firing):
            lines += [f"  fire{i}:", "    every: 2s", '    command: ["true"]']
        (folder / "agentcron.yaml").write_text("\n".join(lines) + "\n")
        log = folder / "daemon.log"
        env = {**os.environ, "AGENTCRON_HOME": str(home)}
        with log.open("ab") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "agentcron", "run", "--api", "127.0.0.1:0"],
                cwd=folder,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            base = None
            deadline = time.monotonic() + 300
            while base is None and time.monotonic() < deadline:
                found = re.search(r"listening on (http://[\d.]+:\d+)", log.read_text())
                base = found.group(1) if found else None
                time.sleep(0.2)
            if base is None:
                raise RuntimeError(f"the daemon did not serve the API:\n{log.read_text()}")
            time.sleep(5)  # past the start-up
            quiet_from = time.time()
            time.sleep(seconds)
            quiet_to = metrics_from = time.time()
            metrics_only = poll(base, seconds, ("/metrics",))
            metrics_to = busy_from = time.time()
            polled = poll(base, seconds, ("/api/v1/tasks", "/metrics"))
            busy_to = time.time()
            time.sleep(3)  # let the last runs be recorded
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        db_path = home / "agentcron.db"
        return {
            "tasks": tasks,
            "firing_every_2s": firing,
            "seconds_each": seconds,
            "fire_lateness_quiet": summary_ms(lateness(db_path, quiet_from, quiet_to)),
            "fire_lateness_metrics_polled": summary_ms(lateness(db_path, metrics_from, metrics_to)),
            "while_metrics_polled": metrics_only,
            "fire_lateness_polled": summary_ms(lateness(db_path, busy_from, busy_to)),
            "while_polled": polled,
        }


def poll(base: str, seconds: float, paths: Sequence[str]) -> dict[str, Any]:
    """A client calling each of ``paths`` once a second."""
    times: dict[str, list[float]] = {path: [] for path in paths}
    stop = time.monotonic() + seconds

    def one(path: str) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            while time.monotonic() < stop:
                began = time.monotonic()
                http.get(path).raise_for_status()
                times[path].append(time.monotonic() - began)
                time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))

    threads = [threading.Thread(target=one, args=(p,)) for p in times]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {f"GET {path}": summary_ms(values) for path, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--slots", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--firing", type=int, default=10)
    ns = parser.parse_args()
    result: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_before": os.getloadavg(),
        },
        "requests": measure_requests(ns.tasks, ns.slots, ns.requests),
        "fire_latency": measure_fire_latency(ns.tasks, ns.firing, ns.seconds),
    }
    result["machine"]["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
