"""A heartbeat endpoint that keeps failing is told, shown by doctor, and its end told
(issue 12, finding 6 and build item 5).

A ``heartbeat_url`` with a wrong check id answers 404 to every ping: the outside dead
man's switch never hears from this machine and, until now, only a WARNING in the log
said so. Here a local HTTP server answers 404 and then 200; the monitor (as the
daemon's pulse uses it) must tell the owner once, in words that say the answer will
not pass by itself, remind at most daily, show ✖ in ``doctor`` with the error and
since when, and tell the recovery once. A refused connection and an unknown host are
passing failures, told after three pings in a row, in other words.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import pytest

from agentcron.clock import FakeClock
from agentcron.interfaces.doctor import diagnose, heartbeat_check
from agentcron.model import Message
from agentcron.store.base import Store
from agentcron.watchdog.endpoint import (
    META_KEY,
    HeartbeatMonitor,
    endpoint_status,
)
from agentcron.watchdog.pulse import (
    HeartbeatURLError,
    PingResult,
    fail_url,
    failed,
    request_url,
)
from e2e_http import Response, ScriptedServer

UTC_ZONE = ZoneInfo("UTC")
WHERE = "box (pid 42)"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as srv:
        yield srv


def _monitor(store: Store | None, clock: FakeClock, told: list[Message]) -> HeartbeatMonitor:
    return HeartbeatMonitor(store, clock, told.append, where=WHERE, zone=UTC_ZONE, interval=60.0)


def _first(messages: list[Message]) -> list[str]:
    return [m.body for m in messages]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- the URL -----------------------------------------------------------------------------


def test_the_fail_ping_goes_on_the_path_before_the_query() -> None:
    # Healthchecks' documented form; after the query /fail would read as a success ping
    url = "https://hc.example.com/ping/KEY/backups?create=1"
    assert fail_url(url) == "https://hc.example.com/ping/KEY/backups/fail?create=1"
    assert fail_url("https://hc.example.com/ping/abc/") == "https://hc.example.com/ping/abc/fail"


def test_the_request_url_is_made_in_one_place_and_refuses_what_cannot_be_requested() -> None:
    assert request_url("  https://hc.example.com/ping/abc \n") == "https://hc.example.com/ping/abc"
    with pytest.raises(HeartbeatURLError, match="variable HC_KEY is not set"):
        request_url("https://hc.example.com/ping/${HC_KEY}")
    with pytest.raises(HeartbeatURLError, match="not an http"):
        request_url("ftp://hc.example.com/ping")
    with pytest.raises(HeartbeatURLError, match="variable HC_KEY is not set"):
        fail_url("https://hc.example.com/ping/${HC_KEY}?create=1")


def test_a_placeholder_in_the_heartbeat_url_is_filled_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HC_KEY", "k3y")
    assert request_url("https://hc.example.com/ping/${HC_KEY}?create=1") == (
        "https://hc.example.com/ping/k3y?create=1"
    )
    assert fail_url("https://hc.example.com/ping/${HC_KEY}?create=1") == (
        "https://hc.example.com/ping/k3y/fail?create=1"
    )


def test_failures_are_put_in_words_and_only_the_lasting_ones_called_permanent() -> None:
    url = "https://hc.example.invalid/ping/abc"
    dns = failed(httpx2.ConnectError("[Errno -2] Name or service not known"), url)
    assert dns == PingResult(
        False, None, "the host name hc.example.invalid could not be resolved (DNS)"
    )
    slow = failed(httpx2.ReadTimeout("timed out"), url)
    assert slow.error == "no answer from hc.example.invalid within 10s" and not slow.permanent
    unfilled = failed(HeartbeatURLError("heartbeat_url still holds ${X}"), url)
    assert unfilled.permanent


# ---- 404, then 200: told once, reminded daily, shown in doctor, recovery told once ---------


def test_a_404_endpoint_is_told_at_once_reminded_daily_and_its_recovery_told_once(
    sqlite_store: Store, clock: FakeClock, server: ScriptedServer
) -> None:
    url = server.url("/ping/wrong-id?create=1")
    server.add(*[Response(404, body="not found")] * 4, *[Response(200, body="OK")] * 2)
    told: list[Message] = []
    monitor = _monitor(sqlite_store, clock, told)

    async def scenario() -> None:
        await monitor.beat(url)  # 00:00: 404, told at once
        clock.advance(timedelta(minutes=1))
        await monitor.beat(url)  # 00:01: 404 again, counted
        clock.advance(timedelta(hours=23, minutes=58))
        await monitor.beat(url)  # 23:59: still within a day of the message
        assert len(told) == 1
        clock.advance(timedelta(minutes=1))
        await monitor.beat(url)  # 24:00: a day since the message: reminded
        assert len(told) == 2
        clock.advance(timedelta(minutes=1))
        await monitor.beat(url)  # answered: the recovery
        clock.advance(timedelta(minutes=1))
        await monitor.beat(url)  # answered again: nothing more

    asyncio.run(scenario())
    assert [r.path for r in server.requests] == ["/ping/wrong-id?create=1"] * 6
    shown = server.url("/ping/wrong-id?create=1")
    assert _first(told) == [
        f"✖ agentcron's dead man's switch is not armed: pinging {shown} from {WHERE} fails "
        "since 2026-06-01 00:00:00 UTC: HTTP 404 (not found: there is no check at this "
        "address, most often a wrong check id or key). This will not pass by itself: fix "
        "heartbeat_url (the check id or ping key in it). Until then the outside check hears "
        "nothing from this machine. agentcron keeps pinging every 1 min and tells you when it "
        "answers.",
        f"✖ agentcron's dead man's switch still fails: pinging {shown} from {WHERE} has "
        "failed since 2026-06-01 00:00:00 UTC (1 day, 4 pings), the latest: HTTP 404 (not "
        "found: there is no check at this address, most often a wrong check id or key). This will "
        "not pass by itself: fix heartbeat_url. The outside check hears nothing from this "
        "machine. agentcron keeps pinging every 1 min and tells you when it answers.",
        f"✔ agentcron's dead man's switch answers again: {shown} took the ping on {WHERE} "
        "after failing for 1 day 1 min (since 2026-06-01 00:00:00 UTC, 4 failed ping(s)).",
    ]
    assert [m.title for m in told] == [
        "agentcron: heartbeat_url refused",
        "agentcron: heartbeat_url still failing",
        "agentcron: heartbeat_url answers again",
    ]
    assert [m.severity for m in told] == ["failure", "failure", "recovery"]
    assert {m.incident_kind for m in told} == {"heartbeat"}


def test_doctor_shows_a_failing_endpoint_as_a_cross_with_its_error_and_since_when(
    sqlite_store: Store, clock: FakeClock, server: ScriptedServer
) -> None:
    url = server.url("/ping/wrong-id")
    server.add(Response(404), Response(404), Response(200))
    told: list[Message] = []
    monitor = _monitor(sqlite_store, clock, told)
    clock.set(datetime(2026, 6, 1, 10, 7, 3, tzinfo=UTC))
    asyncio.run(monitor.beat(url))
    clock.advance(timedelta(minutes=1))
    asyncio.run(monitor.beat(url))
    status = endpoint_status(sqlite_store)
    assert status is not None and status["failures"] == 2
    line = heartbeat_check(url, status, ZoneInfo("Europe/Berlin"))
    assert line == {
        "name": "heartbeat_url",
        "status": "fail",
        "message": f"{url} failing since 2026-06-01 12:07:03 CEST (2 ping(s) in a row, the "
        "latest at 2026-06-01 12:08:03 CEST): HTTP 404 (not found: there is no check at this "
        "address, most often a wrong check id or key). The outside check hears nothing from this "
        "machine; this will not pass by itself: fix heartbeat_url (the check id or ping key "
        "in it)",
    }
    clock.advance(timedelta(minutes=1))
    asyncio.run(monitor.beat(url))
    ok = heartbeat_check(url, endpoint_status(sqlite_store), UTC_ZONE)
    assert ok == {
        "name": "heartbeat_url",
        "status": "ok",
        "message": f"{url} answered at 2026-06-01 10:09:03 UTC",
    }
    # a URL changed in the config but not pinged yet is said so, not passed as ✔
    other = server.url("/ping/right-id")
    changed = heartbeat_check(other, endpoint_status(sqlite_store), UTC_ZONE)
    assert changed is not None and changed["status"] == "warn" and other in changed["message"]
    assert heartbeat_check(None, endpoint_status(sqlite_store), UTC_ZONE) is None


def test_agentcron_doctor_reports_the_failing_endpoint(
    sqlite_store: Store, clock: FakeClock, home: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """The whole report, as `agentcron doctor` builds it from the daemon's record."""
    url = f"http://127.0.0.1:{_closed_port()}/ping/abc"
    config = tmp_path / "agentcron.yaml"
    config.write_text(f'heartbeat_url: "{url}"\ntasks: {{}}\n')
    told: list[Message] = []
    monitor = _monitor(sqlite_store, clock, told)
    for _ in range(3):
        asyncio.run(monitor.beat(url))
        clock.advance(timedelta(minutes=1))
    report = diagnose(config, home, None)
    [line] = [c for c in report["checks"] if c["name"] == "heartbeat_url"]
    assert line["status"] == "fail"
    assert line["message"].startswith(f"{url} failing since 2026-06-01 00:00:00 UTC (3 ping(s)")
    assert "connection refused by 127.0.0.1" in line["message"]
    assert "the daemon keeps pinging and tells you when it answers" in line["message"]
    assert report["ok"] is False


