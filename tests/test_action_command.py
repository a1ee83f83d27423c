"""The command action with real processes, and the output-file helpers it writes with."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agentcron.actions.base import ActionContext, ActionResult
from agentcron.actions.command import CommandAction
from agentcron.actions.output import output_file_name, read_output, tail_lines
from agentcron.model.enums import ErrorClass
from agentcron.model.task import TaskSpec

pytestmark = pytest.mark.slow


def output_file_for(*args: Any, **kwargs: Any) -> Path:
    return Path(output_file_name(*args, **kwargs))


def make_ctx(
    tmp_path: Path,
    *,
    timeout: float = 10.0,
    grace: float = 0.5,
    ctx_env: dict[str, str] | None = None,
    **spec: Any,
) -> ActionContext:
    task = TaskSpec(name="job", every="1h", **spec)
    return ActionContext(
        task="job",
        spec=task,
        slot_id=7,
        attempt=1,
        scheduled_for=datetime(2026, 3, 29, 3, 0, tzinfo=UTC),
        output_path=tmp_path / "out" / "job" / "run.log",
        timeout=timedelta(seconds=timeout),
        kill_grace=timedelta(seconds=grace),
        env=ctx_env or {},
    )


def run(ctx: ActionContext) -> ActionResult:
    return asyncio.run(CommandAction().run(ctx))


def alive(pid: int) -> bool:
    """Running and not a zombie (an orphaned zombie may wait long for its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def wait_until(condition: Callable[[], bool], deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def read_pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_success_keeps_stdout_and_stderr_in_the_file(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, command=["sh", "-c", "echo to-out; echo to-err >&2"])
    result = run(ctx)
    assert result.ok and result.exit_code == 0 and result.failure is None
    assert ctx.output_path.read_text() == "to-out\nto-err\n"
    assert result.output == "to-out\nto-err\n"


def test_nonzero_exit_reports_code_and_last_20_lines(tmp_path: Path) -> None:
    script = "for i in $(seq 1 30); do echo line$i; done; exit 4"
    result = run(make_ctx(tmp_path, command=["sh", "-c", script]))
    assert not result.ok and result.failure is not None
    assert result.exit_code == 4
    assert result.failure.exit_code == 4
    assert result.failure.message == "exited with code 4"
    assert result.failure.output_tail == "\n".join(f"line{i}" for i in range(11, 31))
    assert result.failure.known_class is None


def test_death_by_signal_is_reported_as_such(tmp_path: Path) -> None:
    result = run(make_ctx(tmp_path, command=["sh", "-c", "kill -9 $$"]))
    assert result.failure is not None
    assert result.failure.signal == 9 and result.failure.exit_code is None
    assert result.failure.message == "killed by signal SIGKILL (9)"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (
        f"echo $$ >> {pids}; sleep 30 & echo $! >> {pids}; "
        f"sh -c 'sleep 30 & echo $! >> {pids}; wait' & echo $! >> {pids}; "
        "echo started; wait"
    )
    started = time.monotonic()
    result = run(make_ctx(tmp_path, timeout=1.5, command=script, shell=True))
    elapsed = time.monotonic() - started

    assert result.failure is not None
    assert result.failure.known_class is ErrorClass.TIMEOUT
    assert result.failure.message == "timed out after 1.5s; killed process group (TERM)"
    assert result.failure.output_tail == "started"  # partial output kept
    assert elapsed < 5
    found = read_pids(pids)
    assert len(found) == 4, "the script did not get to start everything within its timeout"
    assert [p for p in found if alive(p)] == []


def test_a_group_that_ignores_term_is_killed_after_the_grace(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # An ignored signal stays ignored across exec, so the sleeps ignore TERM too.
    script = f"trap '' TERM; sleep 30 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    started = time.monotonic()
    result = run(make_ctx(tmp_path, timeout=1.0, grace=0.5, command=script, shell=True))
    elapsed = time.monotonic() - started

    assert result.failure is not None
    assert result.failure.known_class is ErrorClass.TIMEOUT
    assert result.failure.message == (
        "timed out after 1s; killed process group (TERM, then KILL after 0.5s)"
    )
    assert 1.5 <= elapsed < 1.5 + 3.0
    found = read_pids(pids)
    assert len(found) == 2
    assert [p for p in found if alive(p)] == []


def test_processes_left_behind_by_a_successful_command_are_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    result = run(make_ctx(tmp_path, command=f"sleep 30 & echo $! > {pids}; echo done", shell=True))
    assert result.ok and result.output == "done\n"
    (stray,) = read_pids(pids)
    assert not alive(stray)


def test_cancellation_kills_the_group_and_propagates(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    ctx = make_ctx(
        tmp_path, command=f"sleep 30 & echo $! >> {pids}; echo $$ >> {pids}; wait", shell=True
    )

    async def scenario() -> None:
        task = asyncio.create_task(CommandAction().run(ctx))
        end = time.monotonic() + 10
        while len(read_pids(pids)) < 2:
            assert time.monotonic() < end, "the command never started"
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    found = read_pids(pids)
    assert len(found) == 2 and [p for p in found if alive(p)] == []


def test_missing_executable_is_a_failure_with_127(tmp_path: Path) -> None:
    result = run(make_ctx(tmp_path, command=["agentcron-no-such-program-xyz", "arg"]))
    assert result.failure is not None
    assert result.exit_code == 127 and result.failure.exit_code == 127
    assert result.failure.message == "command not found: agentcron-no-such-program-xyz"


def test_file_that_is_not_executable_is_a_failure_with_126(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    result = run(make_ctx(tmp_path, command=[str(script)]))
    assert result.failure is not None
    assert result.failure.exit_code == 126
    assert result.failure.message == f"command is not executable: {script}"


def test_script_without_an_interpreter_line_is_a_failure_with_126(tmp_path: Path) -> None:
    script = tmp_path / "no-shebang"
    script.write_bytes(b"\x7fELF not really a program")
    script.chmod(0o755)
    result = run(make_ctx(tmp_path, command=[str(script)]))
    assert result.failure is not None
    assert result.failure.exit_code == 126
    assert result.failure.message == f"cannot execute {script}: Exec format error"


def test_shell_string_runs_through_sh(tmp_path: Path) -> None:
    result = run(make_ctx(tmp_path, command="echo $((1 + 2)) | tr 3 X", shell=True))
    assert result.ok and result.output == "X\n"


def test_argv_is_not_interpreted_by_a_shell(tmp_path: Path) -> None:
    result = run(make_ctx(tmp_path, command=["echo", "$HOME", "; rm -rf /", "|"]))
    assert result.ok and result.output == "$HOME ; rm -rf / |\n"


def test_env_and_cwd_are_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCRON_TEST_INHERITED", "from-daemon")
    monkeypatch.setenv("AGENTCRON_TEST_OVERRIDDEN", "daemon-value")
    workdir = tmp_path / "work"
    workdir.mkdir()
    ctx = make_ctx(
        tmp_path,
        command=[
            "sh",
            "-c",
            "pwd; echo $AGENTCRON_TEST_INHERITED $AGENTCRON_TEST_OVERRIDDEN $AGENTCRON_TASK",
        ],
        env={"AGENTCRON_TEST_OVERRIDDEN": "task-value"},
        ctx_env={"AGENTCRON_TASK": "job"},
        cwd=str(workdir),
    )
    result = run(ctx)
    assert result.ok
    assert result.output == f"{workdir}\nfrom-daemon task-value job\n"


def test_missing_working_directory_is_a_config_error(tmp_path: Path) -> None:
    result = run(make_ctx(tmp_path, command=["true"], cwd=str(tmp_path / "nowhere")))
    assert result.failure is not None
    assert result.failure.known_class is ErrorClass.CONFIG_ERROR
    assert result.failure.message == f"working directory does not exist: {tmp_path / 'nowhere'}"


def test_secrets_from_the_task_env_are_redacted_in_the_tail(tmp_path: Path) -> None:
    secret = "q9Zr2bXw7LmN4vPk"
    ctx = make_ctx(
        tmp_path,
        command=["sh", "-c", 'echo "using $SERVICE_TOKEN"; exit 1'],
        env={"SERVICE_TOKEN": secret},
    )
    result = run(ctx)
    assert result.failure is not None
    assert secret not in result.failure.output_tail
    assert result.failure.output_tail == "using [REDACTED]"


def test_output_file_names_sort_by_time_and_keep_retries_apart(tmp_path: Path) -> None:
    early = datetime(2026, 3, 29, 3, 0, tzinfo=UTC)
    late = datetime(2026, 3, 29, 5, 30, tzinfo=timezone(timedelta(hours=2)))  # 03:30Z
    a1 = output_file_for(tmp_path, "story", early, 1, slot_id=42)
    a2 = output_file_for(tmp_path, "story", early, 2, slot_id=42)
    b1 = output_file_for(tmp_path, "story", late, 1, slot_id=43, suffix=".md")
    assert a1 == tmp_path / "outputs" / "story" / "20260329T030000Z-s42-a1.log"
    assert b1.name == "20260329T033000Z-s43-a1.md"
    assert a1 != a2
    assert sorted([b1.name, a2.name, a1.name]) == [a1.name, a2.name, b1.name]
    with pytest.raises(ValueError):
        output_file_for(tmp_path, "../escape", early, 1)


def test_an_output_file_is_made_with_its_folder_and_truncated_when_reused(tmp_path: Path) -> None:
    from agentcron.actions.output import open_output

    path = output_file_for(tmp_path, "story", datetime(2026, 3, 29, tzinfo=UTC), 1)
    for text, path_form in ((b"first run, longer\n", str(path)), (b"again\n", path)):
        fd = open_output(path_form)  # the folder is made when missing, a str or a Path
        os.write(fd, text)
        os.close(fd)
        assert path.read_bytes() == text
    for child in path.parent.iterdir():  # a folder removed under a running daemon
        child.unlink()
    path.parent.rmdir()
    os.close(open_output(path))
    assert path.exists()


def test_tail_reads_only_the_end_of_a_big_file(tmp_path: Path) -> None:
    big = tmp_path / "big.log"
    with big.open("w") as f:
        for i in range(200_000):
            f.write(f"line {i}\n")
    assert tail_lines(big, n=3) == "line 199997\nline 199998\nline 199999"
    # A window that starts mid-line drops the fragment.
    assert tail_lines(big, n=50, max_bytes=30) == "line 199998\nline 199999"
    assert tail_lines(tmp_path / "missing.log") == ""


def test_read_output_caps_memory_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_bytes(b"x" * 100)
    assert read_output(path, max_bytes=100) == "x" * 100
    capped = read_output(path, max_bytes=10)
    assert capped.startswith("x" * 10 + "\n[... 90 more bytes in ")
    assert os.path.getsize(path) == 100


def test_a_launcher_that_cannot_start_is_agentcrons_problem_not_the_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's user cannot run agentcron's own Python (a venv under another
    user's 0700 home): the command never ran, and was reported "not executable: sh"."""

    locked = tmp_path / "locked" / "python3"
    locked.parent.mkdir()
    locked.write_text("#!/bin/sh\n")
    locked.chmod(0o644)  # not executable, as an unreadable folder makes it
    monkeypatch.setattr(sys, "executable", str(locked))
    result = run(make_ctx(tmp_path, command="echo hi", shell=True))
    assert result.failure is not None
    assert result.failure.known_class is ErrorClass.CONFIG_ERROR
    message = result.failure.message
    assert message.startswith(f"agentcron could not start its command launcher ({locked}): ")
    assert "The task's command did not run" in message and "sh" not in message.split(":")[0]


def test_a_working_directory_that_cannot_be_entered_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "private"
    folder.mkdir()
    real_exec = asyncio.create_subprocess_exec

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", kwargs["cwd"])

    monkeypatch.setattr(asyncio, "create_subprocess_exec", refused)
    result = run(make_ctx(tmp_path, command=["true"], cwd=str(folder)))
    monkeypatch.setattr(asyncio, "create_subprocess_exec", real_exec)
    assert result.failure is not None
    assert result.failure.message == (
        f"cannot enter the working directory {folder}: Permission denied"
    )


def test_a_command_that_exited_during_a_frozen_loop_is_not_a_timeout(tmp_path: Path) -> None:
    """The event loop frozen past the timeout (SIGSTOP, a paused VM) while the command
    exits: the timeout's timer and the exit are seen together, the timer first. It was
    recorded "timed out … killed process group" and run again, though it succeeded in
    a moment (found by an outside-in probe)."""
    ctx = make_ctx(tmp_path, timeout=0.5, command=["sh", "-c", "echo all good"])
    started = asyncio.Event()
    ctx = dataclasses.replace(ctx, on_started=lambda _pid: started.set())

    async def scenario() -> ActionResult:
        run = asyncio.ensure_future(CommandAction().run(ctx))
        await started.wait()
        time.sleep(1.5)  # the loop frozen: the command exits meanwhile
        return await run

    result = asyncio.run(scenario())
    assert result.ok, result.failure
    assert read_output(ctx.output_file).strip() == "all good"


def test_a_command_still_running_at_its_timeout_is_still_stopped(tmp_path: Path) -> None:
    result = run(make_ctx(tmp_path, timeout=0.3, grace=0.2, command=["sleep", "30"]))
    assert not result.ok and result.failure is not None
    assert result.failure.known_class is ErrorClass.TIMEOUT


def test_a_command_that_exits_just_after_its_timeout_is_a_timeout(tmp_path: Path) -> None:
    """The moment given to an exit already waiting to be seen is only for a loop that
    looked late (frozen): on one that looked in time, a command still running at its
    deadline ran past its timeout, even if it would have ended a moment later."""
    ctx = make_ctx(tmp_path, timeout=0.3, grace=0.5, command=["sh", "-c", "sleep 0.6; echo done"])
    result = run(ctx)
    assert not result.ok and result.failure is not None
    assert result.failure.known_class is ErrorClass.TIMEOUT


def test_an_output_folder_replaced_during_the_run_does_not_undo_its_end(tmp_path: Path) -> None:
    """The task's output folder was replaced by a file while the command ran: reading
    its output afterwards failed (ENOTDIR), the finished run was recorded as the home's
    storage failing, retried, and ran twice (outside-in probe). Its exit stands."""
    ctx = make_ctx(tmp_path, command=["sh", "-c", "echo made; sleep 0.5"])
    folder = ctx.output_file.parent

    async def scenario() -> ActionResult:
        started = asyncio.Event()
        run = asyncio.ensure_future(
            CommandAction().run(dataclasses.replace(ctx, on_started=lambda _pid: started.set()))
        )
        await started.wait()
        folder.rename(tmp_path / "moved")
        folder.write_text("a file where the folder was\n")
        return await run

    result = asyncio.run(scenario())
    assert result.ok and result.exit_code == 0, result.failure
    assert "agentcron could not read the output file" in result.output
    assert "Not a directory" in result.output


def test_a_kill_by_its_own_launchers_fence_is_said_as_such_not_as_from_outside(
    tmp_path: Path,
) -> None:
    """Chaos probe: a node frozen past its lease had its command stopped by the
    launcher's fence, and the run was told as "killed by SIGKILL (signal 9) from outside
    agentcron, often the out-of-memory killer, or an operator's kill -9"."""
    import json
    import signal

    from agentcron.actions.command import FENCED, _result_for
    from agentcron.classify import classify
    from agentcron.model import ErrorClass

    ctx = make_ctx(tmp_path, command=["true"])
    ctx = dataclasses.replace(ctx, output_path=tmp_path / "home" / "outputs" / "job" / "run.log")
    outside = _result_for(-signal.SIGKILL, ctx)
    assert outside.failure is not None and outside.failure.known_class is None
    marker = tmp_path / "home" / "runs" / "7-1.json"
    marker.parent.mkdir(parents=True)
    fields = {"slot": 7, "attempt": 1, "pgid": 4242, "started_at": 1.0}
    marker.write_text(json.dumps({**fields, "ended_at": 2.0, "orphaned": True}))
    fenced = _result_for(-signal.SIGKILL, ctx)
    assert fenced.failure is not None
    assert fenced.failure.known_class is ErrorClass.WORKER_LOST
    said = classify(fenced.failure)
    assert said.error_class is ErrorClass.WORKER_LOST
    assert said.explanation.startswith("agentcron stopped the command: its daemon was frozen")
    assert FENCED in said.explanation and "outside agentcron" not in said.explanation


def test_a_command_whose_end_is_seen_late_ends_when_its_launcher_saw_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon frozen (SIGSTOP) or its loop held by a statement waiting for a locked
    table while a command ends: its end was recorded when the loop saw it, and the
    owner read "✔ slow finished after running for 1 min" for a 20 s run (outside-in
    probe, PostgreSQL). The launcher's recorded end is the attempt's end."""
    import time

    import agentcron.engine.runner as runner
    from agentcron.clock import SystemClock
    from agentcron.model import SlotStatus
    from agentcron.store.sqlite import SQLiteStore
    from harness import Harness

    recorder = runner._recorder

    def held(store: Any, attempt_id: int) -> Any:
        record = recorder(store, attempt_id)

        def then_held(pgid: int) -> None:
            record(pgid)
            time.sleep(1.5)  # the loop's thread held while the command ends

        return then_held

    monkeypatch.setattr(runner, "_recorder", held)
    store = SQLiteStore(tmp_path / "agentcron.db")
    h = Harness(store, SystemClock(), tmp_path / "home")  # type: ignore[arg-type]

    async def scenario() -> None:
        h.add("quick", command=["true"], every="1h")
        h.service.trigger("quick")
        await h.tick()

    try:
        asyncio.run(scenario())
        [slot] = h.slots("quick")
        [attempt] = store.attempts(slot.id)
    finally:
        store.close()
    assert slot.status is SlotStatus.SUCCEEDED
    assert slot.started_at is not None and slot.finished_at is not None
    assert slot.finished_at - slot.started_at < timedelta(seconds=1), slot
    assert attempt.finished_at is not None and attempt.finished_at - attempt.started_at < timedelta(
        seconds=1
    )
