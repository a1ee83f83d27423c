"""Shared fixtures: a home folder, stores (SQLite, and PostgreSQL when reachable), a fake clock."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.store.sql import SQLStore

TESTS = Path(__file__).parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

PG_DSN = os.environ.get("AGENTCRON_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pg_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg not installed ({exc})"
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL unreachable at {PG_DSN}: {exc}"
    return None


def require_pg() -> None:
    reason = pg_available()
    if reason is None:
        return
    if os.environ.get("AGENTCRON_REQUIRE_PG") == "1":
        pytest.fail(f"AGENTCRON_REQUIRE_PG=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 6, 1, 0, 0, tzinfo=UTC))


@pytest.fixture
def sqlite_store(home: Path) -> Iterator[object]:
    from agentcron.store.sqlite import SQLiteStore

    store = SQLiteStore(home / "agentcron.db")
    yield store
    store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStore]:
    """A fresh store on each backend: SQLite in ``tmp_path``, and a PostgreSQL schema
    of its own (dropped after) where PostgreSQL answers. A module may define its own."""
    if request.param == "sqlite":
        from agentcron.store.sqlite import SQLiteStore

        s: SQLStore = SQLiteStore(tmp_path / "agentcron.db")
        yield s
        s.close()
        return
    require_pg()
    from agentcron.store.postgres import PostgresStore
    from pg_util import drop_schema, new_schema_name

    schema = new_schema_name()
    s = PostgresStore(PG_DSN, schema=schema)
    try:
        yield s
    finally:
        s.close()
        drop_schema(schema)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright, one per test module (starting it costs
    seconds); modules that use it call ``dashboard_live.need_browser()`` first."""
    from playwright.sync_api import sync_playwright

    from dashboard_live import CHROMIUM

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab of ``browser`` (its own context: no cookies shared between tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture(autouse=True)
def _env_file_values_of_this_test_only() -> Iterator[None]:
    """The env file's values are process-wide (the config last loaded sets them): a test
    that loaded a config with an ``env_file:`` left its values to every later test of
    the worker. Each test starts with none and leaves none."""
    from agentcron.config._env import use_env_file_values

    use_env_file_values({})
    yield
    use_env_file_values({})


@pytest.fixture(autouse=True)
def _daemon_logging_of_this_test_only() -> Iterator[None]:
    """`agentcron run` invoked in-process (CliRunner) sets up the daemon's log writer on
    the runner's stream, which is closed when the test ends: a later in-process daemon of
    the worker would find that writer failing and tell "cannot write its log". Each test
    leaves no writer behind."""
    yield
    from logging.handlers import QueueHandler

    from agentcron import logs

    if logs.log_writer() is not None:
        logs.stop_logging()
        root = logging.getLogger()
        root.handlers[:] = [h for h in root.handlers if not isinstance(h, QueueHandler)]
