"""The worker pool against python functions that misbehave: one odd run never shrinks
the pool, and each is told in plain words."""

from __future__ import annotations

import asyncio
import logging
import re
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
