"""The dashboard in process: real store, real engine runs on a fake clock, FastAPI's
test client. Each page renders what the service recorded; the forms change only what
they say, only from the dashboard's own origin; everything a task wrote is escaped."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agentcron.clock import FakeClock
from agentcron.home import hostname
from agentcron.interfaces.dashboard import build_router
from agentcron.model import ErrorClass, SlotStatus
from agentcron.model.budget import Budget, BudgetScope
from agentcron.model.incident import Incident, IncidentKind
from agentcron.model.run import NewSlot, NodeInfo
from agentcron.policies.budget import budget_day
from harness import Harness

SAME = {"Origin": "http://testserver"}
HTMX = {**SAME, "HX-Request": "true"}


def fine() -> str:
    return "all good"


def broken() -> str:
    raise RuntimeError("disk <script>alert('x')</script> full")


@pytest.fixture
def harness(sqlite_store, clock: FakeClock, home: Path) -> Harness:
    """Three tasks after 30 minutes of fake time: one healthy, one failing (its error
    holds markup), one paused."""
    h = Harness(sqlite_store, clock, home)
    h.add("alpha_ok", fine, cron="*/5 * * * *", retries=0)
    h.add("zeta_broken", broken, every="10m", retries=0)
    h.add("mid_paused", fine, cron="0 2 * * 1-5", retries=0)
    h.service.pause("mid_paused")
    asyncio.run(h.run_until(clock.now() + timedelta(minutes=30), timedelta(minutes=5)))
    return h


@pytest.fixture
def client(harness: Harness) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.service = harness.service
    app.include_router(build_router())
    with TestClient(app) as c:
        yield c


def task_order(html: str) -> list[str]:
    return re.findall(r'data-task="([^"]+)"', html)


def test_every_page_renders_from_what_the_service_recorded(
    client: TestClient, harness: Harness
) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert '<html lang="en">' in page.text
    assert "every 5 minutes" in page.text  # the schedule in words beside the expression
    assert "in 5 min" in page.text  # next run of alpha_ok, counted down from the fake clock
    task = client.get("/tasks/zeta_broken")
    assert task.status_code == 200
    assert "Run history" in task.text and "Next fire times" in task.text
    failed = [s for s in harness.slots("zeta_broken") if s.status is SlotStatus.FAILED]
    assert f'href="/runs/{failed[-1].id}' in task.text
    run = client.get(f"/runs/{failed[-1].id}")
    assert run.status_code == 200
    assert "code_error" in run.text
    ok = next(s for s in harness.slots("alpha_ok") if s.status is SlotStatus.SUCCEEDED)
    output = client.get(f"/runs/{ok.id}/output")
    assert output.status_code == 200
    assert output.headers["content-type"].startswith("text/plain")
    assert "all good" in output.text
    assert client.get(f"/runs/{ok.id}").text.count("all good") == 1
    for fragment in ("/fragments/tasks", "/fragments/banner"):
        assert client.get(fragment).status_code == 200
    for part in ("runs", "summary"):
        assert client.get(f"/fragments/tasks/zeta_broken/{part}").status_code == 200
    css = client.get("/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    htmx = client.get("/static/htmx.min.js")
    assert htmx.status_code == 200 and "0BSD" in htmx.text[:300]


def test_why_a_slot_did_not_run_is_shown_in_its_row(client: TestClient, harness: Harness) -> None:
    now = harness.clock.now()
    reasons = {
        SlotStatus.SKIPPED: "precheck: no new mail since 09:00",
        SlotStatus.MISSED: "the daemon was down at the time (catch-up: latest only)",
        SlotStatus.SUPERSEDED: "a newer run replaced it (overlap: replace)",
    }
    for i, (status, reason) in enumerate(reasons.items()):
        at = now - timedelta(seconds=90 + i)
        harness.store.add_slot("alpha_ok", NewSlot(at, status, reason=reason), now)
    rows = client.get("/fragments/tasks/alpha_ok/runs").text
    for status, reason in reasons.items():
        row = re.search(rf'<tr id="run-\d+" class="s-row-{status.value}">.*?</tr>', rows, re.S)
        assert row is not None, status
        assert reason.replace("'", "&#39;") in row.group(0)


def test_unknown_things_are_404_pages_that_say_what_was_asked(client: TestClient) -> None:
    missing = client.get("/tasks/alpha_okk")
    assert missing.status_code == 404
    assert "no task named &#39;alpha_okk&#39; (did you mean &#39;alpha_ok&#39;?)" in missing.text
    assert client.get("/runs/99999").status_code == 404
    assert client.get("/static/../../etc/passwd").status_code == 404
    assert client.get("/static/secrets.yaml").status_code == 404
    assert client.get("/fragments/tasks/alpha_ok/spec").status_code == 404
    bad_page = client.get("/", params={"page": "two"})
    assert bad_page.status_code == 400
    assert "page: &#39;two&#39; is not a page number" in bad_page.text
    bad_filter = client.get("/fragments/tasks", params={"show": "broken"})
    assert bad_filter.status_code == 400
    assert "show: &#39;broken&#39; is not a filter; use one of all, problems, paused" in (
        bad_filter.text
    )


def test_a_malformed_id_is_a_400_naming_the_parameter_and_the_value(client: TestClient) -> None:
    """/runs/abc was a 404 "not found" page: the id was malformed, not missing (the API
    answers 400 for it); " 1", "1_0" and other scripts' digits were taken as ids."""
    for raw in ("abc", "0", "-1", "1_0", "%201", "\u0661", "99999999999999999999"):
        page = client.get(f"/runs/{raw}")
        assert page.status_code == 400, raw
        assert "<title>Bad request" in page.text
        assert "run_id: &#39;" in page.text and "is not an id" in page.text
    assert "run_id: &#39;abc&#39; is not an id" in client.get("/runs/abc").text
    output = client.get("/runs/abc/output")
    assert output.status_code == 400
    assert output.text.startswith("run_id: 'abc' is not an id")
    ack = client.post("/incidents/abc/ack", headers=SAME)
    assert ack.status_code == 400
    assert "incident_id: &#39;abc&#39; is not an id" in ack.text
    assert client.get("/runs/99999").status_code == 404  # well formed, not there


