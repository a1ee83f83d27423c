"""Secrets are removed when a run's record is written (issue 12, finding 7; build item 7).

A task prints a secret it has from the daemon's environment. Redaction used to happen
when the record was read, with the reader's environment, so ``agentcron logs`` from a
shell without the variable showed it. Now the kept output, the ``error``, the attempt
details and the owner's message are redacted with the daemon's environment (and the
task's ``env:``) when they are written, and what holds them is private: output files
0600, the home and its ``outputs`` and ``runs`` folders 0700.

The secret's value has no shape a pattern would know (no ``sk-``, no ``token=``), so
only its value, known to the daemon, can remove it: reading with an environment that
lacks it proves the removal happened at write time.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.config._env import use_env_file_values
from agentcron.home import secure_home
from agentcron.model import Finished, Message, Slot, SlotStatus
from agentcron.notify import OutboxSender, SendResult
from agentcron.notify.notifier import Notifier
from agentcron.store.base import Store
from daemon_proc import DaemonProc, wait_for
from e2e_http import Response, ScriptedServer
from harness import Harness

SECRET = "plum-orbit-4471-saffron"  # a value no pattern recognises
HOOK = "json://127.0.0.1:9/hook"
PRINTS_IT = (
    'echo connecting with $SERVICE_TOKEN; echo "upstream refused $SERVICE_TOKEN" >&2; exit 1'
)


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


class Channel:
    key = HOOK

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def send(self, msg: Message) -> SendResult:
        self.sent.append(msg)
        return SendResult(ok=True)


def run_once(
    store: Store, clock: FakeClock, home: Path, **spec: Any
) -> tuple[Slot, Finished, list[Message]]:
    """One slot of ``job`` through the engine, runner and notifier; what was written."""

    async def scenario() -> tuple[Slot, Finished, list[Message]]:
        h = Harness(store, clock, home)
        notifier = Notifier(store, clock, [HOOK], "UTC")
        notifier.attach(h.engine)
        channel = Channel()
        sender = OutboxSender(store, channel_factory=lambda _url: channel, clock=clock)
        h.add("job", every="1h", timezone="UTC", retries=0, timeout="30s", **spec)
        clock.advance(timedelta(hours=1))
        await h.tick()
        await sender.drain_once()
        (slot,) = h.slots("job")
        return slot, h.finished[-1], channel.sent

    return asyncio.run(scenario())


@pytest.mark.slow
def test_a_command_printing_a_daemon_secret_leaves_it_nowhere(
    sqlite_store: Store,
    clock: FakeClock,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVICE_TOKEN", SECRET)  # the daemon's environment
    slot, finished, sent = run_once(sqlite_store, clock, home, command=["sh", "-c", PRINTS_IT])
    monkeypatch.delenv("SERVICE_TOKEN")  # the reader's shell lacks it

    assert slot.status is SlotStatus.FAILED and slot.output_path is not None
    kept = Path(slot.output_path).read_text()
    assert kept == "connecting with [REDACTED]\nupstream refused [REDACTED]\n"
    assert slot.error == "the command exited with code 1: upstream refused [REDACTED]"
    (attempt,) = sqlite_store.attempts(slot.id)
    written = {
        "output file": kept,
        "slot error": slot.error,
        "attempt": json.dumps([attempt.error, attempt.explanation, attempt.extra]),
        "details for the owner": finished.details,
        "message": json.dumps([(m.title, m.body) for m in sent], ensure_ascii=False),
    }
    for where, text in written.items():
        assert SECRET not in (text or ""), where
    assert "upstream refused [REDACTED]" in sent[0].body  # the details, redacted

    from agentcron.service import Service

    service = Service(sqlite_store, home, clock)  # as `logs --json` and `runs --json` read
    for view in (service.run_detail(slot.id), service.runs("job")):
        text = json.dumps(view)
        assert SECRET not in text and "[REDACTED]" in text


@pytest.mark.slow
def test_kept_files_are_private_and_the_home_too(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    os.chmod(home, 0o755)  # a home made before this release
    slot, _, _ = run_once(sqlite_store, clock, home, command=["echo", "hello"])
    assert slot.status is SlotStatus.SUCCEEDED and slot.output_path is not None
    assert Path(slot.output_path).read_text() == "hello\n"
    assert mode(slot.output_path) == 0o600
    assert mode(Path(slot.output_path).parent) == 0o700  # outputs/job
    for folder in (home, home / "outputs", home / "runs"):
        assert mode(folder) == 0o700, folder


def test_an_inline_function_printing_a_secret_from_its_env(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """The task's own ``env:`` counts as the daemon's for what its run prints."""

    def chatty() -> str:
        return f"logged in with {SECRET}; done"  # an inline call's output is what it returns

    async def scenario() -> Slot:
        h = Harness(sqlite_store, clock, home)
        h.add("job", chatty, every="1h", timezone="UTC", env={"CRM_PASSWORD": SECRET})
        clock.advance(timedelta(hours=1))
        await h.tick()
        (slot,) = h.slots("job")
        return slot

    slot = asyncio.run(scenario())
    assert slot.status is SlotStatus.SUCCEEDED and slot.output_path is not None
    assert Path(slot.output_path).read_text() == "logged in with [REDACTED]; done"


@pytest.mark.slow
def test_an_http_answer_echoing_the_credential_header(
    sqlite_store: Store, clock: FakeClock, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header's value comes from a placeholder whose variable's name says nothing."""
    monkeypatch.setenv("CRM_BEARER", SECRET)
    echo = Response(200, {"Content-Type": "text/plain"}, f"hello, your token is {SECRET}\n")
    with ScriptedServer([echo]) as srv:
        http = {"url": srv.url("/me"), "headers": {"Authorization": "Bearer ${CRM_BEARER}"}}
        slot, _, _ = run_once(sqlite_store, clock, home, http=http)
        assert srv.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert slot.status is SlotStatus.SUCCEEDED and slot.output_path is not None
    assert Path(slot.output_path).read_text() == "hello, your token is [REDACTED]\n"


