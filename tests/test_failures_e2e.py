"""Failure handling end to end: a real daemon, real commands, a real HTTP server
(PRODUCT.md §5 failure classes, §6 retries, §12 secrets).

Every task here has a schedule that does not fire during a test (New Year's
midnight), so each slot starts exactly when the test runs ``agentcron trigger``.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from daemon_proc import DaemonProc, wait_for
from e2e_http import Response, ScriptedServer

NEVER = '"0 0 1 1 *"'  # New Year's midnight only: slots come from `trigger`
FINAL = {"succeeded", "failed", "skipped", "missed", "superseded", "cancelled", "expired"}
TRANSIENT = {"rate_limited", "overloaded", "server_error", "timeout", "network", "worker_lost"}
API_KEY = "sk-test-1234567890abcdefghij"
# Rich wraps tables at 80 columns when stdout is not a terminal; a wide "terminal"
# keeps each row on one line so the plain-text checks read whole phrases.
WIDE = {"COLUMNS": "250"}


def task_yaml(name: str, body: str) -> str:
    """One task's YAML: the never-firing schedule plus ``body`` (lines at 4 spaces)."""
    return f"  {name}:\n    cron: {NEVER}\n{body}"


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[DaemonProc]]:
    """Daemons a test started; all are stopped at the end, whatever happened."""
    started: list[DaemonProc] = []
    yield started
    for d in started:
        d.stop()


def start_daemon(
    daemons: list[DaemonProc], folder: Path, tasks: list[str], **top: str
) -> DaemonProc:
    text = "".join(f"{k}: {v}\n" for k, v in top.items()) + "tasks:\n" + "".join(tasks)
    d = DaemonProc(folder, text, extra_env=WIDE)
    daemons.append(d)
    d.start()
    wait_until_running(d)
    return d


def wait_until_running(d: DaemonProc) -> None:
    wait_for(
        lambda: "agentcron running as" in d.daemon_log(),
        timeout=40,
        what=f"daemon up (log: {d.daemon_log()[-2000:]})",
    )


def final_slot(d: DaemonProc, task: str) -> dict[str, Any] | None:
    runs = d.json("runs", task)
    return runs[0] if runs and runs[0]["status"] in FINAL else None


def wait_final(d: DaemonProc, task: str, timeout: float = 60) -> dict[str, Any]:
    slot: dict[str, Any] = wait_for(
        lambda: final_slot(d, task), timeout=timeout, what=f"{task} finished"
    )
    return slot


def wait_retrying(d: DaemonProc, task: str, attempts: int) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        runs = d.json("runs", task)
        if runs and runs[0]["status"] == "retrying" and runs[0]["attempts"] == attempts:
            return dict(runs[0])
        return None

    slot: dict[str, Any] = wait_for(check, timeout=60, what=f"{task} retrying")
    return slot


def attempts_of(d: DaemonProc, slot_id: int) -> list[dict[str, Any]]:
    detail: list[dict[str, Any]] = d.json("logs", str(slot_id))["attempts_detail"]
    return detail


def classes(attempts: list[dict[str, Any]]) -> list[str | None]:
    return [a["error_class"] for a in attempts]


def health(d: DaemonProc, task: str) -> dict[str, Any]:
    row: dict[str, Any] = next(r for r in d.json("list") if r["name"] == task)
    return row


def http_task(name: str, url: str, extra: str = "") -> str:
    return task_yaml(
        name,
        f"    http: {{url: {json.dumps(url)}}}\n"
        "    retries: 3\n"
        "    retry_backoff: {base: 500ms, factor: 1, jitter: 0}\n"
        "    timeout: 10s\n" + extra,
    )


