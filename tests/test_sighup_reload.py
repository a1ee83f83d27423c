"""SIGHUP reloads the config file at once and says so (outside-in probe: it was
ignored without a word, no log line and no reload, where operators send it to reload).

In-process, with the watcher's own look made an hour apart: only the signal can make
the change apply within the test."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest

from agentcron.daemon import Daemon, DaemonOptions
from harness import running, until

A = "tasks:\n  a:\n    every: 1h\n    command: [echo, a]\n"
B = "tasks:\n  b:\n    every: 1h\n    command: [echo, b]\n"


def _daemon(tmp_path: Path) -> tuple[Daemon, Path]:
    config = tmp_path / "agentcron.yaml"
    config.write_text(A)
    options = DaemonOptions(
        config_path=config,
        home=tmp_path / "home",
        reload_interval=3600,  # the watcher would not look again within the test
        poll_interval=0.5,
        config_settle=0.2,
        shutdown_grace=2,
    )
    return Daemon(options), config


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agentcron.daemon"]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_sighup_reloads_the_config_file_at_once_and_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    daemon, config = _daemon(tmp_path)

    def names() -> list[str]:
        assert daemon.store is not None
        return [t.name for t in daemon.store.list_tasks()]

    async def scenario() -> None:
        async with running(daemon):
            await asyncio.sleep(0.5)  # the watcher's first sleep has begun
            # unchanged: the signal is answered, and nothing changes
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: any("is unchanged" in m for m in _said(caplog)), 10)
            assert names() == ["a"]
            config.write_text(B)
            await asyncio.sleep(0.3)  # stands still past config_settle
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: names() == ["b"], 10)

    with caplog.at_level(logging.INFO, logger="agentcron"):
        asyncio.run(scenario())
    said = _said(caplog)
    heard = [m for m in said if m.startswith("SIGHUP: reading")]
    assert len(heard) == 2, said
    assert str(config) in heard[0] and "the file is watched" in heard[0]


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 here")
def test_sigusr1_is_said_and_ignored_and_sigquit_stops_as_sigterm(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGUSR1 (sent to reopen logs) and SIGUSR2 ended the daemon at once, its run and
    its log line cut short, no stop recorded, nobody told (outside-in probe); SIGQUIT
    too. They are said and ignored; SIGQUIT stops the daemon as SIGTERM does."""
    daemon, _config = _daemon(tmp_path)

    async def scenario() -> None:
        async with running(daemon):
            for sig in (signal.SIGUSR1, signal.SIGUSR2):
                os.kill(os.getpid(), sig)
                await until(lambda s=sig.name: any(m.startswith(s) for m in _said(caplog)), 10)
            assert not daemon.stop_event.is_set()
            os.kill(os.getpid(), signal.SIGQUIT)
            await until(daemon.stop_event.is_set, 30)  # stopped by the signal itself

    with caplog.at_level(logging.INFO, logger="agentcron"):
        asyncio.run(scenario())
    said = _said(caplog)
    assert any("SIGUSR1 received: agentcron does not use it, so it is ignored" in m for m in said)
    assert "SIGQUIT: stopping as on SIGTERM" in said, said
    assert any(m.startswith("stopping: ") for m in said), said


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 here")
def test_a_programs_own_sigusr1_handler_is_left_to_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A program running a Scheduler may use SIGUSR1 itself (to reopen its logs): the
    daemon takes only signals nothing handles, and gives them back at its end."""
    daemon, _config = _daemon(tmp_path)
    heard: list[int] = []
    before = signal.signal(signal.SIGUSR1, lambda signum, frame: heard.append(signum))

    async def scenario() -> None:
        async with running(daemon):
            os.kill(os.getpid(), signal.SIGUSR1)
            await until(lambda: bool(heard), 10)

    try:
        with caplog.at_level(logging.INFO, logger="agentcron"):
            asyncio.run(scenario())
        assert heard == [signal.SIGUSR1]
        assert not any(m.startswith("SIGUSR1") for m in _said(caplog))
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL  # given back
    finally:
        signal.signal(signal.SIGUSR1, before)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_a_changed_file_is_parsed_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of 10,000 tasks takes seconds to parse (4 s of CPU on a 2-core machine, 40 s
    for 100,000): read on the loop's thread, it held every run's start that long. The
    reload parses it on a thread and applies what it read."""
    import threading

    import agentcron.daemon as daemon_module

    daemon, config = _daemon(tmp_path)
    threads: list[str] = []
    real = daemon_module.load_config

    def recording(path: Path) -> object:
        threads.append(threading.current_thread().name)
        return real(path)

    def names() -> list[str]:
        assert daemon.store is not None
        return [t.name for t in daemon.store.list_tasks()]

    async def scenario() -> None:
        async with running(daemon):
            monkeypatch.setattr(daemon_module, "load_config", recording)
            loop_thread = threading.current_thread().name
            config.write_text(B)
            await asyncio.sleep(0.3)  # stands still past config_settle
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: names() == ["b"], 10)
            assert threads and loop_thread not in threads, threads

    asyncio.run(scenario())


def test_the_programs_signal_handlers_are_given_back_when_the_daemon_ends(
    tmp_path: Path,
) -> None:
    """Outside-in probe: after `await sched.run_async(stop)` returned, the program's
    SIGTERM still went to the stopped daemon ("already stopping; waiting for the runs
    in progress to end", and the process never ended), and a handler the program had
    put on its loop before was lost. Both are as they were once the daemon ends."""
    daemon, _config = _daemon(tmp_path)
    heard: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, heard.append, "program's SIGTERM")
        sigint_before = signal.getsignal(signal.SIGINT)  # asyncio.run's own Ctrl-C
        async with running(daemon):
            assert signal.getsignal(signal.SIGINT) is not sigint_before  # taken meanwhile
        os.kill(os.getpid(), signal.SIGTERM)
        await until(lambda: heard == ["program's SIGTERM"], 10)
        assert signal.getsignal(signal.SIGINT) is sigint_before
        loop.remove_signal_handler(signal.SIGTERM)

    asyncio.run(scenario())


def test_a_signal_that_cannot_be_given_back_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Giving a handler back can fail (the loop closed meanwhile): the log says which
    signal keeps its default, rather than passing over it."""
    daemon, _config = _daemon(tmp_path)

    class Closed:
        def remove_signal_handler(self, sig: int) -> bool:
            raise RuntimeError("Event loop is closed")

    daemon._signals_taken[signal.SIGTERM] = (None, signal.SIG_DFL)
    with caplog.at_level(logging.WARNING, logger="agentcron"):
        daemon._give_signals_back(Closed())  # type: ignore[arg-type]
    assert "could not give SIGTERM back to the program's own handler" in caplog.text
    assert daemon._signals_taken == {}