def test_a_page_past_the_end_is_empty_and_says_so(client: TestClient) -> None:
    """?page=99999 showed the last page marked as page 99999; now it shows no task,
    says how many pages there are and links to the last one. A page that is not a
    number is a 400 naming ``page`` ("²" passed isdigit() and int() raised: a 500)."""
    for path in ("/", "/fragments/tasks"):
        page = client.get(path, params={"page": "99999"})
        assert page.status_code == 200
        assert task_order(page.text) == []
        assert "Nothing on page 99999: the list has 1 page (3 tasks)." in page.text
        assert 'href="/?q=&amp;show=all&amp;page=1">Go to page 1</a>' in page.text
        filtered = client.get(path, params={"page": "3", "show": "paused"})
        assert "Nothing on page 3: the list (this filter) has 1 page (1 task)." in filtered.text
        none = client.get(path, params={"page": "2", "q": "no-such-task"})
        assert "Nothing on page 2: no tasks match this filter." in none.text
        for bad in ("-1", "0", "two", "\u00b2", "\u0661", ""):
            refused = client.get(path, params={"page": bad})
            assert refused.status_code == 400, bad
            assert "page: &#39;" in refused.text and "is not a page number" in refused.text
    assert len(task_order(client.get("/", params={"page": "1"}).text)) == 3


def test_a_failing_task_is_listed_first_and_the_paused_one_last(
    client: TestClient, harness: Harness
) -> None:
    harness.ticking()
    page = client.get("/")
    assert task_order(page.text) == ["zeta_broken", "alpha_ok", "mid_paused"]
    assert "1 needs attention" in page.text
    rows = client.get("/fragments/tasks").text
    assert task_order(rows) == ["zeta_broken", "alpha_ok", "mid_paused"]
    assert not rows.lstrip().startswith("<!doctype")  # a table body, not a page
    only = client.get("/", params={"show": "problems"}).text
    assert task_order(only) == ["zeta_broken"]
    found = client.get("/", params={"q": "ALPHA"}).text
    assert task_order(found) == ["alpha_ok"]


def test_the_banner_says_nothing_is_firing_until_a_daemon_is_alive(
    client: TestClient, harness: Harness
) -> None:
    never = client.get("/").text
    assert "The scheduler is not running" in never
    assert "No daemon has ever run against this database" in never
    now = harness.clock.now()
    node = NodeInfo("n1", hostname(), os.getpid(), str(harness.home), now, now)
    harness.store.register_node(node)
    harness.store.record_tick("n1", now)
    assert "The scheduler is not running" not in client.get("/").text
    harness.clock.advance(timedelta(minutes=4))  # no heartbeat and no tick since: stale
    stale = client.get("/fragments/banner").text
    assert "The daemon&#39;s last tick was 4 min ago: nothing is firing" in stale
    harness.store.stop_node("n1", harness.clock.now())
    stopped = client.get("/").text
    assert (
        "The daemon&#39;s last tick was 4 min ago: nothing is firing. It was stopped just now"
        in stopped
    )


def test_the_banners_command_is_shown_as_a_command_to_run_on_the_daemons_machine(
    client: TestClient,
) -> None:
    """The banner printed "Start one with `agentcron run`." with its backquotes, beside
    the Run now buttons: it now says where and shows the command as code."""
    banner = client.get("/fragments/banner").text
    assert (
        "Start one on its machine with the command <code>agentcron run</code> (this "
        "dashboard cannot start it)." in banner
    ), banner
    assert "`" not in banner


def running_node(harness: Harness) -> None:
    """A daemon node ``n1`` of this home, alive and just ticked."""
    now = harness.clock.now()
    harness.store.register_node(
        NodeInfo("n1", hostname(), os.getpid(), str(harness.home), now, now)
    )
    harness.store.record_tick("n1", now)


def test_the_banner_tells_a_live_daemon_whose_scheduler_stopped_ticking(
    client: TestClient, harness: Harness
) -> None:
    running_node(harness)
    harness.clock.advance(timedelta(minutes=2))
    harness.store.heartbeat("n1", harness.clock.now())  # alive, but no tick for 2 min
    text = client.get("/fragments/banner").text
    assert "A daemon is running but its scheduler&#39;s last tick was 2 min ago" in text
    harness.store.record_tick("n1", harness.clock.now())
    assert "not running" not in client.get("/fragments/banner").text


def test_every_page_says_when_a_running_daemon_does_not_run_its_config_as_written(
    client: TestClient, harness: Harness
) -> None:
    running_node(harness)
    assert "not running as written" not in client.get("/").text
    harness.store.set_config_note("n1", "`api:` changed since it started")
    for page in ("/", "/fragments/banner"):
        text = client.get(page).text
        assert "The config file is not running as written" in text
        assert "The daemon n1: `api:` changed since it started." in text
    assert "The scheduler is not running" not in text  # it is running: no red banner
    harness.store.set_config_note("n1", None)
    assert "not running as written" not in client.get("/fragments/banner").text


