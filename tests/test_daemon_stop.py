"""A clean stop during a run (SIGTERM, `systemctl stop`): the interrupted attempt takes
the same finish path as any other end, so on its last attempt the owner hears of it;
and a task killed together with the daemon (systemd's default KillMode=control-group)
is an interruption, never the task's own error."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from daemon_proc import DaemonProc, kill_pids_in, wait_for
from e2e_sink import Sink

pytestmark = pytest.mark.slow


def _config(sink: Sink, pids: Path) -> str:
    return (
        f'notify: ["{sink.url("/owner")}"]\n'
        "tasks:\n"
        "  long:\n"
        "    every: 1h\n"
        "    retries: 0\n"
        f"    command: [sh, -c, 'echo $$ >> {pids}; sleep 30']\n"
    )


def _running(d: DaemonProc) -> list[dict[str, object]]:
    return [r for r in d.json("runs", "long") if r["status"] == "running"]


@pytest.mark.parametrize("group", [False, True], ids=["daemon-only", "whole-group"])
def test_sigterm_during_the_last_attempt_is_recorded_and_told(tmp_path: Path, group: bool) -> None:
    pids = tmp_path / "pids"
    with Sink() as sink:
        d = DaemonProc(tmp_path, _config(sink, pids), extra_env={"AGENTCRON_SHUTDOWN_GRACE": "1"})
        try:
            d.start()
            wait_for(lambda: d.json("list"), what="daemon up")
            d.cli("trigger", "long")
            wait_for(lambda: _running(d), what="run started")
            wait_for(lambda: pids.exists() and pids.read_text().strip(), what="pid written")
            assert d.proc is not None
            d.proc.send_signal(signal.SIGTERM)
            if group:  # the service manager signals the task's processes too
                for line in pids.read_text().split():
                    os.killpg(os.getpgid(int(line)), signal.SIGTERM)
            assert d.proc.wait(30) == 0
            runs = d.json("runs", "long")
            texts = sink.texts("/owner")
        finally:
            d.stop()
            kill_pids_in(pids)
    assert [r["status"] for r in runs] == ["failed"], runs
    assert runs[0]["error_class"] == "worker_lost", runs  # transient: never code_error
    assert "daemon stopped while the run was in progress" in str(runs[0]["error"])
    told = [t for t in texts if "long" in t]
    assert len(told) == 1, texts  # heard at the stop, not at some later start


def msg(title: str, task: str = "") -> Any:
    """A notification titled ``title`` (its body the same), of ``task``."""
    from agentcron.model import Message

    return Message(
        title=title, body=title, task=task, event="x", incident_kind="x", severity="failure"
    )


def _daemon_with_sender(tmp_path: Path, channel: Any, **options: Any) -> tuple[Any, Any, Any]:
    """A daemon, not started, with a store and an outbox sender whose every channel is
    ``channel``: what its final drain needs (daemon, store, clock)."""
    from agentcron.clock import SystemClock
    from agentcron.daemon import Daemon, DaemonOptions
    from agentcron.notify.sender import OutboxSender
    from agentcron.store.sqlite import SQLiteStore

    daemon = Daemon(DaemonOptions(config_path=None, home=tmp_path / "home", **options))
    store = SQLiteStore(tmp_path / "agentcron.db")
    clock = SystemClock()
    daemon.store = store
    daemon.sender = OutboxSender(
        store, channel_factory=lambda _url: channel, clock=clock, owner=daemon.node_id
    )
    return daemon, store, clock


def test_the_final_drain_sends_past_a_send_the_stop_cut_short(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The outbox sender is cancelled in the middle of a slow send: its claim on the
    channel's first message would hold the channel for minutes, and the final drain
    would send nothing, not even the notices the stop itself made."""
    from agentcron.model import Message
    from agentcron.notify.channels import SendResult

    sent: list[str] = []
    slow = asyncio.Event()

    class Channel:
        async def send(self, message: Message) -> SendResult:
            if message.title == "first" and not slow.is_set():
                slow.set()
                await asyncio.sleep(30)  # a channel that answers slowly
            sent.append(message.title)
            return SendResult(ok=True)

    daemon, store, clock = _daemon_with_sender(tmp_path, Channel())

    async def scenario() -> None:
        store.enqueue("k", "json://x/y", msg("first"), clock.now())
        cut = asyncio.create_task(daemon.sender.drain_once())
        await asyncio.wait_for(slow.wait(), 30)
        cut.cancel()  # the supervisor's stop_grace is over
        await asyncio.gather(cut, return_exceptions=True)
        stop_began = clock.now()
        store.enqueue("k", "json://x/y", msg("run interrupted by the stop"), clock.now())
        await daemon._final_drain(stop_began)

    try:
        with caplog.at_level("WARNING", logger="agentcron"):
            asyncio.run(scenario())
        resent = store._q("SELECT resent FROM channels")  # type: ignore[attr-defined]
    finally:
        store.close()
    assert sent == ["first", "run interrupted by the stop"]
    # this process's own cut send, tried again by it: not "taken over, may arrive
    # twice" (a late OK was counted so: outside-in probe)
    assert "was sent again" not in caplog.text
    assert resent == [(0,)]


