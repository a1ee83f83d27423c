"""The command every soak task runs: it leaves a trace the checker can trust.

Run as ``python -I -S soak_task.py LOGDIR TASK SLEEP FAIL_PCT HANG IGNORE_TERM``. It reads
its slot from the environment the daemon gives it (``AGENTCRON_TASK``, ``AGENTCRON_SLOT``,
``AGENTCRON_ATTEMPT``) and

- appends ``START task slot attempt pid monotonic wall`` to ``LOGDIR/TASK.log`` under an
  exclusive flock, and ``END task slot attempt pid monotonic wall rc term`` when it ends
  on its own (a kill leaves no END);
- holds an exclusive flock on ``LOGDIR/locks/TASK-SLOT`` for its whole life. The kernel
  drops it when the process dies, however it dies, so a second run of the same slot that
  finds it taken is, beyond doubt, a run of that slot while another one is alive: it
  appends ``DOUBLE task slot attempt pid`` (the double execution the checker counts);
- sleeps SLEEP seconds (HANG=1: sleeps far longer, past any timeout), exits 75
  (EX_TEMPFAIL, a transient failure) on its first attempt for FAIL_PCT % of slots
  (chosen by the slot id, so the same slot behaves the same after a restart), else 0;
- IGNORE_TERM=1: SIGTERM is noted (``term=1`` in END) and otherwise ignored.

Standard library only, no site packages (``-I -S``): it starts in ~15 ms.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time

_terms = 0


def _on_term(signum: int, frame: object) -> None:
    global _terms
    _terms += 1


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)  # closing drops the flock


def main(argv: list[str]) -> int:
    logdir, task, sleep_s, fail_pct, hang, ignore_term = argv[:6]
    if ignore_term == "1":
        signal.signal(signal.SIGTERM, _on_term)
    slot = os.environ.get("AGENTCRON_SLOT", "?")
    attempt = os.environ.get("AGENTCRON_ATTEMPT", "?")
    env_task = os.environ.get("AGENTCRON_TASK", "?")
    pid = os.getpid()
    log = os.path.join(logdir, f"{task}.log")
    lock_path = os.path.join(logdir, "locks", f"{task}-{slot}")
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _append(log, f"DOUBLE {task} {slot} {attempt} {pid} {time.monotonic():.6f}")
    _append(log, f"START {task} {slot} {attempt} {pid} {time.monotonic():.6f} {time.time():.6f}")
    if env_task != task:
        _append(log, f"BADENV {task} {slot} {attempt} {pid} {env_task}")
    duration = float(sleep_s) * (1 + int(slot) % 5 / 10) if slot.isdigit() else float(sleep_s)
    if hang == "1":
        duration = 3600.0
    end = time.monotonic() + duration
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))  # a signal interrupts at most half a second
    fail = slot.isdigit() and attempt == "1" and int(slot) * 7919 % 100 < int(fail_pct)
    rc = 75 if fail else 0
    print(f"{task} slot {slot} attempt {attempt} rc {rc}")
    sys.stdout.flush()
    _append(
        log,
        f"END {task} {slot} {attempt} {pid} {time.monotonic():.6f} {time.time():.6f} {rc} {_terms}",
    )
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
