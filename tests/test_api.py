"""The HTTP API in process: a real store, runs made by the real engine on a fake
clock, FastAPI's test client. Every endpoint answers with the CLI's JSON shapes,
every bad input with a problem (400/404/409/422) that names the field, and every
change is in the audit trail with who made it and through what."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentcron.clock import FakeClock
from agentcron.interfaces.api.app import ApiSettings, create_app
from agentcron.model import SlotStatus
from agentcron.model.incident import Incident, IncidentKind
from agentcron.model.run import NodeInfo
from harness import Harness

BASE = "http://127.0.0.1:8765"
SECRET = "sk-proj-abcdefghijklmnopqrstuvwx"


def fine() -> str:
    return "all good"


def broken() -> str:
    raise RuntimeError("disk full")


def chatty() -> str:
    return f"line one\nkey in output: {SECRET}\nlast line"


@pytest.fixture
def harness(sqlite_store: Any, clock: FakeClock, home: Path) -> Harness:
    """alpha succeeds every 5 min, beta fails every 10 min, gamma prints a secret;
    half an hour of fake time."""
    h = Harness(sqlite_store, clock, home)
    h.add("alpha", fine, cron="*/5 * * * *", retries=0, description="the healthy one")
    h.add("beta", broken, every="10m", retries=0)
    h.add("gamma", chatty, every="15m", retries=0)
    asyncio.run(h.run_until(clock.now() + timedelta(minutes=30), timedelta(minutes=5)))
    return h


@pytest.fixture
def client(harness: Harness) -> Iterator[TestClient]:
    app = create_app(lambda: harness.service, ApiSettings(close_service=False))
    with TestClient(app, base_url=BASE) as c:
        yield c


def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail", "field", "problems", "advice"}
    assert body["status"] == status and body["type"].startswith("urn:agentcron:problem:")
    return dict(body)


def open_incident(h: Harness, task: str, kind: IncidentKind = IncidentKind.FAILURE) -> int:
    incident = Incident(task=task, kind=kind, opened_at=h.clock.now(), summary=f"{task} broke")
    (saved,) = h.store.save_incidents([incident], [], h.clock.now())
    assert saved.id is not None
    return saved.id


# ---- tasks -------------------------------------------------------------------------
def test_list_is_every_task_with_health_and_filters(client: TestClient, harness: Harness) -> None:
    harness.ticking()
    rows = client.get("/api/v1/tasks").json()
    assert [r["name"] for r in rows] == ["alpha", "beta", "gamma"]
    by_name = {r["name"]: r for r in rows}
    assert by_name["alpha"]["health"] == "ok" and by_name["alpha"]["last_status"] == "succeeded"
    assert by_name["beta"]["health"] == "failing" and by_name["beta"]["last_status"] == "failed"
    failing = client.get("/api/v1/tasks", params={"health": "failing,stuck"}).json()
    assert [r["name"] for r in failing] == ["beta"]
    assert [r["name"] for r in client.get("/api/v1/tasks?text=HEALTHY").json()] == ["alpha"]
    assert client.get("/api/v1/tasks?source=file").json() == []
    assert len(client.get("/api/v1/tasks?source=api").json()) == 3
    bad = problem_of(client.get("/api/v1/tasks?health=grumpy"), 400)
    assert bad["field"] == "health" and "grumpy" in bad["detail"]
    assert problem_of(client.get("/api/v1/tasks?source=cron"), 400)["field"] == "source"


def test_get_task_has_next_runs_with_dst_notes_and_recent_runs(
    client: TestClient, harness: Harness
) -> None:
    detail = client.get("/api/v1/tasks/alpha", params={"count": 4}).json()
    assert len(detail["next"]) == 4 and detail["recent_runs"][0]["task"] == "alpha"
    assert detail["spec"]["cron"] == "*/5 * * * *"
    harness.add("story", fine, cron="30 2 * * *", timezone="Europe/Berlin")
    fires = client.get(
        "/api/v1/tasks/story/next_runs", params={"count": 2, "from": "2026-03-28T12:00"}
    ).json()
    assert fires[0]["local"] == "2026-03-29T03:00:00+02:00" and "02:30" in fires[0]["note"]
    assert fires[1]["note"] is None
    missing = problem_of(client.get("/api/v1/tasks/alpah"), 404)
    assert "did you mean 'alpha'" in missing["detail"] and missing["field"] == "name"
    assert problem_of(client.get("/api/v1/tasks/alpha?count=0"), 400)["field"] == "count"
    assert problem_of(client.get("/api/v1/tasks/alpha?count=many"), 400)["field"] == "count"
    assert problem_of(client.get("/api/v1/tasks/story/next_runs?from=soon"), 400)["field"] == (
        "from"
    )


def test_create_validates_like_the_config_file(client: TestClient) -> None:
    made = client.post("/api/v1/tasks", json={"name": "backup", "every": "1h", "command": ["true"]})
    assert made.status_code == 201, made.text
    assert made.headers["location"] == "/api/v1/tasks/backup"
    assert made.json()["source"] == "api" and made.json()["schedule"] == "every 1 hour"
    again = problem_of(
        client.post("/api/v1/tasks", json={"name": "backup", "every": "1h", "command": ["true"]}),
        409,
    )
    assert "already exists" in again["detail"]
    bad = problem_of(
        client.post("/api/v1/tasks", json={"name": "bad", "cron": "61 * * * *", "command": "x"}),
        422,
    )
    assert bad["field"] == "cron"
    assert bad["problems"][0]["location"] == "tasks.bad.cron" and "61" in bad["detail"]
    two = problem_of(
        client.post(
            "/api/v1/tasks",
            json={"name": "bad", "every": "5x", "timezone": "Mars/Base", "command": "x"},
        ),
        422,
    )
    assert {p["location"] for p in two["problems"]} == {"tasks.bad.every", "tasks.bad.timezone"}
    assert problem_of(client.post("/api/v1/tasks", json={"every": "1h"}), 422)["field"] == "name"
    assert "JSON object" in problem_of(client.post("/api/v1/tasks", json=[1, 2]), 400)["detail"]
    raw = client.post(
        "/api/v1/tasks", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert "not valid JSON" in problem_of(raw, 400)["detail"]
    deep = client.post(  # nested past the JSON reader's depth: said in the same words
        "/api/v1/tasks", content=b"[" * 100_000, headers={"content-type": "application/json"}
    )
    deep_problem = problem_of(deep, 400)
    assert deep_problem["type"] == "urn:agentcron:problem:bad-request", deep_problem
    assert "not valid JSON" in deep_problem["detail"], deep_problem
    assert "bad" not in {r["name"] for r in client.get("/api/v1/tasks").json()}


def test_patch_changes_only_what_it_names_and_checks_the_whole(
    client: TestClient, harness: Harness
) -> None:
    client.post("/api/v1/tasks", json={"name": "sync", "cron": "0 3 * * *", "command": ["true"]})
    changed = client.patch("/api/v1/tasks/sync", json={"retries": 5})
    assert changed.status_code == 200, changed.text
    rec = harness.store.get_task("sync")
    assert rec is not None and rec.spec.retries == 5 and rec.spec.cron == "0 3 * * *"
    both = problem_of(client.patch("/api/v1/tasks/sync", json={"every": "30m"}), 422)
    assert "cron" in both["detail"] or "every" in both["detail"]
    moved = client.patch("/api/v1/tasks/sync", json={"cron": None, "every": "30m"}).json()
    assert moved["schedule"] == "every 30 min"
    rename = problem_of(client.patch("/api/v1/tasks/sync", json={"name": "other"}), 422)
    assert rename["field"] == "name"
    assert problem_of(client.patch("/api/v1/tasks/nope", json={"retries": 1}), 404)
    assert problem_of(client.patch("/api/v1/tasks/sync", json={"retries": -1}), 422)
    assert harness.store.get_task("sync").spec.every == timedelta(minutes=30)  # type: ignore[union-attr]


def test_file_tasks_are_changed_in_the_file(client: TestClient, harness: Harness) -> None:
    from agentcron.model import TaskSource, TaskSpec

    spec = TaskSpec(name="filed", every=timedelta(hours=1), command=["true"])
    harness.store.upsert_task(spec, TaskSource.FILE, harness.clock.now(), None)
    assert "config file" in problem_of(client.delete("/api/v1/tasks/filed"), 409)["detail"]
    assert problem_of(client.patch("/api/v1/tasks/filed", json={"retries": 1}), 409)
    assert problem_of(
        client.post("/api/v1/tasks", json={"name": "filed", "every": "1h", "command": "x"}), 409
    )


def test_delete_keeps_history(client: TestClient, harness: Harness) -> None:
    assert client.delete("/api/v1/tasks/beta").json() == {"name": "beta", "removed": True}
    assert problem_of(client.get("/api/v1/tasks/beta"), 404)
    runs = client.get("/api/v1/runs", params={"task": "beta"}).json()
    assert runs and all(r["task"] == "beta" for r in runs)
    assert problem_of(client.delete("/api/v1/tasks/beta"), 404)


def test_pause_with_reason_resume_and_trigger(client: TestClient, harness: Harness) -> None:
    paused = client.post("/api/v1/tasks/alpha/pause", json={"reason": "disk swap tonight"})
    assert paused.json()["paused"] is True
    assert paused.json()["pause_reason"] == "disk swap tonight"
    listed = {r["name"]: r for r in client.get("/api/v1/tasks").json()}
    assert listed["alpha"]["health"] == "paused"
    assert listed["alpha"]["pause_reason"] == "disk swap tonight"
    resumed = client.post("/api/v1/tasks/alpha/resume").json()
    assert resumed["paused"] is False and resumed["pause_reason"] is None and resumed["next_run"]
    assert client.post("/api/v1/tasks/beta/pause").json()["pause_reason"] is None
    too_long = problem_of(client.post("/api/v1/tasks/beta/pause", json={"reason": "x" * 501}), 422)
    assert too_long["field"] == "reason"
    assert too_long["title"] == "Invalid input"  # it was "Invalid task" (outside-in probe)
    two_lines = problem_of(client.post("/api/v1/tasks/beta/pause", json={"reason": "a\nb"}), 422)
    assert two_lines["field"] == "reason"
    run = client.post("/api/v1/tasks/alpha/trigger")
    assert run.status_code == 202
    body = run.json()
    assert body["status"] == "pending" and body["trigger"] == "manual"
    assert body["note"].startswith("the daemon")  # what becomes of it (Service.trigger_note)
    assert run.headers["location"] == f"/api/v1/runs/{body['id']}"
    slot = harness.store.get_slot(body["id"])
    assert slot is not None and slot.status is SlotStatus.PENDING  # not waited for
    assert problem_of(client.post("/api/v1/tasks/zzz/trigger"), 404)


def test_changes_are_audited_with_who_and_through_what(
    client: TestClient, harness: Harness
) -> None:
    client.post("/api/v1/tasks/alpha/pause", json={"reason": "upgrade"}, headers={"X-Actor": "ana"})
    client.post("/api/v1/tasks/alpha/resume")
    client.post("/api/v1/tasks", json={"name": "n1", "every": "1h", "command": ["true"]})
    client.patch("/api/v1/tasks/n1", json={"retries": 1})
    client.delete("/api/v1/tasks/n1")
    entries = client.get("/api/v1/audit").json()
    assert [e["action"] for e in entries] == [
        "task.delete",
        "task.update",
        "task.create",
        "task.resume",
        "task.pause",
    ]
    pause = entries[-1]
    assert pause["actor"] == "ana" and pause["via"] == "api" and pause["task"] == "alpha"
    assert pause["before"] == {"paused": False, "reason": None}
    assert pause["after"] == {"paused": True, "reason": "upgrade"}
    assert entries[0]["actor"].startswith("client ")
    update = entries[1]
    assert update["before"]["retries"] == 3 and update["after"]["retries"] == 1
    assert [e["action"] for e in client.get("/api/v1/audit?task=alpha").json()] == [
        "task.resume",
        "task.pause",
    ]
    older = client.get("/api/v1/audit", params={"before_id": entries[1]["id"], "limit": 2}).json()
    assert [e["action"] for e in older] == ["task.create", "task.resume"]
    assert problem_of(client.get("/api/v1/audit?limit=0"), 400)["field"] == "limit"


# ---- runs --------------------------------------------------------------------------
def test_runs_filter_and_page_with_a_cursor(client: TestClient, harness: Harness) -> None:
    every = client.get("/api/v1/runs", params={"limit": 1000}).json()
    assert len(every) == len(harness.store.slots(limit=1000))
    times = [(r["scheduled_for"], r["id"]) for r in every]
    assert times == sorted(times, reverse=True)
    pages: list[dict[str, Any]] = []
    response = client.get("/api/v1/runs", params={"limit": 4})
    while True:
        pages += response.json()
        cursor = response.headers.get("x-next-cursor")
        if cursor is None:
            assert "link" not in response.headers
            break
        assert 'rel="next"' in response.headers["link"]
        response = client.get("/api/v1/runs", params={"limit": 4, "cursor": cursor})
    assert [r["id"] for r in pages] == [r["id"] for r in every]
    failed = client.get("/api/v1/runs", params={"status": "failed"}).json()
    assert failed and {r["task"] for r in failed} == {"beta"}
    assert {r["status"] for r in failed} == {"failed"}
    since = client.get("/api/v1/runs", params={"since": "2026-06-01T00:20:00+00:00"}).json()
    assert since and all(r["scheduled_for"] >= "2026-06-01T00:20" for r in since)
    recent = client.get("/api/v1/runs", params={"since": "10m", "task": "alpha"}).json()
    assert [r["scheduled_for"][11:16] for r in recent] == ["00:30", "00:25", "00:20"]
    before = client.get("/api/v1/runs", params={"before": "2026-06-01T00:10:00Z"}).json()
    assert before and all(r["scheduled_for"] < "2026-06-01T00:10" for r in before)
    for params, field in [
        ({"status": "late"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"before": "soon"}, "before"),
        ({"cursor": "bm9wZQ"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
    ]:
        assert problem_of(client.get("/api/v1/runs", params=params), 400)["field"] == field
    assert problem_of(client.get("/api/v1/runs?task=nope"), 404)
    # a duration too long is said as such, not as "neither a time nor a duration"
    far = problem_of(client.get("/api/v1/runs", params={"since": "999999999d"}), 400)
    assert "is a duration, but reaches back before the year 1" in far["detail"], far


def test_a_malformed_parameter_is_a_400_naming_it_and_the_value(client: TestClient) -> None:
    """The problem says which parameter and what was sent, for paths and queries alike."""
    for path, field, value in (
        ("/api/v1/runs/abc", "run_id", "abc"),
        ("/api/v1/runs/abc/output", "run_id", "abc"),
        ("/api/v1/incidents/x1", "incident_id", "x1"),
        ("/api/v1/runs?limit=ten", "limit", "ten"),
        ("/api/v1/audit?before_id=old", "before_id", "old"),
        ("/api/v1/tasks/alpha?count=many", "count", "many"),
    ):
        body = problem_of(client.get(path), 400)
        assert body["field"] == field, path
        assert field in body["detail"] and f"(got {value!r})" in body["detail"], body
    long = problem_of(client.get("/api/v1/runs/" + "z" * 500), 400)
    assert len(long["detail"]) < 200  # the value quoted is cut


# pydantic's own words, which the API's answers never carry
PYDANTIC = ("Input should", "Field required", "Extra inputs", "String should", "unable to")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "detail"),
    [
        (
            "GET",
            "/api/v1/runs?limit=ten",
            None,
            400,
            "query parameter limit: must be a whole number (got 'ten')",
        ),
        ("GET", "/api/v1/runs/0", None, 400, "path parameter run_id: must be 1 or more (got '0')"),
        (
            "GET",
            "/api/v1/runs/1?output=maybe",
            None,
            400,
            "query parameter output: must be true or false (got 'maybe')",
        ),
        (
            "GET",
            "/api/v1/incidents?open=perhaps",
            None,
            400,
            "query parameter open: must be true or false (got 'perhaps')",
        ),
        (
            "POST",
            "/api/v1/prune?dry_run=please",
            None,
            400,
            "query parameter dry_run: must be true or false (got 'please')",
        ),
        (
            "GET",
            "/api/v1/audit?before_id=0",
            None,
            400,
            "query parameter before_id: must be 1 or more (got '0')",
        ),
        (
            "GET",
            "/api/v1/tasks/alpha/next_runs?from=yesterday",
            None,
            400,
            "query parameter from: must be an ISO time such as 2026-10-25T00:00 or "
            "2026-10-25T00:00+02:00 (got 'yesterday')",
        ),
        ("POST", "/api/v1/tasks", "{}", 422, "body key name: is missing; it is required"),
        (
            "POST",
            "/api/v1/tasks",
            '{"name": 5, "every": "5m"}',
            422,
            "body key name: must be text (got a number)",
        ),
        (
            "POST",
            "/api/v1/tasks/alpha/pause",
            '{"reason": 5}',
            422,
            "body key reason: must be text (got a number)",
        ),
        (
            "POST",
            "/api/v1/tasks/alpha/pause",
            '{"why": "disk"}',
            422,
            "body key why: not a key of this body; it takes reason",
        ),
        (
            "POST",
            "/api/v1/tasks/alpha/pause",
            '{"reason": "' + "x" * 501 + '"}',
            422,
            "body key reason: must be at most 500 characters (got 501 characters)",
        ),
    ],
)
def test_a_bad_parameter_or_body_key_is_said_in_plain_words_and_changes_nothing(
    client: TestClient, method: str, path: str, body: str | None, status: int, detail: str
) -> None:
    """Outside-in probe: these answers carried pydantic's text ("query parameter limit:
    Input should be a valid integer, unable to parse string as an integer", "body
    parameter name: Field required", "body parameter why: Extra inputs are not
    permitted"). They say what is wrong and where, as every other refusal of the API
    does; a body's value is described, never quoted (it may hold a secret)."""
    before = client.get("/api/v1/tasks").json()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    answer = problem_of(client.request(method, path, content=body, headers=headers), status)
    assert answer["detail"] == detail, answer
    assert not any(words in str(answer) for words in PYDANTIC), answer
    field = detail.split(":")[0].rsplit(" ", 1)[-1]
    assert answer["field"] == field
    if status == 422:  # each key at fault listed, as a rejected task's rules are
        assert answer["problems"] == [{"location": field, "message": detail.split(": ", 1)[1]}]
    assert client.get("/api/v1/tasks").json() == before


