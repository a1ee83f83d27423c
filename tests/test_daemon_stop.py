"""A clean stop during a run (SIGTERM, `systemctl stop`): the interrupted attempt takes
the same finish path as any other end, so on its last attempt the owner hears of it;
and a task killed together with the daemon (systemd's default KillMode=control-group)
is an interruption, never the task's own error."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from daemon_proc import DaemonProc, kill_pids_in, wait_for
from e2e_sink import Sink

pytestmark = pytest.mark.slow


def _config(sink: Sink, pids: Path) -> str:
    return (
        f'notify: ["{sink.url("/owner")}"]\n'
        "tasks:\n"
        "  long:\n"
        "    every: 1h\n"
        "    retries: 0\n"
        f"    command: [sh, -c, 'echo $$ >> {pids}; sleep 30']\n"
    )


def _running(d: DaemonProc) -> list[dict[str, object]]:
    return [r for r in d.json("runs", "long") if r["status"] == "running"]


@pytest.mark.parametrize("group", [False, True], ids=["daemon-only", "whole-group"])
def test_sigterm_during_the_last_attempt_is_recorded_and_told(tmp_path: Path, group: bool) -> None:
    pids = tmp_path / "pids"
    with Sink() as sink:
        d = DaemonProc(tmp_path, _config(sink, pids), extra_env={"AGENTCRON_SHUTDOWN_GRACE": "1"})
        try:
            d.start()
            wait_for(lambda: d.json("list"), what="daemon up")
            d.cli("trigger", "long")
            wait_for(lambda: _running(d), what="run started")
            wait_for(lambda: pids.exists() and pids.read_text().strip(), what="pid written")
            assert d.proc is not None
            d.proc.send_signal(signal.SIGTERM)
            if group:  # the service manager signals the task's processes too
                for line in pids.read_text().split():
                    os.killpg(os.getpgid(int(line)), signal.SIGTERM)
            assert d.proc.wait(30) == 0
            runs = d.json("runs", "long")
            texts = sink.texts("/owner")
        finally:
            d.stop()
            kill_pids_in(pids)
    assert [r["status"] for r in runs] == ["failed"], runs
    assert runs[0]["error_class"] == "worker_lost", runs  # transient: never code_error
    assert "daemon stopped while the run was in progress" in str(runs[0]["error"])
    told = [t for t in texts if "long" in t]
    assert len(told) == 1, texts  # heard at the stop, not at some later start
