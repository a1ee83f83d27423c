"""The watchdog against real processes (PRODUCT.md §7, §8; seeds/002).

The seed: an hourly heartbeat went silent for 35 hours in a live process because
one hung run held a busy flag. Here a real ``agentcron run`` keeps a 2 s heartbeat
on its grid while two other tasks hang (a python call that blocks forever and a
command that ignores SIGTERM); the hung runs are reported at ``stuck_after``,
killed at ``timeout`` and their next slots still run. Also: a python pool worker
killed with SIGKILL mid-run, the dead man's switch ping, and ``doctor`` after the
daemon itself is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from daemon_proc import DaemonProc, kill_pids_in, wait_for

pytestmark = pytest.mark.slow


class Receiver(ThreadingHTTPServer):
    """Records JSON notifications POSTed to it and the paths of GET pings."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[dict[str, Any]] = []
        self.pings: list[tuple[float, str]] = []  # (monotonic time, path)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def bodies(self, task: str) -> list[str]:
        """Message texts about ``task`` (the json:// payload has no task field)."""
        return [str(p.get("message", "")) for p in list(self.posts) if task in p.get("title", "")]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            self.server.posts.append(json.loads(body))
        except ValueError:
            self.server.pings.append((time.monotonic(), self.path))  # a /fail ping
        self._ok()

    def do_GET(self) -> None:
        self.server.pings.append((time.monotonic(), self.path))
        self._ok()

    def _ok(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def _start(d: DaemonProc) -> None:
    """Start the daemon and wait until it runs, so the first CLI call finds its
    database and tasks in place rather than racing the daemon's start-up."""
    d.start()
    wait_for(lambda: "agentcron running as" in d.daemon_log(), 30, 0.05, "the daemon runs")


def _when(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _read_pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# ---- the seed: a hung run cannot silence the heartbeat --------------------------------

HANG_MODULE = """
import os
import time


def block(pids: str) -> str:
    with open(pids, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(10**6)
    return "never"
"""

HANG_CONFIG = """
notify: ["json://{hook}/hook"]
tasks:
  heartbeat:
    every: 2s
    command: ["echo", "alive"]
  hang_py:
    every: 12s
    python: "hang_mod:block"
    args: ["{py_pids}"]
    stuck_after: 1s
    timeout: 7s
    kill_grace: 1s
    retries: 0
  hang_cmd:
    every: 12s
    command: ["sh", "-c", "echo $$ >> {cmd_pids}; trap '' TERM; while :; do sleep 1; done"]
    stuck_after: 1s
    timeout: 7s
    kill_grace: 1s
    retries: 0
"""

# The daemon's watchdog looks every 5 s (DaemonOptions.watchdog_interval, not settable
# from the CLI), so the window between stuck_after and timeout must be wider than that
# for the alert to come before the kill every time: 1 s .. 7 s.


def _assert_heartbeat_on_grid(d: DaemonProc, since: datetime, until: datetime) -> None:
    """Every 2 s grid point in [since, until] has a succeeded slot started within 1.5 s."""
    runs = sorted(d.json("runs", "heartbeat", "--limit", "1000"), key=lambda r: r["scheduled_for"])
    slots = [r for r in runs if since <= _when(r["scheduled_for"]) <= until]
    assert slots, runs
    times = [_when(r["scheduled_for"]) for r in slots]
    gaps = [b - a for a, b in pairwise(times)]
    assert all(g == timedelta(seconds=2) for g in gaps), [str(g) for g in gaps]
    assert times[0] - since < timedelta(seconds=2) and until - times[-1] < timedelta(seconds=2)
    for r in slots:
        assert r["status"] == "succeeded", r
        lag = _when(r["started_at"]) - _when(r["scheduled_for"])
        assert timedelta(0) <= lag <= timedelta(seconds=1.5), (r["scheduled_for"], lag)


def _first_two_slots(d: DaemonProc, task: str) -> list[dict[str, Any]] | None:
    runs = sorted(d.json("runs", task), key=lambda r: r["scheduled_for"])
    if len(runs) >= 2 and runs[0]["status"] == "failed" and runs[1]["attempts"] >= 1:
        return runs
    return None


def test_hung_runs_are_reported_killed_and_do_not_silence_the_heartbeat(
    tmp_path: Path, receiver: Receiver
) -> None:
    py_pids, cmd_pids = tmp_path / "py.pids", tmp_path / "cmd.pids"
    (tmp_path / "hang_mod.py").write_text(HANG_MODULE)
    config = HANG_CONFIG.format(hook=receiver.url, py_pids=py_pids, cmd_pids=cmd_pids)
    d = DaemonProc(tmp_path, config)
    try:
        _start(d)
        wait_for(
            lambda: any(r["status"] == "succeeded" for r in d.json("runs", "heartbeat")),
            what="heartbeat fires",
        )
        # From the first run on (a slot due while the daemon was still starting its
        # python workers may be recorded missed; that is start-up, not a hang).
        first_beat = _when(
            min(
                r["scheduled_for"]
                for r in d.json("runs", "heartbeat", "--limit", "1000")
                if r["status"] == "succeeded"
            )
        )
        # Both hung tasks have run one slot to its timeout and started the next.
        py_runs = wait_for(lambda: _first_two_slots(d, "hang_py"), 60, 0.3, "hang_py slot 2")
        cmd_runs = wait_for(lambda: _first_two_slots(d, "hang_cmd"), 60, 0.3, "hang_cmd slot 2")
        checked_until = datetime.now().astimezone() - timedelta(seconds=2)

        for task, runs in (("hang_py", py_runs), ("hang_cmd", cmd_runs)):
            first, second = runs[0], runs[1]
            assert first["error_class"] == "timeout", first
            assert first["attempts"] == 1, first  # retries: 0
            ran = _when(first["finished_at"]) - _when(first["started_at"])
            assert timedelta(seconds=6.5) <= ran <= timedelta(seconds=12), (task, ran)
            assert _when(second["scheduled_for"]) - _when(first["scheduled_for"]) == timedelta(
                seconds=12
            )
            bodies = receiver.bodies(task)
            stuck = [b for b in bodies if "has been running for" in b]
            assert len(stuck) >= 1, bodies
            assert "longer than its 1s limit" in stuck[0], stuck
            # The warning came while the run was still going, before the kill was reported.
            assert bodies.index(stuck[0]) < min(
                (i for i, b in enumerate(bodies) if "timed out" in b), default=len(bodies)
            ), bodies
            assert "timed out after 7s" in (first["error"] or ""), first

        # The killed runs are gone with everything they started.
        wait_for(lambda: _read_pids(py_pids) and _read_pids(cmd_pids), what="pids written")
        first_py, first_cmd = _read_pids(py_pids)[0], _read_pids(cmd_pids)[0]
        wait_for(lambda: not _pid_alive(first_py), 10, what="python worker killed")
        wait_for(lambda: not _pid_alive(first_cmd), 10, what="TERM-ignoring shell killed")

        # The whole time the two tasks hung, the heartbeat kept its grid.
        hung_from = min(_when(r[0]["started_at"]) for r in (py_runs, cmd_runs))
        hung_until = max(_when(r[0]["finished_at"]) for r in (py_runs, cmd_runs))
        assert first_beat < hung_from and hung_until < checked_until
        _assert_heartbeat_on_grid(d, first_beat, checked_until)
        # The heartbeat itself never opened an incident.
        assert receiver.bodies("heartbeat") == []
        log = d.daemon_log()
        assert "Traceback" not in log, log[-3000:]
    finally:
        d.stop()
        kill_pids_in(py_pids)
        kill_pids_in(cmd_pids)


# ---- a python pool worker killed with SIGKILL mid-run -----------------------------------

VICTIM_MODULE = """
import os
import time


def run(pids: str) -> str:
    if not os.path.exists(pids):  # the first call ever blocks until it is killed
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(60)
        return "first call finished (it should have been killed)"
    return f"attempt {os.environ.get('AGENTCRON_ATTEMPT')} done"
"""

VICTIM_CONFIG = """
notify: ["json://{hook}/hook"]
tasks:
  victim:
    every: 1d
    python: "victim_mod:run"
    args: ["{pids}"]
    retries: 2
    retry_backoff: {{base: 1s, jitter: 0}}
    timeout: 40s
"""


def _pool_worker_running(daemon_pid: int, task_pid: int) -> int | None:
    """The pool worker (a child of the daemon) that is, or runs, the task's process."""
    for child in _children(daemon_pid):
        if "agentcron.actions._worker" not in _cmdline(child):
            continue
        if child == task_pid or task_pid in _children(child):
            return child
    return None


def test_a_python_worker_killed_mid_run_is_worker_lost_and_retried(
    tmp_path: Path, receiver: Receiver
) -> None:
    pids = tmp_path / "victim.pids"
    (tmp_path / "victim_mod.py").write_text(VICTIM_MODULE)
    d = DaemonProc(tmp_path, VICTIM_CONFIG.format(hook=receiver.url, pids=pids))
    try:
        _start(d)
        d.cli("trigger", "victim")
        task_pid = wait_for(lambda: _read_pids(pids), what="the first attempt started")[0]
        assert d.proc is not None
        worker = wait_for(
            lambda: _pool_worker_running(d.proc.pid if d.proc else 0, task_pid),
            what="the pool worker running the task",
        )
        os.kill(worker, signal.SIGKILL)

        done = wait_for(
            lambda: [r for r in d.json("runs", "victim") if r["status"] in ("succeeded", "failed")],
            40,
            0.3,
            "the slot finished",
        )
        runs = d.json("runs", "victim")
        assert len(runs) == 1, runs
        detail = d.json("logs", str(done[0]["id"]))
        attempts = detail["attempts_detail"]
        assert attempts[0]["error_class"] == "worker_lost", attempts
        assert runs[0]["status"] == "succeeded", runs
        assert runs[0]["attempts"] == 2, runs
        assert attempts[1]["status"] == "succeeded", attempts
        # The owner is told once that it failed (and will be retried), then that it recovered.
        wait_for(lambda: any("✔" in b for b in receiver.bodies("victim")), 20, what="recovery")
        bodies = receiver.bodies("victim")
        opened = [b for b in bodies if b.startswith("⚠ victim failed")]
        assert len(opened) == 1, bodies
        assert "Retrying at" in opened[0], opened
        assert "recovered after 1 retry" in bodies[-1], bodies
    finally:
        d.stop()
        kill_pids_in(pids)


def test_a_python_worker_killed_mid_run_leaves_a_record_and_tells_the_owner(
    tmp_path: Path, receiver: Receiver
) -> None:
    """What holds today whatever the class: one record, the owner told exactly once,
    and the pool serves the next run with a fresh worker."""
    pids = tmp_path / "victim.pids"
    (tmp_path / "victim_mod.py").write_text(VICTIM_MODULE)
    d = DaemonProc(tmp_path, VICTIM_CONFIG.format(hook=receiver.url, pids=pids))
    try:
        _start(d)
        d.cli("trigger", "victim")
        task_pid = wait_for(lambda: _read_pids(pids), what="the first attempt started")[0]
        worker = wait_for(
            lambda: _pool_worker_running(d.proc.pid if d.proc else 0, task_pid),
            what="the pool worker running the task",
        )
        os.kill(worker, signal.SIGKILL)
        wait_for(
            lambda: [r for r in d.json("runs", "victim") if r["status"] in ("succeeded", "failed")],
            40,
            0.3,
            "the slot finished",
        )
        [run] = d.json("runs", "victim")
        detail = d.json("logs", str(run["id"]))
        first = detail["attempts_detail"][0]
        assert "SIGKILL" in (first["error"] or "") + (first["explanation"] or ""), first
        wait_for(lambda: receiver.bodies("victim"), 20, what="the owner is told")
        # a second manual run is served by a fresh worker
        d.cli("trigger", "victim")
        wait_for(
            lambda: sum(r["status"] == "succeeded" for r in d.json("runs", "victim")) >= 1,
            40,
            0.3,
            "a later run succeeds on a fresh worker",
        )
        opened = [b for b in receiver.bodies("victim") if not b.startswith("✔")]
        assert len(opened) == 1, receiver.bodies("victim")
        assert not _pid_alive(worker)
    finally:
        d.stop()
        kill_pids_in(pids)


# ---- the dead man's switch and doctor --------------------------------------------------

PULSE_CONFIG = """
heartbeat_url: "http://{hook}/ping/abc"
tasks:
  beat:
    every: 1d
    command: ["echo", "hi"]
"""


def test_the_daemon_pings_its_heartbeat_url_at_start(tmp_path: Path, receiver: Receiver) -> None:
    d = DaemonProc(tmp_path, PULSE_CONFIG.format(hook=receiver.url))
    try:
        started = time.monotonic()
        _start(d)
        at, path = wait_for(lambda: receiver.pings and receiver.pings[0], 15, 0.05, "a ping")
        assert path == "/ping/abc"
        assert at - started < 10  # interpreter start + config load + first ping
        assert not any(p.endswith("/fail") for _, p in receiver.pings)
    finally:
        d.stop()


WEDGE_MODULE = """
import time


async def block() -> str:
    time.sleep(75)  # blocks the daemon's event loop itself (an inline async task)
    return "woke up"
"""

WEDGE_CONFIG = """
heartbeat_url: "http://{hook}/ping/abc"
tasks:
  wedge:
    every: 1d
    python: "wedge_mod:block"
    isolation: inline
    timeout: 5s
"""


def test_a_wedged_loop_is_reported_by_the_watchdog_and_doctor(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The seed's failure mode at its worst: the process lives, the loop does not
    tick. The watchdog thread pings the dead man's switch's /fail, and doctor calls
    the daemon stale (its heartbeat comes from the loop)."""
    (tmp_path / "wedge_mod.py").write_text(WEDGE_MODULE)
    d = DaemonProc(tmp_path, WEDGE_CONFIG.format(hook=receiver.url))
    try:
        _start(d)
        wait_for(lambda: receiver.pings, 15, 0.05, "the first ping")
        wait_for(lambda: _doctor(d).returncode == 0, 30, 0.5, "doctor sees the daemon alive")
        # Before the trigger command: the wedge starts at a pass after the command wrote
        # its slot, and the stall is counted from that pass (the CLI may return later).
        wedged = time.monotonic()
        d.cli("trigger", "wedge")
        fails = wait_for(
            lambda: [(t, p) for t, p in receiver.pings if p.endswith("/fail")],
            60,
            0.2,
            "a /fail ping from the watchdog",
        )
        assert [p for _, p in fails] == ["/ping/abc/fail"]
        assert fails[0][0] - wedged >= 29.9  # LOOP_STALL: not before 30 s of silence
        assert d.proc is not None and d.proc.poll() is None  # the process is alive
        res = wait_for(
            lambda: (r := _doctor(d)).returncode != 0 and r, 30, 1.0, "doctor says it hangs"
        )
        # its process lives and holds the home: hung, not gone ("start it" would fail)
        said = res.stdout + res.stderr
        assert f"the daemon (pid {d.proc.pid}) is running but not answering" in said, said
        assert "scheduler loop has not ticked" in d.daemon_log()
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.kill9()


def _doctor(d: DaemonProc) -> subprocess.CompletedProcess[str]:
    return d.cli("doctor", check=False)


def test_doctor_reports_a_stale_daemon_after_kill9(tmp_path: Path) -> None:
    """The daemon heartbeats every 5 s; doctor calls it stale after 30 s of silence
    (service.DAEMON_STALE_AFTER), so this test waits that long."""
    d = DaemonProc(tmp_path, PULSE_CONFIG.format(hook="127.0.0.1:9"))
    try:
        _start(d)
        wait_for(lambda: _doctor(d).returncode == 0, 30, 0.5, "doctor sees the daemon alive")
        d.kill9()
        res = wait_for(
            lambda: (r := _doctor(d)).returncode != 0 and r,
            60,
            1.0,
            "doctor reports the dead daemon",
        )
        text = res.stdout + res.stderr
        assert "stale" in text or "not running" in text, text
        assert d.proc is not None
        status = json.loads(d.cli("doctor", "--json", check=False).stdout)
        assert status["ok"] is False
        assert {n["state"] for n in status["daemon"]["nodes"]} <= {"stale", "stopped"}
    finally:
        d.stop()


def test_doctor_sees_a_dead_local_daemon_at_once(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path, PULSE_CONFIG.format(hook="127.0.0.1:9"))
    try:
        _start(d)
        wait_for(lambda: _doctor(d).returncode == 0, 30, 0.5, "doctor sees the daemon alive")
        d.kill9()
        res = _doctor(d)
        text = res.stdout + res.stderr
        assert res.returncode != 0, text
        assert "stale" in text or "not running" in text, text
    finally:
        d.stop()