def test_a_page_number_or_other_unknown_parameter_is_refused_by_name(
    client: TestClient,
) -> None:
    """?page=99999 answered with the first page (the parameter was ignored), as did
    ?page=-1 and a misspelt filter (?tsk=alpha: every task's runs). The API pages with
    cursors; a parameter a route does not take is a 400 that names it."""
    for page in ("99999", "-1", "abc"):
        body = problem_of(client.get("/api/v1/runs", params={"page": page}), 400)
        assert body["field"] == "page"
        assert body["detail"].startswith("page: not a parameter of GET /api/v1/runs;")
        assert "pages with cursors" in body["detail"] and "X-Next-Cursor" in body["detail"]
    typo = problem_of(client.get("/api/v1/runs", params={"tsk": "alpha"}), 400)
    assert typo["field"] == "tsk"
    assert "it takes before, cursor, limit, since, status, task" in typo["detail"]
    audit = problem_of(client.get("/api/v1/audit", params={"offset": "50"}), 400)
    assert "before_id" in audit["detail"]
    tasks = problem_of(client.get("/api/v1/tasks", params={"page": "2"}), 400)
    assert "not paged" in tasks["detail"]
    problem_of(client.get("/api/v1/health", params={"verbose": "1"}), 400)
    # the parameters a route takes still work, together
    assert client.get("/api/v1/runs", params={"task": "alpha", "limit": 2}).status_code == 200
    assert client.get("/api/v1/runs/1", params={"output": "false"}).status_code == 200


