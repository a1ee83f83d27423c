"""Idle daemons watched from outside: a real ``agentcron run`` process, or an APScheduler
child, read through /proc over a window, and its threads named.

The watcher samples every thread's CPU time, run-queue wait and voluntary context
switches at the start and end of the window (plus the process's CPU each second, to
show that the start-up work is over), then asks ``py-spy dump`` (when installed) what
each thread is: Python 3.11 does not give its threads OS names, so /proc shows them
all as ``python``; py-spy reads their Python names and stacks. py-spy stops the
process for a moment, which is why it runs after the window, not during it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.against_common import REPO, machine_busy_s, rss_mb, thread_samples, thread_window

READY_LOG = "agentcron running as"
DAEMON = (sys.executable, "-m", "agentcron")  # `agentcron` from this tree
SETTLE_MOST = 120.0  # seconds: a daemon still busy after this is measured busy

# What each of agentcron's threads is for (their names in src/agentcron).
PURPOSES = {
    "MainThread": "asyncio loop: engine ticks, outbox sender, delivery worker, heartbeat, "
    "config watcher, retention, supervisor's watchers",
    "agentcron-checkpoint": "SQLite WAL checkpoints (store/_checkpoints.py)",
    "agentcron-stall": "watchdog: is the loop still ticking (watchdog/watchdog.py)",
    "agentcron-watchdog": "watchdog: overdue and stuck runs (watchdog/watchdog.py)",
    "APScheduler": "APScheduler's scheduler thread (sleeps until the next run time)",
}


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if os.access(found, os.X_OK) else None


_THREAD = re.compile(r'^Thread (0x[0-9a-fA-F]+|\d+) \(([^)]*)\)(?:: "(.*)")?')


def name_threads(pid: int) -> dict[int, dict[str, Any]]:
    """tid -> Python name and innermost frames, from ``py-spy dump`` (empty without it)."""
    spy = py_spy()
    if spy is None:
        return {}
    try:
        out = subprocess.run(
            [spy, "dump", "--pid", str(pid)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    named: dict[int, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in out.splitlines():
        match = _THREAD.match(line)
        if match:
            raw_id = match.group(1)
            tid = int(raw_id, 16) if raw_id.startswith("0x") else int(raw_id)
            current = {"name": match.group(3) or "?", "state": match.group(2), "frames": []}
            named[tid] = current
        elif current is not None and line.startswith("    ") and len(current["frames"]) < 3:
            current["frames"].append(line.strip())
    return named


QUIET_PERCENT = 3.0  # a second under this much of a core counts as quiet
QUIET_SECONDS = 3  # this many quiet seconds in a row: the start-up work is over


def settle(pid: int, least: float, most: float) -> dict[str, Any]:
    """Wait until the start-up work is over: at least ``least`` seconds, then until
    QUIET_SECONDS seconds in a row each used under QUIET_PERCENT of a core (at most
    ``most`` seconds). A daemon reads every task once or twice when it starts
    (retention, the watchdog's limits): seconds of CPU with 100,000 tasks, which is
    start-up cost, not idle cost, and is reported apart."""
    t0 = time.monotonic()
    first = last = _cpu_ns(thread_samples(pid))
    quiet = 0
    while True:
        time.sleep(1.0)
        now = _cpu_ns(thread_samples(pid))
        quiet = quiet + 1 if (now - last) / 1e7 < QUIET_PERCENT else 0
        last = now
        waited = time.monotonic() - t0
        if (waited >= least and quiet >= QUIET_SECONDS) or waited >= most:
            return {
                "settled_after_s": round(waited, 1),
                "settle_cpu_s": round((now - first) / 1e9, 2),
                "quiet": quiet >= QUIET_SECONDS,
            }


def watch(pid: int, seconds: float) -> dict[str, Any]:
    """The window: per-thread deltas, the process's CPU second by second, RSS at the end,
    and each thread's name and what it was doing (py-spy)."""
    before = thread_samples(pid)
    busy0 = machine_busy_s()
    t0 = time.monotonic()
    series: list[float] = []
    last = _cpu_ns(before)
    for k in range(1, int(seconds) + 1):
        time.sleep(max(0.0, t0 + k - time.monotonic()))
        now = _cpu_ns(thread_samples(pid))
        series.append(round((now - last) / 1e7, 3))  # % of a core in that second
        last = now
    time.sleep(max(0.0, t0 + seconds - time.monotonic()))
    after = thread_samples(pid)
    busy = machine_busy_s() - busy0
    window = thread_window(before, after, time.monotonic() - t0)
    own = sum(p["cpu_percent_of_core"] for p in window["threads"].values()) / 100
    window["other_processes_percent_of_core"] = round(
        max(0.0, 100 * (busy / window["seconds"] - own)), 1
    )
    window["cpu_percent_per_second"] = series
    window["rss_mb"] = rss_mb(pid)
    names = name_threads(pid)
    for tid, info in window["threads"].items():
        known = names.get(int(tid))
        if known is None:
            info["name"] = "(unnamed: py-spy absent or a non-Python thread)"
            continue
        info["name"] = known["name"]
        info["doing"] = " <- ".join(known["frames"])
        info["purpose"] = PURPOSES.get(known["name"]) or _guess(known)
    return window


def _guess(known: dict[str, Any]) -> str:
    frames = " ".join(known["frames"])
    if "asyncio" in known["name"] or "thread.py" in frames:
        return "a pool thread (concurrent.futures), parked on its queue"
    if "_inline_threads" in frames:
        return "an inline python call's thread (actions/_inline_threads.py), parked"
    return "see 'doing'"


def _cpu_ns(samples: dict[int, Any]) -> int:
    return sum(s.cpu_ns for s in samples.values())


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def agentcron_idle(
    home: Path, db: Path, least: float, seconds: float, what_if: list[str] | None = None
) -> dict[str, Any]:
    """``python -m agentcron run --config CFG --home HOME`` over a copy of ``db`` (a
    config file with no tasks: the tasks are in the database, as `agentcron add` puts
    them), watched once its start is logged and its start-up work is over (``settle``).
    ``what_if``: proposed changes applied in that process first (bench/against_whatif.py)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(db, home / "agentcron.db")
    config = home / "agentcron.yaml"
    config.write_text("tasks: {}\n")
    log = home / "daemon.log"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("AGENTCRON_HOME", None)
    spawned = time.monotonic()
    with log.open("w") as err:
        if what_if:
            from bench.against_whatif import wrapped_command

            daemon = wrapped_command(what_if, str(REPO))
        else:
            daemon = list(DAEMON)
        proc = subprocess.Popen(
            [*daemon, "run", "--config", str(config), "--home", str(home), "--log-level", "info"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            cwd=str(home),
        )
    try:
        deadline = time.monotonic() + 120
        while READY_LOG not in _tail(log, 100_000):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"agentcron run did not start: {_tail(log)}")
            time.sleep(0.05)
        started_s = time.monotonic() - spawned
        settled = settle(proc.pid, least, SETTLE_MOST)
        window = watch(proc.pid, seconds)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    errors = [line for line in _tail(log, 200_000).splitlines() if " ERROR " in line]
    return {
        "start_to_running_log_s": round(started_s, 2),
        **settled,
        **window,
        "log_errors": errors[:5],
    }


def aps_idle(tasks: int, least: float, seconds: float, add_seconds: float) -> dict[str, Any]:
    """An APScheduler child holding ``tasks`` jobs, watched once it says READY (it
    measures its memory and job list after the window: see ``against_aps.idle``)."""
    here = Path(__file__).resolve().parent
    params = json.dumps({"tasks": tasks, "add_seconds": add_seconds})
    spawned = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(here / "against.py"), "--child", "aps.idle", "--params", params],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = _readline(proc.stdout, 300)
        if not line.startswith("READY"):
            raise RuntimeError(f"the APScheduler child did not start: {line!r}")
        started_s = time.monotonic() - spawned
        settled = settle(proc.pid, least, SETTLE_MOST)
        window = watch(proc.pid, seconds)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    done = {}
    for text in out.splitlines():
        if text.startswith("RESULT "):
            done = json.loads(text[7:])
    return {"start_to_ready_s": round(started_s, 2), **done, **settled, **window}


def _readline(stream: Any, timeout: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0].strip() if box else ""
