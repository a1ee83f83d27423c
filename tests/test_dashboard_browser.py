"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) over a
real daemon running real command tasks: what an owner does on the pages, in order.

The daemon serves the dashboard itself (``api:`` on a free port). The tests share
one daemon and one browser (starting each costs seconds) and run in file order: the
last one stops the daemon. Waits are on what the page shows, with
deadlines far above the 5 s refresh, never fixed sleeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard_live import (
    Live,
    live_dashboard,
    need_browser,
    standalone_dashboard,
    wait_run_final,
)

pytestmark = pytest.mark.slow

need_browser()

from playwright.sync_api import Browser, Page, expect  # noqa: E402

SEEN = 15_000  # ms: a refresh is every 5 s; this allows for a loaded 2-core machine
# the notice after Run now says the run's state when the page was made: the daemon may
# have started it, or even ended it, by then
TRIGGERED = re.compile(r"Run #\d+ of 'daily_report' (is queued|is running|has ended)")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder: Path = tmp_path_factory.mktemp("dashboard")
    with live_dashboard(folder) as running:
        running.service.trigger("backup_db")
        wait_run_final(running, "backup_db")
        yield running


def test_a_failing_task_is_the_first_row_and_stays_there_live(live: Live, page: Page) -> None:
    page.goto(live.url + "/")
    first = page.locator("#task-rows tr").first
    expect(first).to_have_attribute("data-task", "backup_db")
    expect(first.locator(".badge").first).to_have_text(re.compile("failing|retrying"))
    expect(page.locator("#banner")).not_to_contain_text("not running")
    page.keyboard.press("Tab")
    expect(page.locator("a.skip")).to_be_focused()
    # keyboard focus on a row's button survives the table's refresh (rows keep their ids)
    button = page.locator("#run-daily_report")
    button.focus()
    page.evaluate("document.querySelector('#task-rows tr').dataset.before = 'refresh'")
    # the refreshed body has new elements: the mark is gone once the swap is done
    expect(first).not_to_have_attribute("data-before", "refresh", timeout=SEEN)
    expect(first).to_have_attribute("data-task", "backup_db")
    expect(button).to_be_focused()


def test_run_now_shows_the_run_in_the_history_and_its_output_opens(live: Live, page: Page) -> None:
    page.goto(live.url + "/tasks/daily_report")
    expect(page.locator("#run-rows")).to_contain_text("No runs yet")
    page.get_by_role("button", name="Run now").click()
    expect(page.locator("#feedback")).to_contain_text(TRIGGERED, timeout=SEEN)
    row = page.locator("#run-rows tr").first
    expect(row).to_contain_text("succeeded", timeout=SEEN)
    expect(row).to_contain_text("manual")
    row.get_by_role("link", name="output").click()
    expect(page.locator("h1")).to_contain_text("of daily_report")
    expect(page.locator("#output")).to_contain_text("report: 42 new signups")
    page.get_by_role("link", name="Open as plain text").click()
    expect(page.locator("body")).to_contain_text("sent to the team")


def test_pause_with_a_reason_shows_it_and_resume_clears_it(live: Live, page: Page) -> None:
    page.goto(live.url + "/tasks/nightly_sync")
    reason = page.get_by_label("Reason")
    reason.fill("vendor API down until Monday")
    reason.press("Enter")  # the keyboard submits the form as a click does
    expect(page.locator("#feedback")).to_contain_text("'nightly_sync' is paused")
    summary = page.locator("#task-summary")
    expect(summary).to_contain_text("vendor API down until Monday", timeout=SEEN)
    expect(summary.locator(".badge").first).to_have_text("paused")
    page.goto(live.url + "/")
    expect(page.locator('tr[data-task="nightly_sync"]')).to_contain_text("paused")
    page.goto(live.url + "/tasks/nightly_sync")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#feedback")).to_contain_text("is resumed")
    expect(summary).not_to_contain_text("vendor API down", timeout=SEEN)


def test_the_counts_above_the_list_follow_a_change_made_elsewhere(live: Live, page: Page) -> None:
    """The summary line sat outside the refreshed rows: after three pauses made through
    the API the rows said paused and the line still "3 ok · 2 paused" (outside-in
    probe). Counts, rows and pages are refreshed together now."""
    page.goto(live.url + "/")
    counts = page.locator(".summary .counts")
    expect(counts).not_to_contain_text("paused")
    live.service.pause("heartbeat_check", "probe")
    try:
        expect(counts).to_contain_text("1 paused", timeout=SEEN)
    finally:
        live.service.resume("heartbeat_check")
    expect(counts).not_to_contain_text("paused", timeout=SEEN)


def test_a_frozen_daemon_turns_its_own_page_red_and_back(live: Live, page: Page) -> None:
    """SIGSTOP: the server takes the connection and never answers, so no refresh failed
    and the page kept its last rows, all fine, for a minute and more (outside-in probe).
    A refresh with no answer within 10 s now shows the "cannot reach" banner; the
    first answer after SIGCONT hides it."""
    import signal

    assert live.daemon.proc is not None
    page.goto(live.url + "/")
    lost = page.locator("#unreachable")
    expect(lost).to_be_hidden()
    live.daemon.proc.send_signal(signal.SIGSTOP)
    try:
        expect(lost).to_be_visible(timeout=40_000)  # a refresh every 5 s + 10 s unanswered
        expect(lost).to_contain_text("no answer within 10 seconds")
    finally:
        live.daemon.proc.send_signal(signal.SIGCONT)
    expect(lost).to_be_hidden(timeout=40_000)


def test_reading_and_acting_work_without_javascript(live: Live, browser: Browser) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        tab = context.new_page()
        tab.goto(live.url + "/")
        expect(tab.locator("#task-rows tr").first).to_have_attribute("data-task", "backup_db")
        before = live.service.runs("daily_report", 1)[0]["id"]
        tab.locator('tr[data-task="daily_report"]').get_by_role("button").click()
        expect(tab.locator("#feedback")).to_contain_text(TRIGGERED)
        assert tab.url.startswith(live.url + "/?done=triggered")
        wait_run_final(live, "daily_report", after=before)
    finally:
        context.close()


def test_stopping_the_daemon_turns_both_kinds_of_page_red(
    live: Live, page: Page, browser: Browser
) -> None:
    """The page the daemon served loses its server: it says so instead of showing
    stale rows. A dashboard served elsewhere on the same database (another node, or
    this process here) shows the not-running banner with the last tick."""
    page.goto(live.url + "/tasks/backup_db")
    with standalone_dashboard(live.service) as elsewhere:
        other = browser.new_page()
        try:
            other.goto(elsewhere + "/")
            expect(other.locator("#banner")).not_to_contain_text("not running")
            expect(page.locator("#unreachable")).to_be_hidden()
            live.daemon.stop()
            lost = page.locator("#unreachable")
            expect(lost).to_be_visible(timeout=SEEN)
            expect(lost).to_contain_text("This page cannot reach agentcron")
            expect(lost).to_contain_text("nothing is firing")
            banner = other.locator("#banner")
            expect(banner).to_contain_text("The scheduler is not running", timeout=SEEN)
            expect(banner).to_contain_text(re.compile(r"last tick was .* ago: nothing is firing"))
        finally:
            other.close()
