"""kill -9 of a real `agentcron run` mid-run, then a restart (PRODUCT.md §1, §7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon_proc import DaemonProc, kill_pids_in, wait_for


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


CONFIG = """
tasks:
  long:
    every: 1d
    command:
      - sh
      - -c
      - 'echo $$ >> {pids}; echo started; if [ "$AGENTCRON_ATTEMPT" = 1 ]; then sleep 60; fi'
    retries: 2
    retry_backoff: {{base: 1s, jitter: 0}}
  tick:
    every: 1s
    command: ["echo", "tick"]
"""


@pytest.mark.slow
def test_kill9_mid_run_gives_one_worker_lost_record_and_later_slots_fire(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    d = DaemonProc(tmp_path, CONFIG.format(pids=pids))
    try:
        d.start()
        wait_for(
            lambda: any(
                r["task"] == "tick" and r["status"] == "succeeded"
                for r in d.json("runs", "--limit", "5")
            ),
            what="daemon fires tick",
        )
        d.cli("trigger", "long")
        wait_for(
            lambda: [r for r in d.json("runs", "long") if r["status"] == "running"],
            what="long is running",
        )
        wait_for(lambda: pids.exists() and pids.read_text().strip(), what="long started")
        d.kill9()
        orphan = int(pids.read_text().split()[0])  # attempt 1's shell, now without a daemon
        # it dies with its daemon (its launcher's prctl): nothing runs on unwatched
        wait_for(lambda: not alive(orphan), timeout=10, what="the command to die with its daemon")
        killed_at = d.json("runs", "tick", "--limit", "1")[0]["scheduled_for"]

        d.start()
        done = wait_for(
            lambda: [r for r in d.json("runs", "long") if r["status"] == "succeeded"],
            timeout=40,
            what="long retried and succeeded",
        )
        assert not alive(orphan)  # never two runs of the slot at once
        runs = d.json("runs", "long")
        assert len(runs) == 1, runs  # exactly one record for the slot
        assert runs[0]["attempts"] == 2
        detail = d.json("logs", str(done[0]["id"]))
        first, second = detail["attempts_detail"]
        assert first["error_class"] == "worker_lost"
        assert "stopped with it" in first["error"] or "stopped responding" in first["error"]
        # what it printed before it was stopped is kept with it: `logs` said "(no
        # output kept)" of a file holding it (outside-in probe)
        assert first.get("output_path"), first
        assert "started" in Path(first["output_path"]).read_text()
        assert second["status"] == "succeeded"
        # later slots of the other task still fire after the restart
        wait_for(
            lambda: d.json("runs", "tick", "--limit", "1")[0]["scheduled_for"] > killed_at,
            what="tick fires after restart",
        )
    finally:
        d.stop()
        kill_pids_in(pids)
