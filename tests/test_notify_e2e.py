"""Incidents and notifications end to end (PRODUCT.md §9, §12): a real `agentcron run`
with real Apprise channels (a local webhook, a local SMTP server, the owner's script).

Counting tests ("exactly one message") need to know that nothing more is on its
way. They use the per-channel order the outbox guarantees: a ``beacon`` task is
triggered after the last event of interest, and once the beacon's message has
arrived every message produced before it has arrived too.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import json
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from daemon_proc import DaemonProc, wait_for
from e2e_webhook import WebhookReceiver, free_port

pytestmark = pytest.mark.slow

API_KEY = "sk-proj-abcdefghijklmnopqrstuvwx1234"
TOKEN_VALUE = "supersecretvalue123"

# One outcome per invocation; the last one repeats. Each run appends to the count file.
SCRIPTED = """\
import pathlib, sys
count, plan = pathlib.Path(sys.argv[1]), sys.argv[2].split(",")
n = len(count.read_text().split()) if count.exists() else 0
with count.open("a") as f:
    f.write("x\\n")
step = plan[min(n, len(plan) - 1)]
if step == "ok":
    print("all good")
    sys.exit(0)
print({"429": "HTTP 429 Too Many Requests", "401": "HTTP 401 Unauthorized"}[step])
sys.exit(1)
"""


def write_script(path: Path, text: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{text}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def scripted_task(folder: Path, name: str, plan: str, **keys: str) -> str:
    """YAML for a task running SCRIPTED with ``plan`` (e.g. "429,429,ok")."""
    script = folder / "scripted.py"
    if not script.exists():
        write_script(script, SCRIPTED)
    lines = [
        f"  {name}:",
        f"    every: {keys.pop('every', '1d')}",
        f'    command: ["{sys.executable}", "{script}", "{folder / (name + ".count")}", "{plan}"]',
        f"    retries: {keys.pop('retries', '3')}",
        "    retry_backoff: {base: 1s, jitter: 0}",
    ]
    lines += [f"    {key}: {value}" for key, value in keys.items()]
    return "\n".join(lines) + "\n"


def config(folder: Path, channels: list[str], tasks: str) -> str:
    """A config with the given top-level channels, ``tasks`` and the beacon."""
    return (
        "timezone: UTC\n"
        f"notify: {json.dumps(channels)}\n"
        "tasks:\n" + tasks + scripted_task(folder, "beacon", "401,ok")
    )


@contextmanager
def running(folder: Path, config_text: str) -> Iterator[DaemonProc]:
    d = DaemonProc(folder, config_text)
    d.start()
    try:
        wait_for(lambda: _started(d), timeout=30, what="daemon started")
        yield d
    except BaseException:
        print(d.daemon_log()[-6000:])
        raise
    finally:
        d.stop()


def _started(d: DaemonProc) -> bool:
    if "agentcron running as" in d.daemon_log():
        return True
    assert d.proc is not None
    if d.proc.poll() is not None:
        raise AssertionError(f"the daemon exited at start:\n{d.daemon_log()}")
    return False


def titled(messages: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    return [m for m in messages if re.match(rf"\W+ {task}\b", m.get("title", ""))]


def flush(d: DaemonProc, hook: WebhookReceiver) -> list[dict[str, Any]]:
    """Everything the daemon produced so far, once it has all arrived (see module doc)."""
    before = len(titled(hook.messages(), "beacon"))
    d.cli("trigger", "beacon")
    wait_for(
        lambda: len(titled(hook.messages(), "beacon")) > before,
        timeout=60,
        what="the beacon's message",
    )
    return hook.messages()


def ended(d: DaemonProc, task: str, status: str) -> list[tuple[int, int]]:
    """(slot id, attempt) of each attempt of ``task`` the daemon logged as ending in
    ``status`` (its ``task=NAME slot=ID attempt=N status=S`` line, written after the
    notifier has queued its message). Reading the log file costs nothing, while a
    CLI call costs seconds on a loaded machine, and the outage test races a clock."""
    pattern = rf"task={task} slot=(\d+) attempt=(\d+) status={status}\b"
    return [(int(slot), int(n)) for slot, n in re.findall(pattern, d.daemon_log())]


def wait_ended(
    d: DaemonProc, task: str, status: str, count: int = 1, timeout: float = 60
) -> list[tuple[int, int]]:
    def enough() -> list[tuple[int, int]] | None:
        found = ended(d, task, status)
        return found if len(found) >= count else None

    result: list[tuple[int, int]] = wait_for(
        enough, timeout=timeout, what=f"{count} attempt(s) of {task} {status}"
    )
    return result


def record(d: DaemonProc, slot_id: int) -> dict[str, Any]:
    """`agentcron logs ID --json`: the run's fields plus ``attempts_detail``."""
    data: dict[str, Any] = d.json("logs", str(slot_id))
    return data


