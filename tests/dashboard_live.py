"""A real daemon with real command tasks and the dashboard served over its database,
for the browser tests and for ``docs/screenshots/make.py``.

The dashboard runs in this process (uvicorn in a thread, on a port the OS picks)
over its own store opened on the daemon's SQLite file, as the daemon will serve it
itself: the daemon writes, the dashboard reads and posts through the service.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from daemon_proc import DaemonProc, wait_for

if TYPE_CHECKING:
    from agentcron.service import Service

CHROMIUM = "/usr/bin/chromium"
NEVER = '"0 0 1 1 *"'  # New Year's midnight: runs come from triggers only
CONFIG = f"""\
timezone: Europe/Berlin
tasks:
  backup_db:
    cron: {NEVER}
    command: ["sh", "-c", "echo 'pg_dump: connection refused' >&2; exit 3"]
    retries: 0
  daily_report:
    cron: {NEVER}
    command: ["sh", "-c", "echo 'report: 42 new signups'; echo 'sent to the team'"]
    retries: 0
  nightly_sync:
    cron: "30 2 * * 1-5"
    command: ["echo", "synced"]
    retries: 0
  heartbeat_check:
    every: 15m
    command: ["true"]
    retries: 0
"""


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is absent (apt install chromium); never a downloaded browser"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"playwright is not installed ({exc})"
    return None


@dataclass
class Live:
    daemon: DaemonProc
    url: str
    service: Service


@contextmanager
def live_dashboard(folder: Path, config: str = CONFIG) -> Iterator[Live]:
    """Start the daemon, wait until it runs, serve the dashboard; stop both after."""
    import uvicorn
    from fastapi import FastAPI

    from agentcron.config.loader import load_config
    from agentcron.interfaces.dashboard import build_router
    from agentcron.service import Defaults, Service
    from agentcron.store import open_store

    daemon = DaemonProc(folder, config, extra_env={"AGENTCRON_STALE_AFTER": "30"})
    daemon.start()
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    store = None
    try:
        wait_for(lambda: _up(daemon), timeout=40, what="the daemon up")
        loaded = load_config(daemon.config)
        store = open_store(None, daemon.home)
        service = Service(store, daemon.home, defaults=Defaults(loaded.timezone, loaded.defaults))
        app = FastAPI()
        app.state.service = service
        app.include_router(build_router())
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        )
        thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
        thread.start()
        wait_for(lambda: server is not None and server.started, timeout=20, what="uvicorn up")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Live(daemon, f"http://127.0.0.1:{port}", service)
    finally:
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(10)
        daemon.stop()
        if store is not None:
            store.close()


def _up(daemon: DaemonProc) -> bool:
    """True once the daemon says it runs; an AssertionError with its log if it exited."""
    if "agentcron running as" in daemon.daemon_log():
        return True
    if daemon.proc is not None and daemon.proc.poll() is not None:
        raise AssertionError(f"the daemon exited: {daemon.daemon_log()[-2000:]}")
    return False


def wait_run_final(live: Live, task: str, after: int = 0, timeout: float = 30) -> int:
    """The id of ``task``'s newest run once it has ended (id above ``after``)."""
    final = {"succeeded", "failed", "skipped", "missed", "superseded", "cancelled", "expired"}

    def ended() -> int | None:
        runs = live.service.runs(task, 1)
        if runs and runs[0]["id"] > after and runs[0]["status"] in final:
            return int(runs[0]["id"])
        return None

    found: int = wait_for(ended, timeout=timeout, what=f"a finished run of {task}")
    return found