# ---- passing failures ----------------------------------------------------------------------


def test_a_refused_connection_is_told_after_three_pings_in_a_row_as_a_passing_failure(
    sqlite_store: Store, clock: FakeClock
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/ping/abc"
    told: list[Message] = []
    monitor = _monitor(sqlite_store, clock, told)

    async def scenario() -> None:
        await monitor.beat(url)
        clock.advance(timedelta(minutes=1))
        await monitor.beat(url)
        assert told == []  # two in a row may be a blip
        status = endpoint_status(sqlite_store)
        assert status is not None
        line = heartbeat_check(url, status, UTC_ZONE)
        assert line is not None and line["status"] == "warn"
        assert line["message"].endswith("; you are told if it keeps failing")
        clock.advance(timedelta(minutes=1))
        await monitor.beat(url)

    asyncio.run(scenario())
    assert _first(told) == [
        f"⚠ agentcron cannot reach its dead man's switch: 3 pings to {url} from {WHERE} failed "
        "since 2026-06-01 00:00:00 UTC, the latest: connection refused by 127.0.0.1. This may "
        "pass (a network or service outage); meanwhile the outside check hears nothing from "
        "this machine and raises its own alarm. agentcron keeps pinging every 1 min and tells "
        "you when it answers."
    ]
    assert told[0].severity == "warning"


def test_a_blip_that_was_never_told_ends_without_a_message(
    sqlite_store: Store, clock: FakeClock, server: ScriptedServer
) -> None:
    url = server.url("/ping/abc")
    server.add(Response(503), Response(200))
    told: list[Message] = []
    monitor = _monitor(sqlite_store, clock, told)
    asyncio.run(monitor.beat(url))
    asyncio.run(monitor.beat(url))
    assert told == []
    status = endpoint_status(sqlite_store)
    assert status is not None and status["ok"] is True


# ---- the record survives the daemon; the fail ping counts; removal clears -------------------


def test_a_restarted_daemon_does_not_tell_the_same_failure_again(
    sqlite_store: Store, clock: FakeClock, server: ScriptedServer
) -> None:
    url = server.url("/ping/wrong-id")
    server.add(Response(404), Response(404), Response(200))
    told: list[Message] = []
    asyncio.run(_monitor(sqlite_store, clock, told).beat(url))
    clock.advance(timedelta(minutes=1))
    restarted = _monitor(sqlite_store, clock, told)  # nothing in memory
    asyncio.run(restarted.beat(url))
    assert len(told) == 1
    clock.advance(timedelta(minutes=1))
    asyncio.run(restarted.beat(url))
    assert len(told) == 2 and told[1].body.startswith("✔")
    assert "2 failed ping(s)" in told[1].body


def test_the_fail_ping_of_a_daemon_in_trouble_is_checked_too_and_removal_clears_the_record(
    sqlite_store: Store, clock: FakeClock, server: ScriptedServer
) -> None:
    url = server.url("/ping/abc?create=1")
    server.add(Response(404))
    told: list[Message] = []
    monitor = _monitor(sqlite_store, clock, told)
    result = asyncio.run(monitor.beat(url, trouble="agentcron's ticks are failing"))
    assert result is not None and result.status == 404
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/ping/abc/fail?create=1")
    assert request.body == b"agentcron's ticks are failing"
    assert len(told) == 1
    stored = sqlite_store.get_meta(META_KEY)
    assert stored is not None and json.loads(stored)["ok"] is False
    # heartbeat_url removed by a reload: nothing to show, nothing more to tell
    asyncio.run(monitor.beat(None))
    assert endpoint_status(sqlite_store) is None
    assert len(told) == 1


def test_without_a_database_the_record_is_kept_in_memory(clock: FakeClock) -> None:
    told: list[Message] = []
    monitor = _monitor(None, clock, told)
    result = asyncio.run(monitor.beat("https://hc.example.com/ping/${HC_KEY}"))
    assert result is not None and result.permanent
    assert monitor.state is not None and monitor.state.failures == 1
    assert "variable HC_KEY is not set" in told[0].body


def test_a_record_that_could_not_be_written_is_not_replaced_by_the_older_stored_one(
    sqlite_store: Store, clock: FakeClock, server: ScriptedServer
) -> None:
    """The 404 is told, then its record cannot be written: the next beat must go on
    from the record in memory (told) rather than the stored one (not told yet), or
    the same failure is told twice."""
    url = server.url("/ping/wrong-id")
    server.add(*[Response(404, body="not found")] * 3)
    told: list[Message] = []
    monitor = _monitor(sqlite_store, clock, told)
    set_meta = sqlite_store.set_meta
    refused: list[str] = []

    def flaky(key: str, value: str) -> None:
        if not refused:
            refused.append(key)
            raise OSError("disk I/O error")
        set_meta(key, value)

    async def scenario() -> None:
        await monitor.beat(url)  # told at once; its record is refused
        clock.advance(timedelta(minutes=1))
        await monitor.beat(url)  # written now
        clock.advance(timedelta(minutes=1))
        await monitor.beat(url)

    sqlite_store.set_meta = flaky  # type: ignore[method-assign]
    asyncio.run(scenario())
    assert refused == [META_KEY]
    assert [m.title for m in told] == ["agentcron: heartbeat_url refused"]
    status = endpoint_status(sqlite_store)
    assert status is not None and status["failures"] == 3