def test_a_task_name_with_an_encoded_slash_is_a_404_naming_it(client: TestClient) -> None:
    """Task names cannot hold '/' (model.task.TASK_NAME); /tasks/a%2Fb arrives as
    /tasks/a/b and answered "no such endpoint: /api/v1/tasks/a/b"."""
    for method, path in (
        ("GET", "/api/v1/tasks/a%2Fb"),
        ("PATCH", "/api/v1/tasks/a%2Fb"),
        ("DELETE", "/api/v1/tasks/a%2Fb"),
        ("GET", "/api/v1/tasks/a%2fb/next_runs"),
        ("POST", "/api/v1/tasks/a%2Fb/pause"),
        ("DELETE", "/api/v1/tasks/a%2Fpause"),  # /tasks/a/pause: a POST route's path
    ):
        body = problem_of(client.request(method, path), 404)
        assert body["field"] == "name", (method, path)
        assert body["detail"].startswith("no task named 'a/"), body
        assert "a task name cannot contain '/'" in body["detail"]
    problem_of(client.get("/api/v1/runs", params={"task": "a/b"}), 404)
    # a filter names its own parameter (it said "name", which these routes do not take)
    for path in ("/api/v1/runs", "/api/v1/audit", "/api/v1/incidents"):
        body = problem_of(client.get(path, params={"task": "alpah"}), 404)
        assert body["field"] == "task", (path, body)
        assert "did you mean 'alpha'" in body["detail"], (path, body)
    refused = problem_of(client.post("/api/v1/tasks", json={"name": "a/b", "every": "5m"}), 422)
    assert "name" in str(refused["problems"]) + refused["detail"]
    # a wrong endpoint is still one
    assert "no such endpoint" in problem_of(client.get("/api/v1/tasks/a/b"), 404)["detail"]


