"""Take the dashboard screenshots in this folder: a real daemon with a few command
tasks (one failing, one skipping, one with varied durations), its dashboard, and
Debian's Chromium through Playwright.

    .venv/bin/python docs/screenshots/make.py

Needs the ``test`` extra and /usr/bin/chromium (never a downloaded browser). Takes
about half a minute; overwrites tasks.png, task.png, run.png, incidents.png and
phone.png.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))

from dashboard_live import (  # noqa: E402
    CHROMIUM,
    NEVER,
    Live,
    chromium_missing,
    live_dashboard,
    wait_run_final,
)

# A second of work that varies from run to run, so the sparkline has a shape.
VARIED = "sleep $(awk -v s=$$ 'BEGIN{srand(s); print 0.2 + rand()}')"
SKIP = '{"run": false, "reason": "no new mail since the last digest"}'
CONFIG = f"""\
timezone: Europe/Berlin
tasks:
  backup_db:
    cron: "0 3 * * *"
    command: ["sh", "-c", "echo 'pg_dump: connection to server on socket failed' >&2; exit 3"]
    retries: 0
  daily_report:
    cron: "0 9 * * 1-5"
    command: ["sh", "-c", "{VARIED}; echo 'report: 42 new signups, 3 churned'; echo 'sent'"]
    retries: 0
  inbox_digest:
    cron: "*/30 8-18 * * *"
    precheck: ["echo", '{SKIP}']
    command: ["echo", "digest"]
    retries: 0
  nightly_sync:
    cron: "30 2 * * *"
    command: ["echo", "synced"]
    retries: 0
  weekly_cleanup:
    cron: {NEVER}
    command: ["true"]
    retries: 0
"""


def populate(live: Live) -> int:
    """Runs to show; returns the id of a failed run of backup_db."""
    service = live.service
    last = 0
    for _ in range(8):
        service.trigger("daily_report")
        last = wait_run_final(live, "daily_report", after=last)
    service.trigger("inbox_digest")
    wait_run_final(live, "inbox_digest")
    service.trigger("nightly_sync")
    wait_run_final(live, "nightly_sync")
    failed = 0
    for _ in range(2):
        service.trigger("backup_db")
        failed = wait_run_final(live, "backup_db", after=failed)
    service.pause("weekly_cleanup", "disk migration this week; resume on Monday")
    return failed


def main() -> int:
    missing = chromium_missing()
    if missing:
        print(f"cannot take screenshots: {missing}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, live_dashboard(Path(tmp), CONFIG) as live:
        failed = populate(live)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            desktop = browser.new_page(viewport={"width": 1280, "height": 760})
            shots = {
                "tasks.png": "/",
                "task.png": "/tasks/daily_report",
                "run.png": f"/runs/{failed}",
                "incidents.png": "/incidents",
            }
            for name, path in shots.items():
                desktop.goto(live.url + path)
                desktop.wait_for_load_state("networkidle")
                desktop.screenshot(path=HERE / name, full_page=True)
                print(f"wrote {HERE / name}")
            phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
            phone.goto(live.url + "/")
            phone.wait_for_load_state("networkidle")
            phone.screenshot(path=HERE / "phone.png")
            print(f"wrote {HERE / 'phone.png'}")
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
