"""The app's icon: ``/favicon.ico`` is the dashboard's own (vendored, no CDN), linked
from the API's docs page and the dashboard's pages. A browser asks for it on any page
that names none, and the 404 it got was an error in the console of ``/api/v1/docs``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentcron.clock import FakeClock
from agentcron.interfaces.api.app import ApiSettings, create_app
from harness import Harness

BASE = "http://127.0.0.1:8765"
TOKEN = "correct-horse-battery-staple-42"
ICO = b"\x00\x00\x01\x00"  # an icon file's first bytes (reserved 0, type 1)


@pytest.fixture
def harness(sqlite_store: Any, clock: FakeClock, home: Path) -> Harness:
    return Harness(sqlite_store, clock, home)


def client_for(harness: Harness, **settings: Any) -> TestClient:
    app = create_app(lambda: harness.service, ApiSettings(close_service=False, **settings))
    return TestClient(app, base_url=BASE)


@pytest.mark.parametrize("dashboard", [True, False])
def test_the_favicon_is_served_and_the_docs_page_links_it(
    harness: Harness, dashboard: bool
) -> None:
    with client_for(harness, dashboard=dashboard) as client:
        icon = client.get("/favicon.ico")
        assert icon.status_code == 200
        assert icon.headers["content-type"] == "image/vnd.microsoft.icon"
        assert icon.content.startswith(ICO)
        assert "max-age" in icon.headers["cache-control"]
        docs = client.get("/api/v1/docs").text
        assert "<link rel='icon' href='/favicon.ico'>" in docs


def test_the_dashboard_links_the_same_icon(harness: Harness) -> None:
    with client_for(harness) as client:
        page = client.get("/").text
        assert '<link rel="icon" href="/static/favicon.ico">' in page
        assert client.get("/static/favicon.ico").content == client.get("/favicon.ico").content


def test_with_a_token_the_icon_needs_it_as_every_path_does(harness: Harness) -> None:
    with client_for(harness, token=TOKEN) as client:
        assert client.get("/favicon.ico").status_code == 401
        given = client.get("/favicon.ico", headers={"Authorization": f"Bearer {TOKEN}"})
        assert given.status_code == 200 and given.content.startswith(ICO)
