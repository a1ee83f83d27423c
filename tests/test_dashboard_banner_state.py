"""The not-running banner's heading and sentence come from one read of the daemon's
state: after a database lock was released the heading said "The scheduler is not
running" above a sentence saying the daemon "schedules again since …" (outside-in
probe)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agentcron.clock import FakeClock
from agentcron.interfaces.dashboard import build_router
from harness import Harness

TROUBLE = {
    "pid": 4242,
    "database": True,
    "since": "10:01:00 CET",
    "error": "database is locked",
    "words": "the daemon (pid 4242) is running but cannot use its database since 10:01:00 CET "
    "(database is locked): nothing is being scheduled; it goes on by itself once it can",
}
BACK = {
    **TROUBLE,
    "back_since": "10:03:00 CET",
    "words": "the daemon (pid 4242) could not use its database from 10:01:00 CET (database "
    "is locked) and schedules again since 10:03:00 CET; it makes sure the database takes "
    "writes again before it says the outage is over",
}


@pytest.fixture
def harness(sqlite_store, clock: FakeClock, home: Path) -> Harness:
    return Harness(sqlite_store, clock, home)


def _client(harness: Harness, trouble: dict[str, Any]) -> Iterator[TestClient]:
    real = harness.service.daemon_status

    def status() -> dict[str, Any]:
        return {**real(), "trouble": trouble}

    harness.service.daemon_status = status  # type: ignore[method-assign]
    app = FastAPI()
    app.state.service = harness.service
    app.include_router(build_router())
    with TestClient(app) as c:
        yield c


def test_a_daemon_scheduling_again_is_not_headed_not_running(harness: Harness) -> None:
    for client in _client(harness, BACK):
        text = client.get("/fragments/banner").text
        assert "schedules again since 10:03:00 CET" in text
        assert "The scheduler is not running" not in text
        assert "The scheduler runs again after its database was unavailable" in text


def test_a_daemon_that_cannot_use_its_database_is_headed_not_running(harness: Harness) -> None:
    for client in _client(harness, TROUBLE):
        text = client.get("/fragments/banner").text
        assert "The scheduler is not running" in text
        assert "cannot use its database since 10:01:00 CET" in text
