"""The python action: a pool of real worker processes, and the inline runner."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agentcron.actions._pool import PythonWorkerPool
from agentcron.actions.base import ActionContext, ActionResult
from agentcron.actions.python_action import InlinePythonAction, PythonAction
from agentcron.model.enums import ErrorClass
from agentcron.model.task import TaskSpec

pytestmark = pytest.mark.slow

TESTS_DIR = str(Path(__file__).resolve().parent)
T = TypeVar("T")


def make_ctx(
    tmp_path: Path,
    target: str = "pyactions_sample:add",
    *,
    timeout: float = 10.0,
    name: str = "run",
    **spec: Any,
) -> ActionContext:
    spec.setdefault("cwd", TESTS_DIR)
    task = TaskSpec(name="job", every="1h", python=target, **spec)
    return ActionContext(
        task="job",
        spec=task,
        slot_id=1,
        attempt=1,
        scheduled_for=datetime(2026, 3, 29, 3, 0, tzinfo=UTC),
        output_path=tmp_path / "out" / f"{name}.log",
        timeout=timedelta(seconds=timeout),
        kill_grace=timedelta(seconds=0.5),
    )


def with_pool(scenario: Callable[[PythonWorkerPool], Awaitable[T]], size: int = 1) -> T:
    async def main() -> T:
        async with PythonWorkerPool(size) as pool:
            return await scenario(pool)

    return asyncio.run(main())


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


async def until(condition: Callable[[], bool], deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.02)


def test_sync_and_async_functions_return_their_output(tmp_path: Path) -> None:
    async def scenario(pool: PythonWorkerPool) -> list[ActionResult]:
        return [
            await pool.run(make_ctx(tmp_path, "pyactions_sample:add", args=[2, 3], name="a")),
            await pool.run(
                make_ctx(
                    tmp_path, "pyactions_sample:greet", args=["ann"], kwargs={"punctuation": "?"}
                )
            ),
            await pool.run(make_ctx(tmp_path, "pyactions_sample:async_double", args=[4], name="c")),
        ]

    added, greeted, doubled = with_pool(scenario)
    assert (added.ok, added.output) == (True, "5")
    assert (greeted.ok, greeted.output) == (True, "hello ann?")
    assert (doubled.ok, json.loads(doubled.output)) == (True, {"double": 8})
    assert (tmp_path / "out" / "c.log").read_text() == '{"double": 8}'


def test_prints_stderr_and_subprocess_output_land_in_the_file(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "pyactions_sample:chatty")
    result = with_pool(lambda pool: pool.run(ctx))
    assert result.ok
    text = ctx.output_path.read_text()
    assert text == "from print\nto stderr\nfrom a subprocess\ndone"
    assert result.output == text


def test_workers_are_started_before_the_first_call_and_reused(tmp_path: Path) -> None:
    async def scenario(pool: PythonWorkerPool) -> tuple[list[int], list[str]]:
        before = pool.pids
        assert len(before) == 2 and all(alive(p) for p in before)
        outputs = []
        for _ in range(2):
            result = await pool.run(make_ctx(tmp_path, "pyactions_sample:pid"))
            assert result.ok
            outputs.append(result.output)
        assert pool.pids == before
        return before, outputs

    before, (first, second) = with_pool(scenario, size=2)
    assert first == second and int(first) in before


def test_a_call_that_blocks_is_killed_at_its_timeout_and_its_worker_replaced(
    tmp_path: Path,
) -> None:
    async def scenario(pool: PythonWorkerPool) -> None:
        (old,) = pool.pids
        started = time.monotonic()
        result = await pool.run(make_ctx(tmp_path, "pyactions_sample:block_forever", timeout=1))
        assert time.monotonic() - started < 4
        assert result.failure is not None
        assert result.failure.known_class is ErrorClass.TIMEOUT
        assert result.failure.message == "timed out after 1s; killed python worker (TERM)"
        assert result.failure.output_tail == "about to block"
        assert not alive(old)

        after = await pool.run(make_ctx(tmp_path, "pyactions_sample:pid", name="after"))
        assert after.ok and int(after.output) != old
        assert pool.pids == [int(after.output)]

    with_pool(scenario)


def test_exceptions_come_back_as_failures_with_their_type_chain(tmp_path: Path) -> None:
    result = with_pool(lambda pool: pool.run(make_ctx(tmp_path, "pyactions_sample:fail")))
    assert not result.ok and result.failure is not None
    assert result.failure.action == "python"
    assert result.failure.exception_types[:2] == ("ValueError", "Exception")
    assert "the sample failed on purpose" in result.failure.message
    tail = result.failure.output_tail.splitlines()
    assert tail[-1] == "ValueError: the sample failed on purpose"
    assert "_worker.py" not in result.failure.output_tail


def test_import_errors_are_failures_the_classifier_can_read(tmp_path: Path) -> None:
    async def scenario(pool: PythonWorkerPool) -> tuple[ActionResult, ActionResult]:
        missing = await pool.run(make_ctx(tmp_path, "agentcron_no_such_module:f"))
        no_attr = await pool.run(make_ctx(tmp_path, "pyactions_sample:nothing_here"))
        return missing, no_attr

    missing, no_attr = with_pool(scenario)
    assert missing.failure is not None and no_attr.failure is not None
    assert missing.failure.exception_types[0] == "ModuleNotFoundError"
    assert "agentcron_no_such_module" in missing.failure.message
    assert no_attr.failure.known_class is ErrorClass.CONFIG_ERROR
    assert no_attr.failure.message == "pyactions_sample has no function nothing_here"


def test_a_worker_that_exits_mid_call_is_reported_and_replaced(tmp_path: Path) -> None:
    async def scenario(pool: PythonWorkerPool) -> None:
        (old,) = pool.pids
        result = await pool.run(make_ctx(tmp_path, "pyactions_sample:hard_exit"))
        assert result.failure is not None
        assert result.failure.message == "python worker died (exit code 3)"
        assert result.failure.exit_code == 3 and result.failure.known_class is None
        assert result.failure.output_tail == "exiting hard"
        after = await pool.run(make_ctx(tmp_path, "pyactions_sample:pid", name="after"))
        assert after.ok and int(after.output) != old

    with_pool(scenario)


def test_a_worker_killed_from_outside_while_idle_is_replaced(tmp_path: Path) -> None:
    async def scenario(pool: PythonWorkerPool) -> None:
        (old,) = pool.pids
        # No waiting: the pool may or may not have noticed the death when the call comes.
        os.kill(old, signal.SIGKILL)
        result = await pool.run(make_ctx(tmp_path, "pyactions_sample:pid"))
        assert result.ok and int(result.output) != old

    with_pool(scenario)


def test_task_env_and_cwd_apply_to_one_call_only(tmp_path: Path) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    (workdir / "project_job.py").write_text(
        "import os\n"
        "def where():\n"
        "    return {'cwd': os.getcwd(), 'var': os.environ.get('SAMPLE_VAR', '')}\n"
    )

    async def scenario(pool: PythonWorkerPool) -> tuple[str, str]:
        first = await pool.run(
            make_ctx(tmp_path, "project_job:where", cwd=str(workdir), env={"SAMPLE_VAR": "v1"})
        )
        second = await pool.run(make_ctx(tmp_path, "pyactions_sample:env_and_cwd", name="b"))
        assert first.ok and second.ok
        return first.output, second.output

    first, second = with_pool(scenario)
    assert json.loads(first) == {"cwd": str(workdir), "var": "v1"}
    assert json.loads(second) == {"cwd": TESTS_DIR, "var": ""}


def test_a_changed_module_is_reloaded_in_a_fresh_worker(tmp_path: Path) -> None:
    module = tmp_path / "editable_job.py"
    module.write_text("def version():\n    return 'one'\n")

    async def scenario(pool: PythonWorkerPool) -> None:
        ctx = make_ctx(tmp_path, "editable_job:version", cwd=str(tmp_path))
        first = await pool.run(ctx)
        assert first.ok and first.output == "one"
        (old,) = pool.pids
        module.write_text("def version():\n    return 'two'\n")
        stat = module.stat()
        os.utime(module, (stat.st_atime, stat.st_mtime + 5))  # same-second edits too
        second = await pool.run(ctx)
        assert second.ok and second.output == "two"
        assert pool.pids != [old]

    with_pool(scenario)


def test_cancellation_kills_the_worker_and_propagates(tmp_path: Path) -> None:
    async def scenario(pool: PythonWorkerPool) -> None:
        (old,) = pool.pids
        ctx = make_ctx(tmp_path, "pyactions_sample:block_forever")
        task = asyncio.create_task(pool.run(ctx))
        await until(
            lambda: ctx.output_path.exists() and "about to block" in ctx.output_path.read_text()
        )
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not alive(old)
        after = await pool.run(make_ctx(tmp_path, "pyactions_sample:pid", name="after"))
        assert after.ok and int(after.output) != old

    with_pool(scenario)


def test_close_stops_every_worker(tmp_path: Path) -> None:
    async def scenario() -> list[int]:
        pool = PythonWorkerPool(2)
        await pool.start()
        pids = pool.pids
        await pool.close()
        return pids

    pids = asyncio.run(scenario())
    assert len(pids) == 2 and not any(alive(p) for p in pids)


def test_inline_action_runs_a_callable(tmp_path: Path) -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    ctx = make_ctx(tmp_path, args=[21], isolation="inline")
    sync_result = asyncio.run(InlinePythonAction(func=lambda x: {"got": x}).run(ctx))
    async_result = asyncio.run(InlinePythonAction(func=double).run(ctx))
    assert (sync_result.ok, sync_result.output) == (True, '{"got": 21}')
    assert (async_result.ok, async_result.output) == (True, "42")
    assert ctx.output_path.read_text() == "42"


def test_an_inline_call_without_output_keeps_no_file(tmp_path: Path) -> None:
    # None is no output: no empty file is made per run (a burst would pay a create each)
    ctx = make_ctx(tmp_path, isolation="inline", name="quiet")
    result = asyncio.run(InlinePythonAction(func=lambda: None).run(ctx))
    assert (result.ok, result.output, result.kept) == (True, "", False)
    assert not ctx.output_file.exists()
    said = make_ctx(tmp_path, isolation="inline", name="said")
    assert asyncio.run(InlinePythonAction(func=lambda: "hi").run(said)).kept is True
    assert said.output_file.read_text() == "hi"


def test_inline_failures_and_timeouts(tmp_path: Path) -> None:
    release = threading.Event()

    def stuck() -> None:
        release.wait(30)

    def broken() -> None:
        raise ConnectionError("upstream went away")

    try:
        started = time.monotonic()
        timed_out = asyncio.run(InlinePythonAction(func=stuck).run(make_ctx(tmp_path, timeout=0.3)))
        assert time.monotonic() - started < 3
    finally:
        release.set()
    failed = asyncio.run(InlinePythonAction(func=broken).run(make_ctx(tmp_path)))

    assert timed_out.failure is not None
    assert timed_out.failure.known_class is ErrorClass.TIMEOUT
    assert timed_out.failure.message.startswith("timed out after 0.3s; an inline call cannot")
    assert failed.failure is not None
    assert failed.failure.exception_types[0] == "ConnectionError"
    assert "upstream went away" in failed.failure.message


def test_python_action_runs_inline_tasks_without_the_pool(tmp_path: Path) -> None:
    async def scenario() -> ActionResult:
        pool = PythonWorkerPool(1)  # never started: an inline task must not need it
        result = await PythonAction(pool).run(
            make_ctx(tmp_path, "pyactions_sample:add", args=[1, 1], isolation="inline")
        )
        assert pool.pids == []
        return result

    result = asyncio.run(scenario())
    assert (result.ok, result.output) == (True, "2")


def test_same_named_modules_of_two_projects_do_not_mix(tmp_path: Path) -> None:
    projects = [tmp_path / "alpha", tmp_path / "beta"]
    for project in projects:
        project.mkdir()
        (project / "jobs.py").write_text(f"def which():\n    return {project.name!r}\n")

    async def scenario(pool: PythonWorkerPool) -> list[str]:
        outputs = []
        for i, project in enumerate([*projects, *projects, projects[0]]):
            if i == 2:
                warm = pool.pids
            result = await pool.run(make_ctx(tmp_path, "jobs:which", cwd=str(project)))
            assert result.ok, result.failure
            outputs.append(result.output)
        assert pool.pids == warm  # each project found the worker that had its code
        return outputs

    assert with_pool(scenario, size=2) == ["alpha", "beta", "alpha", "beta", "alpha"]


def test_a_missing_working_directory_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = with_pool(lambda pool: pool.run(make_ctx(tmp_path, cwd=str(missing))))
    assert result.failure is not None
    assert result.failure.known_class is ErrorClass.CONFIG_ERROR
    assert result.failure.message == f"working directory does not exist: {missing}"


def test_a_generator_function_fails_and_says_why_inline_and_in_a_worker(tmp_path: Path) -> None:
    """Probe: `def gen(): yield 1` "succeeded" at every run with "<generator object …>"
    as its output, its body never run."""
    ctx = make_ctx(tmp_path, "pyactions_sample:counting_up", isolation="inline", name="i")
    inline = asyncio.run(InlinePythonAction().run(ctx))
    pooled = with_pool(lambda pool: pool.run(make_ctx(tmp_path, "pyactions_sample:counting_up")))
    for result in (inline, pooled):
        assert not result.ok and result.failure is not None
        assert "the function is a generator" in result.failure.message, result.failure.message


def test_sys_exit_0_is_a_success_and_another_code_a_failure(tmp_path: Path) -> None:
    """A script's main() made a task ends with sys.exit(0): "done, all well", as its exit
    0 says as a command. It failed the run as a code_error (outside-in probe)."""

    async def scenario(pool: PythonWorkerPool) -> list[ActionResult]:
        return [
            await pool.run(make_ctx(tmp_path, "pyactions_sample:exits", args=[code], name=f"p{n}"))
            for n, code in enumerate([0, None, 3])
        ]

    ok, bare, three = with_pool(scenario)
    assert (ok.ok, bare.ok, three.ok) == (True, True, False)
    assert three.failure is not None and "SystemExit" in three.failure.message
    assert (tmp_path / "out" / "p0.log").read_text().startswith("work done")

    import pyactions_sample as sample

    def inline(func: Callable[..., Any], code: int | None, name: str) -> ActionResult:
        ctx = make_ctx(tmp_path, args=[code], isolation="inline", name=name)
        return asyncio.run(InlinePythonAction(func=func).run(ctx))

    assert inline(sample.exits, 0, "i0").ok and inline(sample.exits_async, None, "i1").ok
    failed = inline(sample.exits, 2, "i2")
    assert not failed.ok and failed.failure is not None
    assert "SystemExit" in failed.failure.message
    assert not inline(sample.exits_async, 5, "i3").ok


def test_an_inline_target_imports_from_the_config_folder_as_a_pooled_one_does(
    tmp_path: Path,
) -> None:
    """A task without ``cwd`` imports its target from beside the config file: pooled it
    did, inline it failed with ModuleNotFoundError (outside-in probe)."""
    from agentcron.engine.actions import ActionRegistry

    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "beside_config_7f3a.py").write_text("def f():\n    return 'found'\n")
    registry = ActionRegistry(pool_size=1, cwd=str(folder))
    ctx = make_ctx(tmp_path, "beside_config_7f3a:f", isolation="inline", cwd=None)
    result = asyncio.run(registry(ctx.spec).run(ctx))
    assert (result.ok, result.output) == (True, "found"), result.failure


def test_an_inline_async_call_that_will_not_stop_times_out_all_the_same(tmp_path: Path) -> None:
    """An ``async def`` that catches the cancellation and goes on kept its run in
    progress for good (never recorded, the task's next runs skipped behind it) and held
    the daemon's stop (outside-in probe). Its run times out at its timeout; the call is
    left running, as a thread that cannot be stopped is, and holds its task."""
    from agentcron.actions.python_action import still_running_past_its_run

    refused: list[int] = []
    release = asyncio.Event()

    async def stubborn() -> None:
        while True:
            try:
                await release.wait()
                return
            except asyncio.CancelledError:
                refused.append(1)

    async def scenario() -> ActionResult:
        action = InlinePythonAction(func=stubborn)
        async with asyncio.timeout(10):  # before: never returned
            result = await action.run(make_ctx(tmp_path, timeout=0.2))
        await asyncio.sleep(0.05)
        assert refused and still_running_past_its_run("job") is not None
        release.set()  # the call ends at last: its task is free again
        await until(lambda: still_running_past_its_run("job") is None)
        return result

    result = asyncio.run(scenario())
    assert result.failure is not None
    assert result.failure.known_class is ErrorClass.TIMEOUT