def test_run_detail_has_every_attempt_and_the_output(client: TestClient, harness: Harness) -> None:
    failed = client.get("/api/v1/runs", params={"status": "failed", "limit": 1}).json()[0]
    detail = client.get(f"/api/v1/runs/{failed['id']}").json()
    (attempt,) = detail["attempts_detail"]
    assert attempt["error_class"] == "code_error" and "disk full" in attempt["error"]
    assert attempt["explanation"] and attempt["duration_s"] is not None
    assert detail["deliveries"] == [] and detail["delivery_status"] == "none"
    lean = client.get(f"/api/v1/runs/{failed['id']}", params={"output": False}).json()
    assert lean["output"] is None
    assert problem_of(client.get("/api/v1/runs/999999"), 404)["field"] == "run_id"
    assert problem_of(client.get("/api/v1/runs/abc"), 400)["field"] == "run_id"
    assert problem_of(client.get("/api/v1/runs/0"), 400)
    assert problem_of(client.get(f"/api/v1/runs/{2**70}"), 400)


def test_output_is_streamed_whole_and_redacted(client: TestClient, harness: Harness) -> None:
    gamma = client.get("/api/v1/runs", params={"task": "gamma", "limit": 1}).json()[0]
    detail = client.get(f"/api/v1/runs/{gamma['id']}").json()
    assert SECRET not in detail["output"] and "[REDACTED]" in detail["output"]
    streamed = client.get(f"/api/v1/runs/{gamma['id']}/output")
    assert streamed.headers["x-content-type-options"] == "nosniff"
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/plain")
    assert streamed.text.startswith("line one") and streamed.text.endswith("last line")
    assert SECRET not in streamed.text and "[REDACTED]" in streamed.text
    pending = client.post("/api/v1/tasks/alpha/trigger").json()
    assert (
        "no kept output"
        in problem_of(client.get(f"/api/v1/runs/{pending['id']}/output"), 404)["detail"]
    )


