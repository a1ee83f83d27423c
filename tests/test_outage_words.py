"""The owner's "cannot use its database" message counts its failed attempts in words a
person reads: "1 failed attempt", "3 failed attempts" (it said "1 failed attempts")."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentcron.daemon import Daemon, DaemonOptions
from agentcron.engine.health import Outage
from agentcron.model import Message


@pytest.mark.parametrize(
    ("failures", "said"),
    [(1, "(1 failed attempt; latest: "), (2, "(2 failed attempts; latest: ")],
)
@pytest.mark.parametrize("database", [True, False], ids=["database", "loop"])
def test_an_outage_counts_its_failed_attempts_in_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failures: int, said: str, database: bool
) -> None:
    daemon = Daemon(DaemonOptions(config_path=None, home=tmp_path / "home"))
    told: list[Message] = []
    monkeypatch.setattr(daemon, "_tell_soon", told.append)
    since = datetime(2026, 6, 1, 19, 59, 8, tzinfo=UTC)
    daemon._outage_began(
        Outage(since=since, failures=failures, error="connection refused", database=database)
    )
    (message,) = told
    assert message.body.startswith("✖ "), message.body
    assert f"{said}connection refused). Nothing is being scheduled." in message.body
