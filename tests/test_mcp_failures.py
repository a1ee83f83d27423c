"""A tool call that fails on something no tool expects (a locked database, an I/O
error, a bug of agentcron's) is a refusal that says which it is and what became of
the change, never the SDK's bare "Error executing tool NAME"; the log gets one line
for a database failure, not a traceback."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.service import Defaults, Service
from faulty_store import FaultyStore, io_error
from mcp_rig import agents_config, call, ok, refusal, server_for, unchanged


@pytest.fixture
def faulty(sqlite_store: Any) -> FaultyStore:
    return FaultyStore(sqlite_store)


@pytest.fixture
def service(faulty: FaultyStore, clock: FakeClock, home: Path) -> Service:
    return Service(faulty, home, clock, Defaults(timezone="Europe/Berlin"))  # type: ignore[arg-type]


def _with_task(service: Service) -> Any:
    server = server_for(service, agents_config(claude={"actions": ["command"]}))
    ok(call(server, "schedule_task", name="job", every="1h", command=["true"]))
    return server


def test_a_locked_database_is_said_as_busy_with_nothing_changed(
    service: Service, faulty: FaultyStore, caplog: pytest.LogCaptureFixture
) -> None:
    server = _with_task(service)
    check = unchanged(service)
    faulty.fail("set_paused", "add_slot")
    for tool in ("pause_task", "trigger_task"):
        with caplog.at_level(logging.INFO):
            said = refusal(call(server, tool, name="job"))
        assert said.startswith("the database is busy: another process holds its lock"), said
        assert "Nothing was changed. Try again in a few seconds" in said, said
        assert "Error executing tool" not in said
    check()
    logged = [r for r in caplog.records if r.name == "agentcron.mcp"]
    assert logged and all(r.levelno == logging.WARNING and r.exc_info is None for r in logged)
    assert "database is locked" in logged[0].getMessage()
    assert all("Traceback" not in r.getMessage() for r in caplog.records)


def test_a_read_tool_on_a_locked_database_says_busy(service: Service, faulty: FaultyStore) -> None:
    server = _with_task(service)
    faulty.fail("get_task")
    said = refusal(call(server, "get_task", name="job"))
    assert said.startswith("the database is busy"), said
    assert "Nothing was changed" not in said  # a read changes nothing to begin with


def test_a_failure_after_part_of_the_write_says_it_was_made(
    service: Service, faulty: FaultyStore
) -> None:
    server = _with_task(service)
    # the pause is recorded, its reason is not: the agent must not hear "nothing changed"
    faulty.fail("set_pause_reason", error=io_error)
    said = refusal(call(server, "pause_task", name="job", reason="for the test"))
    assert said.startswith("the database could not be read or written just now"), said
    assert "was made before the failure" in said and "do not repeat" in said, said
    assert "Nothing was changed" not in said
    faulty.clear()
    assert ok(call(server, "get_task", name="job"))["paused"] is True


def test_a_bug_is_said_as_agentcrons_own_error(
    service: Service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = _with_task(service)

    def broken(*_: Any, **__: Any) -> Any:
        raise KeyError("oops")

    monkeypatch.setattr(service, "config_budgets", broken)  # read by list_tasks
    with caplog.at_level(logging.INFO):
        said = refusal(call(server, "list_tasks"))
    assert said.startswith("list_tasks failed on an error of agentcron's own (KeyError)"), said
    assert "not on your request" in said and "oops" not in said
    bug = [r for r in caplog.records if r.name == "agentcron.mcp"]
    assert bug and bug[0].levelno == logging.ERROR and bug[0].exc_info is not None


def test_a_bug_in_a_change_tool_before_its_write_changes_nothing(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = _with_task(service)
    check = unchanged(service)

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "task_budget", broken)  # trigger_task reads it first
    said = refusal(call(server, "trigger_task", name="job"))
    assert "error of agentcron's own (RuntimeError)" in said, said
    assert "Nothing was changed" in said
    check()


def test_a_database_another_process_holds_is_refused_at_once(
    sqlite_store: Any, clock: FakeClock, home: Path
) -> None:
    """The store's connection would wait 30 s for the lock and then fail: the change
    tools look first, and answer within seconds that nothing was changed."""
    import sqlite3
    import time

    service = Service(sqlite_store, home, clock, Defaults(timezone="Europe/Berlin"))
    server = _with_task(service)
    check = unchanged(service)
    other = sqlite3.connect(home / "agentcron.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        for tool in ("pause_task", "trigger_task"):
            began = time.monotonic()
            said = refusal(call(server, tool, name="job"))
            assert time.monotonic() - began < 10
            assert said.startswith("the database is busy: another process holds its lock"), said
            assert "Nothing was changed. Try again in a few seconds" in said
    finally:
        other.execute("ROLLBACK")
        other.close()
    check()
    assert ok(call(server, "pause_task", name="job"))["paused"] is True
