"""agentcron side by side with APScheduler 3 (in-memory job store): the figures of issue 16.

    .venv/bin/python bench/against.py [--against apscheduler] [--quick]
        [--only history,idle,steady,burst,view,startup,profile] [--profile DIR]

Each workload runs in a child process of its own, agentcron's and APScheduler's alike,
so imports, caches and memory of one never flatter another. With ``--against
apscheduler`` the same workloads run on APScheduler 3 (``BackgroundScheduler``, its
default in-memory job store and 10-thread executor) and the table shows agentcron's
figure over APScheduler's. Nothing is installed by this script: APScheduler must be
in the environment (``pip install 'apscheduler>=3.11,<4'``), and its absence is said.

Prints one JSON object on stdout and a readable table with the targets on stderr.
``--profile DIR`` also runs the two steady loads and the idle daemon (over 100,000
tasks, and over 1,000,000 recorded slots) under cProfile (the loop's thread; pstats
files in DIR), with every SQL statement timed and its plan shown, and the loop's
timers counted by who set them; ``--only profile --profile DIR`` runs only that.
See docs/bench-against.md for the method and figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a script: `bench` as a package

from bench.against_common import (  # noqa: E402
    REPO,
    RESULT,
    build_history_db,
    build_tasks_db,
    emit,
    median,
    say,
)

PARTS = ("history", "idle", "steady", "burst", "view", "startup")
FULL_TASKS = 100_000  # the idle fleet and task view
QUICK_TASKS = 30_000  # --quick: registering and reading 100,000 twice takes a minute


# ---- children ---------------------------------------------------------------------------
def run_child(name: str, params: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
    """Run ``name`` (``agentcron.X`` or ``aps.X``) in a fresh interpreter; its result."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    try:
        proc = subprocess.run(
            [
                sys.executable,
                str(HERE / "against.py"),
                "--child",
                name,
                "--params",
                json.dumps(params),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"{name} did not finish within {timeout:.0f}s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT):
            result: dict[str, Any] = json.loads(line[len(RESULT) :])
            return result
    return {"error": f"{name} exited {proc.returncode}", "stderr": proc.stderr[-3000:]}


def child_main(name: str, params: dict[str, Any]) -> None:
    import importlib

    side, _, what = name.partition(".")
    modules = {"agentcron": "bench.against_agentcron", "aps": "bench.against_aps"}
    if side not in modules:
        raise SystemExit(f"unknown child {name!r}: agentcron.X or aps.X")
    children: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]
    children = importlib.import_module(modules[side]).CHILDREN
    emit(children[what](params))


def apscheduler_version() -> str | None:
    """APScheduler's version if a 3.x is importable here (asked in a child: the parent
    stays free of it), else None."""
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import apscheduler, importlib.metadata as m; print(m.version('apscheduler'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    version = probe.stdout.strip()
    return version if probe.returncode == 0 and version.startswith("3.") else None


# ---- the parts ----------------------------------------------------------------------------
class Bench:
    def __init__(self, ns: argparse.Namespace, scratch: Path, aps: bool) -> None:
        self.ns = ns
        self.scratch = scratch
        self.aps = aps
        quick = ns.quick
        # an idle daemon's windows: ten of its 6 s beats (20 s held three or four, and
        # which of them a window caught moved the figure by a third)
        self.idle_seconds = 6.0 if quick else 60.0
        self.history_seconds = 6.0 if quick else 60.0
        self.settle = 2.0 if quick else 3.0  # at least; then until quiet
        self.steady_seconds = 20.0 if quick else 30.0
        self.steady_lead = 2.5 if quick else 4.0  # registering 1,000 tasks and starting
        self.steady_warmup = 1.0 if quick else 2.0
        self.add_seconds = 2.0 if quick else 5.0
        self.imports = 2 if quick else 5
        self._tasks_db: Path | None = None
        self._aps_memory: dict[str, Any] | None = None  # from the APScheduler idle child
        self._aps_view: dict[str, Any] | None = None
        self.what_if = [w.strip() for w in ns.what_if.split(",") if w.strip()]

    def tasks_db(self) -> Path:
        """The ``--tasks`` command tasks that cannot fire (built once, copied per use)."""
        if self._tasks_db is None:
            path = self.scratch / "tasks.db"
            took = build_tasks_db(path, self.ns.tasks)
            say(f"built {self.ns.tasks:,} tasks in {took:.1f}s")
            self._tasks_db = path
        return self._tasks_db

    def history(self) -> dict[str, Any]:
        from bench.against_idle import agentcron_idle

        out: dict[str, Any] = {}
        for slots in (0, 100_000, 1_000_000):
            path = self.scratch / f"history-{slots}.db"
            took = build_history_db(path, slots)
            daemon = not (self.ns.quick and slots == 100_000)  # --quick: the two ends
            say(f"history: {slots:,} slots built in {took:.1f}s; tick costs, idle daemon")
            costs = run_child("agentcron.tick_costs", {"db": str(path), "samples": 200})
            out[str(slots)] = {"build_s": round(took, 1), "tick_costs": costs}
            if daemon:
                out[str(slots)]["idle"] = agentcron_idle(
                    self.scratch / f"home-history-{slots}",
                    path,
                    self.settle,
                    self.history_seconds,
                    self.what_if,
                )
            path.unlink()
        return out

    def idle(self) -> dict[str, Any]:
        from bench.against_idle import agentcron_idle, aps_idle

        say(f"idle: agentcron run over {self.ns.tasks:,} tasks")
        out = {
            "agentcron": agentcron_idle(
                self.scratch / "home-idle",
                self.tasks_db(),
                self.settle,
                self.idle_seconds,
                self.what_if,
            )
        }
        if self.aps:
            say(f"idle: APScheduler with {self.ns.tasks:,} jobs")
            got = aps_idle(self.ns.tasks, self.settle, self.idle_seconds, self.add_seconds)
            self._aps_memory, self._aps_view = got.pop("memory", None), got.pop("view", None)
            out["apscheduler"] = got
        return out

    def steady(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for shape in ("staggered", "aligned"):
            params = {
                "tasks": 1000,
                "aligned": shape == "aligned",
                "seconds": self.steady_seconds,
                "warmup": self.steady_warmup,
                "lead": self.steady_lead,
                "concurrency": self.ns.steady_concurrency,
            }
            say(f"steady {shape}: agentcron, {self.steady_seconds:.0f}s")
            mine = {**params, "what_if": self.what_if}
            out[shape] = {"agentcron": run_child("agentcron.steady", mine)}
            if self.aps:
                say(f"steady {shape}: APScheduler")
                out[shape]["apscheduler"] = run_child("aps.steady", params)
        return out

    def burst(self) -> dict[str, Any]:
        params = {"slots": 10_000, "concurrency": 10, "cap": 60.0, "lead": 3.0}
        say("burst 10,000 at max_concurrency 10: agentcron")
        out = {"agentcron": run_child("agentcron.burst", params)}
        if self.aps:
            say("burst 10,000 on 10 threads: APScheduler")
            out["apscheduler"] = run_child("aps.burst", params)
        return out

    def view(self) -> dict[str, Any]:
        params = {"db": str(self.tasks_db()), "add_seconds": self.add_seconds}
        say(f"task view over {self.ns.tasks:,} tasks and add_task: agentcron")
        out = {"agentcron": run_child("agentcron.task_view", params)}
        if self.aps and self._aps_view is not None:
            out["apscheduler"] = self._aps_view  # measured by the idle child
        elif self.aps:
            say("get_jobs and add_job: APScheduler")
            out["apscheduler"] = run_child(
                "aps.job_view", {"tasks": self.ns.tasks, "add_seconds": self.add_seconds}
            )
        return out

    def startup(self) -> dict[str, Any]:
        say(f"import time and memory of {self.ns.tasks:,} tasks")
        sides = [("agentcron", "agentcron")] + ([("apscheduler", "aps")] if self.aps else [])
        out: dict[str, Any] = {}
        for side, prefix in sides:
            runs = [run_child(f"{prefix}.import_time", {}) for _ in range(self.imports)]
            keys = [k for k in runs[0] if k.endswith("_s")]
            memory = self._aps_memory if side == "apscheduler" else None
            out[side] = {
                "import_median": {k: round(median([r[k] for r in runs]), 4) for k in keys},
                "import_runs": runs,
                "memory": memory or run_child(f"{prefix}.memory", {"tasks": self.ns.tasks}),
            }
        return out

    def profile(self, folder: Path) -> dict[str, Any]:
        folder.mkdir(parents=True, exist_ok=True)
        out: dict[str, Any] = {}
        for shape in ("staggered", "aligned"):
            say(f"profile: steady {shape}")
            out[f"steady_{shape}"] = run_child(
                "agentcron.steady",
                {
                    "tasks": 1000,
                    "aligned": shape == "aligned",
                    "seconds": min(self.steady_seconds, 20.0),
                    "warmup": 2.0,
                    "lead": 4.0,
                    "concurrency": self.ns.steady_concurrency,
                    "profile": str(folder / f"steady-{shape}.pstats"),
                    "what_if": self.what_if,
                },
            )
        history = self.scratch / "history-profile.db"
        build_history_db(history, 1_000_000)
        many = f"idle_{self.ns.tasks // 1000}k_tasks"
        for label, db in ((many, self.tasks_db()), ("idle_1m_slots", history)):
            say(f"profile: {label}")
            out[label] = run_child(
                "agentcron.idle_profile",
                {
                    "db": str(db),
                    "settle": self.settle,
                    "seconds": max(self.idle_seconds, 10.0),
                    "profile": str(folder / f"{label}.pstats"),
                    "what_if": self.what_if,
                },
            )
        history.unlink()
        return out


# ---- verdicts ------------------------------------------------------------------------------
def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _ratio(a: Any, b: Any) -> float | None:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return None
    return round(a / b, 2)


def verdicts(out: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target of issue 16: the figure, APScheduler's, the ratio, the target
    and whether it is met (None where this run did not measure it, or measured it with
    another task count than the target's 100,000)."""
    rows: list[dict[str, Any]] = []
    tasks = int(_get(out, "params", "tasks") or FULL_TASKS)
    many = f"{tasks // 1000}k tasks"
    at_full = tasks == FULL_TASKS

    def row(
        what: str,
        ours: Any,
        theirs: Any,
        target: str,
        ok: Callable[[Any, float | None], bool] | None,
        unit: str = "",
    ) -> None:
        if ours is None and theirs is None:
            return  # not measured in this run (a part left out, or --quick's skip)
        ratio = _ratio(ours, theirs)
        met = None if ours is None or ok is None else bool(ok(ours, ratio))
        rows.append(
            {
                "measure": what,
                "agentcron": ours,
                "apscheduler": theirs,
                "ratio": ratio,
                "unit": unit,
                "target": target,
                "met": met,
            }
        )

    history = out.get("history") or {}
    for slots in ("0", "100000", "1000000"):
        h = history.get(slots)
        if not h:
            continue
        label = f"{int(slots):,} slots"
        row(
            f"empty claim, {label}",
            _get(h, "tick_costs", "claim_empty_us"),
            None,
            "< 1000 µs at 1M",
            (lambda v, r: v < 1000) if slots == "1000000" else None,
            "µs",
        )
        row(
            f"watchdog's running_slots, {label}",
            _get(h, "tick_costs", "running_slots_us"),
            None,
            "(no target; every 5 s)",
            None,
            "µs",
        )
        row(
            f"idle daemon CPU, {label}",
            _get(h, "idle", "cpu_percent_of_core"),
            None,
            "< 0.05 % at 1M",
            (lambda v, r: v < 0.05) if slots == "1000000" else None,
            "% core",
        )
    idle = out.get("idle") or {}
    if idle:
        row(
            f"idle {many}: CPU",
            _get(idle, "agentcron", "cpu_percent_of_core"),
            _get(idle, "apscheduler", "cpu_percent_of_core"),
            "(reported)",
            None,
            "% core",
        )
        row(
            f"idle {many}: start-up CPU",
            _get(idle, "agentcron", "settle_cpu_s"),
            None,
            "(reported)",
            None,
            "s",
        )
        row(
            f"idle {many}: RSS",
            _get(idle, "agentcron", "rss_mb"),
            _get(idle, "apscheduler", "rss_mb"),
            "(reported)",
            None,
            "MB",
        )
        row(
            f"idle {many}: wake-ups",
            _get(idle, "agentcron", "wakeups_per_s"),
            _get(idle, "apscheduler", "wakeups_per_s"),
            "≤ 1 /s",
            lambda v, r: v <= 1,
            "/s",
        )
    steady = out.get("steady") or {}
    for shape, cpu_max, p99_max in (("staggered", 1.5, 20.0), ("aligned", 2.0, 100.0)):
        s = steady.get(shape)
        if not s:
            continue
        row(
            f"steady {shape}: CPU",
            _get(s, "agentcron", "cpu_percent_of_core"),
            _get(s, "apscheduler", "cpu_percent_of_core"),
            f"≤ {cpu_max}× APScheduler",
            lambda v, r, m=cpu_max: r is not None and r <= m,  # type: ignore[misc]
            "% core",
        )
        row(
            f"steady {shape}: p99 lateness",
            _get(s, "agentcron", "lateness", "p99_ms"),
            _get(s, "apscheduler", "lateness", "p99_ms"),
            f"≤ {p99_max:.0f} ms",
            lambda v, r, m=p99_max: v <= m,  # type: ignore[misc]
            "ms",
        )
        row(
            f"steady {shape}: p50 lateness",
            _get(s, "agentcron", "lateness", "p50_ms"),
            _get(s, "apscheduler", "lateness", "p50_ms"),
            "(reported)",
            None,
            "ms",
        )
        missing = _get(s, "agentcron", "slots_missing")
        row(
            f"steady {shape}: slots not recorded",
            missing,
            None,
            "0",
            lambda v, r: v == 0,
        )
    burst = out.get("burst") or {}
    if burst:
        row(
            "burst 10,000 at 10: starts",
            _get(burst, "agentcron", "starts_per_s"),
            _get(burst, "apscheduler", "starts_per_s"),
            "≥ 5,000 /s",
            lambda v, r: v >= 5000,
            "/s",
        )
    view = out.get("view") or {}
    if view:
        row(
            f"list_tasks, {many}",
            _get(view, "agentcron", "list_tasks_s"),
            _get(view, "apscheduler", "get_jobs_s"),
            "≤ 2 s at 100k",
            (lambda v, r: v <= 2) if at_full else None,
            "s",
        )
        row(
            "add_task rate",
            _get(view, "agentcron", "add_task_per_s"),
            _get(view, "apscheduler", "add_job_per_s"),
            "≥ 2,000 /s",
            lambda v, r: v >= 2000,
            "/s",
        )
    startup = out.get("startup") or {}
    if startup:
        row(
            "import (the scheduler class)",
            _get(startup, "agentcron", "import_median", "from_agentcron_import_scheduler_s"),
            _get(
                startup,
                "apscheduler",
                "import_median",
                "from_apscheduler_import_backgroundscheduler_s",
            ),
            "(reported)",
            None,
            "s",
        )
        row(
            f"memory of {many} in code",
            _get(startup, "agentcron", "memory", "held_mb"),
            _get(startup, "apscheduler", "memory", "held_mb"),
            "(reported)",
            None,
            "MB",
        )
    return rows


def run_queue_waits(out: Any, path: str = "") -> dict[str, str]:
    """Each measuring window's run-queue wait (time its threads were ready to run but
    a CPU was not free: taken by another process, or by another of its own threads),
    summed over its threads, and the CPU other processes used meanwhile: how much the
    shared machine stretched that window."""
    found: dict[str, str] = {}
    if isinstance(out, dict):
        if "run_queue_wait_ms" in out and "seconds" in out and "threads" in out:
            others = out.get("other_processes_percent_of_core")
            found[path.strip(".")] = (
                f"{out['run_queue_wait_ms']:.0f} ms in {out['seconds']} s; other processes "
                f"used {others} % of a core meanwhile"
            )
            return found
        for key, value in out.items():
            if key not in ("verdicts", "machine", "params"):
                found.update(run_queue_waits(value, f"{path}.{key}".replace(".window", "")))
    return found


def print_table(rows: Sequence[dict[str, Any]], machine: dict[str, Any]) -> None:
    def fmt(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:,.4g}" if abs(value) < 10 else f"{value:,.1f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    head = ("measure", "agentcron", "APScheduler", "ratio", "unit", "target", "met")
    lines = [
        (
            r["measure"],
            fmt(r["agentcron"]),
            fmt(r["apscheduler"]),
            fmt(r["ratio"]),
            r["unit"],
            r["target"],
            {True: "yes", False: "NO", None: ""}[r["met"]],
        )
        for r in rows
    ]
    widths = [max([len(h)] + [len(line[i]) for line in lines]) for i, h in enumerate(head)]
    out = sys.stderr
    print("", file=out)
    print(
        f"agentcron vs APScheduler 3 ({machine.get('apscheduler') or 'absent'}), "
        f"commit {machine['commit']}, load {machine['loadavg']}",
        file=out,
    )
    if machine.get("what_if"):
        print(
            f"WHAT-IF {machine['what_if']} applied to agentcron's daemons, loads and profiles: "
            "those figures are not the product's",
            file=out,
        )
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)), file=out)
    out.flush()


def machine_info(aps_version: str | None) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "nproc": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "commit": commit,
        "src_uncommitted_files": len(dirty.splitlines()) if dirty else 0,
        "apscheduler": aps_version,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--against",
        choices=("apscheduler",),
        default=None,
        help="also run every workload on APScheduler 3 (must be installed already)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="shorter windows, 30,000 tasks: about 3 minutes"
    )
    parser.add_argument("--only", default="", help=f"comma-separated subset of {PARTS}, or profile")
    parser.add_argument(
        "--tasks",
        type=int,
        default=None,
        help=f"tasks of the idle, view and memory cases ({FULL_TASKS:,}; --quick {QUICK_TASKS:,})",
    )
    parser.add_argument(
        "--steady-concurrency",
        type=int,
        default=1000,
        help="agentcron's max_concurrency in the steady loads (1000: room for every task)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="also profile the steady loads and the idle daemon (pstats files into DIR)",
    )
    parser.add_argument(
        "--what-if",
        default="",
        metavar="NAMES",
        help="apply proposed changes (bench/against_whatif.py: sleep_for, running_slots) "
        "in agentcron's steady and profile children; the figures are then not the product's",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.tasks is None:
        ns.tasks = QUICK_TASKS if ns.quick else FULL_TASKS
    if ns.child:
        child_main(ns.child, json.loads(ns.params))
        return
    wanted = [w.strip() for w in ns.only.split(",") if w.strip()] or list(PARTS)
    unknown = set(wanted) - {*PARTS, "profile"}
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {PARTS} or profile")
    if "profile" in wanted and ns.profile is None:
        parser.error("--only profile needs --profile DIR (where the pstats files go)")
    aps_version = None
    if ns.against == "apscheduler":
        aps_version = apscheduler_version()
        if aps_version is None:
            say(
                "APScheduler 3 is not installed in this environment: measuring agentcron "
                "alone. Install it with: .venv/bin/pip install 'apscheduler>=3.11,<4'"
            )
    out: dict[str, Any] = {"machine": machine_info(aps_version), "params": {}}
    if ns.what_if:
        from bench.against_whatif import PATCHES

        names = [w.strip() for w in ns.what_if.split(",") if w.strip()]
        if set(names) - set(PATCHES):
            parser.error(
                f"unknown --what-if {sorted(set(names) - set(PATCHES))}; {sorted(PATCHES)}"
            )
        out["machine"]["what_if"] = names
    out["params"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(ns).items()}
    out["params"].pop("child")
    out["params"].pop("params")
    scratch = Path(tempfile.mkdtemp(prefix="agentcron-against-"))
    os.environ["AGENTCRON_BENCH_SCRATCH"] = str(scratch)
    bench = Bench(ns, scratch, aps_version is not None)
    began = time.monotonic()
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        (name, getattr(bench, name)) for name in PARTS if name in wanted
    ]
    if ns.profile is not None and (not ns.only or "profile" in wanted):
        steps.append(("profile", lambda: bench.profile(ns.profile)))
    out["load_during"] = {}
    try:
        for name, step in steps:
            t0 = time.monotonic()
            out[name] = step()
            out["load_during"][name] = {
                "loadavg_1m_after": round(os.getloadavg()[0], 2),
                "seconds": round(time.monotonic() - t0, 1),
            }
            say(f"{name} done in {time.monotonic() - t0:.0f}s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    out["bench_seconds"] = round(time.monotonic() - began, 1)
    out["verdicts"] = verdicts(out)
    out["run_queue_wait"] = run_queue_waits(out)
    print(json.dumps(out, indent=2))
    print_table(out["verdicts"], out["machine"])
    print("run-queue wait and others' CPU in each measuring window:", file=sys.stderr)
    for where, wait in out["run_queue_wait"].items():
        print(f"  {where}: {wait}", file=sys.stderr)


if __name__ == "__main__":
    main()