def test_a_final_drain_cut_short_by_its_timeout_leaves_no_claim_for_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The channel hangs through the final drain too: its send, cut short by the
    drain's timeout, had claimed the channel's first message again, and the next start
    sent nothing for three minutes (the claim) while `health` called the channel ok
    (outside-in probe). The log said "(… before the stop ())": now why."""
    from agentcron.model import Message
    from agentcron.notify.channels import SendResult

    class Hanging:
        async def send(self, message: Message) -> SendResult:
            await asyncio.sleep(60)
            return SendResult(ok=True)

    message = Message(
        title="t", body="b", task="", event="x", incident_kind="x", severity="failure"
    )
    daemon, store, clock = _daemon_with_sender(tmp_path, Hanging(), final_drain=0.5)

    async def scenario() -> None:
        stop_began = clock.now()
        store.enqueue("k", "json://x/y", message, clock.now())  # made by the stop
        await daemon._final_drain(stop_began)

    try:
        asyncio.run(scenario())
        # the next start's sender takes the message at once (no claim of ours left)
        taken = store.claim_outbox("next-start", clock.now(), clock.now(), 10)
    finally:
        store.close()
    assert [item.message.title for item in taken] == ["t"]
    assert "before the stop (the channel did not answer in time)" in caplog.text


def test_a_send_the_stop_cut_short_is_not_sent_again_while_it_may_still_go_out(
    tmp_path: Path,
) -> None:
    """The stop cancels a send to a webhook that has the message but has not answered:
    Apprise's thread goes on and may still deliver it. The final drain posted it again
    at once, and the next start a third time (outside-in probe). The drain now leaves
    it to the next start (told "may arrive twice" there) and sends the rest."""
    from datetime import timedelta

    from agentcron.notify.channels import AppriseChannel

    with Sink() as sink:
        sink.hold("/owner", 1)
        channel = AppriseChannel(sink.url("/owner"), timeout=5.0)
        daemon, store, clock = _daemon_with_sender(tmp_path, channel, final_drain=2.0)

        async def scenario() -> None:
            store.enqueue("k", "json://x/y", msg("first", "a"), clock.now())
            cut = asyncio.create_task(daemon.sender.drain_once())
            assert await asyncio.to_thread(sink.wait_held, 30)
            cut.cancel()  # the supervisor's stop_grace is over
            await asyncio.gather(cut, return_exceptions=True)
            stop_began = clock.now()
            store.enqueue("k2", "json://x/z", msg("made by the stop", "b"), clock.now())
            await daemon._final_drain(stop_began)

        try:
            asyncio.run(scenario())
            drained = [p.title for p in sink.posts]
            sink.release()
            wait_for(lambda: sink.posts, what="the held post answered")
            # queued for the next start at its retry (no claim of ours is left)
            later = clock.now() + timedelta(hours=1)
            left = store.claim_outbox("next-start", later, later, 10)
        finally:
            store.close()
        posts = sink.posts
    assert drained == ["made by the stop"]
    assert sorted(p.title for p in posts) == ["first", "made by the stop"], posts
    assert [item.message.title for item in left] == ["first"]


def test_a_start_takes_over_the_claims_a_stopped_node_left(tmp_path: Path) -> None:
    """Should a stop leave a claim all the same (its release failed), the next start
    does not wait it out: a node recorded stopped sends nothing."""
    from datetime import timedelta

    from agentcron.clock import FakeClock
    from agentcron.daemon import Daemon
    from agentcron.model import Message, NodeInfo
    from agentcron.store.sqlite import SQLiteStore

    clock = FakeClock()
    store = SQLiteStore(tmp_path / "agentcron.db")
    try:
        now = clock.now()
        for node in ("stopped-node", "live-node"):
            store.register_node(NodeInfo(node, "elsewhere", 1, "/h", now, now))
        message = Message(
            title="t", body="b", task="", event="x", incident_kind="x", severity="failure"
        )
        store.enqueue("k1", "json://x/1", message, now)
        store.enqueue("k2", "json://x/2", message, now)
        until = now + timedelta(minutes=3)
        assert len(store.claim_outbox("stopped-node", now, until, 1)) == 1
        assert len(store.claim_outbox("live-node", now, until, 1)) == 1
        store.stop_node("stopped-node", now)
        later = now + timedelta(seconds=10)
        Daemon._release_stopped_claims(store, later)
        taken = store.claim_outbox("next-start", later, later + timedelta(minutes=3), 10)
        assert [item.channel_key for item in taken] == ["k1"]  # a live node's claim stands
    finally:
        store.close()


def test_the_stop_signal_says_what_it_waits_for_and_a_second_one_is_not_silent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On SIGTERM nothing was logged until the end of the grace (10 s later), and a
    second SIGTERM was ignored without a word (outside-in probe)."""
    from agentcron.daemon import Daemon, DaemonOptions

    daemon = Daemon(DaemonOptions(config_path=None, home=tmp_path / "home", shutdown_grace=7))
    with caplog.at_level("INFO", logger="agentcron"):
        daemon._stop()
        daemon._stop()
    said = [r.getMessage() for r in caplog.records]
    assert "stopping: no run in progress" in said, said
    assert any(m.startswith("already stopping") for m in said), said
    assert daemon.stop_event.is_set()


