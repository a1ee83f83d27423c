"""Loading valid configs: YAML 1.2 values, defaults merging, the example file, the schema."""

from __future__ import annotations

import hashlib
import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.config import (
    EXAMPLE_CONFIG,
    ApiConfig,
    LoadedConfig,
    config_json_schema,
    is_loopback_host,
    load_config,
    parse_config_text,
    validate_task_mapping,
)
from agentcron.model.task import TaskSpec


def parse(text: str) -> LoadedConfig:
    return parse_config_text(textwrap.dedent(text), "agentcron.yaml")


class TestExample:
    def test_example_parses_and_runs_offline(self) -> None:
        config = parse_config_text(EXAMPLE_CONFIG)
        hello = config.tasks["hello"]
        assert hello.every == timedelta(minutes=1)
        assert hello.command == ["echo", "hello from agentcron"]
        cron_tasks = [t for t in config.tasks.values() if t.cron is not None]
        assert cron_tasks, "the example should show a cron task"
        # nothing live needs a network service or a key
        assert all(t.action_kind == "command" for t in config.tasks.values())
        assert config.notify == []

    def test_example_commented_llm_task_is_valid_when_uncommented(self) -> None:
        lines = EXAMPLE_CONFIG.splitlines()
        start = lines.index("  # story:")
        block = []
        for line in lines[start:]:
            if not line.startswith("  #"):
                break
            block.append("  " + line[len("  # ") :])
        text = EXAMPLE_CONFIG + "\n".join(block) + "\n"
        # the commented tgram URL is a placeholder Apprise cannot parse; use a real shape
        text = text.replace("tgram://BOT_TOKEN/CHAT_ID", "json://localhost:8080/story")
        story = parse_config_text(text).tasks["story"]
        assert story.llm is not None and story.llm.model == "gpt-4o-mini"
        assert story.retry_backoff.base == timedelta(minutes=1)

    def test_load_config_reads_the_file_and_digests_its_bytes(self, tmp_path: Path) -> None:
        path = tmp_path / "agentcron.yaml"
        path.write_text(EXAMPLE_CONFIG, encoding="utf-8")
        config = load_config(path)
        assert config.source == str(path)
        assert config.digest == hashlib.sha256(path.read_bytes()).hexdigest()
        path.write_text(EXAMPLE_CONFIG.replace("every: 1m", "every: 2m"), encoding="utf-8")
        changed = load_config(path)
        assert changed.digest != config.digest
        assert changed.tasks["hello"].every == timedelta(minutes=2)


class TestTopLevel:
    def test_top_level_keys(self) -> None:
        config = parse(
            """\
            timezone: Europe/Berlin
            notify: json://localhost:8080/hook
            heartbeat_url: https://hc-ping.com/abc
            max_concurrency: 2
            api: {host: 0.0.0.0, port: 9000, token: s3cret-token-value}
            tasks: {}
            """
        )
        assert config.timezone == "Europe/Berlin"
        assert config.notify == ["json://localhost:8080/hook"]
        assert config.heartbeat_url == "https://hc-ping.com/abc"
        assert config.max_concurrency == 2
        assert config.api == ApiConfig(
            enabled=True, host="0.0.0.0", port=9000, token="s3cret-token-value"
        )
        assert config.tasks == {}

    def test_defaults_when_absent(self) -> None:
        config = parse("tasks:\n")
        assert config.timezone is None
        assert config.notify == []
        assert config.max_concurrency == 4
        assert config.api == ApiConfig()
        assert (config.api.host, config.api.port, config.api.token) == ("127.0.0.1", 8765, None)

    @pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
    def test_loopback_hosts_need_no_token(self, host: str) -> None:
        assert is_loopback_host(host)
        assert ApiConfig(host=host).token is None

    @pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.com"])
    def test_other_hosts_are_not_loopback(self, host: str) -> None:
        assert not is_loopback_host(host)

    def test_numeric_task_names_are_names(self) -> None:
        config = parse("tasks:\n  2024: {every: 1h, command: [echo]}\n")
        assert config.tasks["2024"].name == "2024"


class TestYaml12:
    def test_on_yes_and_clock_times_stay_strings(self) -> None:
        config = parse(
            """\
            tasks:
              t:
                every: 1m
                command: [echo, on, yes, off, 12:30]
                description: 12:30
                env: {FLAG: on}
            """
        )
        task = config.tasks["t"]
        assert task.command == ["echo", "on", "yes", "off", "12:30"]
        assert task.description == "12:30"
        assert task.env == {"FLAG": "on"}

    def test_timestamps_become_plain_aware_datetimes(self) -> None:
        config = parse(
            """\
            tasks:
              unquoted: {at: 2025-06-01T02:00:00+02:00, command: [echo]}
              quoted: {at: "2025-06-01T02:00:00+02:00", command: [echo]}
            """
        )
        expected = datetime(2025, 6, 1, 0, 0, tzinfo=UTC)
        for name in ("unquoted", "quoted"):
            at = config.tasks[name].at
            assert type(at) is datetime
            assert at == expected

    def test_task_names_keep_their_key(self) -> None:
        config = parse("tasks:\n  nightly.backup-2: {cron: '0 3 * * *', command: [echo]}\n")
        assert list(config.tasks) == ["nightly.backup-2"]
        assert config.tasks["nightly.backup-2"].name == "nightly.backup-2"


