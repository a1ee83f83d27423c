"""Redaction: secrets never reach notifications, logs or stored errors."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcron.redact import (
    REPLACEMENT,
    daemon_secrets,
    line_secrets,
    redact,
    secret_values_from_env,
)

OPENAI_KEY = "sk-" + "aB3dE5fG7hJ9kL1mN3pQ5rS7"
PROJECT_KEY = "sk-proj-" + "Xy12_Zw34-Vu56Ts78Rq90Po12Nm34"
ANTHROPIC_KEY = "sk-ant-api03-" + "Qw3rTy6uIo9pAs2dFg5hJk8lZx1cVb4nM7" + "-AAAA"
TELEGRAM = "1234567890:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key {OPENAI_KEY} rejected", "key [REDACTED] rejected"),
        (f"OPENAI_API_KEY={PROJECT_KEY}", "OPENAI_API_KEY=[REDACTED]"),
        (f"using {ANTHROPIC_KEY}.", "using [REDACTED]."),
        ("Authorization: Bearer abcdef0123456789", "Authorization: [REDACTED]"),
        ('{"authorization": "Basic dXNlcjpwYXNz"}', '{"authorization": "[REDACTED]"}'),
        ("sent Bearer eyJhbGciOiJIUzI1NiJ9xx", "sent Bearer [REDACTED]"),
        (
            "postgresql://agent:hunter2@db.local:5432/cron",
            "postgresql://agent:[REDACTED]@db.local:5432/cron",
        ),
        (
            "https://ghp_0123456789abcdefghij0123@github.com/o/r.git",
            "https://[REDACTED]@github.com/o/r.git",
        ),
        (
            "GET https://api.example.com/v1/x?token=abc123&page=2",
            "GET https://api.example.com/v1/x?token=[REDACTED]&page=2",
        ),
        (
            "https://maps.example.com/q?key=AIzaXYZ&api_key=zz9&access_token=t0k",
            "https://maps.example.com/q?key=[REDACTED]&api_key=[REDACTED]&access_token=[REDACTED]",
        ),
        (f"tgram://{TELEGRAM}/-100123456", "tgram://[REDACTED]/-100123456"),
        (
            f"POST https://api.telegram.org/bot{TELEGRAM}/sendMessage failed",
            "POST https://api.telegram.org/bot[REDACTED]/sendMessage failed",
        ),
        ("aws AKIAIOSFODNN7EXAMPLE used", "aws [REDACTED] used"),
        ("secret=0f3c9a7be21d44c8a9e0", "secret=[REDACTED]"),
        ("token: 8f14e45fceea167a5a36dedd4bea2543", "token: [REDACTED]"),
        ('{"password": "correct horse"}', '{"password": "[REDACTED]"}'),
        ("client_secret='a b c' rest", "client_secret='[REDACTED]' rest"),
        ("db_password=hunter2 next", "db_password=[REDACTED] next"),
        (
            "x-api-key: Zm9vYmFyYmF6cXV4cXV1eA==",
            "x-api-key: [REDACTED]",
        ),
        ("slack xoxb-1234567890-abcdefghij", "slack [REDACTED]"),
        # ordinary text stays readable
        ("max_tokens: 4000, temperature=0.2", "max_tokens: 4000, temperature=0.2"),
        ("processed 429 rows in 3.2s", "processed 429 rows in 3.2s"),
        ("see https://example.com/docs?page=2", "see https://example.com/docs?page=2"),
        ("task-abcdefghijklmnopqrstuvwx done", "task-abcdefghijklmnopqrstuvwx done"),
        ("", ""),
    ],
)
def test_patterns(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_given_secret_values_are_replaced_everywhere() -> None:
    text = "login as bob with pw pa55word; echo pa55word; short ab stays"
    assert redact(text, ["pa55word", "ab"]) == (
        "login as bob with pw [REDACTED]; echo [REDACTED]; short ab stays"
    )


def test_longer_secret_wins_over_its_prefix() -> None:
    assert redact("v=abcd1234xyz", ["abcd", "abcd1234xyz"]) == "v=[REDACTED]"


def test_env_secrets_by_name() -> None:
    env = {
        "OPENAI_API_KEY": "sk-short-but-secret",
        "github_token": "gho_abc",
        "DB_PASSWORD": "hunter2",
        "MY_PASSWD": "letmein",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
        "GOOGLE_APPLICATION_CREDENTIALS": "/etc/gcp.json",
        "TOKENIZERS_PARALLELISM": "false",
        "API_KEY": "abc",  # too short to redact without blanking ordinary words
        "HOME": "/home/agent",
        "PATH": "/usr/bin",
    }
    assert secret_values_from_env(env) == [
        "sk-short-but-secret",
        "/etc/gcp.json",
        "wJalrXUtnFEMI",
        "gho_abc",
        "hunter2",
        "letmein",
    ]
    message = "connect failed: user=app password hunter2 key sk-short-but-secret home /home/agent"
    assert redact(message, secret_values_from_env(env)) == (
        "connect failed: user=app password [REDACTED] key [REDACTED] home /home/agent"
    )


def test_never_raises() -> None:
    def broken() -> list[str]:
        raise RuntimeError("boom")

    class Exploding:
        def __iter__(self) -> object:
            return iter(broken())

    assert redact("secret stuff", Exploding()) == REPLACEMENT  # type: ignore[arg-type]
    assert redact(None) == "None"  # type: ignore[arg-type]


def test_large_text_is_fast() -> None:
    blob = ("A" * 50_000 + "." + "key-" * 20_000 + " ") * 4
    started = time.monotonic()
    redact(blob)
    # Generous: a quadratic pattern would take minutes here.
    assert time.monotonic() - started < 10


alphabet = st.sampled_from(
    [
        *"abcAZ09:/@?&=._-[] \n\"'",
        "sk-",
        "sk-proj-",
        "Bearer ",
        "Authorization: ",
        "https://",
        "token=",
        "password=",
        "key: ",
        "[REDACTED]",
        "AKIA",
        "1234567:",
        "aaaaaaaaaaaaaaaa",
        "@host",
        "tgram://",
    ]
)
texts = st.lists(alphabet, max_size=40).map("".join)


@given(text=texts, secrets=st.lists(st.text(min_size=0, max_size=8), max_size=3))
def test_idempotent(text: str, secrets: list[str]) -> None:
    once = redact(text, secrets)
    assert redact(once, secrets) == once


@given(
    prefix=texts,
    suffix=texts,
    secret=st.text(alphabet="abcdefXYZ0123456789", min_size=4, max_size=20),
)
def test_given_secret_never_survives(prefix: str, suffix: str, secret: str) -> None:
    assert secret not in redact(prefix + secret + suffix, [secret])


@given(text=st.text(max_size=200))
def test_arbitrary_text_does_not_raise(text: str) -> None:
    assert isinstance(redact(text, ["abcd"]), str)


@pytest.mark.parametrize(
    "bait",
    [
        "password",
        "password:",
        "://",
        "://a:",
        "1234567:",
        "sk-",
        "key: ",
        "token=",
        "Bearer ",
        "authorization: ",
        "?api_key",
        "eyJ",
        "AKIA",
        "secret ",
    ],
)
def test_no_input_makes_a_shape_quadratic(bait: str) -> None:
    """Each shape's worst case: its start, repeated across half a megabyte."""
    blob = bait * (500_000 // len(bait))
    started = time.monotonic()
    redact(blob, ["hunter22"])
    assert time.monotonic() - started < 10  # well under a second unloaded


def test_case_is_folded_for_ascii_names_only() -> None:
    assert redact("PASSWORD=hunter2 Api_Key: abcdefghijklmnop1234") == (
        "PASSWORD=[REDACTED] Api_Key: [REDACTED]"
    )
    # A long s (U+017F) folds to "s" under Unicode rules; names are ASCII here.
    assert redact("pas\u017fword=hunter2") == "pas\u017fword=hunter2"


def test_daemon_secrets_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_API_TOKEN", "plum-orbit-4471")
    assert "plum-orbit-4471" in daemon_secrets()
    monkeypatch.setenv("BILLING_API_TOKEN", "kiwi-delta-0042")
    assert "kiwi-delta-0042" in daemon_secrets() and "plum-orbit-4471" not in daemon_secrets()
    monkeypatch.delenv("BILLING_API_TOKEN")
    assert "kiwi-delta-0042" not in daemon_secrets()


def test_a_multi_line_secret_is_also_looked_for_line_by_line() -> None:
    pem = "-----BEGIN KEY-----\nMIIEvQIBADAN\nAB\n-----END KEY-----"
    assert line_secrets([pem, "hunter22"]) == [
        pem,
        "-----BEGIN KEY-----",
        "-----END KEY-----",
        "MIIEvQIBADAN",
        "hunter22",
    ]


def test_a_command_lines_secret_flags_are_redacted_in_text_and_in_argv() -> None:
    """Secrets probe: `--token cliTOK…`, `--password cronARG…` and `curl -u admin:PW`
    were shown whole by `show`, the API, the dashboard, the audit trail and MCP: the
    shapes knew `password=VALUE`, not a value in the next word or the next item."""
    from agentcron.redact import redact_argv

    text = (
        "sync.sh --api-key abc123def --password 'two words' --db-pass p4ss --auth-token AT9 "
        "--max-tokens 4000 --author Bob --bypass on; curl -u admin:cronPW https://x"
    )
    assert redact(text) == (
        "sync.sh --api-key [REDACTED] --password '[REDACTED]' --db-pass [REDACTED] "
        "--auth-token [REDACTED] --max-tokens 4000 --author Bob --bypass on; "
        "curl -u admin:[REDACTED] https://x"
    )
    assert redact(redact(text)) == redact(text)
    argv = ["sh", "-c", "exit 0", "--token", "cliTOK99", "--password", "pw88", "-u", "me:pw"]
    assert redact_argv([*argv, "--verbose", "--secret", "--x"]) == [
        "sh", "-c", "exit 0", "--token", "[REDACTED]", "--password", "[REDACTED]", "-u",
        "me:[REDACTED]", "--verbose", "--secret", "--x",
    ]  # fmt: skip


def test_a_tasks_view_withholds_the_value_after_a_secret_flag() -> None:
    from agentcron.model import TaskSpec
    from agentcron.service import spec_view

    spec = TaskSpec(name="t", every="1h", command=["sync", "--token", "cliTOK99", "--dry-run"])
    assert spec_view(spec)["command"] == ["sync", "--token", "[REDACTED]", "--dry-run"]


def test_a_secret_flags_value_is_on_its_line_and_not_a_flag() -> None:
    """Review: `mongod --auth --port 27017` lost its next flag, and `--token` at a
    line's end took the next line's first word."""
    assert redact("mongod --auth --port 27017") == "mongod --auth --port 27017"
    assert redact("--token\nnext line") == "--token\nnext line"
    assert redact("gpg --passphrase hunter2 -d x") == "gpg --passphrase [REDACTED] -d x"


def test_a_uid_and_gid_after_u_are_not_a_password() -> None:
    """Review: `docker run -u 1000:1000` was shown as `1000:[REDACTED]`; curl's
    `-u user:password` still loses its password, a numeric one included."""
    from agentcron.redact import redact_argv

    assert redact("docker run -u 1000:1000 img") == "docker run -u 1000:1000 img"
    assert redact_argv(["docker", "run", "-u", "1000:1000", "img"])[3] == "1000:1000"
    assert redact("curl -u admin:123456 x") == "curl -u admin:[REDACTED] x"
    assert redact_argv(["curl", "--user", "admin:123456"])[2] == "admin:[REDACTED]"
    assert redact("curl -u 4711:20240917 x") == "curl -u 4711:[REDACTED] x"  # review
    assert redact_argv(["curl", "-u", "4711:20240917"])[2] == "4711:[REDACTED]"
