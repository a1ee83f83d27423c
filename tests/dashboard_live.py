"""A real daemon with real command tasks serving its dashboard, for the browser
tests and for ``docs/screenshots/make.py``.

The daemon serves the web app itself (``api:`` with port 0; the URL is read from
its log). A second dashboard can be served from this process over the same
database (uvicorn in a thread): it shows what a page not served by the daemon says
once the daemon has stopped.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from daemon_proc import DaemonProc, wait_for

if TYPE_CHECKING:
    from agentcron.service import Service

CHROMIUM = "/usr/bin/chromium"
NEVER = '"0 0 1 1 *"'  # New Year's midnight: runs come from triggers only
# The daemon serves the API and the dashboard on a port the OS picks (in its log).
API = "api:\n  port: 0\n"
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


def need_browser() -> None:
    """Skip the calling test module where Chromium or Playwright is missing (fail it
    when AGENTCRON_REQUIRE_BROWSER=1, as CI sets): call at module level, before
    importing playwright."""
    missing = chromium_missing()
    if missing is None:
        return
    if os.environ.get("AGENTCRON_REQUIRE_BROWSER") == "1":
        pytest.fail(f"AGENTCRON_REQUIRE_BROWSER=1 but {missing}", pytrace=False)
    pytest.skip(f"browser tests skipped: {missing}", allow_module_level=True)


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
    url: str  # the dashboard the daemon serves
    service: Service  # this process's own, on the daemon's database


_LISTENING = re.compile(r"HTTP API listening on (http://\S+) ")


@contextmanager
def live_dashboard(folder: Path, config: str = CONFIG) -> Iterator[Live]:
    """Start the daemon with its web app on a free loopback port, wait until it runs
    and serves; stop it after. ``Live.service`` reads the same database, for the
    test's own triggers and waits."""
    from agentcron.config.loader import load_config
    from agentcron.service import Defaults, Service
    from agentcron.store import open_store

    daemon = DaemonProc(folder, config + API, extra_env={"AGENTCRON_STALE_AFTER": "30"})
    daemon.start()
    store = None
    try:
        wait_for(lambda: _up(daemon), timeout=40, what="the daemon up")
        found = wait_for(
            lambda: _LISTENING.search(daemon.daemon_log()), timeout=20, what="the web app up"
        )
        loaded = load_config(daemon.config)
        store = open_store(None, daemon.home)
        service = Service(store, daemon.home, defaults=Defaults(loaded.timezone, loaded.defaults))
        yield Live(daemon, found.group(1), service)
    finally:
        daemon.stop()
        if store is not None:
            store.close()


@contextmanager
def standalone_dashboard(service: Service) -> Iterator[str]:
    """The dashboard served from this process over ``service`` (uvicorn in a thread,
    a free port): what a second node or another host shows when the daemon is gone."""
    import uvicorn
    from fastapi import FastAPI

    from agentcron.interfaces.dashboard import build_router

    app = FastAPI()
    app.state.service = service
    app.include_router(build_router())
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=20, what="uvicorn up")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


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