# ---- opened with the plan, closed with the count; permanent failures; storms ----------


def test_transient_failures_then_success_give_one_opened_and_one_closed_message(
    tmp_path: Path,
) -> None:
    with WebhookReceiver() as hook:
        cfg = config(tmp_path, [hook.url], scripted_task(tmp_path, "flaky", "429,429,ok"))
        with running(tmp_path, cfg) as d:
            d.cli("trigger", "flaky")
            [(slot, attempt)] = wait_ended(d, "flaky", "succeeded")
            messages = titled(flush(d, hook), "flaky")
            run = record(d, slot)
    assert attempt == 3 and (run["status"], run["attempts"]) == ("succeeded", 3)
    first_attempt = run["attempts_detail"][0]
    assert [m["title"] for m in messages] == ["⚠ flaky failed", "✔ flaky recovered"]
    opened, closed = messages
    first_line, *details = opened["message"].splitlines()
    match = re.fullmatch(
        r"⚠ flaky failed: (.+)\. Retrying at (\d\d:\d\d(?::\d\d)?) \(attempt 2 of 4\)\.",
        first_line,
    )
    assert match, first_line
    assert details == ["", "Last lines of output:", "HTTP 429 Too Many Requests"]
    assert "rate-limiting" in match.group(1)
    # The retry is 1 s after the first attempt ended; the message speaks the task's zone (UTC).
    ended = datetime.fromisoformat(first_attempt["finished_at"])
    allowed = {ended + timedelta(seconds=s) for s in (0, 1, 2)}
    shown = {f"{t:%H:%M:%S}" if t.second else f"{t:%H:%M}" for t in allowed}
    assert match.group(2) in shown, (match.group(2), shown)
    assert opened["type"] == "warning"
    assert closed["message"] == "✔ flaky recovered after 2 retries."
    assert closed["type"] == "success"


def test_an_auth_failure_gives_exactly_one_message_naming_the_problem(tmp_path: Path) -> None:
    with WebhookReceiver() as hook:
        cfg = config(tmp_path, [hook.url], scripted_task(tmp_path, "authfail", "401"))
        with running(tmp_path, cfg) as d:
            d.cli("trigger", "authfail")
            [(slot, _)] = wait_ended(d, "authfail", "failed")
            messages = titled(flush(d, hook), "authfail")
            run = record(d, slot)
    assert run["attempts"] == 1 and run["error_class"] == "auth"
    [message] = messages
    assert message["title"] == "✖ authfail failed"
    assert message["type"] == "failure"
    first_line = message["message"].splitlines()[0]
    assert first_line.startswith("✖ authfail failed: ")
    assert "Retrying will not help" in first_line
    assert re.search(r"credential|api key|token|401", first_line, re.IGNORECASE), first_line


def test_ten_failures_in_one_incident_are_counted_not_sent(tmp_path: Path) -> None:
    with WebhookReceiver() as hook:
        storm = scripted_task(tmp_path, "storm", "401", every="1s", retries="0")
        with running(tmp_path, config(tmp_path, [hook.url], storm)) as d:
            wait_ended(d, "storm", "failed", count=10)
            messages = titled(flush(d, hook), "storm")
    # The first failure is already permanent, so the incident opens escalated: one message.
    assert [m["title"] for m in messages] == ["✖ storm failed"], messages


# ---- other channels ---------------------------------------------------------------------


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


def test_a_local_smtp_server_receives_the_opened_message(tmp_path: Path) -> None:
    mailbox = _Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        url = f"mailto://127.0.0.1:{port}?from=agentcron@example.com&to=owner@example.com"
        cfg = config(tmp_path, [url], scripted_task(tmp_path, "mailtask", "401"))
        with running(tmp_path, cfg) as d:
            d.cli("trigger", "mailtask")
            wait_for(lambda: mailbox.messages, timeout=60, what="an e-mail")
    finally:
        controller.stop()
    [mail] = mailbox.messages
    assert mail["Subject"] == "✖ mailtask failed"
    assert mail["To"] == "owner@example.com"
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    assert body.get_content().startswith("✖ mailtask failed: ")
    assert "HTTP 401 Unauthorized" in body.get_content()  # the output's last lines


