"""An API change while another process holds the SQLite database locked is refused at
once (503, Retry-After), nothing tried: it waited out the store's 30 s busy timeout,
and requests behind it waited too. Reads still answer (WAL lets them through)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agentcron.clock import FakeClock
from agentcron.interfaces.api.app import ApiSettings, create_app
from harness import Harness


def fine() -> str:
    return "ok"


@pytest.fixture
def harness(sqlite_store, clock: FakeClock, home: Path) -> Harness:  # type: ignore[no-untyped-def]
    h = Harness(sqlite_store, clock, home)
    h.add("good", fine, every="10m", retries=0)
    return h


@pytest.fixture
def client(harness: Harness) -> Iterator[TestClient]:
    app = create_app(lambda: harness.service, ApiSettings(close_service=False))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture
def locked(harness: Harness) -> Iterator[None]:
    other = sqlite3.connect(harness.service.store.path, isolation_level=None)  # type: ignore[attr-defined]
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/tasks/good/pause"),
        ("POST", "/api/v1/tasks/good/trigger"),
        ("PATCH", "/api/v1/tasks/good"),
        ("POST", "/api/v1/prune"),
    ],
)
def test_a_change_while_another_process_locks_the_database_is_refused_at_once(
    client: TestClient, harness: Harness, locked: None, method: str, path: str
) -> None:
    before = client.get("/api/v1/tasks/good").json()
    started = time.monotonic()
    answer = client.request(method, path, json={"retries": 5} if method == "PATCH" else None)
    took = time.monotonic() - started
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "5"
    assert "another process holds it locked" in answer.json()["detail"]
    assert "nothing was changed" in answer.json()["detail"]
    assert took < 20  # the store's own wait is 30 s
    assert client.get("/api/v1/tasks/good").json() == before
    assert harness.slots("good") == []


def test_a_change_once_the_lock_is_gone_is_made(client: TestClient) -> None:
    assert client.post("/api/v1/tasks/good/pause").status_code == 200
