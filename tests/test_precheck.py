"""The precheck protocol, run against real child processes."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.actions.base import ActionContext
from agentcron.actions.command import group_alive
from agentcron.actions.llm_action import CONTEXT_HEADER, build_request
from agentcron.actions.precheck import (
    DEFAULT_SKIP_REASON,
    PrecheckOutcome,
    interpret,
    precheck_timeout,
    run_precheck,
)
from agentcron.model.enums import ErrorClass
from agentcron.model.task import TaskSpec

PY = sys.executable


def make_ctx(
    tmp_path: Path,
    precheck: list[str] | str | None,
    *,
    timeout: float = 30.0,
    grace: float = 1.0,
    **spec_keys: Any,
) -> ActionContext:
    spec = TaskSpec.model_validate(
        {
            "name": "digest",
            "every": "1h",
            "llm": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "prompt": "Summarise."},
            "precheck": precheck,
            **spec_keys,
        }
    )
    return ActionContext(
        task="digest",
        spec=spec,
        slot_id=7,
        attempt=1,
        scheduled_for=datetime(2026, 3, 1, 6, 0, tzinfo=UTC),
        output_path=tmp_path / "out.md",
        timeout=timedelta(seconds=timeout),
        kill_grace=timedelta(seconds=grace),
    )


def python_precheck(code: str) -> list[str]:
    return [PY, "-c", "import json, os, sys, time\n" + code]


def precheck(ctx: ActionContext) -> PrecheckOutcome:
    return asyncio.run(run_precheck(ctx.spec, ctx))


@pytest.mark.slow
def test_run_false_skips_with_the_reason(tmp_path: Path) -> None:
    ctx = make_ctx(
        tmp_path,
        python_precheck(
            "print('looking for new items...')\n"
            "print(json.dumps({'run': False, 'reason': 'no new items since 02:00'}))\n"
            "print()\n"
        ),
    )

    assert precheck(ctx) == PrecheckOutcome(run=False, reason="no new items since 02:00")


@pytest.mark.slow
def test_context_reaches_the_prompt_as_an_earlier_turn(tmp_path: Path) -> None:
    ctx = make_ctx(
        tmp_path,
        python_precheck(
            "context = 'New: ' + os.environ['FEED'] + ' in ' + os.getcwd()\n"
            "print(json.dumps({'run': True, 'context': context}))"
        ),
        env={"FEED": "3 posts"},
        cwd=str(tmp_path),
    )

    outcome = precheck(ctx)

    assert outcome == PrecheckOutcome(run=True, context=f"New: 3 posts in {tmp_path}")
    assert ctx.spec.llm is not None
    messages = build_request(ctx.spec.llm, replace(ctx, context_text=outcome.context))["messages"]
    assert messages[0] == {
        "role": "user",
        "content": f"{CONTEXT_HEADER}\n\nNew: 3 posts in {tmp_path}",
    }
    assert messages[-1] == {"role": "user", "content": "Summarise."}


@pytest.mark.slow
def test_plain_output_runs_without_context(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, python_precheck("print('all good, 3 new items')"))

    assert precheck(ctx) == PrecheckOutcome(run=True)


@pytest.mark.slow
def test_shell_string_precheck_runs_with_shell(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, 'echo \'{"run": false, "reason": "weekend"}\'', shell=True)

    assert precheck(ctx) == PrecheckOutcome(run=False, reason="weekend")


def test_string_precheck_without_shell_is_a_config_error(tmp_path: Path) -> None:
    outcome = precheck(make_ctx(tmp_path, "echo hi"))

    assert not outcome.run
    assert outcome.failure is not None
    assert outcome.failure.known_class is ErrorClass.CONFIG_ERROR
    assert outcome.failure.action == "precheck"


@pytest.mark.slow
def test_non_zero_exit_fails_with_code_and_tail(tmp_path: Path) -> None:
    ctx = make_ctx(
        tmp_path,
        python_precheck(
            "print('checking feed')\n"
            "print('feed unreachable: token=' + os.environ['FEED_TOKEN'], file=sys.stderr)\n"
            "sys.exit(75)\n"
        ),
        env={"FEED_TOKEN": "tok-very-secret-value"},
    )

    outcome = precheck(ctx)

    assert not outcome.run and outcome.reason is None and outcome.context is None
    failure = outcome.failure
    assert failure is not None
    assert failure.action == "precheck"
    assert failure.exit_code == 75
    assert failure.message == "precheck exited with code 75"
    assert failure.output_tail.splitlines() == [
        "checking feed",
        "feed unreachable: token=[REDACTED]",
    ]
    assert failure.known_class is None  # exit 75 is for the classifier to read


@pytest.mark.slow
def test_missing_program_fails_like_a_command(tmp_path: Path) -> None:
    outcome = precheck(make_ctx(tmp_path, [str(tmp_path / "no-such-precheck")]))

    assert outcome.failure is not None
    assert outcome.failure.exit_code == 127
    assert "not found" in outcome.failure.message


@pytest.mark.slow
def test_hang_is_killed_with_its_group_at_the_timeout(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    ctx = make_ctx(
        tmp_path,
        python_precheck(
            "import signal, subprocess\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            f"child = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(120)'])\n"
            f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
            "print('waiting for the feed', flush=True)\n"
            "time.sleep(120)\n"
        ),
        timeout=3.0,
        grace=0.3,
    )

    started = time.monotonic()
    outcome = precheck(ctx)
    elapsed = time.monotonic() - started

    assert outcome.failure is not None
    assert outcome.failure.known_class is ErrorClass.TIMEOUT
    assert outcome.failure.message.startswith(
        "precheck timed out after 3s; killed its process group (TERM, then KILL after"
    )
    assert "waiting for the feed" in outcome.failure.output_tail
    assert elapsed < 20
    leader, child = (int(p) for p in pids.read_text().split())
    assert not group_alive(leader)
    assert not _alive(child)


@pytest.mark.slow
def test_cancellation_stops_the_precheck_and_propagates(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    ctx = make_ctx(
        tmp_path,
        python_precheck(f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)"),
        grace=0.3,
    )

    async def start_then_cancel() -> None:
        task = asyncio.create_task(run_precheck(ctx.spec, ctx))
        deadline = time.monotonic() + 20
        while not (pid_file.exists() and pid_file.read_text()):
            assert time.monotonic() < deadline, "precheck never started"
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(start_then_cancel())

    assert not group_alive(int(pid_file.read_text()))


def test_no_precheck_runs() -> None:
    ctx = make_ctx(Path("/nonexistent"), None)

    assert asyncio.run(run_precheck(ctx.spec, ctx)) == PrecheckOutcome(run=True)


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ("", PrecheckOutcome(run=True)),
        ("\n\n", PrecheckOutcome(run=True)),
        ("not json at all\n", PrecheckOutcome(run=True)),
        ("[1, 2]\n", PrecheckOutcome(run=True)),
        ('{"run": true}\n', PrecheckOutcome(run=True)),
        ('{"run": "false"}\n', PrecheckOutcome(run=True)),
        ('{"run": false}\n', PrecheckOutcome(run=False, reason=DEFAULT_SKIP_REASON)),
        ('{"run": false}\nlater log line\n', PrecheckOutcome(run=True)),
        ('log\n{"context": "x"}\n  \n', PrecheckOutcome(run=True, context="x")),
        ('{"context": ""}', PrecheckOutcome(run=True)),
        ('{"context": {"items": 2}}', PrecheckOutcome(run=True, context='{\n  "items": 2\n}')),
        (
            '{"run": false, "reason": "quiet", "context": "x"}',
            PrecheckOutcome(run=False, reason="quiet"),
        ),
    ],
)
def test_interpret(stdout: str, expected: PrecheckOutcome) -> None:
    assert interpret(stdout) == expected


def test_timeout_is_the_tasks_but_at_most_five_minutes() -> None:
    assert precheck_timeout(timedelta(seconds=40)) == timedelta(seconds=40)
    assert precheck_timeout(timedelta(hours=1)) == timedelta(minutes=5)


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return state[state.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def test_a_precheck_sees_placeholders_filled_like_the_action(
    sqlite_store: Any, clock: Any, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``${NAME}`` in a precheck's command is filled from the environment as the
    action's is; the stored task keeps the placeholder."""
    from harness import Harness

    monkeypatch.setenv("PRECHECK_WORD", "weekend")
    script = 'import sys, json; print(json.dumps({"run": False, "reason": sys.argv[1]}))'

    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        h.add(
            "gated",
            lambda: "ran",
            every="1h",
            precheck=[sys.executable, "-c", script, "it is the ${PRECHECK_WORD}"],
        )
        clock.advance(timedelta(hours=1))
        await h.tick()
        return h

    h = asyncio.run(scenario())
    (slot,) = h.slots("gated")
    assert slot.status.value == "skipped" and slot.reason == "precheck: it is the weekend", slot
    rec = sqlite_store.get_task("gated")
    assert rec is not None and "${PRECHECK_WORD}" in rec.spec.precheck[-1]
