"""Channels end to end with real Apprise: a local webhook, a local SMTP server and
the owner's own script."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from hypothesis import given
from hypothesis import strategies as st

from agentcron.model import Message
from agentcron.notify import (
    AppriseChannel,
    CommandChannel,
    InvalidChannel,
    channel_for,
    check_channel_url,
)
from agentcron.notify.channels import (
    EMPTY_MESSAGE,
    KeyedChannel,
    _add_idempotency_header,
    _instantiate,
    unanswered,
)

pytestmark = pytest.mark.slow

MESSAGE = Message(
    title="⚠ story failed",
    body="⚠ story failed: the model provider is rate-limiting requests (HTTP 429). "
    "Retrying at 02:07 (attempt 2 of 4).\n\nLast lines of output:\n<html> & friends",
    task="story",
    event="opened",
    incident_kind="failure",
    severity="warning",
)


class Webhook(ThreadingHTTPServer):
    """Records the JSON bodies POSTed to it; answers ``status``."""

    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Hook)
        self.received: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.status = 200
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


class _Hook(BaseHTTPRequestHandler):
    server: Webhook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        time.sleep(getattr(self.server, "delay", 0.0))
        self.server.received.append(json.loads(body))
        self.server.headers_seen.append(dict(self.headers.items()))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    yield server
    server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_json_webhook_receives_the_text_as_a_person_reads_it(webhook: Webhook) -> None:
    channel = channel_for(f"json://127.0.0.1:{webhook.port}/hook")
    assert isinstance(channel, AppriseChannel)
    assert channel.key == f"json://127.0.0.1:{webhook.port}/hook"
    result = asyncio.run(channel.send(MESSAGE))
    assert result.ok and result.error is None
    [payload] = webhook.received
    assert payload["title"] == "⚠ story failed"
    assert payload["message"] == (
        "⚠ story failed: the model provider is rate-limiting requests (HTTP 429). "
        "Retrying at 02:07 (attempt 2 of 4).\n\nLast lines of output:\n<html> & friends"
    )
    assert payload["type"] == "warning"


def test_webhooks_carry_the_idempotency_key_as_a_header(webhook: Webhook) -> None:
    url = f"json://127.0.0.1:{webhook.port}/hook"
    channel = channel_for(url)
    assert isinstance(channel, KeyedChannel)
    for _ in range(2):  # a resend of the same row carries the same key
        assert asyncio.run(channel.send_keyed(MESSAGE, "agentcron-7-0123456789abcdef")).ok
    assert asyncio.run(channel.send(MESSAGE)).ok  # no key: no header
    keys = [h.get("Idempotency-Key") for h in webhook.headers_seen]
    assert keys == ["agentcron-7-0123456789abcdef"] * 2 + [None]
    # A header the owner set in the URL is theirs.
    mine = channel_for(f"{url}?+Idempotency-Key=fixed")
    assert isinstance(mine, KeyedChannel)
    assert asyncio.run(mine.send_keyed(MESSAGE, "agentcron-8-x")).ok
    assert webhook.headers_seen[-1]["Idempotency-Key"] == "fixed"
    # The other webhook plugins that post to the owner's endpoint get it too.
    for scheme in ("xml", "xmls", "form", "forms", "jsons"):
        plugin = _instantiate(f"{scheme}://example.invalid/hook")
        assert plugin is not None
        _add_idempotency_header(plugin, MESSAGE, "agentcron-1-x")
        assert plugin.headers == {"Idempotency-Key": "agentcron-1-x"}, scheme


def test_a_message_split_into_several_posts_carries_no_key(webhook: Webhook) -> None:
    """Apprise would put the one key on every part, and a receiver that honours it
    would keep the first part only."""
    long_message = Message(
        title="story output",
        body="\n".join(f"paragraph {n}: " + "word " * 60 for n in range(200)),
        task="story",
        event="delivery",
        incident_kind="",
        severity="info",
    )
    channel = channel_for(f"json://127.0.0.1:{webhook.port}/hook")
    assert isinstance(channel, KeyedChannel)
    assert asyncio.run(channel.send_keyed(long_message, "agentcron-9-x")).ok
    assert len(webhook.headers_seen) >= 2
    assert all("Idempotency-Key" not in h for h in webhook.headers_seen)


def test_an_empty_message_is_refused_by_every_channel(webhook: Webhook, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    script = write_script(tmp_path / "send.py", f"open({str(ran)!r}, 'w').write('ran')\n")
    empty = Message(
        title="⚠ story failed",
        body=" \n",
        task="story",
        event="opened",
        incident_kind="failure",
        severity="warning",
    )
    for url in (f"command:{script}", f"json://127.0.0.1:{webhook.port}/hook"):
        result = asyncio.run(channel_for(url).send(empty))
        assert (result.ok, result.permanent, result.error) == (False, True, EMPTY_MESSAGE)
    assert not ran.exists() and webhook.received == []


def test_a_server_error_is_a_passing_failure_with_a_reason(webhook: Webhook) -> None:
    webhook.status = 503
    result = asyncio.run(channel_for(f"json://127.0.0.1:{webhook.port}/hook").send(MESSAGE))
    assert (result.ok, result.permanent) == (False, False)
    assert result.error is not None and "503" in result.error


def test_connection_refused_is_a_passing_failure() -> None:
    result = asyncio.run(channel_for(f"json://127.0.0.1:{free_port()}/hook").send(MESSAGE))
    assert (result.ok, result.permanent) == (False, False)
    assert result.error == "A Connection error occurred sending JSON notification to 127.0.0.1."


def test_a_hung_endpoint_neither_blocks_the_loop_nor_the_caller_for_long() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)  # accepts connections, never answers
    port = listener.getsockname()[1]
    try:

        async def scenario() -> tuple[Any, int, float]:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.05)
                    ticks += 1

            tick_task = asyncio.create_task(ticker())
            started = time.monotonic()
            result = await AppriseChannel(f"json://127.0.0.1:{port}/hook?rto=30", timeout=1.0).send(
                MESSAGE
            )
            elapsed = time.monotonic() - started
            tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick_task
            return result, ticks, elapsed

        result, ticks, elapsed = asyncio.run(scenario())
    finally:
        listener.close()
    assert (result.ok, result.permanent) == (False, False)
    assert result.error == unanswered(1)
    assert elapsed < 7.0
    assert ticks >= 10  # the event loop kept running while the channel hung


def test_a_slow_webhook_is_waited_for_and_gets_the_message_once(webhook: Webhook) -> None:
    """Outside-in probe: a webhook answering after 6 s had taken the message, but Apprise
    gave up reading after 4 s, so it was marked failed and sent again on each retry."""
    webhook.delay = 6.0  # type: ignore[attr-defined]
    result = asyncio.run(AppriseChannel(f"json://127.0.0.1:{webhook.port}/hook").send(MESSAGE))
    assert result.ok, result.error
    assert len(webhook.received) == 1
    webhook.delay = 3.0  # type: ignore[attr-defined]
    quick = asyncio.run(AppriseChannel(f"json://127.0.0.1:{webhook.port}/hook?rto=1").send(MESSAGE))
    assert not quick.ok  # the URL's own read timeout is kept


def test_long_bodies_are_split_not_rejected(webhook: Webhook) -> None:
    lines = [f"paragraph {n}: " + "word " * 60 for n in range(200)]
    long_message = Message(
        title="story output",
        body="\n".join(lines),
        task="story",
        event="delivery",
        incident_kind="",
        severity="info",
    )
    result = asyncio.run(channel_for(f"json://127.0.0.1:{webhook.port}/hook").send(long_message))
    assert result.ok
    assert len(webhook.received) >= 2
    joined = "\n".join(part["message"] for part in webhook.received)
    assert all(f"paragraph {n}:" in joined for n in range(200))


def test_unusable_urls_fail_permanently_and_say_why() -> None:
    channel = channel_for("tgramm://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/42")
    assert isinstance(channel, InvalidChannel)
    assert "AAHdq" not in channel.key
    result = asyncio.run(channel.send(MESSAGE))
    assert (result.ok, result.permanent) == (False, True)
    assert result.error == "no notification service is called tgramm:// (is the URL misspelt?)"
    assert check_channel_url("json://") == (
        "Apprise cannot use this json:// URL: a part is missing or malformed"
    )
    assert check_channel_url("localhost:8080") == (
        "not a notification URL (expected service://…, e.g. tgram://TOKEN/CHAT)"
    )
    assert check_channel_url("command:") == "the command channel names no program"
    assert check_channel_url("json://localhost:8080/hook") is None


def test_channel_keys_carry_no_secrets() -> None:
    telegram = channel_for("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/12345678")
    assert re.fullmatch(r"tgram://1\.\.\.w/12345678 #[0-9a-f]{6}", telegram.key)
    webhook = channel_for("json://bob:hunter2hunter2@example.com/hook?+X-Api-Key=abcdef123456789")
    assert "hunter2" not in webhook.key and "abcdef" not in webhook.key
    assert webhook.key.startswith("json://bob:") and "@example.com/hook #" in webhook.key
    script = channel_for("command:/usr/local/bin/send_message.sh --token abcdefghijklmnop1234")
    assert script.key.startswith("command:/usr/local/bin/send_message.sh #")
    assert "abcdefgh" not in script.key


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


def test_email_over_plain_smtp_without_auth() -> None:
    """Apprise only logs in when the URL has both user and password, and
    ``mailto://`` (not ``mailtos://``) means no TLS; so an auth-less local
    server is reached with ``mailto://HOST:PORT?from=…&to=…``."""
    mailbox = _Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        url = f"mailto://127.0.0.1:{port}?from=agentcron@example.com&to=owner@example.com"
        result = asyncio.run(channel_for(url).send(MESSAGE))
    finally:
        controller.stop()
    assert result.ok, result.error
    assert mailbox.envelopes == [("agentcron@example.com", ["owner@example.com"])]
    [mail] = mailbox.messages
    assert mail["Subject"] == "⚠ story failed"
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n").strip() == MESSAGE.body


