"""Bad configs: every problem named by task, key and line, all of them at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcron.config import (
    ApiConfig,
    ConfigError,
    ConfigProblem,
    load_config,
    parse_config_text,
    validate_task_mapping,
)


def problems(text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(textwrap.dedent(text), "agentcron.yaml")
    assert caught.value.source == "agentcron.yaml"
    return caught.value.problems


def only(text: str) -> ConfigProblem:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def at(found: list[ConfigProblem], location: str) -> ConfigProblem:
    matches = [p for p in found if p.location == location]
    assert len(matches) == 1, (location, found)
    return matches[0]


class TestTaskFields:
    def test_broken_cron(self) -> None:
        problem = only(
            """\
            tasks:
              story:
                cron: "61 * * * *"
                command: [echo]
            """
        )
        assert problem.location == "tasks.story.cron"
        assert problem.line == 3
        assert problem.message.startswith("invalid cron expression '61 * * * *'")
        assert "minute" in problem.message

    def test_unknown_zone_in_task_and_at_top(self) -> None:
        found = problems(
            """\
            timezone: Europe/Berln
            tasks:
              story:
                cron: "0 2 * * *"
                timezone: Mars/Olympus
                command: [echo]
            """
        )
        top = at(found, "timezone")
        assert top.line == 1
        assert top.message == "unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)"
        task = at(found, "tasks.story.timezone")
        assert task.line == 5
        assert task.message.startswith("unknown time zone 'Mars/Olympus'")
        assert "IANA" in task.message

    def test_bad_duration(self) -> None:
        problem = only(
            """\
            tasks:
              reindex:
                cron: "0 4 * * *"
                command: [python, reindex.py]
                timeout: 20 minutes
            """
        )
        assert (problem.location, problem.line) == ("tasks.reindex.timeout", 5)
        assert problem.message.startswith("not a duration: '20 minutes'")

    def test_unknown_key_with_suggestion(self) -> None:
        found = problems(
            """\
            tasks:
              story:
                every: 1h
                command: [echo]
                retrys: 2
                retry_backoff: {bsae: 10s}
            """
        )
        assert at(found, "tasks.story.retrys").message == (
            "unknown key 'retrys' (did you mean 'retries'?)"
        )
        assert at(found, "tasks.story.retrys").line == 5
        nested = at(found, "tasks.story.retry_backoff.bsae")
        assert nested.message == "unknown key 'bsae' (did you mean 'base'?)"
        assert nested.line == 6

    def test_unknown_key_without_close_match_lists_the_allowed_ones(self) -> None:
        problem = only("api: {zzz: 1}\n")
        assert problem.location == "api.zzz"
        assert problem.message == (
            "unknown key 'zzz'; allowed keys: enabled, host, port, token_env, token"
        )

    def test_unknown_task_key_without_close_match_points_to_the_schema(self) -> None:
        problem = only("tasks:\n  t: {every: 1m, command: [echo], zzz: 1}\n")
        assert problem.location == "tasks.t.zzz"
        assert (
            problem.message == "unknown key 'zzz' (`agentcron schema` lists the keys allowed here)"
        )

    def test_per_task_key_at_top_level_is_pointed_to_defaults(self) -> None:
        problem = only("keep_outputs: 7d\ntasks: {}\n")
        assert problem.location == "keep_outputs"
        assert "put it under defaults:" in problem.message

    def test_number_too_large_for_a_duration(self) -> None:
        found = problems(
            """\
            defaults: {timeout: 1e20}
            tasks:
              t: {every: 1e20, command: [echo]}
            """
        )
        assert [(p.location, p.line) for p in found] == [
            ("defaults.timeout", 1),
            ("tasks.t.every", 3),
        ]
        assert all("out of range" in p.message for p in found)

    def test_missing_schedule(self) -> None:
        problem = only("tasks:\n  story:\n    command: [echo]\n")
        assert (problem.location, problem.line) == ("tasks.story", 2)
        assert problem.message == "a task needs exactly one schedule: cron, every or at"

    def test_missing_schedule_reported_beside_field_errors(self) -> None:
        found = problems("tasks:\n  story:\n    command: [echo]\n    retries: -1\n")
        assert at(found, "tasks.story.retries").message == "must be greater than or equal to 0"
        assert at(found, "tasks.story").message.startswith("a task needs exactly one schedule")

    def test_two_actions(self) -> None:
        problem = only(
            """\
            tasks:
              story:
                every: 1h
                command: [echo]
                python: "jobs:story"
            """
        )
        assert problem.location == "tasks.story"
        assert problem.message == (
            "a task needs exactly one action: command, python, http or llm (found command, python)"
        )

    def test_string_command_without_shell(self) -> None:
        problem = only("tasks:\n  backup:\n    every: 1d\n    command: tar czf b.tgz /srv\n")
        assert problem.location == "tasks.backup"
        assert "command is a string but shell is not true" in problem.message

    def test_wrong_type_names_what_is_expected(self) -> None:
        problem = only("tasks:\n  t:\n    every: 1m\n    command: {prog: echo}\n")
        assert problem.location == "tasks.t.command"
        assert problem.message == "must be a list of strings or a string"

    def test_list_item_of_wrong_type(self) -> None:
        problem = only("tasks:\n  t:\n    every: 1m\n    command: [echo, true]\n")
        assert (problem.location, problem.message) == ("tasks.t.command[1]", "must be a string")

    def test_enum_value(self) -> None:
        problem = only("tasks:\n  t: {every: 1m, command: [echo], overlap: never}\n")
        assert problem.location == "tasks.t.overlap"
        assert problem.message == "must be 'skip', 'queue', 'allow' or 'replace' (got 'never')"

    def test_missing_nested_key(self) -> None:
        problem = only(
            "tasks:\n  t:\n    every: 1m\n    llm: {base_url: 'https://x.example', model: m}\n"
        )
        assert (problem.location, problem.line) == ("tasks.t.llm", 4)
        assert problem.message == "missing required key 'prompt'"

    def test_invalid_task_name(self) -> None:
        problem = only("tasks:\n  'my task': {every: 1m, command: [echo]}\n")
        assert (problem.location, problem.line) == ("tasks.my task", 2)
        assert problem.message.startswith("invalid task name 'my task'")

    def test_task_that_is_not_a_mapping(self) -> None:
        problem = only("tasks:\n  story: echo hi\n")
        assert problem.location == "tasks.story"
        assert problem.message == (
            "a task must be a mapping of keys such as cron: and command:, not str"
        )

    def test_name_key_inside_a_task(self) -> None:
        problem = only("tasks:\n  t: {name: other, every: 1m, command: [echo]}\n")
        assert problem.location == "tasks.t.name"


class TestDefaults:
    def test_bad_default_reported_once_under_defaults(self) -> None:
        found = problems(
            """\
            defaults:
              timeout: soon
              retrys: 1
            tasks:
              a: {every: 1m, command: [echo]}
              b: {every: 1m, command: [echo]}
            """
        )
        assert [(p.location, p.line) for p in found] == [
            ("defaults.timeout", 2),
            ("defaults.retrys", 3),
        ]
        assert found[1].message == "unknown key 'retrys' (did you mean 'retries'?)"

    def test_task_own_conflict_is_not_blamed_on_defaults(self) -> None:
        problem = only(
            """\
            defaults: {every: 1h, python: "jobs:run"}
            tasks:
              t: {every: 1m, command: [echo], python: "jobs:other"}
            """
        )
        assert problem.location == "tasks.t"
        assert problem.message.endswith("(found command, python)")

    def test_conflict_inherited_from_defaults_says_so(self) -> None:
        problem = only(
            """\
            defaults: {every: 1h, cron: "0 * * * *"}
            tasks:
              t: {command: [echo]}
            """
        )
        assert (problem.location, problem.line) == ("tasks.t", 3)
        assert problem.message == (
            "a task needs exactly one schedule: cron, every or at (found cron, every); "
            "from defaults: cron, every"
        )


class TestTopLevel:
    def test_non_loopback_api_host_without_token(self) -> None:
        problem = only("api:\n  host: 0.0.0.0\n  port: 8765\ntasks: {}\n")
        assert problem.location == "api.token"
        assert problem.line == 1
        assert "0.0.0.0" in problem.message
        assert "api.token" in problem.message

    def test_non_loopback_api_host_with_token_is_fine(self) -> None:
        config = parse_config_text("api: {host: 0.0.0.0, token: long-random-string}\n")
        assert config.api.token == "long-random-string"

    def test_api_config_enforces_the_rule_when_built_in_code(self) -> None:
        with pytest.raises(ValueError, match="other machines can reach"):
            ApiConfig(host="192.168.1.10")

    def test_heartbeat_must_be_http(self) -> None:
        problem = only("heartbeat_url: ftp://hc.example.com/ping\n")
        assert problem.location == "heartbeat_url"
        assert problem.message == "must be an http:// or https:// URL, got ftp://hc.example.com/…"

    def test_max_concurrency_at_least_one(self) -> None:
        problem = only("max_concurrency: 0\n")
        assert (problem.location, problem.message) == (
            "max_concurrency",
            "must be greater than or equal to 1",
        )

    def test_document_must_be_a_mapping(self) -> None:
        problem = only("- just\n- a list\n")
        assert problem.message.startswith("the document must be a mapping")

    def test_empty_document(self) -> None:
        problem = only("# nothing yet\n")
        assert problem.message.startswith("the file is empty")


class TestNotificationUrls:
    def test_unknown_service_in_deliver_is_located_and_redacted(self) -> None:
        secret = "123456789:AAE-secret-bot-token"
        problem = only(
            f"""\
            tasks:
              story:
                every: 1h
                command: [echo]
                deliver: ["json://localhost/ok", "tgrm://{secret}/4242"]
            """
        )
        assert (problem.location, problem.line) == ("tasks.story.deliver[1]", 5)
        assert problem.message.startswith("unknown notification service 'tgrm://'")
        assert "did you mean 'tgram://'?" in problem.message
        assert secret not in problem.message
        assert "4242" not in problem.message

    def test_known_service_with_unusable_url(self) -> None:
        problem = only("notify: tgram://not-a-token/chat\n")
        assert problem.location == "notify[0]"
        assert problem.message.startswith("Apprise cannot use this Telegram URL tgram://***/…")
        assert "not-a-token" not in problem.message

    def test_passwords_never_echoed(self) -> None:
        with pytest.raises(ConfigError) as caught:
            parse_config_text(
                "notify: ['smtpx://alice:hunter2@mail.example.com']\n"
                "tasks:\n"
                "  t: {every: 1m, http: {url: 'ftp://bob:pa55word@files.example.com/x'}}\n",
                "agentcron.yaml",
            )
        text = str(caught.value)
        assert "hunter2" not in text and "pa55word" not in text
        assert "smtpx://***@mail.example.com" in text

    def test_plain_webhook_hint(self) -> None:
        problem = only("tasks:\n  t: {every: 1m, command: [echo], notify: https://example.com/h}\n")
        assert problem.location == "tasks.t.notify"
        assert "json://" in problem.message

    def test_defaults_urls_checked_once(self) -> None:
        found = problems(
            """\
            defaults: {notify: ["nope://x"]}
            tasks:
              a: {every: 1m, command: [echo]}
              b: {every: 1m, command: [echo]}
            """
        )
        assert [p.location for p in found] == ["defaults.notify[0]"]


class TestYamlErrors:
    def test_broken_yaml_has_line_and_column(self) -> None:
        problem = only("tasks:\n  t:\n    command: [echo, hi\n    every: 1m\n")
        assert problem.location == ""
        assert problem.line == 4
        assert problem.message.startswith("invalid YAML at line 4, column")
        assert "flow sequence starting on line 3" in problem.message

    def test_unquoted_cron_gets_a_quoting_hint(self) -> None:
        problem = only("tasks:\n  t:\n    cron: */5 * * * *\n    command: [echo]\n")
        assert problem.line == 3
        assert 'must be quoted, e.g. cron: "*/5 * * * *"' in problem.message

    def test_duplicate_keys_named_with_both_lines(self) -> None:
        found = problems(
            """\
            tasks:
              t:
                every: 1m
                every: 2m
                command: [echo]
              t: {every: 1m, command: [echo]}
            """
        )
        assert [(p.location, p.line, p.message) for p in found] == [
            ("tasks.t.every", 4, "duplicate key 'every' (first given on line 3); keep one"),
            ("tasks.t", 6, "duplicate key 't' (first given on line 2); keep one"),
        ]

    def test_keys_that_are_not_text(self) -> None:
        found = problems("tasks:\n  ~: {every: 1m}\n  true: {every: 1m}\n")
        assert [(p.location, p.line, p.message) for p in found] == [
            ("tasks", 2, "key null is not text: quote it ('null') or rename it"),
            ("tasks", 3, "key true is not text: quote it ('true') or rename it"),
        ]

    def test_unsupported_tag(self) -> None:
        problem = only("tasks:\n  t: {every: 1m, command: [echo, !env HOME]}\n")
        assert problem.location == "tasks.t.command[1]"
        assert problem.message.startswith("unsupported YAML tag '!env'")

    def test_no_stack_trace_in_the_message(self) -> None:
        with pytest.raises(ConfigError) as caught:
            parse_config_text("a: [\n", "agentcron.yaml")
        assert "Traceback" not in str(caught.value)
        assert str(caught.value).startswith("agentcron.yaml:")


class TestReporting:
    def test_all_problems_reported_in_file_order(self) -> None:
        text = textwrap.dedent(
            """\
            timezone: Nowhere/City
            tasks:
              story:
                cron: "0 25 * * *"
                command: [echo]
              reindex:
                every: fortnightly
                command: [echo]
              lonely:
                command: [echo]
            """
        )
        with pytest.raises(ConfigError) as caught:
            parse_config_text(text, "agentcron.yaml")
        lines = str(caught.value).splitlines()
        assert len(lines) == 4
        assert lines[0].startswith("agentcron.yaml:1: timezone: unknown time zone 'Nowhere/City'")
        assert lines[1].startswith("agentcron.yaml:4: tasks.story.cron: invalid cron expression")
        assert lines[2].startswith("agentcron.yaml:7: tasks.reindex.every: not a duration")
        assert lines[3] == (
            "agentcron.yaml:9: tasks.lonely: a task needs exactly one schedule: cron, every or at"
        )

    def test_missing_file_says_how_to_create_one(self, tmp_path: Path) -> None:
        path = tmp_path / "agentcron.yaml"
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert str(caught.value) == (
            f"{path}: file not found: {path}; run `agentcron init` to create an example"
        )

    def test_file_that_is_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "agentcron.yaml"
        path.write_bytes(b"tasks:\n  t: {every: 1m, command: [caf\xe9]}\n")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.problems[0].line == 2
        assert "not UTF-8" in caught.value.problems[0].message

    def test_validate_task_mapping_errors_have_the_same_format(self) -> None:
        with pytest.raises(ConfigError) as caught:
            validate_task_mapping("story", {"cron": "61 * * * *", "command": ["echo"], "retrys": 1})
        assert [p.location for p in caught.value.problems] == [
            "tasks.story.cron",
            "tasks.story.retrys",
        ]
        assert all(p.line is None for p in caught.value.problems)
        assert str(caught.value).splitlines()[1] == (
            "tasks.story.retrys: unknown key 'retrys' (did you mean 'retries'?)"
        )

    def test_validate_task_mapping_prefix(self) -> None:
        with pytest.raises(ConfigError) as caught:
            validate_task_mapping("x", {"every": "1m"}, location_prefix="")
        assert [str(p) for p in caught.value.problems] == [
            "x: a task needs exactly one action: command, python, http or llm"
        ]

    def test_config_error_lines_without_source(self) -> None:
        error = ConfigError([ConfigProblem("a.b", "bad", 3), ConfigProblem("", "worse")])
        assert error.lines() == ["line 3: a.b: bad", "worse"]


class TestNeverCrashes:
    """Whatever the input, the answer is a config or a ConfigError, never a traceback."""

    _VALUES = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 10**6),
        st.floats(allow_nan=True),
        st.sampled_from(["1m", "61 * * * *", "0 2 * * *", "echo hi", "json://localhost/x"]),
        st.sampled_from(["tgram://x/y", "Europe/Berlin", "ftp://u:p@h/", "skip", "a:b", "("]),
        st.text(max_size=12),
        st.lists(st.sampled_from(["echo", 1, None, "json://localhost/x"]), max_size=3),
        st.dictionaries(
            st.sampled_from(["url", "base", "prompt", "model", "match", "class", "x"]),
            st.sampled_from(["https://h.example", "1s", "p", "auth", 3, None]),
            max_size=3,
        ),
    )
    _KEYS = st.sampled_from(
        [
            "cron",
            "every",
            "at",
            "command",
            "shell",
            "http",
            "llm",
            "python",
            "timeout",
            "retry_backoff",
            "classify",
            "notify",
            "deliver",
            "timezone",
            "env",
            "retrys",
            "name",
        ]
    )

    @settings(max_examples=300, deadline=None)
    @given(st.dictionaries(_KEYS, _VALUES, max_size=6), st.dictionaries(_KEYS, _VALUES, max_size=3))
    def test_task_mappings(self, raw: dict[str, object], defaults: dict[str, object]) -> None:
        try:
            validate_task_mapping("t", raw, defaults)
        except ConfigError as exc:
            assert exc.problems
            for problem in exc.problems:
                assert problem.message and "Value error" not in problem.message
                assert "p@h" not in problem.message

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet="tasks:{}[]-\n #&*!'\"~ab1.,?|>", max_size=60))
    def test_any_text(self, text: str) -> None:
        try:
            parse_config_text(text)
        except ConfigError as exc:
            assert exc.problems


def test_a_file_nested_too_deeply_is_one_problem_not_a_traceback(tmp_path: Path) -> None:
    """500 brackets inside each other: `validate`, `list` and a daemon's reload ended in a
    RecursionError traceback of thousands of lines (outside-in probe)."""
    path = tmp_path / "agentcron.yaml"
    path.write_text("a: " + "[" * 500 + "]" * 500 + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert problem.message.startswith("nested too deeply to be read")
    assert "[" * 500 + "]" * 500 in path.read_text()  # nothing written


def test_an_agent_zero_file_nested_too_deeply_is_refused_in_words(tmp_path: Path) -> None:
    from agentcron.importers._core import ImportFileError, read_yaml

    path = tmp_path / "tasks.yaml"
    path.write_text("tasks: " + "[" * 500 + "]" * 500 + "\n")
    with pytest.raises(ImportFileError, match="nested too deeply to be a job file"):
        read_yaml(path)


@pytest.mark.parametrize(
    ("namespaces", "said"),
    [
        (("shared", "shared"), "clients.b.namespace: the same namespace as clients.a"),
        (("shared", "shared.sub"), "clients.b.namespace: a namespace inside that of"),
        (("agent", None), "clients.b.namespace: a namespace inside that of clients.a"),
    ],
)
def test_agents_namespaces_may_not_be_shared_or_nested(
    namespaces: tuple[str | None, str | None], said: str
) -> None:
    """Two agents in one namespace, or one inside another's, saw, counted and cancelled
    each other's tasks (outside-in probe); sharing is what see: and change: grant."""
    a, b = (f"{{namespace: {n}}}" if n else "{}" for n in namespaces)
    [problem] = problems(f"agents:\n  clients:\n    a: {a}\n    b: {b}\n")
    assert said in f"{problem.location}: {problem.message}", problem
    assert "give another access with see: or change:" in problem.message
    only_its_own = "agents:\n  clients:\n    a: {namespace: shared}\n    b: {namespace: sharedx}\n"
    assert parse_config_text(only_its_own, "agentcron.yaml").agents.clients.keys() == {"a", "b"}