# ---- http -------------------------------------------------------------------------------
@pytest.mark.slow
def test_http_429_twice_then_200_honours_retry_after(
    tmp_path: Path, daemons: list[DaemonProc]
) -> None:
    # Backoff alone would wait 0.5 s; only Retry-After makes the gaps 2 s.
    busy = Response(429, {"Retry-After": "2"}, '{"error": {"message": "slow down"}}')
    with ScriptedServer([busy, busy, Response(200, body="all good")]) as srv:
        d = start_daemon(daemons, tmp_path, [http_task("ping", srv.url("/ping"))])
        d.cli("trigger", "ping")
        slot = wait_final(d, "ping")

        assert slot["status"] == "succeeded", slot
        assert slot["attempts"] == 3, slot
        arrivals = [r.mono_time for r in srv.requests]
        assert len(arrivals) == 3, srv.requests
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert all(gap >= 2.0 for gap in gaps), gaps
        attempts = attempts_of(d, slot["id"])
        assert classes(attempts) == ["rate_limited", "rate_limited", None], attempts
        assert [a["status"] for a in attempts][-1] == "succeeded"

        # Every attempt is in the plain `logs`, with its class, explanation and duration.
        text = d.cli("logs", str(slot["id"])).stdout
        for n in (1, 2):
            line = next(ln for ln in text.splitlines() if f"attempt {n}:" in ln)
            assert "rate_limited" in line and "rate-limiting" in line, text
            assert re.search(r"in \d+\.\ds", line), text
        assert re.search(r"attempt 3: succeeded in \d+\.\ds", text), text
        assert "all good" in text


@pytest.mark.slow
def test_http_401_fails_after_one_attempt_as_auth_with_plain_words(
    tmp_path: Path, daemons: list[DaemonProc]
) -> None:
    denied = Response(401, {"Content-Type": "application/json"}, '{"error": "invalid token"}')
    with ScriptedServer([denied]) as srv:
        d = start_daemon(daemons, tmp_path, [http_task("report", srv.url("/report"))])
        d.cli("trigger", "report")
        slot = wait_final(d, "report")

        assert slot["status"] == "failed", slot
        assert slot["attempts"] == 1, slot
        assert slot["error_class"] == "auth", slot
        assert len(srv.requests) == 1
        (attempt,) = attempts_of(d, slot["id"])
        assert attempt["error_class"] == "auth"
        words = f"{attempt['explanation']} {slot['error']}".lower()
        assert re.search(r"api key|credential", words), (attempt, slot)
        assert "401" in words

        row = health(d, "report")
        assert row["health"] == "failing", row
        assert row["health_detail"].startswith("failing: auth"), row
        assert "failing: auth" in d.cli("list").stdout


@pytest.mark.slow
def test_retrying_slot_is_visible_in_list_runs_and_logs(
    tmp_path: Path, daemons: list[DaemonProc]
) -> None:
    busy = Response(429, {"Retry-After": "25"}, "busy")
    denied = Response(401, body="bad key")
    with ScriptedServer([busy, denied]) as srv:
        d = start_daemon(daemons, tmp_path, [http_task("digest", srv.url("/digest"))])
        d.cli("trigger", "digest")
        slot = wait_retrying(d, "digest", attempts=1)
        at = datetime.fromisoformat(slot["next_attempt_at"]).strftime("%H:%M:%S")

        # Read every view at once, inside the 25 s the server asked for (CLI calls are
        # slow on a loaded machine).
        with ThreadPoolExecutor(4) as pool:
            views = list(
                pool.map(
                    lambda args: d.cli(*args).stdout,
                    [("list", "--json"), ("list",), ("runs", "digest"), ("logs", str(slot["id"]))],
                )
            )
        still = d.json("runs", "digest")[0]
        assert still["status"] == "retrying" and still["attempts"] == 1, still
        listed, plain_list, plain_runs, plain_logs = views

        row = next(r for r in json.loads(listed) if r["name"] == "digest")
        assert row["health"] == "retrying", row
        assert row["health_detail"].startswith(f"retrying (attempt 2/4 at {at} UTC)"), row
        assert f"retrying (attempt 2/4 at {at} UTC)" in plain_list, plain_list
        assert "retrying" in plain_runs and "rate_limited" in plain_runs, plain_runs
        assert "next attempt" in plain_runs, plain_runs
        assert re.search(r"attempt 1: failed in \d+\.\ds — rate_limited: \S", plain_logs), (
            plain_logs
        )

        done = wait_final(d, "digest")
        assert done["status"] == "failed" and done["attempts"] == 2, done
        assert classes(attempts_of(d, done["id"])) == ["rate_limited", "auth"]
        row = health(d, "digest")
        assert row["health"] == "failing" and row["health_detail"].startswith("failing: auth"), row
        text = d.cli("logs", str(done["id"])).stdout
        assert re.search(r"attempt 1: \w+ in \d+\.\ds — rate_limited: \S", text), text
        assert re.search(r"attempt 2: failed in \d+\.\ds — auth: \S", text), text