def write_script(path: Path, text: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{text}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_command_channel_gets_the_message_as_json_on_stdin(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox.json"
    script = write_script(
        tmp_path / "send message.sh",
        "import sys\nopen(sys.argv[2], 'w', encoding='utf-8').write(sys.stdin.read())\n",
    )
    channel = channel_for(f'command:"{script}" --out {inbox}')
    assert isinstance(channel, CommandChannel)
    result = asyncio.run(channel.send(MESSAGE))
    assert result.ok, result.error
    assert json.loads(inbox.read_text(encoding="utf-8")) == {
        "title": "⚠ story failed",
        "body": MESSAGE.body,
        "task": "story",
        "event": "opened",
        "severity": "warning",
        "incident_kind": "failure",
    }


def test_command_stdin_is_the_whole_message_in_a_file_and_the_key_is_in_env(
    tmp_path: Path,
) -> None:
    seen = tmp_path / "seen.json"
    script = write_script(
        tmp_path / "send.py",
        "import json, os, stat, sys\n"
        "mode = os.fstat(0).st_mode\n"
        "json.dump({'regular': stat.S_ISREG(mode), 'size': os.fstat(0).st_size,\n"
        "           'text': sys.stdin.read(),\n"
        "           'key': os.environ.get('AGENTCRON_IDEMPOTENCY_KEY')},\n"
        f"          open({str(seen)!r}, 'w'))\n",
    )
    channel = CommandChannel([str(script)])
    assert asyncio.run(channel.send_keyed(MESSAGE, "agentcron-3-abc")).ok
    got = json.loads(seen.read_text())
    assert got["regular"] and got["size"] == len(got["text"].encode())
    assert json.loads(got["text"])["body"] == MESSAGE.body
    assert got["key"] == "agentcron-3-abc"
    assert asyncio.run(channel.send(MESSAGE)).ok
    assert json.loads(seen.read_text())["key"] is None


def test_a_script_outliving_a_killed_sender_reads_the_whole_message(tmp_path: Path) -> None:
    """The chaos soak's empty message: the daemon died while its script ran. The
    script (in a session of its own) lives on, and must still read all of it."""
    started, inbox = tmp_path / "started", tmp_path / "inbox.json"
    script = write_script(
        tmp_path / "send.py",
        "import os, sys, time\n"
        f"open({str(started)!r}, 'w').close()\n"
        "time.sleep(0.5)\n"  # the sender is killed meanwhile
        f"open({str(inbox)!r} + '.tmp', 'w').write(sys.stdin.read())\n"
        f"os.rename({str(inbox)!r} + '.tmp', {str(inbox)!r})\n",
    )
    sender = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import asyncio, sys\n"
            "from agentcron.notify import CommandChannel, Message\n"
            f"msg = Message(**{MESSAGE.to_dict()!r})\n"
            f"asyncio.run(CommandChannel([{str(script)!r}]).send_keyed(msg, 'k'))\n",
        ]
    )
    try:
        deadline = time.monotonic() + 20
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert started.exists()
    finally:
        sender.kill()
        sender.wait()
    deadline = time.monotonic() + 10
    while not inbox.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(inbox.read_text(encoding="utf-8"))["body"] == MESSAGE.body