def test_a_secret_cut_by_a_read_boundary_is_still_redacted(
    client: TestClient, harness: Harness
) -> None:
    """The stream reads 64 KiB at a time: a key that straddles two reads is found."""
    from agentcron._service import history

    gamma = client.get("/api/v1/runs", params={"task": "gamma", "limit": 1}).json()[0]
    path = Path(gamma["output_path"])
    filler = "x" * (history._STREAM_CHUNK - 10)
    path.write_text(f"{filler}\n{SECRET}\n" + "tail\n" * 10)
    text = client.get(f"/api/v1/runs/{gamma['id']}/output").text
    assert SECRET not in text and text.count("[REDACTED]") == 1 and text.endswith("tail\n")
    assert len(text) == len(filler) + 1 + len("[REDACTED]") + 1 + 50


# ---- incidents and health --------------------------------------------------------------
def test_incidents_open_first_get_and_acknowledge(client: TestClient, harness: Harness) -> None:
    first = open_incident(harness, "beta")
    harness.clock.advance(timedelta(minutes=1))
    closed = open_incident(harness, "alpha", IncidentKind.OVERDUE)
    record = harness.store.get_incident(closed)
    assert record is not None
    from dataclasses import replace

    harness.store.save_incidents(
        [replace(record, closed_at=harness.clock.now())], [], record.opened_at
    )
    rows = client.get("/api/v1/incidents").json()
    assert [(r["id"], r["open"]) for r in rows] == [(first, True), (closed, False)]
    assert [r["id"] for r in client.get("/api/v1/incidents?open=true").json()] == [first]
    assert [r["id"] for r in client.get("/api/v1/incidents?kind=overdue").json()] == [closed]
    assert client.get("/api/v1/incidents?task=alpha").json()[0]["id"] == closed
    assert problem_of(client.get("/api/v1/incidents?kind=weird"), 400)["field"] == "kind"
    one = client.get(f"/api/v1/incidents/{first}").json()
    assert one["summary"] == "beta broke" and one["acknowledged_at"] is None
    acked = client.post(
        f"/api/v1/incidents/{first}/acknowledge", headers={"X-Actor": "on-call bob"}
    ).json()
    assert acked["acknowledged_by"] == "on-call bob" and acked["acknowledged_at"]
    again = client.post(f"/api/v1/incidents/{first}/acknowledge").json()
    assert again["acknowledged_by"] == "on-call bob"  # the first acknowledgement stays
    assert problem_of(client.post(f"/api/v1/incidents/{closed}/acknowledge"), 409)
    assert problem_of(client.get("/api/v1/incidents/424242"), 404)["field"] == "incident_id"
    audit = client.get("/api/v1/audit?task=beta").json()
    assert [e["action"] for e in audit] == ["incident.acknowledge"]


