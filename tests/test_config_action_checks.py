"""What ``validate`` says of an action that could never run (outside-in probe of llm
tasks: each of these passed ``validate`` and failed only at the first run, one of them
as "agentcron itself failed"), and that a value which can run is let through."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agentcron.config import load_config
from agentcron.config.errors import ConfigError
from agentcron.config.loader import validate_task_mapping

PASTED = "sk-live-abcdef0123456789abcdef"


def _problems(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "agentcron.yaml"
    path.write_text(textwrap.dedent(body))
    try:
        load_config(path)
    except ConfigError as exc:
        return [line.replace(f"{tmp_path}/", "") for line in exc.lines()]
    return []


def _llm(**keys: str) -> str:
    llm = {"base_url": "http://127.0.0.1:8080/v1", "model": "m", "prompt": "p", **keys}
    inner = ", ".join(f'{k}: "{v}"' for k, v in llm.items())
    return f"tasks:\n  story:\n    every: 1h\n    llm: {{{inner}}}\n"


def test_a_port_out_of_range_is_said_where_it_stands(tmp_path: Path) -> None:
    said = _problems(tmp_path, _llm(base_url="http://127.0.0.1:99999/v1"))
    assert said == [
        "agentcron.yaml:4: tasks.story.llm.base_url: port 99999 is out of range (1 to 65535) "
        "in http://127.0.0.1:99999/…"
    ]
    said = _problems(
        tmp_path, "tasks:\n  ping:\n    every: 1h\n    http: {url: 'https://example.com:0/'}\n"
    )
    assert said == [
        "agentcron.yaml:4: tasks.ping.http.url: port 0 is out of range (1 to 65535) "
        "in https://example.com:0/…"
    ]


def test_a_port_from_a_placeholder_is_checked_with_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GW_PORT", "8443")
    assert _problems(tmp_path, _llm(base_url="https://gw.example.com:${GW_PORT}/v1")) == []
    monkeypatch.setenv("GW_PORT", "84430")
    said = _problems(tmp_path, _llm(base_url="https://gw.example.com:${GW_PORT}/v1"))
    assert len(said) == 1 and "port 84430 is out of range" in said[0]


def test_an_empty_model_is_said(tmp_path: Path) -> None:
    said = _problems(tmp_path, _llm(model=" "))
    assert said == [
        "agentcron.yaml:4: tasks.story.llm.model: is empty: name the model to call "
        "(e.g. gpt-4.1-mini)"
    ]


def test_a_key_pasted_for_its_variables_name_is_said_and_never_quoted(tmp_path: Path) -> None:
    said = _problems(tmp_path, _llm(api_key_env=PASTED))
    assert len(said) == 1 and "tasks.story.llm.api_key_env: is not a variable's name" in said[0]
    assert PASTED not in " ".join(said)


def _warnings(tmp_path: Path, body: str) -> list[str]:
    from agentcron.config._env import current_environ

    path = tmp_path / "agentcron.yaml"
    path.write_text(textwrap.dedent(body))
    return load_config(path).unset_keys(current_environ())


def test_an_unset_key_variable_is_a_warning_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not an error (outside-in probe of this change): a daemon restarted without the
    key refused to start, stopping every task and telling no channel, and every CLI
    command from a shell without the daemon's service environment called the config
    invalid. A warning in validate, doctor and the daemon's log; the runs fail, told."""
    monkeypatch.delenv("PROBE_UNSET_KEY", raising=False)
    assert _problems(tmp_path, _llm(api_key_env="PROBE_UNSET_KEY")) == []
    assert _warnings(tmp_path, _llm(api_key_env="PROBE_UNSET_KEY")) == [
        "tasks.story.llm.api_key_env: variable PROBE_UNSET_KEY is not set here (it holds "
        "the key the model is called with): every run of story fails until the daemon's "
        "environment or the config's env_file sets it"
    ]
    monkeypatch.setenv("PROBE_UNSET_KEY", "")
    assert len(_warnings(tmp_path, _llm(api_key_env="PROBE_UNSET_KEY"))) == 1  # empty: unset