def test_a_send_still_hanging_after_the_stop_does_not_hold_the_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Apprise's worker threads under a hung send are not daemon threads: the
    interpreter's exit waited for them, 20 s past "agentcron stopped" (outside-in
    probe). `agentcron run` now ends its process at once, saying so."""
    import threading

    import agentcron.interfaces.cli as cli_module
    from agentcron.notify.channels import CHANNEL_THREAD

    exits: list[int] = []
    monkeypatch.setattr(cli_module.os, "_exit", exits.append)
    cli_module._exit_past_hung_threads(0)
    assert exits == []  # nothing left behind: the normal exit
    release = threading.Event()
    hung = threading.Thread(target=release.wait, name=CHANNEL_THREAD, daemon=True)
    hung.start()
    try:
        with caplog.at_level("WARNING"):
            cli_module._exit_past_hung_threads(3)
    finally:
        release.set()
        hung.join(5)
    assert exits == [3]
    assert "1 notification send(s) still waiting for an answer are left behind" in caplog.text


def test_a_thread_call_still_hanging_after_the_stop_does_not_hold_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A thread of the loop's executor left in a call (named by ``run_to_end``): the
    interpreter's exit joins it, so `agentcron run` ends its process past it."""
    import threading

    import agentcron.interfaces.cli as cli_module
    from agentcron.run_loop import IO_THREADS

    exits: list[int] = []
    monkeypatch.setattr(cli_module.os, "_exit", exits.append)
    release = threading.Event()
    hung = threading.Thread(target=release.wait, name=f"{IO_THREADS}_0", daemon=True)
    hung.start()
    try:
        cli_module._exit_past_hung_threads(0)
    finally:
        release.set()
        hung.join(5)
    assert exits == [0]


def test_the_final_drain_leaves_a_backlog_it_did_not_make_to_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stop began the send of a message queued before it (a slow channel's backlog),
    its drain's timeout cut the send short, and the next start sent it again: the
    receiver got it twice (outside-in probe). The last drain sends what the stop made
    and leaves an older message it had not begun to send, unclaimed, to the next start."""
    import time

    from agentcron.model import Message
    from agentcron.notify.channels import SendResult

    sent: list[str] = []

    class Channel:
        async def send(self, message: Message) -> SendResult:
            sent.append(message.title)
            return SendResult(ok=True)

    daemon, store, clock = _daemon_with_sender(tmp_path, Channel())

    async def scenario() -> None:
        store.enqueue("slow", "json://x/slow", msg("backlog"), clock.now())
        time.sleep(0.01)  # the stop comes after it was written
        stop_began = clock.now()
        store.enqueue("fast", "json://x/fast", msg("made by the stop"), clock.now())
        await daemon._final_drain(stop_began)

    try:
        asyncio.run(scenario())
        left = store.claim_outbox("next-start", clock.now(), clock.now(), 10)
    finally:
        store.close()
    assert sent == ["made by the stop"]
    assert [item.message.title for item in left] == ["backlog"]  # and not held by a claim
    # handed back untouched: not counted as taken over, "may arrive twice" (probe)
    assert [(item.taken_over, item.resent) for item in left] == [(False, 0)]
    # and the log says what waits: a node never started again kept it without a word
    assert "1 notification(s) still wait for slow: they go out when agentcron runs" in (
        caplog.text
    ), caplog.text


def test_once_the_stop_began_no_drain_begins_a_backlog_send(tmp_path: Path) -> None:
    """The sender kept draining a slow channel's backlog for seconds after "stopping",
    began a send the stop then cut short, and the next start sent it again (outside-in
    probe). From the stop on, every drain leaves what was written before it."""
    import time

    from agentcron.notify.channels import SendResult

    sent: list[str] = []

    class Channel:
        async def send(self, message: Any) -> SendResult:
            sent.append(message.title)
            return SendResult(ok=True)

    daemon, store, clock = _daemon_with_sender(tmp_path, Channel())

    async def scenario() -> None:
        store.enqueue("k", "json://x/y", msg("backlog 1"), clock.now())
        store.enqueue("k", "json://x/y", msg("backlog 2"), clock.now())
        time.sleep(0.01)
        daemon._stop()  # the signal: the sender's drains from now on
        await daemon.sender.drain_once()

    try:
        asyncio.run(scenario())
        left = store.claim_outbox("next-start", clock.now(), clock.now(), 10)
    finally:
        store.close()
    assert sent == []
    assert [(i.message.title, i.taken_over) for i in left] == [("backlog 1", False)]
