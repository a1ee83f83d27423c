"""A paused task's fire times say it is paused (outside-in probe: `GET …/next_runs`
and `agentcron next` listed them bare, as runs to come, where the dashboard says "None
while the task is paused")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from test_cli_parity import setup  # noqa: F401  (the fixture: one home, CLI and API)


@pytest.fixture
def paused(setup: tuple[Any, TestClient]) -> Iterator[tuple[Any, TestClient]]:  # noqa: F811
    cli, client = setup
    cli("pause", "alpha", "--reason", "upgrade", "--json")
    yield cli, client


def test_the_api_marks_a_paused_tasks_fire_times(paused: tuple[Any, TestClient]) -> None:
    _cli, client = paused
    fires = client.get("/api/v1/tasks/alpha/next_runs?count=2").json()
    assert len(fires) == 2 and all(f["paused"] is True for f in fires), fires
    running = client.get("/api/v1/tasks/beta/next_runs?count=2").json()
    assert all(f["paused"] is False for f in running), running
    detail = client.get("/api/v1/tasks/alpha").json()
    assert detail["paused"] and all(f["paused"] for f in detail["next"])


def test_the_cli_json_is_the_apis_and_its_table_says_the_task_is_paused(
    paused: tuple[Any, TestClient],
) -> None:
    cli, client = paused
    path = "/api/v1/tasks/alpha/next_runs?count=3&from=2026-06-01T00:00Z"
    from_cli = json.loads(cli("next", "alpha", "-n", "3", "--from", "2026-06-01T00:00Z", "--json"))
    assert from_cli == client.get(path).json() and all(f["paused"] for f in from_cli)
    table = " ".join(cli("next", "alpha", "-n", "2").split())
    assert "alpha is paused: it does not fire at these times" in table, table
    assert "paused" not in cli("next", "beta", "-n", "2")


def test_resumed_the_fire_times_are_no_longer_marked(paused: tuple[Any, TestClient]) -> None:
    cli, client = paused
    cli("resume", "alpha", "--json")
    fires = client.get("/api/v1/tasks/alpha/next_runs?count=2").json()
    assert all(f["paused"] is False for f in fires), fires


def test_the_shape_documents_paused(tmp_path: Path) -> None:
    from agentcron.interfaces.schemas import NextFire

    field = NextFire.model_fields["paused"]
    assert field.description and "resumed" in field.description