def test_command_failure_reports_the_redacted_stderr_tail(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "send.py",
        "import sys\n"
        "sys.stdin.read()\n"
        "print('connecting with key sk-abcdefghijklmnopqrstuv', file=sys.stderr)\n"
        "print('chat not found', file=sys.stderr)\n"
        "sys.exit(3)\n",
    )
    result = asyncio.run(CommandChannel([str(script)]).send(MESSAGE))
    assert (result.ok, result.permanent) == (False, False)
    assert result.error == (
        "send.py exited with status 3: connecting with key [REDACTED] / chat not found"
    )


def test_missing_script_is_a_passing_failure(tmp_path: Path) -> None:
    result = asyncio.run(channel_for(f"command:{tmp_path}/nope.sh").send(MESSAGE))
    assert (result.ok, result.permanent) == (False, False)
    assert result.error == "cannot start nope.sh: No such file or directory"


def test_a_hanging_script_is_killed_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = write_script(
        tmp_path / "hang.py",
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n",
    )
    started = time.monotonic()
    result = asyncio.run(CommandChannel([str(script)], timeout=1.0).send(MESSAGE))
    assert time.monotonic() - started < 10
    assert result.error == "hang.py did not finish within 1s"
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of an exited parent is reaped by init; until then it is a zombie.
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
        return status != "Z"
    return False


