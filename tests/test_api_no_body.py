"""An action that takes no body refuses a body key by name, as a pause refuses a key it
does not take, and changes nothing (outside-in probe: ``POST /tasks/alpha/resume``
with ``{"x": 1}`` answered 200 and resumed, the body ignored; a pause said "body key
x: not a key of this body; it takes reason" and did nothing)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentcron.clock import FakeClock
from agentcron.interfaces.api.app import ApiSettings, create_app
from agentcron.model.incident import Incident, IncidentKind
from harness import Harness

INCIDENT = "/api/v1/incidents/{incident}/acknowledge"
ACTIONS = [
    "/api/v1/tasks/alpha/resume",
    "/api/v1/tasks/alpha/trigger",
    INCIDENT,
    "/api/v1/runs/1/redeliver",
    "/api/v1/prune",
    "/api/v1/prune?dry_run=true",
    "/api/v1/notify/test",
]


def fine() -> str:
    return "all good"


@pytest.fixture
def harness(sqlite_store: Any, clock: FakeClock, home: Path) -> Harness:
    h = Harness(sqlite_store, clock, home)
    h.add("alpha", fine, every="5m", retries=0)
    asyncio.run(h.run_until(clock.now() + timedelta(minutes=15), timedelta(minutes=5)))
    h.service.pause("alpha", "disk swap")
    return h


@pytest.fixture
def client(harness: Harness) -> Iterator[TestClient]:
    app = create_app(lambda: harness.service, ApiSettings(close_service=False))
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:
        yield c


def _incident(h: Harness) -> int:
    incident = Incident(task="alpha", kind=IncidentKind.FAILURE, opened_at=h.clock.now())
    (saved,) = h.store.save_incidents([incident], [], h.clock.now())
    assert saved.id is not None
    return saved.id


def _state(client: TestClient) -> list[Any]:
    return [
        client.get(path).json()
        for path in ("/api/v1/tasks", "/api/v1/runs", "/api/v1/incidents", "/api/v1/audit")
    ]


@pytest.mark.parametrize("path", ACTIONS)
def test_an_action_without_a_body_refuses_a_key_by_name_and_changes_nothing(
    client: TestClient, harness: Harness, path: str
) -> None:
    path = path.format(incident=_incident(harness))
    before = _state(client)
    answer = client.post(path, json={"x": 1})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["detail"] == "body key x: not a key of this body; it takes none"
    assert problem["field"] == "x"
    assert problem["problems"] == [
        {"location": "x", "message": "not a key of this body; it takes none"}
    ]
    assert _state(client) == before


def test_a_pause_says_the_same_for_a_key_it_does_not_take(client: TestClient) -> None:
    problem = client.post("/api/v1/tasks/alpha/pause", json={"x": 1}).json()
    assert problem["detail"] == "body key x: not a key of this body; it takes reason"


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ("[1]", 400, "the body must be a JSON object"),
        ('"x"', 400, "the body must be a JSON object"),
        ("{", 400, "the body is not valid JSON"),
    ],
)
def test_a_body_that_is_no_object_is_refused_as_a_pause_refuses_it(
    client: TestClient, body: str, status: int, detail: str
) -> None:
    headers = {"Content-Type": "application/json"}
    for action in ("pause", "resume"):
        path = f"/api/v1/tasks/alpha/{action}"
        answer = client.post(path, content=body, headers=headers)
        assert (answer.status_code, answer.json()["detail"]) == (status, detail), action


@pytest.mark.parametrize("body", [None, "null", "{}"])
def test_no_body_null_or_an_empty_object_still_resumes(
    client: TestClient, body: str | None
) -> None:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    answer = client.post("/api/v1/tasks/alpha/resume", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["paused"] is False


def test_the_document_says_these_actions_take_an_empty_body(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    assert spec["components"]["schemas"]["NoBody"]["additionalProperties"] is False
    for path in ("/api/v1/tasks/{name}/resume", "/api/v1/prune"):
        body = spec["paths"][path]["post"]["requestBody"]
        assert body.get("required") is not True, path
