"""The http action and the shared client, against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest

from agentcron.actions.base import ActionContext, ActionResult
from agentcron.actions.http_action import HttpAction
from agentcron.http_client import USER_AGENT, make_async_client, make_client
from agentcron.model.enums import ErrorClass
from agentcron.model.task import TaskSpec

pytestmark = pytest.mark.slow


class Server:
    """A ThreadingHTTPServer whose routes the tests below rely on."""

    def __init__(self) -> None:
        self.release = threading.Event()  # lets a hanging handler go at teardown
        release = self.release

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(
                self, status: int, body: bytes, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._route()

            def do_POST(self) -> None:
                self._route()

            def _route(self) -> None:
                path = self.path.partition("?")[0]
                if path == "/ok":
                    self._reply(200, b"all good\n")
                elif path == "/created":
                    self._reply(201, b"made")
                elif path == "/limited":
                    self._reply(
                        429,
                        b'{"error": "slow down"}',
                        {"Retry-After": "7", "X-Request-Id": "abc"},
                    )
                elif path == "/boom":
                    self._reply(500, b"x" * 10_000)
                elif path == "/moved":
                    self._reply(302, b"", {"Location": "/ok"})
                elif path == "/echo":
                    length = int(self.headers.get("Content-Length") or 0)
                    echoed = {
                        "method": self.command,
                        "body": self.rfile.read(length).decode(),
                        "content_type": self.headers.get("Content-Type"),
                        "user_agent": self.headers.get("User-Agent"),
                        "x_custom": self.headers.get("X-Custom"),
                    }
                    self._reply(200, json.dumps(echoed).encode())
                elif path == "/hang":
                    release.wait(30)
                else:
                    self._reply(404, b"no such route")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    try:
        yield s
    finally:
        s.close()


def make_ctx(tmp_path: Path, url: str, *, timeout: float = 10.0, **http: Any) -> ActionContext:
    spec = TaskSpec(name="ping", every="1h", http={"url": url, **http})
    return ActionContext(
        task="ping",
        spec=spec,
        slot_id=1,
        attempt=1,
        scheduled_for=datetime(2026, 3, 29, 3, 0, tzinfo=UTC),
        output_path=tmp_path / "out" / "ping.log",
        timeout=timedelta(seconds=timeout),
        kill_grace=timedelta(seconds=1),
    )


def run(ctx: ActionContext) -> ActionResult:
    return asyncio.run(HttpAction().run(ctx))


def test_2xx_body_is_the_output_and_is_kept_in_the_file(tmp_path: Path, server: Server) -> None:
    ctx = make_ctx(tmp_path, f"{server.base}/ok")
    result = run(ctx)
    assert result.ok and result.failure is None
    assert result.output == "all good\n"
    assert ctx.output_path.read_text() == "all good\n"


def test_429_carries_status_headers_and_body(tmp_path: Path, server: Server) -> None:
    result = run(make_ctx(tmp_path, f"{server.base}/limited"))
    assert not result.ok and result.failure is not None
    failure = result.failure
    assert failure.action == "http"
    assert failure.message == "HTTP 429 Too Many Requests"
    assert failure.http_status == 429
    assert failure.headers["retry-after"] == "7"
    assert failure.headers["x-request-id"] == "abc"
    assert failure.body == '{"error": "slow down"}'


def test_500_body_is_cut_to_4kb_in_the_failure_but_kept_whole_in_the_file(
    tmp_path: Path, server: Server
) -> None:
    ctx = make_ctx(tmp_path, f"{server.base}/boom")
    result = run(ctx)
    assert result.failure is not None
    assert result.failure.message == "HTTP 500 Internal Server Error"
    assert result.failure.body == "x" * 4096
    assert ctx.output_path.stat().st_size == 10_000


def test_expect_decides_what_counts_as_success(tmp_path: Path, server: Server) -> None:
    created = run(make_ctx(tmp_path, f"{server.base}/created", expect=[201]))
    plain_ok = run(make_ctx(tmp_path, f"{server.base}/ok", expect=[201, 202]))
    not_found_expected = run(make_ctx(tmp_path, f"{server.base}/nowhere", expect=[404]))
    assert created.ok and created.output == "made"
    assert plain_ok.failure is not None
    assert plain_ok.failure.message == "HTTP 200 OK (expected 201, 202)"
    assert not_found_expected.ok


def test_redirects_are_followed_unless_one_is_expected(tmp_path: Path, server: Server) -> None:
    followed = run(make_ctx(tmp_path, f"{server.base}/moved"))
    expected = run(make_ctx(tmp_path, f"{server.base}/moved", expect=[302]))
    assert followed.ok and followed.output == "all good\n"
    assert expected.ok and expected.output == ""


def test_request_method_headers_and_bodies(tmp_path: Path, server: Server) -> None:
    as_json = run(
        make_ctx(
            tmp_path,
            f"{server.base}/echo",
            method="post",
            headers={"X-Custom": "yes"},
            body={"n": 1},
        )
    )
    as_text = run(make_ctx(tmp_path, f"{server.base}/echo", method="POST", body="raw text"))
    sent = json.loads(as_json.output)
    assert sent["method"] == "POST"
    assert json.loads(sent["body"]) == {"n": 1}
    assert sent["content_type"] == "application/json"
    assert sent["x_custom"] == "yes"
    assert sent["user_agent"] == USER_AGENT and USER_AGENT.startswith("agentcron/")
    assert json.loads(as_text.output)["body"] == "raw text"


def test_a_server_that_never_answers_times_out(tmp_path: Path, server: Server) -> None:
    started = time.monotonic()
    result = run(make_ctx(tmp_path, f"{server.base}/hang?token=abc", timeout=0.5))
    assert time.monotonic() - started < 3
    assert result.failure is not None
    assert result.failure.known_class is ErrorClass.TIMEOUT
    assert result.failure.message == f"timed out after 0.5s waiting for GET {server.base}/hang"


def test_connection_refused_is_a_network_failure(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run(make_ctx(tmp_path, f"http://127.0.0.1:{port}/"))
    assert result.failure is not None
    assert result.failure.action == "http"
    assert "ConnectError" in result.failure.exception_types
    assert result.failure.known_class is None


def test_client_has_user_agent_and_bounded_connect_time() -> None:
    async def scenario() -> tuple[str, httpx2.Timeout]:
        async with make_async_client(60, headers={"X-Extra": "1"}) as client:
            assert client.headers["x-extra"] == "1"
            return client.headers["user-agent"], client.timeout

    agent, timeout = asyncio.run(scenario())
    assert agent == USER_AGENT
    assert timeout.connect == 10.0 and timeout.read == 60


def test_blocking_client_sends_the_same_user_agent(server: Server) -> None:
    with make_client(5) as client:
        sent = client.get(f"{server.base}/echo").json()
        assert client.timeout.connect == 5
    assert sent["user_agent"] == USER_AGENT