@given(st.text(alphabet="ab\n", max_size=3000), st.integers(min_value=1, max_value=700))
def test_split_text_keeps_every_character_in_pieces_that_fit(text: str, room: int) -> None:
    from agentcron.notify.channels import split_text

    pieces = split_text(text, room)
    assert "".join(pieces) == text
    assert all(0 < len(p) <= room for p in pieces) or pieces == [""]
    # a piece ends at a line end when one lies in its second half
    for piece in pieces[:-1]:
        assert piece.endswith("\n") or "\n" not in piece[room // 2 :]


def test_a_command_channel_with_a_relative_program_is_refused_when_the_config_is_read(
    tmp_path: Path,
) -> None:
    """Outside-in probe: `notify=["command:./sink.sh"]` was looked for from the daemon's
    working folder at each send; an inline task that changed folder made every later
    message fail. A relative path is refused; a bare name is looked up on PATH."""
    from agentcron import ConfigError, Scheduler
    from agentcron.config import parse_config_text

    with pytest.raises(
        ConfigError, match=r"notify\[0\]: the command channel's program './sink.sh'"
    ):
        parse_config_text('notify: ["command:./sink.sh --chat 42"]\ntasks: {}\n')
    with pytest.raises(ConfigError, match="is a relative path"):
        Scheduler(home=tmp_path, notify=["command:bin/sink.sh"])
    assert parse_config_text('notify: ["command:sink.sh"]\ntasks: {}\n').notify
    assert Scheduler(home=tmp_path, notify=[f"command:{tmp_path}/sink.sh"])


def test_a_channels_limits_are_read_once_not_at_every_post(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory soak: each send parsed the channel's URL two or three times (part_room,
    post_room, the send), and Apprise makes a class per parse (cyclic garbage). The
    limits of a post are read once, when the channel is made."""
    from agentcron.model import Message
    from agentcron.notify import channels

    made: list[str] = []
    real = channels._instantiate

    def counted(url: str) -> Any:
        made.append(url)
        return real(url)

    monkeypatch.setattr(channels, "_instantiate", counted)
    channel = channels.AppriseChannel("discord://1234/abcd")
    msg = Message("✖ t failed", "body", "t", "opened", "failure", "failure")
    plugin = real("discord://1234/abcd")
    assert plugin is not None
    for _ in range(3):
        assert channel.post_room(msg) == int(plugin.body_maxlen) - channels._SPLIT_MARGIN
        room = channel.part_room(msg)
        assert room == int(plugin.body_maxlen) - len(msg.title) - channels._PART_MARK - (
            channels._SPLIT_MARGIN
        )
    assert made == ["discord://1234/abcd"]  # the channel's making, nothing since