def test_the_command_channel_gets_the_message_as_json_on_stdin(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    receiver = write_script(
        tmp_path / "send_message.py",
        "import pathlib, sys, time\n"
        "data = sys.stdin.read()\n"
        "pathlib.Path(sys.argv[1], f'{time.time_ns()}.json').write_text(data, encoding='utf-8')\n",
    )
    cfg = config(
        tmp_path, [f"command:{receiver} {inbox}"], scripted_task(tmp_path, "cmdtask", "401")
    )
    with running(tmp_path, cfg) as d:
        d.cli("trigger", "cmdtask")
        [path] = wait_for(lambda: list(inbox.iterdir()), timeout=60, what="the script ran")
    payload = json.loads(path.read_text(encoding="utf-8"))
    assert set(payload) == {"title", "body", "task", "event", "severity", "incident_kind"}
    assert payload["title"] == "✖ cmdtask failed"
    assert payload["body"].startswith("✖ cmdtask failed: ")
    assert (payload["task"], payload["event"]) == ("cmdtask", "opened")
    assert (payload["severity"], payload["incident_kind"]) == ("failure", "failure")


# ---- outage: delayed, never lost, in order, visible in doctor ----------------------------


def _doctor(d: DaemonProc) -> tuple[int, dict[str, Any]]:
    res = d.cli("doctor", "--json", check=False)
    return res.returncode, json.loads(res.stdout)


def _channel_check(report: dict[str, Any], port: int) -> dict[str, Any] | None:
    for check in report["checks"]:
        if "channel" in check["name"] and f"127.0.0.1:{port}" in check["name"]:
            return dict(check)
    return None


def _failing_channel(d: DaemonProc, port: int) -> tuple[int, dict[str, Any], dict[str, Any]] | None:
    code, report = _doctor(d)
    check = _channel_check(report, port)
    return (code, report, check) if check is not None and check["status"] == "fail" else None


def _notified_order(d: DaemonProc, tasks: tuple[str, ...]) -> list[tuple[str, str]]:
    """(sign, task) of each notice in the order the notifier queued it: it logs the
    first line of each message while holding the lock it enqueues under."""
    names = "|".join(tasks)
    return re.findall(rf"agentcron\.notify: (\S+) ({names})\b", d.daemon_log())


@pytest.mark.timeout(180)
def test_a_channel_outage_delays_messages_in_order_and_shows_in_doctor(tmp_path: Path) -> None:
    """The sender retries a channel's head message 5 s and 20 s after its first
    failure, then not before 80 s. The three incidents open and close within a few
    seconds, so the webhook is back before the 20 s try; on a very slow machine the
    80 s try still falls within the deadline."""
    hook = WebhookReceiver()
    hook.start()
    hook.stop()  # down from the start; its port stays reserved in the URL
    names = ("ta", "tb", "tc")
    tasks = "".join(scripted_task(tmp_path, name, "429,ok") for name in names)
    try:
        with running(tmp_path, config(tmp_path, [hook.url], tasks)) as d:
            for name in names:
                d.cli("trigger", name)
            for name in names:
                wait_ended(d, name, "succeeded", timeout=30)
            code, report, check = wait_for(
                lambda: _failing_channel(d, hook.port),
                timeout=30,
                what="doctor shows the failing channel",
            )
            assert code == 1 and report["ok"] is False
            assert "failing since" in check["message"]
            assert "Connection error" in check["message"]
            assert "6 message(s) waiting" in check["message"]

            hook.start()  # back on the same port
            wait_for(lambda: len(hook.messages()) >= 6, timeout=100, what="six messages")
            messages = flush(d, hook)
            produced = _notified_order(d, names)
            _, after = _doctor(d)
    finally:
        hook.stop()
    assert sorted(produced) == sorted((sign, name) for name in names for sign in ("⚠", "✔")), (
        produced
    )
    arrived = [tuple(m["title"].split()[:2]) for m in messages]
    assert arrived == [*produced, ("✖", "beacon")]
    recovered = _channel_check(after, hook.port)
    assert recovered is not None and recovered["status"] == "ok", after["checks"]


def _named(messages: list[dict[str, Any]], names: list[str]) -> dict[str, int]:
    """How often each of ``names`` was told failed: in a post of its own or as a line of
    a digest (agentcron.notify.digest)."""
    told = dict.fromkeys(names, 0)
    for m in messages:
        text = f"{m.get('title', '')}\n{m.get('message', '')}"
        for line in text.splitlines():
            named = re.findall(r"✖ (\w+) failed", line)
            same = re.search(r"The same for (\w+(?:, \w+)*)\.$", line)  # alike: one line
            for name in named + (same.group(1).split(", ") if same else []):
                if name in told:
                    told[name] += 1
    return told


@pytest.mark.timeout(180)
def test_a_flood_waiting_for_a_channel_arrives_as_one_digest(tmp_path: Path) -> None:
    """Twelve tasks fail while the channel is down: when it is back they arrive in one
    post that names each once, not twelve posts (the flood that teaches an owner to
    mute the channel)."""
    hook = WebhookReceiver()
    hook.start()
    hook.stop()
    names = [f"t{n:02d}" for n in range(12)]
    tasks = "".join(scripted_task(tmp_path, n, "401", every="2s", retries="0") for n in names)
    try:
        with running(tmp_path, config(tmp_path, [hook.url], tasks)) as d:
            for name in names:
                wait_ended(d, name, "failed", timeout=60)
            hook.start()
            wait_for(
                lambda: all(_named(hook.messages(), names).values()),
                timeout=100,
                what="every task told",
            )
            messages = flush(d, hook)
    finally:
        hook.stop()
    assert _named(messages, names) == dict.fromkeys(names, 1)
    # all twelve were written before the channel came back: one post holds them
    (post,) = [m for m in messages if not titled([m], "beacon")]
    assert post["title"] == "12 messages at once: 12 failures"
    # alike but for the task's name: one line that names each
    (line,) = [ln for ln in post["message"].splitlines() if ln.startswith("• ✖ ")]
    assert "Retrying will not help" in line and ". The same for t" in line, line
    assert "agentcron incidents" in post["message"]


# ---- secrets --------------------------------------------------------------------------

LEAKY = (
    "  leaky:\n"
    "    every: 1d\n"
    "    retries: 0\n"
    f"    env: {{MY_SERVICE_TOKEN: {TOKEN_VALUE}}}\n"
    '    command: ["sh", "-c", "'
    f"echo calling with {API_KEY} and token $MY_SERVICE_TOKEN; "
    f"echo HTTP 401 Unauthorized: key {API_KEY} token $MY_SERVICE_TOKEN >&2; "
    'exit 1"]\n'
)


@pytest.fixture(scope="module")
def leaked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One daemon run of a task that prints an API key and its env token (on stdout
    and stderr) and fails; what each place the owner can look at ended up holding."""
    folder = tmp_path_factory.mktemp("leaky")
    with WebhookReceiver() as hook:
        with running(folder, config(folder, [hook.url], LEAKY)) as d:
            d.cli("trigger", "leaky")
            [(slot, _)] = wait_ended(d, "leaky", "failed")
            messages = titled(flush(d, hook), "leaky")
            runs_out = d.cli("runs", "--json").stdout
            logs_out = d.cli("logs", str(slot), "--json").stdout
        daemon_log = d.daemon_log()
    return {
        "messages": messages,
        "runs": runs_out,
        "logs": json.loads(logs_out),
        "daemon_log": daemon_log,
    }


def test_secrets_reach_no_message_daemon_log_or_run_record(leaked: dict[str, Any]) -> None:
    output_file = Path(leaked["logs"]["output_path"]).read_text()
    # the task printed both; they were removed when its output was written
    assert API_KEY not in output_file and TOKEN_VALUE not in output_file
    assert output_file.count("[REDACTED]") >= 2
    [message] = leaked["messages"]
    assert message["title"] == "✖ leaky failed"
    assert "[REDACTED]" in message["message"]
    record = {k: v for k, v in leaked["logs"].items() if k != "output"}
    assert record["attempts_detail"][0]["error_class"] == "auth"
    for where, text in {
        "webhook": json.dumps(leaked["messages"], ensure_ascii=False),
        "daemon log": leaked["daemon_log"],
        "runs --json": leaked["runs"],
        "logs --json (the run record)": json.dumps(record, ensure_ascii=False),
    }.items():
        for secret in (API_KEY, TOKEN_VALUE):
            assert secret not in text, f"{secret} reached the {where}"


def test_logs_json_output_shows_the_output_with_secrets_redacted(
    leaked: dict[str, Any],
) -> None:
    output = leaked["logs"]["output"]
    assert "calling with [REDACTED] and token [REDACTED]" in output
    assert API_KEY not in output and TOKEN_VALUE not in output


# ---- `agentcron notify test` ------------------------------------------------------------


def _notify_test(d: DaemonProc, url: str) -> subprocess.CompletedProcess[str]:
    return d.cli("notify", "test", "--channel", url, check=False)


def test_notify_test_reports_delivery_and_the_channels_error(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path, config(tmp_path, [], ""))  # not started: the CLI sends directly
    with WebhookReceiver() as hook:
        ok = _notify_test(d, hook.url)
        received = hook.messages()
    assert ok.returncode == 0, ok.stderr
    assert f"{hook.url}: delivered" in ok.stdout
    [message] = received
    assert message["title"] == "agentcron test message"

    closed = f"json://127.0.0.1:{free_port()}/hook"
    bad = _notify_test(d, closed)
    assert bad.returncode == 1
    said = " ".join(bad.stderr.split())
    assert closed in said and "Connection error" in said, said
