"""The daemon's loop runs to its end: tasks left over that will not end when cancelled
are named and left behind, instead of holding the process for good (``asyncio.run``
waits for them with no limit; an outside-in probe's daemon never exited)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from agentcron.run_loop import run_to_end


def test_a_task_that_will_not_end_does_not_hold_the_exit(caplog: pytest.LogCaptureFixture) -> None:
    refused: list[int] = []

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                refused.append(1)

    async def main() -> str:
        asyncio.get_running_loop().create_task(stubborn(), name="run:stubborn:3")
        await asyncio.sleep(0.01)
        return "stopped"

    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="agentcron.daemon"):
        assert run_to_end(main(), leftovers_grace=0.2) == "stopped"
    assert time.monotonic() - started < 5
    assert refused  # it was asked
    assert "1 task(s) would not end when cancelled at the stop" in caplog.text
    assert "run:stubborn:3" in caplog.text


def test_tasks_that_end_when_cancelled_end_and_errors_propagate() -> None:
    ended: list[str] = []

    async def polite() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            ended.append("polite")

    async def main() -> None:
        asyncio.get_running_loop().create_task(polite())
        await asyncio.sleep(0.01)
        raise ValueError("main failed")

    with pytest.raises(ValueError, match="main failed"):
        run_to_end(main(), leftovers_grace=5)
    assert ended == ["polite"]


def test_a_thread_call_that_never_returns_does_not_hold_the_exit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``asyncio.run`` joins the executor's threads without a limit: a file write or a
    store read on a file system that stopped answering held the stopped daemon for
    good. Its thread is given the grace, then named with where it waits and left."""
    import threading

    from agentcron.run_loop import threads_left_behind

    release = threading.Event()

    def hung_write() -> None:
        release.wait(60)

    async def main() -> str:
        asyncio.get_running_loop().create_task(asyncio.to_thread(hung_write))
        await asyncio.sleep(0.05)
        return "stopped"

    started = time.monotonic()
    try:
        with caplog.at_level(logging.ERROR, logger="agentcron.daemon"):
            assert run_to_end(main(), leftovers_grace=0.3) == "stopped"
        assert time.monotonic() - started < 10
        assert threads_left_behind() == 1
    finally:
        release.set()
    said = caplog.text
    assert "1 thread(s) of the daemon's loop still in a call 0.3s after the stop" in said
    assert "waiting in: hung_write (" in said  # the call it was given …
    assert ", in wait (" in said  # … and threading's wait, where it hangs
    deadline = time.monotonic() + 10
    while threads_left_behind() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threads_left_behind() == 0


def test_the_executor_threads_of_a_clean_stop_are_not_left_behind() -> None:
    from agentcron.run_loop import threads_left_behind

    async def main() -> int:
        return await asyncio.to_thread(lambda: 7)

    assert run_to_end(main(), leftovers_grace=5) == 7
    assert threads_left_behind() == 0
