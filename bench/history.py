"""History retention at scale: a SQLite database of 1,000,000 recorded runs, pruned.

    .venv/bin/python bench/history.py [--slots 1000000] [--tasks 1000] [--old 0.9]
        [--samples 300] [--batch 500] [--vacuum]

Builds a fresh database (the store's own schema), bulk-inserts ``--slots`` finished
runs with one attempt each, spread over ``--tasks`` tasks so that the fraction
``--old`` of them is older than the default ``keep_history`` (90 days), plus a few
runs waiting for a retry, sent notifications and closed incidents. Then measures,
before and after :func:`agentcron.retention.prune_history`:

* the database's size on disk (file + write-ahead log, after a checkpoint) and its
  free pages (SQLite reuses them; only VACUUM gives them back to the file system);
* the medians of what the engine's loop pays on every tick whatever the history:
  an empty ``claim`` (nothing runnable), ``due_tasks`` (nothing due) and
  ``next_times`` (``next_wakeup`` before 2026-12-03);

and, for the pass itself: its wall time, its batches, and how long each write
transaction held SQLite's write lock (the longest one is what the daemon's loop can
be made to wait). ``--vacuum`` also times a VACUUM afterwards and reports the size it
leaves. Prints one JSON object; progress goes to stderr. Output files are not
created (the pass would time the file system); see bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "src"))

from agentcron.model import TaskSource, TaskSpec  # noqa: E402
from agentcron.retention import prune_history  # noqa: E402
from agentcron.store.sqlite import SQLiteStore  # noqa: E402

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
KEEP = timedelta(days=90)


def say(text: str) -> None:
    print(f"[history] {text}", file=sys.stderr, flush=True)


def median_us(call: Callable[[], object], samples: int) -> float:
    """Median wall time of ``call`` in microseconds (after 10 warm-up calls)."""
    for _ in range(10):
        call()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e6, 1)


def disk(store: SQLiteStore, path: Path) -> dict[str, Any]:
    with store._lock:
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        free = store._db.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = store._db.execute("PRAGMA page_size").fetchone()[0]
    wal = Path(f"{path}-wal")
    size = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return {
        "file_mb": round(size / 1e6, 1),
        "free_pages": free,
        "in_use_mb": round((pages - free) * page_size / 1e6, 1),
    }


def tick_costs(store: SQLiteStore, samples: int) -> dict[str, float]:
    lease = NOW + timedelta(minutes=1)
    return {
        "claim_empty_us": median_us(lambda: store.claim("bench", NOW, lease, 100), samples),
        "due_tasks_us": median_us(lambda: store.due_tasks(NOW, 1000), samples),
        "next_times_us": median_us(store.next_times, samples),
    }


def counts(store: SQLiteStore) -> dict[str, int]:
    return {
        t: int(store._q(f"SELECT COUNT(*) FROM {t}")[0][0])
        for t in ("slots", "attempts", "outbox", "incidents")
    }


def build(store: SQLiteStore, slots: int, tasks: int, old: float) -> None:
    """Tasks every day, next fire tomorrow (nothing due); each task's runs evenly spaced
    so that the share ``old`` of them is past KEEP; one attempt per run."""
    specs = [TaskSpec(name=f"task{n:05d}", every="1d", command=["true"]) for n in range(tasks)]
    store.upsert_many([(s, NOW + timedelta(days=1)) for s in specs], TaskSource.API, NOW)
    per_task = slots // tasks
    young = max(1, round(per_task * (1 - old)))
    step = KEEP.total_seconds() / young  # the `young` newest runs fit in KEEP
    now = NOW.timestamp()
    db = store._db
    started = time.perf_counter()
    with store._lock:
        db.execute("BEGIN IMMEDIATE")
        slot_rows: list[tuple[Any, ...]] = []
        for spec in specs:
            for i in range(per_task):
                due = now - (per_task - i) * step + 1.0
                status = "failed" if i % 17 == 0 else "succeeded"
                slot_rows.append((spec.name, due, status, 1, due + 1, due + 60, due))
        db.executemany(
            "INSERT INTO slots (task, scheduled_for, status, attempts, started_at, "
            "finished_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            slot_rows,
        )
        db.execute(
            "INSERT INTO attempts (slot_id, number, started_at, finished_at, status, node) "
            "SELECT id, 1, started_at, finished_at, status, 'bench' FROM slots"
        )
        # a few runs waiting for a retry later: the runnable index is not empty
        db.executemany(
            "INSERT INTO slots (task, scheduled_for, status, attempts, next_attempt_at, "
            "created_at) VALUES (?, ?, 'retrying', 1, ?, ?)",
            [(s.name, now - 30, now + 600, now - 30) for s in specs[:20]],
        )
        db.executemany(
            "INSERT INTO outbox (channel_key, channel_url, message, created_at, attempts, "
            "sent_at) VALUES ('k', 'json://x', '{}', ?, 1, ?)",
            [(now - d * 3600, now - d * 3600) for d in range(20_000)],
        )
        db.executemany(
            "INSERT INTO incidents (task, kind, opened_at, closed_at) VALUES (?, 'failure', ?, ?)",
            [(f"task{d % tasks:05d}", now - d * 3600, now - d * 3600 + 60) for d in range(5000)],
        )
        db.execute("COMMIT")
    db.execute("ANALYZE")
    say(f"inserted {len(slot_rows):,} runs in {time.perf_counter() - started:.1f}s")


@contextlib.contextmanager
def timed_transactions(store: SQLiteStore, held: list[float]) -> Iterator[None]:
    """Record how long each write transaction of the store is open (the write lock)."""
    original = store._tx

    @contextlib.contextmanager
    def tx() -> Iterator[Any]:
        with original() as db:
            start = time.perf_counter()
            yield db
            held.append(time.perf_counter() - start)  # COMMIT itself not included

    store._tx = tx  # type: ignore[method-assign]
    try:
        yield
    finally:
        store._tx = original  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--old", type=float, default=0.9)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--vacuum", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="agentcron-history-") as tmp:
        home = Path(tmp)
        path = home / "agentcron.db"
        store = SQLiteStore(path)
        try:
            build(store, args.slots, args.tasks, args.old)
            before = {"rows": counts(store), **disk(store, path), **tick_costs(store, args.samples)}
            say(f"before: {before}")

            held: list[float] = []
            with timed_transactions(store, held):
                started = time.perf_counter()
                report = prune_history(store, home, NOW, KEEP, batch=args.batch)
                wall = time.perf_counter() - started
            held.sort()
            pruning = {
                **report.as_dict(),
                "wall_s": round(wall, 1),
                "write_transactions": len(held),
                "write_tx_median_ms": round(statistics.median(held) * 1e3, 2) if held else 0,
                "write_tx_p99_ms": round(held[int(len(held) * 0.99)] * 1e3, 2) if held else 0,
                "write_tx_max_ms": round(held[-1] * 1e3, 2) if held else 0,
            }
            say(f"pruned: {pruning}")
            after = {"rows": counts(store), **disk(store, path), **tick_costs(store, args.samples)}
            say(f"after: {after}")
            vacuum: dict[str, Any] | None = None
            if args.vacuum:
                started = time.perf_counter()
                with store._lock:
                    store._db.execute("VACUUM")
                vacuum = {"wall_s": round(time.perf_counter() - started, 1), **disk(store, path)}
                say(f"vacuum: {vacuum}")
        finally:
            store.close()
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": __import__("sqlite3").sqlite_version,
        },
        "params": vars(args),
        "before": before,
        "prune": pruning,
        "after": after,
        "vacuum": vacuum,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
