"""A failing python function's traceback is part of its run's kept output, in the
worker pool and inline alike: `agentcron logs` shows it, and the owner's message
carries it under "Last lines of output", as a command's stderr would be."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e_webhook import WebhookReceiver
from test_notify_e2e import config, flush, record, running, titled, wait_ended

pytestmark = pytest.mark.slow

JOBS = """\
def bad_row():
    print("reading rows", flush=True)
    raise ValueError("bad input row 42")
"""


def python_task(name: str, isolation: str) -> str:
    return (
        f"  {name}:\n"
        "    every: 1d\n"
        '    python: "rowjobs:bad_row"\n'
        f"    isolation: {isolation}\n"
        "    retries: 0\n"
    )


@pytest.mark.parametrize("isolation", ["process", "inline"])
def test_a_failing_functions_traceback_is_kept_and_told(tmp_path: Path, isolation: str) -> None:
    (tmp_path / "rowjobs.py").write_text(JOBS)
    with WebhookReceiver() as hook:
        cfg = config(tmp_path, [hook.url], python_task("rows", isolation))
        with running(tmp_path, cfg) as d:
            d.cli("trigger", "rows")
            [(slot, _)] = wait_ended(d, "rows", "failed")
            [message] = titled(flush(d, hook), "rows")
            run = record(d, slot)
            shown = d.cli("logs", str(slot)).stdout
    body = message["message"]
    assert "Last lines of output:" in body
    told = body.split("Last lines of output:", 1)[1].splitlines()
    assert told[-1] == "ValueError: bad input row 42"
    assert '    raise ValueError("bad input row 42")' in told
    if isolation == "process":  # what it printed comes first, as in a terminal
        assert told[1] == "reading rows"
    assert "ValueError: bad input row 42" in shown and "Traceback" in shown
    # from the function's own code on: no agentcron frames before it, inline too
    first_frame = next(line for line in told if line.lstrip().startswith("File "))
    assert "rowjobs.py" in first_frame, told
    assert run["status"] == "failed"


def test_a_traceback_that_cannot_be_kept_is_said_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The inline failure is recorded all the same; its traceback, which could not be
    written (the output's folder is a file here), is not dropped without a word."""
    import asyncio
    import logging

    from agentcron.actions.python_action import InlinePythonAction
    from test_action_python import make_ctx

    (tmp_path / "rowjobs.py").write_text(JOBS)
    (tmp_path / "out").write_text("not a folder")
    ctx = make_ctx(tmp_path, "rowjobs:bad_row", cwd=str(tmp_path), isolation="inline")
    with caplog.at_level(logging.WARNING, logger="agentcron.actions"):
        result = asyncio.run(InlinePythonAction().run(ctx))
    assert result.failure is not None and "bad input row 42" in result.failure.message
    assert "could not keep the traceback of job's failure in" in caplog.text, caplog.text
