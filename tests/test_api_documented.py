"""Every status the API's guard answers is in the OpenAPI document of the route it
answered for: the document listed 400/404/409/422 only, while a missing token got
401, a foreign host or a cross-site write 403, a large body 413 and a body that is
not JSON 415, so a client generated from the schema (or a check against it) took
them for a broken server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentcron.clock import FakeClock
from agentcron.interfaces.api.app import ApiSettings, create_app
from harness import Harness, ran_alpha

TOKEN = "t0ken-for-the-documented-statuses"


@pytest.fixture
def harness(sqlite_store: Any, clock: FakeClock, home: Path) -> Harness:
    h = ran_alpha(sqlite_store, clock, home)
    return h


@pytest.fixture
def loopback(harness: Harness) -> Iterator[TestClient]:
    app = create_app(lambda: harness.service, ApiSettings(close_service=False, max_body_bytes=64))
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:
        yield c


@pytest.fixture
def guarded(harness: Harness) -> Iterator[TestClient]:
    app = create_app(lambda: harness.service, ApiSettings(close_service=False, token=TOKEN))
    with TestClient(app, base_url="http://agentcron.example") as c:
        yield c


def documented(client: TestClient, method: str, path: str) -> set[int]:
    spec = client.get(
        "/api/v1/openapi.json",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).json()
    return {int(code) for code in spec["paths"][path][method.lower()]["responses"]}


def answered(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_every_status_the_guard_gives_is_documented_for_the_route(
    loopback: TestClient, guarded: TestClient
) -> None:
    # 401: the token is missing
    answered(guarded.get("/api/v1/tasks"), 401)
    assert 401 in documented(guarded, "GET", "/api/v1/tasks")
    answered(guarded.get("/metrics"), 401)
    assert 401 in documented(guarded, "GET", "/metrics")
    # 403: a host name a loopback API does not serve, and a cross-site write
    answered(loopback.get("/api/v1/runs", headers={"Host": "evil.example"}), 403)
    assert 403 in documented(loopback, "GET", "/api/v1/runs")
    cross = loopback.post("/api/v1/tasks/alpha/pause", headers={"Origin": "http://evil.example"})
    answered(cross, 403)
    assert 403 in documented(loopback, "POST", "/api/v1/tasks/{name}/pause")
    # 413: a body over the cap; 415: a body that is not JSON
    big = loopback.post("/api/v1/tasks", json={"name": "x" * 100, "every": "5m"})
    answered(big, 413)
    assert 413 in documented(loopback, "POST", "/api/v1/tasks")
    text = loopback.patch(
        "/api/v1/tasks/alpha", content=b"retries=2", headers={"Content-Type": "text/plain"}
    )
    answered(text, 415)
    assert 415 in documented(loopback, "PATCH", "/api/v1/tasks/{name}")


def test_each_operation_lists_the_guard_statuses_its_method_can_get(
    loopback: TestClient,
) -> None:
    spec = loopback.get("/api/v1/openapi.json").json()
    seen = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            codes = {int(c) for c in operation["responses"]}
            assert {401, 403, 503} <= codes, (method, path)
            body = {413, 415} <= codes
            assert body == (method in ("post", "patch", "put", "delete")), (method, path)
            for code in codes - {200, 201, 202}:
                content = operation["responses"][str(code)]["content"]
                assert "application/problem+json" in content, (method, path, code)
            seen += 1
    assert seen >= 20
