"""A send agentcron could not start for want of threads or files is not the channel's
fault, and its error says so.

Outside-in probe: a daemon out of threads had `health` name its channel as failing
with "can't start new thread", the owner's cue to fix a channel that was fine (and the
thread's RuntimeError left the channel's send unanswered by any result)."""

from __future__ import annotations

import asyncio
import errno
import threading
from pathlib import Path
from typing import Any

import pytest

from agentcron.model import Message
from agentcron.notify.channels import AppriseChannel, CommandChannel

MESSAGE = Message(
    title="t", body="b", task="x", event="failed", incident_kind="failure", severity="failure"
)


def test_an_apprise_send_without_a_thread_says_it_is_the_daemons_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_thread(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    channel = AppriseChannel("json://127.0.0.1:9/hook")
    monkeypatch.setattr(threading.Thread, "start", no_thread)
    result = asyncio.run(channel.send(MESSAGE))
    assert not result.ok and not result.permanent  # sent again later
    assert result.error is not None
    assert result.error.startswith("agentcron ran out of threads")
    assert "not the channel's fault" in result.error


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("asyncio.create_subprocess_exec", OSError(errno.EMFILE, "Too many open files")),
        ("asyncio.create_subprocess_exec", OSError(errno.EAGAIN, "Resource unavailable")),
        ("tempfile.TemporaryFile", OSError(errno.EMFILE, "Too many open files")),
    ],
)
def test_a_command_channel_that_cannot_start_for_want_of_resources_says_whose_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, error: OSError
) -> None:
    script = tmp_path / "send.sh"
    script.write_text("#!/bin/sh\ncat > /dev/null\n")
    script.chmod(0o755)

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise error

    def refuse_now(*args: Any, **kwargs: Any) -> Any:
        raise error

    module, name = where.split(".")
    target = asyncio if module == "asyncio" else __import__(module)
    monkeypatch.setattr(target, name, refuse if module == "asyncio" else refuse_now)
    result = asyncio.run(CommandChannel([str(script)]).send(MESSAGE))
    assert not result.ok and not result.permanent
    assert result.error is not None and result.error.startswith("agentcron ran out of ")
    assert "not the channel's fault" in result.error


def test_a_command_that_is_missing_is_still_the_channels_own_fault(tmp_path: Path) -> None:
    result = asyncio.run(CommandChannel([str(tmp_path / "nowhere.sh")]).send(MESSAGE))
    assert not result.ok and result.error is not None
    assert result.error.startswith("cannot start ") and "ran out of" not in result.error
