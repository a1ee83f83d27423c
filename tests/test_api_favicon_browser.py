"""In Chromium: the API's docs page loads with nothing failing, its icon included (it
logged 'Failed to load resource: 404' for /favicon.ico)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dashboard_live import live_dashboard, need_browser

need_browser()


def test_the_docs_page_loads_without_an_error_in_the_console(page: Any, tmp_path: Path) -> None:
    with live_dashboard(tmp_path) as live:
        errors: list[str] = []
        failed: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
        page.goto(f"{live.url}/api/v1/docs")
        page.wait_for_load_state("networkidle")
        assert page.title() == "agentcron API"
        assert errors == [] and failed == []  # no "Failed to load resource: … 404"
        icon = page.evaluate(
            "fetch(document.querySelector('link[rel=icon]').href)"
            ".then(r => r.status + ' ' + r.headers.get('content-type'))"
        )
        assert icon == "200 image/vnd.microsoft.icon"
        page.goto(f"{live.url}/")
        page.wait_for_load_state("networkidle")
        assert errors == [] and failed == []