def test_a_command_argument_the_system_cannot_pass_is_refused_when_written() -> None:
    """A 3 MB argument was accepted (through MCP) and each run failed, blamed on the
    permissions of agentcron's Python (outside-in probe)."""
    with pytest.raises(ConfigError) as caught:
        validate_task_mapping("big", {"every": "1h", "command": ["echo", "y" * 200_000]})
    [problem] = caught.value.problems
    assert "an argument of 128 KiB or more" in problem.message
    fits = validate_task_mapping("fits", {"every": "1h", "command": ["echo", "y" * 100_000]})
    assert fits.command is not None and len(fits.command[1]) == 100_000


def test_an_every_no_calendar_can_hold_is_refused_by_key_and_line() -> None:
    """Outside-in probe: `every: 100000000d` was valid, never fired, and `list` said ok."""
    problem = only(
        """
        tasks:
          x1:
            every: 100000000d
            command: [echo, hi]
        """
    )
    assert problem.location == "tasks.x1.every"
    assert "every must be at most 100 years (36525d)" in problem.message
    assert problem.line == 4
    parse_config_text("tasks:\n  y:\n    every: 36525d\n    command: [echo]\n", "ok.yaml")


def test_keep_outputs_of_zero_is_refused_as_keep_history_of_zero_is() -> None:
    """Outside-in probe: `keep_outputs: 0` was accepted (0 reads as "off" elsewhere) and
    deleted every output at the next prune."""
    problem = only(
        """
        tasks:
          t:
            every: 1h
            command: [echo]
            keep_outputs: 0
        """
    )
    assert problem.location == "tasks.t.keep_outputs"
    assert "keep_outputs must be at least 1m (or null to keep them)" in problem.message


def test_yaml_1_2_words_and_quoted_numbers_are_not_taken_for_flags_and_numbers() -> None:
    """In YAML 1.2 `yes` is text, and a quoted number is text: `paused: yes` was read as
    true and `retries: "3"` as 3, and `retries: true` as 1, without a word (outside-in
    probe: `agentcron validate` said the file was valid). Each is refused at its key."""
    found = problems(
        """\
        max_concurrency: "4"
        tasks:
          story:
            every: 1h
            command: [echo]
            paused: yes
            retries: true
            empty_output_streak: "3"
        """
    )
    said = {p.location: p.message for p in found}
    assert "true or false" in said["tasks.story.paused"], said
    assert "a whole number" in said["tasks.story.retries"], said
    assert "a whole number" in said["tasks.story.empty_output_streak"], said
    assert "a whole number" in said["max_concurrency"], said