def test_health_tells_liveness_and_the_last_tick_apart(
    client: TestClient, harness: Harness
) -> None:
    import os

    from agentcron.home import hostname

    down = client.get("/api/v1/health").json()
    assert down["alive"] is False and down["scheduling"] is False
    assert "no daemon is running" in down["problem"]
    now = harness.clock.now()
    harness.store.register_node(
        NodeInfo("n1", hostname(), os.getpid(), str(harness.home), now, now)
    )
    harness.store.record_tick("n1", now)
    up = client.get("/api/v1/health").json()
    assert up["alive"] and up["scheduling"] and up["problem"] is None
    assert up["nodes"][0]["last_tick"] == now.isoformat()
    assert up["outbox"] == {"backlog": 0, "oldest_at": None, "oldest_age_s": None}
    harness.clock.advance(timedelta(minutes=3))
    harness.store.heartbeat("n1", harness.clock.now())  # the process lives, no tick
    stuck = client.get("/api/v1/health").json()
    assert stuck["alive"] and not stuck["scheduling"]
    assert "not ticking" in stuck["problem"] and "3 min" in stuck["problem"]
    assert stuck["last_tick_age_s"] == 180.0


def test_unknown_paths_and_methods_are_problems_too(client: TestClient) -> None:
    assert problem_of(client.get("/api/v1/nothing"), 404)["type"].endswith("not-found")
    assert problem_of(client.put("/api/v1/tasks/alpha", json={}), 405)


