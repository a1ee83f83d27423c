"""Signals agentcron did not send (issue 12, finding 11, second half).

The rule, the same for a command and for a python pool worker: a kill from outside
(the OOM killer's SIGKILL, an operator's SIGTERM) interrupted work that was not
wrong, so it is ``worker_lost`` and retried; a crash of the program's own making
(SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL) is ``code_error`` and not retried. Real
processes: commands through the real engine and runner, functions in the real pool.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentcron.actions._pool import PythonWorkerPool
from agentcron.actions.base import ActionContext, ActionResult
from agentcron.classify import classify
from agentcron.clock import FakeClock
from agentcron.engine.runner import outcome_for_failure
from agentcron.model import ErrorClass, Slot, SlotStatus
from agentcron.model.failure import FailureInfo
from agentcron.model.task import TaskSpec
from agentcron.store.base import Store
from harness import Harness

pytestmark = pytest.mark.slow  # real processes, each well under a second

TESTS_DIR = str(Path(__file__).resolve().parent)
NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
SEGFAULT = "import ctypes; print('calling the C library', flush=True); ctypes.string_at(0)"


def run_command(store: Store, clock: FakeClock, home: Path, command: str | list[str]) -> Slot:
    """One slot of a command task with retries left, run to its recorded end."""

    async def scenario() -> Slot:
        h = Harness(store, clock, home)
        shell = isinstance(command, str)
        h.add("job", every="1h", timezone="UTC", retries=2, command=command, shell=shell)
        clock.advance(timedelta(hours=1))
        await h.tick()
        (slot,) = h.slots("job")
        return slot

    return asyncio.run(scenario())


def test_a_command_killed_from_outside_is_retried(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    slot = run_command(sqlite_store, clock, home, "echo 'loading 40000 rows'; kill -KILL $$")
    assert slot.status is SlotStatus.RETRYING and slot.next_attempt_at is not None
    assert slot.error_class is ErrorClass.WORKER_LOST
    assert slot.error == (
        "the command was killed by SIGKILL (signal 9) from outside agentcron, often the "
        "out-of-memory killer, or an operator's kill -9: loading 40000 rows"
    )


def test_a_command_stopped_by_sigterm_from_outside_is_retried(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    slot = run_command(sqlite_store, clock, home, "kill -TERM $$")
    assert slot.status is SlotStatus.RETRYING and slot.error_class is ErrorClass.WORKER_LOST
    assert slot.error == (
        "the command was killed by SIGTERM (signal 15) from outside agentcron, perhaps an "
        "operator, a service manager or a shutdown"
    )


def test_a_command_that_crashes_with_sigsegv_is_permanent(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    slot = run_command(sqlite_store, clock, home, [sys.executable, "-c", SEGFAULT])
    assert slot.status is SlotStatus.FAILED and slot.attempts == 1
    assert slot.error_class is ErrorClass.CODE_ERROR
    assert slot.error == (
        "the command crashed with SIGSEGV (signal 11, a segmentation fault: an invalid memory "
        "access): calling the C library"
    )


def test_a_shell_reporting_its_childs_sigkill_as_137_is_retried_too(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """``sh -c 'child; echo done'`` does not exec its child: the kill comes back as 137."""
    slot = run_command(sqlite_store, clock, home, "sh -c 'kill -KILL $$'; exit $?")
    assert slot.status is SlotStatus.RETRYING and slot.error_class is ErrorClass.WORKER_LOST
    assert slot.error is not None and slot.error.startswith(
        "the command exited with code 137 (128 + 9: a program it ran was killed by SIGKILL "
        "(signal 9) from outside agentcron"
    )


def pool_result(tmp_path: Path, target: str) -> ActionResult:
    spec = TaskSpec(name="job", every="1h", python=target, cwd=TESTS_DIR, retries=2)
    ctx = ActionContext(
        task="job",
        spec=spec,
        slot_id=1,
        attempt=1,
        scheduled_for=NOW,
        output_path=tmp_path / "out.log",
        timeout=timedelta(seconds=20),
        kill_grace=timedelta(seconds=0.5),
    )

    async def scenario() -> ActionResult:
        async with PythonWorkerPool(1) as pool:
            return await pool.run(ctx)

    return asyncio.run(scenario())


@pytest.mark.parametrize(
    ("target", "error_class", "status", "sentence"),
    [
        (
            "signal_targets:killed_from_outside",
            ErrorClass.WORKER_LOST,
            SlotStatus.RETRYING,
            "the python worker running the function was killed by SIGKILL (signal 9) from "
            "outside agentcron, often the out-of-memory killer, or an operator's kill -9: "
            "loading 40000 rows",
        ),
        (
            "signal_targets:crashes",
            ErrorClass.CODE_ERROR,
            SlotStatus.FAILED,
            "the python worker running the function crashed with SIGSEGV (signal 11, a "
            "segmentation fault: an invalid memory access): calling the C library",
        ),
    ],
)
def test_a_pool_worker_follows_the_same_rule(
    tmp_path: Path, target: str, error_class: ErrorClass, status: SlotStatus, sentence: str
) -> None:
    result = pool_result(tmp_path, target)
    assert not result.ok and result.failure is not None
    spec = TaskSpec(name="job", every="1h", python=target, retries=2)
    outcome, _ = outcome_for_failure(spec, 1, result.failure, NOW, 0.5, None)
    assert (outcome.error_class, outcome.slot_status) == (error_class, status)
    assert outcome.error == sentence


@pytest.mark.parametrize(
    ("signum", "error_class"),
    [
        (9, ErrorClass.WORKER_LOST),  # SIGKILL
        (15, ErrorClass.WORKER_LOST),  # SIGTERM
        (2, ErrorClass.WORKER_LOST),  # SIGINT
        (1, ErrorClass.WORKER_LOST),  # SIGHUP
        (10, ErrorClass.WORKER_LOST),  # SIGUSR1: sent by someone, never by a crash
        (11, ErrorClass.CODE_ERROR),  # SIGSEGV
        (6, ErrorClass.CODE_ERROR),  # SIGABRT
        (7, ErrorClass.CODE_ERROR),  # SIGBUS
        (8, ErrorClass.CODE_ERROR),  # SIGFPE
        (4, ErrorClass.CODE_ERROR),  # SIGILL
        (24, ErrorClass.CODE_ERROR),  # SIGXCPU: its CPU limit; running again meets it again
    ],
)
@pytest.mark.parametrize("action", ["command", "precheck", "python"])
def test_the_rule_for_every_signal_and_process(
    signum: int, error_class: ErrorClass, action: str
) -> None:
    failures = [
        FailureInfo(signal=signum, action=action),
        FailureInfo(exit_code=-signum, action=action),
    ]
    if signum != 10:  # a shell's 128 + n is read only for the signals the rule names
        failures.append(FailureInfo(exit_code=128 + signum, action=action))
    for failure in failures:
        result = classify(failure)
        assert result.error_class is error_class, (failure, result)
        assert (result.fix is None) == error_class.transient
