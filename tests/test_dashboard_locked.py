"""A dashboard action while another process holds the SQLite database locked: the
answer comes at once (well inside the browser's 10 s), says the database is busy and
that nothing was changed, and nothing was."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agentcron.clock import FakeClock
from agentcron.interfaces.dashboard import build_router
from harness import Harness

SAME = {"Origin": "http://testserver"}
HTMX = {**SAME, "HX-Request": "true"}


def fine() -> str:
    return "ok"


@pytest.fixture
def harness(sqlite_store, clock: FakeClock, home: Path) -> Harness:
    h = Harness(sqlite_store, clock, home)
    h.add("good", fine, every="10m", retries=0)
    return h


@pytest.fixture
def client(harness: Harness) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.service = harness.service
    app.include_router(build_router())
    with TestClient(app) as c:
        yield c


@pytest.fixture
def locked(harness: Harness) -> Iterator[None]:
    """Another process's connection holding the write lock (a sqlite3 shell in a
    transaction)."""
    other = sqlite3.connect(harness.service.store.path, isolation_level=None)  # type: ignore[attr-defined]
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.mark.parametrize(
    ("path", "verb"),
    [("/tasks/good/pause", "paused"), ("/tasks/good/run", "run")],
)
def test_an_action_while_the_database_is_locked_says_so_at_once_and_changes_nothing(
    client: TestClient, harness: Harness, locked: None, path: str, verb: str
) -> None:
    runs_before = len(harness.service.runs("good", 50))
    started = time.monotonic()
    answer = client.post(path, headers=HTMX, data={"back": "task", "reason": "x"})
    took = time.monotonic() - started
    assert took < 8, f"answered after {took:.1f} s: the browser gives up after 10 s"
    assert answer.status_code == 200  # htmx swaps only 2xx: the sentence is shown
    assert f"Not {verb}: the database is busy" in answer.text
    assert "nothing was changed" in answer.text
    assert not harness.service.show_task("good")["paused"]
    assert len(harness.service.runs("good", 50)) == runs_before


def test_without_javascript_the_locked_database_is_a_page_saying_so(
    client: TestClient, harness: Harness, locked: None
) -> None:
    started = time.monotonic()
    answer = client.post("/tasks/good/pause", headers=SAME, data={"back": "task"})
    assert time.monotonic() - started < 8
    assert answer.status_code == 503
    assert "the database is busy" in answer.text
    assert not harness.service.show_task("good")["paused"]


def test_after_the_lock_is_released_the_action_is_done(
    client: TestClient, harness: Harness
) -> None:
    answer = client.post("/tasks/good/pause", headers=HTMX, data={"back": "task"})
    assert "is paused" in answer.text
    assert harness.service.show_task("good")["paused"]
