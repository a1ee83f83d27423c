"""A dashboard page asked with a query parameter it does not read (a misspelt filter,
an old bookmark) is still shown, with a note saying what was ignored, what the page
takes, and a link to the page without it: ``/?stauts=failing`` showed every task as if
that were the filter asked for, without a word. The fragments htmx polls keep
answering as before."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agentcron.clock import FakeClock
from agentcron.interfaces.dashboard import build_router
from agentcron.model import SlotStatus
from harness import Harness


def fine() -> str:
    return "all good"


def broken() -> str:
    raise RuntimeError("disk full")


@pytest.fixture
def harness(sqlite_store, clock: FakeClock, home: Path) -> Harness:
    h = Harness(sqlite_store, clock, home)
    h.add("alpha_ok", fine, cron="*/5 * * * *", retries=0)
    h.add("zeta_broken", broken, every="10m", retries=0)
    asyncio.run(h.run_until(clock.now() + timedelta(minutes=20), timedelta(minutes=5)))
    return h


@pytest.fixture
def client(harness: Harness) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.service = harness.service
    app.include_router(build_router())
    with TestClient(app) as c:
        yield c


def note(page: str) -> str | None:
    found = re.search(r'<p class="notice bad query-note"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))) if found else None


def link(page: str) -> str:
    found = re.search(r'class="notice bad query-note".*?<a href="([^"]*)">', page, re.S)
    assert found is not None
    return html.unescape(found.group(1))


def test_a_misspelt_filter_is_named_with_what_the_list_takes(client: TestClient) -> None:
    page = client.get("/?stauts=failing")
    assert page.status_code == 200
    said = note(page.text)
    assert said is not None
    assert "'stauts' is not a parameter of this page and was ignored" in said
    assert "the list below is not filtered by it" in said
    assert "It takes q (the text to find), show (one of all, problems, paused) and page" in said
    assert "Did you mean show? show=problems lists the tasks needing attention." in said
    assert "Open this page without it." in said
    # the page is still the whole list, as before
    assert 'data-task="alpha_ok"' in page.text and 'data-task="zeta_broken"' in page.text


def test_the_link_keeps_the_parameters_the_page_reads(client: TestClient) -> None:
    page = client.get("/?q=alpha&bogus=1&show=all&extra=2")
    said = note(page.text)
    assert said is not None and "'bogus' and 'extra' are not parameters" in said
    assert "were ignored: the list below is not filtered by them" in said
    assert link(page.text) == "?q=alpha&show=all"
    assert note(client.get("/" + link(page.text)).text) is None


def test_every_page_says_so_and_a_clean_address_says_nothing(
    client: TestClient, harness: Harness
) -> None:
    run = next(s for s in harness.slots("alpha_ok") if s.status is SlotStatus.SUCCEEDED)
    for path in ("/", "/tasks/alpha_ok", f"/runs/{run.id}", "/incidents"):
        assert client.get(path).status_code == 200
        assert note(client.get(path).text) is None, path
        page = client.get(f"{path}?bogus=1")
        assert page.status_code == 200, path
        said = note(page.text)
        assert said is not None and "'bogus' is not a parameter of this page" in said, path
    assert "It takes none." in (note(client.get("/tasks/alpha_ok?bogus=1").text) or "")


def test_the_status_lines_own_parameters_are_not_refused(client: TestClient) -> None:
    for path in ("/", "/tasks/alpha_ok", "/incidents"):
        page = client.get(f"{path}?done=paused&task=alpha_ok&ref=3")
        assert page.status_code == 200
        assert note(page.text) is None, path


def test_fragments_polled_by_htmx_answer_as_before(client: TestClient) -> None:
    headers = {"HX-Request": "true"}
    for path in (
        "/fragments/tasks?q=&show=all&page=1",
        "/fragments/banner?notice=paused|0|alpha_ok&notice_text=x",
        "/fragments/tasks/alpha_ok/summary?actions=active",
        "/fragments/tasks/alpha_ok/runs",
        "/fragments/incidents",
    ):
        answer = client.get(path, headers=headers)
        assert answer.status_code == 200, path
        assert "query-note" not in answer.text, path


def test_a_name_with_markup_or_odd_bytes_is_shown_as_text(client: TestClient) -> None:
    page = client.get("/?%3Cb%3Ex%3C%2Fb%3E=1&%ED%A0%80=2&" + "k" * 300 + "=3")
    assert page.status_code == 200
    assert "<b>x</b>" not in page.text
    said = note(page.text)
    assert said is not None and "'<b>x</b>'" in said
    assert "k" * 81 not in said
