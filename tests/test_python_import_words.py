"""A python task whose target does not load is told as what failed: the import, or
the name of the function; the function never ran, so it did not "raise"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentcron.actions._pool import PythonWorkerPool
from agentcron.actions.base import ActionResult
from agentcron.actions.python_action import InlinePythonAction
from agentcron.classify import classify
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import Classification
from test_action_python import make_ctx

pytestmark = pytest.mark.slow

MODULES = {
    "syntaxjobs": "def f(:\n    pass\n",
    "importraises": 'ROWS = {}\nFIRST = ROWS["first"]\n\n\ndef f():\n    pass\n',
    "finejobs": "VALUE = 3\n\n\ndef f():\n    pass\n",
}
TARGETS = ["syntaxjobs:f", "importraises:f", "finejobs:nosuch", "finejobs:VALUE", "nojobs:f"]


def run_all(folder: Path, isolation: str) -> dict[str, ActionResult]:
    for name, text in MODULES.items():
        (folder / f"{name}.py").write_text(text)

    async def main() -> dict[str, ActionResult]:
        results = {}
        async with PythonWorkerPool(1, cwd=str(folder)) as pool:
            for i, target in enumerate(TARGETS):
                ctx = make_ctx(folder, target, cwd=str(folder), isolation=isolation, name=str(i))
                run = pool.run(ctx) if isolation == "process" else InlinePythonAction().run(ctx)
                results[target] = await run
        return results

    return asyncio.run(main())


@pytest.mark.parametrize("isolation", ["process", "inline"])
def test_a_target_that_does_not_load_is_told_as_such(tmp_path: Path, isolation: str) -> None:
    results = run_all(tmp_path, isolation)
    told = {}
    for target, result in results.items():
        assert result.failure is not None, target
        verdict = classify(result.failure)
        told[target] = (verdict.error_class, verdict.explanation)
    assert told == {
        "syntaxjobs:f": (
            ErrorClass.CODE_ERROR,
            "the task's own code failed (importing syntaxjobs failed: "
            "SyntaxError: invalid syntax (syntaxjobs.py, line 1))",
        ),
        "importraises:f": (
            ErrorClass.CODE_ERROR,
            "the task's own code failed (importing importraises failed: KeyError: 'first')",
        ),
        "finejobs:nosuch": (
            ErrorClass.CONFIG_ERROR,
            "the task is misconfigured (finejobs has no function nosuch)",
        ),
        "finejobs:VALUE": (
            ErrorClass.CONFIG_ERROR,
            "the task is misconfigured (finejobs:VALUE is not a function (its type is int))",
        ),
        "nojobs:f": (
            ErrorClass.CONFIG_ERROR,
            "a Python module could not be imported: importing nojobs failed: "
            "ModuleNotFoundError: No module named 'nojobs'",
        ),
    }
    # The line that failed at import is shown in the output, as a function's would be.
    kept = (tmp_path / "out" / "1.log").read_text()
    assert 'FIRST = ROWS["first"]' in kept and kept.rstrip().endswith("KeyError: 'first'")


def test_an_import_error_that_names_its_class_keeps_it(tmp_path: Path) -> None:
    """A module that cannot reach its database at import: retried as the network
    failure it is, not made a code_error by the import's words."""
    (tmp_path / "dbjobs.py").write_text('raise ConnectionRefusedError("db:5432 refused")\n')
    result = asyncio.run(
        InlinePythonAction().run(make_ctx(tmp_path, "dbjobs:f", cwd=str(tmp_path)))
    )
    assert result.failure is not None and result.failure.known_class is None
    verdict = classify(result.failure)
    assert verdict.error_class is ErrorClass.NETWORK
    assert "importing dbjobs failed: ConnectionRefusedError: db:5432 refused" in (
        verdict.explanation
    )


def _inline_config_error(folder: Path, target: str) -> Classification:
    """How an inline run of ``target`` (importing from ``folder``) fails: a config error."""
    ctx = make_ctx(folder, target, cwd=str(folder), isolation="inline")
    result = asyncio.run(InlinePythonAction().run(ctx))
    assert result.failure is not None
    verdict = classify(result.failure)
    assert verdict.error_class is ErrorClass.CONFIG_ERROR, verdict
    return verdict


def test_a_code_task_run_outside_its_program_names_the_wrong_daemon(tmp_path: Path) -> None:
    """A task registered from a program's script (``__main__:quick``) run by another
    process (`agentcron run` on the program's home): it failed "'__main__' has no
    attribute 'quick'" and "fix the error shown in the output" (outside-in probe)."""
    verdict = _inline_config_error(tmp_path, "__main__:quick_not_here")
    assert (
        "__main__:quick_not_here names a function of a program's own script, which only "
        "that program (its agentcron.Scheduler) can call; this process is not that program"
    ) in verdict.explanation, verdict.explanation
    assert "run the program that registers it, not `agentcron run`" in verdict.explanation


def test_a_target_whose_import_starts_the_program_again_says_what_to_change(
    tmp_path: Path,
) -> None:
    """The README's example with its python= target in the program's own file: the
    import ran sched.run() again, and every run failed "DaemonAlreadyRunning" with no
    word of the guard it needs (outside-in probe)."""
    (tmp_path / "selfjobs.py").write_text(
        "from agentcron.instance_lock import DaemonAlreadyRunning\n"
        "raise DaemonAlreadyRunning('this process is already running a daemon', None)\n"
    )
    verdict = _inline_config_error(tmp_path, "selfjobs:heartbeat")
    assert (
        "importing selfjobs started its agentcron.Scheduler again (the module runs "
        'sched.run() when it is imported): put sched.run() under `if __name__ == "__main__":`'
    ) in verdict.explanation, verdict.explanation
