"""A pause or resume that asks for what already is changes nothing (outside-in probe).

Before, pausing a paused task again with the same reason wrote an audit entry whose
before and after were the same; resuming a task that was not paused planned it from
now, so a task with fires still to catch up (its daemon down) lost them without a word.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from agentcron.clock import FakeClock
from agentcron.model import TaskSource, TaskSpec
from agentcron.service import Service
from agentcron.store.base import Store


def test_pausing_again_with_the_same_reason_changes_and_audits_nothing(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    service = Service(sqlite_store, home, clock)
    service.add_task("t", {"every": "1h", "command": ["true"]})
    service.pause("t", "vendor down")
    audited = service.audit("t")
    again = service.pause("t", "  vendor down ")
    assert again["paused"] and service.audit("t") == audited
    service.pause("t", "vendor down until Monday")  # a new reason is a change
    (latest, *_) = service.audit("t")
    assert latest["action"] == "task.pause"
    assert latest["before"] == {"paused": True, "reason": "vendor down"}
    assert latest["after"] == {"paused": True, "reason": "vendor down until Monday"}


def test_resuming_a_task_that_is_not_paused_keeps_its_due_fire(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    service = Service(sqlite_store, home, clock)
    spec = TaskSpec(name="nightly", cron="0 3 * * *", command=["true"])
    due = clock.now() - timedelta(hours=5)  # due while the daemon was down: to catch up
    sqlite_store.upsert_task(spec, TaskSource.API, clock.now(), due)
    audited = service.audit("nightly")
    view = service.resume("nightly")
    assert not view["paused"]
    assert sqlite_store.get_task("nightly").next_fire_at == due  # type: ignore[union-attr]
    assert service.audit("nightly") == audited


def test_an_update_that_changes_nothing_writes_and_audits_nothing(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """An empty PATCH {} was written to the audit trail as a task.update (outside-in
    probe), and re-stored the task as if changed."""
    service = Service(sqlite_store, home, clock)
    service.add_task("t", {"every": "1h", "command": ["true"]})
    audited = service.audit("t")
    before = sqlite_store.get_task("t")
    clock.advance(timedelta(minutes=5))
    for patch in ({}, {"every": "1h"}, {"command": ["true"]}):
        service.update_task("t", patch)
    assert service.audit("t") == audited
    assert sqlite_store.get_task("t") == before
    service.update_task("t", {"every": "2h"})  # a real change is audited
    assert service.audit("t")[0]["action"] == "task.update"


def test_a_pause_says_which_waiting_runs_it_cancels(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    """The owner was last told "Retrying at 10:05"; a pause cancelled that retry without
    a word anywhere (outside-in probe). `agentcron pause` now says what it cancels."""
    from agentcron.store._rows import ts

    service = Service(sqlite_store, home, clock)
    service.add_task("t", {"every": "1h", "command": ["true"], "timezone": "UTC"})
    assert service.pause_cancels("t") is None
    run = service.trigger("t")
    retry_at = clock.now() + timedelta(minutes=5)
    with sqlite_store._tx() as db:  # type: ignore[attr-defined]
        db.execute(
            "UPDATE slots SET status = 'retrying', attempts = 1, next_attempt_at = ? WHERE id = ?",
            (ts(retry_at), run["id"]),
        )
    later = service.trigger("t")
    said = service.pause_cancels("t")
    assert said == (
        f"run {run['id']}'s retry at {retry_at:%H:%M:%S}; run {later['id']} (waiting to "
        "start) will not run: a paused task's waiting runs are cancelled"
    )
