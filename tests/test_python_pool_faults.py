"""The worker pool against python functions that misbehave: one odd run never shrinks
the pool, and each is told in plain words."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
from pathlib import Path

import pytest

from agentcron.actions._pool import PythonWorkerPool
from agentcron.actions.base import ActionResult
from agentcron.classify import classify
from agentcron.model.enums import ErrorClass
from test_action_python import alive, make_ctx, until, with_pool

pytestmark = pytest.mark.slow


def test_a_failure_with_a_huge_message_is_cut_and_the_worker_serves_on(tmp_path: Path) -> None:
    async def scenario(pool: PythonWorkerPool) -> tuple[ActionResult, ActionResult, list[int]]:
        before = pool.pids
        failed = await pool.run(make_ctx(tmp_path, "pyactions_faults:huge_exc", name="huge"))
        after = await pool.run(make_ctx(tmp_path, "pyactions_sample:pid", timeout=5))
        return failed, after, before

    failed, after, before = with_pool(scenario)
    assert failed.failure is not None and failed.failure.exception_types[0] == "ValueError"
    assert failed.failure.known_class is None
    assert len(failed.failure.message) < 2000 and "[cut: " in failed.failure.message
    assert len(failed.failure.output_tail) < 64 * 1024
    assert after.ok and [int(after.output)] == before  # the same worker, still in the pool


def test_a_huge_return_value_goes_to_the_file_not_the_pipe(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "pyactions_faults:huge_return")
    result = with_pool(lambda pool: pool.run(ctx))
    assert result.ok and ctx.output_file.stat().st_size == 20 * 1024 * 1024


def test_an_unreadable_answer_replaces_the_worker_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(pool: PythonWorkerPool) -> tuple[ActionResult, ActionResult, int]:
        (old,) = pool.pids
        failed = await pool.run(make_ctx(tmp_path, "pyactions_faults:garbage_answer", timeout=5))
        after = await pool.run(make_ctx(tmp_path, "pyactions_sample:pid", timeout=10, name="b"))
        assert pool.pids == [int(after.output)]
        return failed, after, old

    with caplog.at_level(logging.ERROR, logger="agentcron.actions._pool"):
        failed, after, old = with_pool(scenario)
    assert failed.failure is not None
    # the function's doing, not weather: not retried (a retry runs it again)
    assert failed.failure.known_class is ErrorClass.CODE_ERROR
    assert failed.failure.message.startswith(
        "the python worker's answer could not be read (JSONDecodeError: "
    )
    assert failed.failure.message.endswith(
        "did the function write to agentcron's pipe (a file descriptor it had not opened)? "
        "The worker was replaced"
    )
    assert not alive(old) and after.ok and int(after.output) != old
    assert any("its answer could not be read" in r.getMessage() for r in caplog.records)


def test_one_odd_run_never_shrinks_the_pool(tmp_path: Path) -> None:
    """A pool of one takes run after run after each kind of odd end."""

    async def scenario(pool: PythonWorkerPool) -> list[ActionResult]:
        results = []
        for i, target in enumerate(
            ["pyactions_faults:huge_exc", "pyactions_faults:garbage_answer"]
        ):
            await pool.run(make_ctx(tmp_path, target, timeout=5, name=f"odd{i}"))
            results.append(
                await asyncio.wait_for(
                    pool.run(make_ctx(tmp_path, "pyactions_sample:pid", name=f"ok{i}")), 20
                )
            )
        return results

    assert all(r.ok for r in with_pool(scenario))


def test_a_function_that_closes_the_workers_pipe_is_told_and_the_worker_replaced(
    tmp_path: Path,
) -> None:
    async def scenario(pool: PythonWorkerPool) -> tuple[ActionResult, ActionResult, int]:
        (old,) = pool.pids
        failed = await pool.run(make_ctx(tmp_path, "pyactions_faults:close_fds"))
        after = await pool.run(make_ctx(tmp_path, "pyactions_sample:pid", name="after"))
        return failed, after, old

    failed, after, old = with_pool(scenario)
    assert failed.failure is not None
    assert failed.failure.known_class is ErrorClass.CODE_ERROR
    assert failed.failure.message.startswith(
        "the function closed agentcron's pipe to its python worker"
    )
    assert failed.failure.message.endswith("; the worker was replaced")
    said = classify(failed.failure).explanation
    assert "closed agentcron's pipe" in said and "AssertionError" not in said
    assert not alive(old) and after.ok and int(after.output) != old


def test_a_timeout_partly_spent_waiting_for_a_worker_says_so(tmp_path: Path) -> None:
    async def scenario(pool: PythonWorkerPool) -> tuple[ActionResult, ActionResult]:
        first = asyncio.create_task(
            pool.run(make_ctx(tmp_path, "pyactions_faults:slow", args=[2], name="first"))
        )
        await until(lambda: not pool._idle)  # the only worker is busy
        second = await pool.run(
            make_ctx(tmp_path, "pyactions_faults:slow", args=[30], timeout=3, name="second")
        )
        return await first, second

    first, second = with_pool(scenario)
    assert first.ok and second.failure is not None
    assert second.failure.known_class is ErrorClass.TIMEOUT
    assert re.fullmatch(
        r"timed out after 3s: it waited [\d.]+s for a free python worker and the function "
        r"ran [\d.]+s; killed python worker \(TERM\)",
        second.failure.message,
    ), second.failure.message
    said = classify(second.failure).explanation
    assert "waited" in said and "for a free python worker" in said


@pytest.mark.parametrize("target", ["fork_both_return", "fork_child_raises"])
def test_a_forked_copy_of_the_worker_never_answers_for_it(tmp_path: Path, target: str) -> None:
    """Outside-in probe: a function that forked and returned in both processes left a
    second worker on the pipe; the next runs got each other's answers (a failure
    recorded as a success, and blamed on the next task)."""

    async def scenario(pool: PythonWorkerPool) -> list[ActionResult]:
        results = [await pool.run(make_ctx(tmp_path, f"pyactions_faults:{target}", name="f"))]
        results.append(await pool.run(make_ctx(tmp_path, "pyactions_faults:slow_fail", name="s")))
        for n in range(4):
            results.append(
                await pool.run(make_ctx(tmp_path, "pyactions_sample:pid", name=f"p{n}", timeout=5))
            )
        return results

    forked, failed, *pids = with_pool(scenario)
    assert forked.ok
    assert not failed.ok and failed.failure is not None
    assert "deliberate failure" in failed.failure.message
    assert all(r.ok for r in pids), pids
    assert len({r.output for r in pids}) == 1  # one worker answered them all


def test_a_busy_worker_whose_daemon_died_ends_with_what_it_started(tmp_path: Path) -> None:
    """Outside-in probe: after `kill -9` of the daemon a busy worker went on with its
    call and its subprocess, while the next daemon ran the slot again beside it. The
    worker sees its input end during the call and ends its process group."""
    import json
    import subprocess
    import sys
    import time

    from test_action_python import TESTS_DIR

    marker = tmp_path / "pids"
    worker = subprocess.Popen(
        [sys.executable, "-u", "-m", "agentcron.actions._worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=TESTS_DIR,
        start_new_session=True,
    )
    assert worker.stdin is not None and worker.stdout is not None
    try:
        assert json.loads(worker.stdout.readline())["ready"]
        request = {
            "id": 1,
            "target": "pyactions_faults:spawn_and_hang",
            "args": [str(marker)],
            "kwargs": {},
            "output": str(tmp_path / "out.log"),
            "cwd": str(TESTS_DIR),
            "env": {},
        }
        worker.stdin.write(json.dumps(request).encode() + b"\n")
        worker.stdin.flush()
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text().endswith("\n")):
            assert time.monotonic() < deadline, "the call did not start"
            time.sleep(0.05)
        pids = [int(p) for p in marker.read_text().split()]
        worker.stdin.close()  # as the daemon's end does (its pipe closed by the kernel)
        deadline = time.monotonic() + 30
        while any(alive(p) for p in pids):
            assert time.monotonic() < deadline, f"still running: {pids}"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        worker.stdout.close()


def test_a_forked_child_that_fails_exits_as_failed(tmp_path: Path) -> None:
    """Review: the forked copy exited 0 whatever the call did there, so a parent that
    waited for its child saw a failure as a success."""
    ctx = make_ctx(tmp_path, "pyactions_faults:fork_child_fails_and_wait")
    result = with_pool(lambda pool: pool.run(ctx))
    assert result.ok, result.failure
    text = ctx.output_file.read_text()
    assert "child exit 1" in text and "the child's own failure" in text, text
