"""The dashboard in Chromium when agentcron is slow to answer: an action while another
process holds the database locked, an action that gets no answer, and the time the
"cannot reach" banner names. Served from this process over a real SQLite store (no
daemon is needed for what is looked at here)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard_live import need_browser, standalone_dashboard

pytestmark = pytest.mark.slow

need_browser()

from playwright.sync_api import Page, Route, expect  # noqa: E402

from agentcron.clock import FakeClock  # noqa: E402
from harness import Harness  # noqa: E402


def fine() -> str:
    return "ok"


@pytest.fixture
def served(sqlite_store, clock: FakeClock, home: Path) -> Iterator[tuple[str, Harness]]:
    h = Harness(sqlite_store, clock, home)
    h.add("good", fine, every="10m", retries=0)
    with standalone_dashboard(h.service) as url:
        yield url, h


def test_pause_while_another_process_locks_the_database_says_so_in_time(
    served: tuple[str, Harness], page: Page
) -> None:
    """The answer came after 30 s (the store's busy wait), after the browser had given
    up at 10 s: no status line, and a banner saying the daemon had probably stopped
    (outside-in probe)."""
    url, h = served
    page.goto(url + "/tasks/good")
    other = sqlite3.connect(h.service.store.path, isolation_level=None)  # type: ignore[attr-defined]
    other.execute("BEGIN IMMEDIATE")
    try:
        page.get_by_role("button", name="Pause").click()
        feedback = page.locator("#feedback")
        expect(feedback).to_contain_text("Not paused: the database is busy", timeout=9_000)
        expect(feedback).to_contain_text("nothing was changed")
        expect(page.locator("#unreachable")).to_be_hidden()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert not h.service.show_task("good")["paused"]


def test_an_action_with_no_answer_is_told_in_the_status_line_not_as_a_stopped_daemon(
    served: tuple[str, Harness], page: Page
) -> None:
    """An action that times out may still be done, and the server may only be slow:
    the status line says so; the polls still answer, so no "cannot reach" banner."""
    url, _ = served
    held: list[Route] = []
    page.route(re.compile(r".*/tasks/good/run$"), lambda route: held.append(route))
    page.goto(url + "/tasks/good")
    page.evaluate("htmx.config.timeout = 1000")
    page.get_by_role("button", name="Run now").click()
    feedback = page.locator("#feedback")
    expect(feedback).to_contain_text("No answer to this action within 10 seconds")
    expect(feedback).to_contain_text("It may still be done")
    page.wait_for_timeout(6_000)  # a poll of the banner comes and is answered
    expect(page.locator("#unreachable")).to_be_hidden()


def test_the_cannot_reach_banner_names_its_time_zone(
    served: tuple[str, Harness], page: Page
) -> None:
    """It said "A refresh at 10:18:42 PM" (the browser's locale) where every other
    time on the page names its zone."""
    url, _ = served
    page.goto(url + "/")
    page.route(re.compile(r".*/fragments/.*"), lambda route: route.abort())
    lost = page.locator("#unreachable")
    expect(lost).to_be_visible(timeout=15_000)
    expect(lost).to_contain_text(re.compile(r"A refresh at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"))
    expect(lost.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-.*Z$"))