class TestDefaults:
    def test_defaults_apply_and_tasks_override(self) -> None:
        config = parse(
            """\
            defaults:
              retries: 5
              timeout: 20m
              retry_backoff: {base: 10s, cap: 5m}
              env: {LANG: C, MODE: prod}
            tasks:
              plain: {every: 1h, command: [echo]}
              custom:
                every: 1h
                command: [echo]
                retries: 0
                retry_backoff: {base: 1m}
                env: {MODE: test}
            """
        )
        plain, custom = config.tasks["plain"], config.tasks["custom"]
        assert (plain.retries, plain.timeout) == (5, timedelta(minutes=20))
        assert plain.retry_backoff.base == timedelta(seconds=10)
        assert plain.env == {"LANG": "C", "MODE": "prod"}
        assert custom.retries == 0
        assert custom.timeout == timedelta(minutes=20)
        # one level deep: the task's base wins, the default cap stays
        assert custom.retry_backoff.base == timedelta(minutes=1)
        assert custom.retry_backoff.cap == timedelta(minutes=5)
        assert custom.env == {"LANG": "C", "MODE": "test"}

    def test_default_schedule_only_fills_tasks_without_one(self) -> None:
        config = parse(
            """\
            defaults: {every: 1h, expires: 10m}
            tasks:
              inherits: {command: [echo]}
              own_cron: {cron: "0 4 * * *", command: [echo]}
              one_shot: {at: "2030-01-01T00:00:00Z", command: [echo]}
            """
        )
        assert config.tasks["inherits"].every == timedelta(hours=1)
        assert config.tasks["inherits"].expires is None
        assert config.tasks["own_cron"].every is None
        assert config.tasks["own_cron"].cron == "0 4 * * *"
        assert config.tasks["one_shot"].expires == timedelta(minutes=10)

    def test_default_action_serves_only_tasks_of_that_action(self) -> None:
        config = parse(
            """\
            defaults:
              llm: {base_url: "https://llm.example/v1", model: small, api_key_env: KEY}
            tasks:
              story:
                cron: "0 2 * * *"
                llm: {prompt: Tell a story., model: large}
              reindex: {cron: "0 4 * * *", command: [echo, reindex]}
            """
        )
        story = config.tasks["story"]
        assert story.llm is not None
        assert (story.llm.base_url, story.llm.model) == ("https://llm.example/v1", "large")
        assert story.llm.api_key_env == "KEY"
        assert config.tasks["reindex"].llm is None

    def test_per_task_notify_and_deliver_accept_one_string(self) -> None:
        config = parse(
            """\
            defaults: {notify: "json://localhost/ops"}
            tasks:
              t: {every: 1m, command: [echo], deliver: "json://localhost/out"}
            """
        )
        task = config.tasks["t"]
        assert task.notify == ["json://localhost/ops"]
        assert task.deliver == ["json://localhost/out"]

    def test_loaded_config_keeps_defaults_for_tasks_added_later(self) -> None:
        config = parse("defaults: {retries: 9, retry_backoff: {cap: 2h}}\ntasks: {}\n")
        assert config.defaults == {"retries": 9, "retry_backoff": {"cap": "2h"}}
        spec = validate_task_mapping("later", {"every": "1m", "command": ["echo"]}, config.defaults)
        assert (spec.retries, spec.retry_backoff.cap) == (9, timedelta(hours=2))

    def test_validate_task_mapping_uses_the_same_rules(self) -> None:
        spec = validate_task_mapping(
            "api-task",
            {"every": "5m", "command": ["echo", "hi"]},
            defaults={"retries": 7, "retry_backoff": {"cap": "1h"}},
        )
        assert isinstance(spec, TaskSpec)
        assert spec.name == "api-task"
        assert spec.retries == 7
        assert spec.retry_backoff.cap == timedelta(hours=1)


class TestJsonSchema:
    def test_shape(self) -> None:
        schema = config_json_schema()
        json.dumps(schema)  # serialisable as is
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert set(schema["properties"]) == {
            "timezone",
            "notify",
            "defaults",
            "tasks",
            "heartbeat_url",
            "agents",
            "env_file",
            "max_concurrency",
            "budget",
            "api",
        }
        tasks = schema["properties"]["tasks"]
        assert tasks["type"] == "object"
        assert tasks["additionalProperties"] == {"$ref": "#/$defs/Task"}
        assert schema["properties"]["defaults"]["$ref"] == "#/$defs/Task"

    def test_task_definition_has_every_task_key_but_name(self) -> None:
        task = config_json_schema()["$defs"]["Task"]
        keys = set(TaskSpec.model_fields) - {"name"}
        assert set(task["properties"]) == keys
        assert task["additionalProperties"] is False
        assert "required" not in task
        assert task["properties"]["timeout"]["default"] == "1h"
        assert task["properties"]["delivery_backoff"]["default"] == ["1m", "5m", "30m"]

    def test_every_reference_resolves(self) -> None:
        schema = config_json_schema()
        refs: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if "$ref" in node:
                    refs.append(node["$ref"])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(schema)
        assert refs
        for ref in refs:
            assert ref.startswith("#/$defs/")
            assert ref.removeprefix("#/$defs/") in schema["$defs"], ref

    def test_example_uses_only_schema_keys(self) -> None:
        schema = config_json_schema()
        task_keys = set(schema["$defs"]["Task"]["properties"])
        config = parse_config_text(EXAMPLE_CONFIG)
        for spec in config.tasks.values():
            set_keys = set(spec.model_dump(exclude_defaults=True)) - {"name"}
            assert set_keys <= task_keys