def test_every_page_says_when_a_notify_channel_fails(client: TestClient, harness: Harness) -> None:
    """A failing channel was shown nowhere on the dashboard, and the incidents page said
    each problem had been told (outside-in probe): while it fails, problems do not
    reach the owner through it, so every page says so."""
    from agentcron.model import Message

    store, now = harness.store, harness.clock.now()
    message = Message(
        title="t", body="b", task="", event="opened", incident_kind="", severity="info"
    )
    store.enqueue("json://hook", "json://hook", message, now)
    assert "notification channel fails" not in client.get("/").text
    [item] = store.claim_outbox("n1", now, now + timedelta(minutes=1), 10)
    store.mark_failed(item.id, "connection refused", now + timedelta(seconds=30), False, now)
    for page in ("/", "/incidents", "/fragments/banner"):
        text = client.get(page).text
        assert "A notification channel fails" in text, page
        assert "json://hook has failed since" in text and "(connection refused)" in text
        assert "1 message(s) wait and are retried." in text
    [item] = store.claim_outbox("n1", now + timedelta(minutes=1), now + timedelta(minutes=2), 10)
    store.mark_sent(item.id, now + timedelta(minutes=1))
    assert "notification channel fails" not in client.get("/fragments/banner").text


def test_run_now_without_javascript_queues_a_run_and_says_so(
    client: TestClient, harness: Harness
) -> None:
    before = len(harness.slots("alpha_ok"))
    answer = client.post(
        "/tasks/alpha_ok/run", data={"back": "list"}, headers=SAME, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/?done=triggered&task=alpha_ok&ref=")
    slots = harness.slots("alpha_ok")
    assert len(slots) == before + 1
    manual = next(s for s in slots if s.trigger == "manual")
    page = client.get(answer.headers["location"]).text
    assert f"Run #{manual.id} of &#39;alpha_ok&#39; is queued" in page


def test_run_now_with_htmx_answers_a_fragment_and_refreshes_the_tables(
    client: TestClient, harness: Harness
) -> None:
    answer = client.post("/tasks/zeta_broken/run", data={"back": "task"}, headers=HTMX)
    assert answer.status_code == 200
    assert answer.headers["HX-Trigger"] == "agentcron-refresh"
    assert "is queued" in answer.text and 'class="notice ok"' in answer.text
    assert 'id="task-actions"' in answer.text and 'hx-swap-oob="true"' in answer.text
    assert any(s.trigger == "manual" for s in harness.slots("zeta_broken"))


def test_pause_and_resume_change_the_task_and_the_page_says_so(
    client: TestClient, harness: Harness
) -> None:
    paused = client.post("/tasks/alpha_ok/pause", headers=SAME, follow_redirects=False)
    assert paused.status_code == 303
    assert harness.store.get_task("alpha_ok").paused  # type: ignore[union-attr]
    page = client.get(paused.headers["location"]).text
    assert "&#39;alpha_ok&#39; is paused" in page
    assert 'id="action-resume"' in page and 'id="action-pause"' not in page
    resumed = client.post("/tasks/alpha_ok/resume", headers=HTMX)
    assert resumed.status_code == 200 and "is resumed" in resumed.text
    assert not harness.store.get_task("alpha_ok").paused  # type: ignore[union-attr]
    assert 'id="action-pause"' in resumed.text  # the buttons swapped out of band


def test_a_pause_reason_is_kept_shown_and_cleared_by_resume(
    client: TestClient, harness: Harness
) -> None:
    answer = client.post(
        "/tasks/alpha_ok/pause",
        data={"reason": "  vendor API <down> until Monday  "},
        headers=SAME,
        follow_redirects=False,
    )
    assert answer.status_code == 303
    page = client.get("/tasks/alpha_ok").text
    assert 'Paused: <q class="reason">vendor API &lt;down&gt; until Monday</q>' in page
    listed = client.get("/fragments/tasks").text
    assert "vendor API &lt;down&gt; until Monday" in listed
    client.post("/tasks/alpha_ok/resume", headers=SAME)
    assert "vendor API" not in client.get("/tasks/alpha_ok").text
    (entry, *_) = harness.service.audit("alpha_ok")
    assert (entry["action"], entry["via"]) == ("task.resume", "dashboard")
    assert entry["actor"] == "client testclient"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "says"),
    [
        (b'{"reason": "vendor down"}', "application/json", 415, "'application/json', not a form"),
        (b"reason=vendor down", "text/plain", 415, "'text/plain', not a form"),
        (b"reason=vendor down", "", 415, "'no Content-Type', not a form"),
        (b"reason=%ff%fe", "application/x-www-form-urlencoded", 400, "field 'reason' is not UTF"),
        (b"reason=\xff\xfe", "application/x-www-form-urlencoded", 400, "not percent-encoded"),
    ],
)
def test_a_pause_whose_body_is_not_a_readable_form_is_refused_and_changes_nothing(
    client: TestClient, harness: Harness, content: bytes, content_type: str, status: int, says: str
) -> None:
    """Read loosely, these paused the task with the reason dropped or garbled."""
    headers = {**SAME, "Content-Type": content_type} if content_type else SAME
    before = harness.service.audit("alpha_ok")
    answer = client.post("/tasks/alpha_ok/pause", content=content, headers=headers)
    assert answer.status_code == status
    assert "Not done: the " in answer.text and says in answer.text.replace("&#39;", "'")
    assert not harness.store.get_task("alpha_ok").paused  # type: ignore[union-attr]
    assert harness.service.audit("alpha_ok") == before
    htmx = client.post("/tasks/alpha_ok/pause", content=content, headers={**headers, **HTMX})
    assert htmx.status_code == 200 and says in htmx.text.replace("&#39;", "'")
    assert not harness.store.get_task("alpha_ok").paused  # type: ignore[union-attr]