def test_a_key_variable_set_anywhere_the_run_looks_warns_of_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROBE_KEY", raising=False)
    in_env_file = "env_file: keys.env\n" + _llm(api_key_env="PROBE_KEY")
    (tmp_path / "keys.env").write_text("PROBE_KEY=k-from-file\n")
    assert _warnings(tmp_path, in_env_file) == []
    in_task_env = _llm(api_key_env="PROBE_KEY") + "    env: {PROBE_KEY: k-in-task}\n"
    assert _warnings(tmp_path, in_task_env) == []
    monkeypatch.setenv("PROBE_KEY", "k")
    assert _warnings(tmp_path, _llm(api_key_env="PROBE_KEY")) == []


def test_validate_says_the_warning_and_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli_rig import cli_in

    monkeypatch.delenv("PROBE_UNSET_KEY", raising=False)
    (tmp_path / "agentcron.yaml").write_text(_llm(api_key_env="PROBE_UNSET_KEY"))
    out = cli_in(tmp_path, monkeypatch, joined=True)("validate")
    assert "agentcron.yaml is valid" in out
    assert "variable PROBE_UNSET_KEY is not set here" in out


@pytest.mark.parametrize(
    ("task", "said"),
    [
        (
            {"command": ["echo", "a\0b"]},
            "tasks.t.command[1]: holds a NUL character (\\0), which no command, URL or text "
            "can carry",
        ),
        ({"command": ["", "x"]}, "tasks.t.command[0]: is empty: the first item names the program"),
        ({"command": ["  "]}, "tasks.t.command[0]: is blank: the first item names the program"),
        ({"command": "  ", "shell": True}, "tasks.t.command: is blank: it names no program"),
        ({"command": ["echo"], "description": "x\0"}, "tasks.t.description: holds a NUL"),
        ({"command": ["echo"], "deliver": ["json://h/\0"]}, "tasks.t.deliver[0]: holds a NUL"),
    ],
)
def test_what_no_run_could_carry_is_refused_where_it_stands(
    task: dict[str, object], said: str
) -> None:
    """Through the API and MCP (outside-in probe): a NUL in an argument was accepted and
    then failed every run as "agentcron itself failed (ValueError: embedded null byte)";
    a command whose program is empty failed every run with exit 127."""
    with pytest.raises(ConfigError) as caught:
        validate_task_mapping("t", {"every": "1h", **task})
    assert any(line.startswith(said) for line in caught.value.lines()), caught.value.lines()


def test_an_agents_model_profile_is_checked_in_the_same_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile's blank model and pasted key passed validate or were said in pydantic's
    words; its unset key variable was said only to the agent, which cannot set it."""
    profile = (
        "agents:\n  models:\n    small: {base_url: 'http://127.0.0.1:9/v1', model: '%s', "
        "api_key_env: %s}\n  clients: {desk: {}}\n"
    )
    said = _problems(tmp_path, profile % (" ", PASTED))
    assert said == [
        "agentcron.yaml:3: agents.models.small.model: is empty: name the model to call "
        "(e.g. gpt-4.1-mini)",
        "agentcron.yaml:3: agents.models.small.api_key_env: is not a variable's name: "
        "api_key_env names the environment variable that holds the key (e.g. "
        "OPENAI_API_KEY), not the key itself",
    ]
    monkeypatch.delenv("PROBE_UNSET_KEY", raising=False)
    assert _problems(tmp_path, profile % ("m", "PROBE_UNSET_KEY")) == []
    (warning,) = _warnings(tmp_path, profile % ("m", "PROBE_UNSET_KEY"))
    assert warning.startswith("agents.models.small.api_key_env: variable PROBE_UNSET_KEY")
