"""The API served by a real daemon: ``agentcron run --api 127.0.0.1:0`` logs the
address it bound, answers over HTTP while it schedules, starts a triggered run at
once (the trigger wakes the loop), counts it in /metrics, and stops cleanly; a
daemon asked to listen beyond loopback without a token refuses to start."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from daemon_proc import wait_for

pytestmark = pytest.mark.slow

CONFIG = """
tasks:
  beat:
    every: 1h
    command: ["echo", "beat"]
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    (tmp_path / "agentcron.yaml").write_text(CONFIG)
    log = tmp_path / "daemon.log"
    env = {**os.environ, "AGENTCRON_HOME": str(tmp_path / "home"), "AGENTCRON_SHUTDOWN_GRACE": "2s"}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentcron", "run", "--api", "127.0.0.1:0"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_running_daemon_serves_the_api(
    daemon: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, log = daemon

    def bound() -> str | None:
        found = re.search(r"HTTP API listening on (http://127\.0\.0\.1:\d+)", log.read_text())
        assert proc.poll() is None, log.read_text()
        return found.group(1) if found else None

    base = wait_for(bound, timeout=60, what="the API's address in the log")
    with httpx.Client(base_url=base, timeout=10) as http:
        health = wait_for(
            lambda: (h := http.get("/api/v1/health").json())["scheduling"] and h,
            timeout=30,
            what="a recorded tick",
        )
        assert health["alive"] and health["problem"] is None
        assert [t["name"] for t in http.get("/api/v1/tasks").json()] == ["beat"]
        run = http.post("/api/v1/tasks/beat/trigger")
        assert run.status_code == 202 and run.json()["status"] == "pending"
        run_id = run.json()["id"]
        done = wait_for(
            lambda: (r := http.get(f"/api/v1/runs/{run_id}").json())["status"] == "succeeded" and r,
            timeout=30,
            what="the triggered run to succeed",
        )
        assert done["output"].strip() == "beat"
        assert http.get(f"/api/v1/runs/{run_id}/output").text.strip() == "beat"
        metrics = http.get("/metrics").text
        assert 'agentcron_slots_total{status="succeeded",task="beat"} 1.0' in metrics
        assert "agentcron_daemon_last_tick_timestamp_seconds" in metrics
        port = int(base.rsplit(":", 1)[1])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log.read_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
    text = log.read_text()
    assert "Traceback" not in text, text


def test_listening_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    (tmp_path / "agentcron.yaml").write_text(CONFIG)
    env = {**os.environ, "AGENTCRON_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "agentcron", "run", "--api", "0.0.0.0:0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "cannot start" in done.stderr and "token" in done.stderr, done.stderr
    assert "0.0.0.0" in done.stderr