def test_a_percent_encoded_utf8_reason_is_kept_as_written(
    client: TestClient, harness: Harness
) -> None:
    answer = client.post(
        "/tasks/alpha_ok/pause",
        content=b"reason=caf%C3%A9+%E2%9C%93&back=list",
        headers={**SAME, "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith("/?")
    assert "café ✓" in client.get("/tasks/alpha_ok").text


def test_a_reason_over_500_characters_is_refused_and_nothing_is_paused(
    client: TestClient, harness: Harness
) -> None:
    answer = client.post("/tasks/alpha_ok/pause", data={"reason": "x" * 501}, headers=SAME)
    assert answer.status_code == 400
    assert "Not paused: reason: at most 500 characters" in answer.text
    assert not harness.store.get_task("alpha_ok").paused  # type: ignore[union-attr]


def _open_incident(harness: Harness, task: str, summary: str) -> int:
    incident = Incident(
        task=task,
        kind=IncidentKind.FAILURE,
        opened_at=harness.clock.now(),
        escalated=True,
        failed_runs=3,
        summary=summary,
    )
    (saved,) = harness.store.save_incidents([incident], [], harness.clock.now())
    assert saved.id is not None
    return saved.id


def test_incident_times_are_in_the_task_zone_as_its_runs_are(
    client: TestClient, harness: Harness
) -> None:
    """An incident's "Since" was in UTC while the runs and next fires beside it were in
    the task's zone (a Paris task's incident said 00:30 UTC under runs at 02:30)."""
    harness.add("paris", fine, every="15m", retries=0, timezone="Europe/Paris")
    asyncio.run(
        harness.run_until(harness.clock.now() + timedelta(minutes=15), timedelta(minutes=5))
    )
    run = harness.slots("paris")[0]
    incident = Incident(
        task="paris",
        kind=IncidentKind.FAILURE,
        opened_at=run.scheduled_for,
        since=run.scheduled_for,
        slot_id=run.id,
        summary="paris broke",
    )
    (saved,) = harness.store.save_incidents([incident], [], harness.clock.now())
    local = run.scheduled_for.astimezone(ZoneInfo("Europe/Paris"))
    shown = local.isoformat()[:19].replace("T", " ")
    utc = run.scheduled_for.isoformat()[:19].replace("T", " ")
    assert shown != utc
    task_page = client.get("/tasks/paris").text
    row = re.search(rf'<tr id="incident-{saved.id}".*?</tr>', task_page, re.S)
    assert row is not None
    assert f'<time datetime="{local.isoformat()}">{shown}</time>' in row.group(0)
    assert "Europe/Paris" in row.group(0) and " UTC" not in row.group(0)
    assert f">{shown}</time>" in task_page.split('id="runs-title"')[-1]  # its run, same time
    incidents = client.get("/incidents").text
    assert f'<time datetime="{local.isoformat()}">{shown}</time>' in incidents
    assert client.get("/fragments/incidents").text.count(f">{shown}</time>") == 1
    # ended: opened and closed in the task's zone, named
    harness.store.save_incidents(
        [replace(saved, closed_at=harness.clock.now())], [], harness.clock.now()
    )
    closed = client.get("/incidents").text.split('id="closed-title"')[1]
    assert f">{local.isoformat()[:16].replace('T', ' ')}</time> to" in closed
    assert "Europe/Paris)" in closed and " UTC)" not in closed


def test_a_first_run_in_progress_is_shown_running_not_never_run(
    client: TestClient, harness: Harness
) -> None:
    """The list and the task's page said "never run" while the task's first run was
    queued or running: the last result is a finished run's, and there was none."""
    harness.add("fresh", fine, every="6h", retries=0)

    def last_run_cell(html: str) -> str:
        row = re.search(r'<tr id="task-\d+" class="[^"]*" data-task="fresh">.*?</tr>', html, re.S)
        assert row is not None
        cell = re.search(r'<td data-label="Last run">(.*?)</td>', row.group(0), re.S)
        assert cell is not None
        return cell.group(1)

    assert "never run" in last_run_cell(client.get("/").text)
    now = harness.clock.now()
    slot = harness.store.add_slot("fresh", NewSlot(now, trigger="manual"), now)
    assert slot is not None
    queued = last_run_cell(client.get("/").text)
    assert "never run" not in queued and "s-pending" in queued and "queued now" in queued
    harness.store.claim("a-node", now, now + timedelta(minutes=5), 1)
    harness.clock.advance(timedelta(seconds=90))
    running = last_run_cell(client.get("/fragments/tasks").text)
    assert "never run" not in running
    assert '<span class="badge s-running">running</span>' in running
    assert "started 1 min 30s ago" in running and "first run" in running
    summary = client.get("/fragments/tasks/fresh/summary").text
    last = summary.split("<dt>Last run</dt>")[1].split("</dd>")[0]
    assert "never run" not in last and "s-running" in last
    assert f'href="/runs/{slot.id}">run #{slot.id}</a>, started' in last
    assert "(1 min 30s ago)" in last and "(its first run)" in last


def test_times_of_a_task_not_in_utc_name_its_zone(client: TestClient, harness: Harness) -> None:
    """A Tokyo task's next run, runs, next fires and run page showed "2026-06-01
    09:15:00" with nothing beside it (only UTC times were named), so 09:15 in Tokyo read
    as 09:15 UTC. Each now names the zone's abbreviation at that instant, the IANA name
    on hover; IST (Kolkata's, Dublin's, Jerusalem's) gives way to the zone's name."""
    harness.add("tokyo", fine, every="15m", retries=0, timezone="Asia/Tokyo")
    harness.add("kolkata", fine, every="15m", retries=0, timezone="Asia/Kolkata")
    asyncio.run(
        harness.run_until(harness.clock.now() + timedelta(minutes=15), timedelta(minutes=5))
    )
    run = next(s for s in harness.slots("tokyo") if s.status is SlotStatus.SUCCEEDED)
    local = run.scheduled_for.astimezone(ZoneInfo("Asia/Tokyo"))
    shown = local.isoformat()[:19].replace("T", " ")
    jst = '<abbr class="tz" title="Asia/Tokyo">JST</abbr>'
    listed = re.search(r'<tr [^>]*data-task="tokyo".*?</tr>', client.get("/").text, re.S)
    assert listed is not None
    assert re.search(rf"</time> {jst} <span class=\"rel\">\(in ", listed.group(0)), listed
    assert 'title="' + shown + ' JST"' in listed.group(0)  # the last run, on hover
    page = client.get("/tasks/tokyo").text
    summary, rest = page.split('id="runs-title"')
    assert summary.count(jst) == 2, summary  # next run, last run
    history, fires = rest.split('id="next-title"')
    assert f'<time datetime="{local.isoformat()}">{shown}</time> {jst}' in history
    assert fires.count(jst) == 10 and "+09:00</span>" not in fires, fires
    runs = len(harness.slots("tokyo"))
    assert client.get("/fragments/tasks/tokyo/runs").text.count(jst) == runs
    detail = client.get(f"/runs/{run.id}").text
    assert detail.count(jst) == 4, detail  # scheduled, started, finished; the attempt
    kolkata = client.get("/tasks/kolkata").text
    assert '<span class="tz">Asia/Kolkata</span>' in kolkata and ">IST<" not in kolkata


def test_open_incidents_are_listed_with_their_messages_and_can_be_acknowledged(
    client: TestClient, harness: Harness
) -> None:
    number = _open_incident(harness, "zeta_broken", "failed 3 runs in a row: <b>disk</b> full")
    page = client.get("/incidents").text
    assert "failed 3 runs in a row: &lt;b&gt;disk&lt;/b&gt; full" in page
    assert f'id="ack-{number}"' in page
    assert "failed 3 runs in a row" in client.get("/tasks/zeta_broken").text
    refused = client.post(f"/incidents/{number}/ack", headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403
    assert harness.service.incident(number)["acknowledged_at"] is None
    answer = client.post(f"/incidents/{number}/ack", headers=SAME, follow_redirects=False)
    assert answer.status_code == 303
    assert (
        answer.headers["location"] == f"/incidents?done=acknowledged&task=zeta_broken&ref={number}"
    )
    after = client.get(answer.headers["location"]).text
    assert f"Incident #{number} of &#39;zeta_broken&#39; is acknowledged" in after
    assert "by client testclient" in after and f'id="ack-{number}"' not in after
    rows = client.get("/fragments/incidents").text
    assert "by client testclient" in rows and not rows.lstrip().startswith("<!doctype")
    missing = client.post("/incidents/99999/ack", headers=SAME)
    assert missing.status_code == 404 and "no incident with id 99999" in missing.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://testserver:8080"},
        {"Origin": "null"},
        {"Referer": "http://evil.example/page"},
        {},
    ],
    ids=["foreign-origin", "other-port", "null-origin", "foreign-referer", "no-origin"],
)
def test_a_post_from_another_origin_is_refused_and_changes_nothing(
    client: TestClient, harness: Harness, headers: dict[str, str]
) -> None:
    before = [(s.id, s.status) for s in harness.slots("alpha_ok")]
    for action in ("run", "pause"):
        answer = client.post(f"/tasks/alpha_ok/{action}", headers=headers, follow_redirects=False)
        assert answer.status_code == 403
        assert "Refused:" in answer.text
    assert [(s.id, s.status) for s in harness.slots("alpha_ok")] == before
    assert not harness.store.get_task("alpha_ok").paused  # type: ignore[union-attr]


def test_a_post_with_a_same_origin_referer_and_no_origin_is_accepted(
    client: TestClient, harness: Harness
) -> None:
    answer = client.post(
        "/tasks/alpha_ok/pause",
        headers={"Referer": "http://testserver/tasks/alpha_ok"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert harness.store.get_task("alpha_ok").paused  # type: ignore[union-attr]


def test_an_action_on_an_unknown_task_says_so_and_changes_nothing(client: TestClient) -> None:
    answer = client.post("/tasks/nope/run", headers=SAME)
    assert answer.status_code == 404 and "Not run: no task named &#39;nope&#39;" in answer.text
    with_htmx = client.post("/tasks/nope/pause", headers=HTMX)
    assert with_htmx.status_code == 200  # htmx swaps only 2xx: the error shows in place
    assert 'class="notice bad"' in with_htmx.text and "Not paused" in with_htmx.text


def test_a_notice_in_the_query_string_names_only_real_tasks(client: TestClient) -> None:
    forged = client.get("/", params={"done": "paused", "task": "Call 555-0100 now"}).text
    assert "Call 555-0100" not in forged
    free_text = client.get("/", params={"done": "anything <b>", "task": "alpha_ok"}).text
    assert "anything" not in free_text


def test_markup_from_a_task_or_a_url_is_escaped_everywhere(
    client: TestClient, harness: Harness
) -> None:
    script = "<script>alert('x')</script>"
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
    failed = next(s for s in harness.slots("zeta_broken") if s.status is SlotStatus.FAILED)
    for url in ("/tasks/zeta_broken", f"/runs/{failed.id}", "/fragments/tasks/zeta_broken/runs"):
        html = client.get(url).text
        assert script not in html, url
        assert escaped in html, url
    # a path segment cannot hold "/", so the reflected name is a tag without one
    tag = '<img src=x onerror="alert(1)">'
    tag_escaped = "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;"
    reflected = client.get(f"/tasks/{tag}")
    assert reflected.status_code == 404
    assert tag not in reflected.text and tag_escaped in reflected.text
    refused = client.post(f"/tasks/{tag}/run", headers=HTMX)
    assert tag not in refused.text and tag_escaped in refused.text


def test_a_long_list_is_paged_and_the_failing_task_leads_page_one(
    client: TestClient, harness: Harness
) -> None:
    for i in range(100):
        harness.add(f"bulk_{i:03d}", fine, cron="0 3 * * *", retries=0)
    first = client.get("/").text
    assert task_order(first)[0] == "zeta_broken"
    assert len(task_order(first)) == 100
    assert 'aria-current="page">1<' in first and "page=2" in first
    second = client.get("/", params={"page": 2}).text
    assert len(task_order(second)) == 3
    assert task_order(second)[-1] == "mid_paused"
    assert not set(task_order(first)) & set(task_order(second))
    assert task_order(client.get("/fragments/tasks", params={"page": 2}).text) == task_order(second)
    # past the end: no task (it was the last page's, shown as page 99), the count of
    # pages and a link to the last one, and the page numbers to choose from
    beyond = client.get("/", params={"page": 99}).text
    assert task_order(beyond) == []
    assert "Nothing on page 99: the list has 2 pages (103 tasks)." in beyond
    assert 'page=2">Go to the last page</a>' in beyond
    assert 'aria-current="page"' not in beyond and 'page=1">1</a>' in beyond


def test_a_task_name_with_an_encoded_slash_is_a_404_page_naming_it(harness: Harness) -> None:
    """Task names cannot hold '/': /tasks/a%2Fb arrives as /tasks/a/b, matched no route,
    and the daemon's app answered with the API's JSON "no such endpoint: /tasks/a/b"."""
    from agentcron.interfaces.api.app import ApiSettings, create_app

    app = create_app(lambda: harness.service, ApiSettings(close_service=False))
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:
        for path in ("/tasks/a%2Fb", "/tasks/alpha_ok%2fx", "/fragments/tasks/a%2Fb/summary"):
            page = c.get(path)
            assert page.status_code == 404, path
            assert page.headers["content-type"].startswith("text/html")
            assert "<title>Not found" in page.text
            assert "no task named &#39;" in page.text
            assert "a task name cannot contain &#39;/&#39;" in page.text
        assert "no task named &#39;a/b&#39;" in c.get("/tasks/a%2Fb").text
        post = c.post("/tasks/a%2Fb/pause", headers={"Origin": "http://127.0.0.1:8765"})
        assert post.status_code == 404 and "no task named &#39;a/b&#39;" in post.text
        # links to real tasks are untouched
        assert c.get("/tasks/alpha_ok").status_code == 200


def test_a_mistyped_dashboard_address_is_the_dashboards_not_found_page(harness: Harness) -> None:
    """A browser asking for a page that does not exist got the API's JSON "no such
    endpoint … see /api/v1/docs"; a client asking for JSON still gets the problem."""
    from agentcron.interfaces.api.app import ApiSettings, create_app

    app = create_app(lambda: harness.service, ApiSettings(close_service=False))
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:
        page = c.get("/incidentz", headers={"Accept": "text/html,application/xhtml+xml"})
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "<title>Not found" in page.text and "no page at /incidentz" in page.text
        api = c.get("/incidentz", headers={"Accept": "application/json"})
        assert api.status_code == 404 and api.json()["detail"].startswith("no such endpoint")
        wrong_api = c.get("/api/v1/nope", headers={"Accept": "text/html"})
        assert wrong_api.headers["content-type"].startswith("application/problem+json")


def test_an_actor_header_holding_html_is_shown_as_text_and_bounded(harness: Harness) -> None:
    """X-Actor names who acknowledged an incident on the dashboard: the guard refuses
    one holding what the audit trail would not keep as written (it dropped those
    characters without a word: "ana <b>x</b>" became "ana bx/b"; outside-in probe) or
    longer than 100 characters, and the page escapes whatever name the store holds
    (one set through the Python API is not checked)."""
    from agentcron.interfaces.api.app import ApiSettings, create_app
    from agentcron.service import Actor, acting_as

    first = _open_incident(harness, "zeta_broken", "broken")
    second = _open_incident(harness, "alpha_ok", "also broken")
    hostile = '<img src=x onerror="alert(1)">'
    app = create_app(lambda: harness.service, ApiSettings(close_service=False))
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:
        ack = f"/api/v1/incidents/{first}/acknowledge"
        refused = c.post(ack, headers={"X-Actor": hostile})
        assert refused.status_code == 400, refused.text
        assert refused.json()["field"] == "X-Actor"
        assert refused.json()["detail"].startswith("X-Actor: '<' cannot be kept")
        long = c.post(ack, headers={"X-Actor": "y" * 101})
        assert long.status_code == 400 and "101 characters; at most 100" in long.text
        [untouched] = harness.service.store.incidents("zeta_broken")
        assert untouched.acknowledged_at is None  # refused: nothing changed
        api = c.post(ack, headers={"X-Actor": "ana (on call), #ops"})
        assert api.status_code == 200, api.text
        recorded = api.json()["acknowledged_by"]
        assert recorded == "ana (on call), #ops"
        with acting_as(Actor("<script>alert('python')</script>", "cli")):
            harness.service.acknowledge(second)
        for path in ("/incidents", "/fragments/incidents", "/tasks/alpha_ok"):
            page = c.get(path).text
            assert "<img" not in page and "<script>alert" not in page, path
            assert "onerror=" not in page
        page = c.get("/incidents").text
        assert f"by {recorded}<br>" in page
        assert "by &lt;script&gt;alert(&#39;python&#39;)&lt;/script&gt;<br>" in page
        audit = [e["actor"] for e in harness.service.audit(None, 5, None)]
        assert recorded in audit  # the audit trail holds the same filtered name


def test_the_dashboard_behind_the_api_app_and_its_guard(harness: Harness) -> None:
    """As the daemon serves it: create_app includes the router behind the guard; with a
    token the browser's Basic login opens the pages and the forms still work."""
    from agentcron.interfaces.api.app import ApiSettings, create_app

    settings = ApiSettings(token="s3cret-token", close_service=False)
    app = create_app(lambda: harness.service, settings)
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:
        assert c.get("/").status_code == 401
        c.auth = ("anyone", "s3cret-token")
        page = c.get("/")
        assert page.status_code == 200 and task_order(page.text)[0] == "zeta_broken"
        assert c.get("/static/dashboard.js").status_code == 200
        paused = c.post(
            "/tasks/alpha_ok/pause",
            data={"reason": "behind the guard"},
            headers={"Origin": "http://127.0.0.1:8765", "X-Actor": "ops-alice"},
            follow_redirects=False,
        )
        assert paused.status_code == 303
        entry = harness.service.audit("alpha_ok")[0]
        assert (entry["action"], entry["actor"], entry["via"]) == (
            "task.pause",
            "ops-alice",
            "dashboard",
        )
        foreign = c.post("/tasks/alpha_ok/resume", headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        assert harness.store.get_task("alpha_ok").paused  # type: ignore[union-attr]


def test_a_task_page_shows_its_budgets_and_what_was_spent_today(
    client: TestClient, harness: Harness
) -> None:
    from agentcron.model.budget import Budget, BudgetScope

    harness.add("capped", fine, every="1h", retries=0, budget={"runs_per_day": 2})
    scope = BudgetScope("task:capped", "task capped", Budget(runs_per_day=2))
    day = harness.clock.now().date().isoformat()
    for _ in range(2):
        assert harness.store.reserve_run([scope], day) is None
    page = client.get("/tasks/capped").text
    assert "Budget today" in page
    assert re.search(r'<span class="used-up">task capped: 2/2 runs \(used up\)</span>', page)
    assert "Budget today" not in client.get("/tasks/alpha_ok").text


def test_a_removed_tasks_page_shows_its_kept_runs_not_a_404(
    client: TestClient, harness: Harness
) -> None:
    """Runs and incidents of a removed task link to its page, which was a 404 while
    its history is kept (outside-in probe)."""
    runs = harness.slots("alpha_ok")
    assert runs
    assert harness.store.remove_task("alpha_ok", harness.clock.now())
    page = client.get("/tasks/alpha_ok")
    assert page.status_code == 200, page.text
    assert "removed" in page.text and "no longer defined" in page.text
    assert f'href="/runs/{runs[-1].id}"' in page.text
    assert client.get(f"/runs/{runs[-1].id}").status_code == 200
    assert client.get("/tasks/never_was").status_code == 404


def test_a_fault_reading_a_removed_tasks_runs_is_not_answered_as_no_such_task(
    client: TestClient, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only "no task had that name" is a 404: a database that fails while the kept
    runs are read is raised to the app's handlers, not hidden behind "not found"."""
    from agentcron.store.errors import StoreError

    assert harness.store.remove_task("alpha_ok", harness.clock.now())

    def failing(*_args: object, **_kwargs: object) -> None:
        raise StoreError("database is locked")

    monkeypatch.setattr(harness.service, "runs", failing)
    with pytest.raises(StoreError, match="database is locked"):
        client.get("/tasks/alpha_ok")


def test_an_incident_of_a_home_or_a_node_is_not_a_link_to_a_task_page(
    client: TestClient, harness: Harness
) -> None:
    from agentcron.model.incident import Incident, IncidentKind

    now = harness.clock.now()
    harness.store.save_incidents(
        [Incident(task="home:box", kind=IncidentKind.STORAGE, opened_at=now, summary="a")], [], now
    )
    page = client.get("/incidents").text
    assert "home:box" in page and 'href="/tasks/home%3Abox"' not in page
    assert 'href="/tasks/home:box"' not in page


def test_a_notice_in_the_url_is_shown_only_while_the_state_bears_it_out(
    client: TestClient, harness: Harness
) -> None:
    """The notice after a form post was built from the query string alone: a reloaded or
    crafted link said "'alpha_ok' is paused" of a running task, and "Run #999 … is
    queued" of no run (outside-in probe). It is now read from the database."""
    page = client.get("/tasks/alpha_ok?done=paused").text
    assert "is paused" not in page
    page = client.get("/?done=triggered&task=alpha_ok&ref=999").text
    assert "Run #999" not in page
    scheduled = harness.slots("alpha_ok")[-1]  # a run of the schedule, not one triggered
    page = client.get(f"/?done=triggered&task=alpha_ok&ref={scheduled.id}").text
    assert f"Run #{scheduled.id}" not in page
    page = client.get("/tasks/mid_paused?done=resumed").text
    assert "is resumed" not in page  # it is paused
    # a run triggered from the page and ended since: the page says how it ended
    answer = client.post(
        "/tasks/alpha_ok/run", data={"back": "list"}, headers=SAME, follow_redirects=False
    )
    asyncio.run(harness.tick())
    page = client.get(answer.headers["location"]).text
    assert re.search(r"Run #\d+ of &#39;alpha_ok&#39; has ended: succeeded\.", page), page


def test_run_now_says_when_the_run_starts_or_why_it_will_not(
    client: TestClient, harness: Harness
) -> None:
    """The page said "it starts at the daemon's next tick" of a run queued behind one in
    progress, and of one over its budget, which is recorded skipped (outside-in probes);
    the CLI and the API say the same as the page, from one service method."""
    answer = client.post("/tasks/alpha_ok/run", data={"back": "task"}, headers=HTMX)
    assert (
        "the daemon is not running: the run starts when it does; the daemon is started on "
        "its own machine, not from this dashboard." in answer.text
    )
    harness.ticking()
    answer = client.post("/tasks/alpha_ok/run", data={"back": "task"}, headers=HTMX)
    assert "is queued; the daemon starts it within a few seconds." in answer.text
    rec = harness.store.get_task("alpha_ok")
    assert rec is not None
    budget = Budget(runs_per_day=1)
    now = harness.clock.now()
    harness.store.upsert_task(
        rec.spec.model_copy(update={"budget": budget}), rec.source, now, rec.next_fire_at
    )
    scope = BudgetScope("task:alpha_ok", "task alpha_ok", budget)
    assert harness.store.reserve_run([scope], budget_day(now, UTC)[0]) is None  # today's run
    assert harness.service.task_budget("alpha_ok")[0]["used_up"]
    answer = client.post("/tasks/alpha_ok/run", data={"back": "task"}, headers=HTMX)
    assert "but the daily budget of task alpha_ok is used up" in answer.text
    assert "recorded skipped, over budget, unless the budget is raised first" in answer.text


def test_a_failing_task_paused_stays_among_the_tasks_needing_attention(
    client: TestClient, harness: Harness
) -> None:
    now = harness.clock.now()
    harness.ticking()
    failure = Incident(
        task="zeta_broken",
        kind=IncidentKind.FAILURE,
        opened_at=now,
        escalated=True,
        failed_runs=3,
        last_error_class=ErrorClass.CODE_ERROR,
        summary="disk full",
    )
    harness.store.save_incidents([failure], [], now)
    harness.service.pause("zeta_broken", "looking into it")
    page = client.get("/").text
    assert "1 needs attention" in page
    row = page[page.index('data-task="zeta_broken"') :].split("</tr>", 1)[0]
    assert "while failing: code_error" in row, row
    problems = client.get("/fragments/tasks", params={"show": "problems"}).text
    assert task_order(problems) == ["zeta_broken"]
    summary = client.get("/fragments/tasks/zeta_broken/summary").text
    assert "while failing: code_error" in summary


def test_a_notice_is_left_out_only_for_what_is_not_there(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run, task or incident that is gone leaves the notice out; any other error of
    the service is not swallowed as "nothing to say": the page fails with it."""
    from agentcron.interfaces.dashboard._pages import notice_for
    from agentcron.service import ServiceError

    service = harness.service
    assert notice_for(service, "triggered", "alpha_ok", 999_999) is None  # no such run
    assert notice_for(service, "acknowledged", "alpha_ok", 999_999) is None
    assert notice_for(service, "paused", "no_such_task", None) is None

    def broken(run_id: int, with_output: bool = True) -> dict[str, object]:
        raise ServiceError("the database answered something unexpected")

    monkeypatch.setattr(service, "run_detail", broken)
    with pytest.raises(ServiceError, match="unexpected"):
        notice_for(service, "triggered", "alpha_ok", 1)


def test_a_runs_output_whose_delivery_gave_up_can_be_delivered_again(
    client: TestClient, harness: Harness
) -> None:
    from agentcron.model import DeliveryStatus

    harness.add("story", fine, every="1h", deliver=["json://127.0.0.1:9/deliver"])
    asyncio.run(harness.run_until(harness.clock.now() + timedelta(hours=1), timedelta(hours=1)))
    (run,) = harness.slots("story")
    (delivery,) = harness.store.deliveries(run.id)
    now = harness.clock.now()
    harness.store.update_delivery(delivery.id, DeliveryStatus.FAILED, 4, None, "HTTP 500", now)
    page = client.get(f"/runs/{run.id}").text
    assert 'id="action-redeliver"' in page
    refused = client.post(f"/runs/{run.id}/redeliver", headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403
    assert harness.store.deliveries(run.id)[0].status is DeliveryStatus.FAILED
    answer = client.post(
        f"/runs/{run.id}/redeliver", data={"back": "run"}, headers=SAME, follow_redirects=False
    )
    assert answer.status_code == 303
    where = answer.headers["location"]
    assert where == f"/runs/{run.id}?done=redelivered&task=story&ref={run.id}"
    after = client.get(where).text
    assert f"The output of run #{run.id} of &#39;story&#39; is queued to be delivered" in after
    assert 'id="action-redeliver"' not in after
    assert harness.store.deliveries(run.id)[0].status is DeliveryStatus.PENDING
    again = client.post(f"/runs/{run.id}/redeliver", headers=HTMX)
    assert again.status_code == 200  # htmx swaps the refusal into the live region
    assert "Not delivered again: run" in again.text and "is still being delivered" in again.text
    missing = client.post("/runs/99999/redeliver", headers=SAME)
    assert missing.status_code == 404 and "no run with id 99999" in missing.text