def test_schema_docs_and_openapi(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/tasks/{name}/trigger" in spec["paths"]
    assert "/api/v1/runs/{run_id}/output" in spec["paths"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and "/api/v1/incidents/{incident_id}/acknowledge" in docs.text
    assert "<script" not in docs.text
    assert client.get("/api/v1/schema").json()["title"] == "agentcron.yaml"


def test_prune_counts_or_removes(client: TestClient) -> None:
    report = client.post("/api/v1/prune", params={"dry_run": True}).json()
    assert report["dry_run"] is True and report["slots"] == 0


def test_notify_test_without_channels_says_so(client: TestClient) -> None:
    assert "no channels" in problem_of(client.post("/api/v1/notify/test"), 400)["detail"]


def test_an_unreadable_kept_output_is_logged_not_passed_over(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A run's kept file that exists but cannot be read is not "no output": the run is
    still shown (without it) and the log names the file and the cause."""
    import os

    if os.geteuid() == 0:  # root reads a 0000 file anyway: make reading fail otherwise
        slot = next(s for s in harness.slots("gamma") if s.output_path)
        path = Path(slot.output_path or "")
        path.unlink()
        path.mkdir()  # a folder where the file was: open() fails with IsADirectoryError
    else:
        slot = next(s for s in harness.slots("gamma") if s.output_path)
        path = Path(slot.output_path or "")
        path.chmod(0)
    with caplog.at_level("WARNING", logger="agentcron.service"):
        view = harness.service.run_detail(slot.id)
    assert view["output"] is None
    assert f"cannot read the kept output {path}" in caplog.text, caplog.text


def test_a_failing_task_paused_says_it_still_fails(client: TestClient, harness: Harness) -> None:
    """Outside-in probe: pausing a failing task hid its open failure from every word
    of the list (health `paused`, detail `paused`) while `incidents` still had it."""
    from rich.console import Console

    from agentcron.interfaces import render
    from agentcron.model import ErrorClass
    from agentcron.model.incident import Incident, IncidentKind

    harness.ticking()
    now = harness.clock.now()
    failing = Incident(
        task="beta",
        kind=IncidentKind.FAILURE,
        opened_at=now,
        summary="boom",
        last_error_class=ErrorClass.AUTH,
    )
    harness.store.save_incidents([failing], [], now)  # as the notifier opens it
    assert client.post("/api/v1/tasks/beta/pause", json={"reason": "fixing it"}).status_code == 200
    row = next(r for r in client.get("/api/v1/tasks").json() if r["name"] == "beta")
    assert row["health"] == "paused"
    assert row["health_detail"].startswith("paused while failing: "), row["health_detail"]
    alpha = next(r for r in client.get("/api/v1/tasks").json() if r["name"] == "alpha")
    client.post("/api/v1/tasks/alpha/pause")
    alpha = next(r for r in client.get("/api/v1/tasks").json() if r["name"] == "alpha")
    assert alpha["health_detail"] == "paused"  # nothing failing: just paused
    console = Console(width=300, record=True)
    render.tasks_table(console, [row])
    assert "paused: fixing it; while failing: " in console.export_text()


def test_a_database_outage_is_a_503_that_says_what_a_client_can_do(
    sqlite_store: Any, clock: FakeClock, home: Path
) -> None:
    """The 503 said "(`agentcron doctor` says more)": a command on the daemon's machine,
    told to an HTTP client. GET /api/v1/health reads the same database (it answers this
    503 too); /metrics keeps answering and counts these, so the answer names it."""
    from agentcron.service import Service
    from faulty_store import FaultyStore, io_error

    store = FaultyStore(sqlite_store)
    service = Service(store, home, clock)
    app = create_app(lambda: service, ApiSettings(close_service=False))
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        store.fail("nodes", "live_counts", error=io_error)
        for path in ("/api/v1/tasks", "/api/v1/health"):
            answer = c.get(path)
            body = problem_of(answer, 503)
            assert answer.headers["Retry-After"] == "5"
            assert body["detail"] == (
                "the database could not be read or written just now; try again in a few "
                "seconds (Retry-After). The daemon's log names the error; GET /metrics still "
                'answers and counts these in agentcron_database_errors_total{part="api"}'
            )
            assert "agentcron doctor" not in body["detail"] and "`" not in body["detail"]
        metrics = c.get("/metrics")
        assert metrics.status_code == 200
        assert 'agentcron_database_errors_total{part="api"} 2.0' in metrics.text


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("retries", True, "a whole number"),
        ("retries", "3", "a whole number"),
        ("paused", "yes", "true or false"),
        ("shell", 1, "true or false"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_not_converted(
    client: TestClient, harness: Harness, key: str, value: Any, words: str
) -> None:
    """Outside-in probe: `"retries": true` was stored as 1, `"3"` as 3 and `"paused":
    "yes"` as true, without a word, where docs/api.md promises 422 for a key of the
    wrong type; `agentcron validate` let them through in a file too."""
    body = {"name": "typed", "every": "1h", "command": ["true"], key: value}
    refused = problem_of(client.post("/api/v1/tasks", json=body), 422)
    assert refused["problems"][0]["location"] == f"tasks.typed.{key}", refused
    assert words in refused["detail"], refused
    assert client.get("/api/v1/tasks/typed").status_code == 404  # nothing recorded
    before = harness.service.show_task("alpha")
    patched = client.patch("/api/v1/tasks/alpha", json={key: value})
    assert patched.status_code == 422, patched.text
    assert harness.service.show_task("alpha") == before


def test_a_bad_task_name_is_refused_at_the_name_key_and_quoted_short(client: TestClient) -> None:
    """Outside-in probe: a name with a '/' or a space had no `field`, and a name of
    5,000 characters was echoed whole, in `detail` and in `problems`."""
    odd = problem_of(
        client.post("/api/v1/tasks", json={"name": "a/b c", "every": "1h", "command": ["x"]}),
        422,
    )
    assert odd["field"] == "name" and odd["problems"][0]["location"] == "name", odd
    assert "invalid task name 'a/b c'" in odd["detail"], odd
    long = problem_of(
        client.post("/api/v1/tasks", json={"name": "n" * 5000, "every": "1h", "command": ["x"]}),
        422,
    )
    assert long["field"] == "name" and "(got 5000 characters)" in long["detail"], long
    assert "n" * 61 not in str(long), long


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"command": "echo hi"}, "command"),  # a string without shell: a rule of the task
        ({"command": ["echo", "a\ud800"]}, "command"),  # a lone surrogate in its list
        ({"at": "2020-01-01T00:00", "command": ["true"]}, "at"),  # a one-shot in the past
    ],
)
def test_a_rule_of_the_whole_task_names_the_key_it_is_about(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    """Outside-in probe: these said `"field": null` (and the past one-shot had no
    `problems`), though each is about one key."""
    body = {"name": "keyed", **({} if "at" in body else {"every": "1h"}), **body}
    sent = json.dumps(body)  # escapes the lone surrogate as JSON does
    answer = client.post(
        "/api/v1/tasks", content=sent, headers={"content-type": "application/json"}
    )
    refused = problem_of(answer, 422)
    assert refused["field"] == field, refused
    assert refused["problems"], refused
    assert client.get("/api/v1/tasks/keyed").status_code == 404
