"""Who may use the API, and what it never gives away: the token (Bearer or Basic,
every path), the Host check that defeats DNS rebinding on loopback, cross-site
writes refused, JSON-only writes, bounded bodies, and no secret in any answer."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentcron.clock import FakeClock
from agentcron.config.errors import ConfigError
from agentcron.config.schema import ApiConfig
from agentcron.interfaces.api.app import ApiSettings, create_app
from agentcron.interfaces.api.guard import token_matches
from agentcron.interfaces.api.launch import api_settings, parse_listen, resolve_token
from agentcron.model import TaskSource, TaskSpec
from harness import Harness

TOKEN = "correct-horse-battery-staple-42"
BASE = "http://127.0.0.1:8765"


@pytest.fixture
def harness(sqlite_store: Any, clock: FakeClock, home: Path) -> Harness:
    h = Harness(sqlite_store, clock, home)
    spec = TaskSpec(
        name="report",
        every=timedelta(hours=1),
        command=["./report.sh"],
        env={"DB_URL": "postgresql://app:hunter2pw@db/prod", "PLAIN": "some-value"},
        notify=["tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-100123"],
        deliver=["json://user:pa55word@hooks.example/out"],
    )
    h.store.upsert_task(spec, TaskSource.API, clock.now(), None)
    return h


def client_for(harness: Harness, base: str = BASE, **settings: Any) -> TestClient:
    app = create_app(lambda: harness.service, ApiSettings(close_service=False, **settings))
    return TestClient(app, base_url=base)


@pytest.fixture
def locked(harness: Harness) -> Iterator[TestClient]:
    with client_for(harness, token=TOKEN) as c:
        yield c


@pytest.fixture
def open_client(harness: Harness) -> Iterator[TestClient]:
    with client_for(harness) as c:
        yield c


BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    "path", ["/api/v1/tasks", "/api/v1/health", "/metrics", "/", "/api/v1/openapi.json"]
)
def test_every_path_needs_the_token_when_one_is_set(locked: TestClient, path: str) -> None:
    refused = locked.get(path)
    assert refused.status_code == 401
    assert refused.json()["type"] == "urn:agentcron:problem:unauthorized"
    assert TOKEN not in refused.text
    wrong = locked.get(path, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert locked.get(path, headers=BEARER).status_code == 200


def test_api_asks_for_bearer_and_the_dashboard_for_basic(locked: TestClient) -> None:
    assert locked.get("/api/v1/tasks").headers["www-authenticate"].startswith("Bearer")
    assert locked.get("/").headers["www-authenticate"].startswith("Basic")
    basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    assert locked.get("/", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    bad = base64.b64encode(b"anyone:guess").decode()
    assert locked.get("/", headers={"Authorization": f"Basic {bad}"}).status_code == 401


def test_a_token_in_the_url_is_not_accepted(locked: TestClient) -> None:
    assert locked.get(f"/api/v1/tasks?token={TOKEN}").status_code == 401
    assert locked.get(f"/api/v1/tasks?access_token={TOKEN}").status_code == 401


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer   {TOKEN}  ", True),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        ("Bearer ", False),
        (f"Token {TOKEN}", False),
        ("Basic !!!", False),
        ("", False),
    ],
)
def test_token_matching(header: str, ok: bool) -> None:
    assert token_matches(header, TOKEN) is ok


def test_with_a_token_other_host_names_are_served(harness: Harness) -> None:
    with client_for(harness, token=TOKEN, base="http://agentcron.example.org") as c:
        assert c.get("/api/v1/tasks", headers=BEARER).status_code == 200


@pytest.mark.parametrize(
    "base", ["http://evil.example:8765", "http://192.168.1.20:8765", "http://127.0.0.1.nip.io"]
)
def test_without_a_token_only_this_machines_names_are_served(harness: Harness, base: str) -> None:
    """A page on evil.example whose name resolves to 127.0.0.1 (DNS rebinding) is
    same-origin for the browser; the Host header still names evil.example."""
    with client_for(harness, base=base) as c:
        refused = c.get("/api/v1/tasks")
        assert refused.status_code == 403
        assert "localhost" in refused.json()["detail"]


@pytest.mark.parametrize(
    "host", ["[::1].evil.example", "[::1]evil.example", "localhost:80x", "localhost.", "[::1"]
)
def test_a_host_that_only_begins_like_a_loopback_name_is_refused(
    harness: Harness, host: str
) -> None:
    """The name is read whole: ``[::1].evil.example`` is not ``[::1]``."""
    with client_for(harness) as c:
        refused = c.get("/api/v1/tasks", headers={"Host": host})
        assert refused.status_code == 403, host
        assert refused.json()["type"].endswith("forbidden-host")


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:8765", "[::1]", "127.0.0.1:1"])
def test_loopback_host_headers_with_or_without_a_port_are_served(
    harness: Harness, host: str
) -> None:
    with client_for(harness) as c:
        assert c.get("/api/v1/tasks", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("base", ["http://localhost:8765", "http://[::1]:8765", BASE])
def test_loopback_names_are_served_without_a_token(harness: Harness, base: str) -> None:
    with client_for(harness, base=base) as c:
        assert c.get("/api/v1/tasks").status_code == 200


def test_cross_site_writes_are_refused_and_change_nothing(
    open_client: TestClient, harness: Harness
) -> None:
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "http://127.0.0.1:9999"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        # the browser's word wins over a matching Origin (outside-in probe: it did not)
        {"Origin": BASE, "Sec-Fetch-Site": "cross-site"},
    ):
        refused = open_client.post("/api/v1/tasks/report/pause", headers=headers)
        assert refused.status_code == 403, headers
        assert refused.json()["type"].endswith("cross-site")
        refused = open_client.post("/api/v1/tasks/report/trigger", headers=headers)
        assert refused.status_code == 403
    rec = harness.store.get_task("report")
    assert rec is not None and not rec.paused and harness.store.slots("report") == []
    assert harness.store.audit_entries() == []
    same = open_client.post("/api/v1/tasks/report/pause", headers={"Origin": BASE})
    assert same.status_code == 200
    # reads are not writes: another site's page may not read them (no CORS headers)
    read = open_client.get("/api/v1/tasks", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in read.headers


def test_a_form_post_cannot_write_through_the_api(open_client: TestClient) -> None:
    """An HTML form can send urlencoded or multipart bodies, never JSON."""
    form = open_client.post(
        "/api/v1/tasks",
        content=b"name=x&every=1h&command=true",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    text = open_client.post(
        "/api/v1/tasks/report/pause",
        content=b'{"reason": "x"}',
        headers={"content-type": "text/plain"},
    )
    assert text.status_code == 415


def test_bodies_are_bounded(harness: Harness) -> None:
    with client_for(harness, max_body_bytes=2048) as c:
        big = {"name": "big", "every": "1h", "command": ["echo", "x" * 5000]}
        refused = c.post("/api/v1/tasks", json=big)
        assert refused.status_code == 413
        assert harness.store.get_task("big") is None

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"name": "big", "every": "1h", "command": ["'
            for _ in range(10):
                yield b"x" * 500
            yield b'"]}'

        streamed = c.post(
            "/api/v1/tasks", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert harness.store.get_task("big") is None


def test_no_secret_in_any_answer(locked: TestClient, harness: Harness) -> None:
    run = locked.post("/api/v1/tasks/report/trigger", headers=BEARER).json()
    texts = [
        locked.get(path, headers=BEARER).text
        for path in (
            "/api/v1/tasks",
            "/api/v1/tasks/report",
            f"/api/v1/runs/{run['id']}",
            "/api/v1/runs",
            "/api/v1/health",
            "/api/v1/audit",
            "/metrics",
        )
    ]
    locked.patch("/api/v1/tasks/report", json={"retries": 2}, headers=BEARER)
    texts.append(locked.get("/api/v1/audit", headers=BEARER).text)
    for text in texts:
        for secret in (
            "hunter2pw",
            "some-value",
            "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
            "pa55word",
            TOKEN,
        ):
            assert secret not in text
    detail = locked.get("/api/v1/tasks/report", headers=BEARER).json()
    assert detail["spec"]["env"] == {"DB_URL": "[REDACTED]", "PLAIN": "[REDACTED]"}


# ---- the daemon's refusals -------------------------------------------------------------
def test_api_section_presence_turns_it_on() -> None:
    from agentcron.config.loader import parse_config_text

    assert parse_config_text("tasks: {}\n").api.enabled is False
    assert parse_config_text("api:\ntasks: {}\n").api.enabled is True
    assert parse_config_text("api: {port: 9000}\n").api.enabled is True
    assert parse_config_text("api: {enabled: false, port: 9000}\n").api.enabled is False


def test_daemon_refuses_other_hosts_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="other machines can reach"):
        api_settings(ApiConfig(), ("0.0.0.0", 8765))
    assert api_settings(ApiConfig(), None) is None
    listen = api_settings(ApiConfig(token=TOKEN), ("0.0.0.0", 0))
    assert listen is not None and resolve_token(listen) == TOKEN
    monkeypatch.delenv("AGENTCRON_TEST_API_TOKEN", raising=False)
    env_only = ApiConfig(enabled=True, host="0.0.0.0", token_env="AGENTCRON_TEST_API_TOKEN")
    with pytest.raises(ConfigError, match="AGENTCRON_TEST_API_TOKEN, which is not set"):
        resolve_token(env_only)
    monkeypatch.setenv("AGENTCRON_TEST_API_TOKEN", "short")
    with pytest.raises(ConfigError, match="too short"):
        resolve_token(env_only)
    monkeypatch.setenv("AGENTCRON_TEST_API_TOKEN", TOKEN)
    assert resolve_token(env_only) == TOKEN
    assert resolve_token(ApiConfig(enabled=True)) is None  # loopback: none needed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8765", ("127.0.0.1", 8765)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8765", ":8765", "host:", "host:99999", "host:http"])
def test_bad_listen_addresses_are_named(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(text)


@pytest.mark.parametrize("path", ["/", "/tasks/report", "/api/v1/tasks", "/api/v1/health"])
def test_no_page_may_be_framed_sniffed_or_cached(open_client: TestClient, path: str) -> None:
    """Outside-in probe: no page said it may not be framed, so a decoy site could frame
    the dashboard and have its "Pause" or "Run now" clicked (the form's Origin is then
    the dashboard's own, which the cross-site check lets through)."""
    answer = open_client.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"


def test_static_files_keep_their_own_caching(open_client: TestClient) -> None:
    page = open_client.get("/").text
    static = page.split('src="', 1)[1].split('"', 1)[0]
    answer = open_client.get(static)
    assert answer.status_code == 200, static
    assert answer.headers["cache-control"] != "no-store"
    assert answer.headers["x-frame-options"] == "DENY"


def test_an_actor_named_in_utf8_is_recorded_as_written(
    open_client: TestClient, harness: Harness
) -> None:
    """Outside-in probe: `X-Actor: José Müller` was recorded 'JosÃ MÃ¼ller'."""
    for name in ("José Müller", "田中"):
        answer = open_client.post(
            "/api/v1/tasks/report/pause",
            json={"reason": "probe"},
            headers={"X-Actor": name.encode("utf-8")},  # UTF-8 bytes, as curl sends them
        )
        assert answer.status_code == 200, answer.text
        open_client.post("/api/v1/tasks/report/resume")
    actors = [entry["actor"] for entry in harness.service.audit("report", 10, None)]
    assert "José Müller" in actors and "田中" in actors, actors


@pytest.mark.parametrize(
    ("method", "path", "body", "where"),
    [
        ("PATCH", "/api/v1/tasks/report", '{"description": "\\ud800"}', "description"),
        ("POST", "/api/v1/tasks", '{"name": "u\\ud800", "every": "1h", "command": ["true"]}', "u"),
        (
            "POST",
            "/api/v1/tasks",
            '{"name": "u3", "every": "1h", "command": ["true"], "env": {"\\udfff": "x"}}',
            "env.\\udfff",
        ),
    ],
)
def test_text_that_is_not_unicode_is_refused_in_words(
    open_client: TestClient, harness: Harness, method: str, path: str, body: str, where: str
) -> None:
    """Outside-in probe: a lone surrogate (JSON's "\\ud800") in a description or a name
    gave a 500; in an env key it was stored, and every run then failed inside agentcron."""
    before = open_client.get("/api/v1/tasks").json()
    answer = open_client.request(
        method, path, content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert "lone UTF-16 surrogate" in answer.json()["detail"] and where in answer.json()["detail"]
    assert open_client.get("/api/v1/tasks").json() == before  # nothing changed


@pytest.mark.parametrize("path", ["/", "/api/v1/health", "/metrics", "/api/v1/tasks/report"])
def test_head_is_a_get_without_its_body(open_client: TestClient, path: str) -> None:
    """Outside-in probe: HEAD got 405 on every route, and uptime monitors ask with it."""
    got = open_client.get(path)
    head = open_client.head(path)
    assert head.status_code == got.status_code == 200, (head.text, got.text)
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


def test_head_needs_the_token_as_a_get_does(locked: TestClient) -> None:
    assert locked.head("/api/v1/health").status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert locked.head("/api/v1/health", headers=auth).status_code == 200


def test_the_name_of_a_key_variable_is_shown_its_value_is_not() -> None:
    """Outside-in probe: `show` said "api_key_env": "[REDACTED]", hiding which variable a
    task reads (a name, not a secret), while a value under a secret-named key stays hidden."""
    from agentcron.service import spec_view

    spec = TaskSpec(
        name="story",
        every=timedelta(hours=1),
        llm={
            "base_url": "http://127.0.0.1:9/v1",
            "model": "m",
            "prompt": "go",
            "api_key_env": "PROVIDER_CRED",
        },
    )
    shown = spec_view(spec)
    assert shown["llm"]["api_key_env"] == "PROVIDER_CRED", shown
    assert spec_view(spec.model_copy(update={"env": {"API_KEY": "sk-1"}}))["env"] == {
        "API_KEY": "[REDACTED]"
    }


def test_the_guards_refusals_have_the_keys_of_every_problem_body(
    locked: TestClient, open_client: TestClient, harness: Harness
) -> None:
    """401, 403, 413 and 415 are written before the routes: their bodies lacked the
    ``advice`` key the others carry (outside-in probe), so a client reading
    ``body["advice"]`` failed on exactly these."""
    keys = {"type", "title", "status", "detail", "field", "problems", "advice"}
    answers = [
        locked.get("/api/v1/tasks"),  # 401
        open_client.post("/api/v1/tasks/report/pause", headers={"Origin": "https://x.example"}),
        open_client.post(
            "/api/v1/tasks/report/pause",
            content=b"{}",
            headers={"content-type": "text/plain"},
        ),
    ]
    with client_for(harness, max_body_bytes=64) as c:
        answers.append(c.post("/api/v1/tasks", json={"name": "x" * 200}))
    assert [a.status_code for a in answers] == [401, 403, 415, 413]
    for answer in answers:
        assert set(answer.json()) == keys, answer.json()
        assert answer.json()["advice"] is None


def test_a_json_merge_patch_type_is_taken_and_a_form_type_is_not(
    open_client: TestClient, harness: Harness
) -> None:
    """docs/api.md calls a PATCH body a JSON merge patch, and its own type was refused
    (415). No HTML form can send a +json type, which the check guards against."""
    patched = open_client.patch(
        "/api/v1/tasks/report",
        content=b'{"retries": 5}',
        headers={"content-type": "application/merge-patch+json"},
    )
    assert patched.status_code in (200, 409), patched.text  # 409: a file task, said so
    assert patched.status_code != 415
    form = open_client.patch(
        "/api/v1/tasks/report",
        content=b"retries=5",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