@pytest.mark.slow
def test_restart_during_backoff_keeps_the_stored_retry_time(
    tmp_path: Path, daemons: list[DaemonProc]
) -> None:
    busy = Response(429, {"Retry-After": "20"}, "busy")
    with ScriptedServer([busy, Response(200, body="fine")]) as srv:
        d = start_daemon(daemons, tmp_path, [http_task("sync", srv.url("/sync"))])
        d.cli("trigger", "sync")
        slot = wait_retrying(d, "sync", attempts=1)
        due = datetime.fromisoformat(slot["next_attempt_at"])

        d.stop()  # SIGTERM while the slot waits for its retry
        assert d.proc is not None and d.proc.returncode == 0, d.daemon_log()[-2000:]
        stored = d.json("runs", "sync")[0]
        assert stored["status"] == "retrying", stored
        assert stored["next_attempt_at"] == slot["next_attempt_at"], stored

        d.start()
        wait_for(
            lambda: d.daemon_log().count("agentcron running as") == 2, timeout=40, what="restart"
        )
        restarted = time.time()
        # The test only means something if the new daemon was up before the retry was due.
        assert restarted < due.timestamp(), f"restarted {restarted - due.timestamp():.1f}s after T"
        assert d.json("runs", "sync")[0]["next_attempt_at"] == slot["next_attempt_at"]

        done = wait_final(d, "sync")
        assert done["status"] == "succeeded" and done["attempts"] == 2, done
        assert len(srv.requests) == 2, srv.requests  # the retry ran exactly once
        second = srv.requests[1]
        assert second.wall_time >= due.timestamp(), (second.wall_time, due)
        assert classes(attempts_of(d, done["id"])) == ["rate_limited", None]
        assert len(d.json("runs", "sync")) == 1


# ---- command ----------------------------------------------------------------------------
@pytest.mark.slow
def test_command_exit_75_is_retried_and_a_python_exception_is_a_code_error(
    tmp_path: Path, daemons: list[DaemonProc]
) -> None:
    counter = tmp_path / "count"
    script = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        'echo "try $n"; [ "$n" -ge 3 ] || exit 75'
    )
    tempfail = task_yaml(
        "tempfail",
        f"    command: {json.dumps(['sh', '-c', script])}\n"
        "    retries: 3\n"
        "    retry_backoff: {base: 1s, jitter: 0}\n",
    )
    raising = [sys.executable, "-c", "raise ValueError('bad input')"]
    bug = task_yaml(
        "bug",
        f"    command: {json.dumps(raising)}\n"
        "    retries: 3\n"
        "    retry_backoff: {base: 1s, jitter: 0}\n",
    )
    d = start_daemon(daemons, tmp_path, [tempfail, bug])
    d.cli("trigger", "tempfail")
    d.cli("trigger", "bug")

    slot = wait_final(d, "tempfail")
    assert slot["status"] == "succeeded" and slot["attempts"] == 3, slot
    attempts = attempts_of(d, slot["id"])
    assert [a["exit_code"] for a in attempts] == [75, 75, 0], attempts
    first, second, third = classes(attempts)
    assert first in TRANSIENT and second in TRANSIENT and third is None, attempts
    assert counter.read_text().strip() == "3"

    slot = wait_final(d, "bug")
    assert slot["status"] == "failed" and slot["attempts"] == 1, slot
    assert slot["error_class"] == "code_error", slot
    (attempt,) = attempts_of(d, slot["id"])
    assert attempt["exit_code"] == 1
    assert "ValueError: bad input" in f"{attempt['error']} {attempt['explanation']}", attempt