@pytest.mark.slow
def test_a_secret_from_the_env_file(sqlite_store: Store, clock: FakeClock, home: Path) -> None:
    use_env_file_values({"CRM_SECRET": SECRET})  # as a config's env_file: sets them
    try:
        slot, _, _ = run_once(sqlite_store, clock, home, command=["echo", "key ${CRM_SECRET}"])
    finally:
        use_env_file_values({})
    assert slot.status is SlotStatus.SUCCEEDED and slot.output_path is not None
    assert Path(slot.output_path).read_text() == "key [REDACTED]\n"


def test_existing_homes_are_made_private_and_stricter_ones_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for folder in (home, home / "outputs", home / "outputs" / "old", home / "runs"):
        folder.mkdir(mode=0o755)
        os.chmod(folder, 0o755)
    (home / "outputs" / "old" / "a1.log").write_text("kept")
    assert sorted(secure_home(home)) == sorted(
        str(f) for f in (home, home / "outputs", home / "outputs" / "old", home / "runs")
    )
    for folder in (home, home / "outputs", home / "outputs" / "old", home / "runs"):
        assert mode(folder) == 0o700, folder
    assert secure_home(home) == []  # nothing left to do

    os.chmod(home / "outputs", 0o500)  # the owner made it stricter than we would
    os.chmod(home, 0o711)
    try:
        assert secure_home(home) == [str(home)]
        assert mode(home / "outputs") == 0o500 and mode(home) == 0o700
    finally:
        os.chmod(home / "outputs", 0o700)


def test_a_new_home_is_made_private(tmp_path: Path) -> None:
    home = tmp_path / "a" / "new" / "home"
    secure_home(home)
    for folder in (tmp_path / "a", tmp_path / "a" / "new", home, home / "outputs"):
        assert mode(folder) == 0o700, folder


# ---- a real daemon, and a reader without the variable ------------------------------------


@pytest.mark.slow
def test_logs_from_a_shell_without_the_variable_show_no_secret(tmp_path: Path) -> None:
    config = (
        "tasks:\n"
        "  leaky:\n"
        '    cron: "0 0 1 1 *"\n'
        "    retries: 0\n"
        f"    command: [sh, -c, {json.dumps(PRINTS_IT)}]\n"
    )
    d = DaemonProc(tmp_path, config, extra_env={"SERVICE_TOKEN": SECRET, "COLUMNS": "250"})
    try:
        d.start()
        wait_for(lambda: "agentcron running as" in d.daemon_log(), 40, what="daemon up")
        d.cli("trigger", "leaky")
        wait_for(lambda: d.json("runs", "leaky")[0]["status"] == "failed", 60, what="leaky failed")
    finally:
        d.stop()
    reader = {k: v for k, v in d.env.items() if k != "SERVICE_TOKEN"}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "agentcron", *args, "--config", str(d.config)],
            cwd=tmp_path,
            env=reader,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    (run,) = json.loads(cli("runs", "--json"))
    assert run["error"] == "the command exited with code 1: upstream refused [REDACTED]"
    detail = json.loads(cli("logs", str(run["id"]), "--json"))
    assert detail["output"] == "connecting with [REDACTED]\nupstream refused [REDACTED]\n"
    shown = {
        "runs --json": json.dumps(run),
        "logs --json": json.dumps(detail),
        "logs": cli("logs", str(run["id"])),
        "output file": Path(run["output_path"]).read_text(),
        "daemon log": d.daemon_log(),
    }
    for where, text in shown.items():
        assert SECRET not in text, where
    assert mode(run["output_path"]) == 0o600 and mode(d.home) == 0o700


def test_the_daemon_log_knows_secrets_that_came_after_it_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The config (and its env_file) is read after logging starts, and again on reload."""
    import io
    import logging

    from agentcron import logs

    out = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    monkeypatch.setattr(sys, "stderr", out)
    logs.setup_logging(logging.INFO)
    try:
        use_env_file_values({"CRM_SECRET": SECRET})
        monkeypatch.setenv("BILLING_TOKEN", "kiwi-delta-0042")
        logging.getLogger("agentcron.test").warning("sent %s and %s", SECRET, "kiwi-delta-0042")
        logs.stop_logging()
    finally:
        use_env_file_values({})
        root.handlers[:], root.level = saved
    assert "sent [REDACTED] and [REDACTED]" in out.getvalue()
