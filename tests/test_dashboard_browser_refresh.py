"""Everything on a task's page that follows its state refreshes with it (Chromium over
the dashboard served from this process on a real SQLite store and a fake clock).

Outside-in probe: after pausing in the dashboard and `agentcron resume good` from the
CLI, the summary updated but the Actions still offered Resume and no Pause, the
"'good' is paused" line stayed, the next fire times started at a time already past,
the run history's caption counted fewer runs than its rows, and "Shown at" stood still.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from dashboard_live import need_browser, standalone_dashboard

pytestmark = pytest.mark.slow

need_browser()

from playwright.sync_api import Page, expect  # noqa: E402

from agentcron.clock import FakeClock  # noqa: E402
from harness import Harness  # noqa: E402

SEEN = 15_000  # ms: the parts poll every 5 s


def fine() -> str:
    return "ok"


@pytest.fixture
def served(sqlite_store, clock: FakeClock, home: Path) -> Iterator[tuple[str, Harness]]:
    h = Harness(sqlite_store, clock, home)
    h.add("good", fine, every="10m", retries=0)
    with standalone_dashboard(h.service) as url:
        yield url, h


def test_a_resume_made_elsewhere_refreshes_the_buttons_and_the_status_line(
    served: tuple[str, Harness], page: Page
) -> None:
    url, h = served
    page.goto(url + "/tasks/good")
    page.get_by_role("button", name="Pause").click()
    feedback = page.locator("#feedback")
    expect(feedback).to_contain_text("'good' is paused")
    expect(page.locator("#action-resume")).to_be_visible()
    expect(page.locator("#next-fires")).to_contain_text("None while the task is paused")
    h.service.resume("good")  # as `agentcron resume good` does
    expect(page.locator("#action-pause")).to_be_visible(timeout=SEEN)
    expect(page.locator("#action-resume")).to_have_count(0)
    expect(feedback).not_to_contain_text("is paused", timeout=SEEN)
    expect(page.locator("#next-fires tbody tr")).to_have_count(10, timeout=SEEN)


def test_a_reason_being_typed_is_kept_while_the_page_refreshes(
    served: tuple[str, Harness], page: Page
) -> None:
    url, _ = served
    page.goto(url + "/tasks/good")
    reason = page.get_by_label("Reason")
    reason.fill("half typed")
    page.wait_for_timeout(6_000)  # a poll of the summary and the banner
    expect(reason).to_have_value("half typed")


def test_next_fire_times_and_shown_at_move_with_the_clock(
    served: tuple[str, Harness], page: Page, clock: FakeClock
) -> None:
    url, _ = served
    page.goto(url + "/tasks/good")
    first = page.locator("#next-fires tbody tr").first.locator("time")
    before = first.get_attribute("datetime")
    shown = page.locator("footer time")
    shown_before = shown.get_attribute("datetime")
    clock.advance(timedelta(minutes=25))  # past the first two fires
    expect(first).not_to_have_attribute("datetime", before or "", timeout=SEEN)
    expect(shown).not_to_have_attribute("datetime", shown_before or "", timeout=SEEN)
    assert (first.get_attribute("datetime") or "") > clock.now().isoformat()[:19]


def test_the_run_history_caption_never_counts_other_rows_than_shown(
    served: tuple[str, Harness], page: Page
) -> None:
    url, h = served
    page.goto(url + "/tasks/good")
    h.service.trigger("good")
    expect(page.locator("#run-rows tr")).to_have_count(1, timeout=SEEN)
    caption = page.locator("table.runs caption")
    expect(caption).not_to_contain_text(re.compile(r"The last \d+ runs"))
