"""What `agentcron trigger` says of when the run starts. It said "the daemon starts it
within a second" while a run of the task was in progress, and the manual run waited
for it (an hour, for an hour-long run; outside-in probe)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agentcron.clock import FakeClock
from agentcron.model import TaskSource, TaskSpec
from agentcron.service import Service
from agentcron.store.sql import SQLStore

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def test_a_trigger_waits_behind_a_run_in_progress_unless_overlap_allows(
    store: SQLStore, tmp_path: Path
) -> None:
    service = Service(store, tmp_path, FakeClock(T0))
    for name, overlap in (("solo", "skip"), ("many", "allow")):
        spec = TaskSpec(name=name, every=timedelta(hours=1), command=["true"], overlap=overlap)
        store.upsert_task(spec, TaskSource.API, T0, T0 + timedelta(hours=1))
    assert not service.waits_behind_a_run("solo")  # nothing runs: it starts at once
    service.trigger("solo")
    service.trigger("many")
    assert len(store.claim("n1", T0, T0 + timedelta(minutes=5), 10)) == 2
    assert service.waits_behind_a_run("solo")
    assert not service.waits_behind_a_run("many")


def test_the_triggered_run_itself_started_is_not_a_run_it_waits_behind(
    store: SQLStore, tmp_path: Path
) -> None:
    """Probe: the daemon, told of the trigger at once, started the run before the note
    was worked out, and `trigger` said "it starts when the run in progress ends" of an
    idle task's own run, three times out of three."""
    service = Service(store, tmp_path, FakeClock(T0))
    spec = TaskSpec(name="solo", every=timedelta(hours=1), command=["true"])
    store.upsert_task(spec, TaskSource.API, T0, T0 + timedelta(hours=1))
    run = service.trigger("solo")
    assert len(store.claim("n1", T0, T0 + timedelta(minutes=5), 10)) == 1  # started
    assert not service.waits_behind_a_run("solo", besides=run["id"])
    assert service.trigger_note("solo", run["id"]).text == "the daemon has started it"
    again = service.trigger("solo")  # a second one does wait behind the first
    assert service.waits_behind_a_run("solo", besides=again["id"])