# ---- python -----------------------------------------------------------------------------
JOBS = '''
"""Functions the e2e python tasks call."""
from pathlib import Path


def broken():
    raise ValueError("bad input")


def flaky(counter):
    path = Path(counter)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    if n == 0:
        raise TimeoutError("the upstream did not answer in time")
    return "recovered"
'''


@pytest.mark.slow
def test_python_exception_is_a_code_error_and_timeout_error_is_retried(
    tmp_path: Path, daemons: list[DaemonProc]
) -> None:
    (tmp_path / "e2e_jobs.py").write_text(JOBS)
    counter = tmp_path / "flaky-count"
    policy = "    retries: 3\n    retry_backoff: {base: 1s, jitter: 0}\n"
    broken = task_yaml("broken", '    python: "e2e_jobs:broken"\n' + policy)
    flaky = task_yaml(
        "flaky",
        f'    python: "e2e_jobs:flaky"\n    kwargs: {{counter: {json.dumps(str(counter))}}}\n'
        + policy,
    )
    d = start_daemon(daemons, tmp_path, [broken, flaky])
    d.cli("trigger", "broken")
    d.cli("trigger", "flaky")

    slot = wait_final(d, "broken")
    assert slot["status"] == "failed" and slot["attempts"] == 1, slot
    assert slot["error_class"] == "code_error", slot
    (attempt,) = attempts_of(d, slot["id"])
    assert "bad input" in f"{attempt['error']} {attempt['explanation']}", attempt

    slot = wait_final(d, "flaky")
    assert slot["status"] == "succeeded" and slot["attempts"] == 2, slot
    attempts = attempts_of(d, slot["id"])
    assert classes(attempts) == ["timeout", None], attempts
    assert counter.read_text() == "2"


# ---- secrets ----------------------------------------------------------------------------
def key_echoing_401(tmp_path: Path, daemons: list[DaemonProc]) -> DaemonProc:
    """An http task whose URL carries an API key, answered 401 by a server that echoes
    the key back (as providers do); returns the daemon once the slot has failed."""
    echo = json.dumps({"error": {"message": f"Incorrect API key provided: {API_KEY}"}})
    with ScriptedServer([Response(401, {"Content-Type": "application/json"}, echo)]) as srv:
        url = srv.url(f"/v1/items?api_key={API_KEY}")
        d = start_daemon(daemons, tmp_path, [http_task("fetch", url)])
        d.cli("trigger", "fetch")
        slot = wait_final(d, "fetch")
        assert slot["status"] == "failed" and slot["error_class"] == "auth", slot
        assert API_KEY in srv.requests[0].path  # the key really went out, and came back
    return d


@pytest.mark.slow
def test_api_key_in_the_url_and_echoed_body_never_shows_in_runs_or_logs(
    tmp_path: Path, daemons: list[DaemonProc]
) -> None:
    d = key_echoing_401(tmp_path, daemons)
    slot_id = str(d.json("runs", "fetch")[0]["id"])
    seen = {
        "runs --json": d.cli("runs", "--json").stdout,
        "runs fetch --json": d.cli("runs", "fetch", "--json").stdout,
        "logs --json": d.cli("logs", slot_id, "--json").stdout,
        "runs": d.cli("runs").stdout,
        "logs": d.cli("logs", slot_id).stdout,
    }
    leaks = [name for name, text in seen.items() if API_KEY in text]
    assert not leaks, {name: seen[name] for name in leaks}


@pytest.mark.slow
def test_api_key_in_the_url_never_shows_in_the_daemon_log(
    tmp_path: Path, daemons: list[DaemonProc]
) -> None:
    d = key_echoing_401(tmp_path, daemons)
    d.stop()
    log = d.daemon_log()
    assert "fetch" in log  # the daemon did log about the task
    leaked = [line for line in log.splitlines() if API_KEY in line]
    assert not leaked, leaked
